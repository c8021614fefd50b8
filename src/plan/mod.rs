//! A plan is a value: which nodes run what, and how their answers combine. Built from an
//! analysis and the statement's parameter values without any I/O, printable for EXPLAIN and
//! golden tests; `execute` runs it.

pub mod build;
pub mod clock;
pub mod copy;
pub mod ddl;
pub mod explain;
pub mod fill;
pub mod inline;
pub mod insert;
mod keyed;
pub mod merge;
pub mod moves;
pub mod partition;
pub mod prepared;
pub mod route;
pub mod shards;

use std::fmt;

use crate::shardmap::KeyType;

/// How the replies of several nodes become the one reply the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Rows of every node in node order; the command tag's count is the sum (SELECT, and
    /// UPDATE/DELETE/INSERT spread over shards).
    Concat,
    /// Every node does the same thing (DDL, reference-table writes): the client sees the first
    /// node's reply; an error on any node is the statement's error.
    Same,
}

/// Statements the session handles itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOp {
    Begin,
    Commit,
    Rollback,
    /// SAVEPOINT / RELEASE / ROLLBACK TO: every node the transaction has touched.
    TxnOther,
    Set,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The client's statement, unchanged, on one node.
    Route {
        node: usize,
        why: String,
    },
    /// The client's statement, unchanged, on several nodes.
    Scatter {
        nodes: Vec<usize>,
        combine: Combine,
        why: String,
    },
    /// Rewritten statements per node, run in order on each (CREATE TABLE of a distributed table,
    /// a multi-row INSERT split by node).
    PerNode {
        parts: Vec<(usize, Vec<String>)>,
        combine: Combine,
        why: String,
        /// After success: the table's distribution column type and position, learned from DDL.
        learn: Option<(String, KeyType, usize)>,
        /// For a multi-row INSERT ... RETURNING: the node of each VALUES row, so the returned
        /// rows come back in VALUES order as PostgreSQL returns them (empty: node order).
        returning_order: Vec<usize>,
        /// For a statement with parameters (extended protocol): per part, the client's
        /// parameters it uses (0-based), renumbered `$1..` in its text. Empty otherwise.
        params: Vec<Vec<usize>>,
    },
    /// The worker part on several nodes, combined by shardgate (and the merge node).
    Merge {
        nodes: Vec<usize>,
        merge: Box<merge::Merge>,
        why: String,
    },
    Session(SessionOp),
    /// INSERT ... SELECT: the SELECT on one node, its rows routed by key and copied (COPY)
    /// into the target's nodes.
    InsertSelect {
        table: String,
        columns: Vec<String>,
        /// Position of the key among the SELECT's columns; None for reference tables.
        key_pos: Option<usize>,
        source_sql: String,
        source_node: usize,
        target_nodes: Vec<usize>,
        /// The SELECT reads no table (VALUES, generate_series, constants): it may run outside
        /// a transaction block the INSERT is part of, since there is nothing there to see.
        source_reads_nothing: bool,
    },
    /// COPY FROM STDIN / TO STDOUT of a distributed or reference table over its nodes.
    Copy(Box<copy::CopyPlan>),
    /// EXPLAIN: the distributed plan, then a node's own plan (and per-node timing for ANALYZE).
    Explain {
        inner: Box<Plan>,
        analyze: bool,
        /// The explained statement's text.
        sql: String,
        /// EXPLAIN options each node's EXPLAIN gets (`COSTS OFF`, `BUFFERS`...).
        options: Vec<String>,
    },
    /// UPDATE of the distribution column (`moves`): `delete_sql` on each source node, the
    /// returned rows (with the assigned columns' new values) copied into their keys' nodes.
    MoveRows {
        table: String,
        column: String,
        delete_sql: String,
        sources: Vec<usize>,
        targets: Vec<usize>,
        /// The assigned columns, in SET order.
        assigned: Vec<String>,
    },
}

impl Plan {
    /// The SQL each node runs for the plan (the client's text where it is forwarded as is).
    pub fn node_sql(&self, text: &str) -> Vec<(usize, String)> {
        match self {
            Plan::Route { node, .. } => vec![(*node, text.to_string())],
            Plan::Scatter { nodes, .. } => nodes.iter().map(|n| (*n, text.to_string())).collect(),
            Plan::Merge { nodes, merge, .. } => nodes
                .iter()
                .map(|n| (*n, merge.worker_sql().to_string()))
                .collect(),
            Plan::PerNode { parts, .. } => parts.iter().map(|(n, s)| (*n, s.join(";\n"))).collect(),
            Plan::InsertSelect {
                source_node,
                source_sql,
                ..
            } => vec![(*source_node, source_sql.clone())],
            Plan::Copy(c) => c.nodes.iter().map(|n| (*n, c.sql.clone())).collect(),
            Plan::MoveRows {
                sources,
                delete_sql,
                ..
            } => sources.iter().map(|n| (*n, delete_sql.clone())).collect(),
            Plan::Session(_) | Plan::Explain { .. } => Vec::new(),
        }
    }

