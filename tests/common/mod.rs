//! The real-worker test harness: one cluster per test binary (three PostgreSQL workers started
//! with `shardgate::local`, plus an `oracle` database on worker 1 that holds every row in plain
//! tables), shardgate served in-process on a static runtime, and the example tables created
//! through shardgate and loaded with the same deterministic rows as the oracle.
#![allow(dead_code)]

pub mod diff;
pub mod own;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use shardgate::local::LocalCluster;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub const NODES: usize = 3;

/// The range table's bounds as the config lists them: (from, to, node index); shard id = index.
pub const SALES_RANGES: [(&str, &str, usize); 5] = [
    ("MINVALUE", "2024-01-01", 0),
    ("2024-01-01", "2024-02-01", 0),
    ("2024-02-01", "2024-03-01", 1),
    ("2024-03-01", "2024-04-01", 2),
    ("2024-04-01", "MAXVALUE", 2),
];
/// The list table's lists: (values, node index); then the DEFAULT shard on node 2.
pub const REGION_LISTS: [(&[&str], usize); 2] = [(&["US", "CA"], 0), (&["UK", "DE", "FR"], 1)];
pub const REGION_DEFAULT_NODE: usize = 2;
pub const REGIONS: [&str; 9] = ["US", "CA", "UK", "DE", "FR", "JP", "AU", "MX", "BR"];

pub const N_USERS: usize = 2000;
pub const N_EVENTS: usize = 6000;
pub const N_ANALYTICS: i64 = 1000;
pub const N_SALES: i64 = 3000;
pub const N_REGIONAL: i64 = 2000;
pub const N_CUSTOMERS: i64 = 300;

/// The test-only tables in the config: hash tables per key type (type learned from CREATE
/// TABLE), NULL-key tables, a siphash table, and tables tests write to.
const EXTRA_TABLES: &str = r#"
[[tables]]
name = "accounts"
method = "hash"
column = "id"
shards = 6

[[tables]]
name = "tags"
method = "reference"

[[tables]]
name = "h_int2"
method = "hash"
column = "k"
shards = 4

[[tables]]
name = "h_int4"
method = "hash"
column = "k"
shards = 6

[[tables]]
name = "h_int8"
method = "hash"
column = "k"
shards = 8

[[tables]]
name = "h_text"
method = "hash"
column = "k"
shards = 5

[[tables]]
name = "h_varchar"
method = "hash"
column = "k"
shards = 7

[[tables]]
name = "h_uuid"
method = "hash"
column = "k"
shards = 7

[[tables]]
name = "h_date"
method = "hash"
column = "k"
shards = 3

[[tables]]
name = "h_ts"
method = "hash"
column = "k"
shards = 4

[[tables]]
name = "h_ts_edge"
method = "hash"
column = "k"
shards = 16

[[tables]]
name = "h_sip"
method = "hash"
column = "k"
shards = 4
hash = "siphash"

[[tables]]
name = "h_null"
method = "hash"
column = "k"
shards = 5

[[tables]]
name = "missing_col"
method = "hash"
column = "k"
shards = 2

[[tables]]
name = "ddl_t"
method = "hash"
column = "id"
shards = 3

[[tables]]
name = "l_null"
method = "list"
column = "k"
type = "text"
lists = [ { values = ["a", "b"], node = "w1" }, { values = ["c"], node = "w2" }, { default = true, node = "w3" } ]

[[tables]]
name = "r_null"
method = "range"
column = "k"
type = "int8"
ranges = [ { from = "MINVALUE", to = 100, node = "w1" }, { from = 100, to = "MAXVALUE", node = "w2" } ]
"#;

/// The config shardgate serves in the tests: config/example.toml's tables over the given worker
/// ports, plus the test tables.
pub fn config_toml(ports: &[u16]) -> String {
    // A small spool memory, so every held result (cursors, portals fetched in batches) of the
    // suite goes through the spill file.
    let mut t = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\npool_size = 16\nspool_memory_bytes = 65536\n\n",
    );
    t += "[[users]]\nname = \"app\"\npassword = \"app-secret\"\n\n";
    t += "[[users]]\nname = \"reader\"\npassword = \"reader-secret\"\nrole = \"sg_reader\"\n\n";
    t += "[[users]]\nname = \"md5user\"\npassword = \"md5-secret\"\nauth = \"md5\"\n\n";
    for (i, p) in ports.iter().enumerate() {
        t += &format!(
            "[[nodes]]\nname = \"w{}\"\nurl = \"postgresql://postgres@127.0.0.1:{p}/app\"\n\n",
            i + 1
        );
    }
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml"))
            .expect("config/example.toml");
    let tables = &example[example.find("[[tables]]").expect("example has [[tables]]")..];
    t += tables;
    t += EXTRA_TABLES;
    t
}

pub struct Env {
    pub port: u16,
    pub worker_ports: Vec<u16>,
    pub root: PathBuf,
    pub toml: String,
}

static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
static CLUSTER: Mutex<Option<(LocalCluster, PathBuf)>> = Mutex::new(None);

