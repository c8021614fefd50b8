//! The shard map: for each distributed table, value → shard → node. Pure: no I/O, no SQL.
//!
//! Shards follow PostgreSQL's declarative partitioning (partbounds.c): hash shards are
//! `MODULUS m, REMAINDER r`, range shards half-open `[from, to)` with MINVALUE/MAXVALUE, list
//! shards value sets with an optional DEFAULT.

pub mod hash;
pub mod list;
pub mod range;
pub mod siphash;
pub mod value;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

pub use range::Bound;
pub use value::{KeyType, KeyValue};

use crate::error::{code, SgError, SgResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunc {
    /// PostgreSQL's own partition hash, so workers' partitions can check placement.
    Postgres,
    SipHash,
}

/// A shard's index within its table: the remainder for hash tables, the position in the config
/// for range and list tables (the DEFAULT shard comes last).
pub type ShardId = u32;

/// The node of a hash remainder that has no partition yet (a table whose partitions are
/// created one by one with `PARTITION OF`): no row can go there (PostgreSQL's 23514).
pub const NO_NODE: usize = usize::MAX;

#[derive(Debug, Clone)]
pub enum TableKind {
    Reference,
    Hash {
        modulus: u64,
        func: HashFunc,
        placement: Vec<usize>,
    },
    Range(range::RangeLayout),
    List(list::ListLayout),
    /// A partition of a table created with `PARTITION OF` (any depth), named by a statement:
    /// the statement goes to the partition's node, whose PostgreSQL checks its bounds.
    Partition {
        node: usize,
        parent: String,
    },
}

impl TableKind {
    pub fn range(
        ranges: Vec<(Bound, Bound, usize)>,
        default: Option<usize>,
    ) -> Result<TableKind, String> {
        range::RangeLayout::new(ranges, default).map(TableKind::Range)
    }

    pub fn list(
        lists: Vec<(Vec<KeyValue>, usize)>,
        default: Option<usize>,
    ) -> Result<TableKind, String> {
        list::ListLayout::new(lists, default).map(TableKind::List)
    }

    pub fn method(&self) -> &'static str {
        match self {
            TableKind::Reference => "reference",
            TableKind::Hash { .. } => "hash",
            TableKind::Range(_) => "range",
            TableKind::List(_) => "list",
            TableKind::Partition { .. } => "partition",
        }
    }
}

/// One distributed (or reference) table.
#[derive(Debug, Clone)]
pub struct TableDist {
    pub name: String,
    pub column: String,
    pub key_type: Option<KeyType>,
    pub kind: TableKind,
    /// The partitions' own names, by shard, for tables created with `PARTITION BY` through
    /// shardgate; empty for tables of the config (named `<table>_<shard>`).
    pub names: Vec<String>,
}

impl TableDist {
    pub fn new(
        name: String,
        column: String,
        key_type: Option<KeyType>,
        kind: TableKind,
    ) -> TableDist {
        TableDist {
            name,
            column,
            key_type,
            kind,
            names: Vec::new(),
        }
    }

    pub fn is_reference(&self) -> bool {
        matches!(self.kind, TableKind::Reference)
    }

    pub fn shard_count(&self) -> u32 {
        match &self.kind {
            TableKind::Reference => 1,
            TableKind::Hash { modulus, .. } => *modulus as u32,
            TableKind::Range(r) => r.shard_count(),
            TableKind::List(l) => l.shard_count(),
            TableKind::Partition { .. } => 1,
        }
    }

    /// Whether the shard has a partition (a hash remainder may have none yet).
    pub fn has_shard(&self, shard: ShardId) -> bool {
        self.node_of(shard) != NO_NODE
    }

    /// The node holding a shard. Reference tables have one logical shard on every node; callers
    /// treat them apart.
    pub fn node_of(&self, shard: ShardId) -> usize {
        match &self.kind {
            TableKind::Reference => 0,
            TableKind::Hash { placement, .. } => {
                placement.get(shard as usize).copied().unwrap_or(0)
            }
            TableKind::Range(r) => r.node_of(shard),
            TableKind::List(l) => l.node_of(shard),
            TableKind::Partition { node, .. } => *node,
        }
    }

    /// Every node that holds at least one shard of the table, ascending.
    pub fn nodes(&self, node_count: usize) -> Vec<usize> {
        if self.is_reference() {
            return (0..node_count).collect();
        }
        let set: BTreeSet<usize> = (0..self.shard_count())
            .map(|s| self.node_of(s))
            .filter(|n| *n != NO_NODE)
            .collect();
        set.into_iter().collect()
    }

