//! Issue 12's generator of adversarial read queries: tutorial-shaped tables (users and their
//! events hashed on a uuid, orders hashed on a bigint, measurements ranged by month on a date,
//! sales ranged on a timestamp, regional sales listed by region, a reference table of
//! countries) filled with NULLs, ties, extreme values, non-ASCII text, and queries over them
//! that mix key and non-key filters, ORDER BY (directions, NULLS, COLLATE, ordinals, aliases),
//! LIMIT/OFFSET, DISTINCT (ON), GROUP BY/HAVING, aggregates, windows, derived tables, CTEs,
//! joins and row locks.
//!
//! A generated query says whether its result must be compared in order: only when its ORDER BY
//! is a total order (a unique tiebreaker is appended). LIMIT/OFFSET, DISTINCT ON, ordered
//! aggregates and order-sensitive window functions are only generated over a total order, so
//! every query has one right answer (as a multiset or a sequence).
#![allow(dead_code)]

use crate::common::Rng;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    I2,
    I4,
    I8,
    Num,
    /// float8 with extremes (±1e300, ±Infinity, NaN): summing is order-dependent, not generated.
    FloatX,
    /// float8 with exact small values (multiples of 1/4): sums are exact in any order.
    FloatS,
    Text,
    Uuid,
    Date,
    Ts,
    Bool,
    Bit8,
    Varbit,
}

pub struct Col {
    pub name: &'static str,
    pub ty: Ty,
    pub sql: &'static str,
}

pub struct Table {
    pub name: &'static str,
    pub alias: &'static str,
    pub key: &'static str,
    /// Columns that identify a row (a total-order tiebreaker).
    pub pk: &'static [&'static str],
    pub cols: Vec<Col>,
    pub toml: &'static str,
    /// Rows as SQL literals ("NULL" for NULL), one per column.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn col(&self, name: &str) -> &Col {
        self.cols.iter().find(|c| c.name == name).expect("column")
    }
    pub fn ddl(&self) -> String {
        let cols: Vec<String> = self
            .cols
            .iter()
            .map(|c| format!("{} {}", c.name, c.sql))
            .collect();
        format!(
            "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
            self.name,
            cols.join(", "),
            self.pk_with_key().join(", ")
        )
    }
    fn pk_with_key(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.pk.to_vec();
        if !self.key.is_empty() && !v.contains(&self.key) {
            v.push(self.key);
        }
        v
    }
    pub fn inserts(&self, per: usize) -> Vec<String> {
        let names: Vec<&str> = self.cols.iter().map(|c| c.name).collect();
        self.rows
            .chunks(per)
            .map(|ch| {
                let vals: Vec<String> = ch.iter().map(|r| format!("({})", r.join(", "))).collect();
                format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    self.name,
                    names.join(", "),
                    vals.join(", ")
                )
            })
            .collect()
    }
}

pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Text values: case pairs, accents (precomposed and combining), ß, Nordic letters, emoji, CJK,
/// Hangul, Turkish dotted/dotless i, digits as text, blanks, quotes, control characters.
pub const TEXTS: &[&str] = &[
    "",
    " ",
    "a",
    "A",
    "b",
    "B",
    "z",
    "Z",
    "ä",
    "Ä",
    "å",
    "Å",
    "ö",
    "Ö",
    "o",
    "O",
    "é",
    "e\u{301}",
    "E",
    "ß",
    "ss",
    "SS",
    "ẞ",
    "æ",
    "Æ",
    "ø",
    "Ø",
    "Ärger",
    "arger",
    "Zebra",
    "zebra",
    "Öl",
    "Ol",
    "åsa",
    "Åsa",
    "Asa",
    "Ångström",
    "angstrom",
    "😀",
    "😀a",
    "a😀",
    "日本",
    "中文",
    "한국어",
    "Łódź",
    "Lodz",
    "straße",
    "strasse",
    "İstanbul",
    "istanbul",
    "ı",
    "I",
    "x y",
    "x-y",
    "xy",
    "10",
    "9",
    "100",
    "-1",
    "NULL",
    "it's",
    "tab\tx",
    "line\nbreak",
    "back\\slash",
    "%",
    "_",
    "ÆØÅ æøå",
    "Malmö",
    "Mälmo",
    "Zürich",
    "Zurich",
    "Ørsted",
];

pub const COLLATIONS: &[&str] = &["\"C\"", "\"und-x-icu\"", "\"sv-x-icu\"", "\"en-x-icu\""];

pub const COUNTRIES: &[(&str, &str, &str)] = &[
    ("US", "United States", "Americas"),
    ("CA", "Canada", "Americas"),
    ("UK", "United Kingdom", "Europe"),
    ("DE", "Deutschland", "Europe"),
    ("FR", "France", "Europe"),
    ("SE", "Sverige", "Europe"),
    ("FI", "Suomi", "Europe"),
    ("AX", "Åland", "Europe"),
    ("AT", "Österreich", "Europe"),
    ("ES", "España", "Europe"),
    ("TR", "Türkiye", "Asia"),
    ("JP", "日本", "Asia"),
    ("CN", "中国", "Asia"),
    ("KR", "대한민국", "Asia"),
    ("BR", "Brasil", "Americas"),
    ("ZZ", "", ""),
];

pub const REGIONS: &[&str] = &[
    "US", "CA", "UK", "DE", "FR", "ÅX", "JP", "", "us", "Ö", "日本", "Mx",
];

const INT8_EDGES: &[&str] = &[
    "-9223372036854775808",
    "9223372036854775807",
    "0",
    "-1",
    "1",
    "42",
    "-42",
    "4294967296",
];
const INT4_EDGES: &[&str] = &["-2147483648", "2147483647", "0", "-1", "1"];
const INT2_EDGES: &[&str] = &["-32768", "32767", "0", "-1", "1"];
const NUM_EDGES: &[&str] = &[
    "0",
    "-1",
    "0.5",
    "123456789012345678901234567890.123456789012345678901234567890",
    "-99999999999999999999.99999999999999999999",
    "0.000000000000000000000000000001",
    "1e100",
    "-1e-20",
    "'NaN'",
];
const FLOATX_EDGES: &[&str] = &[
    "1e300",
    "-1e300",
    "'Infinity'",
    "'-Infinity'",
    "'NaN'",
    "0",
    "1.5",
    "-2.25",
    "1e-300",
    "2.2250738585072014e-308",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "0.1",
];
const DATE_EDGES: &[&str] = &[
    "'infinity'",
    "'-infinity'",
    "'2024-01-01'",
    "'2023-12-31'",
    "'2024-02-29'",
    "'2024-03-01'",
    "'4713-01-01 BC'",
    "'5874897-12-31'",
    "'1999-12-31'",
];
const TS_EDGES: &[&str] = &[
    "'infinity'",
    "'-infinity'",
    "'2024-01-01 00:00:00'",
    "'2023-12-31 23:59:59.999999'",
    "'2024-07-01 00:00:00'",
    "'4713-01-01 00:00:00 BC'",
    "'294276-12-31 23:59:59.999999'",
    "'2000-02-29 12:00:00.5'",
];
const UUID_EDGES: &[&str] = &[
    "'00000000-0000-0000-0000-000000000000'",
    "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
    "'7fffffff-ffff-ffff-ffff-ffffffffffff'",
];

