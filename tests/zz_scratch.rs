use shardgate::analyze::cache::AnalysisCache;
use shardgate::plan::route::{plan, Values};
use std::path::Path;

fn run(sql: &str) -> String {
    let cfg = shardgate::config::load(Path::new("config/example.toml")).unwrap();
    let cache = AnalysisCache::default();
    let t = std::time::Instant::now();
    let analyzed = cache.simple(sql, &cfg.shardmap);
    let ta = t.elapsed();
    let values = Values {
        literals: &analyzed.literals,
        params: &[],
        formats: &[],
    };
    let p = plan(&analyzed.analysis.stmts[0], sql, &values, &cfg.shardmap);
    let tp = t.elapsed();
    let out = format!("analyze {:?} plan {:?} ok={}", ta, tp, p.is_ok());
    drop(analyzed);
    drop(cache);
    out
}

#[test]
fn scratch() {
    let stack: usize = std::env::var("STACK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2 << 20);
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let kind = std::env::var("KIND").unwrap_or("plus".into());
    let sql = match kind.as_str() {
        "plus" => format!(
            "SELECT count(*) FROM users WHERE 1 = {}",
            vec!["1"; n].join("+")
        ),
        "or" => format!(
            "SELECT count(*) FROM user_analytics WHERE {}",
            (0..n)
                .map(|i| format!("user_id = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
        "and" => format!(
            "SELECT count(*) FROM user_analytics WHERE {}",
            (0..n)
                .map(|_| "user_id > 0".to_string())
                .collect::<Vec<_>>()
                .join(" AND ")
        ),
        "in" => format!(
            "SELECT count(*) FROM user_analytics WHERE user_id IN ({})",
            (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        ),
        "paren" => format!(
            "SELECT count(*) FROM user_analytics WHERE {}user_id = 1{}",
            "(".repeat(n),
            ")".repeat(n)
        ),
        _ => unreachable!(),
    };
    let h = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || run(&sql))
        .unwrap();
    println!("{kind} n={n} stack={stack}: {}", h.join().unwrap());
}
