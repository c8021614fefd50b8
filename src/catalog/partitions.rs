//! The shard map of tables created with `PARTITION BY` through shardgate, kept in the catalog
//! node's `shardgate.tables` and `shardgate.partitions`: written in the same transaction as the
//! DDL on the nodes (`session::partition`), announced with `NOTIFY shardgate_map` (delivered
//! when that transaction commits), and read back by every shardgate process sharing the
//! catalog: at start, on each notification, and every few seconds in case one was missed.

use std::sync::Weak;
use std::time::Duration;

use crate::config::Config;
use crate::execute::Shared;
use crate::plan::partition::{build, CatalogPartition, PartBound, PartitionDdl};
use crate::quote::literal;
use crate::shardmap::{Bound, KeyType, KeyValue, ShardMap, TableDist};

/// The channel every process listens on.
pub const CHANNEL: &str = "shardgate_map";

/// How often the map is read again without a notification.
const POLL: Duration = Duration::from_secs(10);

fn bound_text(b: &Bound) -> Option<String> {
    match b {
        Bound::Value(v) => Some(v.to_text()),
        _ => None,
    }
}

fn lit_opt(v: Option<String>) -> String {
    v.map(|s| literal(&s)).unwrap_or_else(|| "NULL".into())
}

/// The catalog row of partition `name` of `parent` on `node`.
fn insert_partition(
    name: &str,
    parent: &str,
    node: usize,
    bound: &Option<PartBound>,
    node_names: &[String],
) -> String {
    let (kind, modulus, remainder, from, to, list) = match bound {
        None => ("sub", None, None, None, None, None),
        Some(PartBound::Default) => ("default", None, None, None, None, None),
        Some(PartBound::Hash { modulus, remainder }) => {
            ("hash", Some(*modulus), Some(*remainder), None, None, None)
        }
        Some(PartBound::Range { from, to }) => {
            ("range", None, None, bound_text(from), bound_text(to), None)
        }
        Some(PartBound::List(values)) => {
            let items: Vec<String> = values.iter().map(|v| literal(&v.to_text())).collect();
            (
                "list",
                None,
                None,
                None,
                None,
                Some(format!("ARRAY[{}]::text[]", items.join(", "))),
            )
        }
    };
    format!(
        "INSERT INTO shardgate.partitions (name, parent, node, bound, modulus, remainder, range_from, range_to, list_values) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
        literal(name),
        literal(parent),
        literal(node_names.get(node).map(String::as_str).unwrap_or("")),
        literal(kind),
        modulus.map_or("NULL".into(), |m| m.to_string()),
        remainder.map_or("NULL".into(), |m| m.to_string()),
        lit_opt(from),
        lit_opt(to),
        list.unwrap_or_else(|| "NULL".into()),
    )
}

/// The catalog statements that record `ddl` (run in the DDL's transaction on the catalog
/// node), ending with the notification.
pub fn record_sql(ddl: &PartitionDdl, node_names: &[String]) -> String {
    let mut sql = match ddl {
        PartitionDdl::CreateParent {
            table,
            method,
            column,
            key_type,
        } => format!(
            "INSERT INTO shardgate.tables (name, method, column_name, key_type) VALUES ({}, {}, {}, {})",
            literal(table),
            literal(method),
            literal(column),
            literal(key_type.name())
        ),
        PartitionDdl::CreatePartition {
            name,
            parent,
            node,
            bound,
        } => insert_partition(name, parent, *node, bound, node_names),
        PartitionDdl::Attach {
            name,
            parent,
            node,
            bound,
            ..
        } => format!(
            "DELETE FROM shardgate.partitions WHERE name = {}; {}",
            literal(name),
            insert_partition(name, parent, *node, bound, node_names)
        ),
        // A detached table keeps its node; its partitions, if any, stay under it.
        PartitionDdl::Detach { name, .. } => format!(
            "UPDATE shardgate.partitions SET parent = '', bound = 'detached', modulus = NULL, remainder = NULL, \
             range_from = NULL, range_to = NULL, list_values = NULL WHERE name = {}",
            literal(name)
        ),
        PartitionDdl::Drop { names } => {
            let list: Vec<String> = names.iter().map(|n| literal(n)).collect();
            let list = list.join(", ");
            format!(
                "WITH RECURSIVE gone AS (SELECT name FROM shardgate.partitions WHERE name IN ({list}) OR parent IN ({list}) \
                   UNION SELECT p.name FROM shardgate.partitions p JOIN gone g ON p.parent = g.name) \
                 DELETE FROM shardgate.partitions WHERE name IN (SELECT name FROM gone); \
                 DELETE FROM shardgate.tables WHERE name IN ({list})"
            )
        }
    };
    sql.push_str(&format!("; NOTIFY {CHANNEL}"));
    sql
}

