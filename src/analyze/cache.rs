//! Analyses cached by statement shape (simple protocol) or text (extended protocol), so a
//! repeated statement is routed without a parse. Bounded: past the cap the cache starts over.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{analyze, shape, Analysis};
use crate::shardmap::ShardMap;

const MAX_ENTRIES: usize = 20_000;

#[derive(Default)]
pub struct AnalysisCache {
    by_text: RwLock<HashMap<String, Arc<Analysis>>>,
}

/// A cached analysis and, for a shape hit, the literals lifted out of this text.
pub struct Analyzed {
    pub analysis: Arc<Analysis>,
    pub literals: Vec<shape::Literal>,
}

impl AnalysisCache {
    fn get(&self, key: &str) -> Option<Arc<Analysis>> {
        self.by_text.read().ok()?.get(key).cloned()
    }

    fn put(&self, key: String, a: Arc<Analysis>) {
        if let Ok(mut m) = self.by_text.write() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(key, a);
        }
    }

    /// Forgets everything: the shard map changed (a key type was learned).
    pub fn clear(&self) {
        if let Ok(mut m) = self.by_text.write() {
            m.clear();
        }
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
            let stmts = analyze(sql, &sh.text, map);
            // A shape whose statements did not parse as the original did is not reused.
            let parsed_ok = stmts.iter().all(|s| s.ast.is_some());
            let a = Arc::new(Analysis {
                stmts,
                from_shape: true,
            });
            if parsed_ok {
                self.put(sh.text, a.clone());
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
                let a = Arc::new(Analysis {
                    stmts: analyze(sql, sql, map),
                    from_shape: false,
                });
                self.put(key, a.clone());
                a
            }
        };
        Analyzed {
            analysis,
            literals: Vec::new(),
        }
    }
}
