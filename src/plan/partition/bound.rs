//! A partition's bounds as `FOR VALUES` writes them, read into shard-map values.

use sqlparser::ast::{Expr, ForValues, PartitionBoundValue, UnaryOperator};

use crate::error::{SgError, SgResult};
use crate::shardmap::{Bound, KeyType, KeyValue};

/// A partition's bounds, as `FOR VALUES` gives them.
#[derive(Debug, Clone, PartialEq)]
pub enum PartBound {
    Hash { modulus: u64, remainder: u64 },
    Range { from: Bound, to: Bound },
    List(Vec<KeyValue>),
    Default,
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            sqlparser::ast::Value::Number(n, _) => Some(n.clone()),
            sqlparser::ast::Value::SingleQuotedString(s) => Some(s.replace("''", "'")),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => literal_text(expr).map(|t| format!("-{t}")),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => literal_text(expr),
        _ => None,
    }
}

fn bound_value(e: &Expr, ty: KeyType) -> SgResult<KeyValue> {
    let text = literal_text(e).ok_or_else(|| {
        SgError::unsupported(format!("partition bound {e} (write it as a constant)"))
    })?;
    KeyValue::parse_text(ty, &text)
}

fn range_bound(b: &[PartitionBoundValue], ty: KeyType) -> SgResult<Bound> {
    match b {
        [PartitionBoundValue::MinValue] => Ok(Bound::Min),
        [PartitionBoundValue::MaxValue] => Ok(Bound::Max),
        [PartitionBoundValue::Expr(e)] => Ok(Bound::Value(bound_value(e, ty)?)),
        _ => Err(SgError::unsupported(
            "a range bound of several columns (shardgate partitions on one column)",
        )),
    }
}

/// Reads `FOR VALUES` for a table partitioned by `method` on a key of type `ty`.
pub fn bound(fv: &ForValues, method: &str, ty: KeyType) -> SgResult<PartBound> {
    let wrong = || {
        SgError::new(
            "42P16",
            format!("invalid bound specification for a {method} partition"),
        )
    };
    Ok(match fv {
        ForValues::Default => PartBound::Default,
        ForValues::With { modulus, remainder } if method == "hash" => {
            if *modulus == 0 {
                return Err(SgError::new(
                    "42P16",
                    "modulus for hash partition must be an integer value greater than zero",
                ));
            }
            if remainder >= modulus {
                return Err(SgError::new(
                    "42P16",
                    "remainder for hash partition must be less than modulus",
                ));
            }
            PartBound::Hash {
                modulus: *modulus,
                remainder: *remainder,
            }
        }
        ForValues::From { from, to } if method == "range" => PartBound::Range {
            from: range_bound(from, ty)?,
            to: range_bound(to, ty)?,
        },
        ForValues::In(values) if method == "list" => {
            let mut out = Vec::new();
            for v in values {
                if matches!(v, Expr::Value(x) if matches!(x.value, sqlparser::ast::Value::Null)) {
                    return Err(SgError::unsupported("a list partition for NULL keys"));
                }
                out.push(bound_value(v, ty)?);
            }
            PartBound::List(out)
        }
        _ => return Err(wrong()),
    })
}
