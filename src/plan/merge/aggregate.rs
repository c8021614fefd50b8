//! Aggregates and GROUP BY: each aggregate call becomes per-node partials (`AggCollector`) and
//! a `Combine`; the final query finishes them over the group columns on the merge node.

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    Ident, Query, Select, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

use crate::error::{SgError, SgResult};
use crate::plan::build::{func, ident};
use crate::plan::route::Values;

use super::{
    bad, group_output, is_agg_call, item_expr, number, order_exprs, resolve_order, same, set_order,
    template, Combine, Merge,
};

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
            data_type: crate::plan::build::type_named("numeric"),
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
                let count = self.partial(call("count", Some(arg.clone())));
                // Not combined: PostgreSQL's avg of floats accumulates the sum of squared
                // deviations too and raises 22003 when that overflows (float.c,
                // float8_accum); each node's own avg raises it as PostgreSQL would.
                self.partial(call("avg", Some(arg)));
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
                let t = self.partial(call("sum", Some(arg.clone())));
                // For floats, PostgreSQL's own state: each node's mean and sum of squared
                // deviations (float8_accum), combined as its parallel workers' are.
                let fm = self.partial(call("avg", Some(arg.clone())));
                let fxx = self.partial(Expr::BinaryOp {
                    left: Box::new(call("var_pop", Some(arg.clone()))),
                    op: BinaryOperator::Multiply,
                    right: Box::new(call("count", Some(arg))),
                });
                Combine::Var {
                    samp: !name.ends_with("_pop"),
                    stddev: name.starts_with("stddev"),
                    n,
                    s,
                    ss,
                    t,
                    fm,
                    fxx,
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
pub(super) fn final_plan(q: &Query, sel: &Select, values: &Values) -> SgResult<Merge> {
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
            let e = match group_output(g, &sel.projection)? {
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
        if !matches!(resolve_order(&o.expr, &sel.projection), Ok(Ok(_))) {
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
        if !matches!(resolve_order(&o.expr, &sel.projection), Ok(Ok(_))) {
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
    // The same final in shardgate, where its shape allows.
    let local = match distinct_group {
        true => None,
        false => {
            super::local::local_final(q, sel, &projection, &order, &aggs, groups.len(), values)
        }
    };
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
        local,
    })
}
