//! DDL over distributed tables (issue 9): what PostgreSQL would accept but a node alone
//! cannot make true across nodes is refused with 0A000 at CREATE, never run on a part of the
//! rows: tables created from a query's rows (CREATE TABLE AS, SELECT INTO, views), foreign keys
//! other than between co-located keys or to reference tables, DO blocks; a function over
//! distributed tables is created with a WARNING.

mod common;
#[path = "common/wire.rs"]
mod wire;

use common::own::Own;
use futures::StreamExt;
use wire::{Conn, Mode};

const TABLES: &str =
    "[[tables]]\nname = \"us\"\nmethod = \"hash\"\ncolumn = \"id\"\nshards = 6\n\n\
[[tables]]\nname = \"ev\"\nmethod = \"hash\"\ncolumn = \"user_id\"\nshards = 6\n\n\
[[tables]]\nname = \"bad\"\nmethod = \"hash\"\ncolumn = \"k\"\nshards = 6\n\n\
[[tables]]\nname = \"countries\"\nmethod = \"reference\"\n\n\
[[tables]]\nname = \"far\"\nmethod = \"range\"\ncolumn = \"k\"\ntype = \"int8\"\n\
ranges = [ { from = \"MINVALUE\", to = \"100\", node = \"w2\" }, \
{ from = \"100\", to = \"MAXVALUE\", node = \"w3\" } ]\n";

async fn ok(c: &mut Conn, sql: &str) -> wire::Answer {
    match c.run(Mode::Simple, sql).await {
        Ok(a) => a,
        Err(f) => panic!("{sql}: {} {}", f.code, f.message),
    }
}

