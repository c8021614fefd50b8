//! pgbench's own TPC-B through shardgate (issue 8): `pgbench -i -s 10` with all four tables
//! hash-distributed (accounts and history on aid, tellers on tid, branches on bid: most
//! transactions write on two or three nodes and commit in two phases), then the default TPC-B
//! script from 8 clients in each query mode. No transaction may fail, the money must balance
//! (sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta)), every row must sit where
//! PostgreSQL's own hash puts it, and no prepared transaction may be left on any worker.

mod common;

use std::process::Command;

use common::own::Own;

const TABLES: &str = "\
[[tables]]\nname = \"pgbench_accounts\"\nmethod = \"hash\"\ncolumn = \"aid\"\nshards = 6\n\n\
[[tables]]\nname = \"pgbench_branches\"\nmethod = \"hash\"\ncolumn = \"bid\"\nshards = 6\n\n\
[[tables]]\nname = \"pgbench_tellers\"\nmethod = \"hash\"\ncolumn = \"tid\"\nshards = 6\n\n\
[[tables]]\nname = \"pgbench_history\"\nmethod = \"hash\"\ncolumn = \"aid\"\nshards = 6\n";

fn pgbench(port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let o = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "app"])
        .args(args)
        .arg("app")
        .env("PGPASSWORD", "app-secret")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("pgbench on PATH");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "pgbench {args:?}\n{out}");
    out
}

async fn one(c: &tokio_postgres::Client, sql: &str) -> Option<i64> {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_tpcb_balances_across_nodes() {
    let own = Own::start_with_tables("tpcb", 3, "", "", TABLES).await;
    let init = pgbench(own.port, &["-i", "-s", "10", "-q"]);
    assert!(init.contains("done in"), "{init}");
    let sg = own.connect().await.expect("connect");
    assert_eq!(
        one(&sg, "SELECT count(*) FROM pgbench_accounts").await,
        Some(1_000_000)
    );
    let mut transactions = 0;
    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench(
            own.port,
            &["-n", "-c", "8", "-j", "2", "-t", "100", "-M", mode],
        );
        assert!(
            out.contains("number of transactions actually processed: 800/800"),
            "-M {mode}\n{out}"
        );
        transactions += 800;
    }
    let a = one(&sg, "SELECT sum(abalance)::int8 FROM pgbench_accounts").await;
    let t = one(&sg, "SELECT sum(tbalance)::int8 FROM pgbench_tellers").await;
    let b = one(&sg, "SELECT sum(bbalance)::int8 FROM pgbench_branches").await;
    let d = one(&sg, "SELECT sum(delta)::int8 FROM pgbench_history").await;
    assert_eq!((a, t, b), (d, d, d), "balances");
    assert_eq!(
        one(&sg, "SELECT count(*) FROM pgbench_history").await,
        Some(transactions)
    );
    // Every row where PostgreSQL's hash puts it, and nothing left prepared.
    for i in 0..3 {
        let w = own.worker(i).await;
        for (table, key) in [
            ("pgbench_accounts", "aid"),
            ("pgbench_branches", "bid"),
            ("pgbench_tellers", "tid"),
            ("pgbench_history", "aid"),
        ] {
            let parts = common::partitions(&w, table).await;
            assert!(!parts.is_empty(), "{table} has partitions on worker {i}");
            for (part, bound) in parts {
                let r: i64 = bound
                    .rsplit_once("remainder ")
                    .and_then(|(_, r)| r.trim_end_matches(')').parse().ok())
                    .expect("a hash bound");
                let sql = format!(
                    "SELECT count(*) FROM {part} \
                     WHERE NOT satisfies_hash_partition('{table}'::regclass, 6, {r}, {key})"
                );
                assert_eq!(one(&w, &sql).await, Some(0), "{part} on worker {i}");
            }
        }
        assert_eq!(
            one(&w, "SELECT count(*) FROM pg_prepared_xacts").await,
            Some(0),
            "worker {i}"
        );
    }
}