/// One table of the catalog and its partitions as shard-map entries.
fn table_entries(
    t: &tokio_postgres::Row,
    parts: &[tokio_postgres::Row],
    parents: &std::collections::HashMap<String, String>,
    config: &Config,
) -> Result<Vec<TableDist>, String> {
    let name: String = t.get(0);
    let method: String = t.get(1);
    let column: String = t.get(2);
    let ty_name: String = t.get(3);
    let ty = KeyType::from_sql_name(&ty_name)
        .ok_or_else(|| format!("catalog: table \"{name}\" has key type {ty_name}"))?;
    let mut mine = Vec::new();
    for p in parts {
        let pname: String = p.get(0);
        let parent: String = p.get(1);
        if root_of(parents, &parent) != name {
            continue;
        }
        let node_name: String = p.get(2);
        let node = config
            .nodes
            .iter()
            .position(|n| n.name == node_name)
            .ok_or_else(|| {
                format!("catalog: partition \"{pname}\" is on unknown node \"{node_name}\"")
            })?;
        let kind: String = p.get(3);
        let value = |s: Option<String>| -> Result<Bound, String> {
            match s {
                Some(s) => KeyValue::parse_text(ty, &s)
                    .map(Bound::Value)
                    .map_err(|e| e.message),
                None => Ok(Bound::Min),
            }
        };
        let bound = match kind.as_str() {
            "sub" => None,
            "default" => Some(PartBound::Default),
            "hash" => Some(PartBound::Hash {
                modulus: p.get::<_, Option<i64>>(4).unwrap_or(1) as u64,
                remainder: p.get::<_, Option<i64>>(5).unwrap_or(0) as u64,
            }),
            "range" => {
                let to: Option<String> = p.get(7);
                Some(PartBound::Range {
                    from: value(p.get(6))?,
                    to: match to {
                        Some(s) => value(Some(s))?,
                        None => Bound::Max,
                    },
                })
            }
            "list" => {
                let values: Option<Vec<String>> = p.get(8);
                let mut out = Vec::new();
                for v in values.unwrap_or_default() {
                    out.push(KeyValue::parse_text(ty, &v).map_err(|e| e.message)?);
                }
                Some(PartBound::List(out))
            }
            other => {
                return Err(format!(
                    "catalog: partition \"{pname}\" has bound kind {other}"
                ))
            }
        };
        mine.push(CatalogPartition {
            name: pname,
            parent,
            node,
            bound,
        });
    }
    build(&name, &method, &column, ty, &mine)
}

