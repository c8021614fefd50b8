//! Real drivers against shardgate and against one plain PostgreSQL (the oracle): psycopg 3,
//! asyncpg, node-postgres (with pg-cursor), pgjdbc and tokio-postgres each run the same suite
//! (tests/drivers/*) on both, and the transcripts must be identical: keyed lookups by one
//! named statement reaching every node, a scatter aggregate with a parameter, INSERT ...
//! RETURNING over several nodes, a multi-node transaction that commits and one that rolls
//! back, errors followed by working queries, temp tables and advisory locks in two sessions,
//! a cursor over a million-row scatter, and binary results of the common types.
//! `scripts/install-drivers.sh` (run by `.ci/run`) installs the drivers.

mod common;
#[path = "drivers/tokio_postgres_suite.rs"]
mod tokio_postgres_suite;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::*;

const BIG: &str = "drv_big";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

/// The million-row table every suite's cursor reads, through shardgate and on the oracle.
fn big_table() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ddl = format!(
            "CREATE TABLE {BIG} (k int8, v text) PARTITION BY HASH (k);
             CREATE TABLE {BIG}_0 PARTITION OF {BIG} FOR VALUES WITH (MODULUS 3, REMAINDER 0);
             CREATE TABLE {BIG}_1 PARTITION OF {BIG} FOR VALUES WITH (MODULUS 3, REMAINDER 1);
             CREATE TABLE {BIG}_2 PARTITION OF {BIG} FOR VALUES WITH (MODULUS 3, REMAINDER 2);
             INSERT INTO {BIG} SELECT g, repeat('x', 20) FROM generate_series(1, 1000000) g"
        );
        for c in [connect().await, oracle().await] {
            for stmt in ddl.split(';') {
                c.batch_execute(stmt).await.expect("big table");
            }
        }
    });
    *done = true;
}

/// Runs a suite against shardgate and against the oracle; their transcripts must match.
fn run(name: &str, program: &str, args: &[String], table: &str) {
    big_table();
    let e = env();
    let targets = [
        ("shardgate", e.port, "app", "app-secret", "app"),
        ("oracle", e.worker_ports[0], "postgres", "", "oracle"),
    ];
    let mut transcripts = Vec::new();
    for (who, port, user, password, db) in targets {
        let out = Command::new(program)
            .args(args)
            .args([
                "127.0.0.1",
                &port.to_string(),
                user,
                password,
                db,
                table,
                BIG,
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .env("TZ", "UTC")
            .env_remove("PGOPTIONS")
            .output()
            .unwrap_or_else(|e| {
                panic!("{name}: cannot run {program} ({e}): run scripts/install-drivers.sh")
            });
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && stdout.ends_with("done\n"),
            "{name} against {who} failed ({}):\n{}\n--- stderr\n{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        transcripts.push(stdout);
    }
    // shardgate runs in this process: its peak memory after a suite read a million-row
    // scatter through a cursor. Holding that result in memory took 218 MB; spooled, the whole
    // process stays near its idle size.
    let peak = peak_kib();
    eprintln!("{name}: peak memory of the test process {peak} KiB");
    assert!(
        peak < FLAT_KIB,
        "{name}: the process peaked at {peak} KiB (over {FLAT_KIB}): a million-row cursor is held in memory"
    );
    if transcripts[0] != transcripts[1] {
        let (sg, or): (Vec<&str>, Vec<&str>) = (
            transcripts[0].lines().collect(),
            transcripts[1].lines().collect(),
        );
        let first = (0..sg.len().max(or.len()))
            .find(|i| sg.get(*i) != or.get(*i))
            .unwrap_or(0);
        panic!(
            "{name}: shardgate and the oracle differ from line {}:\nshardgate: {}\noracle:    {}",
            first + 1,
            sg.get(first).unwrap_or(&"<end>"),
            or.get(first).unwrap_or(&"<end>")
        );
    }
}

/// Well under what one million-row result held in memory costs (about 200 MB).
const FLAT_KIB: u64 = 120 * 1024;

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn python(script: &str) -> Vec<String> {
    vec![dir().join(script).display().to_string()]
}

#[test]
fn psycopg3() {
    run(
        "psycopg",
        "python3",
        &python("psycopg_suite.py"),
        "drv_psycopg",
    );
}

#[test]
fn asyncpg() {
    run(
        "asyncpg",
        "python3",
        &python("asyncpg_suite.py"),
        "drv_asyncpg",
    );
}

#[test]
fn node_postgres() {
    let suite = dir().join("node/suite.js");
    assert!(
        dir().join("node/node_modules/pg-cursor").exists(),
        "node-postgres is not installed: run scripts/install-drivers.sh"
    );
    run(
        "node-postgres",
        "node",
        &[suite.display().to_string()],
        "drv_node",
    );
}

#[test]
fn pgjdbc() {
    let jar =
        std::env::var("PGJDBC_JAR").unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into());
    assert!(
        Path::new(&jar).exists(),
        "pgjdbc ({jar}) is not installed: run scripts/install-drivers.sh"
    );
    let classes = Path::new(env!("CARGO_TARGET_TMPDIR")).join("drivers-java");
    let javac = Command::new("javac")
        .args(["-d", &classes.display().to_string(), "-cp", &jar])
        .arg(dir().join("java/Suite.java"))
        .output()
        .expect("javac: run scripts/install-drivers.sh");
    assert!(
        javac.status.success(),
        "javac failed: {}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let args = vec![
        format!("-Dsetup={}", dir().join("setup.sql").display()),
        "-cp".into(),
        format!("{jar}:{}", classes.display()),
        "Suite".into(),
    ];
    run("pgjdbc", "java", &args, "drv_jdbc");
}

#[tokio::test]
async fn tokio_postgres() {
    tokio::task::spawn_blocking(big_table)
        .await
        .expect("big table");
    let e = env();
    let setup = std::fs::read_to_string(dir().join("setup.sql")).expect("setup.sql");
    let (table, targets) = (
        "drv_tokio",
        [
            tokio_postgres_suite::Target {
                port: e.port,
                user: "app",
                password: "app-secret",
                db: "app",
            },
            tokio_postgres_suite::Target {
                port: e.worker_ports[0],
                user: "postgres",
                password: "",
                db: "oracle",
            },
        ],
    );
    let mine = tokio_postgres_suite::transcript(&targets[0], table, BIG, &setup).await;
    let theirs = tokio_postgres_suite::transcript(&targets[1], table, BIG, &setup).await;
    if let Some(i) = (0..mine.len().max(theirs.len())).find(|i| mine.get(*i) != theirs.get(*i)) {
        panic!(
            "tokio-postgres: shardgate and the oracle differ at line {}:\nshardgate: {}\noracle:    {}",
            i + 1,
            mine.get(i).map_or("<end>", |s| s.as_str()),
            theirs.get(i).map_or("<end>", |s| s.as_str())
        );
    }
    assert_eq!(mine.last().map(String::as_str), Some("done"));
    let peak = peak_kib();
    assert!(
        peak < FLAT_KIB,
        "tokio-postgres: the process peaked at {peak} KiB (over {FLAT_KIB}): a million-row portal is held in memory"
    );
}
