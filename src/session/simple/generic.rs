//! Simple-protocol SELECTs routed to one node and run there as prepared statements, their
//! lifted literals bound as text parameters (`analyze::generic` decides which may): the worker
//! parses and plans the statement's shape once per connection rather than at every execution.
//! Any error before the first reply frame runs the statement again as the client's own text, so
//! the client sees PostgreSQL's own answer to the text it sent (error positions included).

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::analyze::generic::literal_type;
use crate::analyze::shape::Literal;
use crate::analyze::Stmt;
use crate::error::SgResult;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::session::Session;

/// More parameters than this and the statement keeps the simple protocol (Bind counts them
/// in 16 bits; long IN lists gain nothing from a plan kept per text).
const MAX_PARAMS: usize = 1000;

/// What running the prepared form came to.
pub enum Generic {
    /// The client has the statement's whole reply.
    Done,
    /// Nothing reached the client: the statement runs as the text the client sent.
    AsText,
}

/// The worker's statement name for `shape` with parameters of `types`.
fn statement_name(shape: &str, types: &[u32]) -> String {
    format!(
        "sg_l{:016x}",
        crate::session::statement_hash((shape, types))
    )
}

/// Errors PostgreSQL raises while parsing, binding or revalidating a statement, which the
/// client's own text may meet differently or with a position: bad input for a type (22),
/// names and operators that do not resolve (42), a cached plan whose row type changed
/// (0A000), a statement the worker no longer has (26000: something deallocated it). Anything
/// else (a cancel, a timeout, a lost lock) is the statement's answer.
fn rerun_as_text(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("42") || code == "0A000" || code == "26000"
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Whether `stmt` with `params` lifted literals may run as a prepared statement: outside
    /// a transaction block (a failed Bind there would end the block), a statement that leaves
    /// nothing behind in the worker session.
    pub(in crate::session) fn generic_allowed(&self, stmt: &Stmt, params: usize) -> bool {
        // The shape read backslashes as standard strings do: a session that set
        // standard_conforming_strings keeps its text (the worker's own value is read in
        // `run_generic`).
        let standard_strings = !self
            .settings
            .keys()
            .any(|k| k.eq_ignore_ascii_case("standard_conforming_strings"));
        self.shared.config.prepare_simple_lookups
            && self.txn.txn.is_none()
            && params > 0
            && params <= MAX_PARAMS
            && standard_strings
            && !stmt.stable_time
            && !stmt.set_config
            && !stmt.sticky
    }

    /// The shape `stmt` (the whole of a simple query) runs under with `literals` bound.
    pub(in crate::session) fn generic_shape<'a>(
        &self,
        stmt: &'a Stmt,
        literals: &[Literal],
    ) -> Option<&'a str> {
        stmt.generic
            .as_deref()
            .filter(|_| self.generic_allowed(stmt, literals.len()))
    }

    /// Runs `shape` on `node` as a prepared statement bound to `literals`.
    pub(in crate::session) async fn run_generic(
        &mut self,
        node: usize,
        shape: &str,
        literals: &[Literal],
    ) -> SgResult<Generic> {
        let types: Vec<u32> = literals.iter().map(literal_type).collect();
        let name = statement_name(shape, &types);
        let values: Vec<Option<Bytes>> = literals
            .iter()
            .map(|l| Some(Bytes::copy_from_slice(l.text.as_bytes())))
            .collect();
        let mut frames = Vec::with_capacity(7);
        let c = match self.backend(node).await {
            Ok(c) => c,
            Err(e) => {
                self.error(&e);
                return Ok(Generic::Done);
            }
        };
        if c.server_params
            .get("standard_conforming_strings")
            .map(String::as_str)
            != Some("on")
        {
            return Ok(Generic::AsText);
        }
        if !c.prepared.contains(&name) {
            // A Parse that failed earlier may or may not have left the name defined; closing
            // a missing statement is not an error.
            frames.push(fe::build_target(fe::CLOSE, b'S', &name));
            let parse = fe::Parse {
                name: name.clone(),
                sql: shape.to_string(),
                types: fe::param_types(&types),
            };
            frames.push(fe::build_parse(&name, &parse));
            c.prepared.insert(name.clone());
        }
        frames.push(fe::build_bind_full("", &name, &[], &values, &[]));
        frames.push(fe::build_target(fe::DESCRIBE, b'P', ""));
        frames.push(fe::build_execute("", 0));
        frames.push(fe::sync());
        if let Err(e) = c.send(&frames).await {
            self.error(&e);
            return Ok(Generic::Done);
        }
        // Notices before the first row description wait: they are dropped with a failed
        // attempt, whose text runs again and says them again.
        let mut waiting: Vec<Frame> = Vec::new();
        let mut started = false;
        let mut again = false;
        // Worker positions point into the shape, not into the client's text.
        let position = std::mem::replace(&mut self.position, be::Position::Drop);
        let outcome = loop {
            let f = match self.backend(node).await {
                Ok(c) => c.read().await,
                Err(e) => Err(e),
            };
            let f = match f {
                Ok(f) => f,
                Err(e) => break Err(e),
            };
            match f.tag {
                be::READY_FOR_QUERY => break Ok(()),
                be::PARSE_COMPLETE | be::BIND_COMPLETE | be::CLOSE_COMPLETE | be::NO_DATA => {}
                be::ERROR_RESPONSE => {
                    if let Ok(c) = self.backend(node).await {
                        c.prepared.remove(&name);
                    }
                    if !started && rerun_as_text(&be::error_fields(&f).0) {
                        again = true;
                    } else {
                        for w in std::mem::take(&mut waiting) {
                            self.push(&w);
                        }
                        self.push(&f);
                        self.errored = true;
                    }
                }
                // Asynchronous messages are the session's, whatever becomes of the attempt.
                be::NOTIFICATION | be::PARAMETER_STATUS => {
                    if let Err(e) = self.push_flushing(&f).await {
                        break Err(e);
                    }
                }
                be::NOTICE_RESPONSE if !started => waiting.push(f),
                _ => {
                    if !started {
                        started = true;
                        for w in std::mem::take(&mut waiting) {
                            self.push(&w);
                        }
                    }
                    if let Err(e) = self.push_flushing(&f).await {
                        break Err(e);
                    }
                }
            }
        };
        self.position = position;
        if let Err(e) = outcome {
            self.error(&e);
            return Ok(Generic::Done);
        }
        Ok(if again {
            Generic::AsText
        } else {
            Generic::Done
        })
    }
}