impl Rng {
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// A value of `ty` as an SQL literal; edges with probability `edge`%.
pub fn value(r: &mut Rng, ty: Ty, edge: u64) -> String {
    let e = r.pct(edge);
    match ty {
        Ty::I8 if e => r.pick(INT8_EDGES).to_string(),
        Ty::I8 => (r.below(2000) as i64 - 1000).to_string(),
        Ty::I4 if e => r.pick(INT4_EDGES).to_string(),
        Ty::I4 => (r.below(200) as i64 - 50).to_string(),
        Ty::I2 if e => r.pick(INT2_EDGES).to_string(),
        Ty::I2 => (r.below(20) as i64).to_string(),
        Ty::Num if e => r.pick(NUM_EDGES).to_string(),
        // exactly three decimals, the last one not 0: no two values equal at different scales
        Ty::Num => {
            let f = r.below(100) * 10 + 1 + r.below(9);
            format!(
                "{}{}.{f:03}",
                if r.pct(20) { "-" } else { "" },
                r.below(500)
            )
        }
        Ty::FloatX if e => r.pick(FLOATX_EDGES).to_string(),
        Ty::FloatX | Ty::FloatS => {
            let v = r.below(4000) as f64 / 4.0 - 300.0;
            format!("{v}")
        }
        Ty::Text => q(r.pick::<&str>(TEXTS)),
        Ty::Uuid if e => r.pick(UUID_EDGES).to_string(),
        Ty::Uuid => q(&r.uuid()),
        Ty::Date if e => r.pick(DATE_EDGES).to_string(),
        Ty::Date => q(&crate::common::date_plus("2023-11-01", r.below(280) as i64)),
        Ty::Ts if e => r.pick(TS_EDGES).to_string(),
        Ty::Ts => q(&crate::common::ts_plus(
            "2023-10-01 00:00:00",
            (r.below(330 * 86_400) as i64) * 1_000_000 + r.below(3) as i64 * 250_000,
        )),
        Ty::Bool => r.pick(&["true", "false"]).to_string(),
        Ty::Bit8 => format!("B'{:08b}'", r.below(256)),
        Ty::Varbit => format!("B'{:06b}'", r.below(64)),
    }
}

/// A value for a distribution key: BC dates and timestamps and years past 9999 are kept out
/// and '-infinity' (shardgate cannot route them: `INSERT ... VALUES ('4713-01-01 BC')`, `'-infinity'`, `'5874897-12-31'`
/// into a range table fails with 22P02).
pub fn key_value(r: &mut Rng, ty: Ty, edge: u64) -> String {
    loop {
        let v = value(r, ty, edge);
        let year_digits = v
            .trim_start_matches('\'')
            .split('-')
            .next()
            .map_or(0, str::len);
        if !v.contains(" BC") && !v.contains("-infinity") && year_digits <= 4 {
            return v;
        }
    }
}

fn maybe_null(r: &mut Rng, pct: u64, v: impl FnOnce(&mut Rng) -> String) -> String {
    if r.pct(pct) {
        "NULL".into()
    } else {
        v(r)
    }
}

fn c(name: &'static str, ty: Ty, sql: &'static str) -> Col {
    Col { name, ty, sql }
}

pub const N_USERS: usize = 300;

/// The tables and their rows (deterministic).
pub fn schema() -> Vec<Table> {
    let mut r = Rng(0x1212);
    let mut tables = Vec::new();

    // users: hash on a uuid
    let mut uuids: Vec<String> = (0..N_USERS).map(|_| q(&r.uuid())).collect();
    uuids[0] = UUID_EDGES[0].to_string();
    uuids[1] = UUID_EDGES[1].to_string();
    let users_rows = uuids
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let country = if r.pct(10) {
                "NULL".to_string()
            } else if r.pct(5) {
                q("XX")
            } else {
                q(r.pick(COUNTRIES).0)
            };
            let mask = if i == 7 {
                "B'1011'".to_string()
            } else {
                maybe_null(&mut r, 10, |r| value(r, Ty::Varbit, 0))
            };
            vec![
                u.clone(),
                q(&format!("{}_{i}", r.pick(TEXTS))),
                maybe_null(&mut r, 15, |r| value(r, Ty::Text, 0)),
                country,
                maybe_null(&mut r, 10, |r| value(r, Ty::Ts, 10)),
                maybe_null(&mut r, 10, |r| value(r, Ty::I8, 15)),
                maybe_null(&mut r, 10, |r| value(r, Ty::Num, 15)),
                maybe_null(&mut r, 10, |r| value(r, Ty::FloatX, 25)),
                maybe_null(&mut r, 10, |r| value(r, Ty::FloatS, 0)),
                maybe_null(&mut r, 10, |r| value(r, Ty::Bool, 0)),
                maybe_null(&mut r, 10, |r| value(r, Ty::Bit8, 0)),
                mask,
            ]
        })
        .collect();
    tables.push(Table {
        name: "users",
        alias: "u",
        key: "user_uuid",
        pk: &["user_uuid"],
        cols: vec![
            c("user_uuid", Ty::Uuid, "uuid NOT NULL"),
            c("username", Ty::Text, "text NOT NULL"),
            c("nick", Ty::Text, "text"),
            c("country", Ty::Text, "text"),
            c("created_at", Ty::Ts, "timestamp"),
            c("score", Ty::I8, "bigint"),
            c("balance", Ty::Num, "numeric"),
            c("rating", Ty::FloatX, "float8"),
            c("weight", Ty::FloatS, "float8"),
            c("active", Ty::Bool, "boolean"),
            c("flags", Ty::Bit8, "bit(8)"),
            c("mask", Ty::Varbit, "varbit"),
        ],
        toml: "[[tables]]\nname = \"users\"\nmethod = \"hash\"\ncolumn = \"user_uuid\"\nshards = 4\ntype = \"uuid\"\n",
        rows: users_rows,
    });

    // user_events: hash on the same uuid, co-located with users
    let kinds = [
        "login", "logout", "view", "purchase", "Login", "vïew", "购买", "",
    ];
    let events_rows = (1..=1500)
        .map(|i| {
            let u = if r.pct(3) {
                q(&r.uuid())
            } else {
                uuids[r.below(N_USERS as u64 / 2) as usize].clone()
            };
            vec![
                i.to_string(),
                u,
                maybe_null(&mut r, 8, |r| q(r.pick::<&str>(&kinds))),
                maybe_null(&mut r, 20, |r| value(r, Ty::Text, 0)),
                value(&mut r, Ty::Ts, 3),
                maybe_null(&mut r, 15, |r| {
                    format!("{}.{:02}", r.below(1000), r.below(100))
                }),
                maybe_null(&mut r, 10, |r| value(r, Ty::I4, 2)),
            ]
        })
        .collect();
    tables.push(Table {
        name: "user_events",
        alias: "e",
        key: "user_uuid",
        pk: &["event_id"],
        cols: vec![
            c("event_id", Ty::I8, "bigint NOT NULL"),
            c("user_uuid", Ty::Uuid, "uuid NOT NULL"),
            c("kind", Ty::Text, "varchar(32)"),
            c("detail", Ty::Text, "text"),
            c("happened_at", Ty::Ts, "timestamp(6) NOT NULL"),
            c("amount", Ty::Num, "numeric(12,2)"),
            c("qty", Ty::I4, "integer"),
        ],
        toml: "[[tables]]\nname = \"user_events\"\nmethod = \"hash\"\ncolumn = \"user_uuid\"\nshards = 4\ntype = \"uuid\"\n",
        rows: events_rows,
    });

    // orders: hash on a bigint, extreme keys
    let statuses = [
        "pending",
        "processing",
        "shipped",
        "delivered",
        "Delivered",
        "élevé",
    ];
    let orders_rows = (1..=1000)
        .map(|i| {
            let cust = if r.pct(6) {
                r.pick(INT8_EDGES).to_string()
            } else {
                (r.below(120) as i64 - 10).to_string()
            };
            vec![
                i.to_string(),
                cust,
                maybe_null(&mut r, 5, |r| q(r.pick::<&str>(&statuses))),
                maybe_null(&mut r, 10, |r| value(r, Ty::Num, 5)),
                value(&mut r, Ty::Ts, 4),
                maybe_null(&mut r, 30, |r| value(r, Ty::Text, 0)),
                maybe_null(&mut r, 10, |r| value(r, Ty::I2, 5)),
            ]
        })
        .collect();
    tables.push(Table {
        name: "orders",
        alias: "o",
        key: "customer_id",
        pk: &["order_id"],
        cols: vec![
            c("order_id", Ty::I8, "bigint NOT NULL"),
            c("customer_id", Ty::I8, "bigint NOT NULL"),
            c("status", Ty::Text, "text"),
            c("total", Ty::Num, "numeric"),
            c("placed_at", Ty::Ts, "timestamp NOT NULL"),
            c("note", Ty::Text, "text"),
            c("items", Ty::I2, "smallint"),
        ],
        toml: "[[tables]]\nname = \"orders\"\nmethod = \"hash\"\ncolumn = \"customer_id\"\nshards = 8\ntype = \"int8\"\n",
        rows: orders_rows,
    });

    // measurements: range by month on a date; the city column has an ICU collation
    let meas_rows = (1..=1000)
        .map(|i| {
            vec![
                i.to_string(),
                key_value(&mut r, Ty::Date, 5),
                maybe_null(&mut r, 8, |r| value(r, Ty::Text, 0)),
                maybe_null(&mut r, 10, |r| (r.below(60) as i64 - 20).to_string()),
                maybe_null(&mut r, 10, |r| value(r, Ty::I4, 3)),
                maybe_null(&mut r, 10, |r| value(r, Ty::FloatX, 10)),
            ]
        })
        .collect();
    tables.push(Table {
        name: "measurements",
        alias: "m",
        key: "logdate",
        pk: &["id"],
        cols: vec![
            c("id", Ty::I8, "bigint NOT NULL"),
            c("logdate", Ty::Date, "date NOT NULL"),
            c("city", Ty::Text, "text COLLATE \"sv-x-icu\""),
            c("peaktemp", Ty::I4, "integer"),
            c("unitsales", Ty::I4, "integer"),
            c("reading", Ty::FloatX, "float8"),
        ],
        toml: "[[tables]]\nname = \"measurements\"\nmethod = \"range\"\ncolumn = \"logdate\"\ntype = \"date\"\nranges = [ { from = \"MINVALUE\", to = \"2024-01-01\", node = \"w1\" }, { from = \"2024-01-01\", to = \"2024-02-01\", node = \"w2\" }, { from = \"2024-02-01\", to = \"2024-03-01\", node = \"w3\" }, { from = \"2024-03-01\", to = \"2024-04-01\", node = \"w1\" }, { from = \"2024-04-01\", to = \"MAXVALUE\", node = \"w2\" } ]\n",
        rows: meas_rows,
    });

    // sales: range on a timestamp
    let sales_rows = (1..=800)
        .map(|i| {
            vec![
                i.to_string(),
                key_value(&mut r, Ty::Ts, 5),
                maybe_null(&mut r, 10, |r| q(r.pick::<&str>(REGIONS))),
                format!("{}.{:02}", r.below(5000), r.below(100)),
                maybe_null(&mut r, 10, |r| value(r, Ty::I2, 5)),
            ]
        })
        .collect();
    tables.push(Table {
        name: "sales",
        alias: "s",
        key: "sold_at",
        pk: &["id"],
        cols: vec![
            c("id", Ty::I8, "bigint NOT NULL"),
            c("sold_at", Ty::Ts, "timestamp NOT NULL"),
            c("region", Ty::Text, "text"),
            c("amount", Ty::Num, "numeric(10,2) NOT NULL"),
            c("qty", Ty::I2, "smallint"),
        ],
        toml: "[[tables]]\nname = \"sales\"\nmethod = \"range\"\ncolumn = \"sold_at\"\ntype = \"timestamp\"\nranges = [ { from = \"MINVALUE\", to = \"2024-01-01 00:00:00\", node = \"w1\" }, { from = \"2024-01-01 00:00:00\", to = \"2024-07-01 00:00:00\", node = \"w2\" }, { from = \"2024-07-01 00:00:00\", to = \"MAXVALUE\", node = \"w3\" } ]\n",
        rows: sales_rows,
    });

    // regional_sales: list on text with a DEFAULT shard
    let reg_rows = (1..=800)
        .map(|i| {
            let country = if r.pct(10) {
                "NULL".to_string()
            } else {
                q(r.pick(COUNTRIES).0)
            };
            vec![
                i.to_string(),
                q(r.pick::<&str>(REGIONS)),
                country,
                value(&mut r, Ty::Date, 3),
                format!("{}.{:02}", r.below(5000), r.below(100)),
                maybe_null(&mut r, 10, |r| value(r, Ty::Text, 0)),
            ]
        })
        .collect();
    tables.push(Table {
        name: "regional_sales",
        alias: "r",
        key: "region",
        pk: &["id"],
        cols: vec![
            c("id", Ty::I8, "bigint NOT NULL"),
            c("region", Ty::Text, "text NOT NULL"),
            c("country", Ty::Text, "text"),
            c("sold_on", Ty::Date, "date NOT NULL"),
            c("amount", Ty::Num, "numeric(12,2) NOT NULL"),
            c("product", Ty::Text, "text"),
        ],
        toml: "[[tables]]\nname = \"regional_sales\"\nmethod = \"list\"\ncolumn = \"region\"\ntype = \"text\"\nlists = [ { values = [\"US\", \"CA\"], node = \"w1\" }, { values = [\"UK\", \"DE\", \"FR\", \"ÅX\"], node = \"w2\" }, { default = true, node = \"w3\" } ]\n",
        rows: reg_rows,
    });

    // countries: a reference table
    let country_rows = COUNTRIES
        .iter()
        .map(|(code, name, cont)| {
            vec![
                q(code),
                q(name),
                if cont.is_empty() {
                    "NULL".into()
                } else {
                    q(cont)
                },
            ]
        })
        .collect();
    tables.push(Table {
        name: "countries",
        alias: "c",
        key: "",
        pk: &["code"],
        cols: vec![
            c("code", Ty::Text, "text NOT NULL"),
            c("name", Ty::Text, "text NOT NULL"),
            c("continent", Ty::Text, "text"),
        ],
        toml: "[[tables]]\nname = \"countries\"\nmethod = \"reference\"\n",
        rows: country_rows,
    });
    tables
}

