//! Parameters written into a statement's text as typed literals, for the few statements that
//! shardgate runs through its simple-protocol path although the client bound them (a psycopg
//! server-side cursor's `DECLARE ... FOR <query with $1>` over several nodes). A text value
//! becomes `CAST('value' AS type)` (or an untyped literal, as an unspecified parameter type is
//! resolved from context like one); a binary value is read by its type's send format
//! (the types' `*send` functions in src/backend/utils/adt), for the common types only.

use bytes::Bytes;
use sqlparser::ast::{Expr, Statement, Value, VisitMut, VisitorMut};
use std::ops::ControlFlow;

use crate::error::{SgError, SgResult};
use crate::execute::rows::{format_of, type_sql};
use crate::quote::literal;
use crate::shardmap::{KeyType, KeyValue};

/// `sql` with each `$n` replaced by parameter n's value.
pub fn inline_params(
    sql: &str,
    params: &[Option<Bytes>],
    formats: &[i16],
    types: &[u32],
) -> SgResult<String> {
    let mut stmts = crate::analyze::parse_sql(sql).map_err(SgError::syntax)?;
    let [stmt] = stmts.as_mut_slice() else {
        return Err(SgError::internal(
            "inlining parameters into several statements",
        ));
    };
    let mut exprs = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let ty = types.get(i).copied().unwrap_or(0);
        exprs.push(expr(&value_sql(p.as_ref(), format_of(formats, i), ty)?)?);
    }
    let mut v = Inline { exprs, bad: None };
    let _ = stmt.visit(&mut v);
    if let Some(e) = v.bad {
        return Err(e);
    }
    Ok(Statement::to_string(stmt))
}

struct Inline {
    exprs: Vec<Expr>,
    bad: Option<SgError>,
}

