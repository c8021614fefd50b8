//! The start-up check of the config against the workers: every node answers, and every
//! distributed table that already exists on a node holding it has its distribution column with
//! the declared type, the same on every node. All problems are reported together.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use futures::future::join_all;

use crate::config::Config;
use crate::shardmap::KeyType;

/// For one table on one node: the key column's type (None when the table exists without that
/// column) and position among the table's columns; no row at all when the table does not exist.
const KEY_SQL: &str = "SELECT format_type(a.atttypid, a.atttypmod), \
     (SELECT count(*) FROM pg_attribute b WHERE b.attrelid = c.oid AND b.attnum > 0 \
        AND NOT b.attisdropped AND b.attnum < a.attnum)::int8 \
     FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 \
        AND a.attnum > 0 AND NOT a.attisdropped \
     WHERE c.relname = $1 AND c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid)";

/// What the check found when it let shardgate start.
#[derive(Debug, Default)]
pub struct Startup {
    /// Nodes that did not answer (only when starting degraded): (name, why).
    pub down: Vec<(String, String)>,
    /// Distributed tables found on the workers, their key types learned.
    pub existing_tables: usize,
}

/// A key column as one node has it.
enum Found {
    NoTable,
    NoColumn,
    Column(String, i64),
}

/// Connects to every node at once; on each, looks up every distributed table the node holds.
/// Refuses (Err, one line per problem) when a node does not answer (unless `degraded`), when an
/// existing table lacks its distribution column, when the column's type is unsupported, differs
/// from the config's `type` or differs between nodes. Learns key types and positions as
/// [`super::learn_key_types`] does.
pub async fn check_workers(config: &Config, degraded: bool) -> Result<Startup, String> {
    let map = &config.shardmap;
    let timeout = Duration::from_secs(config.worker_timeout_secs);
    let tables: Vec<_> = map
        .tables()
        .into_iter()
        .filter(|t| !t.is_reference())
        .collect();
    let per_node = config.nodes.iter().enumerate().map(|(i, node)| {
        let mine: Vec<_> = (tables.iter())
            .filter(|t| t.nodes(map.node_count).contains(&i))
            .map(|t| (t.name.clone(), t.column.clone()))
            .collect();
        async move { (i, look_up(&node.url, timeout, &mine).await) }
    });
    let results = join_all(per_node).await;

    let mut problems = Vec::new();
    let mut startup = Startup::default();
    // table -> (node name, type, position) for every node where it exists
    let mut seen: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
    for (i, r) in results {
        let node = &config.nodes[i];
        match r {
            Err(e) => {
                let why = format!(
                    "node \"{}\" ({}) does not answer: {e}",
                    node.name,
                    where_is(&node.url)
                );
                if degraded {
                    startup.down.push((node.name.clone(), why));
                } else {
                    problems.push(why);
                }
            }
            Ok(found) => {
                for ((table, column), f) in found {
                    match f {
                        Found::NoTable => {}
                        Found::NoColumn => problems.push(format!(
                            "table \"{table}\": distribution column \"{column}\" does not exist on node \"{}\" (check [[tables]] column = ...)",
                            node.name
                        )),
                        Found::Column(ty, pos) => seen
                            .entry(table)
                            .or_default()
                            .push((node.name.clone(), ty, pos)),
                    }
                }
            }
        }
    }
    for (table, on) in &seen {
        let Some(t) = tables.iter().find(|t| &t.name == table) else {
            continue;
        };
        let (first_node, first_ty, pos) = &on[0];
        if let Some((n, ty, _)) = on.iter().find(|(_, ty, _)| ty != first_ty) {
            problems.push(format!(
                "table \"{table}\": column \"{}\" is {first_ty} on node \"{first_node}\" but {ty} on node \"{n}\"",
                t.column
            ));
            continue;
        }
        let Some(ty) = KeyType::from_sql_name(first_ty) else {
            problems.push(format!(
                "table \"{table}\": distribution column \"{}\" has unsupported type {first_ty} (int2, int4, int8, text, varchar, uuid, date, timestamp)",
                t.column
            ));
            continue;
        };
        if let Some(k) = t.key_type.filter(|k| *k != ty) {
            problems.push(format!(
                "table \"{table}\": type = \"{}\" in the config but column \"{}\" is {first_ty} on the workers",
                k.name(),
                t.column
            ));
            continue;
        }
        match map.set_key_type(table, ty) {
            Ok(()) => map.set_key_position(table, *pos as usize),
            Err(e) => problems.push(e),
        }
        startup.existing_tables += 1;
    }
    if problems.is_empty() {
        Ok(startup)
    } else {
        let hint = if problems.iter().any(|p| p.contains("does not answer")) {
            "\n(start the node, fix its [[nodes]] url, or start anyway with --degraded / server.start_degraded = true)"
        } else {
            ""
        };
        Err(format!(
            "refusing to start:\n  {}{hint}",
            problems.join("\n  ")
        ))
    }
}

/// host:port/db of a node URL, without the user or password it may carry.
fn where_is(url: &str) -> String {
    let parsed = crate::execute::tls::from_url(url)
        .ok()
        .and_then(|(rest, _)| tokio_postgres::Config::from_str(&rest).ok());
    let Some(c) = parsed else {
        return "unreadable url".into();
    };
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", c.get_dbname().unwrap_or(""))
}

type Lookups = Vec<((String, String), Found)>;

async fn look_up(
    url: &str,
    timeout: Duration,
    tables: &[(String, String)],
) -> Result<Lookups, String> {
    let client = crate::catalog::transactions::connect(url, timeout).await?;
    let mut out = Vec::new();
    let mut failed = None;
    for (table, column) in tables {
        let rows =
            match tokio::time::timeout(timeout, client.query(KEY_SQL, &[table, column])).await {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    failed = Some(format!("catalog query failed: {e}"));
                    break;
                }
                Err(_) => {
                    failed = Some(format!(
                        "catalog query: no answer within {} s",
                        timeout.as_secs()
                    ));
                    break;
                }
            };
        let found = match rows.first() {
            None => Found::NoTable,
            Some(row) => match row.try_get::<_, Option<String>>(0) {
                Ok(Some(ty)) => Found::Column(ty, row.try_get::<_, i64>(1).unwrap_or(0)),
                _ => Found::NoColumn,
            },
        };
        out.push(((table.clone(), column.clone()), found));
    }
    drop(client);
    failed.map_or(Ok(out), Err)
}