/// The static runtime shardgate runs on (tests run on their own per-test runtimes).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    RT.get_or_init(|| shardgate::server::runtime(Some(2), 10_000).expect("runtime"))
}

/// The shared cluster: started, served and loaded on first use. Blocking; safe to call from a
/// test's async context (the work happens on a thread of its own).
pub fn env() -> &'static Env {
    let r = ENV.get_or_init(|| match std::thread::spawn(init).join() {
        Ok(r) => r,
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "harness init panicked".into())),
    });
    match r {
        Ok(e) => e,
        Err(e) => panic!("test cluster unavailable: {e}"),
    }
}

extern "C" {
    fn atexit(cb: extern "C" fn()) -> i32;
}

extern "C" fn stop_cluster() {
    if let Ok(mut g) = CLUSTER.lock() {
        if let Some((mut c, root)) = g.take() {
            c.stop();
            drop(c);
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}

/// A watchdog that stops the workers and removes their folder if this process dies without
/// running its exit handlers (killed, aborted).
fn spawn_watchdog(root: &Path) {
    let r = root.display().to_string().replace('\'', "'\\''");
    let script = format!(
        "trap '' INT HUP TERM; while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         for d in '{r}'/w*/data; do [ -f \"$d/postmaster.pid\" ] && kill -QUIT \"$(head -n1 \"$d/postmaster.pid\")\" 2>/dev/null; done; \
         sleep 1; rm -rf '{r}'",
        pid = std::process::id()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn init() -> Result<Env, String> {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let bin = stem
        .rsplit_once('-')
        .map(|(b, _)| b.to_string())
        .unwrap_or(stem);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let root = target
        .join("test-clusters")
        .join(format!("{bin}-{}", std::process::id()));
    let ports = shardgate::local::free_ports(NODES).map_err(|e| e.to_string())?;
    let specs: Vec<(String, u16)> = (0..NODES)
        .map(|i| (format!("w{}", i + 1), ports[i]))
        .collect();
    let specs: Vec<(&str, u16)> = specs.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    spawn_watchdog(&root);
    let cluster =
        LocalCluster::start(&root, &specs, "app").map_err(|e| format!("starting workers: {e}"))?;
    // SAFETY: registering a plain extern "C" function with libc's atexit.
    unsafe { atexit(stop_cluster) };
    let psql = |i: usize, db: &str, sql: &str| cluster.psql(i, db, sql).map_err(|e| e.to_string());
    psql(0, "postgres", "CREATE DATABASE oracle")?;
    for i in 0..NODES {
        psql(
            i,
            "app",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        )?;
        // The worker role of the config's `reader` user: no superuser, only what it is granted.
        psql(i, "app", "CREATE ROLE sg_reader LOGIN")?;
    }
    *CLUSTER.lock().map_err(|e| e.to_string())? = Some((cluster, root.clone()));

    let toml = config_toml(&ports);
    let cfg = shardgate::config::parse(&toml)?;
    let rt = runtime();
    let port = rt.block_on(async {
        shardgate::catalog::learn_key_types(&cfg).await?;
        let shared = shardgate::execute::Shared::new(cfg).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        tokio::spawn(async move {
            if let Err(e) = shardgate::server::serve(shared, listener, std::future::pending()).await
            {
                eprintln!("shardgate serve ended: {e}");
            }
        });
        Ok::<u16, String>(port)
    })?;
    let env = Env {
        port,
        worker_ports: ports,
        root,
        toml,
    };
    rt.block_on(load(&env))?;
    Ok(env)
}

fn spawn_conn<F: std::future::Future + Send + 'static>(conn: F) {
    tokio::spawn(async move {
        let _ = conn.await;
    });
}

pub async fn connect_as(user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
    connect_port(env().port, user, password).await
}

async fn connect_port(
    port: u16,
    user: &str,
    password: &str,
) -> Result<Client, tokio_postgres::Error> {
    let dsn = format!(
        "host=127.0.0.1 port={port} user={user} password={password} dbname=app connect_timeout=10"
    );
    let (client, conn) = tokio_postgres::connect(&dsn, NoTls).await?;
    spawn_conn(conn);
    Ok(client)
}

/// A session through shardgate.
pub async fn connect() -> Client {
    connect_as("app", "app-secret")
        .await
        .expect("connect to shardgate")
}

async fn direct(port: u16, db: &str) -> Client {
    let dsn = format!("host=127.0.0.1 port={port} user=postgres dbname={db} connect_timeout=10");
    let (client, conn) = tokio_postgres::connect(&dsn, NoTls)
        .await
        .expect("connect to worker");
    spawn_conn(conn);
    client
}

/// Plain PostgreSQL holding every row: worker 1, database `oracle`.
pub async fn oracle() -> Client {
    direct(env().worker_ports[0], "oracle").await
}

/// Worker i (0-based), database app, bypassing shardgate.
pub async fn worker(i: usize) -> Client {
    direct(env().worker_ports[i], "app").await
}

/// One statement's result in text form: column names, rows, and the command's row count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub count: u64,
}

impl TextResult {
    pub fn sorted(mut self) -> TextResult {
        self.rows.sort();
        self
    }
}

/// Every statement's result of a simple query, in order.
pub async fn simple(c: &Client, sql: &str) -> Result<Vec<TextResult>, tokio_postgres::Error> {
    let mut out = Vec::new();
    let mut cur = TextResult::default();
    for m in c.simple_query(sql).await? {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                cur.columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                if cur.columns.is_empty() {
                    cur.columns = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                cur.rows
                    .push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
            SimpleQueryMessage::CommandComplete(n) => {
                cur.count = n;
                out.push(std::mem::take(&mut cur));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The one result of a one-statement simple query.
pub async fn simple1(c: &Client, sql: &str) -> Result<TextResult, tokio_postgres::Error> {
    let mut v = simple(c, sql).await?;
    assert_eq!(v.len(), 1, "one result expected for {sql}");
    Ok(v.remove(0))
}

/// Rows of a one-statement query; panics with the query on error.
pub async fn rows(c: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    match simple1(c, sql).await {
        Ok(r) => r.rows,
        Err(e) => panic!("{sql}: {}", describe(&e)),
    }
}

/// A single text value (first row, first column).
pub async fn scalar(c: &Client, sql: &str) -> String {
    rows(c, sql).await[0][0].clone().unwrap_or_default()
}

/// An error's SQLSTATE and message for assertions and panic messages.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {}", d.code().code(), d.message()),
        None => format!("(no SQLSTATE) {e}"),
    }
}

pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_default()
}

/// Runs `sql` through shardgate and on the oracle; both must succeed with the same columns, the
/// same rows as a multiset and the same row count.
pub async fn assert_same(sg: &Client, or: &Client, sql: &str) {
    let got = simple1(sg, sql)
        .await
        .unwrap_or_else(|e| panic!("shardgate: {sql}: {}", describe(&e)));
    let want = simple1(or, sql)
        .await
        .unwrap_or_else(|e| panic!("oracle: {sql}: {}", describe(&e)));
    assert_eq!(got.columns, want.columns, "columns of {sql}");
    assert_eq!(got.count, want.count, "row count of {sql}");
    let (got, want) = (got.sorted(), want.sorted());
    assert_eq!(got.rows, want.rows, "rows of {sql}");
}

/// Runs a statement on both sides, ignoring rows but requiring success on both.
pub async fn both(sg: &Client, or: &Client, sql: &str) {
    if let Err(e) = sg.batch_execute(sql).await {
        panic!("shardgate: {sql}: {}", describe(&e));
    }
    if let Err(e) = or.batch_execute(sql).await {
        panic!("oracle: {sql}: {}", describe(&e));
    }
}

/// Quotes a string as an SQL literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Deterministic pseudo-random numbers (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

pub fn date_plus(base: &str, days: i64) -> String {
    let d = chrono::NaiveDate::parse_from_str(base, "%Y-%m-%d").expect("date");
    (d + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

pub fn ts_plus(base: &str, micros: i64) -> String {
    let d = chrono::NaiveDateTime::parse_from_str(base, "%Y-%m-%d %H:%M:%S").expect("timestamp");
    (d + chrono::Duration::microseconds(micros))
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// The rows every test can rely on (generated, never read back from the database).
pub struct Data {
    pub users: Vec<String>,
    /// table name → rows as `(v1, v2, ...)` SQL tuples, with the column list.
    pub tables: Vec<(&'static str, &'static str, Vec<String>)>,
}

pub fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(generate)
}

fn generate() -> Data {
    let mut r = Rng(2024);
    let users: Vec<String> = (0..N_USERS).map(|_| r.uuid()).collect();
    let user_rows = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let at = ts_plus(
                "2023-01-01 00:00:00",
                r.below(365 * 86_400) as i64 * 1_000_000,
            );
            format!("('{u}', 'user_{i}', 'user{i}@example.com', '{at}')")
        })
        .collect();
    let types = ["login", "logout", "purchase", "view", "click"];
    let event_rows = (0..N_EVENTS)
        .map(|_| {
            let u = &users[r.below(N_USERS as u64) as usize];
            let at = ts_plus(
                "2024-01-01 00:00:00",
                r.below(90 * 86_400 * 1_000_000) as i64,
            );
            let t = types[r.below(5) as usize];
            format!("('{}', '{u}', '{at}', '{t}')", r.uuid())
        })
        .collect();
    let analytics_rows = (1..=N_ANALYTICS)
        .map(|n| {
            let d = date_plus("2024-05-01", -(r.below(30) as i64));
            format!(
                "({n}, 'user_{n}', '{d}', {}, {}, {})",
                r.below(100),
                r.below(3600),
                r.below(50)
            )
        })
        .collect();
    let names = ["North", "South", "East", "West", "Central"];
    let sales_rows = (1..=N_SALES)
        .map(|n| {
            let d = date_plus("2023-11-15", r.below(200) as i64);
            let rep = if n % 17 == 0 {
                "NULL".to_string()
            } else {
                (1 + r.below(50)).to_string()
            };
            format!(
                "({n}, '{d}', {}, {}, {}, {}.{:02}, '{}', {rep})",
                1 + r.below(1000),
                1 + r.below(N_CUSTOMERS as u64),
                1 + r.below(10),
                10 + r.below(200),
                r.below(100),
                names[r.below(5) as usize]
            )
        })
        .collect();
    let regional_rows = (1..=N_REGIONAL)
        .map(|n| {
            let region = REGIONS[r.below(REGIONS.len() as u64) as usize];
            let country = REGIONS[r.below(REGIONS.len() as u64) as usize];
            let d = date_plus("2024-06-01", -(r.below(365) as i64));
            format!(
                "({n}, '{region}', '{country}', '{d}', {}.{:02})",
                10 + r.below(1000),
                r.below(100)
            )
        })
        .collect();
    let customer_rows = (1..=N_CUSTOMERS)
        .map(|n| {
            let country = ["US", "UK", "DE", "FR", "CA", "AU"][(n % 6) as usize];
            let d = date_plus("2022-01-01", r.below(1000) as i64);
            format!(
                "({n}, 'Customer {n}', 'customer{n}@example.com', '{country}', '{d}', {}.{:02})",
                r.below(10_000),
                r.below(100)
            )
        })
        .collect();
    Data {
        users,
        tables: vec![
            ("users", "user_uuid, username, email, created_at", user_rows),
            ("user_events", "id, user_uuid, event_time, type", event_rows),
            ("user_analytics", "user_id, username, activity_date, page_views, session_duration, actions_count", analytics_rows),
            ("sales_analytics", "sale_id, sale_date, product_id, customer_id, quantity, unit_price, region, sales_rep_id", sales_rows),
            ("regional_sales", "sale_id, region, country, sale_date, amount", regional_rows),
            ("customers", "customer_id, name, email, country, signup_date, lifetime_value", customer_rows),
        ],
    }
}

/// The schema, the same text through shardgate and on the oracle.
pub const SCHEMA: [&str; 10] = [
    "CREATE TABLE users (user_uuid uuid PRIMARY KEY, username text NOT NULL, email text NOT NULL, created_at timestamp NOT NULL)",
    "CREATE TABLE user_events (id uuid NOT NULL, user_uuid uuid NOT NULL, event_time timestamp(6) NOT NULL, type varchar(255) NOT NULL, PRIMARY KEY (user_uuid, id))",
    "CREATE INDEX user_events_user_uuid_idx ON user_events (user_uuid)",
    "CREATE TABLE user_analytics (user_id bigint NOT NULL, username text NOT NULL, activity_date date NOT NULL, page_views integer DEFAULT 0, session_duration integer DEFAULT 0, actions_count integer DEFAULT 0, PRIMARY KEY (user_id, username))",
    "CREATE TABLE sales_analytics (sale_id bigint NOT NULL, sale_date date NOT NULL, product_id integer NOT NULL, customer_id integer NOT NULL, quantity integer NOT NULL, unit_price numeric(10,2) NOT NULL, total_amount numeric(10,2) GENERATED ALWAYS AS (quantity * unit_price) STORED, region text NOT NULL, sales_rep_id integer, PRIMARY KEY (sale_id, sale_date))",
    "CREATE TABLE regional_sales (sale_id bigint NOT NULL, region text NOT NULL, country text NOT NULL, sale_date date NOT NULL, amount numeric(10,2) NOT NULL, PRIMARY KEY (sale_id, region))",
    "CREATE TABLE customers (customer_id integer PRIMARY KEY, name text NOT NULL, email text UNIQUE, country text NOT NULL, signup_date date DEFAULT CURRENT_DATE, lifetime_value numeric(10,2) DEFAULT 0)",
    "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL DEFAULT 0, updated_at timestamp)",
    "CREATE TABLE tags (tag_id integer PRIMARY KEY, label text NOT NULL)",
    "CREATE INDEX sales_analytics_region_idx ON sales_analytics (region)",
];

/// Multi-row INSERT statements of `per` rows each.
pub fn inserts(table: &str, cols: &str, rows: &[String], per: usize) -> Vec<String> {
    rows.chunks(per)
        .map(|c| format!("INSERT INTO {table} ({cols}) VALUES {}", c.join(", ")))
        .collect()
}

async fn load(env: &Env) -> Result<(), String> {
    let sg = connect_port(env.port, "app", "app-secret")
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let or = direct(env.worker_ports[0], "oracle").await;
    let fail = |who: &str, sql: &str, e: tokio_postgres::Error| {
        let short: String = sql.chars().take(200).collect();
        format!("setup on {who}: {short}: {}", describe(&e))
    };
    for sql in SCHEMA {
        sg.batch_execute(sql)
            .await
            .map_err(|e| fail("shardgate", sql, e))?;
        or.batch_execute(sql)
            .await
            .map_err(|e| fail("oracle", sql, e))?;
    }
    for (table, cols, rows) in &data().tables {
        for sql in inserts(table, cols, rows, 200) {
            let n = simple1(&sg, &sql)
                .await
                .map_err(|e| fail("shardgate", &sql, e))?
                .count;
            let m = simple1(&or, &sql)
                .await
                .map_err(|e| fail("oracle", &sql, e))?
                .count;
            if n != m {
                return Err(format!(
                    "INSERT into {table}: shardgate reported {n} rows, oracle {m}"
                ));
            }
        }
    }
    for port in &env.worker_ports {
        let w = direct(*port, "app").await;
        w.batch_execute("SELECT pg_stat_statements_reset()")
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Names and remainders of a table's partitions on worker i: partition name → shard id.
pub async fn partitions(w: &Client, table: &str) -> BTreeMap<String, String> {
    let sql = format!(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{table}'::regclass"
    );
    rows(w, &sql)
        .await
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[1].clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// For a hash table with `modulus` shards placed r % 3: checks through shardgate and on the
/// workers that inserting `values` (SQL literals) routes every row to a worker owning its
/// PostgreSQL partition, that the shard shardgate computes equals PostgreSQL's, and that every
/// value is found again by a keyed lookup.
pub async fn check_hash_type(table: &str, sql_type: &str, modulus: u64, values: &[String]) {
    env();
    let sg = connect().await;
    sg.batch_execute(&format!(
        "CREATE TABLE {table} (k {sql_type} PRIMARY KEY, n integer NOT NULL)"
    ))
    .await
    .unwrap_or_else(|e| panic!("create {table}: {}", describe(&e)));
    let rows: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(n, v)| format!("({v}, {n})"))
        .collect();
    for chunk in rows.chunks(200) {
        let sql = format!("INSERT INTO {table} (k, n) VALUES {}", chunk.join(", "));
        let r = simple1(&sg, &sql)
            .await
            .unwrap_or_else(|e| panic!("insert into {table} (a misrouted row?): {}", describe(&e)));
        assert_eq!(r.count as usize, chunk.len(), "INSERT count for {table}");
    }
    // PostgreSQL's own remainder of every value, from a plain hash-partitioned table.
    let or = oracle().await;
    let mut ddl =
        format!("CREATE TABLE {table}_pg (k {sql_type}, n integer) PARTITION BY HASH (k);");
    for r in 0..modulus {
        ddl += &format!("CREATE TABLE {table}_pg_{r} PARTITION OF {table}_pg FOR VALUES WITH (MODULUS {modulus}, REMAINDER {r});");
    }
    or.batch_execute(&ddl)
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    for sql in inserts(&format!("{table}_pg"), "k, n", &rows, 500) {
        or.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{}", describe(&e)));
    }
    let pg: BTreeMap<String, String> = self::rows(
        &or,
        &format!("SELECT n::text, tableoid::regclass::text FROM {table}_pg"),
    )
    .await
    .into_iter()
    .map(|r| {
        let part = r[1].clone().unwrap_or_default();
        (
            r[0].clone().unwrap_or_default(),
            part.rsplit('_').next().unwrap_or("").to_string(),
        )
    })
    .collect();
    assert_eq!(pg.len(), values.len());
    // Where each row landed: worker and partition.
    let mut seen = BTreeMap::new();
    for i in 0..NODES {
        let w = worker(i).await;
        // Each worker holds the whole tree; its rows are in the partitions it owns.
        let parts = partitions(&w, table).await;
        assert_eq!(parts.len() as u64, modulus, "{table} on worker {i}");
        for (name, bound) in parts {
            let r: u64 = name
                .rsplit('_')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("partition suffix");
            assert!(
                bound.contains(&format!("modulus {modulus}, remainder {r}")),
                "{name}: {bound}"
            );
        }
        let sql = format!("SELECT n::text, tableoid::regclass::text, satisfies_hash_partition('{table}'::regclass, {modulus}, substring(tableoid::regclass::text from '[0-9]+$')::int, k) FROM {table}");
        for r in self::rows(&w, &sql).await {
            let n = r[0].clone().unwrap_or_default();
            let part = r[1].clone().unwrap_or_default();
            assert_eq!(
                r[2].as_deref(),
                Some("t"),
                "row {n} in {part} on worker {i}"
            );
            let rem = part.rsplit('_').next().unwrap_or("").to_string();
            assert_eq!(
                rem.parse::<usize>().ok().map(|r| r % NODES),
                Some(i),
                "row {n} in {part} on worker {i}, owned elsewhere"
            );
            assert_eq!(
                pg.get(&n),
                Some(&rem),
                "row {n} ({}) on worker {i} in {part}",
                values[n.parse::<usize>().unwrap_or(0)]
            );
            assert!(seen.insert(n.clone(), i).is_none(), "row {n} stored twice");
        }
    }
    assert_eq!(
        seen.len(),
        values.len(),
        "rows stored over all workers for {table}"
    );
    // shardgate's own hash (the library) agrees with PostgreSQL on every value.
    let (t, ty) = typed_table(table, sql_type);
    for (n, v) in values.iter().enumerate() {
        let text = if v.starts_with('\'') {
            v[1..v.len() - 1].replace("''", "'")
        } else {
            v.clone()
        };
        let key = shardgate::shardmap::KeyValue::parse_text(ty, &text)
            .unwrap_or_else(|e| panic!("{v}: {e}"));
        let shard = t.shard_of(Some(&key)).expect("shard").expect("some shard");
        assert_eq!(
            Some(&shard.to_string()),
            pg.get(&n.to_string()),
            "shard of {v} ({sql_type})"
        );
    }
    // Keyed lookups through shardgate find each of a sample of rows: simple protocol (key as a
    // literal) and extended protocol (key as a binary parameter).
    let st = sg
        .prepare(&format!("SELECT n FROM {table} WHERE k = $1"))
        .await
        .expect("prepare lookup");
    for (n, v) in values.iter().enumerate().step_by(values.len() / 300 + 1) {
        let got = self::rows(&sg, &format!("SELECT n FROM {table} WHERE k = {v}")).await;
        assert_eq!(
            got,
            vec![vec![Some(n.to_string())]],
            "lookup of {v} in {table}"
        );
        let text = if v.starts_with('\'') {
            v[1..v.len() - 1].replace("''", "'")
        } else {
            v.clone()
        };
        let p = binary_param(sql_type, &text);
        let got = sg.query(&st, &[p.as_ref()]).await.expect("extended lookup");
        let got: Vec<i32> = got.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            got,
            vec![n as i32],
            "lookup of {v} in {table} with a binary parameter"
        );
    }
}

/// A key's text as the Rust value tokio-postgres sends in binary format for `sql_type`.
pub fn binary_param(
    sql_type: &str,
    text: &str,
) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
    let base = sql_type.split('(').next().unwrap_or(sql_type);
    match base {
        "int2" => Box::new(text.parse::<i16>().expect("int2")),
        "int4" => Box::new(text.parse::<i32>().expect("int4")),
        "int8" => Box::new(text.parse::<i64>().expect("int8")),
        "text" | "varchar" => Box::new(text.to_string()),
        "uuid" => Box::new(text.parse::<uuid::Uuid>().expect("uuid")),
        "date" => Box::new(chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")),
        "timestamp" => Box::new(
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").expect("timestamp"),
        ),
        other => panic!("binary_param: add type {other}"),
    }
}

/// The served config, parsed once more for the tests' own use of shardgate's shard map.
pub fn shard_config() -> &'static shardgate::config::Config {
    static CFG: OnceLock<shardgate::config::Config> = OnceLock::new();
    CFG.get_or_init(|| shardgate::config::parse(&env().toml).expect("config"))
}

/// `table` from the test config's shard map, its key typed as `ty` (a SQL type name).
pub fn typed_table(
    table: &str,
    ty: &str,
) -> (shardgate::shardmap::TableDist, shardgate::shardmap::KeyType) {
    let ty = shardgate::shardmap::KeyType::from_sql_name(ty).expect("key type");
    let t = shard_config()
        .shardmap
        .get(table)
        .expect("table in config")
        .with_key_type(ty)
        .expect("typed");
    (t, ty)
}

/// The node shardgate's shard map gives `key` (text form) of `table`, read as `ty`.
pub fn node_of(table: &str, ty: &str, key: &str) -> usize {
    let (t, ty) = typed_table(table, ty);
    let v = shardgate::shardmap::KeyValue::parse_text(ty, key).expect("key");
    t.node_of(t.shard_of(Some(&v)).expect("shard").expect("some shard"))
}

/// Calls of statements whose text contains `marker`, per worker (pg_stat_statements).
pub async fn calls_per_worker(marker: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for i in 0..NODES {
        let w = worker(i).await;
        let sql = format!("SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements WHERE query LIKE '%{marker}%' AND query NOT LIKE '%pg_stat_statements%'");
        let row = w.query_one(&sql, &[]).await.expect("pg_stat_statements");
        out.push(row.get::<_, i64>(0));
    }
    out
}

/// A row read in binary format, each value decoded by its column type and printed.
pub fn row_values(row: &tokio_postgres::Row) -> Vec<String> {
    use tokio_postgres::types::Type;
    fn show<T: std::fmt::Debug>(v: Option<T>) -> String {
        v.map(|v| format!("{v:?}")).unwrap_or_else(|| "NULL".into())
    }
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            match *ty {
                Type::INT8 => show(row.get::<_, Option<i64>>(i)),
                Type::INT4 => show(row.get::<_, Option<i32>>(i)),
                Type::INT2 => show(row.get::<_, Option<i16>>(i)),
                Type::FLOAT8 => show(row.get::<_, Option<f64>>(i)),
                Type::BOOL => show(row.get::<_, Option<bool>>(i)),
                Type::TEXT | Type::VARCHAR | Type::NAME => show(row.get::<_, Option<String>>(i)),
                Type::UUID => show(row.get::<_, Option<uuid::Uuid>>(i)),
                Type::DATE => show(row.get::<_, Option<chrono::NaiveDate>>(i)),
                Type::TIMESTAMP => show(row.get::<_, Option<chrono::NaiveDateTime>>(i)),
                Type::NUMERIC => show(row.get::<_, Option<rust_decimal::Decimal>>(i)),
                _ => panic!("row_values: add type {ty}"),
            }
        })
        .collect()
}

/// Binary-format rows, decoded and sorted, with the column names.
pub fn typed(rows: &[tokio_postgres::Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let cols = rows
        .first()
        .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default();
    let mut v: Vec<Vec<String>> = rows.iter().map(row_values).collect();
    v.sort();
    (cols, v)
}

/// Every row of `table` from all workers (as text, sorted) equals the oracle's rows.
pub async fn assert_rows_split_exactly(table: &str) {
    let mut got = Vec::new();
    for i in 0..NODES {
        got.extend(rows(&worker(i).await, &format!("SELECT * FROM {table}")).await);
    }
    let mut want = rows(&oracle().await, &format!("SELECT * FROM {table}")).await;
    got.sort();
    want.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "{table}: rows over all workers vs oracle"
    );
    assert!(
        got == want,
        "{table}: the workers' rows differ from the oracle's"
    );
}

/// n distinct integers in [lo, hi], edges included, as SQL literals.
pub fn ints(lo: i64, hi: i64, n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed);
    let mut set: BTreeSet<i64> = [lo, hi, 0, 1, -1, 2, 42, 1000]
        .into_iter()
        .filter(|v| (lo..=hi).contains(v))
        .collect();
    while set.len() < n {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        set.insert((lo as i128 + (r.next() as u128 % span) as i128) as i64);
        set.insert((r.below(5000) as i64 - 2500).clamp(lo, hi));
    }
    set.into_iter().map(|v| v.to_string()).collect()
}

