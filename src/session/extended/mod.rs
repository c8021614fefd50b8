//! The extended query protocol. Client messages are collected up to Sync (or Flush); each Bind
//! is routed by its parameter values; the messages go to the chosen nodes under shardgate's
//! own statement names, all at once, and the replies come back in the client's order.
//! This module holds the prepared statements and portals; `batch` collects and plays a batch,
//! `message` handles each client message.

mod batch;
mod held;
mod message;
mod portal_sql;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::{Analysis, Kind, Stmt};
use crate::error::{code, SgError, SgResult};
use crate::plan::{Combine, Plan, SessionOp};
use crate::protocol::frontend as fe;

pub struct Prepared {
    pub parse: fe::Parse,
    pub analysis: Arc<Analysis>,
    /// The statement's name on every worker connection (the same text → the same name).
    pub backend_name: String,
}

impl Prepared {
    fn stmt(&self) -> Option<&Stmt> {
        self.analysis.stmts.first()
    }

    fn session_op(&self) -> Option<SessionOp> {
        match self.stmt().map(|s| &s.kind) {
            Some(Kind::Begin) => Some(SessionOp::Begin),
            Some(Kind::Commit) => Some(SessionOp::Commit),
            Some(Kind::Rollback) => Some(SessionOp::Rollback),
            Some(Kind::TxnOther) => Some(SessionOp::TxnOther),
            Some(Kind::Set(_)) => Some(SessionOp::Set),
            _ => None,
        }
    }
}

pub struct Portal {
    pub stmt: Arc<Prepared>,
    pub run: PortalRun,
    /// The rows of a multi-node result fetched with a row limit, not yet sent (`held`).
    pub held: Option<held::Held>,
}

pub enum PortalRun {
    Nodes {
        nodes: Vec<usize>,
        combine: Combine,
    },
    Session(SessionOp),
    /// Rewritten per-node statements, run when executed; an INSERT's parts go with the
    /// client's Bind (its parameters and result formats).
    PerNode {
        plan: Plan,
        bind: Option<fe::Bind>,
    },
    /// Partitioning DDL (`Session::partition_ddl`), run when executed.
    PartitionDdl,
    /// DECLARE CURSOR, with the Bind's parameters written into its text (`plan::inline`),
    /// run when executed as the simple protocol runs it (`Session::declare_cursor`).
    Declare {
        sql: String,
    },
    /// A scatter-gather merge, run when executed.
    Merge {
        plan: Plan,
        bind: fe::Bind,
    },
    /// EXPLAIN, answered by shardgate when executed.
    Explain {
        plan: Plan,
        has_params: bool,
    },
}

fn backend_name(p: &fe::Parse) -> String {
    format!("sg_{:016x}", super::statement_hash((&p.sql, &p.types)))
}

/// Bytes a session's prepared statements may be assumed to hold together (their analyses,
/// `analyze::cache::cost`): four times the shared cache's bound.
fn statements_limit(cache_bytes: usize) -> usize {
    cache_bytes.saturating_mul(4)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Keeps a prepared statement under its name, within the session's bound (54000 past it,
    /// as PostgreSQL answers when a backend's memory runs out).
    fn keep_statement(&mut self, p: Prepared) -> SgResult<()> {
        let cost = crate::analyze::cache::cost(&p.parse.sql);
        let old = self
            .statements
            .get(&p.parse.name)
            .map_or(0, |o| crate::analyze::cache::cost(&o.parse.sql));
        let limit = statements_limit(self.shared.config.analysis_cache_bytes);
        if self.statements_bytes - old + cost > limit {
            return Err(SgError::new(
                code::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "prepared statements of this session would hold more than {} MB (4 × server.analysis_cache_bytes); close some",
                    limit >> 20
                ),
            ));
        }
        self.statements_bytes = self.statements_bytes - old + cost;
        self.statements.insert(p.parse.name.clone(), Arc::new(p));
        Ok(())
    }

    fn forget_statement(&mut self, name: &str) {
        if let Some(p) = self.statements.remove(name) {
            let cost = crate::analyze::cache::cost(&p.parse.sql);
            self.statements_bytes = self.statements_bytes.saturating_sub(cost);
        }
    }

    /// A bound INSERT that leaves columns to shardgate's defaults (`plan::fill`): the
    /// statement rewritten with parameters appended for them, and the Bind with their values
    /// (text format). The rewritten text is the same for every execution, so each worker
    /// connection prepares it once.
    async fn fill_bound(
        &mut self,
        prepared: &Arc<Prepared>,
        bind: &fe::Bind,
    ) -> SgResult<Option<(Arc<Prepared>, fe::Bind)>> {
        let Some(stmt) = prepared.stmt().filter(|s| s.insert_into.is_some()) else {
            return Ok(None);
        };
        let n = bind.params.len();
        let Some(filled) = self.fill(stmt, &prepared.parse.sql, Some(n)).await? else {
            return Ok(None);
        };
        let mut formats: Vec<i16> = match bind.param_formats.as_slice() {
            [] => vec![0; n],
            [one] => vec![*one; n],
            many => many.to_vec(),
        };
        let mut params = bind.params.clone();
        for v in filled.values {
            formats.push(0);
            params.push(v.map(bytes::Bytes::from));
        }
        let frame = fe::build_bind_full(
            &bind.portal,
            &bind.statement,
            &formats,
            &params,
            &bind.result_formats,
        );
        let bind = fe::bind(&frame)?;
        let parse = fe::Parse {
            name: prepared.parse.name.clone(),
            sql: filled.sql,
            types: prepared.parse.types.clone(),
        };
        let analysis = self
            .shared
            .cache
            .extended(&parse.sql, &self.shared.config.shardmap)
            .analysis;
        let p = Prepared {
            backend_name: backend_name(&parse),
            analysis,
            parse,
        };
        Ok(Some((Arc::new(p), bind)))
    }

    fn statement(&self, name: &str) -> SgResult<Arc<Prepared>> {
        self.statements.get(name).cloned().ok_or_else(|| {
            SgError::new(
                code::UNDEFINED_PSTATEMENT,
                format!("prepared statement \"{name}\" does not exist"),
            )
        })
    }
}

fn no_portal(name: &str) -> SgError {
    SgError::new(
        code::UNDEFINED_CURSOR,
        format!("portal \"{name}\" does not exist"),
    )
}
