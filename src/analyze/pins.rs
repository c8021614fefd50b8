//! Key pins: what a WHERE (or an inner join's ON) says about one table's distribution column,
//! as a small predicate tree over constants and parameters. Following PostgreSQL's pruning
//! (partprune.c): `=` and IN prune every method, `< <= > >=` and BETWEEN prune range tables,
//! AND intersects, OR unions, anything else keeps every shard.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

/// Where a compared value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSrc {
    /// A literal in the statement's text (its contents, unescaped).
    Literal(String),
    /// `$n` (1-based): a Bind parameter, or a literal lifted out by the shape cache.
    Param {
        index: usize,
        negate: bool,
    },
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn flip(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// No restriction known: every shard.
    All,
    /// Provably no row (`WHERE false`).
    Nothing,
    Eq(ValueSrc),
    Cmp(Cmp, ValueSrc),
    IsNull,
    And(Vec<Pin>),
    Or(Vec<Pin>),
}

impl Pin {
    /// Whether rows with a NULL key can satisfy the pin (such rows match no key equality).
    pub fn may_be_null(&self) -> bool {
        match self {
            Pin::All | Pin::IsNull => true,
            Pin::Nothing | Pin::Eq(_) | Pin::Cmp(..) => false,
            Pin::And(v) => v.iter().all(Pin::may_be_null),
            Pin::Or(v) => v.iter().any(Pin::may_be_null),
        }
    }

    pub fn and(self, other: Pin) -> Pin {
        match (self, other) {
            (Pin::All, p) | (p, Pin::All) => p,
            (Pin::And(mut a), Pin::And(b)) => {
                a.extend(b);
                Pin::And(a)
            }
            (Pin::And(mut a), p) | (p, Pin::And(mut a)) => {
                a.push(p);
                Pin::And(a)
            }
            (a, b) => Pin::And(vec![a, b]),
        }
    }
}

/// Decides whether an expression is the pinned table's distribution column.
pub trait KeyMatcher {
    fn is_key(&self, e: &Expr) -> bool;
}

/// The pin an expression puts on the key `m` recognises.
pub fn pin_of(e: &Expr, m: &dyn KeyMatcher) -> Pin {
    match e {
        Expr::Nested(inner) => pin_of(inner, m),
        Expr::Value(v) if matches!(v.value, Value::Boolean(false) | Value::Null) => Pin::Nothing,
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => pin_of(left, m).and(pin_of(right, m)),
            BinaryOperator::Or => match (pin_of(left, m), pin_of(right, m)) {
                (Pin::All, _) | (_, Pin::All) => Pin::All,
                (Pin::Or(mut a), Pin::Or(b)) => {
                    a.extend(b);
                    Pin::Or(a)
                }
                (a, b) => Pin::Or(vec![a, b]),
            },
            BinaryOperator::Eq => compare(left, right, m, None),
            BinaryOperator::Lt => compare(left, right, m, Some(Cmp::Lt)),
            BinaryOperator::LtEq => compare(left, right, m, Some(Cmp::Le)),
            BinaryOperator::Gt => compare(left, right, m, Some(Cmp::Gt)),
            BinaryOperator::GtEq => compare(left, right, m, Some(Cmp::Ge)),
            _ => Pin::All,
        },
        Expr::InList {
            expr,
            list,
            negated: false,
        } if m.is_key(strip(expr)) => {
            let vals: Option<Vec<Pin>> = list.iter().map(|v| value_src(v).map(Pin::Eq)).collect();
            match vals {
                Some(v) if v.is_empty() => Pin::Nothing,
                Some(v) => Pin::Or(v),
                None => Pin::All,
            }
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } if m.is_key(strip(expr)) => match (value_src(low), value_src(high)) {
            (Some(l), Some(h)) => Pin::And(vec![Pin::Cmp(Cmp::Ge, l), Pin::Cmp(Cmp::Le, h)]),
            _ => Pin::All,
        },
        Expr::IsNull(inner) if m.is_key(strip(inner)) => Pin::IsNull,
        _ => Pin::All,
    }
}

fn compare(left: &Expr, right: &Expr, m: &dyn KeyMatcher, cmp: Option<Cmp>) -> Pin {
    let (value, cmp) = if m.is_key(strip(left)) {
        (right, cmp)
    } else if m.is_key(strip(right)) {
        (left, cmp.map(Cmp::flip))
    } else {
        return Pin::All;
    };
    match (value_src(value), cmp) {
        (Some(v), None) => Pin::Eq(v),
        (Some(v), Some(c)) => Pin::Cmp(c, v),
        (None, _) => Pin::All,
    }
}

/// A key column may be written with a cast (`k::text`) only where the cast cannot change
/// equality; we accept parentheses alone.
fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip(inner),
        other => other,
    }
}

/// A standard string literal's value from its text as written: PostgreSQL doubles quotes and
/// (with standard_conforming_strings) takes backslashes literally.
pub fn string_value(raw: &str) -> String {
    raw.replace("''", "'")
}

/// A constant or parameter, seen through casts and parentheses.
pub fn value_src(e: &Expr) -> Option<ValueSrc> {
    match e {
        Expr::Nested(inner) => value_src(inner),
        // A cast may change the value (`'USA'::varchar(2)` is 'US', `5.7::int` is 6): follow
        // only casts that keep a literal as written.
        Expr::Cast {
            expr, data_type, ..
        } => {
            let v = value_src(expr)?;
            let ty = data_type.to_string().to_lowercase();
            let literal = match &v {
                ValueSrc::Literal(s) => Some(s.as_str()),
                _ => None,
            };
            let keeps = match ty.as_str() {
                "text"
                | "uuid"
                | "varchar"
                | "character varying"
                | "timestamp"
                | "timestamp without time zone" => true,
                "date" => literal.is_none_or(|s| s.len() == 10),
                "bigint" | "int8" | "integer" | "int" | "int4" | "smallint" | "int2" => literal
                    .is_none_or(|s| {
                        s.trim_start_matches('-')
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    }),
                _ => false,
            };
            keeps.then_some(v)
        }
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(ValueSrc::Literal(n.to_string())),
            Value::SingleQuotedString(s) => Some(ValueSrc::Literal(string_value(s))),
            Value::Placeholder(p) => {
                p.strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .map(|index| ValueSrc::Param {
                        index,
                        negate: false,
                    })
            }
            Value::Null => Some(ValueSrc::Null),
            _ => None,
        },
        Expr::TypedString(ts) => match &ts.value.value {
            Value::SingleQuotedString(s) => Some(ValueSrc::Literal(string_value(s))),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match value_src(expr)? {
            ValueSrc::Literal(s)
                if !s.starts_with('-') && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
            {
                Some(ValueSrc::Literal(format!("-{s}")))
            }
            ValueSrc::Param {
                index,
                negate: false,
            } => Some(ValueSrc::Param {
                index,
                negate: true,
            }),
            _ => None,
        },
        _ => None,
    }
}
