//! Whether a simple-protocol SELECT may run on its worker as a prepared statement, its lifted
//! literals bound as parameters: only where a parameter typed as PostgreSQL types the literal
//! resolves exactly as the literal does.
//!
//! A worker plans a simple query at every execution, and on a partitioned table that costs
//! twice what it does on a plain one; a prepared statement is planned once per backend
//! (`server.worker_plan_cache_mode`). PostgreSQL resolves an unknown-typed parameter as it
//! resolves an unknown-typed string literal (parse_coerce.c, `coerce_type`: both take the type
//! the operator wants), and gives a number the type `make_const` (parse_node.c) would, so a
//! placeholder compared with a plain column, listed in `col IN (...)`, bounding `col BETWEEN`
//! or standing for LIMIT/OFFSET means what its literal meant. Elsewhere (a select list, a
//! function argument, `'a' || 'b'`) an unknown parameter fails where the literal does not, so
//! such statements keep the simple protocol.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, LimitClause, Query, SetExpr, Statement, UnaryOperator, Value, Visit,
    Visitor,
};

use super::shape::Literal;

/// PostgreSQL's type OIDs (pg_type.dat) for the literals a shape lifts.
const INT4: u32 = 23;
const INT8: u32 = 20;
const NUMERIC: u32 = 1700;

/// True when the shape `text` (parsed as `stmt`) may be prepared once and bound many times:
/// no constant is left in it that PostgreSQL reads while parsing under the session's settings
/// (`placeholders_behave`, `no_constants_left`).
pub fn qualifies(text: &str, stmt: &Statement) -> bool {
    no_constants_left(text) && placeholders_behave(stmt)
}

/// A prepared statement keeps the constants its text had, converted when it was parsed: a
/// quoted literal the shape kept (`date 'today'`, `timestamptz '2024-01-01 00:00'` read in the
/// TimeZone of whichever session prepared it, `E'..'`, `$$..$$`) would keep its first meaning
/// for every session and day after. Any quote left in the shape keeps the statement as text.
fn no_constants_left(text: &str) -> bool {
    let b = text.as_bytes();
    !b.contains(&b'\'')
        && !b
            .iter()
            .enumerate()
            .any(|(i, c)| *c == b'$' && !b.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
}

/// True when every `$n` of `stmt` (a shape's statement) sits where a typed parameter
/// behaves as the literal it replaced; false for anything but a plain SELECT.
pub fn placeholders_behave(stmt: &Statement) -> bool {
    let Statement::Query(q) = stmt else {
        return false;
    };
    if !plain_select(q) {
        return false;
    }
    let mut c = Count::default();
    let _ = stmt.visit(&mut c);
    c.all > 0 && c.all == c.safe && !c.null
}

/// A query whose body is a SELECT (or a set operation of them) without INTO.
fn plain_select(q: &Query) -> bool {
    fn body(b: &SetExpr) -> bool {
        match b {
            SetExpr::Select(s) => s.into.is_none(),
            SetExpr::SetOperation { left, right, .. } => body(left) && body(right),
            SetExpr::Query(q) => plain_select(q),
            _ => false,
        }
    }
    body(&q.body)
}

#[derive(Default)]
struct Count {
    /// Placeholders seen anywhere.
    all: usize,
    /// Placeholders seen in a context where a typed parameter means what the literal did.
    safe: usize,
    /// A NULL constant: `x = NULL` means what transform_null_equals said when it was parsed.
    null: bool,
}

fn is_placeholder(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)))
}

/// A placeholder, or one with a sign (`-5` lifts to `-$1`): a number's sign changes its value,
/// not how its comparison resolves.
fn is_operand(e: &Expr) -> bool {
    match e {
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => is_placeholder(expr),
        _ => is_placeholder(e),
    }
}

