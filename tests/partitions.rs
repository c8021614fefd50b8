//! The partition tree is the shard map (issue 9): the tutorials' own `PARTITION BY` /
//! `PARTITION OF` DDL, run through shardgate from an empty cluster, puts each partition on a
//! node; every statement answers what one plain PostgreSQL with the same DDL and rows answers
//! (the oracle, database `oracle` on worker 1); a second shardgate process on the same catalog
//! follows the map without a restart.

mod common;
#[path = "common/wire.rs"]
mod wire;

use common::own::Own;
use wire::{Conn, Mode};

/// (statement, whether the answer's rows must match in order too; all are compared).
const STEPS: &[&str] = &[
    // Tutorial 000: hash partitions, created one by one.
    "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text) PARTITION BY HASH (id)",
    "INSERT INTO users (name) VALUES ('early')",
    "CREATE TABLE users_part1 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 0)",
    "CREATE TABLE users_part2 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 1)",
    "CREATE TABLE users_part3 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 2)",
    "CREATE TABLE users_part4 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 3)",
    "CREATE TABLE users_again PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 3)",
    "INSERT INTO users (name, email) SELECT 'u' || g, 'u' || g || '@x' FROM generate_series(1, 40) g",
    "INSERT INTO users (name) VALUES ('a'), ('b') RETURNING id, name",
    "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM users",
    "SELECT id, name FROM users WHERE id = 7",
    "SELECT count(*) FROM users_part2",
    "SELECT id, name FROM users_part3 ORDER BY id",
    "CREATE INDEX users_email ON users (email)",
    "UPDATE users SET email = 'seven@x' WHERE id = 7",
    "SELECT email FROM users WHERE id = 7",
    // Tutorials 002/003: monthly range partitions, retention, a DEFAULT.
    "CREATE TABLE sales (sale_id bigserial, sale_date date NOT NULL, amount numeric(10,2), region text, \
     PRIMARY KEY (sale_id, sale_date)) PARTITION BY RANGE (sale_date)",
    "CREATE TABLE sales_2024_01 PARTITION OF sales FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')",
    "CREATE TABLE sales_2024_02 PARTITION OF sales FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')",
    "CREATE TABLE sales_2024_03 PARTITION OF sales FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')",
    "CREATE TABLE sales_bad PARTITION OF sales FOR VALUES FROM ('2024-01-15') TO ('2024-02-15')",
    "CREATE TABLE sales_empty PARTITION OF sales FOR VALUES FROM ('2024-05-01') TO ('2024-05-01')",
    "INSERT INTO sales (sale_date, amount, region) SELECT '2024-01-01'::date + (g % 90), g, \
     (ARRAY['N', 'S'])[1 + g % 2] FROM generate_series(1, 90) g",
    "INSERT INTO sales (sale_date, amount) VALUES ('2025-01-01', 1)",
    "SELECT count(*), sum(amount) FROM sales",
    "SELECT region, count(*), sum(amount) FROM sales GROUP BY region ORDER BY region",
    "SELECT count(*) FROM sales WHERE sale_date >= '2024-02-01' AND sale_date < '2024-03-01'",
    "SELECT count(*), min(sale_date) FROM sales_2024_02",
    "DROP TABLE sales_2024_01",
    "SELECT count(*), min(sale_date) FROM sales",
    "CREATE TABLE sales_default PARTITION OF sales DEFAULT",
    "INSERT INTO sales (sale_date, amount) VALUES ('2025-01-01', 1), ('2023-12-31', 2)",
    "SELECT sale_date, amount FROM sales WHERE sale_date > '2024-12-01' OR sale_date < '2024-01-01' ORDER BY sale_date",
    "SELECT count(*) FROM sales_default",
    // PostgreSQL checks a new partition against the DEFAULT's rows, on whichever node.
    "CREATE TABLE sales_2025_01 PARTITION OF sales FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')",
    // Every node's catalog lists every partition, as psql's `\d+` reads it.
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'sales'::regclass ORDER BY 1",
    // DETACH keeps the rows where they are; ATTACH takes them back, or a plain table's.
    "ALTER TABLE sales DETACH PARTITION sales_2024_02",
    "SELECT count(*) FROM sales",
    "SELECT count(*), min(sale_date) FROM sales_2024_02",
    "INSERT INTO sales_2024_02 (sale_id, sale_date, amount) VALUES (1000, '2024-02-10', 5)",
    "INSERT INTO sales_2024_02 VALUES (1001, '2024-02-11', 6, 'N')",
    "ALTER TABLE sales DETACH PARTITION sales_2024_02",
    "ALTER TABLE sales ATTACH PARTITION sales_2024_02 FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')",
    "SELECT count(*), sum(amount) FROM sales WHERE sale_date >= '2024-02-01' AND sale_date < '2024-03-01'",
    "CREATE TABLE sales_2023 (sale_id bigint NOT NULL, sale_date date NOT NULL, amount numeric(10,2), region text)",
    "INSERT INTO sales_2023 VALUES (2000, '2023-03-03', 7, 'N'), (2001, '2022-05-05', 8, 'S')",
    "ALTER TABLE sales ATTACH PARTITION sales_2023 FOR VALUES FROM ('2023-01-01') TO ('2023-12-01')",
    "DELETE FROM sales_2023 WHERE sale_id = 2001",
    "ALTER TABLE sales ATTACH PARTITION sales_2023 FOR VALUES FROM ('2023-01-01') TO ('2023-12-01')",
    "SELECT sale_id, amount FROM sales WHERE sale_date = '2023-03-03'",
    "SELECT count(*), sum(amount) FROM sales",
    "ALTER TABLE sales ATTACH PARTITION sales_2023 FOR VALUES FROM ('2023-01-01') TO ('2023-12-01')",
    "TRUNCATE sales_2024_03",
    "SELECT count(*) FROM sales",
    // Tutorial 003: list partitions, one of them sub-partitioned, and a DEFAULT.
    "CREATE TABLE regional (id int, region text NOT NULL, country text NOT NULL, amount int) PARTITION BY LIST (region)",
    "CREATE TABLE regional_eu PARTITION OF regional FOR VALUES IN ('EU') PARTITION BY LIST (country)",
    "CREATE TABLE regional_eu_de PARTITION OF regional_eu FOR VALUES IN ('DE')",
    "CREATE TABLE regional_eu_fr PARTITION OF regional_eu FOR VALUES IN ('FR')",
    "CREATE TABLE regional_us PARTITION OF regional FOR VALUES IN ('US', 'CA')",
    "CREATE TABLE regional_more PARTITION OF regional FOR VALUES IN ('MX', 'US')",
    "CREATE TABLE regional_other PARTITION OF regional DEFAULT",
    "INSERT INTO regional VALUES (1, 'EU', 'DE', 10), (2, 'EU', 'FR', 20), (3, 'US', 'US', 30), (4, 'APAC', 'JP', 40)",
    "INSERT INTO regional VALUES (5, 'EU', 'IT', 1)",
    "SELECT region, sum(amount) FROM regional GROUP BY region ORDER BY region",
    "SELECT id, country FROM regional_eu ORDER BY id",
    "SELECT id FROM regional_eu_de",
    "SELECT id FROM regional WHERE region = 'APAC'",
    "DROP TABLE regional",
    "SELECT count(*) FROM pg_class WHERE relname LIKE 'regional%'",
];

