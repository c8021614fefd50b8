//! COPY through shardgate against plain PostgreSQL: the same COPY FROM STDIN / TO STDOUT (psql,
//! and a raw client for CopyData cut at chosen bytes and CopyFail) through shardgate and on an
//! oracle database holding the same tables partitioned the same way; compared are the tables'
//! rows, the `COPY n` tags, the errors (SQLSTATE, message, DETAIL, CONTEXT with the client's line
//! number), that a failed COPY keeps no row on any worker, and where hash rows land.

mod common;
#[path = "common/wire.rs"]
mod wire;

use std::process::{Command, Stdio};

use common::own::Own;
use tokio_postgres::{Client, NoTls};

const TABLES: &str = r#"
[[tables]]
name = "rg"
method = "range"
column = "k"
type = "int8"
ranges = [ { from = "MINVALUE", to = 10, node = "w1" }, { from = 20, to = "MAXVALUE", node = "w2" } ]

[[tables]]
name = "ls"
method = "list"
column = "k"
type = "text"
lists = [ { values = ["a", "b"], node = "w1" }, { values = ["c"], node = "w3" } ]

[[tables]]
name = "hx"
method = "hash"
column = "k"
shards = 5

[[tables]]
name = "refs"
method = "reference"
"#;

/// The tables on shardgate, and (partitioned as shardgate partitions them) on the oracle.
const DDL: [&str; 4] = [
    "CREATE TABLE rg (k int8, n int4, v text)",
    "CREATE TABLE ls (k text, n int4)",
    "CREATE TABLE hx (k text, v text, n int4)",
    "CREATE TABLE refs (id int4 PRIMARY KEY, v text)",
];
const ORACLE_DDL: &str = "
CREATE TABLE t (id int8 PRIMARY KEY, v text) PARTITION BY HASH (id);
CREATE TABLE t_0 PARTITION OF t FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE t_1 PARTITION OF t FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE t_2 PARTITION OF t FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE t_3 PARTITION OF t FOR VALUES WITH (MODULUS 4, REMAINDER 3);
INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i;
CREATE TABLE rg (k int8, n int4, v text) PARTITION BY RANGE (k);
CREATE TABLE rg_0 PARTITION OF rg FOR VALUES FROM (MINVALUE) TO (10);
CREATE TABLE rg_1 PARTITION OF rg FOR VALUES FROM (20) TO (MAXVALUE);
CREATE TABLE ls (k text, n int4) PARTITION BY LIST (k);
CREATE TABLE ls_0 PARTITION OF ls FOR VALUES IN ('a', 'b');
CREATE TABLE ls_1 PARTITION OF ls FOR VALUES IN ('c');
CREATE TABLE hx (k text, v text, n int4);
CREATE TABLE refs (id int4 PRIMARY KEY, v text);
";

struct Both {
    own: Own,
    oracle: Client,
}

