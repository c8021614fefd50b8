//! Issue 12's differential suite: a seeded generator of adversarial read queries
//! (tests/common/gen.rs) over tutorial-shaped tables of a cluster of this test's own (users and
//! user_events hashed on a uuid, orders hashed on a bigint, measurements ranged by month on a
//! date, sales ranged on a timestamp, regional_sales listed by region, countries as a reference
//! table), holding NULLs, ties, extreme values, non-ASCII text and an ICU-collated column.
//! Every query runs through shardgate and on the oracle (one plain PostgreSQL holding every row)
//! in three protocol modes: simple (text), extended with text results, extended with binary
//! results (tests/common/wire.rs). Column names, type OIDs and type modifiers, the command tag
//! and every value's bytes must be the same; rows in order when the query's ORDER BY is total,
//! as a multiset otherwise. When the oracle raises an error shardgate must raise the same
//! SQLSTATE (two data exceptions, class 22, count as the same: a query can hold two expressions
//! that fail on different rows, and which fails first is evaluation order). A refusal with
//! 0A000 is accepted but counted (refusals are a cost). The report groups the wrong answers by
//! kind (SQLSTATE and message, or what differs) with the shortest queries of each kind.
//!
//! `DIFFGEN_SEED` (default 12) and `DIFFGEN_CASES` (default 5000) scale the run locally, e.g.
//! `DIFFGEN_CASES=5000 DIFFGEN_SEED=7 cargo test --release --test diffgen -- --nocapture`.
//! `issue12_classes` runs each bug class of issue 12 as named regression queries through the
//! same comparison.

mod common;
#[path = "common/gen.rs"]
mod gen;
#[path = "common/wire.rs"]
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use common::own::Own;
use wire::{Answer, Mode, Outcome, Session, MODES};

struct Cluster {
    port: u16,
    oracle_port: u16,
}

static OWN: Mutex<Option<Own>> = Mutex::new(None);
static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

extern "C" {
    fn atexit(cb: extern "C" fn()) -> i32;
}

extern "C" fn stop_own() {
    if let Ok(mut g) = OWN.lock() {
        drop(g.take());
    }
}

fn tables() -> &'static [gen::Table] {
    static T: OnceLock<Vec<gen::Table>> = OnceLock::new();
    T.get_or_init(gen::schema)
}

/// The test's own cluster (3 workers, shardgate over them, an `oracle` database on worker 1),
/// started and loaded once per test binary.
fn cluster() -> &'static Cluster {
    let r = CLUSTER.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(setup())
        })
        .join()
        .unwrap_or_else(|_| Err("setup panicked".into()))
    });
    match r {
        Ok(c) => c,
        Err(e) => panic!("diffgen cluster: {e}"),
    }
}

async fn exec(s: &mut Session, who: &str, sql: &str) -> Result<Answer, String> {
    s.run(Mode::Simple, sql).await.map_err(|f| {
        let short: String = sql.chars().take(160).collect();
        format!("{who}: {short}: {} {}", f.code, f.message)
    })
}

async fn setup() -> Result<Cluster, String> {
    let toml: String = tables().iter().map(|t| format!("\n{}", t.toml)).collect();
    let own = Own::start_with_tables("diffgen", 3, "pool_size = 16\n", "", &toml).await;
    let (port, wports) = (own.port, own.worker_ports.clone());
    *OWN.lock().map_err(|e| e.to_string())? = Some(own);
    // SAFETY: registering a plain extern "C" function with libc's atexit.
    unsafe { atexit(stop_own) };
    let mut w0 = Session::new(wports[0], "postgres", "", "app");
    exec(&mut w0, "worker 1", "CREATE DATABASE oracle").await?;
    let mut sg = Session::new(port, "app", "app-secret", "app");
    let mut or = Session::new(wports[0], "postgres", "", "oracle");
    for t in tables() {
        exec(&mut sg, "shardgate", &t.ddl()).await?;
        exec(&mut or, "oracle", &t.ddl()).await?;
        for ins in t.inserts(100) {
            let a = exec(&mut sg, "shardgate", &ins).await?;
            let b = exec(&mut or, "oracle", &ins).await?;
            if a.tag != b.tag {
                return Err(format!(
                    "{}: shardgate {} / oracle {}",
                    t.name, a.tag, b.tag
                ));
            }
        }
    }
    // objects shardgate does not create: on every worker and on the oracle
    let extra = "CREATE AGGREGATE mysum(int) (sfunc = int4pl, stype = int); \
                 CREATE SEQUENCE diffgen_seq";
    for p in &wports {
        exec(
            &mut Session::new(*p, "postgres", "", "app"),
            "worker",
            extra,
        )
        .await?;
    }
    exec(&mut or, "oracle", extra).await?;
    // every table holds the same rows through shardgate as on the oracle
    for t in tables() {
        let sql = format!("SELECT count(*) FROM {}", t.name);
        let a = exec(&mut sg, "shardgate", &sql).await?;
        let b = exec(&mut or, "oracle", &sql).await?;
        if a.rows != b.rows {
            return Err(format!("{}: row counts differ after loading", t.name));
        }
    }
    Ok(Cluster {
        port,
        oracle_port: wports[0],
    })
}

