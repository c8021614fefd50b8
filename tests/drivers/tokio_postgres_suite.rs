//! tokio-postgres's suite, as the other drivers' scripts: the same steps against shardgate and
//! against the oracle give a transcript each, which must be identical. Values are printed as
//! the bytes PostgreSQL sent (tokio-postgres asks for binary results of every type), so the
//! binary form of every common type is compared exactly.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

// Values are read as they came: their binary bytes, or NULL.
use super::common::diff::Raw;

const COLS: &str = "k, v, n, f, b, d, ts, u, j, ba, arr";

fn render(rows: &[tokio_postgres::Row]) -> String {
    let mut out = Vec::new();
    for r in rows {
        let mut vals = Vec::new();
        for i in 0..r.len() {
            let v = match r.try_get::<_, Raw>(i) {
                Ok(Raw(Some(b))) => format!(
                    "{}:{}",
                    r.columns()[i].type_().name(),
                    b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                ),
                Ok(Raw(None)) => "NULL".into(),
                Err(e) => format!("?{e}"),
            };
            vals.push(v);
        }
        out.push(format!("({})", vals.join(", ")));
    }
    out.join(" ")
}

fn failure(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {}", d.code().code(), d.message()),
        None => format!("not a database error: {e}"),
    }
}

pub struct Target {
    pub port: u16,
    pub user: &'static str,
    pub password: &'static str,
    pub db: &'static str,
}

async fn connect(t: &Target) -> Client {
    let mut dsn = format!(
        "host=127.0.0.1 port={} user={} dbname={} connect_timeout=10",
        t.port, t.user, t.db
    );
    if !t.password.is_empty() {
        dsn += &format!(" password={}", t.password);
    }
    let (c, conn) = tokio_postgres::connect(&dsn, NoTls)
        .await
        .expect("tokio-postgres connects");
    tokio::spawn(conn);
    c
}

