//! A newcomer's first minutes, end to end against real PostgreSQL: the README's first command
//! on a machine without PostgreSQL (install step stubbed) up to "ready" and a first query; the
//! start-up check of declared tables against the workers; an unreachable node refusing the start
//! unless degraded; SHARDGATE_LISTEN; JSON logs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use shardgate::local::{free_ports, pg_bindir, LocalCluster};

/// Generous bound for a start that takes a few seconds; only a hung start ever reaches it.
const START_BOUND: Duration = Duration::from_secs(240);

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// config/example.toml's tables over local workers on `ports` (w1, w2, ...).
fn example_config(ports: &[u16], server_extra: &str) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(repo.join("config/example.toml")).expect("example");
    let tables = &example[example.find("[[tables]]").expect("tables")..];
    let mut t = format!("[server]\nlisten = \"127.0.0.1:6432\"\n{server_extra}\n");
    t += "[[users]]\nname = \"app\"\npassword = \"app-secret\"\n\n";
    for (i, p) in ports.iter().enumerate() {
        t += &format!(
            "[[nodes]]\nname = \"w{}\"\nurl = \"postgresql://postgres@127.0.0.1:{p}/app\"\n\n",
            i + 1
        );
    }
    t + tables
}

/// A shardgate (or script) process: stdout lines arrive on a channel, stderr goes to a file;
/// dropped, it gets SIGINT (shardgate stops its workers on it) and is waited for.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, stderr: PathBuf) -> Proc {
        let err = std::fs::File::create(&stderr).expect("stderr file");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err);
        let mut child = cmd.spawn().expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The first stdout line starting with `prefix`; None when the process ended without one.
    fn line(&mut self, prefix: &str) -> Option<String> {
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.starts_with(prefix) => return Some(l),
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        panic!(
            "no {prefix:?} line within {START_BOUND:?}; stderr:\n{}",
            self.stderr()
        );
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process did not end; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn interrupt(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.wait()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
        }
    }
}

/// Host and port from "connect with: [PGPASSWORD=...] psql -h HOST -p PORT -U USER DB".
fn host_port(line: &str) -> (String, u16) {
    let w: Vec<&str> = line.split_whitespace().collect();
    let after = |flag: &str| {
        let i = w.iter().position(|x| *x == flag).expect(flag);
        w[i + 1].to_string()
    };
    (after("-h"), after("-p").parse().expect("port"))
}

async fn query_one(host: &str, port: u16, sql: &str) -> String {
    let dsn = format!("host={host} port={port} user=app password=app-secret dbname=app");
    let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("connect to shardgate");
    tokio::spawn(conn);
    let rows = client.simple_query(sql).await.expect(sql);
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("one row")
}