fn show(o: &wire::Outcome) -> String {
    match o {
        Ok(a) => format!("ok {} {:?}", a.tag, a.rows),
        Err(f) => format!("error {}", f.code),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_ddl_runs_across_nodes_as_on_one_postgres() {
    let own = Own::start("part-tutorials", 3, "", "").await;
    let w0 = own.worker(0).await;
    w0.batch_execute("CREATE DATABASE oracle")
        .await
        .expect("oracle db");
    let mut sg = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    let mut or = Conn::connect(own.worker_ports[0], "postgres", "", "oracle")
        .await
        .expect("oracle");
    for sql in STEPS {
        let a = sg.run(Mode::Simple, sql).await;
        let b = or.run(Mode::Simple, sql).await;
        assert_eq!(show(&a), show(&b), "{sql}: {a:?}");
    }
    // The partitions are spread over the nodes: fewest first.
    let rows = w0
        .query(
            "SELECT node, count(*) FROM shardgate.partitions WHERE parent = 'users' GROUP BY node ORDER BY node",
            &[],
        )
        .await
        .expect("catalog");
    let spread: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        spread,
        vec![("w1".into(), 2), ("w2".into(), 1), ("w3".into(), 1)]
    );
    // Each worker holds users' rows only in its own partitions, where PostgreSQL's hash puts
    // them; together, every row once.
    let mut total = 0;
    for i in 0..3 {
        let w = own.worker(i).await;
        let n: i64 = w
            .query_one(
                "SELECT count(*) FROM users WHERE satisfies_hash_partition('users'::regclass, 4, \
                 (SELECT count(*)::int FROM pg_inherits WHERE false), id) OR true",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        total += n;
        let wrong: i64 = w
            .query_one(
                "SELECT count(*) FROM users u JOIN pg_class c ON c.oid = u.tableoid \
                 WHERE NOT satisfies_hash_partition('users'::regclass, 4, \
                   substr(c.relname, 11)::int - 1, u.id)",
                &[],
            )
            .await
            .expect("placement")
            .get(0);
        assert_eq!(wrong, 0, "rows outside their hash partition on worker {i}");
    }
    assert_eq!(total, 42);
    // shardgate.shards lists each partition with its node, bound, row estimate and size.
    sg.run(Mode::Simple, "ANALYZE sales")
        .await
        .expect("analyze");
    let listed = sg
        .run(
            Mode::Simple,
            "SELECT shard_name, bound, node IS NOT NULL, size_bytes > 0 FROM shardgate.shards \
             WHERE parent_name = 'sales' ORDER BY 1",
        )
        .await
        .expect("shards");
    let oracle = or
        .run(
            Mode::Simple,
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), true, true FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'sales'::regclass ORDER BY 1",
        )
        .await
        .expect("oracle");
    assert_eq!(listed.rows, oracle.rows);
    let estimate = sg
        .run(
            Mode::Simple,
            "SELECT sum(row_estimate)::int FROM shardgate.shards s WHERE s.table_name = 'sales'",
        )
        .await
        .expect("estimate");
    let count = sg
        .run(Mode::Simple, "SELECT count(*)::int FROM sales")
        .await
        .expect("count");
    assert_eq!(estimate.rows, count.rows);
    // An explicit node.
    let a = sg.run(Mode::Simple, "SET shardgate.node = 'w3'").await;
    assert!(a.is_ok(), "{a:?}");
    let a = sg
        .run(
            Mode::Simple,
            "CREATE TABLE sales_2024_04 PARTITION OF sales FOR VALUES FROM ('2024-04-01') TO ('2024-05-01')",
        )
        .await;
    assert!(a.is_ok(), "{a:?}");
    let node: String = w0
        .query_one(
            "SELECT node FROM shardgate.partitions WHERE name = 'sales_2024_04'",
            &[],
        )
        .await
        .expect("catalog")
        .get(0);
    assert_eq!(node, "w3");
    // In a block, and in the extended protocol (psycopg, JDBC): the map changes at COMMIT.
    let one = |a: wire::Outcome| -> String {
        let a = a.expect("answer");
        String::from_utf8_lossy(a.rows[0][0].as_deref().unwrap_or_default()).into_owned()
    };
    let a = sg
        .run(
            Mode::Simple,
            "BEGIN; CREATE TABLE sales_2024_05 PARTITION OF sales FOR VALUES FROM ('2024-05-01') TO ('2024-06-01'); COMMIT",
        )
        .await;
    assert!(a.is_ok(), "{a:?}");
    let a = sg
        .run(
            Mode::ExtText,
            "CREATE TABLE sales_2024_06 PARTITION OF sales FOR VALUES FROM ('2024-06-01') TO ('2024-07-01')",
        )
        .await;
    assert!(a.is_ok(), "{a:?}");
    let a = sg
        .run(
            Mode::Simple,
            "INSERT INTO sales (sale_date, amount) VALUES ('2024-05-05', 1), ('2024-06-06', 2)",
        )
        .await;
    assert!(a.is_ok(), "{a:?}");
    let n = sg
        .run(
            Mode::Simple,
            "SELECT (SELECT count(*) FROM sales_2024_05) + (SELECT count(*) FROM sales_2024_06)",
        )
        .await;
    assert!(n.is_err() || one(n) == "2");
    let n = sg
        .run(Mode::Simple, "SELECT count(*) FROM sales_2024_06")
        .await;
    assert_eq!(one(n), "1");
    // Until COMMIT, a statement naming the table would be placed by the old map: refused,
    // and the block's DDL rolled back with it.
    let a = sg
        .run(
            Mode::Simple,
            "BEGIN; CREATE TABLE sales_2024_07 PARTITION OF sales FOR VALUES FROM ('2024-07-01') TO ('2024-08-01'); \
             INSERT INTO sales (sale_date, amount) VALUES ('2024-07-05', 1)",
        )
        .await;
    assert_eq!(a.map_err(|f| f.code), Err("0A000".to_string()));
    sg.run(Mode::Simple, "ROLLBACK").await.expect("rollback");
    for sql in [
        "BEGIN",
        "CREATE TABLE sales_2024_08 PARTITION OF sales FOR VALUES FROM ('2024-08-01') TO ('2024-09-01')",
        "ROLLBACK",
    ] {
        sg.run(Mode::Simple, sql).await.expect(sql);
    }
    let n = sg
        .run(
            Mode::Simple,
            "SELECT count(*) FROM shardgate.partitions WHERE name IN ('sales_2024_07', 'sales_2024_08')",
        )
        .await;
    assert_eq!(one(n), "0");
    let n = sg
        .run(
            Mode::Simple,
            "SELECT count(*) FROM pg_class WHERE relname IN ('sales_2024_07', 'sales_2024_08')",
        )
        .await;
    assert_eq!(one(n), "0");
}

/// A second shardgate process on the same workers and catalog routes to a partition the
/// first created, within a second, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_follows_the_catalog() {
    let own = Own::start("part-follow", 3, "", "").await;
    let mut toml = "[server]\nlisten = \"127.0.0.1:0\"\nworker_timeout_secs = 5\n\
                    [[users]]\nname = \"app\"\npassword = \"app-secret\"\n"
        .to_string();
    for (i, p) in own.worker_ports.iter().enumerate() {
        toml += &format!(
            "[[nodes]]\nname = \"w{}\"\nurl = \"postgresql://postgres@127.0.0.1:{p}/app\"\n",
            i + 1
        );
    }
    let cfg = shardgate::config::parse(&toml).expect("config");
    let port = common::runtime()
        .spawn(async move {
            let shared = shardgate::execute::Shared::new(cfg).await.expect("shared");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::spawn(async move {
                let _ = shardgate::server::serve(shared, listener, std::future::pending()).await;
            });
            port
        })
        .await
        .expect("second process");
    let mut first = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("first");
    let mut second = Conn::connect(port, "app", "app-secret", "app")
        .await
        .expect("second");
    for sql in [
        "CREATE TABLE ev (day date NOT NULL, n int) PARTITION BY RANGE (day)",
        "CREATE TABLE ev_a PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')",
        "CREATE TABLE ev_b PARTITION OF ev FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')",
    ] {
        first.run(Mode::Simple, sql).await.expect(sql);
    }
    let started = std::time::Instant::now();
    loop {
        let a = second
            .run(
                Mode::Simple,
                "INSERT INTO ev VALUES ('2024-01-05', 1), ('2024-02-05', 2)",
            )
            .await;
        if a.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the second process did not see the partitions within a second: {a:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let a = first
        .run(Mode::Simple, "SELECT count(*) FROM ev_b")
        .await
        .expect("count");
    assert_eq!(a.rows, vec![vec![Some(b"1".to_vec())]]);
}

/// Time partitions made ahead and dropped behind by shardgate's own functions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_partitions_are_kept_ahead_and_dropped_behind() {
    let own = Own::start("part-time", 3, "", "").await;
    let mut c = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    let one = |a: wire::Outcome| -> String {
        let a = a.expect("answer");
        String::from_utf8_lossy(a.rows[0][0].as_deref().unwrap_or_default()).into_owned()
    };
    c.run(
        Mode::Simple,
        "CREATE TABLE m (d date NOT NULL, v int) PARTITION BY RANGE (d)",
    )
    .await
    .expect("create");
    let made = c
        .run(
            Mode::Simple,
            "SELECT shardgate.create_time_partitions('m', interval '1 month', '2024-06-15'::date, '2024-01-10'::date)",
        )
        .await;
    assert_eq!(one(made), "t");
    let names = c
        .run(
            Mode::Simple,
            "SELECT name, node FROM shardgate.partitions WHERE parent = 'm' ORDER BY name",
        )
        .await
        .expect("catalog");
    let got: Vec<String> = names
        .rows
        .iter()
        .map(|r| String::from_utf8_lossy(r[0].as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(
        got,
        [
            "m_p2024_01",
            "m_p2024_02",
            "m_p2024_03",
            "m_p2024_04",
            "m_p2024_05",
            "m_p2024_06"
        ]
    );
    c.run(
        Mode::Simple,
        "INSERT INTO m VALUES ('2024-01-05', 1), ('2024-06-20', 2), ('2024-02-29', 3)",
    )
    .await
    .expect("insert");
    let more = c
        .run(
            Mode::Simple,
            "SELECT shardgate.create_time_partitions('m', interval '1 month', '2024-08-01'::date)",
        )
        .await;
    assert_eq!(one(more), "t");
    let none = c
        .run(
            Mode::Simple,
            "SELECT shardgate.create_time_partitions('m', interval '1 month', '2024-08-01'::date)",
        )
        .await;
    assert_eq!(one(none), "f");
    let n = c
        .run(
            Mode::Simple,
            "SELECT count(*) FROM shardgate.partitions WHERE parent = 'm'",
        )
        .await;
    assert_eq!(one(n), "8");
    let dropped = c
        .run(
            Mode::Simple,
            "SELECT shardgate.drop_time_partitions('m', older_than => '2024-03-01'::date)",
        )
        .await;
    assert_eq!(one(dropped), "2");
    let left = c.run(Mode::Simple, "SELECT count(*), min(v) FROM m").await;
    assert_eq!(one(left), "1");
    let a = c
        .run(Mode::Simple, "INSERT INTO m VALUES ('2024-01-05', 1)")
        .await;
    assert_eq!(a.map_err(|f| f.code), Err("23514".to_string()));
}

/// A node stopped during partitioning DDL: the statement fails, no node keeps the partition
/// and the catalog does not record it; once the node is back, the same DDL succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioning_ddl_with_a_node_down_changes_nothing() {
    let own = Own::start("part-down", 3, "", "").await;
    let mut sg = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    for sql in [
        "CREATE TABLE d (day date NOT NULL, n int) PARTITION BY RANGE (day)",
        "CREATE TABLE d_1 PARTITION OF d FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')",
    ] {
        sg.run(Mode::Simple, sql).await.expect(sql);
    }
    let create = "CREATE TABLE d_2 PARTITION OF d FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')";
    own.stop_worker(2);
    let a = sg.run(Mode::Simple, create).await;
    assert!(a.is_err(), "{a:?}");
    for i in 0..2 {
        let n: i64 = own
            .worker(i)
            .await
            .query_one("SELECT count(*) FROM pg_class WHERE relname = 'd_2'", &[])
            .await
            .expect("pg_class")
            .get(0);
        assert_eq!(n, 0, "worker {i} kept d_2");
    }
    let n: i64 = own
        .worker(0)
        .await
        .query_one(
            "SELECT count(*) FROM shardgate.partitions WHERE name = 'd_2'",
            &[],
        )
        .await
        .expect("catalog")
        .get(0);
    assert_eq!(n, 0);
    own.start_worker(2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut c = Conn::connect(own.port, "app", "app-secret", "app")
            .await
            .expect("shardgate");
        match c.run(Mode::Simple, create).await {
            Ok(_) => break,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "the DDL still fails with the node back: {e:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    sg = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    sg.run(
        Mode::Simple,
        "INSERT INTO d VALUES ('2024-01-05', 1), ('2024-02-05', 2)",
    )
    .await
    .expect("insert");
    let a = sg
        .run(Mode::Simple, "SELECT count(*) FROM d_2")
        .await
        .expect("count");
    assert_eq!(a.rows, vec![vec![Some(b"1".to_vec())]]);
}
