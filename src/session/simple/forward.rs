//! Sending simple Query messages to nodes and forwarding or combining their replies (one node,
//! several nodes with their command tags summed or held, COPY FROM STDIN).

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{SgError, SgResult};
use crate::plan::Combine;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::session::Session;

/// What forwarding one node's reply to a simple query found.
#[derive(Default)]
pub struct Outcome {
    pub error: bool,
    pub tags: Vec<String>,
    /// Frames held back (Combine::Same): sent only if every node succeeds.
    pub held: Vec<Frame>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything to the client as it comes.
    Forward,
    /// Rows to the client; RowDescription only from the first node; tags kept for summing.
    Concat { first: bool },
    /// Everything held back; errors reported.
    Hold,
    /// Only errors and notices reach the client.
    Quiet,
    /// Nothing reaches the client: another node's error already did (one error per
    /// statement, not one per node).
    Silent,
}

/// The client's Bind for per-node parts sent in the extended protocol: each part gets the
/// parameters its text uses (`Plan::PerNode::params`) and the client's result formats.
pub struct Bound<'a> {
    pub bind: &'a fe::Bind,
    /// The statement's declared parameter types (0 or missing: PostgreSQL infers it).
    pub types: &'a [u32],
    pub params: &'a [Vec<usize>],
}

