//! Which function names are aggregates, as the default node's pg_proc says: shardgate merges the
//! aggregates it knows (analyze::aggregates) and must not push any other aggregate (a user's
//! `CREATE AGGREGATE`) down to several nodes, whose per-node results it could not combine.
//! Also which tables have a column with a collation other than C: shardgate's merges order
//! and compare text in C order, so such columns must not reach them.
//! Loaded at start, again when a statement calls a name the last load did not have (each such
//! statement waits for a load, so a name created behind shardgate's back is seen before it is
//! used), and after DDL through shardgate.

use std::collections::HashSet;
use std::time::Instant;

use crate::execute::backend::Backend;
use crate::execute::rows;
use crate::protocol::backend as be;

/// Names only (overloads and schemas folded together): a name that is an aggregate in any
/// schema is treated as one, which can refuse a statement but never merge one wrongly.
const NAMES_SQL: &str =
    "SELECT proname::text, bool_or(prokind = 'a')::text FROM pg_proc GROUP BY 1";

/// Tables (any schema) with a column whose collation is not the database default, C or POSIX
/// (pg_collation.dat: 100 default, 950 C, 951 POSIX).
const COLLATED_SQL: &str = "SELECT DISTINCT c.relname::text FROM pg_attribute a \
     JOIN pg_class c ON c.oid = a.attrelid \
     WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attcollation NOT IN (0, 100, 950, 951) \
       AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)";

/// Calls PostgreSQL's grammar makes itself (gram.y: COALESCE, GREATEST, SQL value functions,
/// XML and JSON constructors ...), which sqlparser reads as function calls but pg_proc does not
/// list: never unknown.
const GRAMMAR: [&str; 36] = [
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "row",
    "grouping",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_user",
    "current_role",
    "session_user",
    "user",
    "system_user",
    "current_catalog",
    "current_schema",
    "xmlelement",
    "xmlforest",
    "xmlconcat",
    "xmlpi",
    "xmlroot",
    "xmlparse",
    "xmlserialize",
    "xmlexists",
    "json_object",
    "json_array",
    "json_arrayagg",
    "json_objectagg",
    "json",
    "json_scalar",
    "json_serialize",
    "json_query",
    "json_value",
    "json_exists",
];

#[derive(Debug, Default, Clone)]
pub struct Functions {
    /// Empty until loaded: then nothing is unknown and no aggregate is recognised.
    pub loaded: bool,
    pub all: HashSet<String>,
    pub aggregates: HashSet<String>,
    pub collated_tables: HashSet<String>,
    pub at: Option<Instant>,
}

impl Functions {
    /// An aggregate of the workers that shardgate has no merge for.
    pub fn is_foreign_aggregate(&self, name: &str) -> bool {
        self.aggregates.contains(name) && !crate::analyze::aggregates::is_aggregate_name(name)
    }

    /// A name the last load did not have (created since, or not a function at all).
    pub fn is_unknown(&self, name: &str) -> bool {
        self.loaded && !self.all.contains(name) && !GRAMMAR.contains(&name)
    }

    pub fn same_names(&self, other: &Functions) -> bool {
        self.all == other.all
            && self.aggregates == other.aggregates
            && self.collated_tables == other.collated_tables
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
        for fr in b
            .run(COLLATED_SQL)
            .await?
            .iter()
            .filter(|x| x.tag == be::DATA_ROW)
        {
            if let Some(Some(name)) = rows::columns(fr)?.into_iter().next() {
                f.collated_tables
                    .insert(String::from_utf8_lossy(&name).into_owned());
            }
        }
        Ok(f)
    }
}
