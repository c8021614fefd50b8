//! Scatter-gather plans for queries whose answer needs rows of several nodes combined: the
//! query is split into a worker part, run on every node, and a coordinator part. ORDER BY and
//! LIMIT without grouping are a streaming k-way merge in shardgate; aggregates, GROUP BY and
//! DISTINCT become per-node partials that a final query (the original's select list, HAVING,
//! ORDER BY and LIMIT over the combined partials) finishes on the merge node, so every
//! expression, type and output format is PostgreSQL's own.

mod aggregate;
mod finish;
mod local;
mod sort;

use sqlparser::ast::{
    Distinct, Expr, Function, GroupByExpr, OrderByExpr, OrderByKind, Query, SelectItem, SetExpr,
    Statement, Value,
};

use super::route::Values;
use crate::analyze::aggregates::is_aggregate_name;
use crate::analyze::scope::ident_name;
use crate::analyze::Stmt;
use crate::error::{SgError, SgResult};

pub use finish::finish;
pub use local::{LocalFinal, Out};

use aggregate::final_plan;
use sort::{distinct_plan, sort_plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub desc: bool,
    pub nulls_first: bool,
}

/// How partial columns combine into one aggregate's value on the merge node.
#[derive(Debug, Clone, PartialEq)]
pub enum Combine {
    /// count: coalesce(sum(p), 0)::int8
    Count(usize),
    /// sum, min, max, bool_and, bool_or, bit_and, bit_or: the same aggregate over the partials,
    /// cast back to the partial's type.
    Same(String, usize),
    /// avg: sum of sums over sum of counts.
    Avg { sum: usize, count: usize },
    /// variance and standard deviation from count, sum and sum of squares, in numeric.
    Var {
        samp: bool,
        stddev: bool,
        n: usize,
        s: usize,
        ss: usize,
        t: usize,
        /// Float inputs: each node's avg and sum of squared deviations (var_pop × count).
        fm: usize,
        fxx: usize,
    },
    /// count/sum/avg(DISTINCT x): x is a worker group column; the aggregate runs on the merge node.
    Distinct { name: String, group: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Merge {
    /// Rows of every node, merged in order of the hidden sort keys the worker query appends,
    /// then OFFSET/LIMIT. Streams: one row per node in memory.
    Sort {
        worker_sql: String,
        keys: Vec<SortKey>,
        limit: Option<u64>,
        offset: u64,
    },
    /// Partial rows of every node (bounded buffer), finished by `final_query` on the merge node.
    Final {
        worker_sql: String,
        /// Worker columns: `groups` group columns `_sg_g{i}`, then partials `_sg_p{j}`.
        groups: usize,
        partials: usize,
        aggs: Vec<Combine>,
        /// The coordinator part; aggregate `a` appears as the identifier `__sg_agg{a}`.
        final_query: Box<Query>,
        /// The output items of the final query, to be aliased and cast to the original's
        /// described columns.
        outputs: usize,
        /// The same final computed in shardgate, where the partials turn out to be integers.
        local: Option<LocalFinal>,
    },
}

impl Merge {
    pub fn worker_sql(&self) -> &str {
        match self {
            Merge::Sort { worker_sql, .. } | Merge::Final { worker_sql, .. } => worker_sql,
        }
    }
}

fn bad(what: &str) -> SgError {
    SgError::unsupported(format!("{what} over rows from several nodes"))
}

fn order_exprs(q: &Query) -> SgResult<Vec<OrderByExpr>> {
    match &q.order_by {
        None => Ok(Vec::new()),
        Some(ob) => match &ob.kind {
            OrderByKind::Expressions(v) => Ok(v.clone()),
            OrderByKind::All(_) => Err(bad("ORDER BY ALL")),
        },
    }
}

fn item_expr(item: &SelectItem) -> Option<&Expr> {
    match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

fn item_alias(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
        _ => None,
    }
}

/// The name PostgreSQL gives an unaliased output column (parse_target.c
/// FigureColnameInternal): a column's own name, a function's, a cast's argument's, `case`,
/// `array`, `exists`; None where it would be `?column?`.
fn implicit_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(ident_name(id)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).map(ident_name),
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::Collate { expr, .. } => {
            implicit_name(expr)
        }
        Expr::Case { .. } => Some("case".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Exists { .. } => Some("exists".into()),
        _ => None,
    }
}

/// An output column's name: its alias, or the name PostgreSQL gives it.
fn output_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(ident_name(alias)),
        SelectItem::UnnamedExpr(e) => implicit_name(e),
        _ => None,
    }
}

