//! `finish`: the final query on the merge node, reading the partial columns from arrays via
//! unnest and combining each aggregate's partials.

use std::collections::HashMap;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, Ident, SelectItem, SetExpr, Statement, Value,
};

use crate::error::{SgError, SgResult};
use crate::plan::build::{func, ident};

use super::{bad, number, Combine, Merge};

/// The finished coordinator query for partial columns of the given type names, reading them
/// from `$first..` as arrays, each output cast to the original query's column type and named
/// as PostgreSQL named it.
/// `CASE WHEN numer <= 0 THEN 0 * den ELSE value END`: 0 (or NULL when `den` is NULL).
fn zero_or(numer: Expr, den: Expr, value: Expr) -> SgResult<Expr> {
    fill(
        "CASE WHEN _sg_a <= 0 THEN 0 * _sg_b ELSE _sg_c END",
        &[("_sg_a", numer), ("_sg_b", den), ("_sg_c", value)],
    )
}

/// PostgreSQL's float variance from per-node states (float.c: float8_combine, then
/// float8_var_samp/var_pop/stddev_*): N = ΣNᵢ, Sxx = ΣSxxᵢ + ΣNᵢ(meanᵢ − mean)², all in
/// float8, whose operators raise 22003 on overflow as PostgreSQL's accumulators do.
/// `_sg_m` is the group's overall mean (a window over the partial rows, see `mean_window`).
fn float_variance(
    samp: bool,
    stddev: bool,
    n: Expr,
    mean: Expr,
    sxx: Expr,
    m: Expr,
) -> SgResult<Expr> {
    let sxx_total = "(sum(_sg_x) + sum(_sg_n::float8 * ((_sg_f - _sg_m) * (_sg_f - _sg_m))))";
    let var = if samp {
        format!("CASE WHEN sum(_sg_n) > 1 THEN {sxx_total} / (sum(_sg_n)::float8 - 1) END")
    } else {
        format!("CASE WHEN sum(_sg_n) > 0 THEN {sxx_total} / sum(_sg_n)::float8 END")
    };
    let text = if stddev { format!("sqrt({var})") } else { var };
    fill(
        &text,
        &[("_sg_n", n), ("_sg_f", mean), ("_sg_x", sxx), ("_sg_m", m)],
    )
}

