//! Scatter-gather plans for queries whose answer needs rows of several nodes combined: the
//! query is split into a worker part, run on every node, and a coordinator part. ORDER BY and
//! LIMIT without grouping are a streaming k-way merge in shardgate; aggregates, GROUP BY and
//! DISTINCT become per-node partials that a final query (the original's select list, HAVING,
//! ORDER BY and LIMIT over the combined partials) finishes on the merge node, so every
//! expression, type and output format is PostgreSQL's own.

use std::collections::HashMap;

use sqlparser::ast::{
    BinaryOperator, Distinct, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, Ident, LimitClause, OrderByExpr, OrderByKind, OrderBySort, Query, Select,
    SelectItem, SetExpr, Statement, Value, VisitMut, VisitorMut,
};

use super::build::{func, ident};
use super::route::Values;
use crate::analyze::classify::is_aggregate_name;
use crate::analyze::scope::ident_name;
use crate::analyze::Stmt;
use crate::error::{SgError, SgResult};
use crate::shardmap::KeyType;

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

fn limit_value(e: &Expr, values: &Values) -> SgResult<u64> {
    let src = crate::analyze::pins::value_src(e)
        .ok_or_else(|| bad("a LIMIT or OFFSET that is not a constant"))?;
    match values.resolve(&src, KeyType::Int8)? {
        Some(crate::shardmap::KeyValue::Int(n)) if n >= 0 => Ok(n as u64),
        None => Ok(u64::MAX),
        _ => Err(SgError::new("2201W", "LIMIT must not be negative")),
    }
}

/// The query's LIMIT and OFFSET as numbers (no LIMIT: None).
fn limits(q: &Query, values: &Values) -> SgResult<(Option<u64>, u64)> {
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
            Some(e) => limit_value(e, values)?,
            None => 1,
        };
        return Ok((Some(n), offset));
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
            let l = limit.as_ref().map(|e| limit_value(e, values)).transpose()?;
            let o = offset
                .as_ref()
                .map(|o| limit_value(&o.value, values))
                .transpose()?
                .unwrap_or(0);
            Ok((l.filter(|l| *l != u64::MAX), o))
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => Err(bad("LIMIT offset, count")),
    }
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