async fn direct(port: u16, db: &str) -> Client {
    let dsn = format!("host=127.0.0.1 port={port} user=postgres dbname={db} connect_timeout=10");
    let (c, conn) = tokio_postgres::connect(&dsn, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

async fn start(name: &str) -> Both {
    let own = Own::start_with_tables(name, 3, "", "", TABLES).await;
    let sg = own.connect().await.expect("connect");
    for d in DDL {
        sg.batch_execute(d).await.expect("create through shardgate");
    }
    own.worker(0)
        .await
        .batch_execute("CREATE DATABASE oracle")
        .await
        .expect("oracle db");
    let oracle = direct(own.worker_ports[0], "oracle").await;
    oracle.batch_execute(ORACLE_DDL).await.expect("oracle ddl");
    Both { own, oracle }
}

/// What psql printed: stdout, and the ERROR/DETAIL/CONTEXT lines of stderr.
#[derive(Debug, PartialEq)]
struct Psql {
    out: Vec<u8>,
    err: Vec<String>,
}

fn psql(port: u16, user: &str, db: &str, sql: &str, input: &[u8]) -> Psql {
    let mut child = Command::new("psql")
        .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
        .args(["-d", db, "-v", "VERBOSITY=verbose", "-c", sql])
        .env("PGPASSWORD", "app-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(input);
    }
    let o = child.wait_with_output().expect("psql output");
    let err = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| {
            ["ERROR:", "DETAIL:", "CONTEXT:", "HINT:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect();
    Psql { out: o.stdout, err }
}

impl Both {
    fn sg(&self, sql: &str, input: &[u8]) -> Psql {
        psql(self.own.port, "app", "app", sql, input)
    }

    fn or(&self, sql: &str, input: &[u8]) -> Psql {
        psql(self.own.worker_ports[0], "postgres", "oracle", sql, input)
    }

    /// The same COPY both ways: the same output and errors.
    fn same(&self, sql: &str, input: &[u8]) -> Psql {
        let (s, o) = (self.sg(sql, input), self.or(sql, input));
        assert_eq!(s.err, o.err, "errors of {sql}");
        assert_eq!(
            String::from_utf8_lossy(&s.out),
            String::from_utf8_lossy(&o.out),
            "output of {sql}"
        );
        s
    }

    async fn rows(&self, table: &str) -> (Vec<String>, Vec<String>) {
        let sql = format!("SELECT t::text FROM {table} t");
        let sg = self.own.connect().await.expect("connect");
        let get = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
            let mut v: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            v.sort();
            v
        };
        let a = get(sg.query(&sql, &[]).await.expect("sg rows"));
        let b = get(self.oracle.query(&sql, &[]).await.expect("oracle rows"));
        (a, b)
    }

    async fn same_rows(&self, table: &str) -> usize {
        let (a, b) = self.rows(table).await;
        assert_eq!(a, b, "rows of {table}");
        a.len()
    }

    /// Rows of `table` on each worker, bypassing shardgate.
    async fn per_worker(&self, table: &str) -> Vec<i64> {
        let mut out = Vec::new();
        for i in 0..3 {
            let w = self.own.worker(i).await;
            let r = w
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await;
            // -1: the table has no shard on that worker.
            out.push(r.map_or(-1, |r| r.get(0)));
        }
        out
    }
}

fn text_rows(from: i64, n: i64) -> Vec<u8> {
    let mut d = Vec::new();
    for i in from..from + n {
        // Escapes copyfromparse.c reads: tab, newline, backslash, octal and hex.
        d.extend_from_slice(format!("{i}\tv{i}\\tx\\\\y\\n\\101\\x42\n").as_bytes());
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_matches_postgres() {
    let b = start("copy-from").await;
    // Text into the hash table: rows routed by key, one tag with the sum.
    let r = b.same("COPY t FROM STDIN", &text_rows(101, 700));
    assert_eq!(String::from_utf8_lossy(&r.out), "COPY 700\n");
    assert_eq!(b.same_rows("t").await, 800);
    // Rows land where PostgreSQL's own hash puts them.
    for i in 0..3 {
        let w = b.own.worker(i).await;
        let bad: i64 = w
            .query_one(
                "SELECT count(*) FROM t WHERE NOT satisfies_hash_partition('t'::regclass, 4, \
                 substring(tableoid::regclass::text from '[0-9]+$')::int, id)",
                &[],
            )
            .await
            .expect("placement")
            .get(0);
        assert_eq!(bad, 0, "worker {i}");
    }
    assert_eq!(b.per_worker("t").await.iter().sum::<i64>(), 800);

    // CSV with a header, quoted newlines, a column list with the key second, NULLs.
    let csv = b"v,k,n\n\"multi\nline\",alpha,1\n\"say \"\"hi\"\"\",beta,2\n,gamma,\nx,\"\",4\n";
    let r = b.same(
        "COPY hx (v, k, n) FROM STDIN WITH (FORMAT csv, HEADER)",
        csv,
    );
    assert_eq!(String::from_utf8_lossy(&r.out), "COPY 4\n");
    b.same(
        "COPY hx FROM STDIN WITH CSV",
        b"delta,\"d\",5\r\nepsilon,e,6\r\n",
    );
    b.same(
        "COPY hx (k, v) FROM STDIN (DELIMITER '|', NULL 'nil')",
        b"zeta|nil\nnil|eta\n",
    );
    assert_eq!(b.same_rows("hx").await, 8);

    // Binary: made by the oracle's own COPY TO, read back through shardgate.
    let bin = b.or(
        "COPY (SELECT i::int8, 'b' || i FROM generate_series(1001, 1300) i) TO STDOUT (FORMAT binary)",
        b"",
    );
    assert!(bin.err.is_empty(), "{:?}", bin.err);
    let r = b.same("COPY t FROM STDIN (FORMAT binary)", &bin.out);
    assert_eq!(String::from_utf8_lossy(&r.out), "COPY 300\n");
    assert_eq!(b.same_rows("t").await, 1100);

    // A reference table: every row on every worker, the count once.
    let r = b.same("COPY refs FROM STDIN", b"1\tone\n2\ttwo\n3\t\\N\n");
    assert_eq!(String::from_utf8_lossy(&r.out), "COPY 3\n");
    assert_eq!(b.per_worker("refs").await, vec![3, 3, 3]);
    b.same_rows("refs").await;

    // Range and list tables, with a gap; the key column left out is NULL.
    b.same("COPY rg FROM STDIN", b"1\t1\ta\n25\t2\tb\n-5\t3\tc\n");
    b.same("COPY ls FROM STDIN", b"a\t1\nc\t2\nb\t3\n");
    b.same_rows("rg").await;
    b.same_rows("ls").await;
    b.same("COPY hx (v) FROM STDIN", b"no key\n");
    b.same_rows("hx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_fail_like_postgres_and_keep_nothing() {
    let b = start("copy-errors").await;
    let before = b.per_worker("t").await;
    let cases: &[(&str, &[u8])] = &[
        // shardgate's own refusals: a key that does not read, a key no shard takes.
        ("COPY t FROM STDIN", b"1001\ta\n1002\tb\nabc\tc\n1003\td\n"),
        ("COPY rg FROM STDIN", b"1\t1\ta\n25\t2\tb\n15\t3\tc\n"),
        ("COPY ls (n, k) FROM STDIN", b"1\ta\n2\tz\n"),
        ("COPY t FROM STDIN (FORMAT csv)", b"1001,a\n1002,\"b\n"),
        // Workers' refusals, their line numbers read as the client's.
        (
            "COPY t FROM STDIN",
            b"1001\ta\n1002\tb\n1003\tc\n1004\n1005\te\n",
        ),
        ("COPY t FROM STDIN", b"1001\ta\n1002\tb\n1003\tc\td\n"),
        (
            "COPY rg FROM STDIN",
            b"1\t1\ta\n25\t2\tb\n26\t3\tc\n27\tx\td\n2\t5\te\n",
        ),
        ("COPY t FROM STDIN", b"1001\ta\n1002\tb\n1\tdup\n"),
        ("COPY t (v) FROM STDIN", b"a\n"),
        (
            "COPY t FROM STDIN (FORMAT csv, HEADER)",
            b"id,v\n1001,\"x\ny\"\n1002,b\nq,z\n",
        ),
        ("COPY t FROM STDIN", b"1001\ta\n1002\tb\r\n"),
        ("COPY t FROM STDIN", b"1001\ta\n\\.x\n"),
        (
            "COPY t FROM STDIN (FORMAT binary)",
            b"not a binary file at all",
        ),
        ("COPY t FROM STDIN WITH (FORMAT nonsense)", b""),
    ];
    for (sql, input) in cases {
        let r = b.same(sql, input);
        assert!(!r.err.is_empty(), "{sql} should fail");
        assert_eq!(b.per_worker("t").await, before, "{sql}: rows kept");
        // Every node holds the parent, the nodes without a shard an empty one.
        assert_eq!(b.per_worker("rg").await, vec![0, 0, 0], "{sql}: rows kept");
        assert_eq!(b.per_worker("ls").await, vec![0, 0, 0], "{sql}: rows kept");
    }
    // The first bad row wins, whichever node holds it (a later one is refused by shardgate).
    b.same("COPY rg FROM STDIN", b"25\tx\ta\n15\t1\tb\n");
    b.same("COPY rg FROM STDIN", b"25\t1\ta\n15\t1\tb\n1\tx\tc\n");

    // The client's CopyFail; CopyData cut anywhere.
    let mut sg = wire::Conn::connect(b.own.port, "app", "app-secret", "app")
        .await
        .expect("raw connect");
    let mut or = wire::Conn::connect(b.own.worker_ports[0], "postgres", "", "oracle")
        .await
        .expect("raw oracle");
    let data = text_rows(2001, 50);
    let (x, y) = data.split_at(333);
    let sql = "COPY t FROM STDIN";
    let f1 = sg.copy_in(sql, &[x, y], Some("client gave up")).await;
    let f2 = or.copy_in(sql, &[x, y], Some("client gave up")).await;
    assert_eq!(f1, f2);
    assert_eq!(f1.map_err(|e| e.code), Err("57014".to_string()));
    assert_eq!(b.per_worker("t").await, before);
    let chunks: Vec<&[u8]> = data.chunks(7).collect();
    assert_eq!(sg.copy_in(sql, &chunks, None).await, Ok("COPY 50".into()));
    assert_eq!(or.copy_in(sql, &chunks, None).await, Ok("COPY 50".into()));
    b.same_rows("t").await;

    // Extended-protocol COPY stays refused; files and PROGRAM live on the workers.
    let c = b.own.connect().await.expect("connect");
    let e = c
        .copy_in::<_, bytes::Bytes>("COPY t FROM STDIN")
        .await
        .err();
    assert_eq!(
        e.as_ref().and_then(|e| e.code()).map(|c| c.code()),
        Some("0A000")
    );
    let c = b.own.connect().await.expect("connect");
    for sql in ["COPY t FROM '/tmp/x'", "COPY t TO PROGRAM 'cat'"] {
        let e = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{sql}: {e:?}");
    }
}

/// Binary COPY data as its header and sorted tuples (the order of rows is not COPY's).
fn binary_tuples(data: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    use shardgate::protocol::copy::{CopyOptions, Format, Piece, Splitter};
    let opts = CopyOptions {
        format: Format::Binary,
        delimiter: b'\t',
        null: Vec::new(),
        header: false,
        quote: b'"',
        escape: b'"',
        force_null: Vec::new(),
        force_not_null: Vec::new(),
    };
    let mut s = Splitter::new(&opts, 1 << 30);
    s.push(data).expect("push");
    let (mut header, mut rows) = (Vec::new(), Vec::new());
    while let Some(p) = s.next(true).expect("binary data") {
        match p {
            Piece::Header(r) => header = r.data.to_vec(),
            Piece::Row(r) => rows.push(r.data.to_vec()),
            Piece::End(t) => assert_eq!(&t[..], b"\xff\xff"),
            Piece::Broken(_) => panic!("broken binary data"),
        }
    }
    rows.sort();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_stdout_matches_postgres() {
    let b = start("copy-to").await;
    b.same(
        "COPY rg FROM STDIN",
        b"1\t1\ta\n25\t2\tb\n-5\t3\t\\N\n30\t4\td\n",
    );
    let sorted = |p: Psql| {
        let text = String::from_utf8_lossy(&p.out).to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        let head = if lines
            .first()
            .is_some_and(|l| l.starts_with("id") || l.starts_with("k,"))
        {
            lines.remove(0).to_string()
        } else {
            String::new()
        };
        lines.sort();
        (p.err, head, lines.join("\n"))
    };
    // The oracle's tables are partitioned like the workers', so it is asked for the rows with
    // the query form PostgreSQL requires there.
    for (sql, oracle) in [
        ("COPY t TO STDOUT", "COPY (SELECT * FROM t) TO STDOUT"),
        (
            "COPY t TO STDOUT WITH (FORMAT csv, HEADER)",
            "COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv, HEADER)",
        ),
        (
            "COPY t (v, id) TO STDOUT WITH CSV HEADER",
            "COPY (SELECT v, id FROM t) TO STDOUT WITH CSV HEADER",
        ),
        (
            "COPY rg TO STDOUT (FORMAT csv, HEADER, NULL 'nil')",
            "COPY (SELECT * FROM rg) TO STDOUT (FORMAT csv, HEADER, NULL 'nil')",
        ),
        (
            "COPY (SELECT id, v FROM t WHERE id > 50) TO STDOUT",
            "COPY (SELECT id, v FROM t WHERE id > 50) TO STDOUT",
        ),
        (
            "COPY (SELECT id FROM t WHERE id = 7) TO STDOUT (FORMAT csv)",
            "COPY (SELECT id FROM t WHERE id = 7) TO STDOUT (FORMAT csv)",
        ),
        (
            "COPY (SELECT * FROM rg WHERE k = 99) TO STDOUT",
            "COPY (SELECT * FROM rg WHERE k = 99) TO STDOUT",
        ),
    ] {
        assert_eq!(sorted(b.sg(sql, b"")), sorted(b.or(oracle, b"")), "{sql}");
    }
    for (sql, oracle) in [
        (
            "COPY t TO STDOUT (FORMAT binary)",
            "COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)",
        ),
        (
            "COPY rg TO STDOUT WITH BINARY",
            "COPY (SELECT * FROM rg) TO STDOUT WITH BINARY",
        ),
        (
            "COPY (SELECT * FROM rg WHERE k > 1000) TO STDOUT (FORMAT binary)",
            "COPY (SELECT * FROM rg WHERE k > 1000) TO STDOUT (FORMAT binary)",
        ),
    ] {
        let (s, o) = (b.sg(sql, b""), b.or(oracle, b""));
        assert!(s.err.is_empty() && o.err.is_empty(), "{sql}: {:?}", s.err);
        assert_eq!(binary_tuples(&s.out), binary_tuples(&o.out), "{sql}");
    }
    // Queries that need a merge: their rows are held, then COPY runs over them on the
    // default node with the client's options.
    for sql in [
        "COPY (SELECT count(*) FROM t) TO STDOUT",
        "COPY (SELECT * FROM t ORDER BY id DESC LIMIT 5) TO STDOUT (FORMAT csv, HEADER)",
        "COPY (SELECT * FROM t ORDER BY id) TO STDOUT (FORMAT binary)",
    ] {
        let (s, o) = (b.sg(sql, b""), b.or(sql, b""));
        assert!(s.err.is_empty() && o.err.is_empty(), "{sql}: {:?}", s.err);
        assert_eq!(s.out, o.out, "{sql}");
    }
}