fn is_column(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

fn comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

impl Visitor for Count {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let mut limits: Vec<&Expr> = Vec::new();
        match &q.limit_clause {
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) if limit_by.is_empty() => {
                limits.extend(limit.iter());
                limits.extend(offset.iter().map(|o| &o.value));
            }
            _ => {}
        }
        self.safe += limits.into_iter().filter(|e| is_placeholder(e)).count();
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            _ if is_placeholder(e) => self.all += 1,
            Expr::Value(v) if matches!(v.value, Value::Null) => self.null = true,
            Expr::BinaryOp { left, op, right }
                if comparison(op)
                    && ((is_column(left) && is_operand(right))
                        || (is_operand(left) && is_column(right))) =>
            {
                self.safe += 1;
            }
            Expr::InList { expr, list, .. } if is_column(expr) => {
                self.safe += list.iter().filter(|e| is_operand(e)).count();
            }
            Expr::Between {
                expr, low, high, ..
            } if is_column(expr) => {
                self.safe += [low, high].iter().filter(|e| is_operand(e)).count();
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The shape one statement `sql` would run under on a worker as a prepared statement, with
/// its number of parameters; None when it keeps the simple protocol (EXPLAIN tells which).
pub fn shape_of(sql: &str) -> Option<(String, usize)> {
    let sh = super::shape::shape(sql)?;
    let parsed = super::parse_sql(&sh.text).ok()?;
    (!sh.literals.is_empty() && parsed.len() == 1 && qualifies(&sh.text, &parsed[0]))
        .then_some((sh.text, sh.literals.len()))
}

/// The type PostgreSQL gives `lit` as written: unknown (0) for a quoted string, resolved by
/// its context as the parameter will be; for a number what scan.l and `make_const` give it:
/// integer when it fits 32 bits, bigint when it fits 64, numeric otherwise.
pub fn literal_type(lit: &Literal) -> u32 {
    if lit.is_string {
        0
    } else if lit.text.bytes().all(|b| b.is_ascii_digit()) {
        if lit.text.parse::<i32>().is_ok() {
            INT4
        } else if lit.text.parse::<i64>().is_ok() {
            INT8
        } else {
            NUMERIC
        }
    } else {
        NUMERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaves(sql: &str) -> bool {
        let s = crate::analyze::parse_sql(sql).unwrap_or_default();
        s.len() == 1 && qualifies(sql, &s[0])
    }

    #[test]
    fn comparisons_lists_ranges_and_limits_behave() {
        assert!(behaves("SELECT v FROM kv WHERE k = $1"));
        assert!(behaves("SELECT v FROM kv WHERE $1 = kv.k AND v <> $2"));
        assert!(behaves(
            "SELECT * FROM t WHERE id IN ($1, $2) ORDER BY id LIMIT $3 OFFSET $4"
        ));
        assert!(behaves("SELECT * FROM t WHERE id BETWEEN -$1 AND $2"));
        assert!(behaves("SELECT * FROM t WHERE id = -$1 OR id IN (-$2, $3)"));
        assert!(behaves(
            "SELECT a FROM t WHERE id = $1 UNION ALL SELECT a FROM u WHERE id = $2"
        ));
        assert!(behaves(
            "SELECT a FROM t WHERE id = $1 AND b IN (SELECT b FROM u WHERE c < $2)"
        ));
    }

    #[test]
    fn other_places_keep_the_literal() {
        // Unknown-typed parameters where PostgreSQL cannot resolve them, or resolves them
        // differently from the literal.
        assert!(!behaves("SELECT $1 FROM kv WHERE k = $2"));
        assert!(!behaves("SELECT v FROM kv WHERE k = $1 || $2"));
        assert!(!behaves("SELECT v FROM kv WHERE lower(v) = $1"));
        assert!(!behaves("SELECT v FROM kv WHERE k = -($1 + $2)"));
        assert!(!behaves("SELECT v FROM kv WHERE v LIKE $1"));
        assert!(!behaves("SELECT v FROM kv WHERE k = $1::int"));
        assert!(!behaves("SELECT v INTO w FROM kv WHERE k = $1"));
        // Constants PostgreSQL converts while parsing, under the preparing session's settings.
        assert!(!behaves(
            "SELECT v FROM ev WHERE id = $1 AND day = date 'today'"
        ));
        assert!(!behaves("SELECT v FROM ev WHERE id = $1 AND v = E'a\\b'"));
        assert!(!behaves("SELECT v FROM ev WHERE id = $1 AND v = $$x$$"));
        assert!(!behaves("SELECT v FROM ev WHERE id = $1 AND v = NULL"));
        assert!(behaves("SELECT v FROM ev WHERE id = $1 AND v IS NULL"));
        // Nothing lifted: nothing to gain.
        assert!(!behaves("SELECT v FROM kv"));
        assert!(!behaves("UPDATE kv SET v = 'x' WHERE k = $1"));
    }

    #[test]
    fn numbers_take_the_types_postgres_gives_them() {
        let n = |t: &str| Literal {
            text: t.to_string(),
            is_string: false,
        };
        assert_eq!(literal_type(&n("2147483647")), INT4);
        assert_eq!(literal_type(&n("2147483648")), INT8);
        assert_eq!(literal_type(&n("9223372036854775808")), NUMERIC);
        assert_eq!(literal_type(&n("1.5")), NUMERIC);
        assert_eq!(literal_type(&n("1e3")), NUMERIC);
        assert_eq!(literal_type(&n("007")), INT4);
        let s = Literal {
            text: "5".to_string(),
            is_string: true,
        };
        assert_eq!(literal_type(&s), 0);
    }
}