/// A generated query and how to compare its result.
#[derive(Clone, Debug)]
pub struct Query {
    pub sql: String,
    pub ordered: bool,
}

/// A column in scope: qualified name and type.
#[derive(Clone)]
struct Sc {
    expr: String,
    ty: Ty,
    is_key: bool,
}

pub struct Gen<'a> {
    pub r: Rng,
    pub tables: &'a [Table],
}

/// An expression with its type and whether evaluating it can raise an error on some row.
#[derive(Clone)]
struct Ex {
    sql: String,
    ty: Ty,
    risky: bool,
}

fn ex(sql: String, ty: Ty) -> Ex {
    Ex {
        sql,
        ty,
        risky: false,
    }
}

fn orderable(ty: Ty) -> bool {
    !matches!(ty, Ty::Varbit | Ty::Bit8)
}

impl<'a> Gen<'a> {
    pub fn new(seed: u64, tables: &'a [Table]) -> Gen<'a> {
        Gen {
            r: Rng(seed),
            tables,
        }
    }

    fn table(&self, name: &str) -> &'a Table {
        self.tables.iter().find(|t| t.name == name).expect("table")
    }

    /// A literal of column `col` of `t`: a value from the data mostly, else an edge or a miss.
    fn lit(&mut self, t: &Table, col: &str) -> String {
        let i = t.cols.iter().position(|c| c.name == col).expect("col");
        let ty = t.cols[i].ty;
        if self.r.pct(75) {
            for _ in 0..5 {
                let row = &t.rows[self.r.below(t.rows.len() as u64) as usize];
                if row[i] != "NULL" {
                    return row[i].clone();
                }
            }
        }
        value(&mut self.r, ty, 40)
    }

