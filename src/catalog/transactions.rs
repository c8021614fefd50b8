//! shardgate's own catalog on the catalog node: the `shardgate` schema, created once by
//! whichever shardgate process starts first, and in it the commit decisions of two-phase
//! commits (as Citus keeps `pg_dist_transaction`), with the global transaction ids they name.
//!
//! A decision record is inserted, inside a transaction on the catalog node, before any node is
//! asked to PREPARE; committing that transaction is the commit decision. So a prepared
//! transaction of shardgate's is in one of three states, which recovery tells apart: its
//! record is committed (commit it), its record's transaction is still open (a coordinator is
//! between the phases: leave it), or no record will ever commit (roll it back).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Every global transaction id shardgate gives PostgreSQL starts with this, so recovery
/// never touches a prepared transaction someone else made.
pub const GID_PREFIX: &str = "shardgate_";

/// The catalog's tables. Created with IF NOT EXISTS under an advisory lock, so that several
/// shardgate processes starting together (behind one load balancer) create them once.
///
/// `transactions`: one row per two-phase commit that reached its decision point. `gid` is the
/// transaction's id without the node suffix each participant's PREPARE adds; `committed` is
/// true for a coordinator's commit decision, false for an abort recorded by recovery.
///
/// `tables` and `partitions`: the tables created with `PARTITION BY` through shardgate and
/// their partitions at any depth (`catalog::partitions`).
pub const SCHEMA_SQL: &str = "BEGIN; SET LOCAL client_min_messages = warning;\
    SELECT pg_advisory_xact_lock(7243507623001);\
    CREATE SCHEMA IF NOT EXISTS shardgate;\
    CREATE TABLE IF NOT EXISTS shardgate.transactions (\
        gid text PRIMARY KEY,\
        committed boolean NOT NULL,\
        coordinator text NOT NULL DEFAULT '',\
        decided_at timestamptz NOT NULL DEFAULT now());\
    CREATE TABLE IF NOT EXISTS shardgate.tables (\
        name text PRIMARY KEY,\
        method text NOT NULL,\
        column_name text NOT NULL,\
        key_type text NOT NULL,\
        created_at timestamptz NOT NULL DEFAULT now());\
    CREATE TABLE IF NOT EXISTS shardgate.partitions (\
        name text PRIMARY KEY,\
        parent text NOT NULL,\
        node text NOT NULL,\
        bound text NOT NULL,\
        modulus int8, remainder int8,\
        range_from text, range_to text,\
        list_values text[],\
        created_at timestamptz NOT NULL DEFAULT now());\
    COMMIT";

/// Ids of this process's two-phase commits: a random prefix per process and a counter.
pub struct Gids {
    process: String,
    next: AtomicU64,
}

impl Default for Gids {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS per process: two shardgate processes sharing a
        // catalog never pick the same prefix by chance of start time or pid alone.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        Gids {
            process: format!("{:016x}", h.finish()),
            next: AtomicU64::new(1),
        }
    }
}

impl Gids {
    /// A fresh transaction id (without node suffix).
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{GID_PREFIX}{}_{n}", self.process)
    }

    pub fn process(&self) -> &str {
        &self.process
    }
}

/// The id node `node` prepares under: one per participant, since two nodes may be databases
/// of one PostgreSQL server, where prepared transaction ids are unique server-wide.
pub fn participant_gid(gid: &str, node: usize) -> String {
    format!("{gid}_{node}")
}

/// The transaction id a participant's prepared id belongs to, if it is one of shardgate's.
pub fn decision_gid(participant: &str) -> Option<&str> {
    if !participant.starts_with(GID_PREFIX) {
        return None;
    }
    let (gid, node) = participant.rsplit_once('_')?;
    node.parse::<usize>().ok()?;
    // shardgate_<process>_<n>: the prefix's own underscore, the process, the counter.
    (gid.matches('_').count() == 2).then_some(gid)
}

/// The decision record's INSERT, run inside the transaction whose commit is the decision.
pub fn record_sql(gid: &str, coordinator: &str) -> String {
    format!(
        "INSERT INTO shardgate.transactions (gid, committed, coordinator) VALUES ({}, true, {})",
        crate::quote::literal(gid),
        crate::quote::literal(coordinator)
    )
}

/// Connects to a node for shardgate's own control work (catalog, recovery), bounded by
/// `timeout`; the connection's task ends when the client is dropped.
pub async fn connect(url: &str, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    match tokio::time::timeout(timeout, crate::execute::tls::control(url)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

/// Creates the catalog's schema and tables on the catalog node if they are missing.
pub async fn ensure_schema(url: &str, timeout: Duration) -> Result<(), String> {
    let client = connect(url, timeout).await?;
    match tokio::time::timeout(timeout, client.batch_execute(SCHEMA_SQL)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("creating the shardgate schema timed out".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_round_trip() {
        let g = Gids::default();
        let a = g.next();
        let b = g.next();
        assert_ne!(a, b);
        let p = participant_gid(&a, 12);
        assert_eq!(decision_gid(&p), Some(a.as_str()));
        assert_eq!(decision_gid("shardgate_x"), None);
        assert_eq!(decision_gid("other_1_2_3"), None);
        assert_eq!(decision_gid("shardgate_a_b_c"), None);
    }
}
