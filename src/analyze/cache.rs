//! Analyses cached by statement shape (simple protocol) or text (extended protocol), so a
//! repeated statement is routed without a parse; and the memory analysis may take. Both are
//! bounded in bytes: past the cache's bound it starts over; a statement whose analysis would
//! take more than is left of the in-flight budget is refused with 54000.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::{analyze, shape, Analysis, Kind, Stmt};
use crate::catalog::functions::Functions;
use crate::error::{code, SgError};
use crate::shardmap::ShardMap;

/// Bytes an analysis holds per byte of statement text, measured on the worst case seen (a
/// long IN list: the syntax tree holds one node per literal) and rounded up.
pub const BYTES_PER_TEXT_BYTE: usize = 200;
/// Fixed cost of one cache entry beyond its text (map slot, Arc, vectors).
const ENTRY_OVERHEAD: usize = 1024;

/// The bounds an [`AnalysisCache`] works within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes the cached analyses may hold together.
    pub cache_bytes: usize,
    /// Bytes all analyses under way may hold together.
    pub in_flight_bytes: usize,
    /// Deepest nesting a statement may have (`depth::estimate`).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cache_bytes: 64 << 20,
            in_flight_bytes: 2 << 30,
            max_depth: 10_000,
        }
    }
}

#[derive(Default)]
pub struct AnalysisCache {
    by_text: RwLock<Entries>,
    /// The workers' function names; analyses depend on them, so a change empties the cache.
    functions: RwLock<Arc<Functions>>,
    in_flight: AtomicUsize,
    pub limits: Limits,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Arc<Analysis>>,
    bytes: usize,
}

/// A cached analysis and, for a shape hit, the literals lifted out of this text.
pub struct Analyzed {
    pub analysis: Arc<Analysis>,
    pub literals: Vec<shape::Literal>,
}

/// What an analysis of `text` is assumed to hold.
pub fn cost(text: &str) -> usize {
    text.len()
        .saturating_mul(BYTES_PER_TEXT_BYTE)
        .saturating_add(ENTRY_OVERHEAD)
}

/// A reservation of in-flight analysis memory, given back when dropped.
struct Reserved<'a>(&'a AtomicUsize, usize);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

impl AnalysisCache {
    pub fn new(limits: Limits) -> AnalysisCache {
        AnalysisCache {
            limits,
            ..Default::default()
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Analysis>> {
        self.by_text.read().ok()?.map.get(key).cloned()
    }

    fn put(&self, key: String, a: Arc<Analysis>) {
        let c = cost(&key);
        if c > self.limits.cache_bytes / 4 {
            return;
        }
        if let Ok(mut m) = self.by_text.write() {
            if m.bytes + c > self.limits.cache_bytes {
                m.map.clear();
                m.bytes = 0;
            }
            if m.map.insert(key, a).is_none() {
                m.bytes += c;
            }
        }
    }

    /// The function names analyses are made with now.
    pub fn functions(&self) -> Arc<Functions> {
        self.functions.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Installs newly loaded function names; analyses made with other names are forgotten.
    pub fn set_functions(&self, f: Functions) {
        let changed = !self.functions().same_names(&f);
        if let Ok(mut cur) = self.functions.write() {
            *cur = Arc::new(f);
        }
        if changed {
            self.clear();
        }
    }

    /// Forgets everything: the shard map changed (a key type was learned).
    pub fn clear(&self) {
        if let Ok(mut m) = self.by_text.write() {
            m.map.clear();
            m.bytes = 0;
        }
    }

    /// Bytes the cached analyses are assumed to hold.
    pub fn bytes(&self) -> usize {
        self.by_text.read().map(|m| m.bytes).unwrap_or(0)
    }

    fn reserve(&self, text: &str) -> Result<Reserved<'_>, SgError> {
        let c = cost(text);
        let max = self.limits.in_flight_bytes;
        let mut now = self.in_flight.load(Ordering::Acquire);
        loop {
            if now.saturating_add(c) > max {
                return Err(SgError::new(
                    code::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "statement too large to analyse: {} bytes of SQL need about {} MB, \
                         server.analysis_memory_bytes allows {} MB for all statements being analysed",
                        text.len(),
                        c >> 20,
                        max >> 20
                    ),
                ));
            }
            match self.in_flight.compare_exchange_weak(
                now,
                now + c,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Reserved(&self.in_flight, c)),
                Err(v) => now = v,
            }
        }
    }