    /// Every node the plan runs on, ascending.
    pub fn nodes(&self) -> Vec<usize> {
        match self {
            Plan::Route { node, .. } => vec![*node],
            Plan::Scatter { nodes, .. } | Plan::Merge { nodes, .. } => nodes.clone(),
            Plan::PerNode { parts, .. } => parts.iter().map(|(n, _)| *n).collect(),
            Plan::Session(_) => Vec::new(),
            Plan::Explain { inner, .. } => inner.nodes(),
            Plan::InsertSelect { target_nodes, .. } => target_nodes.clone(),
            Plan::MoveRows {
                sources, targets, ..
            } => {
                let all: std::collections::BTreeSet<usize> =
                    sources.iter().chain(targets).copied().collect();
                all.into_iter().collect()
            }
            Plan::Copy(c) => c.nodes.clone(),
        }
    }
}

/// One line per step, nodes by name: the format golden tests and EXPLAIN print.
pub struct Display<'a> {
    pub plan: &'a Plan,
    pub node_names: &'a [String],
}

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |n: &usize| {
            self.node_names
                .get(*n)
                .cloned()
                .unwrap_or_else(|| format!("node{n}"))
        };
        match self.plan {
            Plan::Route { node, why } => write!(f, "Route node={} ({why})", name(node)),
            Plan::Scatter {
                nodes,
                combine,
                why,
            } => write!(
                f,
                "Scatter nodes={} combine={combine:?} ({why})",
                nodes.iter().map(name).collect::<Vec<_>>().join(",")
            ),
            Plan::PerNode {
                parts,
                combine,
                why,
                ..
            } => {
                write!(f, "PerNode combine={combine:?} ({why})")?;
                for (n, sqls) in parts {
                    for s in sqls {
                        write!(f, "\n  {}: {s}", name(n))?;
                    }
                }
                Ok(())
            }
            Plan::Merge { nodes, merge, why } => {
                let nodes = nodes.iter().map(name).collect::<Vec<_>>().join(",");
                match merge.as_ref() {
                    merge::Merge::Sort {
                        worker_sql,
                        keys,
                        limit,
                        offset,
                    } => {
                        write!(f, "MergeSort nodes={nodes} ({why})")?;
                        let keys: Vec<String> = keys
                            .iter()
                            .map(|k| {
                                format!(
                                    "{}{}",
                                    if k.desc { "desc" } else { "asc" },
                                    if k.nulls_first {
                                        " nulls first"
                                    } else {
                                        " nulls last"
                                    }
                                )
                            })
                            .collect();
                        if !keys.is_empty() {
                            write!(f, "\n  keys: {}", keys.join(", "))?;
                        }
                        if let Some(l) = limit {
                            write!(f, "\n  limit: {l}")?;
                        }
                        if *offset > 0 {
                            write!(f, "\n  offset: {offset}")?;
                        }
                        write!(f, "\n  worker: {worker_sql}")
                    }
                    merge::Merge::Final {
                        worker_sql,
                        final_query,
                        aggs,
                        local,
                        ..
                    } => {
                        write!(f, "MergeFinal nodes={nodes} ({why})")?;
                        write!(f, "\n  worker: {worker_sql}")?;
                        for (i, a) in aggs.iter().enumerate() {
                            write!(f, "\n  agg{i}: {a:?}")?;
                        }
                        write!(f, "\n  final: {final_query}")?;
                        match local {
                            Some(l) => write!(
                                f,
                                "\n  final in shardgate when the partials are integers: {l}"
                            ),
                            None => Ok(()),
                        }
                    }
                }
            }
            Plan::Session(op) => write!(f, "Session {op:?}"),
            Plan::InsertSelect {
                table,
                key_pos,
                source_sql,
                source_node,
                target_nodes,
                ..
            } => write!(
                f,
                "InsertSelect table={table} source={} targets={} key={}\n  source: {source_sql}",
                name(source_node),
                target_nodes.iter().map(name).collect::<Vec<_>>().join(","),
                key_pos.map_or("none (copy to every node)".to_string(), |k| format!(
                    "column {}",
                    k + 1
                )),
            ),
            Plan::MoveRows {
                table,
                column,
                delete_sql,
                sources,
                targets,
                ..
            } => write!(
                f,
                "MoveRows table={table} key={column} sources={} targets={}\n  delete: {delete_sql}",
                sources.iter().map(name).collect::<Vec<_>>().join(","),
                targets.iter().map(name).collect::<Vec<_>>().join(","),
            ),
            Plan::Copy(c) => {
                let nodes = c.nodes.iter().map(name).collect::<Vec<_>>().join(",");
                let what = if c.table.is_empty() {
                    "(query)".to_string()
                } else {
                    format!("table={}", c.table)
                };
                let rows = match &c.dir {
                    copy::Dir::Out => "to STDOUT".to_string(),
                    copy::Dir::In(copy::Rows::Every) => {
                        "from STDIN, every row to every node".into()
                    }
                    copy::Dir::In(copy::Rows::Key { pos: None, .. }) => {
                        "from STDIN, key not listed (NULL)".into()
                    }
                    copy::Dir::In(copy::Rows::Key { pos: Some(k), .. }) => {
                        format!("from STDIN, key is column {}", k + 1)
                    }
                };
                write!(
                    f,
                    "Copy {what} {rows} format={} nodes={nodes}\n  each: {}",
                    c.options.name(),
                    c.sql
                )
            }
            Plan::Explain { inner, .. } => write!(
                f,
                "Explain\n  {}",
                Display {
                    plan: inner,
                    node_names: self.node_names
                }
                .to_string()
                .replace('\n', "\n  ")
            ),
        }
    }
}
