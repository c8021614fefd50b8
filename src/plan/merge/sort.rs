//! ORDER BY, LIMIT/OFFSET and DISTINCT without aggregates: the sort-merge plan over rows each
//! node computes whole, and the DISTINCT plan de-duplicated again by a final query.

use sqlparser::ast::{
    Distinct, Expr, Ident, LimitClause, OrderByExpr, OrderBySort, Query, Select, SelectItem,
    SetExpr, Statement, TableFactor,
};

use crate::analyze::scope::ident_name;
use crate::error::{SgError, SgResult};
use crate::plan::build::ident;
use crate::plan::route::Values;
use crate::shardmap::KeyType;

use super::{
    bad, item_expr, number, order_exprs, resolve_order, same, set_order, template, Merge, SortKey,
};

/// A LIMIT (or OFFSET) count; None for NULL, which PostgreSQL reads as LIMIT ALL (OFFSET 0).
/// PostgreSQL casts the expression to bigint, so a numeric rounds half away from zero.
fn limit_value(e: &Expr, values: &Values, offset: bool) -> SgResult<Option<u64>> {
    use crate::shardmap::KeyValue;
    let src = crate::analyze::pins::value_src(e)
        .ok_or_else(|| bad("a LIMIT or OFFSET that is not a constant"))?;
    let n = match values.resolve(&src, KeyType::Int8) {
        Ok(Some(KeyValue::Int(n))) => n,
        Ok(None) => return Ok(None),
        Ok(_) => return Err(bad("a LIMIT or OFFSET that is not a number")),
        Err(err) => match values.resolve(&src, KeyType::Text) {
            Ok(Some(KeyValue::Text(t))) => match t.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f.abs() < 9.2e18 => f.round() as i64,
                _ => return Err(err),
            },
            _ => return Err(err),
        },
    };
    match (n < 0, offset) {
        (false, _) => Ok(Some(n as u64)),
        (true, false) => Err(SgError::new("2201W", "LIMIT must not be negative")),
        (true, true) => Err(SgError::new("2201X", "OFFSET must not be negative")),
    }
}

/// The query's LIMIT and OFFSET as numbers (no LIMIT: None).
pub(super) fn limits(q: &Query, values: &Values) -> SgResult<(Option<u64>, u64)> {
    if let Some(f) = &q.fetch {
        // FETCH FIRST n ROWS ONLY is LIMIT n; WITH TIES and PERCENT are not.
        if f.with_ties || f.percent {
            return Err(bad("FETCH FIRST ... WITH TIES or PERCENT"));
        }
        let (_, offset) = limits(
            &Query {
                fetch: None,
                ..q.clone()
            },
            values,
        )?;
        let n = match &f.quantity {
            Some(e) => limit_value(e, values, false)?,
            None => Some(1),
        };
        return Ok((n, offset));
    }
    match &q.limit_clause {
        None => Ok((None, 0)),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(bad("LIMIT BY"));
            }
            let l = limit
                .as_ref()
                .map(|e| limit_value(e, values, false))
                .transpose()?
                .flatten();
            let o = offset
                .as_ref()
                .map(|o| limit_value(&o.value, values, true))
                .transpose()?
                .flatten()
                .unwrap_or(0);
            Ok((l, o))
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => Err(bad("LIMIT offset, count")),
    }
}

pub(super) fn sort_key(o: &OrderByExpr) -> SgResult<SortKey> {
    let desc = match o.options.sort {
        None | Some(OrderBySort::Asc) => false,
        Some(OrderBySort::Desc) => true,
        Some(_) => return Err(bad("ORDER BY ... USING")),
    };
    Ok(SortKey {
        desc,
        // PostgreSQL: NULLS LAST is the default for ASC, NULLS FIRST for DESC.
        nulls_first: o.options.nulls_first.unwrap_or(desc),
    })
}

/// ORDER BY/LIMIT over rows each node computes whole.
pub(super) fn sort_plan(q: &Query, sel: &Select, values: &Values) -> SgResult<Merge> {
    let (limit, offset) = limits(q, values)?;
    let order = order_exprs(q)?;
    let mut worker = q.clone();
    let mut keys = Vec::new();
    let mut hidden = Vec::new();
    for (i, o) in order.iter().enumerate() {
        keys.push(sort_key(o)?);
        let e = match resolve_order(&o.expr, &sel.projection)? {
            Ok(pos) => item_expr(&sel.projection[pos])
                .cloned()
                .ok_or_else(|| bad("ORDER BY on *"))?,
            Err(e) => e.clone(),
        };
        hidden.push(SelectItem::ExprWithAlias {
            expr: e,
            alias: Ident::new(format!("_sg_k{i}")),
        });
    }
    worker.fetch = None;
    // Each node needs at most LIMIT + OFFSET rows; past bigint that is every row (PostgreSQL
    // reads the LIMIT as bigint and would refuse the sum).
    let per_node = limit
        .and_then(|l| l.checked_add(offset))
        .filter(|n| *n <= i64::MAX as u64);
    worker.limit_clause = per_node.map(|l| LimitClause::LimitOffset {
        limit: Some(number(l)),
        offset: None,
        limit_by: vec![],
    });
    let worker = match top_n_of_star(q, sel, &order, &worker)? {
        Some(wrapped) => wrapped,
        None => {
            if let SetExpr::Select(ws) = worker.body.as_mut() {
                // With DISTINCT, PostgreSQL requires ORDER BY expressions to be output
                // columns, so the hidden copies add nothing DISTINCT could tell apart.
                ws.projection.extend(hidden);
            }
            worker
        }
    };
    Ok(Merge::Sort {
        worker_sql: Statement::Query(Box::new(worker)).to_string(),
        keys,
        limit,
        offset,
    })
}