impl Bound<'_> {
    /// Parse, Bind, Execute and Sync of part `i`.
    fn frames(&self, i: usize, sql: &str) -> SgResult<Vec<Frame>> {
        let none = Vec::new();
        let used = self.params.get(i).unwrap_or(&none);
        let mut types = Vec::with_capacity(used.len());
        let mut formats = Vec::with_capacity(used.len());
        let mut values = Vec::with_capacity(used.len());
        for &u in used {
            types.push(self.types.get(u).copied().unwrap_or(0));
            formats.push(crate::execute::rows::format_of(&self.bind.param_formats, u));
            values.push(
                self.bind
                    .params
                    .get(u)
                    .cloned()
                    .ok_or_else(|| SgError::protocol(format!("Bind lacks parameter ${}", u + 1)))?,
            );
        }
        let parse = fe::Parse {
            name: String::new(),
            sql: sql.to_string(),
            types: fe::param_types(&types),
        };
        Ok(vec![
            fe::build_parse("", &parse),
            fe::build_bind_full("", "", &formats, &values, &self.bind.result_formats),
            fe::build_execute("", 0),
            fe::sync(),
        ])
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn route_text(&mut self, node: usize, sql: &str) -> SgResult<()> {
        self.forward_simple(node, fe::build_query(sql)).await
    }

    /// Sends one Query to one node and forwards the whole reply.
    pub async fn forward_simple(&mut self, node: usize, q: Frame) -> SgResult<()> {
        let sent = match self.backend(node).await {
            Ok(c) => c.send(std::slice::from_ref(&q)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            self.error(&e);
            return Ok(());
        }
        match self.drain(node, Mode::Forward).await {
            Ok(o) => {
                if o.error {
                    // The caller decides on it (a SET the worker refused is not recorded).
                    self.errored = true;
                    if let Some(t) = self.txn.txn.as_mut() {
                        t.failed = true;
                    }
                }
            }
            Err(e) => self.error(&e),
        }
        Ok(())
    }

    /// Runs statements on several nodes (all sent before any reply is read, so nodes work in
    /// parallel) and combines the replies. True when every node succeeded.
    pub async fn multi(
        &mut self,
        parts: Vec<(usize, Vec<String>)>,
        combine: Combine,
    ) -> SgResult<bool> {
        let sent = self.send_parts(&parts, None).await;
        let mut ok = sent.len() == parts.len();
        let mut tags = Vec::new();
        let mut held = Vec::new();
        for (i, node) in sent.iter().enumerate() {
            let mode = match (combine, ok) {
                (_, false) => Mode::Silent,
                (Combine::Concat, true) => Mode::Concat { first: i == 0 },
                (Combine::Same, true) if i == 0 => Mode::Hold,
                (Combine::Same, true) => Mode::Quiet,
            };
            match self.drain(*node, mode).await {
                Ok(o) => {
                    if o.error {
                        ok = false;
                    }
                    if i == 0 {
                        held = o.held;
                    }
                    tags.push(o.tags);
                }
                Err(e) => {
                    if ok {
                        self.error(&e);
                    }
                    ok = false;
                }
            }
        }
        if !ok {
            self.statement_failed();
            return Ok(false);
        }
        match combine {
            Combine::Same => {
                // A multi-statement part (a table and its partitions) answers as one statement.
                let mut tagged = false;
                for f in held {
                    if f.tag == be::COMMAND_COMPLETE {
                        if tagged {
                            continue;
                        }
                        tagged = true;
                    }
                    self.push_flushing(&f).await?;
                }
            }
            Combine::Concat => {
                let first: Vec<String> = tags.first().cloned().unwrap_or_default();
                for (k, tag) in first.iter().enumerate() {
                    let (verb, n) = be::split_tag(tag);
                    let tag = match n {
                        Some(_) => {
                            let sum: u64 = tags
                                .iter()
                                .filter_map(|t| t.get(k))
                                .filter_map(|t| be::split_tag(t).1)
                                .sum();
                            format!("{verb} {sum}")
                        }
                        None => tag.clone(),
                    };
                    self.push(&be::command_complete(&tag));
                }
            }
        }
        Ok(true)
    }

    /// Sends each node its statements as one Query, all before any reply is read (so the
    /// nodes work in parallel); the nodes sent to, in order, stopping at the first failure
    /// (reported).
    async fn send_parts(
        &mut self,
        parts: &[(usize, Vec<String>)],
        bound: Option<&Bound<'_>>,
    ) -> Vec<usize> {
        let mut sent = Vec::new();
        for (i, (node, sqls)) in parts.iter().enumerate() {
            let sql = sqls.join(";\n");
            let frames = match bound {
                Some(b) => b.frames(i, &sql),
                None => Ok(vec![fe::build_query(&sql)]),
            };
            let r = match (frames, self.backend(*node).await) {
                (Ok(frames), Ok(c)) => c.send(&frames).await,
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            match r {
                Ok(()) => sent.push(*node),
                Err(e) => {
                    self.error(&e);
                    break;
                }
            }
        }
        sent
    }

    /// Runs an INSERT ... RETURNING split by node and returns its rows in VALUES order:
    /// `order` names each row's node, and each node returns its own rows in order (none:
    /// node by node). The rows are held (as many as the statement has VALUES rows). True
    /// when every node succeeded. With `bound`, the parts go as Parse/Bind/Execute with the
    /// client's parameters and result formats, and no RowDescription comes back (the
    /// client's Describe answered it).
    pub async fn multi_in_order(
        &mut self,
        parts: &[(usize, Vec<String>)],
        order: &[usize],
        bound: Option<&Bound<'_>>,
    ) -> SgResult<bool> {
        let sent = self.send_parts(parts, bound).await;
        let mut ok = sent.len() == parts.len();
        let mut rows: std::collections::BTreeMap<usize, std::collections::VecDeque<Frame>> =
            Default::default();
        let mut description = None;
        let mut total = 0u64;
        for node in sent {
            let mode = if ok { Mode::Hold } else { Mode::Silent };
            match self.drain(node, mode).await {
                Ok(o) if !o.error => {
                    for f in o.held {
                        match f.tag {
                            be::ROW_DESCRIPTION => {
                                description.get_or_insert(f);
                            }
                            be::DATA_ROW => rows.entry(node).or_default().push_back(f),
                            _ => {}
                        }
                    }
                    total += o
                        .tags
                        .iter()
                        .filter_map(|t| be::split_tag(t).1)
                        .sum::<u64>();
                }
                Ok(_) => ok = false,
                Err(e) => {
                    if ok {
                        self.error(&e);
                    }
                    ok = false;
                }
            }
        }
        if !ok {
            self.statement_failed();
            return Ok(false);
        }
        if let Some(d) = description {
            self.push(&d);
        }
        for n in order {
            if let Some(f) = rows.get_mut(n).and_then(|q| q.pop_front()) {
                self.push_flushing(&f).await?;
            }
        }
        for q in rows.into_values() {
            for f in q {
                self.push_flushing(&f).await?;
            }
        }
        self.push(&be::command_complete(&format!("INSERT 0 {total}")));
        Ok(true)
    }

    /// Reads one node's reply to a simple query up to ReadyForQuery.
    pub async fn drain(&mut self, node: usize, mode: Mode) -> SgResult<Outcome> {
        let mut o = Outcome::default();
        loop {
            let f = {
                let c = self.backend(node).await?;
                c.read().await?
            };
            match f.tag {
                be::READY_FOR_QUERY => return Ok(o),
                be::ERROR_RESPONSE => {
                    if !o.error && mode != Mode::Silent {
                        self.push_flushing(&f).await?;
                    }
                    o.error = true;
                }
                be::COMMAND_COMPLETE => match mode {
                    Mode::Forward => self.push_flushing(&f).await?,
                    Mode::Hold => {
                        o.tags.push(be::command_tag(&f)?.to_string());
                        o.held.push(f)
                    }
                    _ => o.tags.push(be::command_tag(&f)?.to_string()),
                },
                be::ROW_DESCRIPTION => match mode {
                    Mode::Forward | Mode::Concat { first: true } => self.push_flushing(&f).await?,
                    Mode::Hold => o.held.push(f),
                    _ => {}
                },
                be::COPY_IN => {
                    self.push(&f);
                    self.copy_in(node).await?;
                }
                // The other nodes of a statement every node runs alike (DDL, reference
                // writes) repeat the first node's notices: one copy reaches the client.
                be::NOTICE_RESPONSE | be::PARAMETER_STATUS
                    if matches!(mode, Mode::Quiet | Mode::Silent) => {}
                be::NOTICE_RESPONSE | be::PARAMETER_STATUS | be::NOTIFICATION => {
                    self.push_flushing(&f).await?
                }
                _ => match mode {
                    Mode::Hold => o.held.push(f),
                    Mode::Quiet | Mode::Silent => {}
                    _ => self.push_flushing(&f).await?,
                },
            }
        }
    }

    /// COPY ... FROM STDIN on one node: the client's CopyData goes to it until CopyDone/Fail.
    async fn copy_in(&mut self, node: usize) -> SgResult<()> {
        self.flush().await?;
        loop {
            let Some(f) = self.read_client().await? else {
                return Err(SgError::protocol("client went away during COPY"));
            };
            let done = matches!(f.tag, fe::COPY_DONE | fe::COPY_FAIL);
            if matches!(
                f.tag,
                fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL | fe::FLUSH | fe::SYNC
            ) {
                self.backend(node)
                    .await?
                    .send(std::slice::from_ref(&f))
                    .await?;
            }
            if done {
                return Ok(());
            }
        }
    }
}
