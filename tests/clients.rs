//! Real clients against shardgate: psql (libpq, simple protocol) and pgbench in its three query
//! modes, over the harness's cluster (tests/common).

mod common;

use std::process::{Command, Output};

use common::*;

fn psql(args: &[&str]) -> Output {
    let port = env().port.to_string();
    Command::new("psql")
        .args([
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "app",
            "-d",
            "app",
        ])
        .args(args)
        .env("PGPASSWORD", "app-secret")
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGOPTIONS")
        .output()
        .expect("psql on PATH")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What psql -At prints for a query on the oracle.
async fn oracle_lines(sql: &str) -> String {
    let rows = rows(&oracle().await, sql).await;
    let line = |r: &Vec<Option<String>>| {
        r.iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("|")
    };
    rows.iter().map(line).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn psql_answers_keyed_lookups() {
    env();
    let u = &data().users[5];
    for sql in [
        "SELECT * FROM user_analytics WHERE user_id = 42".to_string(),
        format!("SELECT username, email, created_at FROM users WHERE user_uuid = '{u}'"),
        "SELECT sale_id, sale_date, total_amount FROM sales_analytics WHERE sale_date = '2024-03-05' ORDER BY sale_id".to_string(),
        "SELECT * FROM customers WHERE customer_id = 9".to_string(),
    ] {
        let o = psql(&["-c", &sql]);
        assert!(o.status.success(), "{sql}\n{}", text(&o));
        let got = String::from_utf8_lossy(&o.stdout).trim_end().to_string();
        assert_eq!(got, oracle_lines(&sql).await, "{sql}");
        assert!(!got.is_empty(), "{sql} returns rows");
    }
}

#[test]
fn psql_reports_errors_and_runs_meta_commands() {
    let o = psql(&["-c", "SELECT * FROM no_such_table"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no_such_table"),
        "{}",
        text(&o)
    );
    let o = psql(&["-c", "SELECT 1", "-c", "SELECT 2; SELECT 3"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim_end(), "1\n2\n3");
    let o = psql(&["-c", "\\dt"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("user_analytics"),
        "{}",
        text(&o)
    );
}

fn pgbench(name: &str, mode: &str, script: &str) -> Output {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join(format!("{name}-{mode}.sql"));
    std::fs::write(&file, script).expect("script");
    let port = env().port.to_string();
    let o = Command::new("pgbench")
        .args([
            "-n",
            "-t",
            "50",
            "-c",
            "2",
            "-M",
            mode,
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "app",
            "-f",
        ])
        .arg(&file)
        .arg("app")
        .env("PGPASSWORD", "app-secret")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("pgbench on PATH");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&dir);
    o
}

/// Runs pgbench and checks it succeeded with every transaction processed; returns its output.
fn pgbench_ok(name: &str, mode: &str, script: &str) -> String {
    let o = pgbench(name, mode, script);
    let out = text(&o);
    assert!(o.status.success(), "pgbench -M {mode}\n{out}");
    assert!(
        out.contains("number of transactions actually processed: 100/100"),
        "pgbench -M {mode}\n{out}"
    );
    out
}

const LOOKUPS: &str =
    "\\set id random(1, 1000)\nSELECT * FROM user_analytics WHERE user_id = :id;\n";

#[test]
fn pgbench_keyed_lookups_in_every_query_mode() {
    env();
    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench_ok("lookups", mode, LOOKUPS);
        assert!(
            !out.contains("number of failed transactions: 1") && !out.contains("error"),
            "pgbench -M {mode}\n{out}"
        );
    }
}

#[test]
fn pgbench_keyed_transaction_on_one_node() {
    env();
    let script = "\\set id random(1, 1000)\nBEGIN;\n\
                  SELECT page_views FROM user_analytics WHERE user_id = :id;\n\
                  UPDATE user_analytics SET actions_count = actions_count WHERE user_id = :id;\n\
                  END;\n";
    for mode in ["simple", "extended", "prepared"] {
        pgbench_ok("txn", mode, script);
    }
}

/// pgbench pipelines: several keyed Bind/Execute (on different nodes) before one Sync.
#[test]
fn pgbench_pipelined_lookups() {
    env();
    let script = "\\set a random(1, 1000)\n\\set b random(1, 1000)\n\\set c random(1, 1000)\n\
                  \\startpipeline\n\
                  SELECT * FROM user_analytics WHERE user_id = :a;\n\
                  SELECT * FROM user_analytics WHERE user_id = :b;\n\
                  SELECT username FROM user_analytics WHERE user_id = :c;\n\
                  \\endpipeline\n";
    for mode in ["extended", "prepared"] {
        pgbench_ok("pipeline", mode, script);
    }
}

/// psql's Ctrl-C during a scatter read: psql sends its CancelRequest, prints PostgreSQL's
/// 57014 message once, and no node goes on running its part.
#[tokio::test]
async fn psql_ctrl_c_cancels_a_scatter_read_on_every_node() {
    let e = env();
    let marker = "psql-ctrl-c-marker";
    let sql = format!(
        "SELECT '{marker}', u.user_id, g FROM user_analytics u, generate_series(1, 5000000) g"
    );
    let child = Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &e.port.to_string()])
        .args(["-U", "app", "-d", "app", "-c", &sql])
        .env("PGPASSWORD", "app-secret")
        .env_remove("PGOPTIONS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql on PATH");
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%{marker}%'"
    );
    // Ctrl-C once every node runs its part.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for w in 0..e.worker_ports.len() {
        let c = worker(w).await;
        while scalar(&c, &running).await == "0" {
            assert!(
                std::time::Instant::now() < deadline,
                "node {w} never ran its part"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("psql ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("canceling statement due to user request")
            .count(),
        1,
        "{stderr}"
    );
    for w in 0..e.worker_ports.len() {
        let c = worker(w).await;
        while scalar(&c, &running).await != "0" {
            assert!(
                std::time::Instant::now() < deadline,
                "node {w} still runs its part after the cancel"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