/// `SELECT * FROM t ... ORDER BY col ... LIMIT n` on each node as
/// `SELECT *, _sg_s.col AS _sg_k0 FROM (SELECT * FROM t ... ORDER BY col LIMIT n) AS _sg_s
/// ORDER BY _sg_k0`: the hidden keys are computed for the node's n rows only. Appended to the
/// inner select list they would make every scanned row go through a projection (a `*` alone
/// returns the scan's tuples as they are, createplan.c use_physical_tlist), which doubled a
/// node's time for a top-N over a whole table. The outer ORDER BY keeps the node's rows in
/// key order (the planner sees the subquery already sorted and adds no sort of its own).
/// None where the shape is any other: one plain table, plain column keys, a LIMIT, no locking.
fn top_n_of_star(
    q: &Query,
    sel: &Select,
    order: &[OrderByExpr],
    worker: &Query,
) -> SgResult<Option<Query>> {
    let star = matches!(sel.projection.as_slice(), [SelectItem::Wildcard(_)]);
    let one_table = matches!(sel.from.as_slice(), [t] if t.joins.is_empty()
        && matches!(t.relation, TableFactor::Table { .. }));
    if !star
        || !one_table
        || sel.distinct.is_some()
        || worker.limit_clause.is_none()
        || q.with.is_some()
        || !q.locks.is_empty()
        || order.is_empty()
    {
        return Ok(None);
    }
    // `ORDER BY t` with t the table (or its alias) orders by the whole row, which the
    // wrapper's `_sg_s.t` would not name.
    let mut row_names = Vec::new();
    if let Some(TableFactor::Table { name, alias, .. }) = sel.from.first().map(|t| &t.relation) {
        row_names.extend(name.0.last().and_then(|p| p.as_ident()).map(ident_name));
        row_names.extend(alias.as_ref().map(|a| ident_name(&a.name)));
    }
    let mut columns = Vec::new();
    for o in order {
        match &o.expr {
            Expr::Identifier(id) if row_names.contains(&ident_name(id)) => return Ok(None),
            Expr::Identifier(id) => columns.push(id.clone()),
            Expr::CompoundIdentifier(parts) => match parts.last() {
                Some(id) => columns.push(id.clone()),
                None => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    let parsed = crate::analyze::parse_sql("SELECT * FROM (SELECT 1) AS _sg_s")
        .map_err(SgError::internal)?;
    let Some(Statement::Query(mut outer)) = parsed.into_iter().next() else {
        return Err(SgError::internal("top-N template did not parse"));
    };
    let SetExpr::Select(os) = outer.body.as_mut() else {
        return Err(SgError::internal("top-N template is not a SELECT"));
    };
    if let Some(TableFactor::Derived { subquery, .. }) =
        os.from.first_mut().map(|t| &mut t.relation)
    {
        **subquery = worker.clone();
    } else {
        return Err(SgError::internal("top-N template has no subquery"));
    }
    let mut outer_order = Vec::new();
    for (i, (col, o)) in columns.into_iter().zip(order).enumerate() {
        let alias = Ident::new(format!("_sg_k{i}"));
        os.projection.push(SelectItem::ExprWithAlias {
            expr: Expr::CompoundIdentifier(vec![Ident::new("_sg_s"), col]),
            alias: alias.clone(),
        });
        outer_order.push(OrderByExpr {
            expr: Expr::Identifier(alias),
            ..o.clone()
        });
    }
    set_order(&mut outer, outer_order);
    Ok(Some(*outer))
}

/// SELECT DISTINCT without aggregates: each node's distinct rows, de-duplicated again, ordered
/// and limited on the merge node.
pub(super) fn distinct_plan(q: &Query, sel: &Select, _values: &Values) -> SgResult<Merge> {
    let mut worker = q.clone();
    worker.order_by = None;
    worker.limit_clause = None;
    worker.fetch = None;
    let n = sel.projection.len();
    if sel.projection.iter().any(|i| item_expr(i).is_none()) {
        return Err(bad("SELECT DISTINCT *"));
    }
    let mut fq = template()?;
    let mut order = Vec::new();
    for o in order_exprs(q)? {
        let pos = match resolve_order(&o.expr, &sel.projection)? {
            Ok(p) => p,
            Err(e) => sel
                .projection
                .iter()
                .position(|it| item_expr(it).is_some_and(|x| same(x, e)))
                .ok_or_else(|| {
                    SgError::new(
                        "42P10",
                        "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                    )
                })?,
        };
        order.push(OrderByExpr {
            expr: number(pos as u64 + 1),
            ..o.clone()
        });
    }
    if let SetExpr::Select(fs) = fq.body.as_mut() {
        fs.distinct = Some(Distinct::Distinct);
        fs.projection = (0..n)
            .map(|i| SelectItem::UnnamedExpr(ident(&format!("_sg_g{i}"))))
            .collect();
    }
    set_order(&mut fq, order);
    fq.limit_clause = q.limit_clause.clone();
    fq.fetch = q.fetch.clone();
    if let SetExpr::Select(ws) = worker.body.as_mut() {
        for (i, item) in ws.projection.iter_mut().enumerate() {
            alias_item(item, &format!("_sg_g{i}"));
        }
    }
    Ok(Merge::Final {
        worker_sql: Statement::Query(Box::new(worker)).to_string(),
        groups: n,
        partials: 0,
        aggs: Vec::new(),
        final_query: fq,
        outputs: n,
        local: None,
    })
}

fn alias_item(item: &mut SelectItem, alias: &str) {
    if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
        *item = SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: Ident::new(alias),
        };
    }
}