fn sessions() -> (Session, Session) {
    let c = cluster();
    (
        Session::new(c.port, "app", "app-secret", "app"),
        Session::new(c.oracle_port, "postgres", "", "oracle"),
    )
}

// ---------- the comparison ----------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Same,
    Refused(String),
    Wrong(String),
}

fn show_value(v: &Option<Vec<u8>>, mode: Mode) -> String {
    match v {
        None => "NULL".into(),
        Some(b) if mode == Mode::ExtBinary => {
            let h: String = b.iter().take(20).map(|x| format!("{x:02x}")).collect();
            if b.len() > 20 {
                format!("x{h}..({}B)", b.len())
            } else {
                format!("x{h}")
            }
        }
        Some(b) => {
            let s = String::from_utf8_lossy(b);
            let s: String = s.chars().take(60).collect();
            format!("{s:?}")
        }
    }
}

fn show_row(r: Option<&wire::Row>, mode: Mode) -> String {
    match r {
        None => "(none)".into(),
        Some(r) => {
            let v: Vec<String> = r.iter().map(|v| show_value(v, mode)).collect();
            format!("({})", v.join(", "))
        }
    }
}

/// Rows equal except for float4/float8 values within a relative 1e-12 of each other.
fn floats_close(a: &[wire::Row], b: &[wire::Row], cols: &[wire::Column], mode: Mode) -> bool {
    let float = |oid: u32, v: &[u8]| -> Option<f64> {
        match (oid, mode) {
            (701, Mode::ExtBinary) => v.try_into().ok().map(f64::from_be_bytes),
            (700, Mode::ExtBinary) => v.try_into().ok().map(|x| f32::from_be_bytes(x) as f64),
            (700 | 701, _) => std::str::from_utf8(v).ok()?.parse().ok(),
            _ => None,
        }
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(ra, rb)| {
            ra.len() == rb.len()
                && ra
                    .iter()
                    .zip(rb)
                    .enumerate()
                    .all(|(i, (x, y))| match (x, y) {
                        _ if x == y => true,
                        (Some(x), Some(y)) => {
                            let oid = cols.get(i).map(|c| c.1).unwrap_or(0);
                            match (float(oid, x), float(oid, y)) {
                                (Some(p), Some(q)) if p.is_finite() && q.is_finite() => {
                                    (p - q).abs() <= 1e-12 * p.abs().max(q.abs())
                                }
                                _ => false,
                            }
                        }
                        _ => false,
                    })
        })
}

