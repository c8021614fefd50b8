//! Merge::Sort: the worker query on every node and a streaming k-way merge of their rows by
//! the hidden sort keys, one current row per node, then OFFSET/LIMIT.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{SgError, SgResult};
use crate::execute::rows;
use crate::plan::merge::Merge;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::session::Session;

use super::{expand_formats, parse_frame, MergeCall, WorkerError};

enum Next {
    Row(Frame),
    Done,
    Failed(WorkerError),
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Reads until ReadyForQuery, returning the first error.
    async fn finish_node(&mut self, node: usize) -> SgResult<Option<Frame>> {
        let mut err = None;
        loop {
            let f = self.backend(node).await?.read().await?;
            match f.tag {
                be::READY_FOR_QUERY => return Ok(err),
                be::ERROR_RESPONSE if err.is_none() => err = Some(f),
                _ => {}
            }
        }
    }

    async fn next_row(&mut self, node: usize) -> SgResult<Next> {
        loop {
            let f = self.backend(node).await?.read().await?;
            match f.tag {
                be::DATA_ROW => return Ok(Next::Row(f)),
                be::COMMAND_COMPLETE | be::EMPTY_QUERY | be::PORTAL_SUSPENDED => {
                    return Ok(Next::Done)
                }
                be::ERROR_RESPONSE => return Ok(Next::Failed(WorkerError(f))),
                be::NOTICE_RESPONSE => self.push(&f),
                _ => {}
            }
        }
    }

    pub(super) async fn merge_sort(
        &mut self,
        call: &MergeCall<'_>,
    ) -> SgResult<Result<(), WorkerError>> {
        let Merge::Sort {
            worker_sql,
            keys,
            limit,
            offset,
        } = call.merge
        else {
            return Err(SgError::internal("not a sort merge"));
        };
        let Some(&first) = call.nodes.first() else {
            return Err(SgError::internal("merge without nodes"));
        };
        let fields = match self
            .describe_on(first, worker_sql, call.param_types)
            .await?
        {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let visible = fields.len().saturating_sub(keys.len());
        let key_oids: Vec<u32> = fields[visible..].iter().map(|f| f.type_oid).collect();
        for oid in &key_oids {
            rows::sortable(*oid, self.shared.c_collation)?;
            if call.collated && rows::is_text(*oid) {
                return Err(rows::collated_text());
            }
        }
        let mut formats = expand_formats(call.result_formats, visible);
        formats.extend(std::iter::repeat_n(1, keys.len()));
        for &n in call.nodes {
            let frames = [
                parse_frame(worker_sql, call.param_types),
                fe::build_bind_full("", "", call.param_formats, call.params, &formats),
                fe::build_execute("", 0),
                fe::sync(),
            ];
            self.backend(n).await?.send(&frames).await?;
        }
        if call.describe {
            self.push(&rows::row_description(
                &fields,
                visible,
                call.result_formats,
            ));
        }
        // One current row per node: (visible row, sort keys).
        let mut heads: Vec<Option<(Frame, Vec<Option<Bytes>>)>> =
            Vec::with_capacity(call.nodes.len());
        let mut failure = None;
        for &n in call.nodes {
            match self.next_row(n).await? {
                Next::Row(f) => {
                    let cols = rows::columns(&f)?;
                    heads.push(Some((f, cols[visible.min(cols.len())..].to_vec())));
                }
                Next::Done => heads.push(None),
                Next::Failed(e) => {
                    failure.get_or_insert(e);
                    heads.push(None);
                }
            }
        }
        let mut skipped = 0u64;
        let mut sent = 0u64;
        while failure.is_none() && limit.is_none_or(|l| sent < l) {
            let mut best: Option<usize> = None;
            for (i, h) in heads.iter().enumerate() {
                let Some((_, k)) = h else { continue };
                best = match best {
                    None => Some(i),
                    Some(b) => {
                        let bk = heads[b].as_ref().map(|(_, k)| k.as_slice()).unwrap_or(&[]);
                        if rows::keys_cmp(keys, &key_oids, k, bk) == std::cmp::Ordering::Less {
                            Some(i)
                        } else {
                            Some(b)
                        }
                    }
                };
            }
            let Some(b) = best else { break };
            if let Some((row, _)) = heads[b].take() {
                if skipped < *offset {
                    skipped += 1;
                } else {
                    let out = rows::truncate_row(&row, visible)?;
                    self.push_flushing(&out).await?;
                    sent += 1;
                }
            }
            match self.next_row(call.nodes[b]).await? {
                Next::Row(f) => {
                    let cols = rows::columns(&f)?;
                    heads[b] = Some((f, cols[visible.min(cols.len())..].to_vec()));
                }
                Next::Done => {}
                Next::Failed(e) => failure = Some(e),
            }
        }
        for &n in call.nodes {
            if let Some(e) = self.finish_node(n).await? {
                failure.get_or_insert(WorkerError(e));
            }
        }
        if let Some(e) = failure {
            return Ok(Err(e));
        }
        self.push(&be::command_complete(&format!("SELECT {sent}")));
        Ok(Ok(()))
    }
}