impl VisitorMut for Inline {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(v) = e {
            if let Value::Placeholder(p) = &v.value {
                let n = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
                match n
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| self.exprs.get(i))
                {
                    Some(x) => *e = x.clone(),
                    None => {
                        // PostgreSQL's 08P01 for a Bind with too few parameters.
                        self.bad = Some(SgError::protocol(format!(
                            "there is no parameter {p} in the Bind"
                        )));
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn expr(sql: &str) -> SgResult<Expr> {
    sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SgError::internal(format!("an inlined parameter did not parse: {e}")))
}

fn cast(text: &str, ty: u32) -> String {
    match type_sql(ty, -1) {
        Some(t) => format!("CAST({} AS {t})", literal(text)),
        None => literal(text),
    }
}

/// One parameter as SQL.
fn value_sql(v: Option<&Bytes>, format: i16, ty: u32) -> SgResult<String> {
    let Some(b) = v else {
        return Ok(match type_sql(ty, -1) {
            Some(t) => format!("CAST(NULL AS {t})"),
            None => "NULL".into(),
        });
    };
    if format == 0 {
        let text = std::str::from_utf8(b)
            .map_err(|_| SgError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        return Ok(cast(text, ty));
    }
    let key = |k: KeyType| KeyValue::parse_binary(k, b).map(|v| v.to_text());
    let fixed = |n: usize| -> SgResult<&[u8]> {
        (b.len() == n)
            .then_some(&b[..])
            .ok_or_else(|| SgError::protocol("incorrect binary data format in a parameter"))
    };
    let text = match ty {
        16 => (fixed(1)?[0] != 0).to_string(),
        20 | 21 | 23 => key(KeyType::Int8)?,
        700 => f32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default()).to_string(),
        701 => f64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default()).to_string(),
        17 => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("\\x{hex}")
        }
        19 | 25 | 1042 | 1043 | 114 => key(KeyType::Text)?,
        3802 => match b.split_first() {
            Some((1, rest)) => std::str::from_utf8(rest)
                .map_err(|_| SgError::protocol("invalid jsonb parameter"))?
                .to_string(),
            _ => {
                return Err(SgError::protocol(
                    "unsupported jsonb version in a parameter",
                ))
            }
        },
        2950 => key(KeyType::Uuid)?,
        1082 => key(KeyType::Date)?,
        1114 => key(KeyType::Timestamp)?,
        1184 => format!("{}+00", key(KeyType::Timestamp)?),
        1700 => numeric(b)?,
        _ => {
            return Err(SgError::unsupported(format!(
                "a binary parameter of type {} in this statement (send it in text format)",
                type_sql(ty, -1).unwrap_or_else(|| format!("oid {ty}"))
            )))
        }
    };
    Ok(cast(&text, ty))
}

/// numeric_send's format: digit count, weight, sign, display scale, then base-10000 digits.
fn numeric(b: &[u8]) -> SgResult<String> {
    let bad = || SgError::protocol("incorrect binary data format in a numeric parameter");
    let word = |i: usize| -> SgResult<i16> {
        b.get(i * 2..i * 2 + 2)
            .map(|w| i16::from_be_bytes([w[0], w[1]]))
            .ok_or_else(bad)
    };
    let (n, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err(bad()),
    }
    let digits: Vec<i16> = (0..n.max(0) as usize)
        .map(|i| word(4 + i))
        .collect::<SgResult<_>>()?;
    if digits.iter().any(|d| !(0..10000).contains(d)) || dscale < 0 {
        return Err(bad());
    }
    // Integer part: digit groups at weights weight..=0; fraction: groups below 0.
    let mut int = String::new();
    for w in (0..=weight.max(-1)).rev() {
        let d = digits.get((weight - w) as usize).copied().unwrap_or(0);
        if int.is_empty() {
            int = d.to_string();
        } else {
            int += &format!("{d:04}");
        }
    }
    if int.is_empty() {
        int = "0".into();
    }
    let mut frac = String::new();
    let mut w = -1i32;
    while frac.len() < dscale as usize {
        let idx = i32::from(weight) - w;
        let d = usize::try_from(idx)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0);
        frac += &format!("{d:04}");
        w -= 1;
    }
    frac.truncate(dscale as usize);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Ok(match frac.is_empty() {
        true => format!("{sign}{int}"),
        false => format!("{sign}{int}.{frac}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> String {
        let mut b = Vec::new();
        for w in [n, weight, sign as i16, dscale].iter().chain(digits) {
            b.extend_from_slice(&w.to_be_bytes());
        }
        numeric(&b).unwrap_or_default()
    }

    #[test]
    fn numerics_read_as_postgresql_prints_them() {
        assert_eq!(num(2, 0, 0, 2, &[12, 5000]), "12.50");
        assert_eq!(num(2, 1, 0x4000, 0, &[1, 2345]), "-12345");
        assert_eq!(num(1, -1, 0, 5, &[1234]), "0.12340");
        assert_eq!(num(1, -2, 0, 8, &[12]), "0.00000012");
        assert_eq!(num(0, 0, 0, 0, &[]), "0");
        assert_eq!(num(1, 2, 0, 0, &[7]), "700000000");
        assert_eq!(num(0, 0, 0xC000, 0, &[]), "NaN");
    }

    #[test]
    fn parameters_become_typed_literals() {
        let p = |s: &str| Some(Bytes::from(s.to_string()));
        let got = inline_params(
            "DECLARE c CURSOR FOR SELECT * FROM t WHERE k > $1 AND v = $2 AND w = $1",
            &[p("5"), p("it's")],
            &[],
            &[20, 0],
        )
        .unwrap_or_default();
        assert_eq!(
            got,
            "DECLARE c CURSOR FOR SELECT * FROM t WHERE k > CAST('5' AS INT8) AND v = 'it''s' AND w = CAST('5' AS INT8)"
        );
        let bin = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 9]));
        let got = inline_params("SELECT $1", &[bin, None], &[1], &[20, 25]).unwrap_or_default();
        assert_eq!(got, "SELECT CAST('9' AS INT8)");
        assert!(inline_params("SELECT $3", &[], &[], &[]).is_err());
    }
}
