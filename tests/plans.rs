//! Golden planner tests: each case in tests/plans/*.txt is SQL, a `----` line, and the plan
//! shardgate builds for it (or the error it refuses with). Planning does no I/O, so these run
//! without workers. `BLESS=1 cargo test --test plans` rewrites the files with what the planner
//! now says, for review in the diff.

use std::path::Path;

use shardgate::analyze::cache::AnalysisCache;
use shardgate::plan::route::{plan, Values};
use shardgate::plan::Display;

fn render(sql: &str, cfg: &shardgate::config::Config, names: &[String]) -> String {
    let cache = AnalysisCache::default();
    let analyzed = cache.simple(sql, &cfg.shardmap);
    let values = Values {
        literals: &analyzed.literals,
        params: &[],
        formats: &[],
        clock: None,
        keys: &[],
    };
    let texts = if analyzed.analysis.stmts.len() == 1 {
        vec![sql]
    } else {
        shardgate::analyze::shape::split_statements(sql)
    };
    let mut out = Vec::new();
    for (stmt, text) in analyzed.analysis.stmts.iter().zip(texts) {
        out.push(match plan(stmt, text, &values, &cfg.shardmap) {
            Ok(p) => Display {
                plan: &p,
                node_names: names,
            }
            .to_string(),
            Err(e) => format!("error {}: {}", e.code, e.message),
        });
    }
    out.join("\n")
}

fn run_file(path: &Path) -> Result<(), String> {
    let cfg = shardgate::config::load(Path::new("config/example.toml"))?;
    let names: Vec<String> = cfg.nodes.iter().map(|n| n.name.clone()).collect();
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut blessed = String::new();
    let mut failures = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (sql, expected) = match block.split_once("\n----\n") {
            Some((s, e)) => (s.trim(), e.trim_end()),
            None => (block.trim(), ""),
        };
        let sql_only: String = sql
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let got = render(&sql_only, &cfg, &names);
        if got != expected {
            failures.push(format!("{sql}\n--- expected\n{expected}\n--- got\n{got}\n"));
        }
        blessed.push_str(&format!("{sql}\n----\n{got}\n\n"));
    }
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, blessed.trim_end().to_string() + "\n").map_err(|e| e.to_string())?;
        return Ok(());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {} case(s) differ (BLESS=1 to accept)\n\n{}",
            path.display(),
            failures.len(),
            failures.join("\n")
        ))
    }
}

#[test]
fn golden_plans() {
    let mut errors = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir("tests/plans")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    assert!(!files.is_empty(), "no golden files in tests/plans");
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
    {
        if let Err(e) = run_file(f) {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
