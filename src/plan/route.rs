//! Routing: from a statement's analysis and its parameter values to the nodes that must run it.

use std::collections::BTreeSet;

use sqlparser::ast::Statement;

use super::{ddl, insert, Combine, Plan, SessionOp};
use crate::analyze::pins::Cmp;
use crate::analyze::shape::Literal;
use crate::analyze::{Kind, Pin, Stmt, ValueSrc};
use crate::error::{SgError, SgResult};
use crate::shardmap::range::Edge;
use crate::shardmap::{KeyType, KeyValue, ShardId, ShardMap, TableDist, TableKind};

/// The values `$n` stand for: lifted literals (simple protocol) or Bind parameters.
#[derive(Clone, Copy)]
pub struct Values<'a> {
    pub literals: &'a [Literal],
    pub params: &'a [Option<bytes::Bytes>],
    /// Bind's parameter format codes (0 text, 1 binary), as the protocol allows: none (all
    /// text), one (for all), or one per parameter.
    pub formats: &'a [i16],
    /// The instants now() and its kin stand for in this statement, when it calls them.
    pub clock: Option<&'a super::clock::Clock>,
    /// Key texts shardgate's own parser does not read ('01/02/2024', 'infinity'), with the
    /// value PostgreSQL read them as (`Session::plan_reading_keys`).
    pub keys: &'a [(KeyType, String, KeyValue)],
}

impl Values<'_> {
    pub const NONE: Values<'static> = Values {
        literals: &[],
        params: &[],
        formats: &[],
        clock: None,
        keys: &[],
    };

    /// `text` as a key of type `ty`: shardgate's parser, else what PostgreSQL read it as.
    fn read(&self, ty: KeyType, text: &str) -> SgResult<KeyValue> {
        KeyValue::parse_text(ty, text).or_else(|e| {
            self.keys
                .iter()
                .find(|(t, s, _)| *t == ty && s == text)
                .map(|(_, _, v)| v.clone())
                .ok_or(e)
        })
    }

    /// The key value a source stands for: Ok(None) for NULL; Err when it does not read as the
    /// key's type (callers decide whether that is an error or "every shard").
    pub fn resolve(&self, src: &ValueSrc, ty: KeyType) -> SgResult<Option<KeyValue>> {
        let (text, negate) = match src {
            ValueSrc::Null => return Ok(None),
            ValueSrc::Literal(s) => (s.clone(), false),
            ValueSrc::Param { index, negate } => {
                let i = index.wrapping_sub(1);
                if let Some(lit) = self.literals.get(i) {
                    (lit.text.clone(), *negate)
                } else {
                    let Some(p) = self.params.get(i) else {
                        return Err(SgError::protocol(format!("there is no parameter ${index}")));
                    };
                    let Some(bytes) = p else { return Ok(None) };
                    let format = match self.formats.len() {
                        0 => 0,
                        1 => self.formats[0],
                        _ => self.formats.get(i).copied().unwrap_or(0),
                    };
                    let v = if format == 1 {
                        KeyValue::parse_binary(ty, bytes)?
                    } else {
                        let s = std::str::from_utf8(bytes)
                            .map_err(|_| SgError::protocol("parameter is not valid UTF-8"))?;
                        self.read(ty, s)?
                    };
                    return match (v, negate) {
                        (KeyValue::Int(i), true) => Ok(Some(KeyValue::Int(-i))),
                        (_, true) => Err(SgError::unsupported("negated non-integer key")),
                        (v, false) => Ok(Some(v)),
                    };
                }
            }
        };
        let text = if negate { format!("-{text}") } else { text };
        self.read(ty, &text).map(Some)
    }
}

