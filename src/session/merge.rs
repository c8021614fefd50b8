//! Runs merge plans: the worker part on every node over raw connections, then either a
//! streaming k-way merge (ORDER BY/LIMIT) or the final query on the merge node (aggregates,
//! GROUP BY, DISTINCT) over the partial rows, sent as binary arrays.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{code, SgError, SgResult};
use crate::execute::rows;
use crate::plan::merge::{self, Merge};
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
}

/// A worker error: forwarded to the client as the worker sent it.
struct WorkerError(Frame);

enum Next {
    Row(Frame),
    Done,
    Failed(WorkerError),
}

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
                self.txn.conns.clear();
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

    async fn merge_sort(&mut self, call: &MergeCall<'_>) -> SgResult<Result<(), WorkerError>> {
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

    async fn merge_final(&mut self, call: &MergeCall<'_>) -> SgResult<Result<(), WorkerError>> {
        let Merge::Final { worker_sql, .. } = call.merge else {
            return Err(SgError::internal("not a final merge"));
        };
        let merge_node = self.shared.config.default_node;
        let outputs = match self
            .describe_on(merge_node, call.original, call.param_types)
            .await?
        {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let outputs: Vec<(String, Option<String>)> = outputs
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    postgres_types::Type::from_oid(f.type_oid).map(|t| t.name().to_string()),
                )
            })
            .collect();
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
        let mut columns: Vec<Vec<Option<Bytes>>> = Vec::new();
        let mut failure = None;
        let mut total = 0usize;
        let mut over = false;
        for &n in call.nodes {
            loop {
                let f = self.backend(n).await?.read().await?;
                match f.tag {
                    be::ROW_DESCRIPTION if types.is_empty() => {
                        types = rows::parse_row_description(&f)?
                            .iter()
                            .map(|x| x.type_oid)
                            .collect();
                        columns = vec![Vec::new(); types.len()];
                    }
                    be::DATA_ROW if failure.is_none() && !over => {
                        total += 1;
                        if total > bound {
                            over = true;
                            continue;
                        }
                        for (i, c) in rows::columns(&f)?.into_iter().enumerate() {
                            if let Some(col) = columns.get_mut(i) {
                                col.push(c);
                            }
                        }
                    }
                    be::ERROR_RESPONSE if failure.is_none() => failure = Some(WorkerError(f)),
                    be::READY_FOR_QUERY => break,
                    _ => {}
                }
            }
        }
        if let Some(e) = failure {
            return Ok(Err(e));
        }
        if over {
            return Err(SgError::new(
                code::INSUFFICIENT_RESOURCES,
                format!("more than {bound} partial rows to merge (server.max_buffered_rows)"),
            ));
        }
        let mut type_names = Vec::with_capacity(types.len());
        for oid in &types {
            let t = postgres_types::Type::from_oid(*oid)
                .filter(|t| !matches!(t.kind(), postgres_types::Kind::Array(_)))
                .ok_or_else(|| SgError::unsupported(format!("merging values of type oid {oid}")))?;
            type_names.push(t.name().to_string());
        }
        let p = call.params.len();
        let final_sql = merge::finish(call.merge, &type_names, p + 1, &outputs)?;
        let mut params: Vec<Option<Bytes>> = call.params.to_vec();
        let mut formats = expand_formats(call.param_formats, p);
        let mut ptypes: Vec<u32> = (0..p)
            .map(|i| call.param_types.get(i).copied().unwrap_or(0))
            .collect();
        for (i, col) in columns.iter().enumerate() {
            params.push(Some(rows::binary_array(types[i], col)));
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
        Ok(failure.map_or(Ok(()), Err))
    }
}
