//! One clock per statement across nodes: `now()` and its kin are the start of the current
//! transaction (statement_timestamp() the start of the statement), one value however many rows
//! PostgreSQL evaluates them for (func.sgml, "Current Date/Time"). Each node would read its
//! own transaction's start, so a statement that runs on several nodes gets shardgate's value
//! instead, as a constant of the same type, and every node computes with that one value.

use sqlparser::ast::{
    CastKind, DataType, Expr, FunctionArguments, Ident, SelectItem, SetExpr, Statement, Value,
    VisitMut, VisitorMut,
};

use crate::analyze::scope::function_name;

/// The instants a statement's time functions stand for, as timestamptz literals in UTC
/// (`2026-11-30 02:55:01.123456+00`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// now(), current_timestamp, transaction_timestamp(), current_date, ...: the transaction's.
    pub transaction: String,
    /// statement_timestamp(): the statement's.
    pub statement: String,
}

impl Clock {
    /// Both instants at `t` (a statement outside a transaction block: they coincide).
    pub fn at(t: std::time::SystemTime) -> Clock {
        let s = timestamptz(t);
        Clock {
            transaction: s.clone(),
            statement: s,
        }
    }
}

/// `t` as a timestamptz literal in UTC with microseconds.
pub fn timestamptz(t: std::time::SystemTime) -> String {
    let micros = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    };
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}+00",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// The type a time function's value has, and whether it is the statement's instant.
fn kind_of(name: &str) -> Option<(&'static str, bool)> {
    if !crate::analyze::calls::is_stable_time(name) {
        return None;
    }
    Some(match name {
        "now" | "current_timestamp" | "transaction_timestamp" => ("timestamptz", false),
        "statement_timestamp" => ("timestamptz", true),
        "current_date" => ("date", false),
        "current_time" => ("timetz", false),
        "localtime" => ("time", false),
        "localtimestamp" => ("timestamp", false),
        _ => return None,
    })
}

/// A statement over several nodes that would otherwise go to each unchanged: each gets the
/// text with the clock's values instead. Reads are concatenated as any scatter (a sort merge
/// without keys, which sends the rewritten text); writes without parameters run as that text
/// on each node. A write with parameters keeps each node's own clock: its text cannot be sent
/// without them (noted in the README).
pub fn scatter(
    text: &str,
    clock: &Clock,
    nodes: Vec<usize>,
    values: &super::route::Values,
    write: bool,
) -> crate::error::SgResult<super::Plan> {
    let why =
        "rows from every node that may hold them, with shardgate's clock for now()".to_string();
    let sql = rewrite(text, clock)?;
    if !write {
        return Ok(super::Plan::Merge {
            nodes,
            merge: Box::new(super::merge::Merge::Sort {
                worker_sql: sql,
                keys: Vec::new(),
                limit: None,
                offset: 0,
            }),
            why,
        });
    }
    if !values.params.is_empty() {
        return Ok(super::Plan::Scatter {
            nodes,
            combine: super::Combine::Concat,
            why: "write on every node that may hold rows".into(),
        });
    }
    Ok(super::Plan::PerNode {
        parts: nodes.into_iter().map(|n| (n, vec![sql.clone()])).collect(),
        combine: super::Combine::Concat,
        why,
        learn: None,
        returning_order: Vec::new(),
        params: Vec::new(),
    })
}

/// `text` (one statement) with every time function replaced by the clock's value.
pub fn rewrite(text: &str, clock: &Clock) -> crate::error::SgResult<String> {
    let parsed = crate::analyze::parse_sql(text).map_err(crate::error::SgError::syntax)?;
    let stmt = parsed
        .first()
        .ok_or_else(|| crate::error::SgError::internal("statement vanished on re-parse"))?;
    Ok(substitute(stmt, clock).to_string())
}

fn cast(e: Expr, ty: &str) -> Expr {
    Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(e),
        data_type: DataType::Custom(
            sqlparser::ast::ObjectName::from(vec![Ident::new(ty)]),
            vec![],
        ),
        format: None,
    }
}

/// `current_timestamp(p)` and kin: the precision argument, a small integer literal.
fn precision(args: &FunctionArguments) -> Option<u32> {
    let FunctionArguments::List(l) = args else {
        return None;
    };
    match l.args.as_slice() {
        [sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(
            Expr::Value(v),
        ))] => match &v.value {
            Value::Number(n, _) => n.parse().ok().filter(|p| *p <= 6),
            _ => None,
        },
        _ => None,
    }
}

struct Replace<'a> {
    clock: &'a Clock,
}

impl VisitorMut for Replace<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
        let Expr::Function(f) = e else {
            return std::ops::ControlFlow::Continue(());
        };
        let name = function_name(f);
        let Some((ty, statement)) = kind_of(&name) else {
            return std::ops::ControlFlow::Continue(());
        };
        let at = if statement {
            &self.clock.statement
        } else {
            &self.clock.transaction
        };
        let instant = cast(
            Expr::Value(Value::SingleQuotedString(at.clone()).into()),
            "timestamptz",
        );
        let ty = match precision(&f.args) {
            Some(p) => format!("{ty}({p})"),
            None => ty.to_string(),
        };
        *e = Expr::Nested(Box::new(if ty == "timestamptz" {
            instant
        } else {
            cast(instant, &ty)
        }));
        std::ops::ControlFlow::Continue(())
    }
}

/// The statement with every time function replaced by the clock's value. A select-list item
/// that was such a call keeps the column name PostgreSQL gives it (the function's name).
pub fn substitute(stmt: &Statement, clock: &Clock) -> Statement {
    let mut s = stmt.clone();
    if let Statement::Query(q) = &mut s {
        if let SetExpr::Select(sel) = q.body.as_mut() {
            for item in sel.projection.iter_mut() {
                if let SelectItem::UnnamedExpr(Expr::Function(f)) = item {
                    if kind_of(&function_name(f)).is_some() {
                        let name = function_name(f);
                        *item = SelectItem::ExprWithAlias {
                            expr: Expr::Function(f.clone()),
                            alias: Ident::with_quote('"', name),
                        };
                    }
                }
            }
        }
    }
    let _ = s.visit(&mut Replace { clock });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_postgresql_reads_them() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_471_301_123_456);
        assert_eq!(timestamptz(t), "2025-11-30 02:55:01.123456+00");
        assert_eq!(
            timestamptz(std::time::UNIX_EPOCH),
            "1970-01-01 00:00:00.000000+00"
        );
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(timestamptz(leap), "2000-02-29 00:00:00.000000+00");
    }
}