/// Shards of `t` a pin allows; None means every shard.
fn shards(t: &TableDist, pin: &Pin, v: &Values) -> Option<BTreeSet<ShardId>> {
    let ty = t.key_type?;
    match pin {
        Pin::All => None,
        Pin::Nothing => Some(BTreeSet::new()),
        Pin::Eq(src) => match v.resolve(src, ty) {
            Ok(None) => Some(BTreeSet::new()),
            Ok(Some(k)) => Some(t.shard_of(Some(&k)).ok()?.into_iter().collect()),
            Err(_) => None,
        },
        Pin::IsNull => Some(t.shard_of(None).ok()?.into_iter().collect()),
        Pin::Cmp(c, src) => {
            let TableKind::Range(r) = &t.kind else {
                return None;
            };
            let k = match v.resolve(src, ty) {
                Ok(Some(k)) => k,
                Ok(None) => return Some(BTreeSet::new()),
                Err(_) => return None,
            };
            let (lo, hi): (Edge, Edge) = match c {
                Cmp::Lt => (None, Some((&k, false))),
                Cmp::Le => (None, Some((&k, true))),
                Cmp::Gt => (Some((&k, false)), None),
                Cmp::Ge => (Some((&k, true)), None),
            };
            Some(r.shards_overlapping(lo, hi).into_iter().collect())
        }
        Pin::And(ps) => ps.iter().fold(None, |acc: Option<BTreeSet<ShardId>>, p| {
            match (acc, shards(t, p, v)) {
                (None, s) | (s, None) => s,
                (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
            }
        }),
        Pin::Or(ps) => {
            let mut out = BTreeSet::new();
            for p in ps {
                out.extend(shards(t, p, v)?);
            }
            Some(out)
        }
    }
}

pub(super) fn table(map: &ShardMap, name: &str) -> SgResult<std::sync::Arc<TableDist>> {
    map.get(name)
        .ok_or_else(|| SgError::internal(format!("table \"{name}\" vanished from the shard map")))
}

/// Tables hash-distributed the same way: a row's shard, and so its node, is the same in each.
fn colocated(a: &TableDist, b: &TableDist) -> bool {
    if a.name == b.name {
        return true;
    }
    match (&a.kind, &b.kind) {
        (
            TableKind::Hash {
                modulus: m1,
                func: f1,
                placement: p1,
            },
            TableKind::Hash {
                modulus: m2,
                func: f2,
                placement: p2,
            },
        ) => {
            let family = |t: &TableDist| {
                t.key_type
                    .map(|k| if k.is_integer() { KeyType::Int8 } else { k })
            };
            m1 == m2 && f1 == f2 && p1 == p2 && family(a).is_some() && family(a) == family(b)
        }
        _ => false,
    }
}

/// Plans one statement. `text` is this statement's text as the client sent it now (a cached
/// analysis may have been made from another text of the same shape).
pub fn plan(stmt: &Stmt, text: &str, values: &Values, map: &ShardMap) -> SgResult<Plan> {
    let p = plan_statement(stmt, text, values, map)?;
    if selects_into(stmt) {
        return creates_from_query(p, map, "SELECT ... INTO");
    }
    Ok(p)
}

/// Whether the statement is partitioning DDL (`plan::partition`).
fn partition_ddl(stmt: &Stmt, map: &ShardMap) -> SgResult<bool> {
    match &stmt.ast {
        Some(ast) => Ok(super::partition::classify(ast, map, None)?.is_some()),
        None => Ok(false),
    }
}

/// `SELECT ... INTO t`: a CREATE TABLE AS in disguise.
fn selects_into(stmt: &Stmt) -> bool {
    matches!(&stmt.ast, Some(Statement::Query(q))
        if matches!(q.body.as_ref(), sqlparser::ast::SetExpr::Select(s) if s.into.is_some()))
}

/// A table created from a query's rows (CREATE TABLE AS, SELECT INTO) is a plain table on the
/// default node: the query must read there only, all of its rows. Where it needs other nodes,
/// running it on each (or on the default node alone) would create per-node copies or a
/// partial one.
pub fn creates_from_query(p: Plan, map: &ShardMap, what: &str) -> SgResult<Plan> {
    match p {
        Plan::Route { node, .. } if node == map.default_node => Ok(p),
        _ => Err(SgError::unsupported(format!(
            "{what} over rows of distributed tables not all on the default node (create the table, then fill it with INSERT ... SELECT)"
        ))),
    }
}

fn plan_statement(stmt: &Stmt, text: &str, values: &Values, map: &ShardMap) -> SgResult<Plan> {
    if let Some(e) = &stmt.refuse {
        return Err(e.clone());
    }
    if stmt.moves_key {
        return super::moves::moves(stmt, text, values, map);
    }
    let default = map.default_node;
    let all: Vec<usize> = (0..map.node_count).collect();
    Ok(match &stmt.kind {
        Kind::Begin => Plan::Session(SessionOp::Begin),
        Kind::Commit => Plan::Session(SessionOp::Commit),
        Kind::Rollback => Plan::Session(SessionOp::Rollback),
        Kind::TxnOther => Plan::Session(SessionOp::TxnOther),
        Kind::Set(_) => Plan::Session(SessionOp::Set),
        Kind::Copy { .. } => super::copy::copy(stmt, text, map)?,
        Kind::Show | Kind::Other => Plan::Route {
            node: default,
            why: "no distributed table".into(),
        },
        // Tables shardgate does not distribute live on the default node only.
        Kind::Maintenance
            if !stmt.ddl_tables.is_empty()
                && stmt.ddl_tables.iter().all(|t| map.get(t).is_none()) =>
        {
            Plan::Route {
                node: default,
                why: "maintenance of tables on the default node".into(),
            }
        }
        Kind::Maintenance => Plan::Scatter {
            nodes: all,
            combine: Combine::Same,
            why: "maintenance on every node".into(),
        },
        Kind::OtherDdl { all_nodes: true } => Plan::Scatter {
            nodes: all,
            combine: Combine::Same,
            why: "object every node needs".into(),
        },
        Kind::OtherDdl { all_nodes: false } => Plan::Route {
            node: default,
            why: "object on the default node".into(),
        },
        Kind::CreateTable | Kind::Drop if partition_ddl(stmt, map)? => {
            // The simple query path runs these (`session::partition`).
            return Err(SgError::unsupported(
                "partitioning DDL here (send it alone, as a simple Query: psql does)",
            ));
        }
        Kind::CreateTable => ddl::create_table(stmt, text, map)?,
        Kind::CreateIndex | Kind::AlterTable | Kind::Truncate | Kind::Drop => {
            if stmt.kind == Kind::AlterTable
                && super::partition::classify_text(text, map, None)?.is_some()
            {
                return Err(SgError::unsupported(
                    "partitioning DDL here (send it alone, as a simple Query: psql does)",
                ));
            }
            let mut sets = BTreeSet::new();
            for t in &stmt.ddl_tables {
                sets.insert(match map.get(t) {
                    // Every node holds the table's parent (`ddl::create_table`), and every
                    // partition (empty where it is not placed, `PartitionDdl::nodes`).
                    Some(_) => all.clone(),
                    None => vec![default],
                });
            }
            if sets.len() > 1 {
                return Err(SgError::unsupported(
                    "one DDL statement over tables that live on different nodes (issue one per table)",
                ));
            }
            let nodes = sets.into_iter().next().unwrap_or_else(|| vec![default]);
            Plan::Scatter {
                nodes,
                combine: Combine::Same,
                why: format!("DDL on every node holding {}", stmt.ddl_tables.join(", ")),
            }
        }
        Kind::Insert if stmt.insert.is_some() => insert::insert(stmt, text, values, map)?,
        Kind::Insert if stmt.insert_select.is_some() => {
            insert::insert_select(stmt, text, values, map)?
        }
        Kind::Explain { analyze } => {
            let inner = stmt
                .explained
                .as_ref()
                .ok_or_else(|| SgError::internal("EXPLAIN without its statement"))?;
            // The statement as this text spells it (the analysis may come from another text).
            let explain = reparse(text)?;
            let options = crate::analyze::explain::options(&explain)?.unwrap_or_default();
            let inner_text = match explain {
                Statement::Explain { statement, .. } => statement.to_string(),
                _ => inner.text.clone(),
            };
            let plan = plan(inner, &inner_text, values, map)?;
            if *analyze && matches!(plan, Plan::MoveRows { .. }) {
                // Its node part alone is a DELETE: run on its own it would lose the rows.
                return Err(SgError::unsupported(
                    "EXPLAIN ANALYZE of an UPDATE of the distribution column",
                ));
            }
            Plan::Explain {
                inner: Box::new(plan),
                analyze: *analyze,
                sql: inner_text,
                options: options.pass,
            }
        }
        Kind::Select { .. } | Kind::Update | Kind::Delete | Kind::Insert => {
            accesses(stmt, text, values, map)?
        }
    })
}

fn accesses(stmt: &Stmt, text: &str, values: &Values, map: &ShardMap) -> SgResult<Plan> {
    match super::keyed::keyed(stmt, values, map) {
        Some(p) => Ok(p),
        None => general_accesses(stmt, text, values, map),
    }
}

/// The plan of a statement over table accesses, however they are pinned.
pub(super) fn general_accesses(
    stmt: &Stmt,
    text: &str,
    values: &Values,
    map: &ShardMap,
) -> SgResult<Plan> {
    let default = map.default_node;
    let write = stmt.kind.is_write();
    let mut nodes = BTreeSet::new();
    let mut dist = Vec::new();
    let mut reference = false;
    let mut shard_names = Vec::new();
    for (i, a) in stmt.accesses.iter().enumerate() {
        let t = table(map, &a.table)?;
        if t.is_reference() {
            reference = true;
            continue;
        }
        t.key_type()?;
        let set: Vec<ShardId> = match shards(&t, &a.pin, values) {
            Some(s) => s.into_iter().filter(|s| t.has_shard(*s)).collect(),
            None => (0..t.shard_count()).filter(|s| t.has_shard(*s)).collect(),
        };
        nodes.extend(set.iter().map(|s| t.node_of(*s)));
        if set.len() < t.shard_count() as usize {
            shard_names.push(format!(
                "{} shards [{}]",
                t.name,
                set.iter()
                    .map(|s| t.shard_name(*s))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        } else {
            shard_names.push(format!("{} all {} shards", t.name, t.shard_count()));
        }
        dist.push((i, t));
    }
    let shards_note = shard_names.join("; ");
    if dist.is_empty() {
        if !reference || !write {
            return Ok(Plan::Route {
                node: default,
                why: if reference {
                    "reference tables only".into()
                } else {
                    "no distributed table".into()
                },
            });
        }
        if stmt.touches_local {
            return Err(SgError::unsupported(
                "a write to a reference table that reads tables on the default node",
            ));
        }
        return Ok(Plan::Scatter {
            nodes: (0..map.node_count).collect(),
            combine: Combine::Same,
            why: "write to a reference table".into(),
        });
    }
    if write
        && reference
        && stmt
            .accesses
            .first()
            .is_some_and(|a| map.get(&a.table).is_some_and(|t| t.is_reference()))
    {
        return Err(SgError::unsupported(
            "a write to a reference table that reads a distributed table",
        ));
    }
    if nodes.is_empty() {
        // No shard can hold a matching row; one node holding the table answers with no rows
        // and the right columns.
        let node = dist[0]
            .1
            .nodes(map.node_count)
            .first()
            .copied()
            .unwrap_or(default);
        return Ok(Plan::Route {
            node,
            why: format!("no shard can match: {shards_note}"),
        });
    }
    if stmt.touches_local {
        if nodes.len() == 1 && nodes.contains(&default) {
            return Ok(Plan::Route {
                node: default,
                why: "distributed rows on the default node joined with local tables".into(),
            });
        }
        return Err(SgError::unsupported(
            "a query joining distributed tables with tables that are not in the shard map (they live on the default node only)",
        ));
    }
    if nodes.len() == 1 {
        let node = nodes.into_iter().next().unwrap_or(default);
        return Ok(Plan::Route {
            node,
            why: format!("key pins one node: {shards_note}"),
        });
    }
    if let Some(why) = &stmt.no_scatter {
        return Err(SgError::unsupported(why));
    }
    if dist.len() > 1 {
        let first = &dist[0].1;
        let all_colocated = dist.iter().all(|(_, t)| colocated(first, t));
        if !all_colocated
            || !connected(
                &dist.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                &stmt.key_joins,
            )
        {
            return Err(SgError::unsupported(
                "a join of distributed tables that are not co-located and joined on their distribution columns",
            ));
        }
    }
    // A locking SELECT is merged like any SELECT: each node locks the rows it returns, which
    // are all the rows PostgreSQL would lock unless a LIMIT, OFFSET or FETCH cuts them after
    // the merge (each node would lock rows of its own that the merge then drops).
    let locking = matches!(stmt.kind, Kind::Select { locking: true });
    if let (false, Some(why)) = (write && !locking, &stmt.needs_merge) {
        if locking && cut_after_merge(stmt) {
            return Err(SgError::unsupported(
                "SELECT ... FOR UPDATE/FOR SHARE with LIMIT, OFFSET or FETCH over rows of several nodes (each node would lock rows PostgreSQL would not)",
            ));
        }
        let timed;
        let text = match (stmt.stable_time, values.clock) {
            (true, Some(c)) => {
                timed = super::clock::rewrite(text, c)?;
                timed.as_str()
            }
            _ => text,
        };
        let merge = super::merge::plan(stmt, text, values)?;
        return Ok(Plan::Merge {
            nodes: nodes.into_iter().collect(),
            merge: Box::new(merge),
            why: format!("{why} over rows of several nodes: {shards_note}"),
        });
    }
    if let (true, Some(c)) = (stmt.stable_time, values.clock) {
        return super::clock::scatter(text, c, nodes.into_iter().collect(), values, write);
    }
    Ok(Plan::Scatter {
        nodes: nodes.into_iter().collect(),
        combine: Combine::Concat,
        why: if write {
            format!("write on every node that may hold rows: {shards_note}")
        } else {
            format!("rows from every node that may hold them: {shards_note}")
        },
    })
}

/// The statement's outermost query cuts its rows (LIMIT, OFFSET, FETCH).
fn cut_after_merge(stmt: &Stmt) -> bool {
    match &stmt.ast {
        Some(Statement::Query(q)) => q.limit_clause.is_some() || q.fetch.is_some(),
        _ => true,
    }
}

/// Whether the key-join edges connect all the given accesses.
fn connected(ids: &[usize], edges: &[(usize, usize)]) -> bool {
    let mut reached: BTreeSet<usize> = ids.iter().take(1).copied().collect();
    loop {
        let before = reached.len();
        for &(a, b) in edges {
            if reached.contains(&a) || reached.contains(&b) {
                reached.insert(a);
                reached.insert(b);
            }
        }
        if reached.len() == before {
            break;
        }
    }
    ids.iter().all(|i| reached.contains(i))
}

pub(super) fn reparse(text: &str) -> SgResult<Statement> {
    crate::analyze::parse_sql(text)
        .map_err(SgError::syntax)?
        .into_iter()
        .next()
        .ok_or_else(|| SgError::internal("statement vanished on re-parse"))
}