    /// Runs `analyze` within the in-flight budget; past it, one statement carrying the error.
    /// Also returns the function names it used: its result may be cached only while they are
    /// still the current ones.
    fn analyze(
        &self,
        original: &str,
        parse_text: &str,
        map: &ShardMap,
    ) -> (Vec<Stmt>, Arc<Functions>) {
        let funcs = self.functions();
        let stmts = match self.reserve(original) {
            Ok(_r) => analyze(original, parse_text, map, self.limits.max_depth, &funcs),
            Err(e) => {
                let mut s = Stmt::new(Kind::Other, original);
                s.refuse = Some(e);
                vec![s]
            }
        };
        (stmts, funcs)
    }

    fn still_current(&self, funcs: &Arc<Functions>) -> bool {
        Arc::ptr_eq(funcs, &self.functions())
    }

    /// A simple-protocol query: analysed by shape when it has one.
    pub fn simple(&self, sql: &str, map: &ShardMap) -> Analyzed {
        if let Some(sh) = shape::shape(sql) {
            if let Some(a) = self.get(&sh.text) {
                return Analyzed {
                    analysis: a,
                    literals: sh.literals,
                };
            }
            let (stmts, funcs) = self.analyze(sql, &sh.text, map);
            // A shape whose statements did not parse as the original did is not reused.
            let parsed_ok = stmts.iter().all(|s| s.ast.is_some());
            let a = Arc::new(Analysis {
                stmts,
                from_shape: true,
            });
            if parsed_ok {
                if self.still_current(&funcs) {
                    self.put(sh.text, a.clone());
                }
                return Analyzed {
                    analysis: a,
                    literals: sh.literals,
                };
            }
        }
        self.extended(sql, map)
    }

    /// A Parse message's text: analysed as written; `$n` are Bind parameters.
    pub fn extended(&self, sql: &str, map: &ShardMap) -> Analyzed {
        let key = format!("\u{1}{sql}");
        let analysis = match self.get(&key) {
            Some(a) => a,
            None => {
                let (stmts, funcs) = self.analyze(sql, sql, map);
                let refused = stmts.iter().any(|s| s.refuse.is_some() && s.ast.is_none());
                let a = Arc::new(Analysis {
                    stmts,
                    from_shape: false,
                });
                // Refusals for size or depth are cheap to make again and depend on the load.
                if !refused && self.still_current(&funcs) {
                    self.put(key, a.clone());
                }
                a
            }
        };
        Analyzed {
            analysis,
            literals: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded_in_bytes() {
        let cache = AnalysisCache::new(Limits {
            cache_bytes: 4 << 20,
            ..Limits::default()
        });
        let map = ShardMap::new(Vec::new(), 1, 0);
        for i in 0..200 {
            let sql = format!("SELECT {i} AS \"{}\"", "x".repeat(2000));
            cache.extended(&sql, &map);
            assert!(cache.bytes() <= 4 << 20);
        }
    }

    #[test]
    fn too_large_for_the_budget_is_54000() {
        let cache = AnalysisCache::new(Limits {
            in_flight_bytes: 1 << 20,
            ..Limits::default()
        });
        let map = ShardMap::new(Vec::new(), 1, 0);
        let sql = format!("SELECT 1 WHERE 1 IN ({})", vec!["1"; 10_000].join(","));
        let a = cache.extended(&sql, &map);
        let e = a.analysis.stmts[0].refuse.clone();
        assert_eq!(e.map(|e| e.code), Some(code::PROGRAM_LIMIT_EXCEEDED));
    }
}
