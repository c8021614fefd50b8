//! Runs merge plans: the worker part on every node over raw connections, then either a
//! streaming k-way merge (ORDER BY/LIMIT) or the final query on the merge node (aggregates,
//! GROUP BY, DISTINCT) over the partial rows, sent as binary arrays.

mod partials;
mod sort;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{code, SgResult};
use crate::execute::rows;
use crate::plan::merge::Merge;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;

/// One execution of a merge plan with the client's parameters and formats.
pub struct MergeCall<'a> {
    pub nodes: &'a [usize],
    pub merge: &'a Merge,
    /// The client's statement text, described to learn output names and types.
    pub original: &'a str,
    pub param_types: &'a [u32],
    pub params: &'a [Option<Bytes>],
    pub param_formats: &'a [i16],
    pub result_formats: &'a [i16],
    /// Send a RowDescription first (simple protocol, or a Describe the client asked for).
    pub describe: bool,
    /// The statement orders or groups text under a collation other than C (`Stmt::collated`).
    pub collated: bool,
}

/// A worker error: forwarded to the client as the worker sent it.
struct WorkerError(Frame);

fn parse_frame(sql: &str, types: &[u32]) -> Frame {
    fe::build_parse(
        "",
        &fe::Parse {
            name: String::new(),
            sql: sql.to_string(),
            types: fe::param_types(types),
        },
    )
}

fn expand_formats(formats: &[i16], n: usize) -> Vec<i16> {
    (0..n).map(|i| rows::format_of(formats, i)).collect()
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn run_merge(&mut self, call: MergeCall<'_>) -> SgResult<()> {
        // Rewritten parts may not mention every parameter (a LIMIT $2 becomes a number, a
        // HAVING parameter leaves the worker part): give each its type as PostgreSQL infers it
        // for the original statement.
        let unknown = call.param_types.len() < call.params.len() || call.param_types.contains(&0);
        let described;
        let call = if !call.params.is_empty() && unknown {
            match self.param_oids(call.original, call.param_types).await? {
                Ok(oids) => {
                    described = oids;
                    MergeCall {
                        param_types: &described,
                        ..call
                    }
                }
                Err(WorkerError(f)) => {
                    self.push(&f);
                    self.errored = true;
                    return Ok(());
                }
            }
        } else {
            call
        };
        let r = match call.merge {
            Merge::Sort { .. } => self.merge_sort(&call).await,
            Merge::Final { .. } => self.merge_final(&call).await,
        };
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(WorkerError(f))) => {
                self.push(&f);
                self.errored = true;
                if let Some(t) = self.txn.txn.as_mut() {
                    t.failed = true;
                }
                Ok(())
            }
            Err(e) => {
                // Connections in an unknown state are dropped, not reused.
                for n in call
                    .nodes
                    .iter()
                    .chain(std::iter::once(&self.shared.config.default_node))
                {
                    if let Some(c) = self.txn.conns.get_mut(n) {
                        c.broken = true;
                    }
                }
                // A transaction block that lost a connection can only be rolled back.
                if let Some(t) = self.txn.txn.as_mut() {
                    t.failed = true;
                }
                self.txn.drop_broken();
                if e.code == code::CLIENT_GONE {
                    return Err(e);
                }
                self.error(&e);
                Ok(())
            }
        }
    }

    /// A statement's result columns as a worker describes them; Err is the worker's error.
    pub async fn describe_fields(
        &mut self,
        node: usize,
        sql: &str,
        types: &[u32],
    ) -> SgResult<Result<Vec<rows::Field>, Frame>> {
        Ok(self
            .describe_on(node, sql, types)
            .await?
            .map_err(|WorkerError(f)| f))
    }

    /// The parameter types PostgreSQL infers for a statement (its ParameterDescription).
    async fn param_oids(
        &mut self,
        sql: &str,
        types: &[u32],
    ) -> SgResult<Result<Vec<u32>, WorkerError>> {
        let node = self.shared.config.default_node;
        Ok(self
            .describe_statement(node, sql, types)
            .await?
            .map(|(p, _)| p))
    }

    async fn describe_on(
        &mut self,
        node: usize,
        sql: &str,
        types: &[u32],
    ) -> SgResult<Result<Vec<rows::Field>, WorkerError>> {
        Ok(self
            .describe_statement(node, sql, types)
            .await?
            .map(|(_, f)| f))
    }

    /// Describes a statement on a node: its parameter types and result columns (none for a
    /// statement without rows).
    async fn describe_statement(
        &mut self,
        node: usize,
        sql: &str,
        types: &[u32],
    ) -> SgResult<Result<(Vec<u32>, Vec<rows::Field>), WorkerError>> {
        let frames = [
            parse_frame(sql, types),
            fe::build_target(fe::DESCRIBE, b'S', ""),
            fe::sync(),
        ];
        self.backend(node).await?.send(&frames).await?;
        let (mut params, mut fields, mut err) = (Vec::new(), Vec::new(), None);
        loop {
            let f = self.backend(node).await?.read().await?;
            match f.tag {
                be::PARAMETER_DESCRIPTION => {
                    let mut r = crate::protocol::Reader::new(f.body());
                    let n = r.i16()?.max(0) as usize;
                    for _ in 0..n {
                        params.push(r.i32()? as u32);
                    }
                }
                be::ROW_DESCRIPTION => fields = rows::parse_row_description(&f)?,
                be::ERROR_RESPONSE => err = Some(WorkerError(f)),
                be::READY_FOR_QUERY => {
                    return Ok(match err {
                        Some(e) => Err(e),
                        None => Ok((params, fields)),
                    })
                }
                _ => {}
            }
        }
    }
}
