//! The extended query protocol. Client messages are collected up to Sync (or Flush); each Bind
//! is routed by its parameter values; the messages go to the chosen nodes under shardgate's
//! own statement names, all at once, and the replies come back in the client's order.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::classify::SetAction;
use crate::analyze::{Analysis, Kind, Stmt};
use crate::error::{code, SgError, SgResult};
use crate::plan::route::{plan, Values};
use crate::plan::{Combine, Plan, SessionOp};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;

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
            Some(Kind::Set(a)) if *a != SetAction::Local => Some(SessionOp::Set),
            _ => None,
        }
    }
}

pub struct Portal {
    pub stmt: Arc<Prepared>,
    pub run: PortalRun,
}

pub enum PortalRun {
    Nodes {
        nodes: Vec<usize>,
        combine: Combine,
    },
    Session(SessionOp),
    /// Rewritten per-node statements, run when executed.
    PerNode(Plan),
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

/// What the client gets back for one message, in order.
enum Item {
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
enum Unit {
    Parse,
    Bind,
    Close,
    DescribeStmt,
    DescribePortal,
    Execute,
}

#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    frames: BTreeMap<usize, Vec<Frame>>,
    touched: BTreeSet<usize>,
    failed: bool,
    /// Statements this batch prepared, by node: forgotten again if the batch fails, since a
    /// failed Parse leaves no statement behind.
    parsed: Vec<(usize, String)>,
}

fn backend_name(p: &fe::Parse) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.sql.hash(&mut h);
    p.types.hash(&mut h);
    format!("sg_{:016x}", h.finish())
}

