//! The tutorials (../shared/tutorials) run through psql as a user runs them, from an empty
//! cluster, against one plain PostgreSQL with the same DDL and rows (database `oracle`):
//! 000, 002 and 003 from the scripts in tests/tutorials/ (each says what it changed), 001
//! below.
//!
//! Tutorial 001 run through psql, as a user runs it: range partitions
//! of `user_events` whose bounds split `users.id` evenly, made with the tutorial's own
//! boundary query and psql's `\gexec` (the tutorial's DO block, which PostgreSQL would run on
//! one node, is the one change), then its data and queries. psql prints the same text through
//! shardgate as on one plain PostgreSQL holding the same DDL and rows (database `oracle`).
//!
//! Scaled down (400 users, 8 partitions, 5,000 events), with deterministic ids instead of
//! random ones, and the tutorial's own bugs fixed as PostgreSQL requires: its `lag(id) OVER ()`
//! and `DISTINCT ON` read rows in no particular order (now `ORDER BY id`), and `ORDER BY
//! user_id LIMIT 10` ties (now `ORDER BY user_id, id`).

mod common;
#[path = "common/wire.rs"]
mod wire;

use std::process::Command;

use common::own::Own;
use wire::{Conn, Mode};

const SCRIPT: &str = r#"
CREATE TABLE users (id uuid PRIMARY KEY, name text);
INSERT INTO users SELECT md5('u' || g)::uuid, 'user ' || g FROM generate_series(1, 400) g;

create table user_events
(
    id        uuid         not null,
    user_id   uuid         not null
        constraint fk_36d54c77a76ed395
            references users,
    timestamp timestamp(6) not null,
    type      varchar(255) not null,
    primary key (user_id, id)
) partition by range (user_id);

create index idx_36d54c77a76ed395
    on user_events (user_id);

WITH boundaries AS (SELECT DISTINCT ON (partition) partition,
                                                   lag(id, 1) OVER (ORDER BY id) AS start_id,
                                                   last_value(id) OVER p AS end_id
                    FROM (SELECT id,
                                 ntile(8) OVER (ORDER BY id) partition
                          FROM users) parts
                    WINDOW p AS (PARTITION BY partition)
                    ORDER BY partition, id)
SELECT format(
               'CREATE TABLE user_events_p%s PARTITION OF user_events FOR VALUES FROM (%L) TO (%L);',
               lpad(partition::TEXT, 4, '0'),
               CASE
                   WHEN partition = 1 THEN '00000000-0000-0000-0000-000000000000'::UUID
                   ELSE start_id
                   END,
               CASE
                   WHEN partition = 8 THEN 'ffffffff-ffff-ffff-ffff-ffffffffffff'::UUID
                   ELSE end_id
                   END
       ) AS statement
FROM boundaries
ORDER BY partition
\gexec

INSERT INTO user_events (id, user_id, timestamp, type)
SELECT md5('e' || gen)::uuid                                   as id,
       user_ids.ids[1 + gen % user_ids.length]                 as user_id,
       '2024-06-01'::timestamp - (gen % 90) * INTERVAL '1 day' as timestamp,
       types.values[1 + gen % 10]                              as type
FROM (SELECT array_agg(id ORDER BY id) as ids, count(id)::int as length FROM users) user_ids,
     (SELECT ARRAY ['login', 'register', 'password_reset_requested', 'password_reset', 'form_submit', 'file_upload', 'search', 'purchase', 'profile_update', 'password_change'] AS values) as types,
     generate_series(1, 5000) as gen
;

SELECT count(*) FROM user_events;
SELECT * FROM user_events WHERE user_id = md5('u7')::uuid ORDER BY id;
SELECT * FROM user_events WHERE id = md5('e4242')::uuid;
SELECT * FROM user_events WHERE user_id = md5('u243')::uuid AND id = md5('e4242')::uuid;
SELECT * FROM user_events ORDER BY user_id, id LIMIT 10;
SELECT type, count(*), min(timestamp), max(timestamp) FROM user_events GROUP BY type ORDER BY type;
SELECT count(*) FROM user_events_p0001;
SELECT count(*), min(timestamp) FROM user_events_p0005;
SELECT count(*) FROM user_events_p0008;
\d+ user_events
"#;

