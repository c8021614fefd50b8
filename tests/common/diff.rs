//! The differential comparison shared by tests/scatter.rs and tests/hunt.rs: a query runs
//! through shardgate and on the oracle (one plain PostgreSQL holding every row) in text format
//! (simple protocol) and in binary format (extended protocol), and must give the same columns
//! (binary: names, type OIDs, type modifiers), the same rows (binary: the same bytes per value)
//! and the same row count.
//!
//! Queries whose ORDER BY is a total order are compared in order, the rest as multisets; a
//! leading `~` marks an ORDER BY with ties (the `~` is stripped, rows compared sorted).
//! `{u0}`..`{u9}` stand for the first user UUIDs of the generated data; `{U0}` is u0 in upper
//! case, `{u0b}` u0 in braces, `{u0x}` u0 without hyphens. A multi-statement string compares
//! every statement's result in text format. A call that takes longer than [`TIMEOUT`] is a
//! failure (a hang) and the sessions are replaced. Each test reports all of its mismatches at
//! once.
//!
//! Every test binary compiles this module; the ones that do not use it must not warn.
#![allow(dead_code)]

use std::fmt::Debug;
use std::time::Duration;

use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::Client;

use super::{connect, data, describe, oracle, simple, sqlstate};

/// A value read in binary format, kept as its raw bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Raw(pub Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

impl Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(b) = &self.0 else {
            return f.write_str("NULL");
        };
        let h: String = b.iter().take(24).map(|x| format!("{x:02x}")).collect();
        let more = if b.len() > 24 {
            format!("..({}B)", b.len())
        } else {
            String::new()
        };
        write!(f, "{h}{more}")
    }
}

/// An error: its SQLSTATE ("" when there is none: a broken connection, a timeout) and text.
#[derive(Debug, Clone)]
pub struct Fail {
    pub code: String,
    pub text: String,
}

impl Fail {
    pub fn of(e: &tokio_postgres::Error) -> Fail {
        Fail {
            code: sqlstate(e),
            text: describe(e),
        }
    }
}

/// Columns, rows and the row count of one result.
pub type Res<C, R> = Result<(Vec<C>, Vec<R>, u64), Fail>;
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Fail> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| Fail::of(&e)),
        Err(_) => Err(Fail {
            code: String::new(),
            text: format!("HANG: no answer within {}s", TIMEOUT.as_secs()),
        }),
    }
}

/// Simple protocol. Anything but exactly one result (a multi-statement string) gives one result
/// whose columns are the number of results followed by every statement's columns (statements
/// separated by `;`) and whose rows are tagged with their statement's number.
pub async fn text(c: &Client, sql: &str) -> Res<String, Vec<Option<String>>> {
    let results = timed(simple(c, sql)).await?;
    if results.len() == 1 {
        let r = results.into_iter().next().unwrap_or_default();
        return Ok((r.columns, r.rows, r.count));
    }
    let mut cols = vec![format!("({} results)", results.len())];
    let mut rows = Vec::new();
    let mut count = 0;
    for (i, r) in results.into_iter().enumerate() {
        if i > 0 {
            cols.push(";".to_string());
        }
        cols.extend(r.columns);
        count += r.count;
        for row in r.rows {
            let mut tagged = vec![Some(format!("#{i}"))];
            tagged.extend(row);
            rows.push(tagged);
        }
    }
    Ok((cols, rows, count))
}

/// Extended protocol, binary results; columns (name, type OID, type modifier) from the prepared
/// statement, so an empty result has them too.
pub async fn binary(
    c: &Client,
    sql: &str,
    params: Params<'_>,
) -> Res<(String, u32, i32), Vec<Raw>> {
    let st = timed(c.prepare(sql)).await?;
    let col = |c: &tokio_postgres::Column| (c.name().into(), c.type_().oid(), c.type_modifier());
    let cols = st.columns().iter().map(col).collect();
    let got = timed(c.query(&st, params)).await?;
    let rows: Vec<Vec<Raw>> = got
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Raw>(i)).collect())
        .collect();
    let n = rows.len() as u64;
    Ok((cols, rows, n))
}

/// (SQL to send with the UUIDs filled in, compare in order?)
pub fn prepare_sql(q: &str) -> (String, bool) {
    let (body, ordered) = match q.strip_prefix('~') {
        Some(rest) => (rest, false),
        None => (q, q.to_uppercase().contains("ORDER BY")),
    };
    let mut sql = body.to_string();
    let users = &data().users;
    sql = sql.replace("{U0}", &users[0].to_uppercase());
    sql = sql.replace("{u0b}", &format!("{{{}}}", users[0]));
    sql = sql.replace("{u0x}", &users[0].replace('-', ""));
    for (i, u) in users.iter().take(10).enumerate() {
        sql = sql.replace(&format!("{{u{i}}}"), u);
    }
    (sql, ordered)
}

fn show_err<T>(r: &Result<T, Fail>) -> String {
    r.as_ref()
        .err()
        .map(|f| f.text.clone())
        .unwrap_or_else(|| "ok".into())
}

