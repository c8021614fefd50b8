//! Which function names are aggregates, as the default node's pg_proc says: shardgate merges the
//! aggregates it knows (analyze::aggregates) and must not push any other aggregate (a user's
//! `CREATE AGGREGATE`) down to several nodes, whose per-node results it could not combine.
//! Loaded at start and again when a statement calls a name the last load did not have.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::execute::backend::Backend;
use crate::execute::rows;
use crate::protocol::backend as be;

/// Names only (overloads and schemas folded together): a name that is an aggregate in any
/// schema is treated as one, which can refuse a statement but never merge one wrongly.
const NAMES_SQL: &str =
    "SELECT proname::text, bool_or(prokind = 'a')::text FROM pg_proc GROUP BY 1";

/// Reloads at most this often, however many unknown names statements call.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone)]
pub struct Functions {
    /// Empty until loaded: then nothing is unknown and no aggregate is recognised.
    pub loaded: bool,
    pub all: HashSet<String>,
    pub aggregates: HashSet<String>,
    pub at: Option<Instant>,
}

impl Functions {
    /// An aggregate of the workers that shardgate has no merge for.
    pub fn is_foreign_aggregate(&self, name: &str) -> bool {
        self.aggregates.contains(name) && !crate::analyze::aggregates::is_aggregate_name(name)
    }

    /// A name the last load did not have (created since, or not a function at all).
    pub fn is_unknown(&self, name: &str) -> bool {
        self.loaded && !self.all.contains(name)
    }

    pub fn same_names(&self, other: &Functions) -> bool {
        self.all == other.all && self.aggregates == other.aggregates
    }

    /// Reads the names over a connection of the default node.
    pub async fn load(b: &mut Backend) -> Result<Functions, crate::error::SgError> {
        let frames = b.run(NAMES_SQL).await?;
        let mut f = Functions {
            loaded: true,
            at: Some(Instant::now()),
            ..Functions::default()
        };
        for fr in frames.iter().filter(|x| x.tag == be::DATA_ROW) {
            let cols = rows::columns(fr)?;
            let text = |i: usize| {
                cols.get(i)
                    .and_then(|c| c.as_ref())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            if let Some(name) = text(0) {
                if text(1).as_deref() == Some("true") {
                    f.aggregates.insert(name.clone());
                }
                f.all.insert(name);
            }
        }
        Ok(f)
    }
}
