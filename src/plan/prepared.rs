//! SQL-level PREPARE / EXECUTE / DEALLOCATE: the session keeps each prepared statement's
//! parsed text, and EXECUTE runs it with its `$n` replaced by the EXECUTE's arguments (cast to
//! the declared parameter types), planned like any statement, so each execution is routed by
//! its own values as the protocol's prepared statements are (PostgreSQL: prepare.c,
//! ExecuteQuery; EvaluateParams coerces each argument to its parameter's type).

use std::ops::ControlFlow;

use sqlparser::ast::{CastKind, DataType, Expr, Statement, Value, VisitMut, VisitorMut};

use crate::analyze::scope::ident_name;
use crate::error::{SgError, SgResult};

/// One prepared statement of a session.
#[derive(Debug, Clone)]
pub struct SqlPrepared {
    pub types: Vec<DataType>,
    pub statement: Statement,
}

#[derive(Debug, Clone)]
pub enum Command {
    Prepare {
        name: String,
        prepared: Box<SqlPrepared>,
    },
    Execute {
        name: String,
        args: Vec<Expr>,
    },
    /// None: DEALLOCATE ALL.
    Deallocate {
        name: Option<String>,
    },
}

/// The command, when the statement is one.
pub fn command(ast: &Statement) -> Option<Command> {
    match ast {
        // PostgreSQL's grammar prepares these only (gram.y PreparableStmt).
        Statement::Prepare {
            name,
            data_types,
            statement,
        } if matches!(
            **statement,
            Statement::Query(_)
                | Statement::Insert(_)
                | Statement::Update(_)
                | Statement::Delete(_)
                | Statement::Merge(_)
        ) =>
        {
            Some(Command::Prepare {
                name: ident_name(name),
                prepared: Box::new(SqlPrepared {
                    types: data_types.clone(),
                    statement: (**statement).clone(),
                }),
            })
        }
        Statement::Execute {
            name: Some(name),
            parameters,
            immediate: false,
            into,
            using,
            ..
        } if into.is_empty() && using.is_empty() => Some(Command::Execute {
            name: crate::analyze::scope::table_name(name),
            args: parameters.clone(),
        }),
        Statement::Deallocate { name, .. } => Some(Command::Deallocate {
            name: (!name.value.eq_ignore_ascii_case("all") || name.quote_style.is_some())
                .then(|| ident_name(name)),
        }),
        _ => None,
    }
}

fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The number of parameters the statement takes: its declared types, or its highest `$n`.
fn parameter_count(p: &SqlPrepared) -> usize {
    struct Max(usize);
    impl VisitorMut for Max {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Some(n) = placeholder(e) {
                self.0 = self.0.max(n);
            }
            ControlFlow::Continue(())
        }
    }
    let mut s = p.statement.clone();
    let mut m = Max(0);
    let _ = s.visit(&mut m);
    m.0.max(p.types.len())
}

/// The statement `name` runs for EXECUTE with `args`, printed.
pub fn bind(name: &str, p: &SqlPrepared, args: &[Expr]) -> SgResult<String> {
    let expected = parameter_count(p);
    if args.len() != expected {
        return Err(SgError::new(
            "42601",
            format!("wrong number of parameters for prepared statement \"{name}\""),
        )
        .with_detail(format!(
            "Expected {expected} parameters but got {}.",
            args.len()
        )));
    }
    struct Replace<'a> {
        args: &'a [Expr],
        types: &'a [DataType],
    }
    impl VisitorMut for Replace<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Some(n) = placeholder(e) {
                if let Some(arg) = self.args.get(n.wrapping_sub(1)) {
                    let value = Expr::Nested(Box::new(arg.clone()));
                    *e = match self.types.get(n - 1) {
                        Some(ty) => Expr::Cast {
                            kind: CastKind::DoubleColon,
                            expr: Box::new(value),
                            data_type: ty.clone(),
                            format: None,
                        },
                        None => value,
                    };
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut s = p.statement.clone();
    let _ = s.visit(&mut Replace {
        args,
        types: &p.types,
    });
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(sql: &str) -> Command {
        command(&crate::analyze::parse_sql(sql).unwrap().remove(0)).unwrap()
    }

    #[test]
    fn execute_runs_the_statement_with_its_arguments() {
        let Command::Prepare { name, prepared } =
            cmd("PREPARE q (int8, text) AS SELECT v FROM t WHERE id = $1 AND v <> $2")
        else {
            panic!()
        };
        assert_eq!(name, "q");
        let Command::Execute { name, args } = cmd("EXECUTE q(7, 'x')") else {
            panic!()
        };
        assert_eq!(
            bind(&name, &prepared, &args).unwrap(),
            "SELECT v FROM t WHERE id = (7)::INT8 AND v <> ('x')::TEXT"
        );
        let e = bind(&name, &prepared, &args[..1]).unwrap_err();
        assert_eq!(e.code, "42601");
        assert!(matches!(
            cmd("DEALLOCATE ALL"),
            Command::Deallocate { name: None }
        ));
        assert!(matches!(
            cmd("DEALLOCATE PREPARE q"),
            Command::Deallocate { name: Some(_) }
        ));
    }
}

#[cfg(test)]
mod insert_tests {
    use super::*;

    #[test]
    fn binds_insert_values() {
        let ast = crate::analyze::parse_sql(
            "PREPARE ins (text) AS INSERT INTO s (name) VALUES ($1) RETURNING id",
        )
        .unwrap()
        .remove(0);
        let Some(Command::Prepare { prepared, .. }) = command(&ast) else {
            panic!()
        };
        let args = vec![Expr::value(Value::SingleQuotedString("p1".into()))];
        assert_eq!(
            bind("ins", &prepared, &args).unwrap(),
            "INSERT INTO s (name) VALUES (('p1')::TEXT) RETURNING id"
        );
    }
}