/// An expression parsed from a template of shardgate's own text, each placeholder identifier
/// replaced by an expression.
fn fill(template: &str, with: &[(&str, Expr)]) -> SgResult<Expr> {
    let mut e = match crate::analyze::parse_sql(&format!("SELECT {template}"))
        .map_err(SgError::internal)?
        .into_iter()
        .next()
    {
        Some(sqlparser::ast::Statement::Query(q)) => match *q.body {
            sqlparser::ast::SetExpr::Select(sel) => match sel.projection.into_iter().next() {
                Some(sqlparser::ast::SelectItem::UnnamedExpr(e)) => e,
                _ => return Err(SgError::internal("merge template")),
            },
            _ => return Err(SgError::internal("merge template")),
        },
        _ => return Err(SgError::internal("merge template")),
    };
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let Expr::Identifier(id) = x {
            if let Some((_, w)) = with.iter().find(|(k, _)| *k == id.value) {
                *x = Expr::Nested(Box::new(w.clone()));
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    Ok(e)
}

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
        data_type: crate::plan::build::type_named(t),
        format: None,
    };
    let sum = |j: usize| func("sum", vec![p(j)]);
    let mut combined: HashMap<String, Expr> = HashMap::new();
    // Float variances: (window column, count partial, mean partial).
    let mut means: Vec<(String, usize, usize)> = Vec::new();
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
                fm,
                fxx,
            } if matches!(ty(*t).as_str(), "float4" | "float8") => {
                let m = format!("_sg_m{a}");
                means.push((m.clone(), *n, *fm));
                float_variance(*samp, *stddev, p(*n), p(*fm), p(*fxx), ident(&m))?
            }
            Combine::Var {
                samp,
                stddev,
                n,
                s,
                ss,
                t,
                ..
            } => {
                // PostgreSQL's numeric_stddev_internal: (N*sumX2 - sumX*sumX) / (N*(N-1)).
                let nn = cast(sum(*n), "numeric");
                let mul = |a: Expr, b: Expr| Expr::BinaryOp {
                    left: Box::new(a),
                    op: BinaryOperator::Multiply,
                    right: Box::new(b),
                };
                let numer_raw = Expr::BinaryOp {
                    left: Box::new(mul(nn.clone(), sum(*ss))),
                    op: BinaryOperator::Minus,
                    right: Box::new(mul(sum(*s), sum(*s))),
                };
                let numer = func("greatest", vec![numer_raw.clone(), number(0)]);
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
                    right: Box::new(func("nullif", vec![denom.clone(), number(0)])),
                };
                let v = if *stddev {
                    // PostgreSQL takes the root at the quotient's scale, rounded once
                    // (numeric.c, numeric_stddev_internal). sqrt() rounds at a scale of its
                    // own choosing; twenty more digits first make the second rounding agree.
                    // NaN has no scale: round(NaN, 0) is NaN.
                    fill(
                        "round(sqrt(_sg_v * 1.00000000000000000000), coalesce(scale(_sg_v), 0))",
                        &[("_sg_v", var)],
                    )?
                } else {
                    var
                };
                // A numerator of zero (or less, by rounding) gives a plain 0 of scale 0, and
                // too few rows NULL, in that order of checks.
                let v = zero_or(numer_raw, func("nullif", vec![denom.clone(), number(0)]), v)?;
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
                data_type: crate::plan::build::type_named(&format!("{}[]", col_types[i])),
                format: None,
            })
            .collect();
        let unnest = crate::plan::build::unnest_from(args, names)
            .ok_or_else(|| SgError::internal("unnest skeleton did not parse"))?;
        fs.from = vec![if means.is_empty() {
            unnest
        } else {
            mean_window(unnest, *groups, &means)?
        }];
    }
    Ok(Statement::Query(q).to_string())
}

/// `(SELECT _sg.*, <mean> AS _sg_m{a} ... FROM unnest(...) AS _sg) AS _sg`: each partial row
/// with its group's overall mean, ΣNᵢmeanᵢ / ΣNᵢ over the rows of the same group columns.
fn mean_window(
    unnest: sqlparser::ast::TableWithJoins,
    groups: usize,
    means: &[(String, usize, usize)],
) -> SgResult<sqlparser::ast::TableWithJoins> {
    let partition = if groups == 0 {
        String::new()
    } else {
        let g: Vec<String> = (0..groups).map(|i| format!("_sg_g{i}")).collect();
        format!("PARTITION BY {}", g.join(", "))
    };
    let cols: Vec<String> = means
        .iter()
        .map(|(m, n, f)| {
            format!(
                "sum(_sg_p{n} * _sg_p{f}) OVER _sg_w / nullif(sum(_sg_p{n}) OVER _sg_w, 0)::float8 AS {m}"
            )
        })
        .collect();
    let text = format!(
        "SELECT 1 FROM (SELECT _sg.*, {} FROM _sg_rows AS _sg WINDOW _sg_w AS ({partition})) AS _sg",
        cols.join(", ")
    );
    let parsed = crate::analyze::parse_sql(&text).map_err(SgError::internal)?;
    let mut outer = match parsed.into_iter().next() {
        Some(Statement::Query(q)) => match *q.body {
            SetExpr::Select(sel) => sel.from.into_iter().next(),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| SgError::internal("mean window skeleton"))?;
    if let sqlparser::ast::TableFactor::Derived { subquery, .. } = &mut outer.relation {
        if let SetExpr::Select(inner) = subquery.body.as_mut() {
            inner.from = vec![unnest];
            return Ok(outer);
        }
    }
    Err(SgError::internal("mean window skeleton"))
}