/// The suite's transcript on one server.
pub async fn transcript(t: &Target, table: &str, big: &str, setup: &str) -> Vec<String> {
    let mut out = Vec::new();
    let c = connect(t).await;
    for stmt in setup.replace("{t}", table).split(";\n") {
        let sql: Vec<&str> = stmt.lines().filter(|l| !l.starts_with("--")).collect();
        if !sql.concat().trim().is_empty() {
            c.batch_execute(&sql.join("\n")).await.expect("setup");
        }
    }
    // Keyed lookups: one prepared statement whose keys reach every node.
    let lookup = c
        .prepare(&format!("SELECT {COLS} FROM {table} WHERE k = $1"))
        .await
        .expect("prepare");
    for k in 1..=12i64 {
        let rows = c.query(&lookup, &[&k]).await.expect("lookup");
        out.push(format!("lookup {k}: {}", render(&rows)));
    }
    // A scatter aggregate and a GROUP BY with a parameter.
    let agg = format!("SELECT count(*), sum(n), min(d), max(ts), avg(f) FROM {table} WHERE k > $1");
    for _ in 0..3 {
        let rows = c.query(&agg, &[&100i64]).await.expect("aggregate");
        out.push(format!("scatter aggregate: {}", render(&rows)));
    }
    let group =
        format!("SELECT b, count(*), sum(k) FROM {table} WHERE k < $1 GROUP BY b ORDER BY b");
    let rows = c.query(&group, &[&500i64]).await.expect("group by");
    out.push(format!("group by: {}", render(&rows)));
    // INSERT ... RETURNING over two nodes.
    let ins = format!("INSERT INTO {table} (k, v) VALUES ($1, $2), ($3, $4) RETURNING k, v");
    let params: [&(dyn ToSql + Sync); 4] = [&30_001i64, &"a", &30_002i64, &"b"];
    let rows = c.query(&ins, &params).await.expect("insert returning");
    out.push(format!("insert returning: {}", render(&rows)));
    // A transaction that commits and one that rolls back, both over several nodes.
    let mut c = c;
    let tx = c.transaction().await.expect("begin");
    let one = tx
        .prepare(&format!("INSERT INTO {table} (k, v) VALUES ($1, $2)"))
        .await
        .expect("prepare insert");
    for i in 3..9i64 {
        tx.execute(&one, &[&(30_000 + i), &format!("t{i}")])
            .await
            .expect("insert");
    }
    let n = tx
        .execute(
            &format!("UPDATE {table} SET v = v || '!' WHERE k = ANY($1)"),
            &[&vec![30_003i64, 30_004, 30_005]],
        )
        .await
        .expect("update");
    out.push(format!("update in txn: {n}"));
    tx.commit().await.expect("commit");
    let tx = c.transaction().await.expect("begin");
    for i in 10..16i64 {
        tx.execute(&one, &[&(30_000 + i), &format!("r{i}")])
            .await
            .expect("insert");
    }
    tx.execute(
        &format!("DELETE FROM {table} WHERE k = $1 OR k = $2"),
        &[&30_003i64, &30_006i64],
    )
    .await
    .expect("delete");
    tx.rollback().await.expect("rollback");
    let rows = c
        .query(
            &format!("SELECT k, v FROM {table} WHERE k > $1 ORDER BY k"),
            &[&30_000i64],
        )
        .await
        .expect("read back");
    out.push(format!("after commit and rollback: {}", render(&rows)));
    // Errors on one node, on every node, and at analysis; each followed by a working query.
    for (sql, k) in [
        (
            format!("SELECT k / (k - k) FROM {table} WHERE k = $1"),
            7i64,
        ),
        (format!("SELECT k / (k - k) FROM {table} WHERE k > $1"), 0),
        (
            format!("SELECT no_such_column FROM {table} WHERE k = $1"),
            7,
        ),
    ] {
        let e = c.query(&sql, &[&k]).await.err();
        out.push(format!(
            "error: {}",
            e.as_ref().map(failure).unwrap_or_default()
        ));
        let rows = c.query(&lookup, &[&7i64]).await.expect("after error");
        out.push(format!("after error: {}", render(&rows)));
    }
    // Temp tables and advisory locks in two concurrent sessions.
    let (a, b) = (connect(t).await, connect(t).await);
    a.batch_execute("CREATE TEMP TABLE drv_tt (x int); INSERT INTO drv_tt VALUES (1), (2)")
        .await
        .expect("temp table");
    let other = b.query("SELECT * FROM drv_tt", &[]).await;
    out.push(format!(
        "temp in other session: {}",
        other.err().map(|e| failure(&e)).unwrap_or("visible".into())
    ));
    for k in 1..=3i64 {
        a.query(&format!("SELECT v FROM {table} WHERE k = $1"), &[&k])
            .await
            .expect("lookup");
    }
    let rows = a
        .query("SELECT sum(x) FROM drv_tt", &[])
        .await
        .expect("own temp");
    out.push(format!("temp in own session: {}", render(&rows)));
    let lock = format!("hashtext('{table}')");
    for (who, c, sql) in [
        (
            "a locks",
            &a,
            format!("SELECT pg_advisory_lock({lock})::text"),
        ),
        (
            "b tries",
            &b,
            format!("SELECT pg_try_advisory_lock({lock})"),
        ),
        (
            "a unlocks",
            &a,
            format!("SELECT pg_advisory_unlock({lock})"),
        ),
        (
            "b tries again",
            &b,
            format!("SELECT pg_try_advisory_lock({lock})"),
        ),
        (
            "b unlocks",
            &b,
            format!("SELECT pg_advisory_unlock({lock})"),
        ),
    ] {
        let rows = c.query(&sql, &[]).await.expect("advisory lock");
        out.push(format!("{who}: {}", render(&rows)));
    }
    // A cursor (portal read 1,000 rows at a time) over a million-row scatter ORDER BY.
    let tx = c.transaction().await.expect("begin");
    let portal = tx
        .bind(
            &format!("SELECT k, v FROM {big} WHERE k > $1 ORDER BY k"),
            &[&0i64],
        )
        .await
        .expect("bind");
    let (mut n, mut sum, mut first, mut last) = (0u64, 0i64, None, None);
    loop {
        let rows = tx.query_portal(&portal, 1000).await.expect("portal");
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let k: i64 = r.get(0);
            n += 1;
            sum += k;
            if first.is_none() {
                first = Some(render(std::slice::from_ref(r)));
            }
        }
        last = rows.last().map(|r| render(std::slice::from_ref(r)));
    }
    tx.commit().await.expect("commit");
    out.push(format!("cursor: {n} {sum} {first:?} {last:?}"));
    out.push("done".into());
    out
}