fn judge(mode: Mode, got: &Outcome, want: &Outcome, ordered: bool) -> Verdict {
    match (got, want) {
        (Ok(g), Ok(w)) => {
            let names = |a: &Answer| -> Vec<(String, u32)> {
                a.columns.iter().map(|c| (c.0.clone(), c.1)).collect()
            };
            if names(g) != names(w) {
                return Verdict::Wrong(format!(
                    "columns (name, type OID) {:?} vs oracle {:?}",
                    names(g),
                    names(w)
                ));
            }
            let (mut gr, mut wr) = (g.rows.clone(), w.rows.clone());
            if !ordered {
                gr.sort();
                wr.sort();
            }
            // Floats combined from per-node partials differ from one PostgreSQL's serial
            // result in the last digits, as PostgreSQL's own parallel aggregation does.
            if (gr != wr && !floats_close(&gr, &wr, &g.columns, mode)) || g.tag != w.tag {
                let i = gr
                    .iter()
                    .zip(&wr)
                    .position(|(a, b)| a != b)
                    .unwrap_or(gr.len().min(wr.len()));
                return Verdict::Wrong(format!(
                    "rows differ: {} rows ({}) vs oracle {} ({}); first difference at row {i}{}: shardgate {} / oracle {}",
                    gr.len(),
                    g.tag,
                    wr.len(),
                    w.tag,
                    if ordered { "" } else { " (sorted)" },
                    show_row(gr.get(i), mode),
                    show_row(wr.get(i), mode)
                ));
            }
            if g.columns != w.columns {
                let tm = |a: &Answer| -> Vec<i32> { a.columns.iter().map(|c| c.2).collect() };
                return Verdict::Wrong(format!(
                    "type modifiers {:?} vs oracle {:?} (columns {:?})",
                    tm(g),
                    tm(w),
                    g.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>()
                ));
            }
            Verdict::Same
        }
        // PostgreSQL's own 0A000 (`cannot convert NaN to bigint`) is an answer, not a refusal
        (Err(g), Err(w)) if !w.code.is_empty() && g.code == w.code => Verdict::Same,
        (Err(g), _) if g.code == "0A000" => Verdict::Refused(g.message.clone()),
        // Two data exceptions (class 22) from a query with two expressions that can fail (an
        // int2 overflow and a timestamp overflow, say): which row and which expression fails
        // first is evaluation order, PostgreSQL defines none.
        (Err(g), Err(w)) if g.code.starts_with("22") && w.code.starts_with("22") => Verdict::Same,
        (Err(g), Ok(_)) => Verdict::Wrong(format!(
            "shardgate error {} {} where PostgreSQL answers",
            g.code, g.message
        )),
        (Ok(_), Err(w)) => Verdict::Wrong(format!(
            "shardgate answers where PostgreSQL raises {} {}",
            w.code, w.message
        )),
        (Err(g), Err(w)) => Verdict::Wrong(format!(
            "shardgate error {} {} / PostgreSQL error {} {}",
            g.code, g.message, w.code, w.message
        )),
    }
}

/// A wrong verdict's kind, for grouping: errors by SQLSTATE and message with literals, numbers
/// and sqlparser's positions blanked; row differences by the features of the query known to
/// go wrong (a hint for sorting them by hand).
fn signature(d: &str, sql: &str) -> String {
    if d.starts_with("rows differ") {
        const FEATURES: &[(&str, &str)] = &[
            ("now()", "now()"),
            ("COLLATE", "COLLATE"),
            ("m.city", "ICU-collated column"),
            ("measurements", "measurements"),
            ("flags", "bit"),
            ("mask", "varbit"),
            ("mysum", "user-defined aggregate"),
            ("ctid", "ctid"),
            ("xmin", "xmin"),
            ("float8", "float8"),
            ("stddev", "stddev"),
            ("var", "variance"),
            ("bit_", "bit aggregate"),
            ("nextval", "nextval"),
        ];
        let f: Vec<&str> = FEATURES
            .iter()
            .filter(|(k, _)| sql.contains(k))
            .map(|(_, v)| *v)
            .collect();
        return format!("rows differ; the query has: {}", f.join(", "));
    }
    if d.starts_with("type modifiers") {
        return "type modifiers differ".into();
    }
    if d.starts_with("columns") {
        return "column names or type OIDs differ".into();
    }
    let mut s = d.to_string();
    while let Some(i) = s.find(" at Line: ") {
        let rest = &s[i..];
        let j = [" where ", " / "]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
            .map_or(s.len(), |j| i + j);
        s.replace_range(i..j, "");
    }
    let mut out: Vec<String> = Vec::new();
    let mut prev = "";
    for w in s.split(' ') {
        let keep = prev == "error" || prev == "raises";
        let blanked = if keep {
            w.to_string()
        } else if prev == "found:"
            && w.starts_with(|c: char| c == '\'' || c == '-' || c.is_ascii_digit())
        {
            "<literal>".to_string()
        } else if w.starts_with(['\'', '"']) {
            let q = &w[..1];
            format!("{q}…{q}")
        } else {
            let mut o = String::new();
            let mut digit = false;
            for ch in w.chars() {
                if ch.is_ascii_digit() {
                    if !digit {
                        o.push('N');
                    }
                    digit = true;
                } else {
                    o.push(ch);
                    digit = false;
                }
            }
            o
        };
        out.push(blanked);
        prev = w;
    }
    out.join(" ")
}

