//! INSERT ... SELECT into a distributed or reference table, as Citus does it by pulling to the
//! coordinator: the SELECT runs once on its node, each row is routed by its key and streamed into
//! the target nodes with COPY (text format), in bounded batches.

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{SgError, SgResult};
use crate::execute::rows;
use crate::plan::Plan;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;

/// CopyData is sent once this much is buffered for a node.
pub(crate) const COPY_CHUNK: usize = 64 * 1024;

struct Target<'a> {
    table: &'a str,
    columns: &'a [String],
    key_pos: Option<usize>,
    source_sql: &'a str,
    source_node: usize,
    target_nodes: &'a [usize],
}

/// One value in COPY's text format (copy.c CopyAttributeOutText).
pub(crate) fn copy_escape(out: &mut BytesMut, v: &[u8]) {
    for &c in v {
        match c {
            b'\\' => out.put_slice(b"\\\\"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            c => out.put_u8(c),
        }
    }
}

/// One row in COPY's text format: tab-separated, `\N` for NULL, a newline at the end.
pub(crate) fn copy_line<V: AsRef<[u8]>>(out: &mut BytesMut, cols: &[Option<V>]) {
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            out.put_u8(b'\t');
        }
        match c {
            None => out.put_slice(b"\\N"),
            Some(v) => copy_escape(out, v.as_ref()),
        }
    }
    out.put_u8(b'\n');
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn insert_select(&mut self, plan: &Plan) -> SgResult<()> {
        let Plan::InsertSelect {
            table,
            columns,
            key_pos,
            source_sql,
            source_node,
            target_nodes,
            source_reads_nothing,
        } = plan
        else {
            return Err(SgError::internal("not an INSERT ... SELECT plan"));
        };
        let p = Target {
            table,
            columns,
            key_pos: *key_pos,
            source_sql,
            source_node: *source_node,
            target_nodes,
        };
        if self.txn.txn.as_ref().is_some_and(|t| !t.implicit) && !*source_reads_nothing {
            self.error(&SgError::unsupported(
                "INSERT ... SELECT into a distributed or reference table inside a transaction block",
            ));
            return Ok(());
        }
        let map = &self.shared.config.shardmap;
        let table = map
            .get(p.table)
            .ok_or_else(|| SgError::internal("insert target vanished"))?;
        let key_type = match p.key_pos {
            Some(_) => Some(table.key_type()?),
            None => None,
        };
        let copy_sql = if p.columns.is_empty() {
            format!("COPY {} FROM STDIN", crate::quote::ident(p.table))
        } else {
            let cols: Vec<String> = p.columns.iter().map(|c| crate::quote::ident(c)).collect();
            format!(
                "COPY {} ({}) FROM STDIN",
                crate::quote::ident(p.table),
                cols.join(", ")
            )
        };
        // The SELECT runs on a connection of its own: a target may live on the same node.
        let mut src = self.shared.acquire_for(&self.user, p.source_node).await?;
        src.sync_settings(&self.settings).await?;
        src.send(&[fe::build_query(p.source_sql)]).await?;
        let mut buffers: BTreeMap<usize, BytesMut> = BTreeMap::new();
        let mut failure: Option<Frame> = None;
        loop {
            let f = src.read().await?;
            match f.tag {
                be::DATA_ROW if failure.is_none() => {
                    let cols = rows::columns(&f)?;
                    let mut line = BytesMut::new();
                    copy_line(&mut line, &cols);
                    let targets: Vec<usize> = match (p.key_pos, key_type) {
                        (Some(k), Some(ty)) => {
                            let key = match cols.get(k) {
                                Some(Some(v)) => {
                                    let s = String::from_utf8_lossy(v);
                                    match crate::shardmap::KeyValue::parse_text(ty, &s) {
                                        Ok(v) => Some(v),
                                        Err(e) => {
                                            failure = Some(be::error(&e));
                                            continue;
                                        }
                                    }
                                }
                                _ => None,
                            };
                            match table.shard_for_row(key.as_ref()) {
                                Ok(shard) => vec![table.node_of(shard)],
                                Err(e) => {
                                    failure = Some(be::error(&e));
                                    continue;
                                }
                            }
                        }
                        _ => p.target_nodes.to_vec(),
                    };
                    for n in targets {
                        let opened = buffers.contains_key(&n);
                        if !opened {
                            if let Err(e) = self.open_copy(n, &copy_sql).await? {
                                failure = Some(e);
                                break;
                            }
                        }
                        let buf = buffers.entry(n).or_default();
                        buf.put_slice(&line);
                        if buf.len() >= COPY_CHUNK {
                            let data = Frame::build(fe::COPY_DATA, buf);
                            buf.clear();
                            self.backend(n).await?.send(&[data]).await?;
                        }
                    }
                }
                be::ERROR_RESPONSE if failure.is_none() => failure = Some(f),
                be::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        drop(src);
        // Reference tables: every node gets the (possibly empty) copy.
        if p.key_pos.is_none() && failure.is_none() {
            for &n in p.target_nodes {
                if let std::collections::btree_map::Entry::Vacant(e) = buffers.entry(n) {
                    e.insert(BytesMut::new());
                    if let Err(err) = self.open_copy(n, &copy_sql).await? {
                        failure = Some(err);
                    }
                }
            }
        }
        let mut counts = Vec::new();
        for (n, buf) in buffers {
            let mut frames = Vec::new();
            if failure.is_none() {
                if !buf.is_empty() {
                    frames.push(Frame::build(fe::COPY_DATA, &buf));
                }
                frames.push(Frame::build(fe::COPY_DONE, &[]));
            } else {
                let mut b = BytesMut::new();
                fe::put_cstr(&mut b, "INSERT ... SELECT failed");
                frames.push(Frame::build(fe::COPY_FAIL, &b));
            }
            let c = self.backend(n).await?;
            c.send(&frames).await?;
            loop {
                let f = c.read().await?;
                match f.tag {
                    be::COMMAND_COMPLETE => {
                        counts.push(be::split_tag(be::command_tag(&f)?).1.unwrap_or(0));
                    }
                    be::ERROR_RESPONSE if failure.is_none() => failure = Some(f),
                    be::READY_FOR_QUERY => break,
                    _ => {}
                }
            }
        }
        self.txn.release();
        if let Some(f) = failure {
            self.push(&f);
            // The rows already copied to other nodes must not commit with the block.
            self.statement_failed();
            return Ok(());
        }
        let n: u64 = if p.key_pos.is_none() {
            counts.first().copied().unwrap_or(0)
        } else {
            counts.iter().sum()
        };
        self.push(&be::command_complete(&format!("INSERT 0 {n}")));
        Ok(())
    }

    /// Starts COPY FROM STDIN on a node; Err is the node's error.
    pub(crate) async fn open_copy(
        &mut self,
        node: usize,
        sql: &str,
    ) -> SgResult<Result<(), Frame>> {
        let c = self.backend(node).await?;
        c.send(&[fe::build_query(sql)]).await?;
        loop {
            let f = c.read().await?;
            match f.tag {
                be::COPY_IN => return Ok(Ok(())),
                be::ERROR_RESPONSE => {
                    loop {
                        if c.read().await?.tag == be::READY_FOR_QUERY {
                            break;
                        }
                    }
                    return Ok(Err(f));
                }
                _ => {}
            }
        }
    }
}