async fn refused(c: &mut Conn, sql: &str, words: &str) {
    match c.run(Mode::Simple, sql).await {
        Ok(a) => panic!("{sql}: ran ({})", a.tag),
        Err(f) => {
            assert_eq!(f.code, "0A000", "{sql}: {}", f.message);
            assert!(f.message.contains(words), "{sql}: {}", f.message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_node_cannot_make_true_is_refused_at_create() {
    let own = Own::start_with_tables("ddl-refused", 3, "", "", TABLES).await;
    let mut c = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    // Foreign keys to reference tables and between co-located keys hold on every node.
    ok(&mut c, "CREATE TABLE countries (code text PRIMARY KEY)").await;
    ok(
        &mut c,
        "CREATE TABLE us (id int8 PRIMARY KEY, country text REFERENCES countries (code))",
    )
    .await;
    ok(
        &mut c,
        "CREATE TABLE ev (user_id int8 REFERENCES us, id int8, PRIMARY KEY (user_id, id))",
    )
    .await;
    ok(
        &mut c,
        "ALTER TABLE ev ADD CONSTRAINT ev_us FOREIGN KEY (user_id) REFERENCES us (id)",
    )
    .await;
    refused(
        &mut c,
        "CREATE TABLE bad (k int8 PRIMARY KEY, uid int8 REFERENCES us (id))",
        "foreign key",
    )
    .await;
    refused(
        &mut c,
        "CREATE TABLE loc (x int8 REFERENCES us (id))",
        "foreign key",
    )
    .await;
    refused(
        &mut c,
        "CREATE TABLE loc2 (x int8, FOREIGN KEY (x) REFERENCES ev (user_id))",
        "foreign key",
    )
    .await;
    ok(&mut c, "INSERT INTO countries VALUES ('DE'), ('FR')").await;
    let rows: Vec<String> = (1..=30)
        .map(|i| format!("({i}, '{}')", if i % 2 == 0 { "DE" } else { "FR" }))
        .collect();
    ok(
        &mut c,
        &format!("INSERT INTO us VALUES {}", rows.join(", ")),
    )
    .await;
    ok(
        &mut c,
        "INSERT INTO ev SELECT id, 1 FROM generate_series(1, 30) id",
    )
    .await;
    // A table from a query's rows: the query merged across nodes as any client query, the
    // table on the default node with every row.
    let a = ok(&mut c, "CREATE TABLE copy1 AS SELECT * FROM us").await;
    assert_eq!(a.tag, "SELECT 30");
    let a = ok(&mut c, "SELECT * INTO copy2 FROM us WHERE id > 10").await;
    assert_eq!(a.tag, "SELECT 20");
    let a = ok(
        &mut c,
        "CREATE TABLE copy3 AS SELECT country, count(*) FROM us GROUP BY country",
    )
    .await;
    assert_eq!(a.tag, "SELECT 2");
    let w0 = own.worker(0).await;
    let held: Vec<(String, i64)> = w0
        .query("SELECT country, count FROM copy3 ORDER BY 1", &[])
        .await
        .expect("copy3 on the default node")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(held, vec![("DE".into(), 15), ("FR".into(), 15)]);
    let n: i64 = w0
        .query_one(
            "SELECT count(*) + (SELECT count(*) FROM copy2) FROM copy1",
            &[],
        )
        .await
        .expect("copies")
        .get(0);
    assert_eq!(n, 50);
    // Rolled back with the block; refused where shardgate cannot make it yet.
    ok(&mut c, "BEGIN").await;
    ok(&mut c, "CREATE TABLE copy6 AS SELECT * FROM us").await;
    ok(&mut c, "ROLLBACK").await;
    match c.run(Mode::Simple, "SELECT * FROM copy6").await {
        Err(f) => assert_eq!(f.code, "42P01", "{}", f.message),
        Ok(a) => panic!("copy6 outlived its ROLLBACK: {}", a.tag),
    }
    refused(
        &mut c,
        "CREATE TEMP TABLE copy7 AS SELECT * FROM us",
        "CREATE TABLE ... AS",
    )
    .await;
    match c
        .run(Mode::ExtText, "CREATE TABLE copy8 AS SELECT * FROM us")
        .await
    {
        Err(f) => assert_eq!(f.code, "0A000", "{}", f.message),
        Ok(a) => panic!("extended CREATE TABLE AS ran: {}", a.tag),
    }
    refused(
        &mut c,
        "CREATE VIEW v AS SELECT * FROM us",
        "distributed table",
    )
    .await;
    // A materialized view: a real one on the default node, its rows merged; REFRESH reads
    // the nodes again.
    let a = ok(
        &mut c,
        "CREATE MATERIALIZED VIEW mv AS SELECT country, count(*) AS n FROM us GROUP BY country",
    )
    .await;
    assert_eq!(a.tag, "SELECT 2");
    ok(&mut c, "INSERT INTO us VALUES (31, 'DE')").await;
    let a = ok(&mut c, "REFRESH MATERIALIZED VIEW mv").await;
    assert_eq!(a.tag, "REFRESH MATERIALIZED VIEW");
    let a = ok(&mut c, "SELECT n FROM mv WHERE country = 'DE'").await;
    assert_eq!(a.rows, vec![vec![Some(b"16".to_vec())]]);
    ok(&mut c, "DELETE FROM us WHERE id = 31").await;
    ok(&mut c, "DROP MATERIALIZED VIEW mv").await;
    let left: i64 = w0
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'shardgate_views'",
            &[],
        )
        .await
        .expect("views' rows")
        .get(0);
    assert_eq!(left, 0);
    ok(&mut c, "CREATE TABLE copy4 AS SELECT * FROM countries").await;
    let on_default = w0
        .query_one("SELECT id FROM us ORDER BY id LIMIT 1", &[])
        .await
        .expect("a row on the default node")
        .get::<_, i64>(0);
    ok(
        &mut c,
        &format!("CREATE TABLE copy5 AS SELECT * FROM us WHERE id = {on_default}"),
    )
    .await;
    let a = ok(&mut c, "SELECT count(*) FROM copy5").await;
    assert_eq!(a.rows, vec![vec![Some(b"1".to_vec())]]);
    // A DO block runs inside one node.
    refused(
        &mut c,
        "DO $$ BEGIN UPDATE us SET country = 'FR'; END $$",
        "distributed table",
    )
    .await;
    let a = ok(&mut c, "SELECT count(*) FROM us WHERE country = 'DE'").await;
    assert_eq!(a.rows, vec![vec![Some(b"15".to_vec())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_over_distributed_tables_is_created_with_a_warning() {
    let own = Own::start_with_tables("ddl-function", 3, "", "", TABLES).await;
    let dsn = format!(
        "host=127.0.0.1 port={} user=app password=app-secret dbname=app",
        own.port
    );
    let (client, mut conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(n) = m {
                let _ = tx.send((n.severity().to_string(), n.message().to_string()));
            }
        }
    });
    client
        .batch_execute("CREATE TABLE us (id int8 PRIMARY KEY, country text)")
        .await
        .expect("create");
    client
        .batch_execute(
            "CREATE FUNCTION n_us() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM us $$",
        )
        .await
        .expect("create function");
    let (severity, message) = rx.recv().await.expect("a notice");
    assert_eq!(severity, "WARNING");
    assert!(message.contains("\"us\""), "{message}");
    client
        .batch_execute("CREATE FUNCTION two() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$")
        .await
        .expect("create function");
    assert!(
        rx.try_recv().is_err(),
        "a warning for a function over no table"
    );
    // Tutorial 002's create_monthly_partition: DDL built at run time.
    client
        .batch_execute(
            "CREATE FUNCTION mk(tbl text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN \
             EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_x', tbl); END $$",
        )
        .await
        .expect("create function");
    let (severity, message) = rx.recv().await.expect("a notice");
    assert_eq!(severity, "WARNING");
    assert!(message.contains("built at run time"), "{message}");
}

/// A table with no shard on the default node: merges (described there), catalog queries and
/// DDL find it, since every node holds its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_shard_on_the_default_node_is_whole() {
    let own = Own::start_with_tables("ddl-far", 3, "", "", TABLES).await;
    let mut c = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    ok(&mut c, "CREATE TABLE far (k int8 PRIMARY KEY, g text)").await;
    ok(
        &mut c,
        "INSERT INTO far SELECT k, 'g' || (k % 3) FROM generate_series(1, 200) k",
    )
    .await;
    for (mode, sql, want) in [
        (Mode::Simple, "SELECT count(*) FROM far", vec!["200"]),
        (Mode::ExtText, "SELECT count(*) FROM far", vec!["200"]),
        (
            Mode::Simple,
            "SELECT DISTINCT g FROM far ORDER BY g",
            vec!["g0", "g1", "g2"],
        ),
        (
            Mode::Simple,
            "SELECT count(*) FROM pg_class WHERE relname = 'far'",
            vec!["1"],
        ),
    ] {
        let a = match c.run(mode, sql).await {
            Ok(a) => a,
            Err(f) => panic!("{sql}: {} {}", f.code, f.message),
        };
        let got: Vec<String> = a
            .rows
            .iter()
            .filter_map(|r| r[0].clone())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect();
        assert_eq!(got, want, "{sql}");
    }
    ok(&mut c, "CREATE INDEX far_g ON far (g)").await;
    ok(&mut c, "ALTER TABLE far ADD COLUMN z int").await;
    ok(&mut c, "TRUNCATE far").await;
    ok(&mut c, "DROP TABLE far").await;
}

/// A table or materialized view made from rows of several nodes, with a node down: the
/// statement fails whole; nothing is left on the default node, and a REFRESH keeps the view's
/// rows as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_from_rows_with_a_node_down_leaves_nothing() {
    let own = Own::start_with_tables("ddl-made-down", 3, "", "", TABLES).await;
    let mut c = Conn::connect(own.port, "app", "app-secret", "app")
        .await
        .expect("shardgate");
    ok(
        &mut c,
        "CREATE TABLE us (id int8 PRIMARY KEY, country text)",
    )
    .await;
    let rows: Vec<String> = (1..=30).map(|i| format!("({i}, 'DE')")).collect();
    ok(
        &mut c,
        &format!("INSERT INTO us VALUES {}", rows.join(", ")),
    )
    .await;
    ok(
        &mut c,
        "CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM us",
    )
    .await;
    own.stop_worker(2);
    for sql in [
        "CREATE TABLE cp AS SELECT * FROM us",
        "CREATE MATERIALIZED VIEW mv2 AS SELECT count(*) AS n FROM us",
        "REFRESH MATERIALIZED VIEW mv",
    ] {
        let a = c.run(Mode::Simple, sql).await;
        assert!(a.is_err(), "{sql}: {a:?}");
    }
    let w0 = own.worker(0).await;
    let left: i64 = w0
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname IN ('cp', 'mv2')",
            &[],
        )
        .await
        .expect("pg_class")
        .get(0);
    assert_eq!(left, 0);
    let n: i64 = w0
        .query_one("SELECT n FROM mv", &[])
        .await
        .expect("mv")
        .get(0);
    assert_eq!(n, 30);
}