/// PATH without any directory that holds initdb (this machine has PostgreSQL installed).
fn path_without_postgres(first: &Path) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let keep = std::env::split_paths(&path).filter(|d| !d.join("initdb").exists());
    let dirs: Vec<PathBuf> = std::iter::once(first.to_path_buf()).chain(keep).collect();
    std::env::join_paths(dirs)
        .expect("PATH")
        .to_string_lossy()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_first_command_installs_postgres_then_is_ready() {
    let real_bindir =
        pg_bindir().expect("this test needs PostgreSQL installed to stub its install");
    let dir = scratch("newcomer");
    let (fakebin, libdir) = (dir.join("bin"), dir.join("lib"));
    std::fs::create_dir_all(&fakebin).expect("bin");
    std::fs::create_dir_all(&libdir).expect("lib");
    // The stubbed install puts the real server programs on PATH, as the package would.
    let stub = dir.join("install-stub.sh");
    let script = format!(
        "#!/bin/sh\nset -e\nfor f in '{}'/*; do ln -sf \"$f\" '{}'/; done\ntouch '{}'\n",
        real_bindir.display(),
        fakebin.display(),
        dir.join("installed").display()
    );
    std::fs::write(&stub, script).expect("stub");
    let ports = free_ports(3).expect("ports");
    let config = dir.join("shardgate.toml");
    std::fs::write(&config, example_config(&ports, "")).expect("config");

    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local.sh"))
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env("PATH", path_without_postgres(&fakebin))
        .env("SHARDGATE_PG_CONFIG", dir.join("no-pg_config"))
        .env("SHARDGATE_PG_LIBDIR", &libdir)
        .env("SHARDGATE_PG_INSTALL", format!("sh {}", stub.display()))
        .env("SHARDGATE_BIN", env!("CARGO_BIN_EXE_shardgate"))
        .env_remove("RUST_LOG")
        .env_remove("SHARDGATE_LISTEN");
    let mut p = Proc::spawn(cmd, dir.join("stderr"));
    let line = p.line("connect with: ");
    let err = p.stderr();
    let line = line.unwrap_or_else(|| panic!("no connect line; stderr:\n{err}"));
    assert!(err.contains("not installed: installing"), "{err}");
    assert!(
        dir.join("installed").exists(),
        "the install step did not run: {err}"
    );
    let ready = err
        .find("ready on")
        .unwrap_or_else(|| panic!("no ready line: {err}"));
    assert!(
        err[..ready].contains("example-schema.sql"),
        "ready before the schema: {err}"
    );
    assert!(err.contains("3 of 3 workers answer"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "colour codes in a log that is not a terminal: {err}"
    );
    assert!(
        line.contains("PGPASSWORD=app-secret psql -h 127.0.0.1 -p "),
        "{line}"
    );

    let (host, port) = host_port(&line);
    assert_eq!(
        query_one(&host, port, "SELECT count(*) FROM users").await,
        "2000"
    );
    assert!(p.interrupt().success(), "stderr:\n{}", p.stderr());
    for w in ["w1", "w2", "w3"] {
        let pid = dir.join("data").join(w).join("data/postmaster.pid");
        assert!(!pid.exists(), "{w} still running after Ctrl-C");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two local workers under a scratch folder; stopped when dropped.
fn two_workers(name: &str) -> (LocalCluster, Vec<u16>, PathBuf) {
    let dir = scratch(name);
    let ports = free_ports(2).expect("ports");
    let specs = [("w1", ports[0]), ("w2", ports[1])];
    let cluster = LocalCluster::start(&dir.join("data"), &specs, "app").expect("workers");
    (cluster, ports, dir)
}

fn node_config(ports: &[u16], tables: &str) -> String {
    let mut t = String::from("[server]\nlisten = \"127.0.0.1:0\"\n\n");
    for (i, p) in ports.iter().enumerate() {
        t += &format!(
            "[[nodes]]\nname = \"w{}\"\nurl = \"postgresql://postgres@127.0.0.1:{p}/app\"\n\n",
            i + 1
        );
    }
    t + tables
}

fn hash_table(name: &str, column: &str, extra: &str) -> String {
    format!("[[tables]]\nname = \"{name}\"\nmethod = \"hash\"\ncolumn = \"{column}\"\nshards = 2\n{extra}\n")
}

#[tokio::test]
async fn declared_tables_are_checked_against_the_workers() {
    let (cluster, ports, dir) = two_workers("catalog-check");
    let both = |sql: &str| {
        for i in 0..2 {
            cluster.psql(i, "app", sql).expect(sql);
        }
    };
    both("CREATE TABLE wrong_col (user_uuid uuid)");
    both("CREATE TABLE wrong_type (k text)");
    both("CREATE TABLE bad_type (k numeric)");
    both("CREATE TABLE good (x text, id int8)");
    cluster
        .psql(0, "app", "CREATE TABLE split_type (k int4)")
        .expect("w1");
    cluster
        .psql(1, "app", "CREATE TABLE split_type (k int8)")
        .expect("w2");

    let mistakes = [
        hash_table("wrong_col", "user_uuidd", ""),
        hash_table("wrong_type", "k", "type = \"int8\""),
        hash_table("bad_type", "k", ""),
        hash_table("split_type", "k", ""),
        hash_table("not_yet_created", "k", ""),
        hash_table("good", "id", ""),
    ];
    let cfg = shardgate::config::parse(&node_config(&ports, &mistakes.concat())).expect("config");
    let err = shardgate::catalog::check_workers(&cfg, false)
        .await
        .expect_err("mistakes must refuse the start");
    for needle in [
        "table \"wrong_col\": distribution column \"user_uuidd\" does not exist on node \"w1\"",
        "table \"wrong_type\": type = \"int8\" in the config but column \"k\" is text",
        "table \"bad_type\": distribution column \"k\" has unsupported type numeric",
        "table \"split_type\": column \"k\" is integer on node \"w1\" but bigint on node \"w2\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(
        !err.contains("not_yet_created") && !err.contains("\"good\""),
        "{err}"
    );

    let fine = [
        hash_table("not_yet_created", "k", ""),
        hash_table("good", "id", ""),
    ];
    let cfg = shardgate::config::parse(&node_config(&ports, &fine.concat())).expect("config");
    let found = shardgate::catalog::check_workers(&cfg, false)
        .await
        .expect("fine");
    assert_eq!((found.existing_tables, found.down.len()), (1, 0));
    let good = cfg.shardmap.get("good").expect("good");
    assert_eq!(good.key_type.map(|k| k.name()), Some("int8"));
    assert_eq!(cfg.shardmap.key_position("good"), Some(1));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_node_refuses_the_start_unless_degraded() {
    let (cluster, ports, dir) = two_workers("degraded");
    // Port 1: nothing listens there, so the third node is down.
    let dead = 1;
    let text = node_config(&[ports[0], ports[1], dead], &hash_table("t", "id", ""))
        + "[[users]]\nname = \"app\"\npassword = \"app-secret\"\n";
    let config = dir.join("shardgate.toml");
    std::fs::write(&config, &text).expect("config");
    let serve = |args: &[&str], listen_env: Option<String>, name: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardgate"));
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG");
        match listen_env {
            Some(l) => cmd.env("SHARDGATE_LISTEN", l),
            None => cmd.env_remove("SHARDGATE_LISTEN"),
        };
        Proc::spawn(cmd, dir.join(name))
    };

    let mut refused = serve(&[], None, "refused.err");
    let status = refused.wait();
    let err = refused.stderr();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "node \"w3\" (127.0.0.1:{dead}/app) does not answer"
        )),
        "{err}"
    );
    assert!(err.contains("--degraded"), "{err}");
    assert!(refused.line("connect with").is_none(), "{err}");

    // Degraded, on the address SHARDGATE_LISTEN names, logging JSON.
    let json = dir.join("json.toml");
    std::fs::write(
        &json,
        text.replace("[server]\n", "[server]\nlog_format = \"json\"\n"),
    )
    .expect("json config");
    let port = free_ports(1).expect("port")[0];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardgate"));
    cmd.arg("--config")
        .arg(&json)
        .arg("--degraded")
        .env_remove("RUST_LOG");
    cmd.env("SHARDGATE_LISTEN", format!("127.0.0.1:{port}"));
    let mut p = Proc::spawn(cmd, dir.join("degraded.err"));
    let line = p.line("connect with: ").expect("degraded start");
    assert_eq!(host_port(&line), ("127.0.0.1".to_string(), port), "{line}");
    assert!(
        !line.contains("PGPASSWORD"),
        "only `local` prints the password: {line}"
    );
    let err = p.stderr();
    assert!(err.contains("w3") && err.contains("degraded"), "{err}");
    for l in err.lines() {
        assert!(
            l.starts_with('{') && l.contains("\"level\""),
            "not a JSON log line: {l}"
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    assert_eq!(rt.block_on(query_one("127.0.0.1", port, "SELECT 1")), "1");
    assert!(p.interrupt().success(), "{}", p.stderr());

    // --listen wins over SHARDGATE_LISTEN.
    let port2 = free_ports(1).expect("port")[0];
    let listen = format!("127.0.0.1:{port2}");
    let mut p = serve(
        &["--degraded", "--listen", &listen],
        Some("127.0.0.1:1".into()),
        "flag.err",
    );
    let line = p.line("connect with: ").expect("start with --listen");
    assert_eq!(host_port(&line).1, port2, "{line}");
    drop(p);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
