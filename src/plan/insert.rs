//! Writes that name their rows: a multi-row INSERT split by the node of each row's key, and
//! INSERT ... SELECT from one node into a distributed or reference table.

use std::collections::BTreeMap;

use sqlparser::ast::{SetExpr, Statement};

use super::route::{plan, reparse, table, Values};
use super::{Combine, Plan};
use crate::analyze::Stmt;
use crate::error::{SgError, SgResult};
use crate::shardmap::{ShardMap, TableKind};

pub fn insert(stmt: &Stmt, text: &str, values: &Values, map: &ShardMap) -> SgResult<Plan> {
    let Some(spec) = &stmt.insert else {
        return Err(SgError::internal("insert plan without insert analysis"));
    };
    let t = table(map, &spec.table)?;
    if let TableKind::Partition { node, .. } = t.kind {
        // Every row goes to the partition's node; PostgreSQL checks them against its bound.
        return Ok(Plan::Route {
            node,
            why: "the partition's node".into(),
        });
    }
    let ty = t.key_type()?;
    let key_pos = match spec.key_index {
        Some(i) => i,
        None => map.key_position(&spec.table).ok_or_else(|| {
            SgError::unsupported(format!(
                "INSERT into \"{}\" without a column list (name the columns)",
                spec.table
            ))
        })?,
    };
    let mut by_node: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut row_nodes = Vec::with_capacity(spec.rows.len());
    for (row_no, row) in spec.rows.iter().enumerate() {
        let src = match row.get(key_pos) {
            Some(Some(src)) => src,
            _ => {
                return Err(SgError::unsupported(format!(
                    "INSERT into \"{}\" whose distribution column \"{}\" is not a constant or parameter",
                    t.name, t.column
                )))
            }
        };
        let key = values.resolve(src, ty)?;
        let shard = t.shard_for_row(key.as_ref())?;
        by_node.entry(t.node_of(shard)).or_default().push(row_no);
        row_nodes.push(t.node_of(shard));
    }
    if by_node.len() <= 1 {
        let node = by_node.keys().next().copied().unwrap_or(map.default_node);
        return Ok(Plan::Route {
            node,
            why: "key pins one node".into(),
        });
    }
    let Statement::Insert(ins) = reparse(text)? else {
        return Err(SgError::internal("INSERT did not re-parse as one"));
    };
    // Each node returns its rows in its VALUES order; interleaved by the rows' nodes they are
    // the statement's order. ON CONFLICT DO NOTHING may skip rows, so the interleaving is
    // unknown there: those come back node by node.
    let returning_order = if ins.returning.is_some() && ins.on.is_none() {
        row_nodes
    } else {
        Vec::new()
    };
    let (mut parts, mut params) = (Vec::new(), Vec::new());
    for (node, rows) in by_node {
        let mut part = ins.clone();
        if let Some(q) = part.source.as_mut() {
            if let SetExpr::Values(v) = q.body.as_mut() {
                v.rows = rows
                    .iter()
                    .filter_map(|r| v.rows.get(*r).cloned())
                    .collect();
            }
        }
        let mut part = Statement::Insert(part);
        if !values.params.is_empty() {
            params.push(renumber_params(&mut part)?);
        }
        parts.push((node, vec![part.to_string()]));
    }
    Ok(Plan::PerNode {
        parts,
        combine: Combine::Concat,
        why: "multi-row INSERT split by node".into(),
        learn: None,
        returning_order,
        params,
    })
}

/// Renumbers a part's parameters `$1..` in the order they appear and returns the client's
/// parameter (0-based) each new number stands for: a part must bind only the parameters its
/// text uses, as PostgreSQL cannot infer the type of one it does not.
fn renumber_params(stmt: &mut Statement) -> SgResult<Vec<usize>> {
    use sqlparser::ast::{Expr, Value, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct Renumber {
        used: Vec<usize>,
        bad: bool,
    }
    impl VisitorMut for Renumber {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = e {
                if let Value::Placeholder(p) = &mut v.value {
                    let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
                        self.bad = true;
                        return ControlFlow::Break(());
                    };
                    let Some(old) = n.checked_sub(1) else {
                        self.bad = true;
                        return ControlFlow::Break(());
                    };
                    let new = match self.used.iter().position(|u| *u == old) {
                        Some(i) => i,
                        None => {
                            self.used.push(old);
                            self.used.len() - 1
                        }
                    };
                    *p = format!("${}", new + 1);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut r = Renumber {
        used: Vec::new(),
        bad: false,
    };
    let _ = stmt.visit(&mut r);
    if r.bad {
        return Err(SgError::unsupported(
            "a multi-row INSERT over several nodes with a parameter other than $n",
        ));
    }
    Ok(r.used)
}

pub fn insert_select(stmt: &Stmt, text: &str, values: &Values, map: &ShardMap) -> SgResult<Plan> {
    let Some(spec) = &stmt.insert_select else {
        return Err(SgError::internal("insert-select plan without its analysis"));
    };
    if !values.params.is_empty() {
        return Err(SgError::unsupported(
            "INSERT ... SELECT with parameters into a distributed table",
        ));
    }
    let t = table(map, &spec.table)?;
    let key_pos = if t.is_reference() {
        None
    } else {
        t.key_type()?;
        Some(match spec.key_index {
            Some(i) => i,
            None => map.key_position(&spec.table).ok_or_else(|| {
                SgError::unsupported(format!(
                    "INSERT ... SELECT into \"{}\" without a column list (name the columns)",
                    spec.table
                ))
            })?,
        })
    };
    // The SELECT as this text spells it, planned on its own: it must run on one node.
    let Statement::Insert(ins) = reparse(text)? else {
        return Err(SgError::internal("INSERT did not re-parse as one"));
    };
    let source = ins
        .source
        .as_ref()
        .map(|q| q.to_string())
        .ok_or_else(|| SgError::internal("INSERT ... SELECT without its SELECT"))?;
    let source_stmt = crate::analyze::classify::statement(&reparse(&source)?, &source, map);
    let source_node = match plan(&source_stmt, &source, &Values::NONE, map)? {
        Plan::Route { node, .. } => node,
        _ => {
            return Err(SgError::unsupported(
                "INSERT ... SELECT whose SELECT reads several nodes (it must run on one node)",
            ))
        }
    };
    Ok(Plan::InsertSelect {
        source_reads_nothing: reads_nothing(&ins),
        table: spec.table.clone(),
        columns: spec.columns.clone(),
        key_pos,
        source_sql: source,
        source_node,
        target_nodes: t.nodes(map.node_count),
    })
}

/// Whether an INSERT's SELECT names no table: only table functions (generate_series, unnest),
/// VALUES and subqueries of those.
fn reads_nothing(ins: &sqlparser::ast::Insert) -> bool {
    use sqlparser::ast::{TableFactor, Visit, Visitor};
    use std::ops::ControlFlow;
    struct Tables;
    impl Visitor for Tables {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            match t {
                TableFactor::Table { args: None, .. } => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    match &ins.source {
        Some(q) => q.visit(&mut Tables).is_continue(),
        None => false,
    }
}
