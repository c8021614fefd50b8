//! Subqueries that can run on each node alone: `key IN (SELECT key ...)` and
//! `[NOT] EXISTS (SELECT ... WHERE inner.key = outer.key ...)` over co-located tables. Every row
//! such a subquery can match has the outer row's key, so it lives on the outer row's node; the
//! subquery's tables are then treated as joined on their keys with the outer table.

use sqlparser::ast::{BinaryOperator, Expr, GroupByExpr, Query, Select, SelectItem};

use super::scope::{ident_name, Found};
use crate::shardmap::ShardMap;

/// `alias.column` (or `column`) of an expression that names a column.
fn column_ref(e: &Expr) -> Option<(Option<String>, String)> {
    match e {
        Expr::Nested(inner) => column_ref(inner),
        Expr::Identifier(id) => Some((None, ident_name(id))),
        Expr::CompoundIdentifier(p) if p.len() >= 2 => Some((
            Some(ident_name(&p[p.len() - 2])),
            ident_name(&p[p.len() - 1]),
        )),
        _ => None,
    }
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    super::scope::conjuncts(e, &mut |c| out.push(c));
}

/// The access (index) a column reference names as its distribution column, among `range`.
fn key_access(
    found: &Found,
    map: &ShardMap,
    range: std::ops::Range<usize>,
    r: &(Option<String>, String),
) -> Option<usize> {
    let candidates: Vec<usize> = range
        .filter(|&i| {
            let a = &found.accesses[i];
            map.get(&a.table).is_some_and(|t| !t.is_reference())
                && !a.key.is_empty()
                && a.key == r.1
                && r.0.as_ref().is_none_or(|q| *q == a.alias)
        })
        .collect();
    match candidates.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

fn scope_of(found: &Found, sel: &Select) -> Option<std::ops::Range<usize>> {
    let ptr = sel as *const Select as usize;
    found
        .scopes
        .iter()
        .find(|(p, _)| *p == ptr)
        .map(|(_, r)| r.clone())
}

/// Marks the accesses of linkable subqueries in the main SELECT's WHERE as joined on their keys
/// with the outer table.
pub fn link(top: &Select, found: &mut Found, map: &ShardMap) {
    let Some(top_range) = scope_of(found, top) else {
        return;
    };
    let mut links = Vec::new();
    // `key IN (SELECT key ...)` in the main WHERE.
    if let Some(cond) = top.selection.as_ref() {
        let mut conds = Vec::new();
        conjuncts(cond, &mut conds);
        for c in conds {
            if let Expr::InSubquery {
                expr,
                subquery,
                negated: false,
            } = c
            {
                links.extend(in_subquery(expr, subquery, top_range.clone(), found, map));
            }
        }
    }
    // Subqueries anywhere (select list, WHERE, HAVING) correlated with the main query on the
    // key: evaluated per outer row, every row they can see shares that row's key and node.
    let _ = sqlparser::ast::visit_expressions(top, |e: &Expr| {
        let q = match e {
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => Some(q),
            Expr::InSubquery { subquery, .. } => Some(subquery),
            _ => None,
        };
        if let Some(q) = q {
            links.extend(exists(q, top_range.clone(), found, map));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    for (inner_range, inner, outer) in links {
        for i in inner_range {
            found.accesses[i].top = true;
        }
        // The correlation pins the inner table wherever the outer one is pinned.
        let outer_pin = found.accesses[outer].pin.clone();
        found.accesses[inner].pin = found.accesses[inner].pin.clone().and(outer_pin);
        found.key_joins.push((inner, outer));
    }
}

type Link = (std::ops::Range<usize>, usize, usize);

/// `outer.key IN (SELECT inner.key FROM inner ...)` without LIMIT, grouped (if at all) by the key.
fn in_subquery(
    expr: &Expr,
    q: &Query,
    top: std::ops::Range<usize>,
    found: &Found,
    map: &ShardMap,
) -> Option<Link> {
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return None;
    }
    let sel = super::derived::plain_select(q)?;
    // DISTINCT ON keeps one row per value across all nodes, not per node.
    if matches!(sel.distinct, Some(sqlparser::ast::Distinct::On(_))) {
        return None;
    }
    let range = scope_of(found, sel)?;
    let outer = key_access(found, map, top, &column_ref(expr)?)?;
    let [item] = sel.projection.as_slice() else {
        return None;
    };
    let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else {
        return None;
    };
    let key = column_ref(e)?;
    let inner = key_access(found, map, range.clone(), &key)?;
    let grouped_ok = match &sel.group_by {
        GroupByExpr::Expressions(v, _) if v.is_empty() => !has_aggregate(sel),
        GroupByExpr::Expressions(v, _) => v
            .iter()
            .any(|g| column_ref(g).is_some_and(|r| r.1 == key.1)),
        _ => false,
    };
    grouped_ok.then_some((range, inner, outer))
}

/// `[NOT] EXISTS (SELECT ... FROM inner WHERE inner.key = outer.key AND ...)`.
fn exists(q: &Query, top: std::ops::Range<usize>, found: &Found, map: &ShardMap) -> Option<Link> {
    let sel = super::derived::plain_select(q)?;
    let range = scope_of(found, sel)?;
    let mut conds = Vec::new();
    conjuncts(sel.selection.as_ref()?, &mut conds);
    for c in conds {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = c
        {
            let (Some(l), Some(r)) = (column_ref(left), column_ref(right)) else {
                continue;
            };
            for (a, b) in [(&l, &r), (&r, &l)] {
                // The outer side must be qualified, by a name the inner scope does not define:
                // other names resolve to the inner scope.
                if b.0.is_none() || key_access(found, map, range.clone(), b).is_some() {
                    continue;
                }
                if let (Some(inner), Some(outer)) = (
                    key_access(found, map, range.clone(), a),
                    key_access(found, map, top.clone(), b),
                ) {
                    return Some((range, inner, outer));
                }
            }
        }
    }
    None
}

fn has_aggregate(sel: &Select) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(&sel.projection, |e: &Expr| {
        if let Expr::Function(f) = e {
            found |= f.over.is_none()
                && super::aggregates::is_aggregate_name(&super::scope::function_name(f));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found || sel.having.is_some()
}