/// What psql prints (and its exit status) for `args` run against a server.
fn psql(port: u16, login: (&str, &str, &str), args: &[&std::ffi::OsStr]) -> String {
    let (user, password, db) = login;
    let o = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", user, "-d", db])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGOPTIONS")
        .output()
        .expect("psql on PATH");
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const APP: (&str, &str, &str) = ("app", "app-secret", "app");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_001_balanced_ranges_through_psql() {
    let own = Own::start_with_tables(
        "tutorial-001",
        3,
        "",
        "",
        "[[tables]]\nname = \"users\"\nmethod = \"reference\"\n",
    )
    .await;
    let w0 = own.worker(0).await;
    w0.batch_execute("CREATE DATABASE oracle")
        .await
        .expect("oracle db");
    let file = std::env::temp_dir().join(format!("tutorial-001-{}.sql", std::process::id()));
    std::fs::write(&file, SCRIPT).expect("script");
    let args = [std::ffi::OsStr::new("-f"), file.as_os_str()];
    let through = psql(own.port, APP, &args);
    let oracle = psql(own.worker_ports[0], ("postgres", "", "oracle"), &args);
    let _ = std::fs::remove_file(&file);
    assert!(through.starts_with("status exit status: 0"), "{through}");
    assert_eq!(through, oracle);
    // The eight partitions are spread over the three nodes.
    let spread: Vec<i64> = w0
        .query(
            "SELECT count(*) FROM shardgate.partitions WHERE parent = 'user_events' GROUP BY node ORDER BY node",
            &[],
        )
        .await
        .expect("catalog")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(spread, vec![3, 3, 2]);
    // The same split in one call: eight partitions of 50 users each.
    let mut sg = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    for sql in [
        "CREATE TABLE visits (user_id uuid NOT NULL, n int) PARTITION BY RANGE (user_id)",
        "SELECT shardgate.create_balanced_partitions('visits', 8, 'users', 'id')",
        "INSERT INTO visits SELECT id, 1 FROM users",
    ] {
        sg.run(Mode::Simple, sql).await.expect(sql);
    }
    for i in 1..=8 {
        let a = sg
            .run(
                Mode::Simple,
                &format!("SELECT count(*) FROM visits_p{i:04}"),
            )
            .await
            .expect("count");
        assert_eq!(a.rows, vec![vec![Some(b"50".to_vec())]], "visits_p{i:04}");
    }
    let a = sg
        .run(
            Mode::Simple,
            "SELECT shardgate.create_balanced_partitions('visits', 8, 't')",
        )
        .await;
    assert_eq!(a.map_err(|f| f.code), Err("0A000".to_string()));
    // The tutorial's last table references user_events' key from a plain table: a foreign
    // key shardgate cannot keep across nodes, refused at CREATE.
    let sql = "CREATE TABLE user_event_details (event_id uuid NOT NULL, user_id uuid NOT NULL, details jsonb, \
               CONSTRAINT fk_user_events FOREIGN KEY (user_id, event_id) REFERENCES user_events (user_id, id) ON DELETE CASCADE, \
               PRIMARY KEY (event_id))";
    let refused = psql(own.port, APP, &["-c".as_ref(), sql.as_ref()]);
    assert!(refused.contains("not support"), "{refused}");
}

/// Runs `file` (tests/tutorials/) through psql on a server.
fn psql_file(port: u16, login: (&str, &str, &str), file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tutorials")
        .join(file);
    psql(port, login, &["-f".as_ref(), path.as_os_str()])
}

const ORACLE: (&str, &str, &str) = ("postgres", "", "oracle");

/// A cluster of three workers from an empty catalog, with the oracle database on worker 1.
async fn tutorial_cluster(name: &str, tables: &str) -> Own {
    let own = Own::start_with_tables(name, 3, "", "", tables).await;
    own.worker(0)
        .await
        .batch_execute("CREATE DATABASE oracle")
        .await
        .expect("oracle db");
    own
}

/// Tutorials 000 (hash on a uuid) and 003 (range with a DEFAULT, retention) through psql:
/// the same text as on one PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorials_000_and_003_through_psql() {
    let own = tutorial_cluster("tutorial-000-003", "").await;
    for file in ["000.sql", "003.sql"] {
        let through = psql_file(own.port, APP, file);
        let oracle = psql_file(own.worker_ports[0], ORACLE, file);
        assert!(
            through.starts_with("status exit status: 0"),
            "{file}: {through}"
        );
        assert_eq!(through, oracle, "{file}");
    }
    // Each uuid's row is on the node holding its hash partition.
    let w0 = own.worker(0).await;
    let owners: Vec<(String, String)> = w0
        .query(
            "SELECT name, node FROM shardgate.partitions WHERE parent = 'users' ORDER BY name",
            &[],
        )
        .await
        .expect("catalog")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(owners.len(), 4);
    for i in 0..own.worker_ports.len() {
        let w = own.worker(i).await;
        for (part, node) in &owners {
            let n: i64 = w
                .query_one(&format!("SELECT count(*) FROM {part}"), &[])
                .await
                .expect("count")
                .get(0);
            assert_eq!(
                n > 0,
                *node == format!("w{}", i + 1),
                "{part} on w{}",
                i + 1
            );
        }
    }
}

/// Tutorial 002 through psql: its planner tables, range/hash/list/two-level partitioning,
/// pruning, prepared statements, joins with a reference table, a materialized summary; its
/// maintenance done by the built-in calls (the oracle runs the tutorial's functions), after
/// which both hold the same partitions and rows. Its EXPLAINs and statistics queries run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_002_through_psql() {
    let own = tutorial_cluster(
        "tutorial-002",
        "[[tables]]\nname = \"customers\"\nmethod = \"reference\"\n",
    )
    .await;
    let steps = [
        ("002.sql", "002.sql"),
        (
            "002-maintenance-shardgate.sql",
            "002-maintenance-oracle.sql",
        ),
        ("002-after.sql", "002-after.sql"),
    ];
    for (mine, theirs) in steps {
        let through = psql_file(own.port, APP, mine);
        let oracle = psql_file(own.worker_ports[0], ORACLE, theirs);
        assert!(
            through.starts_with("status exit status: 0"),
            "{mine}: {through}"
        );
        assert!(
            oracle.starts_with("status exit status: 0"),
            "{theirs}: {oracle}"
        );
        if mine == theirs {
            assert_eq!(through, oracle, "{mine}");
        }
    }
    let explained = psql_file(own.port, APP, "002-explain.sql");
    assert!(
        explained.starts_with("status exit status: 0"),
        "{explained}"
    );
    // The materialized view is a real one on the default node, its rows merged from all.
    let w0 = own.worker(0).await;
    let n: i64 = w0
        .query_one(
            "SELECT count(*) FROM pg_matviews WHERE matviewname = 'monthly_sales_summary'",
            &[],
        )
        .await
        .expect("pg_matviews")
        .get(0);
    assert_eq!(n, 1);
}