fn sort_key(o: &OrderByExpr) -> SgResult<SortKey> {
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

/// What an ORDER BY or GROUP BY item refers to: an output column by position or alias (as
/// PostgreSQL resolves them), or an expression of its own.
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
    (f.over.is_none() && is_aggregate_name(&name)).then_some(name)
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
    let mut has_agg = false;
    for item in &sel.projection {
        let _ = sqlparser::ast::visit_expressions(item, |e: &Expr| {
            if let Expr::Function(f) = e {
                has_agg |= is_agg_call(f).is_some();
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
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
            v.iter().any(|g| match resolve_output(g, &sel.projection) {
                Ok(Ok(i)) => item_expr(&sel.projection[i]).is_some_and(keyed),
                Ok(Err(e)) => keyed(e),
                Err(_) => false,
            })
        }
        _ => false,
    };
    let distinct_has_key = distinct && sel.projection.iter().filter_map(item_expr).any(keyed);
    if (grouped && group_has_key) || (!grouped && !has_agg && distinct_has_key) {
        return sort_plan(&q, sel, values);
    }
    if stmt.keyed_windows {
        if grouped || has_agg || distinct {
            return Err(bad("window functions over grouped rows of several nodes"));
        }
        return sort_plan(&q, sel, values);
    }
    if grouped || has_agg {
        return final_plan(&q, sel, values);
    }
    if distinct {
        return distinct_plan(&q, sel, values);
    }
    sort_plan(&q, sel, values)
}

/// ORDER BY/LIMIT over rows each node computes whole.
fn sort_plan(q: &Query, sel: &Select, values: &Values) -> SgResult<Merge> {
    let (limit, offset) = limits(q, values)?;
    let order = order_exprs(q)?;
    let mut worker = q.clone();
    let mut keys = Vec::new();
    let mut hidden = Vec::new();
    for (i, o) in order.iter().enumerate() {
        keys.push(sort_key(o)?);
        let e = match resolve_output(&o.expr, &sel.projection)? {
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
    if let SetExpr::Select(ws) = worker.body.as_mut() {
        // With DISTINCT, PostgreSQL requires ORDER BY expressions to be output columns, so the
        // hidden copies add nothing DISTINCT could tell apart.
        ws.projection.extend(hidden);
    }
    worker.fetch = None;
    worker.limit_clause = limit.map(|l| LimitClause::LimitOffset {
        limit: Some(number(l.saturating_add(offset))),
        offset: None,
        limit_by: vec![],
    });
    Ok(Merge::Sort {
        worker_sql: Statement::Query(Box::new(worker)).to_string(),
        keys,
        limit,
        offset,
    })
}

fn number(n: u64) -> Expr {
    Expr::Value(Value::Number(n.to_string(), false).into())
}

/// SELECT DISTINCT without aggregates: each node's distinct rows, de-duplicated again, ordered
/// and limited on the merge node.
fn distinct_plan(q: &Query, sel: &Select, _values: &Values) -> SgResult<Merge> {
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
        let pos = match resolve_output(&o.expr, &sel.projection)? {
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

/// Expressions equal up to the qualifiers of column references.
fn same(a: &Expr, b: &Expr) -> bool {
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

struct AggCollector<'a> {
    aggs: Vec<(String, Combine)>,
    partials: Vec<Expr>,
    groups: &'a mut Vec<Expr>,
    distinct_arg: Option<String>,
    err: Option<SgError>,
}

impl AggCollector<'_> {
    fn partial(&mut self, e: Expr) -> usize {
        let s = e.to_string();
        if let Some(i) = self.partials.iter().position(|p| p.to_string() == s) {
            return i;
        }
        self.partials.push(e);
        self.partials.len() - 1
    }

    /// The combine for one aggregate call, adding its partials.
    fn combine(&mut self, f: &Function, name: &str) -> SgResult<Combine> {
        let FunctionArguments::List(list) = &f.args else {
            return Err(bad(&format!("{name} without arguments")));
        };
        if !f.within_group.is_empty() || !list.clauses.is_empty() {
            return Err(bad(&format!("{name} with ORDER BY or other clauses")));
        }
        let arg = match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => None,
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Some(e.clone()),
            _ => return Err(bad(&format!("{name} with several arguments"))),
        };
        if list.duplicate_treatment == Some(sqlparser::ast::DuplicateTreatment::Distinct) {
            let arg = arg.ok_or_else(|| bad("DISTINCT *"))?;
            if matches!(arg, Expr::Tuple(_)) {
                return Err(bad(&format!("{name}(DISTINCT (row))")));
            }
            if !matches!(
                name,
                "count"
                    | "sum"
                    | "avg"
                    | "min"
                    | "max"
                    | "stddev"
                    | "stddev_samp"
                    | "stddev_pop"
                    | "variance"
                    | "var_samp"
                    | "var_pop"
                    | "bool_and"
                    | "bool_or"
            ) {
                return Err(bad(&format!("{name}(DISTINCT ...)")));
            }
            // The distinct values become a worker group column; the aggregate itself runs on
            // the merge node over them. A FILTER folds into that column: these aggregates skip
            // NULLs, so `agg(DISTINCT x) FILTER (WHERE c)` is `agg(DISTINCT CASE WHEN c THEN x END)`.
            let arg = match &f.filter {
                Some(c) => Expr::Case {
                    case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                    end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                    operand: None,
                    conditions: vec![sqlparser::ast::CaseWhen {
                        condition: (**c).clone(),
                        result: arg,
                    }],
                    else_result: None,
                },
                None => arg,
            };
            let key = arg.to_string();
            match &self.distinct_arg {
                Some(k) if *k != key => {
                    return Err(bad("DISTINCT aggregates over different expressions"))
                }
                _ => self.distinct_arg = Some(key),
            }
            let group = match self.groups.iter().position(|g| same(g, &arg)) {
                Some(i) => i,
                None => {
                    self.groups.push(arg);
                    self.groups.len() - 1
                }
            };
            return Ok(Combine::Distinct {
                name: name.to_string(),
                group,
            });
        }
        let star_args = f.args.clone();
        let filter = f.filter.clone();
        let call = |fname: &str, a: Option<Expr>| {
            let star = a.is_none();
            let mut g = func(fname, a.map(|x| vec![x]).unwrap_or_default());
            if let Expr::Function(ff) = &mut g {
                if star {
                    ff.args = star_args.clone();
                }
                ff.filter = filter.clone();
            }
            g
        };
        let numeric = |e: Expr| Expr::Cast {
            kind: sqlparser::ast::CastKind::Cast,
            expr: Box::new(Expr::Nested(Box::new(e))),
            data_type: super::build::type_named("numeric"),
            format: None,
        };
        Ok(match name {
            "count" => Combine::Count(self.partial(call("count", arg))),
            "sum" | "min" | "max" | "bool_and" | "bool_or" | "bit_and" | "bit_or" => {
                let arg = arg.ok_or_else(|| bad(&format!("{name}(*)")))?;
                Combine::Same(name.to_string(), self.partial(call(name, Some(arg))))
            }
            "every" => {
                let arg = arg.ok_or_else(|| bad("every(*)"))?;
                Combine::Same("bool_and".into(), self.partial(call("bool_and", Some(arg))))
            }
            "avg" => {
                let arg = arg.ok_or_else(|| bad("avg(*)"))?;
                let sum = self.partial(call("sum", Some(arg.clone())));
                let count = self.partial(call("count", Some(arg)));
                Combine::Avg { sum, count }
            }
            "stddev" | "stddev_samp" | "stddev_pop" | "variance" | "var_samp" | "var_pop" => {
                let arg = arg.ok_or_else(|| bad(&format!("{name}(*)")))?;
                let n = self.partial(call("count", Some(arg.clone())));
                let s = self.partial(call("sum", Some(numeric(arg.clone()))));
                let sq = Expr::BinaryOp {
                    left: Box::new(numeric(arg.clone())),
                    op: BinaryOperator::Multiply,
                    right: Box::new(numeric(arg.clone())),
                };
                let ss = self.partial(call("sum", Some(sq)));
                let t = self.partial(call("sum", Some(arg)));
                Combine::Var {
                    samp: !name.ends_with("_pop"),
                    stddev: name.starts_with("stddev"),
                    n,
                    s,
                    ss,
                    t,
                }
            }
            other => return Err(bad(&format!("the aggregate {other}"))),
        })
    }
}

impl VisitorMut for AggCollector<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
        if self.err.is_some() {
            return std::ops::ControlFlow::Break(());
        }
        let call = match e {
            Expr::Function(f) => is_agg_call(f).map(|n| (n, f.clone())),
            _ => None,
        };
        if let Some((name, f)) = call {
            {
                let key = e.to_string();
                let idx = match self.aggs.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => match self.combine(&f, &name) {
                        Ok(c) => {
                            self.aggs.push((key, c));
                            self.aggs.len() - 1
                        }
                        Err(err) => {
                            self.err = Some(err);
                            return std::ops::ControlFlow::Break(());
                        }
                    },
                };
                *e = ident(&format!("__sg_agg{idx}"));
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Replaces group expressions (outside aggregates, which are already markers) by group columns.
fn substitute_groups(e: &mut Expr, groups: &[Expr]) {
    let _ = sqlparser::ast::visit_expressions_mut(e, |x| {
        if let Some(i) = groups.iter().position(|g| same(g, x)) {
            *x = ident(&format!("_sg_g{i}"));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Aggregates and GROUP BY: partials per node, finished on the merge node.
fn final_plan(q: &Query, sel: &Select, _values: &Values) -> SgResult<Merge> {
    if sel.projection.iter().any(|i| item_expr(i).is_none()) {
        return Err(bad("* in an aggregate query"));
    }
    let mut groups: Vec<Expr> = Vec::new();
    if let GroupByExpr::Expressions(v, _) = &sel.group_by {
        for g in v {
            // The parser reads ROLLUP (...) and friends as function calls.
            if let Expr::Function(f) = g {
                let name = crate::analyze::scope::function_name(f);
                if matches!(name.as_str(), "rollup" | "cube" | "grouping") {
                    return Err(bad("ROLLUP, CUBE or GROUPING SETS"));
                }
            }
            if matches!(g, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)) {
                return Err(bad("ROLLUP, CUBE or GROUPING SETS"));
            }
            let e = match resolve_output(g, &sel.projection)? {
                Ok(pos) => item_expr(&sel.projection[pos])
                    .cloned()
                    .unwrap_or_else(|| g.clone()),
                Err(e) => e.clone(),
            };
            if !groups.iter().any(|x| same(x, &e)) {
                groups.push(e);
            }
        }
    }
    let explicit_groups = groups.len();
    let mut projection = sel.projection.clone();
    let mut having = sel.having.clone();
    let mut order = order_exprs(q)?;
    // Aggregates first (their arguments keep raw column references), then group columns.
    let mut col = AggCollector {
        aggs: Vec::new(),
        partials: Vec::new(),
        groups: &mut groups,
        distinct_arg: None,
        err: None,
    };
    for item in projection.iter_mut() {
        let _ = item.visit(&mut col);
    }
    let _ = having.visit(&mut col);
    for o in order.iter_mut() {
        if !matches!(resolve_output(&o.expr, &sel.projection), Ok(Ok(_))) {
            let _ = o.expr.visit(&mut col);
        }
    }
    if let Some(e) = col.err.take() {
        return Err(e);
    }
    let aggs: Vec<Combine> = col.aggs.into_iter().map(|(_, c)| c).collect();
    let partials = col.partials;
    let distinct_group = groups.len() > explicit_groups;
    let real_groups: Vec<Expr> = groups[..explicit_groups].to_vec();
    for item in projection.iter_mut() {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            substitute_groups(e, &groups);
        }
    }
    if let Some(h) = having.as_mut() {
        substitute_groups(h, &groups);
    }
    for o in order.iter_mut() {
        if !matches!(resolve_output(&o.expr, &sel.projection), Ok(Ok(_))) {
            substitute_groups(&mut o.expr, &groups);
        }
    }
    // The worker part: group columns and partials, grouped by the groups (and by the DISTINCT
    // aggregates' argument).
    let mut worker = q.clone();
    worker.order_by = None;
    worker.limit_clause = None;
    worker.fetch = None;
    if let SetExpr::Select(ws) = worker.body.as_mut() {
        ws.distinct = None;
        ws.having = None;
        ws.projection = groups
            .iter()
            .enumerate()
            .map(|(i, g)| SelectItem::ExprWithAlias {
                expr: g.clone(),
                alias: Ident::new(format!("_sg_g{i}")),
            })
            .chain(
                partials
                    .iter()
                    .enumerate()
                    .map(|(j, p)| SelectItem::ExprWithAlias {
                        expr: p.clone(),
                        alias: Ident::new(format!("_sg_p{j}")),
                    }),
            )
            .collect();
        ws.group_by = GroupByExpr::Expressions(groups.clone(), vec![]);
        if ws.projection.is_empty() {
            ws.projection.push(SelectItem::UnnamedExpr(number(1)));
        }
    }
    // The coordinator part.
    let mut fq = template()?;
    if let SetExpr::Select(fs) = fq.body.as_mut() {
        fs.projection = projection;
        fs.having = having;
        fs.distinct = sel.distinct.clone();
        fs.group_by = GroupByExpr::Expressions(
            (0..real_groups.len())
                .map(|i| ident(&format!("_sg_g{i}")))
                .collect(),
            vec![],
        );
    }
    let _ = distinct_group;
    set_order(&mut fq, order);
    fq.limit_clause = q.limit_clause.clone();
    fq.fetch = q.fetch.clone();
    let outputs = sel.projection.len();
    Ok(Merge::Final {
        worker_sql: Statement::Query(Box::new(worker)).to_string(),
        groups: groups.len(),
        partials: partials.len(),
        aggs,
        final_query: fq,
        outputs,
    })
}

/// The finished coordinator query for partial columns of the given type names, reading them
/// from `$first..` as arrays, each output cast to the original query's column type and named
/// as PostgreSQL named it.
pub fn finish(
    m: &Merge,
    col_types: &[String],
    first_param: usize,
    outputs: &[(String, Option<String>)],
) -> SgResult<String> {
    let Merge::Final {
        groups,
        aggs,
        final_query,
        ..
    } = m
    else {
        return Err(SgError::internal("finish of a sort merge"));
    };
    let ty = |j: usize| {
        col_types
            .get(*groups + j)
            .cloned()
            .unwrap_or_else(|| "text".into())
    };
    let p = |j: usize| ident(&format!("_sg_p{j}"));
    let cast = |e: Expr, t: &str| Expr::Cast {
        kind: sqlparser::ast::CastKind::Cast,
        expr: Box::new(e),
        data_type: super::build::type_named(t),
        format: None,
    };
    let sum = |j: usize| func("sum", vec![p(j)]);
    let mut combined: HashMap<String, Expr> = HashMap::new();
    for (a, c) in aggs.iter().enumerate() {
        let e = match c {
            Combine::Count(j) => cast(func("coalesce", vec![sum(*j), number(0)]), "int8"),
            Combine::Same(name, j) => cast(func(name, vec![p(*j)]), &ty(*j)),
            Combine::Avg { sum: s, count } => {
                if ty(*s) == "float4" {
                    // PostgreSQL averages real in float8; the nodes' float4 sums have already
                    // lost those digits.
                    return Err(bad("avg of real (float4) values"));
                }
                let t = if matches!(ty(*s).as_str(), "float4" | "float8") {
                    "float8"
                } else if ty(*s) == "interval" {
                    "interval"
                } else {
                    "numeric"
                };
                let num = if t == "interval" {
                    sum(*s)
                } else {
                    cast(sum(*s), t)
                };
                let den = cast(
                    func("nullif", vec![sum(*count), number(0)]),
                    if t == "interval" { "float8" } else { t },
                );
                Expr::BinaryOp {
                    left: Box::new(num),
                    op: BinaryOperator::Divide,
                    right: Box::new(den),
                }
            }
            Combine::Var {
                samp,
                stddev,
                n,
                s,
                ss,
                t,
            } => {
                // PostgreSQL's numeric_stddev_internal: (N*sumX2 - sumX*sumX) / (N*(N-1)).
                let nn = cast(sum(*n), "numeric");
                let mul = |a: Expr, b: Expr| Expr::BinaryOp {
                    left: Box::new(a),
                    op: BinaryOperator::Multiply,
                    right: Box::new(b),
                };
                let numer = func(
                    "greatest",
                    vec![
                        Expr::BinaryOp {
                            left: Box::new(mul(nn.clone(), sum(*ss))),
                            op: BinaryOperator::Minus,
                            right: Box::new(mul(sum(*s), sum(*s))),
                        },
                        number(0),
                    ],
                );
                let denom = if *samp {
                    mul(
                        nn.clone(),
                        Expr::Nested(Box::new(Expr::BinaryOp {
                            left: Box::new(nn.clone()),
                            op: BinaryOperator::Minus,
                            right: Box::new(number(1)),
                        })),
                    )
                } else {
                    mul(nn.clone(), nn.clone())
                };
                let var = Expr::BinaryOp {
                    left: Box::new(numer),
                    op: BinaryOperator::Divide,
                    right: Box::new(func("nullif", vec![denom, number(0)])),
                };
                let v = if *stddev {
                    func(
                        "round",
                        vec![func("sqrt", vec![var.clone()]), func("scale", vec![var])],
                    )
                } else {
                    var
                };
                if matches!(ty(*t).as_str(), "float4" | "float8") {
                    cast(v, "float8")
                } else {
                    v
                }
            }
            Combine::Distinct { name, group } => {
                let mut f = func(name, vec![ident(&format!("_sg_g{group}"))]);
                if let Expr::Function(ff) = &mut f {
                    if let FunctionArguments::List(l) = &mut ff.args {
                        l.duplicate_treatment = Some(sqlparser::ast::DuplicateTreatment::Distinct);
                    }
                }
                f
            }
        };
        // Parenthesised: the aggregate stood as one operand in the original expression.
        combined.insert(format!("__sg_agg{a}"), Expr::Nested(Box::new(e)));
    }
    let mut q = final_query.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut q, |x| {
        if let Expr::Identifier(id) = x {
            if let Some(e) = combined.get(&id.value) {
                *x = e.clone();
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if let SetExpr::Select(fs) = q.body.as_mut() {
        for (i, item) in fs.projection.iter_mut().enumerate() {
            let Some((name, typ)) = outputs.get(i) else {
                continue;
            };
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                let e = match typ {
                    Some(t) => cast(e.clone(), t),
                    None => e.clone(),
                };
                *item = SelectItem::ExprWithAlias {
                    expr: e,
                    alias: Ident::with_quote('"', name.as_str()),
                };
            }
        }
        let total = col_types.len();
        let names: Vec<Ident> = (0..total)
            .map(|i| {
                if i < *groups {
                    Ident::new(format!("_sg_g{i}"))
                } else {
                    Ident::new(format!("_sg_p{}", i - groups))
                }
            })
            .collect();
        let args: Vec<Expr> = (0..total)
            .map(|i| Expr::Cast {
                kind: sqlparser::ast::CastKind::DoubleColon,
                expr: Box::new(Expr::Value(
                    Value::Placeholder(format!("${}", first_param + i)).into(),
                )),
                data_type: super::build::type_named(&format!("{}[]", col_types[i])),
                format: None,
            })
            .collect();
        fs.from = vec![super::build::unnest_from(args, names)
            .ok_or_else(|| SgError::internal("unnest skeleton did not parse"))?];
    }
    Ok(Statement::Query(q).to_string())
}
