//! Writes lose nothing (issue 8): every write form and failure runs through shardgate over a
//! hash table spread on three workers and on one plain PostgreSQL holding the same rows (the
//! oracle, database `oracle` on worker 1); each step's command tags or SQLSTATE, the
//! transaction status, and afterwards both tables' whole contents must be the same, the
//! reference table's copies identical on every node, and no prepared transaction left behind.

mod common;
#[path = "common/wire.rs"]
mod wire;

use common::own::Own;
use wire::{Conn, Piped};

const TABLES: &str =
    "[[tables]]\nname = \"h\"\nmethod = \"hash\"\ncolumn = \"k\"\nshards = 6\ntype = \"int8\"\n\n\
[[tables]]\nname = \"r\"\nmethod = \"reference\"\n\n\
[[tables]]\nname = \"d\"\nmethod = \"range\"\ncolumn = \"day\"\ntype = \"date\"\n\
ranges = [ { from = \"MINVALUE\", to = \"2024-01-01\", node = \"w1\" }, \
{ from = \"2024-01-01\", to = \"2024-06-01\", node = \"w2\" }, \
{ from = \"2024-06-01\", to = \"MAXVALUE\", node = \"w3\" } ]\n";

const DDL: &str = "CREATE TABLE h (k int8 PRIMARY KEY, v int NOT NULL CHECK (v >= 0));\
                   CREATE TABLE r (id int PRIMARY KEY, x int);\
                   CREATE TABLE d (day date PRIMARY KEY, v int)";

/// 60 rows over every node; every tenth has v = 5, so `v - 10` fails on some nodes only.
fn baseline() -> String {
    let rows: Vec<String> = (1..=60)
        .map(|k| format!("({k}, {})", if k % 10 == 0 { 5 } else { 20 }))
        .collect();
    format!(
        "TRUNCATE h; TRUNCATE r; TRUNCATE d; INSERT INTO h VALUES {}; INSERT INTO r VALUES (1, 1), (2, 2)",
        rows.join(",")
    )
}

struct Pair {
    own: Own,
    sg: Conn,
    or: Conn,
}

impl Pair {
    async fn start(name: &str) -> Pair {
        Pair::start_with(name, TABLES, DDL).await
    }

    /// Three workers with `tables` in the config, and `ddl` run through shardgate and on the
    /// oracle.
    async fn start_with(name: &str, tables: &str, ddl: &str) -> Pair {
        let own = Own::start_with_tables(name, 3, "", "", tables).await;
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
        for c in [&mut sg, &mut or] {
            c.run(wire::Mode::Simple, ddl).await.expect("ddl");
        }
        Pair { own, sg, or }
    }

    async fn reset(&mut self) {
        let b = baseline();
        for c in [&mut self.sg, &mut self.or] {
            c.run(wire::Mode::Simple, "ROLLBACK").await.ok();
            c.run(wire::Mode::Simple, &b).await.expect("baseline");
        }
    }

    /// Runs `sql` (simple protocol) on both; the outcomes must agree.
    async fn step(&mut self, sql: &str) {
        let a = self.sg.run(wire::Mode::Simple, sql).await;
        let b = self.or.run(wire::Mode::Simple, sql).await;
        let show = |o: &wire::Outcome| match o {
            Ok(a) => format!("ok {} {:?}", a.tag, a.rows),
            Err(f) => format!("error {}", f.code),
        };
        assert_eq!(show(&a), show(&b), "{sql}");
    }

    async fn pipeline(&mut self, stmts: &[&str]) -> Piped {
        let a = self.sg.pipeline(stmts).await.expect("pipeline");
        let b = self.or.pipeline(stmts).await.expect("pipeline");
        assert_eq!(a, b, "{stmts:?}");
        a
    }

