//! Recovery of two-phase commits: every prepared transaction of shardgate's on any node is
//! committed or rolled back by its decision record in the catalog (see `transactions`), by
//! whichever shardgate process sharing the catalog gets there first. Runs at start and every
//! `server.recovery_interval_secs`, on the control path (tokio-postgres).

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::time::Duration;

use super::transactions::{connect, decision_gid, ensure_schema, GID_PREFIX};
use crate::config::Config;

/// What one recovery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub committed: usize,
    pub rolled_back: usize,
    /// Prepared transactions whose coordinator is still deciding (left for a later round).
    pub in_flight: usize,
    /// Decision records no node needs any more, deleted.
    pub forgotten: usize,
}

/// Runs recovery now and then every interval, while the process's shared state lives.
pub fn spawn(shared: Weak<crate::execute::Shared>) {
    tokio::spawn(async move {
        loop {
            let interval = {
                let Some(s) = shared.upgrade() else { return };
                match recover(&s.config).await {
                    Ok(r) if r != Report::default() => tracing::info!(
                        "recovery: {} committed, {} rolled back, {} in flight, {} records forgotten",
                        r.committed,
                        r.rolled_back,
                        r.in_flight,
                        r.forgotten
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("recovery of prepared transactions: {e}"),
                }
                Duration::from_secs(s.config.recovery_interval_secs)
            };
            tokio::time::sleep(interval).await;
        }
    });
}

/// One round over every node.
pub async fn recover(config: &Config) -> Result<Report, String> {
    let timeout = Duration::from_secs(config.worker_timeout_secs);
    let catalog_url = &config.nodes[config.catalog_node].url;
    ensure_schema(catalog_url, timeout).await?;
    let catalog = connect(catalog_url, timeout).await?;
    let bounded = |what: &'static str| move |_| format!("{what} timed out");
    // Read before the nodes are listed: a record seen here belongs to a transaction whose
    // participants had all prepared before its decision committed.
    let records: HashMap<String, bool> = tokio::time::timeout(
        timeout,
        catalog.query("SELECT gid, committed FROM shardgate.transactions", &[]),
    )
    .await
    .map_err(bounded("reading decisions"))?
    .map_err(|e| e.to_string())?
    .iter()
    .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
    .collect();
    let mut report = Report::default();
    let mut needed: HashSet<String> = HashSet::new();
    let mut all_listed = true;
    for node in &config.nodes {
        let client = match connect(&node.url, timeout).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("recovery: node \"{}\" unreachable: {e}", node.name);
                all_listed = false;
                continue;
            }
        };
        let listed = tokio::time::timeout(
            timeout,
            client.query(
                "SELECT gid FROM pg_prepared_xacts \
                 WHERE database = current_database() AND starts_with(gid, $1)",
                &[&GID_PREFIX],
            ),
        )
        .await;
        let rows = match listed {
            Ok(Ok(rows)) => rows,
            _ => {
                all_listed = false;
                continue;
            }
        };
        for row in rows {
            let gid: String = row.get(0);
            let Some(base) = decision_gid(&gid) else {
                continue;
            };
            needed.insert(base.to_string());
            let decision = match records.get(base) {
                Some(c) => Some(*c),
                None => decide(&catalog, base, timeout).await,
            };
            let sql = match decision {
                Some(true) => format!("COMMIT PREPARED {}", crate::quote::literal(&gid)),
                Some(false) => format!("ROLLBACK PREPARED {}", crate::quote::literal(&gid)),
                None => {
                    report.in_flight += 1;
                    continue;
                }
            };
            match tokio::time::timeout(timeout, client.batch_execute(&sql)).await {
                Ok(Ok(())) => {
                    tracing::info!("recovery: {sql} on node \"{}\"", node.name);
                    match decision {
                        Some(true) => report.committed += 1,
                        _ => report.rolled_back += 1,
                    }
                }
                // Finished meanwhile by its coordinator or another shardgate: nothing to do.
                Ok(Err(e)) if e.code().is_some_and(|c| c.code() == "42704") => {}
                Ok(Err(e)) => tracing::warn!("recovery: {sql} on \"{}\": {e}", node.name),
                Err(_) => tracing::warn!("recovery: {sql} on \"{}\" timed out", node.name),
            }
        }
    }
    if all_listed {
        let done: Vec<&String> = records.keys().filter(|g| !needed.contains(*g)).collect();
        if !done.is_empty() {
            let deleted = tokio::time::timeout(
                timeout,
                catalog.execute(
                    "DELETE FROM shardgate.transactions WHERE gid = ANY($1)",
                    &[&done],
                ),
            )
            .await;
            if let Ok(Ok(n)) = deleted {
                report.forgotten = n as usize;
            }
        }
    }
    Ok(report)
}

/// The decision for a prepared transaction without a visible record. Recording an abort
/// waits on the unique key for a coordinator whose record is not committed yet (it inserted
/// the record before any PREPARE): if that coordinator commits, the insert conflicts and its
/// commit decision stands; if it rolled back or died, the abort is recorded. A coordinator
/// that takes longer than the lock timeout is still deciding: None, try again next round.
async fn decide(catalog: &tokio_postgres::Client, gid: &str, timeout: Duration) -> Option<bool> {
    let work = async {
        catalog
            .batch_execute("BEGIN; SET LOCAL lock_timeout = '2s'")
            .await?;
        let inserted = catalog
            .query_opt(
                "INSERT INTO shardgate.transactions (gid, committed, coordinator) \
                 VALUES ($1, false, 'recovery') ON CONFLICT (gid) DO NOTHING RETURNING gid",
                &[&gid],
            )
            .await;
        let inserted = match inserted {
            Ok(r) => r,
            Err(e) => {
                let _ = catalog.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        catalog.batch_execute("COMMIT").await?;
        if inserted.is_some() {
            return Ok(Some(false));
        }
        let row = catalog
            .query_opt(
                "SELECT committed FROM shardgate.transactions WHERE gid = $1",
                &[&gid],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>(row.map(|r| r.get::<_, bool>(0)))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::debug!("recovery: deciding {gid}: {e}");
            None
        }
        Err(_) => None,
    }
}
