//! Finals shardgate can compute itself instead of the merge node: grouping by integer columns
//! with count, and sum, min and max of integers, ordered by output columns and limited. There
//! the merge node's final query costs more than it saves (unnesting every partial row into a
//! hash aggregate: 13 ms for 30k partial groups, against the workers' own 67 ms; BENCHMARKS.md).
//! Whether the partials really are integers is known only from the workers' RowDescription,
//! so the plan says what to compute and the executor checks the types before using it.

use std::fmt;

use sqlparser::ast::{Expr, OrderByExpr, Query, Select, SelectItem};

use super::sort::{limits, sort_key};
use super::{item_expr, order_exprs, resolve_order, Combine, SortKey};
use crate::plan::route::Values;

/// An output column of a local final.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Worker group column `_sg_g{k}`.
    Group(usize),
    /// Aggregate `a` (`Combine::Count` or `Combine::Same` of sum, min or max).
    Agg(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalFinal {
    pub outputs: Vec<Out>,
    /// Output positions to order by, in order.
    pub order: Vec<(usize, SortKey)>,
    pub limit: Option<u64>,
    pub offset: u64,
}

impl fmt::Display for LocalFinal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outs: Vec<String> = self
            .outputs
            .iter()
            .map(|o| match o {
                Out::Group(k) => format!("g{k}"),
                Out::Agg(a) => format!("agg{a}"),
            })
            .collect();
        write!(f, "{}", outs.join(", "))?;
        if !self.order.is_empty() {
            let keys: Vec<String> = self
                .order
                .iter()
                .map(|(i, k)| {
                    format!(
                        "{}{}{}",
                        i + 1,
                        if k.desc { " DESC" } else { "" },
                        match (k.desc, k.nulls_first) {
                            (false, true) => " NULLS FIRST",
                            (true, false) => " NULLS LAST",
                            _ => "",
                        }
                    )
                })
                .collect();
            write!(f, " ORDER BY {}", keys.join(", "))?;
        }
        if let Some(l) = self.limit {
            write!(f, " LIMIT {l}")?;
        }
        if self.offset > 0 {
            write!(f, " OFFSET {}", self.offset)?;
        }
        Ok(())
    }
}

/// The marker a final-query expression is, if it is one alone.
fn marker(e: &Expr, groups: usize, aggs: usize) -> Option<Out> {
    let Expr::Identifier(id) = e else {
        return None;
    };
    if id.quote_style.is_some() {
        return None;
    }
    if let Some(a) = id.value.strip_prefix("__sg_agg") {
        return a.parse().ok().filter(|a| *a < aggs).map(Out::Agg);
    }
    if let Some(k) = id.value.strip_prefix("_sg_g") {
        return k.parse().ok().filter(|k| *k < groups).map(Out::Group);
    }
    None
}

/// The local final for an aggregate query, when its shape allows one: no HAVING, no DISTINCT,
/// every output a group column or a count/sum/min/max alone, every ORDER BY item an output.
/// `projection` and `order` are the final query's (aggregates and group expressions replaced
/// by their markers), in the same order as the original's.
pub(super) fn local_final(
    q: &Query,
    sel: &Select,
    projection: &[SelectItem],
    order: &[OrderByExpr],
    aggs: &[Combine],
    groups: usize,
    values: &Values,
) -> Option<LocalFinal> {
    if sel.having.is_some() || sel.distinct.is_some() {
        return None;
    }
    let simple = |c: &Combine| match c {
        Combine::Count(_) => true,
        Combine::Same(name, _) => matches!(name.as_str(), "sum" | "min" | "max"),
        _ => false,
    };
    if !aggs.iter().all(simple) {
        return None;
    }
    let outputs = projection
        .iter()
        .map(|it| item_expr(it).and_then(|e| marker(e, groups, aggs.len())))
        .collect::<Option<Vec<Out>>>()?;
    let original = order_exprs(q).ok()?;
    if original.len() != order.len() {
        return None;
    }
    let mut keys = Vec::new();
    for (o, substituted) in original.iter().zip(order) {
        let key = sort_key(o).ok()?;
        let pos = match resolve_order(&o.expr, &sel.projection) {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => {
                let m = marker(&substituted.expr, groups, aggs.len())?;
                outputs.iter().position(|x| *x == m)?
            }
            Err(_) => return None,
        };
        keys.push((pos, key));
    }
    let (limit, offset) = limits(q, values).ok()?;
    Some(LocalFinal {
        outputs,
        order: keys,
        limit,
        offset,
    })
}