    fn lit_of(&mut self, sc: &Sc) -> String {
        let (alias, col) = sc.expr.split_once('.').expect("qualified");
        let t = self
            .tables
            .iter()
            .find(|t| t.alias == alias)
            .expect("alias");
        self.lit(t, col)
    }

    fn coll(&mut self) -> &'static str {
        self.r.pick::<&str>(COLLATIONS)
    }

    /// A predicate over a column in scope.
    fn pred(&mut self, sc: &Sc, has_limit: bool) -> String {
        let e = &sc.expr;
        let r = &mut self.r;
        let k = r.below(if sc.is_key { 14 } else { 18 });
        match k {
            0 => format!("{e} IS NULL"),
            1 => format!("{e} IS NOT NULL"),
            2 | 3 => format!("{e} = {}", self.lit_of(sc)),
            4 => {
                let n = 1 + self.r.below(4);
                let v: Vec<String> = (0..n).map(|_| self.lit_of(sc)).collect();
                format!("{e} IN ({})", v.join(", "))
            }
            5 => format!("{e} BETWEEN {} AND {}", self.lit_of(sc), self.lit_of(sc)),
            // rarer: shardgate's parser refuses it (a known class of its own)
            6 => format!(
                "{e} BETWEEN {}{} AND {}",
                if self.r.pct(25) { "SYMMETRIC " } else { "" },
                self.lit_of(sc),
                self.lit_of(sc)
            ),
            7 => format!("{e} < {}", self.lit_of(sc)),
            8 => format!("{e} >= {}", self.lit_of(sc)),
            9 => format!("{e} <> {}", self.lit_of(sc)),
            10 => format!("({e} > {} OR {e} <= {})", self.lit_of(sc), self.lit_of(sc)),
            11 => format!("{e} NOT IN ({}, {})", self.lit_of(sc), self.lit_of(sc)),
            12 => format!("{e} IS DISTINCT FROM {}", self.lit_of(sc)),
            13 => format!("({e} = {} OR {e} IS NULL)", self.lit_of(sc)),
            _ => match sc.ty {
                Ty::Text => match self.r.below(4) {
                    0 => format!("{e} LIKE {}", q(&format!("{}%", self.r.pick(TEXTS)))),
                    1 => {
                        let c = self.coll();
                        format!("{e} COLLATE {c} < {}", self.lit_of(sc))
                    }
                    2 => format!("lower({e}) = lower({})", self.lit_of(sc)),
                    _ => format!("{e} ILIKE {}", q(&format!("%{}", self.r.pick(TEXTS)))),
                },
                Ty::Ts => {
                    if self.r.pct(50) {
                        format!("{e} < now()")
                    } else {
                        format!("{e} >= now() - interval '3 years'")
                    }
                }
                Ty::Date => format!("{e} <= current_date"),
                Ty::Bool => format!("{e} IS NOT TRUE"),
                Ty::I2 | Ty::I4 | Ty::I8 if !has_limit => format!("{e} % 3 = 1"),
                Ty::Num | Ty::FloatS | Ty::FloatX => format!("{e} > 0"),
                _ => format!("{e} IS NOT NULL"),
            },
        }
    }

    fn where_clause(&mut self, scope: &[Sc], has_limit: bool) -> String {
        let n = self.r.below(4);
        if n == 0 {
            return String::new();
        }
        let mut ps = Vec::new();
        for _ in 0..n {
            // keys more often than their share
            let sc = if self.r.pct(40) {
                scope
                    .iter()
                    .filter(|s| s.is_key)
                    .nth(0)
                    .cloned()
                    .unwrap_or_else(|| self.r.pick(scope).clone())
            } else {
                self.r.pick(scope).clone()
            };
            ps.push(self.pred(&sc, has_limit));
        }
        let joiner = if self.r.pct(20) { " OR " } else { " AND " };
        format!(" WHERE {}", ps.join(joiner))
    }

    /// An expression over a column for a select list.
    fn expr(&mut self, sc: &Sc) -> Ex {
        let e = sc.expr.clone();
        let k = self.r.below(10);
        if k < 5 {
            return ex(e, sc.ty);
        }
        let risky = |sql: String, ty: Ty| Ex {
            sql,
            ty,
            risky: true,
        };
        match sc.ty {
            Ty::Text => match k {
                5 => ex(format!("upper({e})"), Ty::Text),
                6 => ex(format!("length({e})"), Ty::I4),
                7 => ex(format!("{e} || '·'"), Ty::Text),
                8 => {
                    let c = self.coll();
                    ex(format!("{e} COLLATE {c}"), Ty::Text)
                }
                _ => ex(format!("coalesce({e}, '∅')"), Ty::Text),
            },
            Ty::I2 | Ty::I4 | Ty::I8 => match k {
                5 => ex(format!("{e} % 7"), sc.ty),
                6 => risky(format!("{e} + 1"), sc.ty),
                7 => risky(format!("abs({e})"), sc.ty),
                8 => ex(format!("{e}::numeric / 3"), Ty::Num),
                _ => ex(format!("coalesce({e}, -1)"), sc.ty),
            },
            Ty::Num => match k {
                5 => ex(format!("round({e}, 2)"), Ty::Num),
                6 => ex(format!("{e} * 2"), Ty::Num),
                7 => ex(format!("trunc({e})"), Ty::Num),
                8 => risky(format!("{e}::numeric(20,4)"), Ty::Num),
                _ => ex(format!("-{e}"), Ty::Num),
            },
            Ty::FloatX | Ty::FloatS => match k {
                5 => risky(format!("{e} * 2"), sc.ty),
                6 => ex(format!("{e}::numeric"), Ty::Num),
                7 => ex(format!("{e}::text"), Ty::Text),
                8 => ex(format!("-{e}"), sc.ty),
                _ => ex(format!("{e} / 3"), Ty::FloatX),
            },
            Ty::Date => match k {
                5 => ex(format!("{e} + 1"), Ty::Date),
                6 => risky(format!("{e} - date '2024-01-01'"), Ty::I4),
                7 => ex(format!("extract(year FROM {e})"), Ty::Num),
                8 => ex(format!("date_trunc('month', {e})"), Ty::Ts),
                _ => ex(format!("{e} <= current_date"), Ty::Bool),
            },
            Ty::Ts => match k {
                5 => ex(format!("{e}::date"), Ty::Date),
                6 => ex(format!("date_trunc('day', {e})"), Ty::Ts),
                7 => risky(format!("{e} + interval '1 hour'"), Ty::Ts),
                8 => ex(format!("extract(epoch FROM {e})"), Ty::Num),
                _ => ex(format!("{e} < now()"), Ty::Bool),
            },
            Ty::Uuid => match k {
                5 | 6 => ex(format!("{e}::text"), Ty::Text),
                _ => ex(format!("upper({e}::text)"), Ty::Text),
            },
            Ty::Bool => match k {
                5 | 6 => ex(format!("NOT {e}"), Ty::Bool),
                _ => ex(format!("{e} IS TRUE"), Ty::Bool),
            },
            Ty::Bit8 => match k {
                5 | 6 => ex(format!("{e} & B'00001111'"), Ty::Bit8),
                _ => ex(format!("{e}::int4"), Ty::I4),
            },
            Ty::Varbit => match k {
                5 | 6 => ex(format!("length({e})"), Ty::I4),
                _ => ex(format!("{e}::text"), Ty::Text),
            },
        }
    }

    /// An ORDER BY item for an expression: direction, NULLS, COLLATE for text.
    fn order_item(&mut self, sql: &str, ty: Ty, collate_ok: bool) -> String {
        let mut s = sql.to_string();
        if collate_ok && ty == Ty::Text && self.r.pct(40) {
            s = format!("{s} COLLATE {}", self.coll());
        }
        match self.r.below(4) {
            0 => s += " DESC",
            1 => s += " ASC",
            _ => {}
        }
        match self.r.below(5) {
            0 => s += " NULLS FIRST",
            1 => s += " NULLS LAST",
            _ => {}
        }
        s
    }

    /// An aggregate over the scope: (sql, type, risky).
    fn aggregate(&mut self, scope: &[Sc], tiebreak: &[String]) -> Ex {
        let sc = self.r.pick(scope).clone();
        let e = sc.expr.clone();
        let tb = tiebreak.join(", ");
        let k = self.r.below(24);
        let filter = if self.r.pct(10) {
            let other = self.r.pick(scope).clone();
            format!(" FILTER (WHERE {})", self.pred(&other, true))
        } else {
            String::new()
        };
        let num = matches!(sc.ty, Ty::I2 | Ty::I4 | Ty::I8 | Ty::Num | Ty::FloatS);
        let exact = matches!(sc.ty, Ty::I2 | Ty::I4 | Ty::I8 | Ty::Num);
        let ints = matches!(sc.ty, Ty::I2 | Ty::I4 | Ty::I8);
        let a = match k {
            0 => ex("count(*)".into(), Ty::I8),
            1 => ex(format!("count({e})"), Ty::I8),
            2 => ex(format!("count(DISTINCT {e})"), Ty::I8),
            3 if num => ex(format!("sum({e})"), Ty::Num),
            4 if num => ex(format!("avg({e})"), Ty::Num),
            5 if orderable(sc.ty) && sc.ty != Ty::Uuid && sc.ty != Ty::Bool => {
                if sc.ty == Ty::Text && self.r.pct(50) {
                    let c = self.coll();
                    ex(format!("min({e} COLLATE {c})"), sc.ty)
                } else {
                    ex(format!("min({e})"), sc.ty)
                }
            }
            6 if orderable(sc.ty) && sc.ty != Ty::Uuid && sc.ty != Ty::Bool => {
                if sc.ty == Ty::Text && self.r.pct(50) {
                    let c = self.coll();
                    ex(format!("max({e} COLLATE {c})"), sc.ty)
                } else {
                    ex(format!("max({e})"), sc.ty)
                }
            }
            7 if exact => {
                let f = self.r.pick(&[
                    "stddev",
                    "variance",
                    "stddev_pop",
                    "var_pop",
                    "stddev_samp",
                    "var_samp",
                ]);
                ex(format!("{f}({e})"), Ty::Num)
            }
            8 if sc.ty == Ty::Bool => ex(format!("bool_and({e})"), Ty::Bool),
            9 if sc.ty == Ty::Bool => ex(format!("bool_or({e})"), Ty::Bool),
            8 | 9 => {
                let p = self.pred(&sc, true);
                let f = self.r.pick(&["bool_and", "bool_or", "every"]);
                ex(format!("{f}({p})"), Ty::Bool)
            }
            10 if ints || matches!(sc.ty, Ty::Bit8 | Ty::Varbit) => {
                let f = self.r.pick(&["bit_and", "bit_or"]);
                Ex {
                    sql: format!("{f}({e})"),
                    ty: sc.ty,
                    risky: sc.ty == Ty::Varbit,
                }
            }
            11 if sc.ty == Ty::Text => {
                let c = if self.r.pct(50) {
                    format!(" COLLATE {}", self.coll())
                } else {
                    String::new()
                };
                let d = if self.r.pct(50) { " DESC" } else { "" };
                ex(
                    format!("string_agg({e}, ',' ORDER BY {e}{c}{d}, {tb})"),
                    Ty::Text,
                )
            }
            12 if orderable(sc.ty) => {
                let d = if self.r.pct(50) {
                    " DESC NULLS LAST"
                } else {
                    ""
                };
                ex(format!("array_agg({e} ORDER BY {e}{d}, {tb})"), Ty::Text)
            }
            13 if orderable(sc.ty) => ex(format!("array_agg(DISTINCT {e})"), Ty::Text),
            14 if sc.ty == Ty::Text => ex(format!("string_agg(DISTINCT {e}, '|')"), Ty::Text),
            15 if num => {
                let f = self.r.pick(&["sum", "avg"]);
                let t = self
                    .r
                    .pick(&["numeric(10,2)", "numeric(30,3)", "int8", "float8"]);
                Ex {
                    sql: format!("{f}({e})::{t}"),
                    ty: Ty::Num,
                    risky: true,
                }
            }
            16 => ex(format!("count(*) - count({e})"), Ty::I8),
            17 if exact => ex(format!("sum({e}) / nullif(count({e}), 0)"), Ty::Num),
            18 => ex("count(DISTINCT now())".into(), Ty::I8),
            19 => {
                let o = self.r.pick(scope).clone();
                ex(format!("count(DISTINCT ({e}, {}))", o.expr), Ty::I8)
            }
            20 if ints => ex(format!("mysum({e}::int4)"), Ty::I4),
            21 => ex(format!("count(*) FILTER (WHERE {e} IS NULL)"), Ty::I8),
            _ => ex("count(*)".into(), Ty::I8),
        };
        let risky = a.risky || (k == 20);
        Ex {
            sql: format!("{}{filter}", a.sql),
            ty: a.ty,
            risky,
        }
    }

    /// FROM clause and scope: one table, a co-located join, or a join with the reference table.
    fn from(&mut self, allow_join: bool) -> (String, Vec<Sc>, Vec<String>, &'a Table) {
        let dist: Vec<&Table> = self.tables.iter().filter(|t| !t.key.is_empty()).collect();
        let t = *self.r.pick(&dist);
        let scope_of = |t: &Table| -> Vec<Sc> {
            t.cols
                .iter()
                .map(|c| Sc {
                    expr: format!("{}.{}", t.alias, c.name),
                    ty: c.ty,
                    is_key: c.name == t.key,
                })
                .collect()
        };
        let mut scope = scope_of(t);
        let mut tb: Vec<String> = t.pk.iter().map(|p| format!("{}.{p}", t.alias)).collect();
        let mut from = format!("{} {}", t.name, t.alias);
        if allow_join && self.r.pct(30) {
            let how = if self.r.pct(40) { "LEFT JOIN" } else { "JOIN" };
            if t.name == "users" && self.r.pct(60) {
                let e = self.table("user_events");
                from += &format!(" {how} user_events e ON e.user_uuid = u.user_uuid");
                let mut s = scope_of(e);
                s.retain(|x| x.expr != "e.user_uuid");
                scope.extend(s);
                tb.push("e.event_id".into());
            } else if t.name == "user_events" && self.r.pct(50) {
                from += " JOIN users u ON u.user_uuid = e.user_uuid";
                let mut s = scope_of(self.table("users"));
                s.retain(|x| x.expr != "u.user_uuid");
                scope.extend(s);
            } else if ["users", "regional_sales"].contains(&t.name) {
                from += &format!(" {how} countries c ON c.code = {}.country", t.alias);
                scope.extend(scope_of(self.table("countries")));
            }
        }
        (from, scope, tb, t)
    }

    fn limit(&mut self) -> String {
        let mut s = String::new();
        if self.r.pct(80) {
            let n = match self.r.below(10) {
                0 => "0".to_string(),
                1 => "9223372036854775807".to_string(),
                2 => "ALL".to_string(),
                _ => (1 + self.r.below(30)).to_string(),
            };
            s += &format!(" LIMIT {n}");
        }
        if s.is_empty() || self.r.pct(40) {
            let n = match self.r.below(6) {
                0 => 0,
                1 => 999,
                _ => self.r.below(40),
            };
            s += &format!(" OFFSET {n}");
        }
        s
    }

    pub fn next(&mut self) -> Query {
        let shape = self.r.below(100);
        let mut qy = match shape {
            0..=29 => self.plain(),
            30..=44 => self.aggregate_only(),
            45..=69 => self.grouped(),
            70..=79 => self.distinct(),
            80..=87 => self.distinct_on(),
            _ => self.window(),
        };
        if self.r.pct(12) && !qy.sql.contains(" FOR ") {
            qy = match self.r.below(3) {
                0 => Query {
                    sql: format!("SELECT * FROM ({}) sub", qy.sql),
                    ordered: false,
                },
                1 => Query {
                    sql: format!("WITH sub AS ({}) SELECT count(*) AS n FROM sub", qy.sql),
                    ordered: false,
                },
                _ => Query {
                    sql: format!("WITH sub AS ({}) SELECT * FROM sub", qy.sql),
                    ordered: false,
                },
            };
        }
        qy
    }

    /// SELECT items: expressions with aliases a1.. (some without), kept for ORDER BY.
    fn items(&mut self, scope: &[Sc], n: u64, no_risk: bool) -> Vec<(Ex, Option<String>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while (out.len() as u64) < n && i < 50 {
            i += 1;
            let sc = self.r.pick(scope).clone();
            let e = self.expr(&sc);
            if no_risk && e.risky {
                continue;
            }
            let alias = if self.r.pct(60) {
                Some(format!("a{}", out.len() + 1))
            } else {
                None
            };
            out.push((e, alias));
        }
        out
    }

    fn select_list(items: &[(Ex, Option<String>)]) -> String {
        items
            .iter()
            .map(|(e, a)| match a {
                Some(a) => format!("{} AS {a}", e.sql),
                None => e.sql.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// ORDER BY keys referring to select items (ordinal, alias, or the expression again).
    fn order_refs(&mut self, items: &[(Ex, Option<String>)], idx: &[usize]) -> Vec<String> {
        idx.iter()
            .map(|&i| {
                let (e, a) = &items[i];
                match (self.r.below(3), a) {
                    (0, _) => self.order_item(&(i + 1).to_string(), Ty::I4, false),
                    (1, Some(a)) => self.order_item(a, Ty::I4, false),
                    _ => self.order_item(&e.sql.clone(), e.ty, !e.sql.contains("COLLATE")),
                }
            })
            .collect()
    }

    fn plain(&mut self) -> Query {
        let (mut from, scope, tb, t) = self.from(true);
        let has_limit = self.r.pct(40);
        let n = 1 + self.r.below(4);
        let items = self.items(&scope, n, has_limit);
        let mut list = Self::select_list(&items);
        if self.r.pct(8) {
            list = "*".into();
            if !from.contains("JOIN") && self.r.pct(25) {
                from = format!("{}* {}", t.name, t.alias);
            }
        }
        let mut sql = format!("SELECT {list} FROM {from}");
        sql += &self.where_clause(&scope, has_limit);
        let mut keys = Vec::new();
        if list != "*" && self.r.pct(50) {
            let k = 1 + self.r.below(items.len() as u64);
            let idx: Vec<usize> = (0..k as usize)
                .map(|_| self.r.below(items.len() as u64) as usize)
                .collect();
            keys.extend(self.order_refs(&items, &idx));
        }
        for _ in 0..self.r.below(3) {
            let sc = self.r.pick(&scope).clone();
            if orderable(sc.ty) {
                let e = self.expr(&sc);
                if !e.risky || !has_limit {
                    keys.push(self.order_item(&e.sql, e.ty, !e.sql.contains("COLLATE")));
                }
            }
        }
        let total = has_limit || (!keys.is_empty() && self.r.pct(60));
        if total {
            for k in &tb {
                keys.push(self.order_item(k, Ty::I8, false));
            }
        }
        if !keys.is_empty() {
            sql += &format!(" ORDER BY {}", keys.join(", "));
        }
        if has_limit {
            sql += &self.limit();
        }
        if !from.contains("JOIN") && self.r.pct(10) {
            sql += *self.r.pick::<&str>(&[
                " FOR UPDATE",
                " FOR SHARE",
                " FOR NO KEY UPDATE",
                " FOR KEY SHARE",
            ]);
        }
        Query {
            sql,
            ordered: total,
        }
    }

    fn aggregate_only(&mut self) -> Query {
        let (from, scope, tb, _) = self.from(true);
        let n = 1 + self.r.below(4);
        let aggs: Vec<String> = (0..n)
            .map(|i| {
                let a = self.aggregate(&scope, &tb);
                if self.r.pct(50) {
                    format!("{} AS x{i}", a.sql)
                } else {
                    a.sql
                }
            })
            .collect();
        let mut sql = format!("SELECT {} FROM {from}", aggs.join(", "));
        sql += &self.where_clause(&scope, false);
        if self.r.pct(15) {
            sql += " HAVING count(*) > 1";
        }
        Query {
            sql,
            ordered: false,
        }
    }

    fn grouped(&mut self) -> Query {
        let (from, scope, tb, _) = self.from(true);
        let ng = 1 + self.r.below(2);
        let mut groups = Vec::new();
        while (groups.len() as u64) < ng {
            let sc = self.r.pick(&scope).clone();
            let e = self.expr(&sc);
            if e.risky || !orderable(e.ty) && e.ty != Ty::Bit8 {
                continue;
            }
            groups.push(e);
        }
        let show_groups = self.r.pct(85);
        let mut items: Vec<(Ex, Option<String>)> = Vec::new();
        if show_groups {
            for (i, g) in groups.iter().enumerate() {
                let a = if self.r.pct(50) {
                    Some(format!("g{}", i + 1))
                } else {
                    None
                };
                items.push((g.clone(), a));
            }
        }
        let na = 1 + self.r.below(3);
        let mut any_risky = false;
        for i in 0..na {
            let a = self.aggregate(&scope, &tb);
            any_risky |= a.risky;
            let alias = if self.r.pct(50) {
                Some(format!("x{i}"))
            } else {
                None
            };
            items.push((a, alias));
        }
        let list = Self::select_list(&items);
        let distinct = self.r.pct(8);
        let mut sql = format!(
            "SELECT {}{list} FROM {from}",
            if distinct { "DISTINCT " } else { "" }
        );
        sql += &self.where_clause(&scope, false);
        // GROUP BY: ordinals, aliases or the expressions
        let gb: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                if show_groups {
                    match (self.r.below(3), &items[i].1) {
                        (0, _) => (i + 1).to_string(),
                        (1, Some(a)) => a.clone(),
                        _ => g.sql.clone(),
                    }
                } else {
                    g.sql.clone()
                }
            })
            .collect();
        sql += &format!(" GROUP BY {}", gb.join(", "));
        if self.r.pct(30) {
            let a = self.aggregate(&scope, &tb);
            let cond = match self.r.below(3) {
                0 => format!("count(*) > {}", self.r.below(5)),
                1 => format!("{} IS NOT NULL", a.sql),
                _ => format!("count(*) >= 1 AND {} IS NOT NULL", a.sql),
            };
            sql += &format!(" HAVING {cond}");
        }
        let mut ordered = false;
        if show_groups && self.r.pct(70) {
            let mut idx: Vec<usize> = if distinct {
                (0..items.len()).collect()
            } else {
                (0..groups.len()).collect()
            };
            // shuffle, sometimes an aggregate first
            for i in (1..idx.len()).rev() {
                let j = self.r.below(i as u64 + 1) as usize;
                idx.swap(i, j);
            }
            if !distinct && self.r.pct(30) {
                idx.insert(0, groups.len() + self.r.below(na) as usize);
            }
            let keys = self.order_refs(&items, &idx);
            sql += &format!(" ORDER BY {}", keys.join(", "));
            ordered = true;
            if self.r.pct(30) && !any_risky {
                sql += &self.limit();
            }
        }
        Query { sql, ordered }
    }

    fn distinct(&mut self) -> Query {
        let (from, scope, _, _) = self.from(true);
        let n = 1 + self.r.below(3);
        let mut items = Vec::new();
        while (items.len() as u64) < n {
            let sc = self.r.pick(&scope).clone();
            let e = self.expr(&sc);
            if e.risky || !orderable(e.ty) {
                continue;
            }
            let a = if self.r.pct(50) {
                Some(format!("d{}", items.len() + 1))
            } else {
                None
            };
            items.push((e, a));
        }
        let mut sql = format!("SELECT DISTINCT {} FROM {from}", Self::select_list(&items));
        sql += &self.where_clause(&scope, true);
        let mut ordered = false;
        if self.r.pct(70) {
            let mut idx: Vec<usize> = (0..items.len()).collect();
            for i in (1..idx.len()).rev() {
                let j = self.r.below(i as u64 + 1) as usize;
                idx.swap(i, j);
            }
            let keys: Vec<String> = idx
                .iter()
                .map(|&i| {
                    let (e, a) = &items[i];
                    let base = match (self.r.below(3), a) {
                        (0, _) => (i + 1).to_string(),
                        (1, Some(a)) => a.clone(),
                        _ => e.sql.clone(),
                    };
                    self.order_item(&base, Ty::I4, false)
                })
                .collect();
            sql += &format!(" ORDER BY {}", keys.join(", "));
            ordered = true;
            if self.r.pct(50) {
                sql += &self.limit();
            }
        }
        Query { sql, ordered }
    }

    fn distinct_on(&mut self) -> Query {
        let (from, scope, tb, _) = self.from(false);
        let sc = loop {
            let sc = self.r.pick(&scope).clone();
            if orderable(sc.ty) {
                break sc;
            }
        };
        let on = self.expr(&sc);
        if on.risky {
            return self.plain();
        }
        let n = 1 + self.r.below(3);
        let items = self.items(&scope, n, true);
        let mut sql = format!(
            "SELECT DISTINCT ON ({}) {} AS lead, {}, {} FROM {from}",
            on.sql,
            on.sql,
            Self::select_list(&items),
            tb.join(", ")
        );
        sql += &self.where_clause(&scope, true);
        let first = self.order_item(&on.sql, on.ty, false);
        let mut keys = vec![first];
        let other = self.r.pick(&scope).clone();
        if orderable(other.ty) {
            let oe = self.expr(&other);
            if !oe.risky {
                keys.push(self.order_item(&oe.sql, oe.ty, !oe.sql.contains("COLLATE")));
            }
        }
        for k in &tb {
            keys.push(self.order_item(k, Ty::I8, false));
        }
        sql += &format!(" ORDER BY {}", keys.join(", "));
        if self.r.pct(40) {
            sql += &self.limit();
        }
        Query { sql, ordered: true }
    }

    fn window(&mut self) -> Query {
        let (from, scope, tb, _) = self.from(false);
        let tbs = tb.join(", ");
        let n = 1 + self.r.below(3);
        let mut wins = Vec::new();
        for i in 0..n {
            let part = {
                let sc = self.r.pick(&scope).clone();
                if self.r.pct(60) && orderable(sc.ty) {
                    format!("PARTITION BY {} ", sc.expr)
                } else {
                    String::new()
                }
            };
            let ob = loop {
                let sc = self.r.pick(&scope).clone();
                if orderable(sc.ty) {
                    break sc;
                }
            };
            let obs = self.order_item(&ob.expr, ob.ty, true);
            let num = scope
                .iter()
                .filter(|s| matches!(s.ty, Ty::I2 | Ty::I4 | Ty::I8))
                .cloned()
                .collect::<Vec<_>>();
            let nv = self.r.pick(&num).expr.clone();
            let w =
                match self.r.below(10) {
                    0 => format!("row_number() OVER ({part}ORDER BY {obs}, {tbs})"),
                    1 => format!("rank() OVER ({part}ORDER BY {obs})"),
                    2 => format!("dense_rank() OVER (ORDER BY {obs})"),
                    3 => format!("count(*) OVER ({part})"),
                    4 => format!("sum({nv}) OVER ({part}ORDER BY {obs}, {tbs})"),
                    5 => format!("lag({}) OVER ({part}ORDER BY {obs}, {tbs})", ob.expr),
                    6 => format!("first_value({nv}) OVER ({part}ORDER BY {obs}, {tbs})"),
                    7 => format!(
                    "sum({nv}) OVER (ORDER BY {tbs} ROWS BETWEEN 2 PRECEDING AND CURRENT ROW{})",
                    if self.r.pct(30) { " EXCLUDE CURRENT ROW" } else { "" }
                ),
                    8 => format!("ntile(3) OVER ({part}ORDER BY {obs}, {tbs})"),
                    _ => format!("max({nv}) OVER ({part})"),
                };
            wins.push(format!("{w} AS w{i}"));
        }
        let n = 1 + self.r.below(2);
        let items = self.items(&scope, n, true);
        let mut sql = format!(
            "SELECT {tbs}, {}, {} FROM {from}",
            Self::select_list(&items),
            wins.join(", ")
        );
        sql += &self.where_clause(&scope, true);
        let ordered = self.r.pct(60);
        if ordered {
            let keys: Vec<String> = tb
                .iter()
                .map(|k| self.order_item(k, Ty::I8, false))
                .collect();
            sql += &format!(" ORDER BY {}", keys.join(", "));
            if self.r.pct(40) {
                sql += &self.limit();
            }
        }
        Query { sql, ordered }
    }
}