/// What an ORDER BY item refers to, as PostgreSQL resolves it (parse_clause.c
/// findTargetlistEntrySQL92): a position, or a bare name matching an output column's name
/// (`SELECT x::text ... ORDER BY x` orders by the text), else an expression of its own.
fn resolve_order<'a>(e: &'a Expr, items: &'a [SelectItem]) -> SgResult<Result<usize, &'a Expr>> {
    let Expr::Identifier(id) = e else {
        return resolve_output(e, items);
    };
    let name = ident_name(id);
    let mut found: Option<usize> = None;
    for (i, it) in items.iter().enumerate() {
        if output_name(it).as_deref() != Some(name.as_str()) {
            continue;
        }
        match found {
            None => found = Some(i),
            Some(f) => {
                let equal = match (item_expr(&items[f]), item_expr(it)) {
                    (Some(a), Some(b)) => same(a, b),
                    _ => false,
                };
                if !equal {
                    return Err(SgError::new(
                        "42702",
                        format!("ORDER BY \"{name}\" is ambiguous"),
                    ));
                }
            }
        }
    }
    match found {
        Some(i) => Ok(Ok(i)),
        None => Ok(Err(e)),
    }
}

/// What a GROUP BY item (or an ORDER BY number) refers to: an output column by position or
/// alias, or an expression of its own.
fn resolve_output<'a>(e: &'a Expr, items: &'a [SelectItem]) -> SgResult<Result<usize, &'a Expr>> {
    if let Expr::Value(v) = e {
        if let Value::Number(n, _) = &v.value {
            let i: usize = n
                .parse()
                .map_err(|_| SgError::syntax(format!("invalid ordinal {n}")))?;
            if i == 0 || i > items.len() {
                return Err(SgError::new(
                    "42P10",
                    format!("position {i} is not in select list"),
                ));
            }
            if items[..i].iter().any(|it| item_expr(it).is_none()) {
                return Err(bad("an ordinal next to * in the select list"));
            }
            return Ok(Ok(i - 1));
        }
    }
    if let Expr::Identifier(id) = e {
        let name = ident_name(id);
        if let Some(i) = items
            .iter()
            .position(|it| item_alias(it).as_deref() == Some(name.as_str()))
        {
            return Ok(Ok(i));
        }
    }
    Ok(Err(e))
}

fn is_agg_call(f: &Function) -> Option<String> {
    let name = crate::analyze::scope::function_name(f);
    (f.over.is_none() && (is_aggregate_name(&name) || !f.within_group.is_empty())).then_some(name)
}

/// Builds the merge plan for a SELECT that runs on several nodes.
pub fn plan(stmt: &Stmt, text: &str, values: &Values) -> SgResult<Merge> {
    let parsed = crate::analyze::parse_sql(text).map_err(SgError::syntax)?;
    let Some(Statement::Query(q)) = parsed.into_iter().next() else {
        return Err(SgError::internal(
            "merge plan for a statement that is not a query",
        ));
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Err(bad("UNION, INTERSECT or EXCEPT"));
    };
    if matches!(sel.distinct, Some(Distinct::On(_))) {
        return Err(bad("DISTINCT ON"));
    }
    let grouped = match &sel.group_by {
        GroupByExpr::Expressions(v, mods) => {
            if !mods.is_empty() {
                return Err(bad("ROLLUP, CUBE or GROUPING SETS"));
            }
            !v.is_empty()
        }
        GroupByExpr::All(_) => return Err(bad("GROUP BY ALL")),
    };
    // The main query's own aggregates (select list, HAVING, ORDER BY), not its subqueries'.
    let mut has_agg = false;
    crate::analyze::aggregates::top_level_functions(&q, &mut |f| {
        has_agg |= is_agg_call(f).is_some() || !f.within_group.is_empty();
    });
    has_agg |= sel.having.is_some();
    let distinct = matches!(sel.distinct, Some(Distinct::Distinct));
    // Groups (or DISTINCT rows) that include a distribution key live on one node each: the
    // whole query runs per node and only ORDER BY/LIMIT remain to merge.
    let keyed = |e: &Expr| {
        let s = match e {
            Expr::Identifier(id) => ident_name(id),
            Expr::CompoundIdentifier(p) => p.iter().map(ident_name).collect::<Vec<_>>().join("."),
            _ => return false,
        };
        stmt.top_keys.contains(&s)
    };
    let group_has_key = match &sel.group_by {
        GroupByExpr::Expressions(v, _) => {
            v.iter().any(|g| match group_output(g, &sel.projection) {
                Ok(Ok(i)) => item_expr(&sel.projection[i]).is_some_and(keyed),
                Ok(Err(e)) => keyed(e),
                Err(_) => false,
            })
        }
        _ => false,
    };
    let distinct_has_key = distinct && sel.projection.iter().filter_map(item_expr).any(keyed);
    if grouped && group_has_key {
        // Each node's groups are whole; DISTINCT over them is not: two nodes' groups can give
        // the same row, so it is merged like a plain DISTINCT over the nodes' rows.
        if distinct {
            return distinct_plan(&q, sel, values);
        }
        return sort_plan(&q, sel, values);
    }
    if !grouped && !has_agg && distinct_has_key {
        return sort_plan(&q, sel, values);
    }
    if stmt.keyed_windows {
        if grouped || has_agg || distinct {
            return Err(bad("window functions over grouped rows of several nodes"));
        }
        return sort_plan(&q, sel, values);
    }
    if (grouped || has_agg || distinct) && has_subquery(&q, sel) {
        // The rewrites below would reach into the subquery's own expressions.
        return Err(bad(
            "a subquery in the select list, HAVING or ORDER BY of a grouped or DISTINCT query",
        ));
    }
    if grouped || has_agg {
        return final_plan(&q, sel, values);
    }
    if distinct {
        return distinct_plan(&q, sel, values);
    }
    sort_plan(&q, sel, values)
}

