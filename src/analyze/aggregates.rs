//! Which functions aggregate, and what a main query does that a plain concatenation of node
//! results would get wrong (aggregates, GROUP BY, DISTINCT, ORDER BY, LIMIT, windows).

use sqlparser::ast::{Expr, Query, SetExpr, Visit};

use super::scope::ident_name;
use super::Stmt;

const AGGREGATES: [&str; 24] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bit_and",
    "bit_or",
    "percentile_cont",
    "mode",
];

pub fn is_aggregate_name(name: &str) -> bool {
    // Every built-in aggregate whose name this list does not spell ends in "agg" (array_agg,
    // xmlagg, range_agg, json_objectagg, jsonb_object_agg_strict ...) or starts with "regr_".
    AGGREGATES.contains(&name)
        || name.contains("agg")
        || name.starts_with("regr_")
        || name == "any_value"
        || matches!(
            name,
            "percentile_disc"
                | "corr"
                | "covar_pop"
                | "covar_samp"
                | "xmlagg"
                | "bit_xor"
                | "regr_count"
        )
}

/// Calls `f` on each function call of the main SELECT's own expressions (select list, HAVING,
/// QUALIFY, ORDER BY), not on those of its subqueries: an aggregate in a subquery does not make
/// the main query an aggregate.
pub fn top_level_functions(q: &Query, f: &mut dyn FnMut(&sqlparser::ast::Function)) {
    struct Calls<'f> {
        depth: usize,
        f: &'f mut dyn FnMut(&sqlparser::ast::Function),
    }
    impl sqlparser::ast::Visitor for Calls<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            self.depth += 1;
            std::ops::ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            self.depth -= 1;
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            if let (0, Expr::Function(call)) = (self.depth, e) {
                (self.f)(call);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut calls = Calls { depth: 0, f };
    if let SetExpr::Select(sel) = q.body.as_ref() {
        let _ = sel.projection.visit(&mut calls);
        let _ = sel.having.visit(&mut calls);
        let _ = sel.qualify.visit(&mut calls);
    }
    let _ = q.order_by.visit(&mut calls);
}

/// What the top-level query does that a plain concatenation of node results would get wrong.
pub fn merge_reasons(q: &Query, s: &mut Stmt) {
    let mut aggregates = false;
    let mut windows = false;
    let keys = s.top_keys.clone();
    // A window partitioned by a distribution key sees only rows of one node: it runs there.
    let keyed = |e: &Expr| {
        let name = match e {
            Expr::Identifier(id) => ident_name(id),
            Expr::CompoundIdentifier(p) => p.iter().map(ident_name).collect::<Vec<_>>().join("."),
            _ => return false,
        };
        keys.contains(&name)
    };
    top_level_functions(q, &mut |f| {
        let name = super::scope::function_name(f);
        match &f.over {
            Some(sqlparser::ast::WindowType::WindowSpec(w)) if w.partition_by.iter().any(keyed) => {
                s.keyed_windows = true;
            }
            Some(_) => windows = true,
            None if is_aggregate_name(&name) || !f.within_group.is_empty() => aggregates = true,
            None => {}
        }
    });
    match q.body.as_ref() {
        SetExpr::Select(sel) => {
            if windows {
                s.no_scatter = Some(
                    "window functions not partitioned by the distribution key over rows of several nodes"
                        .into(),
                );
            }
            let grouped = !matches!(&sel.group_by, sqlparser::ast::GroupByExpr::Expressions(v, _) if v.is_empty());
            if sel.distinct.is_some() {
                s.needs_merge = Some("DISTINCT".into());
            } else if grouped || sel.having.is_some() {
                s.needs_merge = Some("GROUP BY".into());
            } else if aggregates {
                s.needs_merge = Some("aggregate functions".into());
            }
        }
        SetExpr::Values(_) => {}
        _ => s.no_scatter = Some("UNION, INTERSECT or EXCEPT over rows of several nodes".into()),
    }
    if s.needs_merge.is_none() {
        if q.order_by.is_some() {
            s.needs_merge = Some("ORDER BY".into());
        } else if q.limit_clause.is_some() || q.fetch.is_some() {
            s.needs_merge = Some("LIMIT or OFFSET".into());
        }
    }
}