/// What an error from the oracle itself makes of the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OracleError {
    /// A mismatch: the query must be answered, whatever shardgate does.
    Mismatch,
    /// The right answer is an error with the same SQLSTATE from shardgate.
    SameSqlstateIsRight,
}

/// Pushes a description of how shardgate's result differs from the oracle's, if it does.
pub fn compare<C: PartialEq + Debug, R: Ord + Debug>(
    how: &str,
    sql: &str,
    ordered: bool,
    oracle_error: OracleError,
    (got, want): (Res<C, R>, Res<C, R>),
    fails: &mut Vec<String>,
) {
    let msg = match (got, want) {
        (Ok(mut g), Ok(mut w)) => {
            if !ordered {
                g.1.sort();
                w.1.sort();
            }
            if g.0 != w.0 {
                format!("columns {:?} vs oracle {:?}", g.0, w.0)
            } else if g.1 != w.1 || g.2 != w.2 {
                let i = (g.1.iter().zip(&w.1).position(|(a, b)| a != b))
                    .unwrap_or(g.1.len().min(w.1.len()));
                format!(
                    "{} rows (count {}) vs oracle {} (count {}); first difference at row {i}: \
                     shardgate {:?} / oracle {:?}",
                    g.1.len(),
                    g.2,
                    w.1.len(),
                    w.2,
                    g.1.get(i),
                    w.1.get(i)
                )
            } else {
                return;
            }
        }
        (Err(g), Err(w))
            if oracle_error == OracleError::SameSqlstateIsRight
                && !w.code.is_empty()
                && g.code == w.code =>
        {
            return
        }
        (g, w) => format!("shardgate: {} / oracle: {}", show_err(&g), show_err(&w)),
    };
    fails.push(format!("[{how}] {sql}\n  {msg}"));
}

/// An error without a SQLSTATE: a hang or a lost connection.
fn lost<T>(r: &Result<T, Fail>) -> bool {
    r.as_ref().err().is_some_and(|f| f.code.is_empty())
}

/// Compares one query in text format (unless it has parameters) and in binary format. True when
/// a call to shardgate hung or lost its connection (the sessions must then be replaced).
pub async fn check(
    sg: &Client,
    or: &Client,
    q: &str,
    params: Params<'_>,
    oracle_error: OracleError,
    fails: &mut Vec<String>,
) -> bool {
    let (sql, ordered) = prepare_sql(q);
    if params.is_empty() {
        let both = (text(sg, &sql).await, text(or, &sql).await);
        let hung = lost(&both.0);
        compare("text", &sql, ordered, oracle_error, both, fails);
        if hung {
            return true;
        }
    }
    let both = (
        binary(sg, &sql, params).await,
        binary(or, &sql, params).await,
    );
    let hung = lost(&both.0);
    compare("binary", &sql, ordered, oracle_error, both, fails);
    hung
}

pub fn report(name: &str, n: usize, fails: &[String]) {
    println!("{name}: {n} queries checked, {} mismatches", fails.len());
    assert!(
        fails.is_empty(),
        "{name}: {} mismatches:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

/// Checks every query; with `refusals`, a query refused with 0A000 (in every format where it is
/// not answered exactly) counts as refused rather than as a mismatch.
async fn run(name: &str, queries: &[&str], refusals: bool, oracle_error: OracleError) {
    let (mut sg, mut or) = (connect().await, oracle().await);
    let (mut fails, mut refused) = (Vec::new(), 0);
    for q in queries {
        let mut mine = Vec::new();
        if check(&sg, &or, q, &[], oracle_error, &mut mine).await {
            sg = connect().await;
            or = oracle().await;
        }
        if refusals && !mine.is_empty() && mine.iter().all(|f| f.contains("shardgate: 0A000")) {
            println!("  refused: {q}");
            refused += 1;
        } else {
            fails.extend(mine);
        }
    }
    let name = if refusals {
        format!("{name} ({refused} refused)")
    } else {
        name.to_string()
    };
    report(&name, queries.len(), &fails);
}

/// Each query must be answered exactly as the oracle answers it.
pub async fn run_theme(name: &str, queries: &[&str]) {
    run(name, queries, false, OracleError::Mismatch).await;
}

/// Each query must be refused with 0A000 or answered exactly as the oracle answers it.
pub async fn run_refused_or_right(name: &str, queries: &[&str]) {
    run(name, queries, true, OracleError::Mismatch).await;
}

/// Each query must be refused with 0A000 or answered exactly as the oracle answers it, where an
/// error with the SQLSTATE of the oracle's own error is the oracle's answer.
pub async fn run_refused_or_right_or_same_error(name: &str, queries: &[&str]) {
    run(name, queries, true, OracleError::SameSqlstateIsRight).await;
}

/// One test per table of queries; `ignore` with the reason for the known failures.
#[macro_export]
macro_rules! suite {
    ($run:ident: $($test:ident = $queries:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            $run(stringify!($test), $queries).await;
        }
    )*};
    ($run:ident ignored: $($test:ident ($why:literal) = $queries:expr;)*) => {$(
        #[tokio::test]
        #[ignore = $why]
        async fn $test() {
            $run(stringify!($test), $queries).await;
        }
    )*};
}