fn no_params_description() -> Frame {
    let mut b = BytesMut::new();
    b.put_i16(0);
    Frame::build(be::PARAMETER_DESCRIPTION, &b)
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
                }
                return Ok(());
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
            frame = match self.read_client().await? {
                Some(f) => f,
                None => return Ok(()),
            };
            if !fe::is_extended(frame.tag) {
                return Err(SgError::protocol(format!(
                    "unexpected message type '{}' inside an extended query",
                    frame.tag as char
                )));
            }
        }
    }

    /// Queues `f` for `node`, preparing the statement there first if needed.
    async fn queue(
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

    async fn message(&mut self, b: &mut Batch, f: &Frame) -> SgResult<()> {
        match f.tag {
            fe::PARSE => {
                let p = fe::parse(f)?;
                let analyzed = self
                    .shared
                    .cache
                    .extended(&p.sql, &self.shared.config.shardmap);
                if analyzed.analysis.stmts.len() > 1 {
                    return Err(SgError::syntax(
                        "cannot insert multiple commands into a prepared statement",
                    ));
                }
                let prepared = Prepared {
                    backend_name: backend_name(&p),
                    analysis: analyzed.analysis,
                    parse: p,
                };
                self.statements
                    .insert(prepared.parse.name.clone(), Arc::new(prepared));
                b.items.push(Item::Local(be::simple(be::PARSE_COMPLETE)));
            }
            fe::BIND => {
                let bind = fe::bind(f)?;
                let prepared = self.statement(&bind.statement)?;
                let run = if let Some(op) = prepared.session_op() {
                    b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                    PortalRun::Session(op)
                } else {
                    let values = Values {
                        literals: &[],
                        params: &bind.params,
                        formats: &bind.param_formats,
                    };
                    let stmt = prepared
                        .stmt()
                        .ok_or_else(|| SgError::internal("empty prepared statement"))?;
                    let p = plan(
                        stmt,
                        &prepared.parse.sql,
                        &values,
                        &self.shared.config.shardmap,
                    )?;
                    self.check_write(&p, stmt.kind.is_write())?;
                    match p {
                        Plan::Route { node, .. } => {
                            self.bind_on(b, &prepared, &bind, vec![node], Combine::Concat)
                                .await?
                        }
                        Plan::Scatter { nodes, combine, .. } => {
                            self.bind_on(b, &prepared, &bind, nodes, combine).await?
                        }
                        Plan::PerNode { .. } | Plan::InsertSelect { .. } => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            PortalRun::PerNode(p)
                        }
                        Plan::Session(op) => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            PortalRun::Session(op)
                        }
                        Plan::Merge { .. } => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            PortalRun::Merge {
                                plan: p,
                                bind: bind.clone(),
                            }
                        }
                        Plan::Explain { .. } => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            PortalRun::Explain {
                                plan: p,
                                has_params: !bind.params.is_empty(),
                            }
                        }
                    }
                };
                self.portals.insert(
                    bind.portal.clone(),
                    Portal {
                        stmt: prepared,
                        run,
                    },
                );
            }
            fe::DESCRIBE => {
                let (kind, name) = fe::target(f)?;
                if kind == b'S' {
                    let prepared = self.statement(&name)?;
                    if prepared.session_op().is_some() {
                        b.items.push(Item::Local(no_params_description()));
                        b.items.push(Item::Local(be::simple(be::NO_DATA)));
                    } else {
                        let node = self.home_node(&prepared);
                        let frame = fe::build_target(fe::DESCRIBE, b'S', &prepared.backend_name);
                        let item = Item::Remote {
                            node,
                            unit: Unit::DescribeStmt,
                            forward: true,
                        };
                        self.queue(b, node, Some(&prepared), frame, item).await?;
                    }
                } else {
                    let portal = self.portals.get(&name).ok_or_else(|| no_portal(&name))?;
                    match &portal.run {
                        PortalRun::Nodes { nodes, .. } => {
                            let node = nodes.first().copied().unwrap_or(0);
                            let frame = fe::build_target(fe::DESCRIBE, b'P', &name);
                            let item = Item::Remote {
                                node,
                                unit: Unit::DescribePortal,
                                forward: true,
                            };
                            self.queue(b, node, None, frame, item).await?;
                        }
                        PortalRun::Merge { bind, .. } => {
                            let formats = bind.result_formats.clone();
                            let stmt = portal.stmt.clone();
                            self.play(b, false).await?;
                            let types = fe::read_param_types(&stmt.parse.types);
                            let d = self.shared.config.default_node;
                            match self.describe_fields(d, &stmt.parse.sql, &types).await? {
                                Ok(fields) if fields.is_empty() => {
                                    self.push(&be::simple(be::NO_DATA))
                                }
                                Ok(fields) => self.push(&crate::execute::rows::row_description(
                                    &fields,
                                    fields.len(),
                                    &formats,
                                )),
                                Err(f) => {
                                    self.push(&f);
                                    self.errored = true;
                                    b.failed = true;
                                }
                            }
                        }
                        PortalRun::Explain { .. } => {
                            b.items.push(Item::Local(super::explain::description()))
                        }
                        _ => b.items.push(Item::Local(be::simple(be::NO_DATA))),
                    }
                }
            }
            fe::EXECUTE => {
                let (name, max_rows) = fe::execute(f)?;
                let portal = self.portals.get(&name).ok_or_else(|| no_portal(&name))?;
                let stmt = portal.stmt.clone();
                match &portal.run {
                    PortalRun::Nodes { nodes, combine } => {
                        let (nodes, combine) = (nodes.clone(), *combine);
                        if nodes.len() == 1 {
                            let item = Item::Remote {
                                node: nodes[0],
                                unit: Unit::Execute,
                                forward: true,
                            };
                            self.queue(b, nodes[0], None, f.clone(), item).await?;
                        } else {
                            if max_rows != 0 {
                                return Err(SgError::unsupported("fetching a multi-node result in batches (Execute with a row limit)"));
                            }
                            for &n in &nodes {
                                self.backend(n).await?;
                                b.frames.entry(n).or_default().push(f.clone());
                                b.touched.insert(n);
                            }
                            b.items.push(match combine {
                                Combine::Concat => Item::ExecConcat { nodes },
                                Combine::Same => Item::ExecSame { nodes },
                            });
                        }
                    }
                    PortalRun::Session(op) => {
                        let op = op.clone();
                        self.play(b, false).await?;
                        if let Some(s) = stmt.stmt() {
                            let s = s.clone();
                            self.session_op(op, &s, &stmt.parse.sql).await?;
                        }
                    }
                    PortalRun::Merge {
                        plan: Plan::Merge { nodes, merge, .. },
                        bind,
                    } => {
                        let (nodes, merge, bind) = (nodes.clone(), merge.clone(), bind.clone());
                        if max_rows != 0 {
                            return Err(SgError::unsupported("fetching a multi-node result in batches (Execute with a row limit)"));
                        }
                        self.play(b, false).await?;
                        let types = fe::read_param_types(&stmt.parse.types);
                        self.errored = false;
                        self.run_merge(super::merge::MergeCall {
                            nodes: &nodes,
                            merge: &merge,
                            original: &stmt.parse.sql,
                            param_types: &types,
                            params: &bind.params,
                            param_formats: &bind.param_formats,
                            result_formats: &bind.result_formats,
                            describe: false,
                        })
                        .await?;
                        if self.errored {
                            b.failed = true;
                        }
                    }
                    PortalRun::Merge { .. } => {}
                    PortalRun::Explain {
                        plan:
                            Plan::Explain {
                                inner,
                                analyze,
                                sql,
                            },
                        has_params,
                    } => {
                        let (inner, analyze, sql, has_params) =
                            (inner.clone(), *analyze, sql.clone(), *has_params);
                        self.play(b, false).await?;
                        self.explain(&inner, analyze, &sql, false, has_params)
                            .await?;
                    }
                    PortalRun::Explain { .. } => {}
                    PortalRun::PerNode(p) => {
                        let p = p.clone();
                        self.play(b, false).await?;
                        if !self.run_per_node(&p).await? {
                            b.failed = true;
                        }
                    }
                }
            }
            fe::CLOSE => {
                let (kind, name) = fe::target(f)?;
                if kind == b'S' {
                    self.statements.remove(&name);
                } else {
                    self.portals.remove(&name);
                }
                b.items.push(Item::Local(be::simple(be::CLOSE_COMPLETE)));
            }
            _ => {}
        }
        Ok(())
    }

    fn statement(&self, name: &str) -> SgResult<Arc<Prepared>> {
        self.statements.get(name).cloned().ok_or_else(|| {
            SgError::new(
                code::UNDEFINED_PSTATEMENT,
                format!("prepared statement \"{name}\" does not exist"),
            )
        })
    }

    /// Where a statement is described: a node holding its first table, else the default node.
    fn home_node(&self, p: &Prepared) -> usize {
        let map = &self.shared.config.shardmap;
        p.stmt()
            .and_then(|s| s.accesses.first())
            .and_then(|a| map.get(&a.table))
            .filter(|t| !t.is_reference())
            .and_then(|t| t.nodes(map.node_count).first().copied())
            .unwrap_or(map.default_node)
    }

    async fn bind_on(
        &mut self,
        b: &mut Batch,
        prepared: &Arc<Prepared>,
        bind: &fe::Bind,
        nodes: Vec<usize>,
        combine: Combine,
    ) -> SgResult<PortalRun> {
        for (i, &node) in nodes.iter().enumerate() {
            let frame = fe::build_bind(&bind.portal, &prepared.backend_name, bind);
            let item = Item::Remote {
                node,
                unit: Unit::Bind,
                forward: i == 0,
            };
            self.queue(b, node, Some(prepared), frame, item).await?;
        }
        Ok(PortalRun::Nodes { nodes, combine })
    }

    /// Sends what the batch queued and forwards the replies in the client's order.
    async fn play(&mut self, b: &mut Batch, sync: bool) -> SgResult<()> {
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
                            None => b.failed = true,
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
                            None => b.failed = true,
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
        self.ready();
        self.txn.release();
        Ok(())
    }
}

fn no_portal(name: &str) -> SgError {
    SgError::new(
        code::UNDEFINED_CURSOR,
        format!("portal \"{name}\" does not exist"),
    )
}
