//! Merge::Final: partial rows of every node buffered (bounded by server.max_buffered_rows),
//! sent as binary arrays to the final query on the merge node, whose reply goes to the client.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{code, SgError, SgResult};
use crate::execute::combine::Combiner;
use crate::execute::rows;
use crate::plan::merge::{self, Merge};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::session::Session;

use super::{expand_formats, parse_frame, MergeCall, WorkerError};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn merge_final(
        &mut self,
        call: &MergeCall<'_>,
    ) -> SgResult<Result<(), WorkerError>> {
        let Merge::Final {
            worker_sql,
            local,
            aggs,
            groups,
            ..
        } = call.merge
        else {
            return Err(SgError::internal("not a final merge"));
        };
        let merge_node = self.shared.config.default_node;
        // The client's statement is described before any node runs the worker part: a
        // statement PostgreSQL refuses at analysis runs nothing (a volatile function in an
        // aggregate's argument would otherwise run on the nodes, outside any block, for a
        // statement that fails).
        let described = match self
            .describe_on(merge_node, call.original, call.param_types)
            .await?
        {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        for &n in call.nodes {
            let frames = [
                parse_frame(worker_sql, call.param_types),
                fe::build_bind_full("", "", call.param_formats, call.params, &[1]),
                fe::build_target(fe::DESCRIBE, b'P', ""),
                fe::build_execute("", 0),
                fe::sync(),
            ];
            self.backend(n).await?.send(&frames).await?;
        }
        let bound = self.shared.config.max_buffered_rows;
        let mut types: Vec<u32> = Vec::new();
        let mut typmods: Vec<i32> = Vec::new();
        let mut columns: Vec<rows::ArrayColumn> = Vec::new();
        let mut combiner: Option<Combiner> = None;
        let mut failure = None;
        let mut total = 0usize;
        let mut over = false;
        for &n in call.nodes {
            let backend = self.backend(n).await?;
            loop {
                let f = backend.read().await?;
                match f.tag {
                    be::ROW_DESCRIPTION if types.is_empty() => {
                        let fields = rows::parse_row_description(&f)?;
                        types = fields.iter().map(|x| x.type_oid).collect();
                        typmods = fields.iter().map(|x| x.type_mod).collect();
                        columns = (0..types.len()).map(|_| Default::default()).collect();
                        combiner = local
                            .as_ref()
                            .and_then(|l| Combiner::new(l, aggs, *groups, &types, &described));
                    }
                    be::DATA_ROW if failure.is_none() && !over => {
                        total += 1;
                        if total > bound {
                            over = true;
                            continue;
                        }
                        match combiner.as_mut() {
                            Some(c) => c.add(&f)?,
                            None => rows::append_row(&f, &mut columns)?,
                        }
                    }
                    be::ERROR_RESPONSE if failure.is_none() => failure = Some(WorkerError(f)),
                    be::READY_FOR_QUERY => break,
                    _ => {}
                }
            }
        }
        if let Some(e) = failure {
            return ours(e);
        }
        let outputs: Vec<(String, Option<String>)> = described
            .iter()
            .map(|f| (f.name.clone(), f.type_sql()))
            .collect();
        if over {
            return Err(SgError::new(
                code::INSUFFICIENT_RESOURCES,
                format!("more than {bound} partial rows to merge (server.max_buffered_rows)"),
            ));
        }
        if call.collated && types.iter().any(|t| rows::is_text(*t)) {
            return Err(rows::collated_text());
        }
        if let Some(c) = combiner {
            let frames = match c.finish(&described, call.result_formats, call.describe) {
                Ok(frames) => frames,
                // A value past its type (22003), raised as the final query's cast would.
                Err(e) => return Ok(Err(WorkerError(be::error(&e)))),
            };
            for f in &frames {
                self.push_flushing(f).await?;
            }
            return Ok(Ok(()));
        }
        let mut type_names = Vec::with_capacity(types.len());
        for (i, oid) in types.iter().enumerate() {
            let t = postgres_types::Type::from_oid(*oid)
                .filter(|t| !matches!(t.kind(), postgres_types::Kind::Array(_)))
                .and_then(|_| rows::type_sql(*oid, typmods.get(i).copied().unwrap_or(-1)))
                .ok_or_else(|| SgError::unsupported(format!("merging values of type oid {oid}")))?;
            type_names.push(t);
        }
        let p = call.params.len();
        let final_sql = merge::finish(call.merge, &type_names, p + 1, &outputs)?;
        let mut params: Vec<Option<Bytes>> = call.params.to_vec();
        let mut formats = expand_formats(call.param_formats, p);
        let mut ptypes: Vec<u32> = (0..p)
            .map(|i| call.param_types.get(i).copied().unwrap_or(0))
            .collect();
        for (i, col) in columns.iter().enumerate() {
            params.push(Some(col.finish(types[i])));
            formats.push(1);
            ptypes.push(0);
        }
        let mut frames = vec![
            parse_frame(&final_sql, &ptypes),
            fe::build_bind_full("", "", &formats, &params, call.result_formats),
        ];
        if call.describe {
            frames.push(fe::build_target(fe::DESCRIBE, b'P', ""));
        }
        frames.push(fe::build_execute("", 0));
        frames.push(fe::sync());
        self.backend(merge_node).await?.send(&frames).await?;
        let mut failure = None;
        loop {
            let f = self.backend(merge_node).await?.read().await?;
            match f.tag {
                be::PARSE_COMPLETE | be::BIND_COMPLETE | be::NO_DATA => {}
                be::READY_FOR_QUERY => break,
                be::ERROR_RESPONSE => {
                    tracing::debug!("final query failed: {final_sql}");
                    failure.get_or_insert(WorkerError(f));
                }
                _ if failure.is_none() => self.push_flushing(&f).await?,
                _ => {}
            }
        }
        match failure {
            Some(e) => ours(e),
            None => Ok(Ok(())),
        }
    }
}

/// A worker part or final query that PostgreSQL cannot analyse, for a statement PostgreSQL
/// described without complaint (the original is valid): the fault is in shardgate's rewrite,
/// so the client gets 0A000 naming it rather than an error PostgreSQL would not give.
fn ours(e: WorkerError) -> SgResult<Result<(), WorkerError>> {
    let (code, message) = be::error_fields(&e.0);
    let rewrite_fault = matches!(
        code.as_str(),
        "42601"
            | "42803"
            | "42P10"
            | "42703"
            | "42804"
            | "42883"
            | "42725"
            | "42P18"
            | "42P20"
            | "42P22"
            | "42809"
            | "42P09"
    );
    if rewrite_fault {
        return Err(SgError::unsupported(format!(
            "this query over rows of several nodes: its merge does not apply to it ({code}: {message})"
        )));
    }
    Ok(Err(e))
}
