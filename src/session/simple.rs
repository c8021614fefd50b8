//! The simple query protocol: each statement of the string is planned and run; replies are
//! forwarded frame by frame (rows are never decoded), and several nodes' replies combined.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::classify::SetAction;
use crate::analyze::{shape, Kind, Stmt};
use crate::error::{code, SgError, SgResult};
use crate::plan::route::{plan, Values};
use crate::plan::{Combine, Plan, SessionOp};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;

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
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn simple_query(&mut self, sql: &str, frame: &Frame) -> SgResult<()> {
        if shape::is_blank(sql) {
            self.push(&be::simple(be::EMPTY_QUERY));
            return Ok(());
        }
        let analyzed = self.shared.cache.simple(sql, &self.shared.config.shardmap);
        let analysis = analyzed.analysis.clone();
        let values = Values {
            literals: &analyzed.literals,
            params: &[],
            formats: &[],
        };
        let map = &self.shared.config.shardmap;
        // Statement texts of this query: a cached analysis may come from another text.
        let texts: Vec<&str> = if analysis.stmts.len() == 1 {
            vec![sql]
        } else {
            shape::split_statements(sql)
        };
        if texts.len() != analysis.stmts.len() {
            self.error(&SgError::internal("statement split mismatch"));
            return Ok(());
        }
        // A whole string whose statements all go to one node, outside any session-level
        // statement, is forwarded as one message: PostgreSQL then runs it as one implicit
        // transaction, as it would without shardgate.
        if analysis.stmts.len() > 1 {
            let plans: Vec<_> = analysis
                .stmts
                .iter()
                .zip(&texts)
                .map(|(s, t)| plan(s, t, &values, map))
                .collect();
            let single = plans.iter().all(|p| matches!(p, Ok(Plan::Route { .. })));
            let nodes: std::collections::BTreeSet<usize> = plans
                .iter()
                .flat_map(|p| p.as_ref().map(|p| p.nodes()).unwrap_or_default())
                .collect();
            let all_writes_ok = self.txn.txn.is_none();
            if single && nodes.len() == 1 && all_writes_ok {
                let node = nodes.into_iter().next().unwrap_or(0);
                let raw = frame.clone();
                self.forward_simple(node, raw).await?;
                self.txn.release();
                return Ok(());
            }
        }
        let many = analysis.stmts.len() > 1;
        if many {
            // PostgreSQL parses the whole string before running any of it.
            if let Some(e) = analysis
                .stmts
                .iter()
                .find(|s| s.kind == Kind::Other)
                .and_then(|s| s.unparsed.as_ref())
            {
                self.error(&SgError::syntax(format!("syntax error: {e}")));
                return Ok(());
            }
        }
        let implicit = many
            && self.txn.txn.is_none()
            && !analysis.stmts.iter().any(|s| {
                matches!(
                    s.kind,
                    Kind::Begin | Kind::Commit | Kind::Rollback | Kind::TxnOther
                )
            });
        if implicit {
            self.begin_implicit();
        }
        self.errored = false;
        let mut failed = false;
        for (stmt, text) in analysis.stmts.iter().zip(&texts) {
            if self
                .txn
                .txn
                .as_ref()
                .is_some_and(|t| t.failed && !t.implicit)
                && !matches!(stmt.kind, Kind::Commit | Kind::Rollback | Kind::TxnOther)
            {
                self.error(&SgError::new(
                    code::IN_FAILED_TXN,
                    "current transaction is aborted, commands ignored until end of transaction block",
                ));
                break;
            }
            let ok = self
                .run_stmt(stmt, text, &values, frame, analysis.stmts.len() == 1)
                .await?;
            if !ok {
                failed = true;
                break;
            }
        }
        if implicit {
            self.errored = failed;
            self.end_implicit().await?;
        }
        self.txn.release();
        Ok(())
    }

    /// Runs one statement of a simple query; false when it failed (the rest are skipped).
    async fn run_stmt(
        &mut self,
        stmt: &Stmt,
        text: &str,
        values: &Values<'_>,
        frame: &Frame,
        whole: bool,
    ) -> SgResult<bool> {
        let p = match plan(stmt, text, values, &self.shared.config.shardmap) {
            Ok(p) => p,
            Err(e) => {
                self.error(&e);
                return Ok(false);
            }
        };
        if let Err(e) = self.check_write(&p, stmt.kind.is_write()) {
            self.error(&e);
            return Ok(false);
        }
        self.errored = false;
        match &p {
            Plan::Route { node, .. } => {
                let f = if whole {
                    frame.clone()
                } else {
                    fe::build_query(text)
                };
                self.forward_simple(*node, f).await?;
            }
            Plan::Scatter { nodes, combine, .. } => {
                let parts = nodes.iter().map(|n| (*n, vec![text.to_string()])).collect();
                self.multi(parts, *combine).await?;
            }
            Plan::Merge { nodes, merge, .. } => {
                self.run_merge(super::merge::MergeCall {
                    nodes,
                    merge,
                    original: text,
                    param_types: &[],
                    params: &[],
                    param_formats: &[],
                    result_formats: &[],
                    describe: true,
                })
                .await?;
            }
            Plan::Session(op) => self.session_op(op.clone(), stmt, text).await?,
            Plan::Explain {
                inner,
                analyze,
                sql,
            } => self.explain(inner, *analyze, sql, true, false).await?,
            Plan::PerNode { .. } | Plan::InsertSelect { .. } => {
                self.run_per_node(&p).await?;
            }
        }
        Ok(!self.errored)
    }

    /// Rewritten per-node statements (then what DDL taught about the table), or an
    /// INSERT ... SELECT. True when it succeeded.
    pub async fn run_per_node(&mut self, p: &Plan) -> SgResult<bool> {
        self.errored = false;
        match p {
            Plan::PerNode {
                parts,
                combine,
                learn,
                ..
            } => {
                let ok = self.multi(parts.clone(), *combine).await?;
                if let (true, Some((table, ty, pos))) = (ok, learn) {
                    let map = &self.shared.config.shardmap;
                    if let Err(e) = map.set_key_type(table, *ty) {
                        tracing::warn!("{e}");
                    }
                    map.set_key_position(table, *pos);
                    self.shared.cache.clear();
                }
            }
            Plan::InsertSelect { .. } => self.insert_select(p).await?,
            _ => return Err(SgError::internal("not a per-node plan")),
        }
        Ok(!self.errored)
    }

    pub async fn session_op(&mut self, op: SessionOp, stmt: &Stmt, text: &str) -> SgResult<()> {
        match op {
            SessionOp::Begin => self.begin(text).await,
            SessionOp::Commit => self.end(true).await?,
            SessionOp::Rollback => self.end(false).await?,
            SessionOp::TxnOther => self.txn_other(text).await?,
            SessionOp::Set => {
                let Kind::Set(action) = &stmt.kind else {
                    return Ok(());
                };
                if let SetAction::ResetAll = action {
                    if text
                        .trim_start()
                        .to_ascii_lowercase()
                        .starts_with("discard")
                    {
                        self.settings.clear();
                        self.push(&be::command_complete("DISCARD ALL"));
                        return Ok(());
                    }
                }
                let node = self.shared.config.default_node;
                self.errored = false;
                self.route_text(node, text).await?;
                if !self.errored {
                    match action {
                        SetAction::Session(name) => {
                            self.settings.insert(name.clone(), text.to_string());
                        }
                        SetAction::Reset(name) => {
                            self.settings.remove(name);
                        }
                        SetAction::ResetAll => self.settings.clear(),
                        SetAction::Local => {}
                    }
                    // The connection that ran it already has it.
                    let wanted = self.settings.clone();
                    if let Some(c) = self.txn.conns.get_mut(&node) {
                        c.settings = wanted;
                    }
                }
            }
        }
        Ok(())
    }

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
        let mut sent = Vec::new();
        for (node, sqls) in &parts {
            let q = fe::build_query(&sqls.join(";\n"));
            match self.backend(*node).await {
                Ok(c) => match c.send(std::slice::from_ref(&q)).await {
                    Ok(()) => sent.push(*node),
                    Err(e) => {
                        self.error(&e);
                        break;
                    }
                },
                Err(e) => {
                    self.error(&e);
                    break;
                }
            }
        }
        let mut ok = sent.len() == parts.len();
        let mut tags = Vec::new();
        let mut held = Vec::new();
        for (i, node) in sent.iter().enumerate() {
            let mode = match (combine, ok) {
                (_, false) => Mode::Quiet,
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
            self.errored = true;
            if let Some(t) = self.txn.txn.as_mut() {
                t.failed = true;
            }
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
                    if !o.error {
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
                be::NOTICE_RESPONSE | be::PARAMETER_STATUS | be::NOTIFICATION => {
                    self.push_flushing(&f).await?
                }
                _ => match mode {
                    Mode::Hold => o.held.push(f),
                    Mode::Quiet => {}
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