/// n distinct strings (quotes, unicode, long ones), as SQL literals.
pub fn texts(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed);
    let mut set: BTreeSet<String> = [
        "",
        " ",
        "a",
        "A",
        "it's",
        "back\\slash",
        "héllo wörld",
        "日本語",
        "emoji 🎉",
        "trailing ",
        "tab\tx",
        "line\nbreak",
        "US",
        "us",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let chars: Vec<char> = "abcXYZ019 _-'\"%$.,;:()é中".chars().collect();
    while set.len() < n {
        set.insert(format!("user_{}", r.below(1_000_000)));
        let max = if r.below(10) == 0 { 400 } else { 40 };
        let len = r.below(max) as usize;
        let t: String = (0..len)
            .map(|_| chars[r.below(chars.len() as u64) as usize])
            .collect();
        // '' inside a value is kept out: a split multi-row INSERT mangles it (see
        // split_insert_keeps_string_values); these tests are about the hash.
        if !t.contains("''") {
            set.insert(t);
        }
    }
    set.iter().map(|s| lit(s)).collect()
}

/// Queries shardgate answers in this issue (routed to one node, or concatenated): the same
/// columns and the same rows (as a multiset) as one PostgreSQL holding every row.
pub fn read_queries() -> Vec<String> {
    let u = &data().users;
    let q = |s: &str| s.to_string();
    vec![
        format!("SELECT * FROM users WHERE user_uuid = '{}'", u[0]),
        format!("SELECT username, email FROM users WHERE user_uuid = '{}' AND username LIKE 'user%'", u[1]),
        q("SELECT * FROM users WHERE user_uuid = '00000000-0000-4000-8000-000000000000'"),
        format!("SELECT * FROM users WHERE user_uuid IN ('{}', '{}', '{}', '{}')", u[2], u[3], u[4], u[5]),
        format!("SELECT * FROM users WHERE user_uuid = '{}'::uuid AND created_at > '2020-01-01'", u[6]),
        format!("select * from USERS where USER_UUID = '{}'", u[7].to_uppercase()),
        format!("SELECT * FROM user_events WHERE user_uuid = '{}'", u[0]),
        format!("SELECT count(*) FROM user_events WHERE user_uuid = '{}'", u[0]),
        format!("SELECT type, count(*) FROM user_events WHERE user_uuid = '{}' GROUP BY type ORDER BY type", u[8]),
        format!("SELECT DISTINCT type FROM user_events WHERE user_uuid = '{}'", u[9]),
        format!("SELECT * FROM user_events WHERE user_uuid = '{}' AND type IN ('login', 'view')", u[10]),
        q("SELECT * FROM user_analytics WHERE user_id = 42"),
        q("SELECT * FROM user_analytics WHERE user_id IN (1, 2, 3, 500, 999)"),
        q("SELECT user_id, page_views * 2 AS pv2 FROM user_analytics WHERE user_id = 7 OR user_id = 8"),
        q("SELECT * FROM user_analytics WHERE user_id = 1000000"),
        q("SELECT * FROM user_analytics WHERE user_id = -5"),
        q("SELECT * FROM user_analytics WHERE 79 = user_id"),
        q("SELECT * FROM \"user_analytics\" WHERE \"user_id\" = 77"),
        q("SELECT * FROM public.user_analytics WHERE user_id = 78"),
        q("SELECT * FROM user_analytics WHERE user_id = '80'"),
        q("SELECT * FROM user_analytics WHERE user_id = 3 LIMIT 1"),
        q("SELECT user_id, username FROM user_analytics WHERE page_views > 90"),
        q("SELECT user_id, username FROM user_analytics"),
        q("SELECT * FROM sales_analytics WHERE sale_date = '2024-02-14'"),
        q("SELECT * FROM sales_analytics WHERE sale_date BETWEEN '2024-01-20' AND '2024-02-10'"),
        q("SELECT sale_id, total_amount FROM sales_analytics WHERE sale_date < '2024-01-01'"),
        q("SELECT sale_id FROM sales_analytics WHERE sale_date >= '2024-04-01'"),
        q("SELECT sale_id, region FROM sales_analytics WHERE sale_date > '2024-02-28' AND sale_date <= '2024-03-02'"),
        q("SELECT count(*), sum(total_amount) FROM sales_analytics WHERE sale_date >= '2024-02-01' AND sale_date < '2024-03-01'"),
        q("SELECT * FROM sales_analytics WHERE sale_date = '2024-03-15' AND region = 'North'"),
        q("SELECT * FROM sales_analytics WHERE sale_date IS NULL"),
        q("SELECT * FROM regional_sales WHERE region = 'US'"),
        q("SELECT * FROM regional_sales WHERE region IN ('UK', 'FR')"),
        q("SELECT * FROM regional_sales WHERE region = 'JP'"),
        q("SELECT region, count(*) FROM regional_sales WHERE region = 'DE' GROUP BY region"),
        q("SELECT sale_id, amount FROM regional_sales WHERE amount > 900"),
        q("SELECT * FROM customers"),
        q("SELECT country, count(*) FROM customers GROUP BY country ORDER BY country"),
        q("SELECT * FROM customers WHERE customer_id = 17"),
        format!("SELECT u.username, e.type, e.event_time FROM users u JOIN user_events e ON u.user_uuid = e.user_uuid WHERE u.user_uuid = '{}'", u[0]),
        q("SELECT u.email, e.id FROM users u JOIN user_events e ON e.user_uuid = u.user_uuid WHERE e.type = 'purchase'"),
        q("SELECT s.sale_id, c.name FROM sales_analytics s JOIN customers c ON c.customer_id = s.customer_id WHERE s.sale_date = '2024-01-15'"),
        q("SELECT r.sale_id, c.name FROM regional_sales r JOIN customers c ON c.country = r.country WHERE r.region = 'CA' AND c.customer_id < 20"),
        q("SELECT 1 AS one, 'x'::text AS two, NULL::int AS three"),
    ]
}