    pub fn key_type(&self) -> SgResult<KeyType> {
        self.key_type.ok_or_else(|| {
            SgError::unsupported(format!(
                "routing on table \"{}\" before the type of its distribution column \"{}\" is known (create it through shardgate or set type in the config)",
                self.name, self.column
            ))
        })
    }

    /// The shard a row with this key belongs to; None when no shard accepts it (a range or
    /// list table without DEFAULT), as PostgreSQL's "no partition of relation found for row".
    pub fn shard_of(&self, key: Option<&KeyValue>) -> SgResult<Option<ShardId>> {
        Ok(match &self.kind {
            TableKind::Reference => Some(0),
            TableKind::Hash { modulus, func, .. } => {
                let h = match (key, func) {
                    (None, _) => 0,
                    (Some(v), HashFunc::Postgres) => {
                        hash::row_hash(Some(pg_hash(v, self.key_type()?)))
                    }
                    (Some(v), HashFunc::SipHash) => siphash::siphash_key(&sip_bytes(v)),
                };
                Some(hash::remainder(h, *modulus) as ShardId).filter(|r| self.has_shard(*r))
            }
            TableKind::Range(r) => r.shard_of(key),
            TableKind::List(l) => l.shard_of(key),
            TableKind::Partition { .. } => Some(0),
        })
    }

    /// Same as shard_of, for a row being inserted: no shard is PostgreSQL's 23514.
    pub fn shard_for_row(&self, key: Option<&KeyValue>) -> SgResult<ShardId> {
        self.shard_of(key)?.ok_or_else(|| {
            SgError::new(
                code::CHECK_VIOLATION,
                format!("no partition of relation \"{}\" found for row", self.name),
            )
            .with_detail(format!(
                "Partition key of the failing row contains ({}) = ({}).",
                self.column,
                key.map(|k| k.to_text()).unwrap_or_else(|| "null".into())
            ))
        })
    }

    /// This table with its bounds read as `ty`, once the column's type is known.
    pub fn with_key_type(&self, ty: KeyType) -> Result<TableDist, String> {
        let kind = match &self.kind {
            TableKind::Range(r) => TableKind::Range(r.retype(ty)?),
            TableKind::List(l) => TableKind::List(l.retype(ty)?),
            k => k.clone(),
        };
        Ok(TableDist {
            key_type: Some(ty),
            kind,
            ..self.clone()
        })
    }

    /// The partition's name on the workers.
    pub fn shard_name(&self, shard: ShardId) -> String {
        if let Some(n) = self.names.get(shard as usize) {
            return n.clone();
        }
        match &self.kind {
            TableKind::Range(r) if r.is_default(shard) => format!("{}_default", self.name),
            TableKind::List(l) if l.is_default(shard) => format!("{}_default", self.name),
            _ => format!("{}_{}", self.name, shard),
        }
    }
}

/// PostgreSQL's per-type extended hash (hashfunc.c) for a key value.
fn pg_hash(v: &KeyValue, ty: KeyType) -> u64 {
    match v {
        KeyValue::Int(i) => match ty {
            KeyType::Int2 | KeyType::Int4 => hash::hash_int4(*i as i32),
            _ => hash::hash_int8(*i),
        },
        KeyValue::Text(s) => hash::hash_text(s),
        KeyValue::Uuid(u) => hash::hash_uuid(u),
        KeyValue::Date(d) => hash::hash_date(*d),
        KeyValue::Timestamp(t) => hash::hash_timestamp(*t),
    }
}

/// Normalised bytes for SipHash: one encoding per value whatever form the client sent it in.
fn sip_bytes(v: &KeyValue) -> Vec<u8> {
    match v {
        KeyValue::Int(i) => i.to_be_bytes().to_vec(),
        KeyValue::Text(s) => s.as_bytes().to_vec(),
        KeyValue::Uuid(u) => u.to_vec(),
        KeyValue::Date(d) => d.to_be_bytes().to_vec(),
        KeyValue::Timestamp(t) => t.to_be_bytes().to_vec(),
    }
}

/// All tables, shared by every session. A table's key type may be learned after start (from
/// the workers' catalog or a CREATE TABLE), so entries are replaced, never mutated.
#[derive(Debug)]
pub struct ShardMap {
    tables: RwLock<HashMap<String, Arc<TableDist>>>,
    /// Position of the distribution column among the table's columns (for INSERTs that list
    /// no columns), learned with the key type.
    positions: RwLock<HashMap<String, usize>>,
    /// Names of the tables (and partitions) loaded from shardgate's catalog.
    managed: RwLock<std::collections::HashSet<String>>,
    pub node_count: usize,
    pub default_node: usize,
}

