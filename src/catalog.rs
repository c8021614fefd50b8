//! Catalogs, on the control path (tokio-postgres): shardgate's own (the `shardgate` schema on
//! the catalog node: commit decisions, see [`transactions`], and their [`recovery`]), and what
//! the config leaves out, learned from the workers' catalogs: the type and position of each
//! distributed table's key column and the functions the default node knows; at start, the
//! config is checked against every worker (see [`check_workers`]).

mod check;
pub mod columns;
pub mod functions;
pub mod partitions;
pub mod recovery;
pub mod transactions;

pub use check::{check_workers, Startup};

use std::time::Duration;

use crate::config::Config;
use crate::shardmap::KeyType;

pub(crate) const COLUMN_SQL: &str = "SELECT format_type(a.atttypid, a.atttypmod), \
     (SELECT count(*) FROM pg_attribute b WHERE b.attrelid = a.attrelid AND b.attnum > 0 \
        AND NOT b.attisdropped AND b.attnum < a.attnum)::int8 \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
     WHERE c.relname = $1 AND a.attname = $2 AND c.relkind IN ('r', 'p') \
       AND pg_table_is_visible(c.oid) AND NOT a.attisdropped";

/// For every distributed table, asks the first node holding it for its key column. Tables that
/// do not exist yet are learned when created through shardgate.
pub async fn learn_key_types(config: &Config) -> Result<(), String> {
    let map = &config.shardmap;
    for t in map.tables() {
        if t.is_reference() {
            continue;
        }
        let node = t
            .nodes(map.node_count)
            .first()
            .copied()
            .unwrap_or(config.default_node);
        let url = &config.nodes[node].url;
        let connect = crate::execute::tls::control(url);
        let client =
            match tokio::time::timeout(Duration::from_secs(config.worker_timeout_secs), connect)
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::warn!(
                        "node \"{}\" unreachable, key type of \"{}\" unknown: {e}",
                        config.nodes[node].name,
                        t.name
                    );
                    continue;
                }
                Err(_) => {
                    tracing::warn!("node \"{}\" timed out", config.nodes[node].name);
                    continue;
                }
            };
        let rows = client.query(COLUMN_SQL, &[&t.name, &t.column]).await;
        drop(client);
        let Ok(rows) = rows else { continue };
        let Some(row) = rows.first() else { continue };
        let ty_name: String = row.get(0);
        let pos: i64 = row.get(1);
        match KeyType::from_sql_name(&ty_name) {
            Some(ty) => {
                if t.key_type.is_some_and(|k| k != ty) {
                    return Err(format!(
                        "config: table \"{}\": type says {} but column \"{}\" is {ty_name} on the workers",
                        t.name,
                        t.key_type.map(|k| k.name()).unwrap_or(""),
                        t.column
                    ));
                }
                map.set_key_type(&t.name, ty)?;
                map.set_key_position(&t.name, pos as usize);
            }
            None => {
                return Err(format!(
                "config: table \"{}\": distribution column \"{}\" has unsupported type {ty_name}",
                t.name, t.column
            ))
            }
        }
    }
    Ok(())
}