/// The verdict of one query in each mode.
async fn check(
    sg: &mut Session,
    or: &mut Session,
    sql: &str,
    ordered: bool,
) -> Vec<(Mode, Verdict)> {
    let mut out = Vec::new();
    for mode in MODES {
        let want = or.run(mode, sql).await;
        let got = sg.run(mode, sql).await;
        out.push((mode, judge(mode, &got, &want, ordered)));
    }
    out
}

#[derive(Default)]
struct Tally {
    queries: usize,
    same: usize,
    refused: usize,
    wrong: usize,
    per_mode_wrong: BTreeMap<&'static str, usize>,
    refusals: BTreeMap<String, usize>,
    failures: Vec<String>,
    /// signature → (modes seen, SQL texts)
    kinds: BTreeMap<String, (BTreeSet<&'static str>, Vec<String>)>,
}

impl Tally {
    fn add(&mut self, sql: &str, verdicts: &[(Mode, Verdict)]) {
        self.queries += 1;
        let wrong: Vec<&(Mode, Verdict)> = verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Wrong(_)))
            .collect();
        if !wrong.is_empty() {
            self.wrong += 1;
            let mut s = format!("{sql}\n");
            for (m, v) in &wrong {
                *self.per_mode_wrong.entry(m.name()).or_default() += 1;
                if let Verdict::Wrong(d) = v {
                    s += &format!("    [{}] {d}\n", m.name());
                    let k = self.kinds.entry(signature(d, sql)).or_default();
                    k.0.insert(m.name());
                    if !k.1.iter().any(|x| x == sql) {
                        k.1.push(sql.to_string());
                    }
                }
            }
            self.failures.push(s);
            return;
        }
        let refused: Vec<&String> = verdicts
            .iter()
            .filter_map(|(_, v)| match v {
                Verdict::Refused(m) => Some(m),
                _ => None,
            })
            .collect();
        if let Some(m) = refused.first() {
            self.refused += 1;
            *self.refusals.entry((*m).clone()).or_default() += 1;
        } else {
            self.same += 1;
        }
    }

    fn report(&self, name: &str) {
        for f in &self.failures {
            println!("  WRONG: {f}");
        }
        println!(
            "{name}: {} queries x 3 modes: {} identical, {} refused with 0A000, {} wrong answers or errors where PostgreSQL answers",
            self.queries, self.same, self.refused, self.wrong
        );
        if !self.per_mode_wrong.is_empty() {
            println!("  wrong per mode: {:?}", self.per_mode_wrong);
        }
        if !self.refusals.is_empty() {
            println!("  refusals (0A000), by message:");
            for (m, n) in &self.refusals {
                println!("    {n:5}  {m}");
            }
        }
        if !self.kinds.is_empty() {
            println!("  wrong answers by kind (count, modes, shortest queries):");
            for (k, (modes, sqls)) in &self.kinds {
                println!("    {:5}  {k}  {modes:?}", sqls.len());
                let mut v: Vec<&String> = sqls.iter().collect();
                v.sort_by_key(|s| s.len());
                for s in v.iter().take(3) {
                    println!("             {s}");
                }
            }
        }
    }
}

