//! One extended-protocol batch: messages collected up to Sync or Flush, queued per node,
//! sent all at once, and the replies forwarded in the client's order.

use std::collections::{BTreeMap, BTreeSet};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{SgError, SgResult};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::session::Session;

use super::Prepared;

/// What the client gets back for one message, in order.
pub(super) enum Item {
    Local(Frame),
    Remote {
        node: usize,
        unit: Unit,
        forward: bool,
    },
    ExecConcat {
        nodes: Vec<usize>,
    },
    ExecSame {
        nodes: Vec<usize>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Parse,
    Bind,
    Close,
    DescribeStmt,
    DescribePortal,
    Execute,
}

#[derive(Default)]
pub(super) struct Batch {
    pub(super) items: Vec<Item>,
    pub(super) frames: BTreeMap<usize, Vec<Frame>>,
    pub(super) touched: BTreeSet<usize>,
    pub(super) failed: bool,
    /// Statements this batch prepared, by node: forgotten again if the batch fails, since a
    /// failed Parse leaves no statement behind.
    parsed: Vec<(usize, String)>,
    /// Bytes of client messages collected so far (bounded: `batch_limit`).
    bytes: usize,
}

/// The most a batch may collect before its Sync: four client messages of the largest size.
fn batch_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(4)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn extended_batch(&mut self, first: Frame) -> SgResult<()> {
        let mut batch = Batch::default();
        self.errored = false;
        let mut frame = first;
        loop {
            let tag = frame.tag;
            if tag == fe::SYNC || tag == fe::FLUSH {
                let sync = tag == fe::SYNC;
                self.batch_synced = sync;
                self.play(&mut batch, sync).await?;
                if sync {
                    self.finish_sync(&mut batch).await?;
                    return Ok(());
                }
                // Flush does not end the batch: the nodes it reached still wait for its Sync
                // (and skip messages up to it after an error), as PostgreSQL's own extended
                // query cycle runs to Sync (protocol-flow.html, "Extended Query").
                self.flush().await?;
                batch.bytes = 0;
            } else {
                batch.bytes += frame.raw.len();
                let limit = batch_limit(self.shared.config.max_message_bytes);
                if !batch.failed && batch.bytes > limit {
                    let e = SgError::new(
                    crate::error::code::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "extended-protocol messages before Sync exceed {limit} bytes (4 × server.max_message_bytes); send Sync more often"
                    ),
                );
                    batch.items.push(Item::Local(be::error(&e)));
                    batch.failed = true;
                    if let Some(t) = self.txn.txn.as_mut() {
                        t.failed = true;
                    }
                }
                if !batch.failed {
                    if let Err(e) = self.message(&mut batch, &frame).await {
                        batch.items.push(Item::Local(be::error(&e)));
                        batch.failed = true;
                        if let Some(t) = self.txn.txn.as_mut() {
                            t.failed = true;
                        }
                    }
                }
            }
            frame = match self.read_client().await? {
                Some(f) if f.tag != fe::TERMINATE => f,
                // The client left before Sync: the nodes this batch reached are mid-cycle and
                // must not go back to the pool.
                _ => {
                    for n in &batch.touched {
                        if let Some(c) = self.txn.conns.get_mut(n) {
                            c.broken = true;
                        }
                    }
                    self.txn.drop_broken();
                    return Ok(());
                }
            };
            if !fe::is_extended(frame.tag) {
                // PostgreSQL takes a Query before the batch's Sync (asyncpg sends COPY so
                // after a Parse/Describe/Flush): the batch ends as if synced, without a
                // ReadyForQuery of its own, and the message is read next.
                self.play(&mut batch, true).await?;
                self.finish_batch(&mut batch).await?;
                self.pending = Some(frame);
                return Ok(());
            }
        }
    }

    /// Queues `f` for `node`, preparing the statement there first if needed.
    pub(super) async fn queue(
        &mut self,
        b: &mut Batch,
        node: usize,
        prepared: Option<&Prepared>,
        f: Frame,
        item: Item,
    ) -> SgResult<()> {
        let c = self.backend(node).await?;
        let mut frames = Vec::new();
        let mut items = Vec::new();
        if let Some(p) = prepared {
            if !c.prepared.contains(&p.backend_name) {
                // Close first: a Parse that failed in an earlier batch may have left the name
                // defined or not; closing a missing statement is not an error.
                frames.push(fe::build_target(fe::CLOSE, b'S', &p.backend_name));
                frames.push(fe::build_parse(&p.backend_name, &p.parse));
                items.push(Item::Remote {
                    node,
                    unit: Unit::Close,
                    forward: false,
                });
                items.push(Item::Remote {
                    node,
                    unit: Unit::Parse,
                    forward: false,
                });
                c.prepared.insert(p.backend_name.clone());
                b.parsed.push((node, p.backend_name.clone()));
            }
        }
        frames.push(f);
        items.push(item);
        b.frames.entry(node).or_default().extend(frames);
        b.items.extend(items);
        b.touched.insert(node);
        Ok(())
    }

    /// Sends what the batch queued and forwards the replies in the client's order.
    pub(super) async fn play(&mut self, b: &mut Batch, sync: bool) -> SgResult<()> {
        let mut frames = std::mem::take(&mut b.frames);
        if sync {
            for n in &b.touched {
                frames.entry(*n).or_default();
            }
        }
        for (node, mut fs) in frames {
            fs.push(if sync { fe::sync() } else { fe::flush() });
            let c = self.backend(node).await?;
            if let Err(e) = c.send(&fs).await {
                b.items.clear();
                b.items.push(Item::Local(be::error(&e)));
                break;
            }
        }
        let items = std::mem::take(&mut b.items);
        for item in items {
            if b.failed && !matches!(item, Item::Local(_)) {
                continue;
            }
            match item {
                Item::Local(f) => {
                    if f.tag == be::ERROR_RESPONSE {
                        self.errored = true;
                    }
                    self.push(&f)
                }
                Item::Remote {
                    node,
                    unit,
                    forward,
                } => {
                    if self.unit(node, unit, forward).await? {
                        b.failed = true;
                    }
                }
                Item::ExecConcat { nodes } => {
                    let mut verb = String::from("SELECT");
                    let mut sum = 0u64;
                    for n in nodes {
                        match self.exec_collect(n, true).await? {
                            Some(tag) => {
                                let (v, c) = be::split_tag(&tag);
                                verb = v.to_string();
                                sum += c.unwrap_or(0);
                            }
                            None => {
                                // One error per statement: the other nodes' replies are
                                // read and dropped at Sync (`finish_batch`).
                                b.failed = true;
                                break;
                            }
                        }
                    }
                    if !b.failed {
                        self.push(&be::command_complete(&format!("{verb} {sum}")));
                    }
                }
                Item::ExecSame { nodes } => {
                    let mut first = None;
                    for (i, n) in nodes.into_iter().enumerate() {
                        match self.exec_collect(n, i == 0).await? {
                            Some(tag) if i == 0 => first = Some(tag),
                            Some(_) => {}
                            None => {
                                b.failed = true;
                                break;
                            }
                        }
                    }
                    if let (false, Some(tag)) = (b.failed, first) {
                        self.push(&be::command_complete(&tag));
                    }
                }
            }
        }
        if b.failed {
            if let Some(t) = self.txn.txn.as_mut() {
                t.failed = true;
            }
        }
        Ok(())
    }

    /// Reads one reply unit; true when it was an error.
    async fn unit(&mut self, node: usize, unit: Unit, forward: bool) -> SgResult<bool> {
        loop {
            let f = self.backend(node).await?.read().await?;
            match f.tag {
                be::ERROR_RESPONSE => {
                    self.errored = true;
                    self.push(&f);
                    return Ok(true);
                }
                be::NOTICE_RESPONSE | be::PARAMETER_STATUS | be::NOTIFICATION => {
                    self.push(&f);
                    continue;
                }
                _ => {}
            }
            let done = match unit {
                Unit::Parse | Unit::Bind | Unit::Close => true,
                Unit::DescribeStmt => f.tag != be::PARAMETER_DESCRIPTION,
                Unit::DescribePortal => true,
                Unit::Execute => matches!(
                    f.tag,
                    be::COMMAND_COMPLETE | be::EMPTY_QUERY | be::PORTAL_SUSPENDED
                ),
            };
            if forward {
                self.push_flushing(&f).await?;
            }
            if done {
                return Ok(false);
            }
        }
    }

    /// One node's Execute reply: rows forwarded, the tag returned (None on error).
    async fn exec_collect(&mut self, node: usize, report: bool) -> SgResult<Option<String>> {
        loop {
            let f = self.backend(node).await?.read().await?;
            match f.tag {
                be::ERROR_RESPONSE => {
                    self.errored = true;
                    self.push(&f);
                    return Ok(None);
                }
                be::COMMAND_COMPLETE => return Ok(Some(be::command_tag(&f)?.to_string())),
                be::EMPTY_QUERY => return Ok(Some(String::new())),
                be::DATA_ROW if !report => {}
                _ => self.push_flushing(&f).await?,
            }
        }
    }

    /// Sync: every node the batch touched finishes its implicit transaction; the client gets
    /// one ReadyForQuery.
    async fn finish_sync(&mut self, b: &mut Batch) -> SgResult<()> {
        self.finish_batch(b).await?;
        self.ready();
        self.txn.release();
        Ok(())
    }

    /// The end of a batch: its nodes' ReadyForQuery read, shardgate's implicit transaction
    /// ended.
    async fn finish_batch(&mut self, b: &mut Batch) -> SgResult<()> {
        if b.failed || self.errored {
            for (node, name) in std::mem::take(&mut b.parsed) {
                if let Some(c) = self.txn.conns.get_mut(&node) {
                    c.prepared.remove(&name);
                }
            }
        }
        let touched = std::mem::take(&mut b.touched);
        for node in touched {
            // Nodes that got frames were sent a Sync by play(); others get one now.
            let c = self.backend(node).await?;
            loop {
                let f = c.read().await?;
                if f.tag == be::READY_FOR_QUERY {
                    break;
                }
            }
        }
        // A batch that wrote on several nodes ran in an implicit transaction of shardgate's:
        // it ends here, as PostgreSQL's ends at Sync.
        self.end_implicit().await
    }
}