impl ShardMap {
    pub fn new(tables: Vec<TableDist>, node_count: usize, default_node: usize) -> ShardMap {
        let mut map = HashMap::new();
        for t in tables {
            let t = match t.key_type {
                Some(ty) => t.with_key_type(ty).unwrap_or(t),
                None => t,
            };
            map.insert(t.name.clone(), Arc::new(t));
        }
        ShardMap {
            tables: RwLock::new(map),
            positions: RwLock::new(HashMap::new()),
            managed: RwLock::new(Default::default()),
            node_count,
            default_node,
        }
    }

    /// Looks a table up by its unqualified, case-folded name.
    pub fn get(&self, name: &str) -> Option<Arc<TableDist>> {
        self.tables.read().ok()?.get(name).cloned()
    }

    pub fn tables(&self) -> Vec<Arc<TableDist>> {
        let mut v: Vec<_> = self
            .tables
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Replaces the tables that come from shardgate's catalog (created with `PARTITION BY`
    /// through shardgate) and their partitions with `tables`; the config's stay.
    /// True when anything changed.
    pub fn replace_managed(&self, tables: Vec<TableDist>) -> bool {
        let Ok(mut map) = self.tables.write() else {
            return false;
        };
        let Ok(mut managed) = self.managed.write() else {
            return false;
        };
        let fingerprint = |ts: &mut Vec<String>| {
            ts.sort();
            ts.join("\n")
        };
        let mut old: Vec<String> = managed
            .iter()
            .filter_map(|n| map.get(n).map(|t| format!("{t:?}")))
            .collect();
        let mut new: Vec<String> = tables.iter().map(|t| format!("{t:?}")).collect();
        if fingerprint(&mut old) == fingerprint(&mut new) {
            return false;
        }
        for name in managed.drain() {
            map.remove(&name);
        }
        for t in tables {
            managed.insert(t.name.clone());
            map.insert(t.name.clone(), Arc::new(t));
        }
        true
    }

    /// Whether the table came from shardgate's catalog.
    pub fn is_managed(&self, name: &str) -> bool {
        self.managed.read().is_ok_and(|m| m.contains(name))
    }

    pub fn key_position(&self, name: &str) -> Option<usize> {
        self.positions.read().ok()?.get(name).copied()
    }

    pub fn set_key_position(&self, name: &str, pos: usize) {
        if let Ok(mut p) = self.positions.write() {
            p.insert(name.to_string(), pos);
        }
    }

    /// Records the distribution column's type; errors if a config bound does not read as it.
    pub fn set_key_type(&self, name: &str, ty: KeyType) -> Result<(), String> {
        let mut tables = self
            .tables
            .write()
            .map_err(|_| "shard map lock poisoned".to_string())?;
        if let Some(t) = tables.get(name) {
            if t.key_type == Some(ty) {
                return Ok(());
            }
            let retyped = t
                .with_key_type(ty)
                .map_err(|e| format!("table \"{name}\": {e}"))?;
            tables.insert(name.to_string(), Arc::new(retyped));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_table(ty: KeyType, modulus: u64) -> TableDist {
        TableDist::new(
            "t".into(),
            "k".into(),
            Some(ty),
            TableKind::Hash {
                modulus,
                func: HashFunc::Postgres,
                placement: (0..modulus as usize).map(|r| r % 3).collect(),
            },
        )
    }

    #[test]
    fn hash_shards_match_postgres_vectors() {
        let t = hash_table(KeyType::Int4, 4);
        for (v, r) in [(0, 0), (1, 0), (2, 2), (3, 1), (42, 2), (-1, 1)] {
            assert_eq!(t.shard_of(Some(&KeyValue::Int(v))), Ok(Some(r)), "{v}");
        }
        let t = hash_table(KeyType::Text, 4);
        for (v, r) in [("", 2), ("a", 2), ("abc", 1), ("hello world", 0)] {
            assert_eq!(
                t.shard_of(Some(&KeyValue::Text(v.into()))),
                Ok(Some(r)),
                "{v}"
            );
        }
        assert_eq!(t.shard_of(None), Ok(Some(0)));
        assert_eq!(t.node_of(3), 0);
        assert_eq!(t.nodes(3), vec![0, 1, 2]);
    }

    #[test]
    fn untyped_table_refuses_routing() {
        let mut t = hash_table(KeyType::Int4, 4);
        t.key_type = None;
        assert!(t.shard_of(Some(&KeyValue::Int(1))).is_err());
    }
}
