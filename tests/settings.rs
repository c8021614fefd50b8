//! Session settings and clocks across nodes, as one PostgreSQL session has them (issue 12's
//! "session settings" class, issue 10's SET semantics): a SET undone by ROLLBACK or ROLLBACK TO
//! is undone on every node; SET LOCAL and set_config reach every node the session uses;
//! startup `options` apply; now() is one value per transaction across nodes; a connection
//! that holds session state (a temp table) takes part in transaction blocks.

mod common;

use common::own::Own;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The distinct values `expr` has on every node of table t (a scatter over all of them).
async fn everywhere(c: &Client, expr: &str) -> Vec<String> {
    let sql = format!("SELECT DISTINCT {expr} FROM t");
    let mut out = Vec::new();
    for m in c.simple_query(&sql).await.expect(&sql) {
        if let SimpleQueryMessage::Row(r) = m {
            out.push(r.get(0).unwrap_or("NULL").to_string());
        }
    }
    out
}

async fn run(c: &Client, sql: &str) {
    c.batch_execute(sql).await.expect(sql);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_follow_transactions_on_every_node() {
    let own = Own::start("settings-txn", 3, "", "").await;
    let c = own.connect().await.expect("connect");
    let style = "current_setting('DateStyle')";
    assert_eq!(everywhere(&c, style).await, ["ISO, MDY"]);

    // A SET inside a rolled-back block is undone everywhere.
    run(&c, "BEGIN").await;
    run(&c, "SET DateStyle = 'SQL, DMY'").await;
    assert_eq!(everywhere(&c, style).await, ["SQL, DMY"]);
    run(&c, "ROLLBACK").await;
    assert_eq!(everywhere(&c, style).await, ["ISO, MDY"], "after ROLLBACK");

    // ROLLBACK TO undoes what followed the savepoint; COMMIT keeps the rest.
    run(&c, "BEGIN").await;
    run(&c, "SET DateStyle = 'SQL, DMY'").await;
    run(&c, "SAVEPOINT a").await;
    run(&c, "SET DateStyle = 'German'").await;
    assert_eq!(everywhere(&c, style).await, ["German, DMY"]);
    run(&c, "ROLLBACK TO SAVEPOINT a").await;
    assert_eq!(
        everywhere(&c, style).await,
        ["SQL, DMY"],
        "after ROLLBACK TO"
    );
    run(&c, "COMMIT").await;
    assert_eq!(everywhere(&c, style).await, ["SQL, DMY"], "after COMMIT");
    run(&c, "RESET DateStyle").await;
    assert_eq!(everywhere(&c, style).await, ["ISO, MDY"]);

    // SET LOCAL reaches every node of the block, and ends with it.
    run(&c, "BEGIN").await;
    run(&c, "SET LOCAL DateStyle = 'German'").await;
    assert_eq!(everywhere(&c, style).await, ["German, DMY"], "SET LOCAL");
    run(&c, "COMMIT").await;
    assert_eq!(everywhere(&c, style).await, ["ISO, MDY"]);

    // set_config is SET's function form, local or not.
    run(&c, "SELECT set_config('TimeZone', 'UTC', false)").await;
    assert_eq!(everywhere(&c, "current_setting('TimeZone')").await, ["UTC"]);
    run(&c, "BEGIN").await;
    run(&c, "SELECT set_config('DateStyle', 'German', true)").await;
    assert_eq!(
        everywhere(&c, style).await,
        ["German, DMY"],
        "set_config local"
    );
    run(&c, "COMMIT").await;
    assert_eq!(everywhere(&c, style).await, ["ISO, MDY"]);

    // Nothing of this reaches another session.
    let d = own.connect().await.expect("connect");
    assert_eq!(everywhere(&d, style).await, ["ISO, MDY"]);
    assert_ne!(everywhere(&d, "current_setting('TimeZone')").await, ["UTC"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_options_apply_on_every_node() {
    let own = Own::start("settings-options", 3, "", "").await;
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(own.port)
        .user("app")
        .password("app-secret")
        .dbname("app")
        .options("-c TimeZone=UTC -c DateStyle=SQL,DMY");
    let (c, conn) = cfg.connect(NoTls).await.expect("connect with options");
    tokio::spawn(conn);
    assert_eq!(everywhere(&c, "current_setting('TimeZone')").await, ["UTC"]);
    assert_eq!(
        everywhere(&c, "current_setting('DateStyle')").await,
        ["SQL, DMY"]
    );
    let bad = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(own.port)
        .user("app")
        .password("app-secret")
        .dbname("app")
        .options("-x")
        .connect(NoTls)
        .await;
    assert!(bad.is_err(), "an option PostgreSQL refuses is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clock_and_held_connections_in_blocks() {
    let own = Own::start("settings-clock", 3, "", "").await;
    let c = own.connect().await.expect("connect");
    assert_eq!(
        everywhere(&c, "now()").await.len(),
        1,
        "one now() per statement"
    );
    assert_eq!(everywhere(&c, "current_date").await.len(), 1);
    run(&c, "BEGIN").await;
    let first = everywhere(&c, "now()").await;
    run(&c, "SELECT pg_sleep(0.05)").await;
    assert_eq!(
        everywhere(&c, "now()").await,
        first,
        "now() is the block's start"
    );
    assert_eq!(everywhere(&c, "statement_timestamp() > now()").await, ["t"]);
    run(&c, "COMMIT").await;

    // A temp table pins its connection; that connection takes part in blocks.
    run(&c, "CREATE TEMP TABLE tt (x int)").await;
    run(&c, "BEGIN; INSERT INTO tt VALUES (1)").await;
    run(&c, "ROLLBACK").await;
    let n = c
        .query_one("SELECT count(*) FROM tt", &[])
        .await
        .expect("tt");
    assert_eq!(n.get::<_, i64>(0), 0, "the rolled-back insert is gone");
    run(&c, "BEGIN").await;
    run(&c, "INSERT INTO tt VALUES (1)").await;
    run(&c, "COMMIT").await;
    let n = c
        .query_one("SELECT count(*) FROM tt", &[])
        .await
        .expect("tt");
    assert_eq!(
        n.get::<_, i64>(0),
        1,
        "committed, and the table is still the session's"
    );
}

/// Every row's first column, one per line.
async fn lines(c: &Client, sql: &str) -> String {
    let mut out = String::new();
    for m in c.simple_query(sql).await.expect(sql) {
        if let SimpleQueryMessage::Row(r) = m {
            out.push_str(r.get(0).unwrap_or("NULL"));
            out.push('\n');
        }
    }
    out
}

/// One row of a simple query, its columns joined with `|`.
async fn one_row(c: &Client, sql: &str) -> String {
    for m in c.simple_query(sql).await.expect(sql) {
        if let SimpleQueryMessage::Row(r) = m {
            return (0..r.len())
                .map(|i| r.get(i).unwrap_or("NULL"))
                .collect::<Vec<_>>()
                .join("|");
        }
    }
    panic!("{sql}: no row");
}

/// A key of t on the default node: there, in a block, the session's statements and its look
/// at pg_prepared_statements share one worker backend.
async fn key_on_default_node(c: &Client) -> i64 {
    let home = lines(c, "EXPLAIN SELECT 1").await;
    let home = home.split("node=").nth(1).expect(&home).split(' ').next();
    let home = home.expect("node name").to_string();
    for id in 1..200 {
        let plan = lines(c, &format!("EXPLAIN SELECT v FROM t WHERE id = {id}")).await;
        if plan.contains(&format!("node={home} ")) {
            return id;
        }
    }
    panic!("no key on the default node");
}

/// Issue 11: a prepared statement routed to one shard runs on the worker's partitioned table
/// with a generic plan (pruned at executor start-up), not planned again per execution as
/// PostgreSQL's `auto` does there; a session's own plan_cache_mode still wins, and RESET
/// comes back to shardgate's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_prepared_statements_get_generic_plans_on_the_workers() {
    let own = Own::start("settings-plans", 3, "", "").await;
    let c = own.connect().await.expect("connect");
    let mode = "current_setting('plan_cache_mode')";
    assert_eq!(everywhere(&c, mode).await, ["force_generic_plan"]);
    let key = key_on_default_node(&c).await;
    let text = "SELECT v FROM t WHERE id = $1";
    let plans = format!(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = '{text}'"
    );
    let stmt = c.prepare(text).await.expect("prepare");
    run(&c, "BEGIN").await;
    for _ in 0..3 {
        c.query(&stmt, &[&key]).await.expect("lookup");
    }
    assert_eq!(one_row(&c, &plans).await, "3|0", "generic plans only");
    run(&c, "COMMIT").await;

    run(&c, "SET plan_cache_mode = force_custom_plan").await;
    assert_eq!(everywhere(&c, mode).await, ["force_custom_plan"]);
    run(&c, "BEGIN").await;
    for _ in 0..2 {
        c.query(&stmt, &[&key]).await.expect("lookup");
    }
    assert_eq!(one_row(&c, &plans).await, "3|2", "the session's SET wins");
    run(&c, "COMMIT").await;
    run(&c, "RESET plan_cache_mode").await;
    assert_eq!(everywhere(&c, mode).await, ["force_generic_plan"]);
}

/// A node URL's `options` (libpq's startup settings, percent-encoded) reach the data path's
/// worker sessions after shardgate's own, so they win over `worker_plan_cache_mode`; a
/// session's SET still wins over both, and RESET comes back to the URL's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_url_options_set_the_worker_sessions() {
    let url = |p: u16| {
        format!(
            "postgresql://postgres@127.0.0.1:{p}/app?options=-c%20work_mem%3D1234kB%20-c%20plan_cache_mode%3Dauto"
        )
    };
    let own = Own::start_custom("settings-url-options", 2, "", "", "", &url, &|_, _| {}).await;
    let c = own.connect().await.expect("connect");
    let mem = "current_setting('work_mem')";
    assert_eq!(everywhere(&c, mem).await, ["1234kB"]);
    let mode = "current_setting('plan_cache_mode')";
    assert_eq!(
        everywhere(&c, mode).await,
        ["auto"],
        "the URL's setting wins"
    );
    run(&c, "SET work_mem = '2MB'").await;
    assert_eq!(everywhere(&c, mem).await, ["2MB"], "the session's SET wins");
    run(&c, "RESET work_mem").await;
    assert_eq!(everywhere(&c, mem).await, ["1234kB"], "RESET");
}

/// A simple query's answer as a client sees it: rows, or the error with its position.
async fn answer(c: &Client, sql: &str) -> String {
    match c.simple_query(sql).await {
        Ok(ms) => ms
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL"))
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => match e.as_db_error() {
            Some(d) => format!("{} {} at {:?}", d.code().code(), d.message(), d.position()),
            None => e.to_string(),
        },
    }
}

/// Issue 11: a simple-protocol keyed SELECT runs on its worker as a prepared statement of its
/// shape, its literals bound as parameters typed as PostgreSQL types the literals, so the
/// worker plans it once per connection; the client gets what the text itself gets (the same
/// statement inside a block, where it runs as text): rows, errors with their positions, and
/// a changed table's new row type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_keyed_selects_run_prepared_on_the_workers() {
    let own = Own::start("settings-simple-prepared", 3, "pool_size = 1", "").await;
    let c = own.connect().await.expect("connect");
    let key = key_on_default_node(&c).await;
    let shape = "SELECT v FROM t WHERE id = $1";
    let sql = format!("SELECT v FROM t WHERE id = {key}");
    for _ in 0..3 {
        assert_eq!(answer(&c, &sql).await, format!("v{key}"));
    }
    let plans = format!(
        "SELECT count(*), sum(generic_plans) FROM pg_prepared_statements WHERE statement = '{shape}'"
    );
    run(&c, "BEGIN").await;
    assert_eq!(
        one_row(&c, &plans).await,
        "1|3",
        "one statement, planned once"
    );
    let told = format!("Runs prepared on the node as: {shape}");
    let explain = format!("EXPLAIN {sql}");
    assert!(
        !lines(&c, &explain).await.contains(&told),
        "in a block: as text"
    );
    run(&c, "COMMIT").await;
    assert!(lines(&c, &explain).await.contains(&told), "EXPLAIN tells");

    let queries = [
        format!("SELECT v FROM t WHERE id = '{key}'"),
        format!("SELECT v FROM t WHERE id = {key}.0"),
        format!("SELECT v FROM t WHERE id = {key} AND v <> 'x' ORDER BY v LIMIT 5 OFFSET 0"),
        format!("SELECT id, v FROM t WHERE id IN ({key}, {key}) AND v BETWEEN 'a' AND 'z'"),
        format!("SELECT v FROM t WHERE id = {key} AND v = 5"),
        format!("SELECT v FROM t WHERE id = {key} AND v = 'v{key}' AND id < 2147483648"),
        format!("SELECT v, 'x' FROM t WHERE id = {key}"),
        format!("SELECT v FROM t WHERE id = {key} AND v::int8 > 0"),
        format!("SELECT v FROM t WHERE id = {key} AND id = 'x'"),
        format!("SELECT v FROM t WHERE id = -{key}"),
        format!("SELECT id FROM t WHERE id IN (-1, {key}) AND id > -2147483648"),
    ];
    for q in &queries {
        let prepared = answer(&c, q).await;
        run(&c, "BEGIN").await;
        let text = answer(&c, q).await;
        run(&c, "ROLLBACK").await;
        assert_eq!(prepared, text, "{q}");
    }

    // A table whose row type changed: the worker's cached plan is refused (0A000) and the
    // statement runs again as text, with the new column.
    let star = format!("SELECT * FROM t WHERE id = {key}");
    assert_eq!(answer(&c, &star).await, format!("{key}|v{key}"));
    run(&c, "ALTER TABLE t ADD COLUMN w int DEFAULT 7").await;
    assert_eq!(answer(&c, &star).await, format!("{key}|v{key}|7"));
    assert_eq!(answer(&c, &star).await, format!("{key}|v{key}|7"));
}