    /// Both tables' contents agree, the reference table is the same on every node, and no
    /// worker holds a prepared transaction.
    async fn same_contents(&mut self, what: &str) {
        for q in [
            "SELECT k, v FROM h ORDER BY k",
            "SELECT id, x FROM r ORDER BY id",
            "SELECT to_char(day, 'YYYY-MM-DD BC'), v FROM d ORDER BY day",
        ] {
            let a = self.sg.run(wire::Mode::Simple, q).await.expect(q);
            let b = self.or.run(wire::Mode::Simple, q).await.expect(q);
            assert_eq!(a.rows, b.rows, "{what}: {q}");
        }
        let mut copies = Vec::new();
        for i in 0..3 {
            let w = self.own.worker(i).await;
            let rows = w
                .query("SELECT id, x FROM r ORDER BY id", &[])
                .await
                .expect("r");
            copies.push(
                rows.iter()
                    .map(|r| (r.get::<_, i32>(0), r.get::<_, Option<i32>>(1)))
                    .collect::<Vec<_>>(),
            );
            let n: i64 = w
                .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
                .await
                .expect("prepared")
                .get(0);
            assert_eq!(n, 0, "{what}: prepared transactions left on worker {i}");
        }
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "{what}: reference copies differ: {copies:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocommit_writes_are_atomic_across_nodes() {
    let mut p = Pair::start("writes-auto").await;
    let cases = [
        // A CHECK fails on the nodes holding v = 5 only.
        "UPDATE h SET v = v - 10",
        "UPDATE h SET v = v / (k - 7)",
        "INSERT INTO h VALUES (100, 1), (101, 1), (102, 1), (103, 1), (1, 1)",
        "DELETE FROM h WHERE 10 / (k - 33) > 0",
        "UPDATE h SET v = v + 1",
        "INSERT INTO h VALUES (200, 1), (201, 1), (202, 1), (203, 1)",
        "DELETE FROM h WHERE k > 50",
        "UPDATE r SET x = x + 1",
        "UPDATE r SET x = -x / (id - 2)",
        // INSERT ... SELECT failing midway: one node's COPY hits the CHECK.
        "INSERT INTO h SELECT g, CASE WHEN g = 1050 THEN -1 ELSE 1 END FROM generate_series(1001, 1100) g",
        "INSERT INTO h SELECT g, 1 FROM generate_series(1001, 1100) g",
    ];
    for sql in cases {
        p.reset().await;
        p.step(sql).await;
        p.same_contents(sql).await;
    }
}

/// A multi-row INSERT with parameters, split by node and sent with the client's parameter
/// bytes, is one statement: when one node's part fails (a CHECK, a duplicate key) the other
/// nodes' rows are not kept, outside a block and inside one, as on one PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameterised_multi_row_inserts_are_atomic_across_nodes() {
    let mut p = Pair::start("writes-params").await;
    let sg = p.own.connect().await.expect("shardgate");
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=oracle",
        p.own.worker_ports[0]
    );
    let (or, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("oracle");
    tokio::spawn(conn);
    let sql = "INSERT INTO h VALUES ($1, $2), ($3, $4), ($5, $6), ($7, $8)";
    let cases: [[i64; 8]; 4] = [
        // The last row breaks the CHECK on its node; the first three are on others.
        [100, 1, 101, 1, 102, 1, 103, -1],
        // The first row's node fails first.
        [104, -1, 105, 1, 106, 1, 107, 1],
        // A key that exists already (k = 1) on its node.
        [108, 1, 109, 1, 110, 1, 1, 1],
        [111, 1, 112, 1, 113, 1, 114, 1],
    ];
    let outcome = |r: Result<u64, tokio_postgres::Error>| match r {
        Ok(n) => format!("ok {n}"),
        Err(e) => format!(
            "error {}",
            e.code().map(|c| c.code().to_string()).unwrap_or_default()
        ),
    };
    for in_block in [false, true] {
        for vals in &cases {
            p.reset().await;
            let params: Vec<(i64, i32)> = vals.chunks(2).map(|c| (c[0], c[1] as i32)).collect();
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .flat_map(|(k, v)| {
                    [
                        k as &(dyn tokio_postgres::types::ToSql + Sync),
                        v as &(dyn tokio_postgres::types::ToSql + Sync),
                    ]
                })
                .collect();
            let mut got = Vec::new();
            for c in [&sg, &or] {
                if in_block {
                    c.batch_execute("BEGIN").await.expect("begin");
                }
                let r = outcome(c.execute(sql, &refs).await);
                if in_block {
                    // After an error the block is aborted: COMMIT rolls it back.
                    c.batch_execute("COMMIT").await.expect("commit");
                }
                got.push(r);
            }
            assert_eq!(got[0], got[1], "{vals:?} (in a block: {in_block})");
            p.same_contents(&format!("{vals:?} (in a block: {in_block})"))
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statement_strings_end_where_postgres_ends_them() {
    let mut p = Pair::start("writes-multi").await;
    let cases = [
        "UPDATE h SET v = 1 WHERE k = 2; UPDATE h SET v = -1 WHERE k = 3; COMMIT",
        "UPDATE h SET v = 1 WHERE k = 2; UPDATE h SET v = 1 WHERE k = 3; ROLLBACK",
        "UPDATE h SET v = 1 WHERE k = 2; COMMIT; UPDATE h SET v = 1 WHERE k = 3; SELECT 1/0",
        "UPDATE h SET v = 1 WHERE k = 2; ROLLBACK; UPDATE h SET v = 1 WHERE k = 3",
        "UPDATE h SET v = 1 WHERE k = 2; SAVEPOINT a; UPDATE h SET v = 1 WHERE k = 3",
        "UPDATE h SET v = 1 WHERE k = 2; BEGIN; UPDATE h SET v = 1 WHERE k = 3; COMMIT",
        "UPDATE h SET v = 1 WHERE k = 4; BEGIN; UPDATE h SET v = 1 WHERE k = 5; ROLLBACK",
        "BEGIN; UPDATE h SET v = 2 WHERE k = 2; UPDATE h SET v = 2 WHERE k = 3; COMMIT",
        "INSERT INTO h VALUES (300, 1); INSERT INTO h VALUES (301, 1); INSERT INTO h VALUES (2, 1)",
        "UPDATE r SET x = 9; UPDATE h SET v = -1 WHERE k = 9",
    ];
    for sql in cases {
        p.reset().await;
        p.step(sql).await;
        p.same_contents(sql).await;
    }
    // A BEGIN without COMMIT leaves the block open, statements before it inside.
    p.reset().await;
    p.step("UPDATE h SET v = 3 WHERE k = 2; BEGIN; UPDATE h SET v = 3 WHERE k = 3")
        .await;
    p.step("ROLLBACK").await;
    p.same_contents("open block rolled back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_write_on_every_node_and_commit_together() {
    let mut p = Pair::start("writes-blocks").await;
    let blocks: [&[&str]; 6] = [
        &[
            "BEGIN",
            "UPDATE h SET v = v + 1 WHERE k = 1",
            "UPDATE h SET v = v + 1 WHERE k = 2",
            "UPDATE h SET v = v + 1 WHERE k = 3",
            "INSERT INTO h VALUES (400, 4)",
            "UPDATE r SET x = 7 WHERE id = 1",
            "COMMIT",
        ],
        &[
            "BEGIN",
            "UPDATE h SET v = v + 1",
            "SAVEPOINT a",
            "DELETE FROM h WHERE k < 30",
            "ROLLBACK TO SAVEPOINT a",
            "UPDATE h SET v = 0 WHERE k = 5",
            "RELEASE SAVEPOINT a",
            "COMMIT",
        ],
        &[
            "BEGIN",
            "UPDATE h SET v = 1 WHERE k = 2",
            "UPDATE h SET v = 1 WHERE k = 3",
            "UPDATE h SET v = -1 WHERE k = 4",
            "COMMIT",
        ],
        &["BEGIN", "TRUNCATE h", "UPDATE r SET x = 0", "ROLLBACK"],
        &[
            "BEGIN",
            "SELECT k FROM h WHERE k IN (1, 2, 3) ORDER BY k FOR UPDATE",
            "UPDATE h SET v = 9 WHERE k IN (1, 2, 3)",
            "TRUNCATE r",
            "COMMIT",
        ],
        &[
            "BEGIN ISOLATION LEVEL REPEATABLE READ",
            "SELECT sum(v) FROM h",
            "UPDATE h SET v = v * 2",
            "SELECT sum(v) FROM h",
            "COMMIT",
        ],
    ];
    for b in blocks {
        p.reset().await;
        for sql in b {
            p.step(sql).await;
        }
        p.same_contents(&b.join("; ")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_batches_up_to_sync_are_one_transaction() {
    let mut p = Pair::start("writes-batch").await;
    let batches: [&[&str]; 3] = [
        &[
            "INSERT INTO h VALUES (500, 1)",
            "INSERT INTO h VALUES (501, 1)",
            "INSERT INTO h VALUES (502, 1)",
            "INSERT INTO h VALUES (7, 1)",
        ],
        &[
            "UPDATE h SET v = 3 WHERE k = 1",
            "UPDATE h SET v = 3 WHERE k = 2",
            "UPDATE h SET v = 3 WHERE k = 3",
        ],
        &["UPDATE h SET v = v - 1", "UPDATE h SET v = v - 5"],
    ];
    for b in batches {
        p.reset().await;
        let got = p.pipeline(b).await;
        assert_eq!(got.status, b'I', "{b:?}");
        p.same_contents(&b.join("; ")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_blocks_stay_on_one_node() {
    let mut p = Pair::start("writes-serial").await;
    p.reset().await;
    let sg = &mut p.sg;
    sg.run(wire::Mode::Simple, "BEGIN ISOLATION LEVEL SERIALIZABLE")
        .await
        .expect("begin");
    sg.run(wire::Mode::Simple, "SELECT v FROM h WHERE k = 1")
        .await
        .expect("one node");
    let e = sg
        .run(wire::Mode::Simple, "SELECT sum(v) FROM h")
        .await
        .expect_err("several nodes");
    assert_eq!(e.code, "0A000", "{}", e.message);
    sg.run(wire::Mode::Simple, "ROLLBACK")
        .await
        .expect("rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_read_as_postgres_reads_them() {
    let mut p = Pair::start("writes-keys").await;
    p.reset().await;
    let steps = [
        "INSERT INTO d VALUES ('01/02/2024', 1)",
        "INSERT INTO d VALUES ('March 5, 2024', 2), ('20240210', 3), ('2024-07-01', 4)",
        "INSERT INTO d VALUES ('infinity', 5), ('-infinity', 6), ('4713-01-01 BC', 7)",
        "INSERT INTO d VALUES ('epoch', 8), ('J2451187', 9)",
        "SET DateStyle = 'SQL, DMY'",
        "INSERT INTO d VALUES ('01/07/2024', 10), ('02/01/2024', 11)",
        "SELECT v FROM d WHERE day = '01/07/2024'",
        "RESET DateStyle",
        "INSERT INTO d VALUES ('2024-02-30', 12)",
        "INSERT INTO d VALUES ('garbage', 13)",
        "INSERT INTO d VALUES ('5874898-01-01', 14)",
        "INSERT INTO h VALUES (9223372036854775808, 1)",
        "INSERT INTO h VALUES ('-9223372036854775809', 1)",
        "INSERT INTO h VALUES ('12abc', 1)",
        "INSERT INTO h VALUES (601, 1), (602, 1), (603, 1), (604, 1), (605, 1), (606, 1) RETURNING k, v",
        "INSERT INTO h VALUES (612, 1), (611, 1), (610, 1), (609, 1), (608, 1), (607, 1) RETURNING *",
    ];
    for sql in steps {
        p.step(sql).await;
    }
    p.same_contents("keys").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_of_the_key_move_rows_between_nodes() {
    let mut p = Pair::start("writes-move").await;
    let cases: [&[&str]; 6] = [
        &["UPDATE h SET k = k + 1000 WHERE k <= 20"],
        &["UPDATE h SET k = k * 100, v = v + 1"],
        &["UPDATE h SET v = 0, k = 7 WHERE k = 8"],
        // A duplicate key on the new node: nothing moves.
        &["UPDATE h SET k = 1 WHERE k = 2"],
        &["UPDATE h SET k = k * 1000 + 1 / (k - 40) WHERE k > 30"],
        &[
            "BEGIN",
            "UPDATE h SET k = k + 500 WHERE k < 10",
            "SELECT count(*) FROM h WHERE k > 500",
            "ROLLBACK",
        ],
    ];
    for steps in cases {
        p.reset().await;
        for sql in steps {
            p.step(sql).await;
        }
        p.same_contents(&steps.join("; ")).await;
    }
    let e =
        p.sg.run(
            wire::Mode::Simple,
            "EXPLAIN ANALYZE UPDATE h SET k = 5 WHERE k = 6",
        )
        .await
        .expect_err("refused");
    assert_eq!(e.code, "0A000", "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_on_one_node_keeps_nothing() {
    let mut p = Pair::start("writes-timeout").await;
    p.reset().await;
    for sql in [
        "SET statement_timeout = '500ms'",
        // The node holding k = 7 sleeps past the timeout; the others finish at once.
        "UPDATE h SET v = v + CASE WHEN k = 7 THEN (SELECT 1 FROM pg_sleep(3)) ELSE 1 END",
        "RESET statement_timeout",
    ] {
        p.step(sql).await;
    }
    p.same_contents("statement_timeout on one node").await;
}

const SERIAL_TABLES: &str =
    "[[tables]]\nname = \"s\"\nmethod = \"hash\"\ncolumn = \"id\"\nshards = 6\n\n\
[[tables]]\nname = \"e\"\nmethod = \"hash\"\ncolumn = \"k\"\nshards = 6\n\n\
[[tables]]\nname = \"rs\"\nmethod = \"reference\"\n";

const SERIAL_DDL: &str = "CREATE TABLE s (id serial PRIMARY KEY, name text);\
     CREATE TABLE e (id bigserial, n int GENERATED BY DEFAULT AS IDENTITY, k int8 NOT NULL);\
     CREATE TABLE rs (id serial PRIMARY KEY, x int)";

/// Serial, bigserial and identity columns, as key or not, left out or DEFAULT: the ids are
/// PostgreSQL's (one sequence, dense, in row order), in RETURNING too, with no id on two
/// nodes; a rolled-back block still uses its ids up, as PostgreSQL's sequences do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_ids_are_unique_across_nodes() {
    let Pair {
        own,
        mut sg,
        mut or,
    } = Pair::start_with("writes-ids", SERIAL_TABLES, SERIAL_DDL).await;
    let steps: [(wire::Mode, &str); 19] = [
        // currval and lastval are the session's own, as on one PostgreSQL.
        (
            wire::Mode::Simple,
            "SELECT currval(pg_get_serial_sequence('s', 'id'))",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO s (name) VALUES ('a'), ('b'), ('c') RETURNING id, name",
        ),
        (
            wire::Mode::Simple,
            "SELECT currval(pg_get_serial_sequence('s', 'id')), lastval()",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO s VALUES (DEFAULT, 'd') RETURNING *",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO s (id, name) VALUES (100, 'x'), (DEFAULT, 'y') RETURNING id",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO s (name) SELECT 'g' || g FROM generate_series(1, 20) g",
        ),
        (
            wire::Mode::ExtText,
            "INSERT INTO s (name) VALUES ('ext') RETURNING id",
        ),
        (
            wire::Mode::ExtBinary,
            "INSERT INTO s (name) VALUES ('bin') RETURNING id",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO e (k) VALUES (1), (2), (3) RETURNING id, n, k",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO e (k, n) VALUES (4, DEFAULT), (5, 50) RETURNING *",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO e (k) SELECT g FROM generate_series(10, 40) g",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO rs (x) VALUES (1), (2) RETURNING id",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO rs (x) SELECT g FROM generate_series(3, 5) g",
        ),
        (wire::Mode::Simple, "BEGIN"),
        (
            wire::Mode::Simple,
            "INSERT INTO s (name) VALUES ('t1'), ('t2') RETURNING id",
        ),
        (
            wire::Mode::Simple,
            "INSERT INTO e (k) VALUES (77) RETURNING id, n",
        ),
        (wire::Mode::Simple, "ROLLBACK"),
        (
            wire::Mode::Simple,
            "INSERT INTO s (name) VALUES ('after') RETURNING id",
        ),
        (
            wire::Mode::ExtText,
            "SELECT currval(pg_get_serial_sequence('s', 'id')), lastval()",
        ),
    ];
    for (mode, sql) in steps {
        let a = sg.run(mode, sql).await;
        let b = or.run(mode, sql).await;
        let show = |o: &wire::Outcome| match o {
            Ok(a) => format!("ok {} {:?}", a.tag, a.rows),
            Err(f) => format!("error {} {}", f.code, f.message),
        };
        assert_eq!(show(&a), show(&b), "{sql}");
    }
    // A driver's parameters, with the filled id appended to them.
    let client = own.connect().await.expect("client");
    let got: i32 = client
        .query_one("INSERT INTO s (name) VALUES ($1) RETURNING id", &[&"param"])
        .await
        .expect("insert with a parameter")
        .get(0);
    or.run(wire::Mode::Simple, "INSERT INTO s (name) VALUES ('param')")
        .await
        .expect("oracle");
    for q in [
        "SELECT id, name FROM s ORDER BY id",
        "SELECT id, n, k FROM e ORDER BY id",
        "SELECT id, x FROM rs ORDER BY id",
    ] {
        let a = sg.run(wire::Mode::Simple, q).await.expect(q);
        let b = or.run(wire::Mode::Simple, q).await.expect(q);
        assert_eq!(a.rows, b.rows, "{q}");
    }
    assert_eq!(got, 31, "the parameter insert's id");
    // No id of a table on two nodes; every node has the whole reference table.
    for q in [
        "SELECT id::int8 FROM s",
        "SELECT id FROM e",
        "SELECT n::int8 FROM e",
    ] {
        let mut ids = Vec::new();
        for i in 0..3 {
            let w = own.worker(i).await;
            for r in w.query(q, &[]).await.expect(q) {
                ids.push(r.get::<_, i64>(0));
            }
        }
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "{q}: an id is on two nodes");
    }
    for i in 0..3 {
        let w = own.worker(i).await;
        let copies: i64 = w
            .query_one("SELECT count(*) FROM rs", &[])
            .await
            .expect("rs")
            .get(0);
        assert_eq!(copies, 5, "reference copy on worker {i}");
    }
}

/// SQL-level PREPARE / EXECUTE / DEALLOCATE answer as on one PostgreSQL: each EXECUTE is
/// routed by its own arguments, fills serial ids, and errors carry PostgreSQL's codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prepare_and_execute_as_on_postgres() {
    let Pair {
        own: _own,
        mut sg,
        mut or,
    } = Pair::start_with("writes-prepare", SERIAL_TABLES, SERIAL_DDL).await;
    for sql in [
        "EXECUTE nope(1)",
        "PREPARE ins (text) AS INSERT INTO s (name) VALUES ($1) RETURNING id, name",
        "PREPARE ins (text) AS SELECT 1",
        "EXECUTE ins('p1')",
        "EXECUTE ins('p2')",
        "EXECUTE ins('p3')",
        "PREPARE get (int) AS SELECT id, name FROM s WHERE id = $1",
        "EXECUTE get(1)",
        "EXECUTE get(3)",
        "EXECUTE get(1, 2)",
        "PREPARE cnt AS SELECT count(*), count(DISTINCT id), max(name) FROM s",
        "EXECUTE cnt",
        "PREPARE upd (int, text) AS UPDATE s SET name = $2 WHERE id = $1",
        "EXECUTE upd(2, 'two')",
        "EXECUTE get(2)",
        "DEALLOCATE get",
        "EXECUTE get(1)",
        "DEALLOCATE PREPARE get",
        "DEALLOCATE ALL",
        "EXECUTE cnt",
    ] {
        let a = sg.run(wire::Mode::Simple, sql).await;
        let b = or.run(wire::Mode::Simple, sql).await;
        let show = |o: &wire::Outcome| match o {
            Ok(a) => format!("ok {} {:?}", a.tag, a.rows),
            Err(f) => format!("error {} {}", f.code, f.message),
        };
        assert_eq!(show(&a), show(&b), "{sql}");
    }
}
