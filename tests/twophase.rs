//! Two-phase commit under failures, with real processes (issue 8): a worker killed before the
//! PREPAREs finish and between the phases, the coordinator killed before and after its commit
//! decision. The coordinator under test is the `shardgate` binary itself, started with a
//! failpoint (`SHARDGATE_FAILPOINT`, see src/session/commit.rs) so each failure happens at one
//! known step, not at a moment a timer guesses. Recovery is then run by a restarted
//! shardgate (at its start) or by the test (`catalog::recovery::recover`, what every
//! shardgate runs at start and periodically);
//! afterwards every update is committed everywhere or nowhere, and no prepared transaction
//! is left on any worker.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::own::Own;
use tokio_postgres::{Client, NoTls};

/// Recovery only when the test runs it: the in-process shardgate must not race the steps.
const SERVER: &str = "recovery_interval_secs = 3600\n";

async fn start(name: &str) -> Own {
    Own::start(name, 3, SERVER, "").await
}

/// The `shardgate` binary over `own`'s workers on a port of its own, with `failpoint`.
struct Coordinator {
    child: Child,
    port: u16,
}

impl Coordinator {
    async fn start(own: &Own, failpoint: &str) -> Coordinator {
        let port = shardgate::local::free_ports(1).expect("port")[0];
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nworker_timeout_secs = 5\n{SERVER}\n\
             [[users]]\nname = \"app\"\npassword = \"app-secret\"\n\n"
        );
        for (i, p) in own.worker_ports.iter().enumerate() {
            toml += &format!(
                "[[nodes]]\nname = \"w{}\"\nurl = \"postgresql://postgres@127.0.0.1:{p}/app\"\n\n",
                i + 1
            );
        }
        toml += "[[tables]]\nname = \"t\"\nmethod = \"hash\"\ncolumn = \"id\"\nshards = 4\ntype = \"int8\"\n";
        let path = own.root.join(format!("coordinator-{port}.toml"));
        std::fs::write(&path, toml).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_shardgate"))
            .arg("--config")
            .arg(&path)
            .env("SHARDGATE_FAILPOINT", failpoint)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("shardgate binary");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "coordinator did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Coordinator { child, port }
    }

    async fn connect(&self) -> Client {
        let dsn = format!(
            "host=127.0.0.1 port={} user=app password=app-secret dbname=app connect_timeout=20",
            self.port
        );
        let (c, conn) = tokio_postgres::connect(&dsn, NoTls).await.expect("connect");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        c
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until the coordinator reports it reached a failpoint.
async fn reached(path: &Path) {
    let flag = PathBuf::from(format!("{}.reached", path.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        assert!(Instant::now() < deadline, "failpoint not reached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn go(path: &Path) {
    std::fs::write(format!("{}.go", path.display()), b"").expect("go");
}

/// Node i's row's v, read directly from the worker.
async fn v_of(own: &Own, node: usize, id: i64) -> String {
    own.worker(node)
        .await
        .query_one("SELECT v FROM t WHERE id = $1", &[&id])
        .await
        .expect("row")
        .get(0)
}

async fn prepared(own: &Own) -> i64 {
    let mut n = 0;
    for i in 0..3 {
        n += own
            .worker(i)
            .await
            .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
            .await
            .expect("prepared")
            .get::<_, i64>(0);
    }
    n
}

/// One key of t on each worker.
async fn keys(own: &Own) -> [i64; 3] {
    [
        own.key_on(0).await,
        own.key_on(1).await,
        own.key_on(2).await,
    ]
}

async fn update_all(c: &Client, ks: &[i64; 3]) -> Result<(), tokio_postgres::Error> {
    c.batch_execute("BEGIN").await?;
    for k in ks {
        c.execute("UPDATE t SET v = 'new' WHERE id = $1", &[k])
            .await?;
    }
    c.batch_execute("COMMIT").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_killed_after_its_decision_loses_nothing() {
    let own = start("2pc-after-decision").await;
    let ks = keys(&own).await;
    let coord = Coordinator::start(&own, "after-decision=exit").await;
    let c = coord.connect().await;
    assert!(
        update_all(&c, &ks).await.is_err(),
        "the coordinator exits before answering COMMIT"
    );
    drop(coord);
    // Workers 2 and 3 prepared; worker 1 (the catalog node) committed with the decision.
    assert_eq!(v_of(&own, 0, ks[0]).await, "new");
    assert_eq!(prepared(&own).await, 2);
    // Restarted, shardgate's recovery at start commits what its decision record says.
    let restarted = Coordinator::start(&own, "").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while prepared(&own).await > 0 {
        assert!(
            Instant::now() < deadline,
            "recovery at start did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(restarted);
    for (i, k) in ks.iter().enumerate() {
        assert_eq!(v_of(&own, i, *k).await, "new", "node {i}");
    }
    assert_eq!(prepared(&own).await, 0);
    // The next round forgets the decision record.
    let r = shardgate::catalog::recovery::recover(&own.shared.config)
        .await
        .expect("recover");
    assert_eq!(r.forgotten, 1, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_killed_before_its_decision_rolls_back() {
    let own = start("2pc-before-decision").await;
    let ks = keys(&own).await;
    let flag = own.root.join("before-decision");
    let coord = Coordinator::start(&own, &format!("after-prepare=wait:{}", flag.display())).await;
    let c = coord.connect().await;
    let task = tokio::spawn(async move { update_all(&c, &ks).await.is_err() });
    reached(&flag).await;
    assert_eq!(prepared(&own).await, 2);
    drop(coord);
    assert!(task.await.expect("client"), "the client gets an error");
    let r = shardgate::catalog::recovery::recover(&own.shared.config)
        .await
        .expect("recover");
    assert_eq!(r.rolled_back, 2, "{r:?}");
    for (i, k) in ks.iter().enumerate() {
        assert_eq!(v_of(&own, i, *k).await, format!("v{k}"), "node {i}");
    }
    assert_eq!(prepared(&own).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_between_the_phases_commits_when_back() {
    let own = start("2pc-between").await;
    let ks = keys(&own).await;
    let flag = own.root.join("between");
    let coord = Coordinator::start(&own, &format!("after-prepare=wait:{}", flag.display())).await;
    let c = coord.connect().await;
    let task = tokio::spawn(async move { update_all(&c, &ks).await });
    reached(&flag).await;
    own.signal(2, "KILL");
    go(&flag);
    // The decision was made with worker 3 down: COMMIT succeeds, worker 3 is recovery's.
    task.await
        .expect("client")
        .expect("COMMIT after the decision");
    own.start_worker(2);
    assert_eq!(prepared(&own).await, 1);
    let r = shardgate::catalog::recovery::recover(&own.shared.config)
        .await
        .expect("recover");
    assert_eq!(r.committed, 1, "{r:?}");
    for (i, k) in ks.iter().enumerate() {
        assert_eq!(v_of(&own, i, *k).await, "new", "node {i}");
    }
    assert_eq!(prepared(&own).await, 0);
    drop(coord);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_before_prepare_rolls_back_everywhere() {
    let own = start("2pc-before-prepare").await;
    let ks = keys(&own).await;
    let c = own.connect().await.expect("connect");
    c.batch_execute("BEGIN").await.expect("begin");
    for k in &ks {
        c.execute("UPDATE t SET v = 'new' WHERE id = $1", &[k])
            .await
            .expect("update");
    }
    own.signal(2, "KILL");
    let e = c.batch_execute("COMMIT").await;
    assert!(e.is_err(), "COMMIT with a participant gone fails");
    own.start_worker(2);
    let r = shardgate::catalog::recovery::recover(&own.shared.config)
        .await
        .expect("recover");
    assert_eq!(r.committed, 0, "{r:?}");
    for (i, k) in ks.iter().enumerate() {
        assert_eq!(v_of(&own, i, *k).await, format!("v{k}"), "node {i}");
    }
    assert_eq!(prepared(&own).await, 0);
}