/// With DIFFGEN_HOLD=<seconds>, prints the ports and waits, for checks by hand with psql.
fn hold() {
    let secs = env_u64("DIFFGEN_HOLD", 0);
    if secs > 0 {
        let c = cluster();
        println!(
            "holding {secs}s: shardgate: psql -h 127.0.0.1 -p {} -U app app (password app-secret); oracle: psql -h 127.0.0.1 -p {} -U postgres oracle",
            c.port, c.oracle_port
        );
        std::thread::sleep(std::time::Duration::from_secs(secs));
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn generated_queries_answer_like_postgresql() {
    let seed = env_u64("DIFFGEN_SEED", 12);
    let cases = env_u64("DIFFGEN_CASES", 5000);
    let (mut sg, mut or) = sessions();
    let mut g = gen::Gen::new(seed, tables());
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    for _ in 0..cases {
        let q = g.next();
        let v = check(&mut sg, &mut or, &q.sql, q.ordered).await;
        tally.add(&q.sql, &v);
    }
    hold();
    println!(
        "seed {seed}, {cases} cases in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    tally.report("diffgen");
    assert!(
        tally.wrong == 0,
        "{} wrong answers or unexpected errors (see the report above)",
        tally.wrong
    );
}

// ---------- issue 12's classes as regression queries ----------

/// (class, SQL, compare in order?)
const CLASSES: &[(&str, &str, bool)] = &[
    // row locks with ORDER BY / LIMIT / OFFSET over several nodes
    ("row locks", "SELECT order_id, customer_id FROM orders ORDER BY order_id LIMIT 5 FOR UPDATE", true),
    ("row locks", "SELECT order_id FROM orders ORDER BY order_id LIMIT 3 OFFSET 10 FOR SHARE", true),
    ("row locks", "SELECT order_id FROM orders ORDER BY order_id OFFSET 995 FOR UPDATE", true),
    ("row locks", "SELECT order_id, status FROM orders WHERE status = 'shipped' ORDER BY order_id FOR UPDATE", true),
    ("row locks", "SELECT order_id FROM orders ORDER BY order_id DESC FETCH FIRST 2 ROWS ONLY FOR NO KEY UPDATE", true),
    ("row locks", "SELECT username FROM users ORDER BY username COLLATE \"sv-x-icu\", user_uuid LIMIT 4 FOR KEY SHARE", true),
    ("row locks", "SELECT id, logdate FROM measurements WHERE logdate BETWEEN '2024-01-20' AND '2024-02-10' ORDER BY id FOR NO KEY UPDATE", true),
    ("row locks", "SELECT id FROM sales ORDER BY sold_at, id LIMIT 2 FOR KEY SHARE SKIP LOCKED", true),
    // DISTINCT above GROUP BY
    ("distinct over group by", "SELECT DISTINCT count(*) FROM user_events GROUP BY user_uuid", false),
    ("distinct over group by", "SELECT DISTINCT count(*) FROM orders GROUP BY customer_id ORDER BY 1", true),
    ("distinct over group by", "SELECT DISTINCT count(*) AS n FROM regional_sales GROUP BY region ORDER BY n DESC", true),
    // a user-defined aggregate
    ("user-defined aggregate", "SELECT mysum(qty) FROM user_events WHERE qty BETWEEN -1000 AND 1000", false),
    ("user-defined aggregate", "SELECT mysum(qty), count(*) FROM user_events WHERE qty BETWEEN -1000 AND 1000", false),
    ("user-defined aggregate", "SELECT kind FROM user_events WHERE qty BETWEEN -1000 AND 1000 GROUP BY kind HAVING mysum(qty) > 100 ORDER BY 1", true),
    ("user-defined aggregate", "SELECT kind, mysum(qty) FROM user_events WHERE qty BETWEEN -1000 AND 1000 GROUP BY kind ORDER BY kind", true),
    ("user-defined aggregate", "SELECT user_uuid, mysum(qty) FROM user_events WHERE qty BETWEEN -1000 AND 1000 GROUP BY user_uuid ORDER BY 1 LIMIT 5", true),
    ("user-defined aggregate", "SELECT mysum(qty) FROM user_events WHERE qty > 0", false),
    ("user-defined aggregate", "SELECT mysum(peaktemp) FROM measurements", false),
    // explicit collations in a merged ORDER BY
    ("collations", "SELECT nick FROM users ORDER BY nick COLLATE \"sv-x-icu\", user_uuid", true),
    ("collations", "SELECT nick COLLATE \"sv-x-icu\" AS n FROM users ORDER BY n, user_uuid", true),
    ("collations", "SELECT n FROM (SELECT nick COLLATE \"en-x-icu\" AS n, user_uuid FROM users) s ORDER BY n, user_uuid", true),
    ("collations", "SELECT nick COLLATE \"und-x-icu\" AS n, count(*) FROM users GROUP BY 1 ORDER BY 1", true),
    ("collations", "SELECT DISTINCT nick COLLATE \"sv-x-icu\" AS n FROM users ORDER BY n", true),
    ("collations", "SELECT city, id FROM measurements ORDER BY city, id", true),
    ("collations", "SELECT city, id FROM measurements ORDER BY city COLLATE \"C\" DESC NULLS LAST, id LIMIT 30", true),
    ("collations", "SELECT min(nick COLLATE \"sv-x-icu\"), max(nick COLLATE \"sv-x-icu\"), min(city), max(city) FROM users, (SELECT city FROM measurements WHERE id = 1) m", false),
    ("collations", "SELECT min(city), max(city), min(city COLLATE \"C\") FROM measurements", false),
    ("collations", "SELECT nick FROM users ORDER BY nick COLLATE \"en-x-icu\" DESC NULLS FIRST, user_uuid LIMIT 10", true),
    ("collations", "SELECT string_agg(nick, ',' ORDER BY nick COLLATE \"sv-x-icu\", user_uuid) FROM users", false),
    // bit_and / bit_or over bit strings
    ("bit aggregates", "SELECT bit_and(flags), bit_or(flags) FROM users", false),
    ("bit aggregates", "SELECT bit_and(mask), bit_or(mask) FROM users WHERE length(mask) = 6", false),
    ("bit aggregates", "SELECT bit_and(mask) FROM users", false),
    ("bit aggregates", "SELECT country, bit_or(flags), bit_and(flags) FROM users GROUP BY country ORDER BY country", true),
    // float overflow in aggregates
    ("float overflow", "SELECT avg(x), stddev(x) FROM (SELECT CASE WHEN score > 0 THEN 1e200 ELSE -1e200 END::float8 AS x FROM users) s", false),
    ("float overflow", "SELECT stddev(1e200::float8) FROM users", false),
    ("float overflow", "SELECT variance(1e200::float8), avg(1e200::float8) FROM orders", false),
    ("float overflow", "SELECT avg(1e308::float8) FROM users", false),
    ("float overflow", "SELECT sum(-1e308::float8) FROM orders", false),
    ("float overflow", "SELECT sum(-0.6e308::float8) FROM orders WHERE order_id IN (1, 2)", false),
    ("float overflow", "SELECT sum(-0.6e308::float8) FROM orders WHERE order_id IN (1, 2, 3)", false),
    ("float overflow", "SELECT avg(rating), stddev(rating) FROM users WHERE rating > 1e299 AND rating < 'Infinity'", false),
    // stddev / variance of large float8 values
    ("large float variance", "SELECT stddev(x), variance(x), var_pop(x), stddev_pop(x) FROM (SELECT (order_id % 7)::float8 * 1e100 AS x FROM orders) s", false),
    ("large float variance", "SELECT stddev(x), variance(x) FROM (SELECT (order_id % 7)::float8 * 1e150 AS x FROM orders) s", false),
    ("large float variance", "SELECT customer_id % 3 AS k, var_samp(order_id::float8 * 1e120) FROM orders GROUP BY 1 ORDER BY 1", true),
    // count(DISTINCT now())
    ("count distinct now()", "SELECT count(DISTINCT now()) FROM users", false),
    ("count distinct now()", "SELECT count(DISTINCT now()), count(*) FROM orders", false),
    ("count distinct now()", "SELECT status, count(DISTINCT now()) FROM orders GROUP BY status ORDER BY status", true),
    // ctid / xmin across nodes
    ("ctid xmin", "SELECT ctid, order_id FROM orders ORDER BY order_id LIMIT 5", true),
    ("ctid xmin", "SELECT xmin, order_id FROM orders ORDER BY order_id", true),
    ("ctid xmin", "SELECT count(DISTINCT ctid) FROM orders", false),
    ("ctid xmin", "SELECT order_id FROM orders WHERE ctid = '(0,1)' ORDER BY order_id", true),
    // TABLE, FROM t*
    ("TABLE and t*", "TABLE countries", false),
    ("TABLE and t*", "TABLE orders", false),
    ("TABLE and t*", "SELECT count(*) FROM users*", false),
    ("TABLE and t*", "SELECT * FROM orders* WHERE customer_id = 5", false),
    ("TABLE and t*", "SELECT order_id FROM ONLY orders ORDER BY order_id LIMIT 3", true),
    // BETWEEN SYMMETRIC (also on keys)
    ("between symmetric", "SELECT count(*) FROM measurements WHERE logdate BETWEEN SYMMETRIC '2024-03-15' AND '2024-01-15'", false),
    ("between symmetric", "SELECT order_id FROM orders WHERE customer_id BETWEEN SYMMETRIC 10 AND -10 ORDER BY 1", true),
    ("between symmetric", "SELECT id FROM sales WHERE sold_at BETWEEN SYMMETRIC '2024-08-01' AND '2023-12-01' ORDER BY id", true),
    ("between symmetric", "SELECT id FROM regional_sales WHERE region BETWEEN SYMMETRIC 'US' AND 'CA' ORDER BY id", true),
    ("between symmetric", "SELECT count(*) FROM users WHERE user_uuid NOT BETWEEN SYMMETRIC 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND '00000000-0000-0000-0000-000000000000'", false),
    // xmlagg
    ("xmlagg", "SELECT xmlagg(xmlelement(name k, kind) ORDER BY event_id) FROM user_events WHERE event_id < 20", false),
    ("xmlagg", "SELECT kind, xmlagg(xmlelement(name e, event_id) ORDER BY event_id)::text FROM user_events WHERE event_id < 100 GROUP BY kind ORDER BY kind", true),
    ("xmlagg", "SELECT xmlagg(kind::xml ORDER BY event_id)::text FROM user_events WHERE event_id < 20 AND kind <> ''", false),
    // window frames with EXCLUDE
    ("window exclude", "SELECT order_id, sum(order_id) OVER (ORDER BY order_id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE CURRENT ROW) FROM orders ORDER BY order_id", true),
    ("window exclude", "SELECT id, count(*) OVER (ORDER BY logdate RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING EXCLUDE TIES) FROM measurements ORDER BY id", true),
    ("window exclude", "SELECT id, max(peaktemp) OVER (PARTITION BY city ORDER BY id GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW EXCLUDE GROUP) FROM measurements ORDER BY id", true),
    // count(DISTINCT ROW(...))
    ("count distinct row", "SELECT count(DISTINCT ROW(kind, qty)) FROM user_events", false),
    ("count distinct row", "SELECT count(DISTINCT (status, note)) FROM orders", false),
    ("count distinct row", "SELECT region, count(DISTINCT ROW(country, product)) FROM regional_sales GROUP BY region ORDER BY region", true),
    // GROUP BY a constant's alias
    ("group by constant alias", "SELECT 1 AS k, count(*) FROM orders GROUP BY k", false),
    ("group by constant alias", "SELECT 'x' AS k, sum(qty) FROM user_events GROUP BY k", false),
    ("group by constant alias", "SELECT 1 AS k, status, count(*) FROM orders GROUP BY k, status ORDER BY status", true),
    // LIMIT at int8's maximum with an OFFSET
    ("limit int8 max", "SELECT order_id FROM orders ORDER BY order_id LIMIT 9223372036854775807 OFFSET 999", true),
    ("limit int8 max", "SELECT order_id FROM orders ORDER BY order_id OFFSET 9223372036854775807", true),
    ("limit int8 max", "SELECT id FROM measurements ORDER BY id LIMIT 9223372036854775807 OFFSET 990", true),
    // typmods of casts of aggregates
    ("aggregate cast typmod", "SELECT sum(qty)::numeric(10,2) FROM user_events", false),
    ("aggregate cast typmod", "SELECT kind, sum(amount)::numeric(10,2) AS s FROM user_events GROUP BY kind ORDER BY kind", true),
    ("aggregate cast typmod", "SELECT avg(total)::numeric(12,3) FROM orders WHERE total < 1000", false),
    ("aggregate cast typmod", "SELECT max(kind)::varchar(3), min(happened_at)::timestamp(0) FROM user_events", false),
    // found by the generator: a column's own ICU collation in merged ORDER BY, GROUP BY, min/max
    ("column collation", "SELECT city FROM measurements WHERE city IN ('Ä', 'z', 'å', 'ö') GROUP BY city ORDER BY city", true),
    ("column collation", "SELECT DISTINCT city FROM measurements ORDER BY city NULLS LAST", true),
    ("column collation", "SELECT min(city), max(city) FROM measurements", false),
    // found by the generator: bit(n) as a group key or in count(DISTINCT ...)
    ("bit group keys", "SELECT flags, count(*) FROM users WHERE flags IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 3", true),
    ("bit group keys", "SELECT count(DISTINCT flags) FROM users", false),
    ("bit group keys", "SELECT flags & B'00001111' AS f, count(*) FROM users GROUP BY 1, flags", false),
    // found by the generator: numeric stddev/variance (NaN, last digits)
    ("numeric stddev", "SELECT stddev_samp(balance) FROM users", false),
    ("numeric stddev", "SELECT stddev_samp(balance) FROM users WHERE balance <> 'NaN'", false),
    ("numeric stddev", "SELECT qty, stddev_samp(amount) FROM sales GROUP BY qty ORDER BY qty", true),
    ("numeric stddev", "SELECT country, stddev(score), variance(score) FROM users GROUP BY country ORDER BY country", true),
    // found by the generator: aggregates in ORDER BY over DISTINCT / GROUP BY
    ("order by aggregates", "SELECT DISTINCT region AS g1, count(*), sum(amount)::numeric(30,3) AS x1 FROM sales GROUP BY 1 ORDER BY count(*), sum(amount)::numeric(30,3), g1", true),
    ("order by aggregates", "SELECT upper(region), count(DISTINCT region), count(*) - count(amount) FROM regional_sales GROUP BY upper(region) ORDER BY 3, 1", true),
    ("order by aggregates", "SELECT DISTINCT logdate AS g1, count(*) FROM measurements GROUP BY g1 ORDER BY g1 DESC, 2, count(*)", true),
    // found by the generator: COLLATE after a cast
    ("collate after cast", "SELECT user_uuid FROM users ORDER BY user_uuid::text COLLATE \"C\" LIMIT 3", true),
    // key literals shardgate cannot route in an INSERT (BC, -infinity, years past 9999): reads
    ("extreme keys", "SELECT count(*) FROM measurements WHERE logdate = '4713-01-01 BC'", false),
    ("extreme keys", "SELECT count(*) FROM measurements WHERE logdate < '-infinity'", false),
    ("extreme keys", "SELECT count(*) FROM sales WHERE sold_at >= '294276-01-01 00:00:00'", false),
    // keys at their extremes
    ("extreme keys", "SELECT order_id, customer_id FROM orders WHERE customer_id = -9223372036854775808 ORDER BY order_id", true),
    ("extreme keys", "SELECT order_id FROM orders WHERE customer_id IN (9223372036854775807, 0, -1) ORDER BY order_id", true),
    ("extreme keys", "SELECT id, logdate FROM measurements WHERE logdate = 'infinity' ORDER BY id", true),
    ("extreme keys", "SELECT id FROM measurements WHERE logdate < '2000-01-01' ORDER BY id", true),
    ("extreme keys", "SELECT id, sold_at FROM sales WHERE sold_at >= '2024-07-01' ORDER BY sold_at, id LIMIT 10", true),
    ("extreme keys", "SELECT id, region FROM regional_sales WHERE region = '' ORDER BY id", true),
];

#[tokio::test]
async fn issue12_classes() {
    let (mut sg, mut or) = sessions();
    let mut tally = Tally::default();
    let mut per_class: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (class, sql, ordered) in CLASSES {
        let v = check(&mut sg, &mut or, sql, *ordered).await;
        let e = per_class.entry(class).or_default();
        if v.iter().any(|(_, v)| matches!(v, Verdict::Wrong(_))) {
            e.2 += 1;
        } else if v.iter().any(|(_, v)| matches!(v, Verdict::Refused(_))) {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
        tally.add(&format!("[{class}] {sql}"), &v);
    }
    // nextval in a scattered SELECT: refused with 0A000, or every value unique
    let sql = "SELECT nextval('diffgen_seq') FROM orders WHERE order_id <= 50";
    let e = per_class.entry("nextval").or_default();
    let mut bad = Vec::new();
    for mode in MODES {
        match sg.run(mode, sql).await {
            Err(f) if f.code == "0A000" => {}
            Ok(a) => {
                let mut vals: Vec<_> = a.rows.iter().map(|r| r[0].clone()).collect();
                vals.sort();
                vals.dedup();
                if a.rows.len() != 50 || vals.len() != 50 {
                    bad.push(format!(
                        "[{}] {} rows, {} distinct values",
                        mode.name(),
                        a.rows.len(),
                        vals.len()
                    ));
                }
            }
            Err(f) => bad.push(format!("[{}] {} {}", mode.name(), f.code, f.message)),
        }
    }
    tally.queries += 1;
    if bad.is_empty() {
        tally.same += 1;
        e.0 += 1;
    } else {
        tally.wrong += 1;
        e.2 += 1;
        tally
            .failures
            .push(format!("[nextval] {sql}\n    {}\n", bad.join("\n    ")));
    }
    println!("issue 12 classes (identical, refused, wrong):");
    for (c, (s, r, w)) in &per_class {
        println!(
            "  {:28} {s:3} {r:3} {w:3}  {}",
            c,
            if *w > 0 { "FAIL" } else { "ok" }
        );
    }
    tally.report("issue12_classes");
    assert!(
        tally.wrong == 0,
        "{} classes' queries answered wrongly (see the report above)",
        tally.wrong
    );
}