/// Reads the catalog's tables into shard-map entries.
pub async fn load(
    client: &tokio_postgres::Client,
    config: &Config,
) -> Result<Vec<TableDist>, String> {
    let tables = client
        .query(
            "SELECT name, method, column_name, key_type FROM shardgate.tables ORDER BY name",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let parts = client
        .query(
            "SELECT name, parent, node, bound, modulus, remainder, range_from, range_to, list_values \
             FROM shardgate.partitions ORDER BY created_at, name",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    // Each partition's parent, to find the table at the root of its tree (a detached
    // partition is a root).
    let detached = |p: &tokio_postgres::Row| p.get::<_, String>(3) == "detached";
    let parents: std::collections::HashMap<String, String> = parts
        .iter()
        .filter(|p| !detached(p))
        .map(|p| (p.get::<_, String>(0), p.get::<_, String>(1)))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        // A table the catalog describes wrongly is left out (and said), not every table.
        match table_entries(&t, &parts, &parents, config) {
            Ok(entries) => out.extend(entries),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    // Detached partitions, and the partitions under them: tables on their nodes.
    let node_of = |p: &tokio_postgres::Row| {
        let n: String = p.get(2);
        config.nodes.iter().position(|x| x.name == n)
    };
    for d in parts.iter().filter(|p| detached(p)) {
        let name: String = d.get(0);
        for p in &parts {
            let pname: String = p.get(0);
            let under = pname == name || root_of(&parents, &pname) == name;
            if let (true, Some(node)) = (under, node_of(p)) {
                let parent = if pname == name {
                    String::new()
                } else {
                    p.get(1)
                };
                // No column is named "": nothing reads a key of the table, and every
                // statement naming it goes to its node.
                out.push(TableDist::new(
                    pname,
                    String::new(),
                    Some(KeyType::Text),
                    crate::shardmap::TableKind::Partition { node, parent },
                ));
            }
        }
    }
    Ok(out)
}

/// The table at the root of the partition tree `name` belongs to.
fn root_of<'a>(
    parents: &'a std::collections::HashMap<String, String>,
    mut name: &'a str,
) -> &'a str {
    for _ in 0..64 {
        match parents.get(name) {
            Some(p) => name = p,
            None => break,
        }
    }
    name
}

/// Loads the catalog's map into `map`; a table both the config and the catalog define is an
/// error (at start, the process does not start). True when the map changed.
pub async fn reload(config: &Config, map: &ShardMap) -> Result<bool, String> {
    let timeout = Duration::from_secs(config.worker_timeout_secs);
    let url = &config.nodes[config.catalog_node].url;
    let client = super::transactions::connect(url, timeout).await?;
    let tables = tokio::time::timeout(timeout, load(&client, config))
        .await
        .map_err(|_| "reading the catalog timed out".to_string())??;
    for t in &tables {
        if map.get(&t.name).is_some() && !map.is_managed(&t.name) {
            return Err(format!(
                "table \"{}\" is both in the config's [[tables]] and in shardgate's catalog (created with PARTITION BY through shardgate): remove it from one",
                t.name
            ));
        }
    }
    // Where each key column sits, for INSERTs that name no columns.
    let mut positions = Vec::new();
    for t in tables
        .iter()
        .filter(|t| !matches!(t.kind, crate::shardmap::TableKind::Partition { .. }))
    {
        if let Ok(Ok(rows)) = tokio::time::timeout(
            timeout,
            client.query(super::COLUMN_SQL, &[&t.name, &t.column]),
        )
        .await
        {
            if let Some(r) = rows.first() {
                positions.push((t.name.clone(), r.get::<_, i64>(1) as usize));
            }
        }
    }
    let changed = map.replace_managed(tables);
    for (name, pos) in positions {
        map.set_key_position(&name, pos);
    }
    Ok(changed)
}

/// Follows the catalog: LISTEN on the catalog node, read the map again on each notification
/// and every few seconds; reconnects when the connection drops.
pub fn follow(shared: Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            let Some(s) = shared.upgrade() else { return };
            let url = s.config.nodes[s.config.catalog_node].url.clone();
            let timeout = Duration::from_secs(s.config.worker_timeout_secs);
            drop(s);
            if let Err(e) = listen(&shared, &url, timeout).await {
                tracing::debug!("following the catalog: {e}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn listen(shared: &Weak<Shared>, url: &str, timeout: Duration) -> Result<(), String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = tokio::time::timeout(
        timeout,
        crate::execute::tls::control_notified(url, Some(tx)),
    )
    .await
    .map_err(|_| "no answer".to_string())??;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let Some(s) = shared.upgrade() else {
            return Ok(());
        };
        if let Err(e) = s.reload_map().await {
            tracing::warn!("reading shardgate's catalog: {e}");
        }
        drop(s);
        // The sender goes with the connection: None once it ended.
        tokio::select! {
            got = rx.recv() => if got.is_none() { break },
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    Err("the catalog connection closed".into())
}