/// Two keys of `accounts` on different nodes.
pub fn keys_on_two_nodes(from: i64) -> (i64, i64) {
    let a = from;
    let na = node_of("accounts", "int8", &a.to_string());
    let b = (from + 1..)
        .find(|k| node_of("accounts", "int8", &k.to_string()) != na)
        .expect("another node");
    (a, b)
}

/// Rows sorted, for comparing multisets.
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Serializes the pg_stat_statements probes: statements whose text contains `sg_probe` are run
/// only by probes, so a change in their calls is the probe's own doing.
static PROBE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `f` (statements through shardgate whose text contains `sg_probe`) and returns how many
/// statements each worker executed meanwhile. pg_stat_statements merges statements that differ
/// only in constants and aliases, so this counts calls before and after.
pub async fn executions(f: impl std::future::Future<Output = ()>) -> Vec<i64> {
    let _one_at_a_time = PROBE.lock().await;
    let before = calls_per_worker("sg_probe").await;
    f.await;
    let after = calls_per_worker("sg_probe").await;
    after.iter().zip(&before).map(|(a, b)| a - b).collect()
}

/// Runs `f` (one statement through shardgate) and returns the one worker that executed it,
/// asserting exactly one worker did, exactly once.
pub async fn probe(f: impl std::future::Future<Output = ()>) -> usize {
    let delta = executions(f).await;
    assert_eq!(
        delta.iter().sum::<i64>(),
        1,
        "executions per worker: {delta:?}"
    );
    delta.iter().position(|d| *d == 1).unwrap_or(0)
}

/// A second shardgate over the same cluster whose shutdown the test triggers: its port, the
/// trigger, and the serve task (finished once draining is done).
pub async fn extra_server() -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    extra_server_with(env().toml.clone()).await
}

/// A second in-process shardgate over the same workers, serving `toml`.
pub async fn extra_server_with(
    toml: String,
) -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    let task = runtime().spawn(async move {
        let cfg = shardgate::config::parse(&toml).expect("config");
        shardgate::catalog::learn_key_types(&cfg)
            .await
            .expect("key types");
        let shared = shardgate::execute::Shared::new(cfg).await.expect("shared");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let _ = port_tx.send(listener.local_addr().expect("addr").port());
        let shutdown = async move {
            let _ = rx.await;
        };
        shardgate::server::serve(shared, listener, shutdown)
            .await
            .expect("serve");
    });
    (port_rx.await.expect("extra server port"), tx, task)
}

pub async fn connect_to(port: u16) -> Result<Client, tokio_postgres::Error> {
    connect_port(port, "app", "app-secret").await
}
