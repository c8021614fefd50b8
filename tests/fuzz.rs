//! Property tests for everything that reads bytes or text a client chose (issue 7): the frame
//! reader and message decoders, the depth bound, analysis and planning, and the connection
//! opening over real sockets. Each runs a bounded number of seeded, structure-aware random
//! inputs (mutations of valid messages and of real SQL), so CI runs them in seconds and a
//! failure prints the seed and input to replay. None needs a PostgreSQL server.
//! `FUZZ_CASES=n` runs more.

use bytes::BytesMut;
use shardgate::analyze::cache::{AnalysisCache, Limits};
use shardgate::plan::route::{plan, Values};
use shardgate::protocol::frontend as fe;
use shardgate::protocol::{take_frame, Frame};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn cases(default: usize) -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Flips, inserts, deletes and overwrites bytes, and sometimes lengths with extremes.
fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(b.len() + 1);
        match rng.below(6) {
            0 if i < b.len() => b[i] ^= 1 << rng.below(8),
            1 => b.insert(i.min(b.len()), rng.next() as u8),
            2 if i < b.len() => {
                b.remove(i);
            }
            3 if i + 4 <= b.len() => {
                let v: i32 = *rng.pick(&[-1, 0, 1, 3, 4, 5, i32::MAX, i32::MIN, 0x4000_0000]);
                b[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
            4 => b.truncate(i),
            _ => b.extend_from_slice(&b.clone()[..i.min(b.len())]),
        }
    }
    b
}

fn valid_messages() -> Vec<Vec<u8>> {
    let parse = fe::build_parse(
        "s1",
        &fe::Parse {
            name: "s1".into(),
            sql: "SELECT $1::int".into(),
            types: fe::param_types(&[23]),
        },
    );
    let bind = fe::build_bind_full(
        "",
        "s1",
        &[0],
        &[Some(bytes::Bytes::from_static(b"42"))],
        &[0],
    );
    vec![
        fe::build_query("SELECT 1").raw.to_vec(),
        parse.raw.to_vec(),
        bind.raw.to_vec(),
        fe::build_execute("", 0).raw.to_vec(),
        fe::build_target(fe::DESCRIBE, b'S', "s1").raw.to_vec(),
        fe::sync().raw.to_vec(),
    ]
}

#[test]
fn frames_and_decoders_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    let valid = valid_messages();
    for case in 0..cases(20_000) {
        let mut bytes = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let m = rng.pick(&valid).clone();
            bytes.extend(mutate(&mut rng, m));
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let max = 1 << 16;
        while let Ok(Some(f)) = take_frame(&mut buf, max) {
            assert!(f.raw.len() <= max + 1, "case {case}: frame past the limit");
            let f = Frame::build(f.tag, f.body());
            let _ = fe::query(&f);
            let _ = fe::parse(&f);
            let _ = fe::bind(&f);
            let _ = fe::execute(&f);
            let _ = fe::target(&f);
        }
    }
}

/// Pieces of SQL that exercise the analysis: the tutorials' tables, keys, operators, nesting.
const PIECES: [&str; 40] = [
    "SELECT ",
    "count(*) ",
    "FROM users ",
    "FROM user_events e ",
    "JOIN users u ON u.user_uuid = e.user_uuid ",
    "WHERE ",
    "user_uuid = 'fd8689cb-8011-3b68-be58-6d8b5a6aa06a' ",
    "AND ",
    "OR ",
    "NOT ",
    "(",
    ")",
    "1",
    "+",
    "-",
    "*",
    "::int ",
    ", ",
    "GROUP BY ",
    "ORDER BY ",
    "LIMIT 3 ",
    "UNION ALL ",
    "CASE WHEN ",
    " THEN ",
    " ELSE ",
    " END ",
    "IN (",
    "SELECT user_uuid FROM users",
    "EXISTS (",
    "$1 ",
    "'x' ",
    "\"q\" ",
    "-- c\n",
    "/* c */ ",
    "$$d$$ ",
    "[",
    "]",
    "user_id ",
    "BETWEEN 1 AND 2 ",
    "WITH s AS (SELECT 1) ",
];

fn analyse_and_plan(cache: &AnalysisCache, cfg: &shardgate::config::Config, sql: &str) {
    for analyzed in [
        cache.simple(sql, &cfg.shardmap),
        cache.extended(sql, &cfg.shardmap),
    ] {
        let values = Values {
            literals: &analyzed.literals,
            params: &[],
            formats: &[],
            clock: None,
            keys: &[],
        };
        for s in &analyzed.analysis.stmts {
            let _ = plan(s, &s.text, &values, &cfg.shardmap);
        }
    }
}

/// Analysis runs on threads with the runtime's stack, as sessions do.
fn on_session_stack(f: impl FnOnce() + Send + 'static) {
    let size = shardgate::server::stack_size(Limits::default().max_depth);
    let h = std::thread::Builder::new().stack_size(size).spawn(f);
    h.expect("thread").join().expect("no panic");
}

#[test]
fn analysis_of_random_sql_never_panics() {
    on_session_stack(|| {
        let cfg = shardgate::config::load(std::path::Path::new("config/example.toml"))
            .expect("example config");
        let cache = AnalysisCache::new(Limits::default());
        let mut rng = Rng(0x5eed_0002);
        for _ in 0..cases(20_000) {
            let mut sql = String::new();
            for _ in 0..rng.below(30) {
                sql.push_str(PIECES[rng.below(PIECES.len())]);
            }
            analyse_and_plan(&cache, &cfg, &sql);
        }
    });
}

#[test]
fn deep_and_wide_statements_are_answered_or_refused_with_54001() {
    on_session_stack(|| {
        let cfg = shardgate::config::load(std::path::Path::new("config/example.toml"))
            .expect("example config");
        let cache = AnalysisCache::new(Limits::default());
        let ors: Vec<String> = (0..2_500).map(|i| format!("user_id = {i}")).collect();
        let ands = vec!["user_id > 0"; 3_000];
        let ok = [
            format!(
                "SELECT count(*) FROM user_analytics WHERE user_id = {}",
                vec!["1"; 5_000].join("+")
            ),
            format!(
                "SELECT count(*) FROM user_analytics WHERE {}",
                ors.join(" OR ")
            ),
            format!(
                "SELECT count(*) FROM user_analytics WHERE {}",
                ands.join(" AND ")
            ),
            format!(
                "SELECT count(*) FROM user_analytics WHERE {}user_id = 1{}",
                "(".repeat(500),
                ")".repeat(500)
            ),
        ];
        for sql in &ok {
            let a = cache.simple(sql, &cfg.shardmap);
            assert!(a.analysis.stmts[0].refuse.is_none(), "{}", &sql[..80]);
            analyse_and_plan(&cache, &cfg, sql);
        }
        let too_deep = [
            format!(
                "SELECT count(*) FROM user_analytics WHERE user_id = {}",
                vec!["1"; 50_000].join("+")
            ),
            format!("SELECT {}1{}", "(".repeat(20_000), ")".repeat(20_000)),
            format!("SELECT {} true", "NOT ".repeat(20_000)),
            vec!["SELECT 1"; 20_000].join(" UNION ALL "),
        ];
        for sql in &too_deep {
            for a in [
                cache.simple(sql, &cfg.shardmap),
                cache.extended(sql, &cfg.shardmap),
            ] {
                let e = a.analysis.stmts[0].refuse.clone().map(|e| e.code);
                assert_eq!(e, Some("54001"), "{}", &sql[..60]);
            }
        }
    });
}