fn number(n: u64) -> Expr {
    Expr::Value(Value::Number(n.to_string(), false).into())
}

fn set_order(q: &mut Query, order: Vec<OrderByExpr>) {
    q.order_by = if order.is_empty() {
        None
    } else {
        Some(sqlparser::ast::OrderBy {
            kind: OrderByKind::Expressions(order),
            interpolate: None,
        })
    };
}

/// Whether the main query's select list, HAVING or ORDER BY holds a subquery.
fn has_subquery(q: &Query, sel: &sqlparser::ast::Select) -> bool {
    let mut found = false;
    let mut look = |e: &Expr| {
        found |= matches!(
            e,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        );
        std::ops::ControlFlow::<()>::Continue(())
    };
    let _ = sqlparser::ast::visit_expressions(&sel.projection, &mut look);
    let _ = sqlparser::ast::visit_expressions(&sel.having, &mut look);
    let _ = sqlparser::ast::visit_expressions(&q.order_by, &mut look);
    found
}

/// The output column a GROUP BY item names. PostgreSQL resolves a GROUP BY name to an input
/// column before an output alias (parse_clause.c, findTargetlistEntrySQL92): an alias whose own
/// expression uses a column of that name (`length(region) AS region`) is not followed.
fn group_output<'a>(g: &'a Expr, items: &'a [SelectItem]) -> SgResult<Result<usize, &'a Expr>> {
    let resolved = resolve_output(g, items)?;
    if let (Expr::Identifier(id), Ok(i)) = (g, &resolved) {
        let name = ident_name(id);
        let mut uses_name = false;
        if let Some(e) = item_expr(&items[*i]) {
            let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| {
                let col = match x {
                    Expr::Identifier(c) => Some(ident_name(c)),
                    Expr::CompoundIdentifier(p) => p.last().map(ident_name),
                    _ => None,
                };
                uses_name |= col.as_deref() == Some(name.as_str());
                std::ops::ControlFlow::<()>::Continue(())
            });
        }
        if uses_name && !matches!(item_expr(&items[*i]), Some(Expr::Identifier(_))) {
            return Ok(Err(g));
        }
    }
    Ok(resolved)
}

/// Expressions equal up to the qualifiers of column references, when one of them names no
/// qualifier at all (`country` and `r.country`; but `r.country` and `c.country` differ).
fn same(a: &Expr, b: &Expr) -> bool {
    fn qualified(e: &Expr) -> bool {
        let mut q = false;
        let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| {
            q |= matches!(x, Expr::CompoundIdentifier(_));
            std::ops::ControlFlow::<()>::Continue(())
        });
        q
    }
    if a.to_string().to_lowercase() == b.to_string().to_lowercase() {
        return true;
    }
    if qualified(a) && qualified(b) {
        return false;
    }
    fn norm(e: &Expr) -> String {
        let mut e = e.clone();
        let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
            if let Expr::CompoundIdentifier(p) = x {
                if let Some(last) = p.last().cloned() {
                    *x = Expr::Identifier(last);
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        e.to_string().to_lowercase()
    }
    norm(a) == norm(b)
}

/// The coordinator query's skeleton: `SELECT 1 FROM unnest(...) AS _sg(...)`.
fn template() -> SgResult<Box<Query>> {
    match crate::analyze::parse_sql("SELECT 1 FROM unnest(NULL) AS _sg(x)")
        .map_err(SgError::internal)?
        .into_iter()
        .next()
    {
        Some(Statement::Query(q)) => Ok(q),
        _ => Err(SgError::internal("merge template did not parse")),
    }
}
