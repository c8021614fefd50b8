//! SQL-level PREPARE / EXECUTE / DEALLOCATE in the simple query protocol (`plan::prepared`):
//! the statements live in the session, not on a worker connection, so pooling loses nothing.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{SgError, SgResult};
use crate::plan::prepared::{bind, command, Command};
use crate::protocol::backend as be;

/// At most this many SQL-level prepared statements per session.
const MAX_PREPARED: usize = 10_000;

/// What a statement asks of the session's SQL-level prepared statements.
pub enum Prepared {
    /// Not one of PREPARE, EXECUTE, DEALLOCATE.
    No,
    /// Answered (or its error reported): whether it succeeded.
    Done(bool),
    /// EXECUTE: this statement runs in its place.
    Run(String),
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// `EXPLAIN [options] EXECUTE name(args)`: the EXPLAIN of the statement the EXECUTE
    /// would run, as PostgreSQL explains it (explain.c ExplainExecuteQuery).
    pub fn explain_execute(&mut self, explain: &sqlparser::ast::Statement) -> SgResult<Prepared> {
        let sqlparser::ast::Statement::Explain { statement, .. } = explain else {
            return Ok(Prepared::No);
        };
        let sql = match self.sql_prepared(Some(statement))? {
            Prepared::Run(sql) => sql,
            other => return Ok(other),
        };
        let inner = crate::analyze::parse_sql(&sql)
            .ok()
            .and_then(|mut v| v.pop())
            .ok_or_else(|| SgError::internal("an executed statement did not parse"))?;
        let mut e = explain.clone();
        if let sqlparser::ast::Statement::Explain { statement, .. } = &mut e {
            **statement = inner;
        }
        Ok(Prepared::Run(e.to_string()))
    }

    pub fn sql_prepared(&mut self, ast: Option<&sqlparser::ast::Statement>) -> SgResult<Prepared> {
        let Some(cmd) = ast.and_then(command) else {
            return Ok(Prepared::No);
        };
        let fail = |s: &mut Self, e: SgError| {
            s.error(&e);
            Ok(Prepared::Done(false))
        };
        match cmd {
            Command::Prepare { name, prepared } => {
                if self.sql_prepared.contains_key(&name) {
                    return fail(
                        self,
                        SgError::new(
                            "42P05",
                            format!("prepared statement \"{name}\" already exists"),
                        ),
                    );
                }
                if self.sql_prepared.len() >= MAX_PREPARED {
                    return fail(
                        self,
                        SgError::new(
                            "54000",
                            format!("more than {MAX_PREPARED} prepared statements in one session (DEALLOCATE some)"),
                        ),
                    );
                }
                self.sql_prepared.insert(name, *prepared);
                self.push(&be::command_complete("PREPARE"));
                Ok(Prepared::Done(true))
            }
            Command::Execute { name, args } => {
                let Some(p) = self.sql_prepared.get(&name) else {
                    return fail(
                        self,
                        SgError::new(
                            "26000",
                            format!("prepared statement \"{name}\" does not exist"),
                        ),
                    );
                };
                match bind(&name, p, &args) {
                    Ok(sql) => Ok(Prepared::Run(sql)),
                    Err(e) => fail(self, e),
                }
            }
            Command::Deallocate { name: None } => {
                self.sql_prepared.clear();
                self.push(&be::command_complete("DEALLOCATE ALL"));
                Ok(Prepared::Done(true))
            }
            Command::Deallocate { name: Some(name) } => {
                if self.sql_prepared.remove(&name).is_none() {
                    return fail(
                        self,
                        SgError::new(
                            "26000",
                            format!("prepared statement \"{name}\" does not exist"),
                        ),
                    );
                }
                self.push(&be::command_complete("DEALLOCATE"));
                Ok(Prepared::Done(true))
            }
        }
    }
}
