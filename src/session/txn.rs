//! The worker connections a session holds and its transaction block. A connection is held for
//! one statement (or one extended-protocol batch), or for a whole transaction block; BEGIN is
//! sent lazily to each node the block touches. Until cross-node transactions land, a block may
//! read on many nodes but write on only one.

use std::collections::{BTreeMap, BTreeSet};

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{SgError, SgResult};
use crate::execute::backend::Backend;
use crate::execute::pool::Pooled;
use crate::plan::Plan;
use crate::protocol::backend as be;

pub struct Txn {
    /// The client's BEGIN, replayed on each node the block reaches (keeps isolation level).
    pub begin_sql: String,
    pub failed: bool,
    pub writer: Option<usize>,
    /// SAVEPOINT and SET LOCAL statements of the block, replayed after BEGIN on each node the
    /// block reaches later.
    pub savepoints: Vec<String>,
    /// A multi-statement simple query's implicit transaction, not a client's BEGIN.
    pub implicit: bool,
    /// When the block began, as now() reads it in statements over several nodes.
    pub started: std::time::SystemTime,
    /// The session's settings when the block began: ROLLBACK brings them back, as PostgreSQL
    /// undoes a SET made inside a rolled-back transaction (guc.c, AtEOXact_GUC).
    pub settings_before: BTreeMap<String, String>,
    /// Each SAVEPOINT: its name, the settings then and the length of `savepoints` after it,
    /// for ROLLBACK TO.
    pub marks: Vec<(String, BTreeMap<String, String>, usize)>,
}

#[derive(Default)]
pub struct Held {
    pub conns: BTreeMap<usize, Pooled>,
    pub txn: Option<Txn>,
    /// Nodes whose connection holds session state of this client's (`analyze::sticky`): kept
    /// for the whole session, closed rather than pooled at its end.
    pub sticky: BTreeSet<usize>,
    /// Nodes whose connection has joined the current transaction block (BEGIN sent). A
    /// connection held for session state joins when the block first uses it.
    pub in_txn: BTreeSet<usize>,
}

impl Held {
    /// Gives connections back to their pools unless a transaction block or session state
    /// needs them.
    pub fn release(&mut self) {
        if self.txn.is_none() {
            let sticky = &self.sticky;
            self.conns.retain(|n, _| sticky.contains(n));
        }
    }

    /// Forgets session state (DISCARD ALL): its connections are closed, not pooled.
    pub fn discard(&mut self) {
        for n in std::mem::take(&mut self.sticky) {
            if let Some(mut c) = self.conns.remove(&n) {
                c.broken = true;
            }
            self.in_txn.remove(&n);
        }
    }

    /// Drops the connections marked broken (a failed statement); the block goes on without
    /// them, failed.
    pub fn drop_broken(&mut self) {
        self.conns.retain(|_, c| !c.broken);
        let conns = &self.conns;
        self.in_txn.retain(|n| conns.contains_key(n));
    }

    /// The nodes the transaction block has reached, but `node` (none outside a block).
    pub fn block_nodes_except(&self, node: usize) -> Vec<usize> {
        match self.txn {
            Some(_) => self.in_txn.iter().copied().filter(|n| *n != node).collect(),
            None => Vec::new(),
        }
    }

    /// After COMMIT or ROLLBACK: no connection is in a block any more.
    pub fn end_block(&mut self) {
        self.in_txn.clear();
        self.release();
    }

    /// The client went away: connections in an unknown state, or holding its session state,
    /// are not reused.
    pub fn abandon(&mut self) {
        for (n, c) in self.conns.iter_mut() {
            if self.txn.is_some() || self.sticky.contains(n) {
                c.broken = true;
            }
        }
        self.txn = None;
        self.conns.clear();
        self.sticky.clear();
        self.in_txn.clear();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The instants now() and statement_timestamp() stand for in a statement starting now.
    pub fn clock(&self) -> crate::plan::clock::Clock {
        let now = std::time::SystemTime::now();
        crate::plan::clock::Clock {
            transaction: crate::plan::clock::timestamptz(
                self.txn.txn.as_ref().map_or(now, |t| t.started),
            ),
            statement: crate::plan::clock::timestamptz(now),
        }
    }

    /// The session's connection to `node`, acquired (and brought into the session's settings
    /// and transaction block) on first use.
    pub async fn backend(&mut self, node: usize) -> SgResult<&mut Backend> {
        if !self.txn.conns.contains_key(&node) {
            let mut c = self.shared.acquire(node).await?;
            if c.prepared.len() > 2000 {
                c.run("DEALLOCATE ALL").await?;
                c.prepared.clear();
            }
            c.sync_settings(&self.settings).await?;
            self.txn.conns.insert(node, c);
            self.publish_active();
        } else if !self.txn.in_txn.contains(&node) {
            // A connection kept for session state between statements: bring it to settings
            // made since on another connection.
            if let Some(c) = self.txn.conns.get_mut(&node) {
                c.sync_settings(&self.settings).await?;
            }
        }
        if let (Some(t), false) = (&self.txn.txn, self.txn.in_txn.contains(&node)) {
            if let Some(c) = self.txn.conns.get_mut(&node) {
                c.run(&t.begin_sql).await?;
                for sp in &t.savepoints {
                    c.run(sp).await?;
                }
            }
            self.txn.in_txn.insert(node);
        }
        self.txn
            .conns
            .get_mut(&node)
            .map(|c| &mut **c)
            .ok_or_else(|| SgError::internal("held connection vanished"))
    }

    /// What a statement must pass before its plan runs: the one-writer-node rule, and keeping
    /// the connections of a statement that leaves session state behind.
    pub fn before_run(&mut self, plan: &Plan, stmt: &crate::analyze::Stmt) -> SgResult<()> {
        self.check_write(plan, stmt.kind.is_write())?;
        if stmt.sticky {
            self.txn.sticky.extend(plan.nodes());
        }
        Ok(())
    }

    /// The one-writer-node rule for transaction blocks.
    fn check_write(&mut self, plan: &Plan, is_write: bool) -> SgResult<()> {
        let Some(t) = self.txn.txn.as_mut() else {
            return Ok(());
        };
        // An implicit transaction commits on every node it wrote or on none (see
        // `end_implicit`); the one-writer rule is for client transaction blocks.
        if !is_write || t.implicit {
            return Ok(());
        }
        let nodes = plan.nodes();
        let refuse = || {
            SgError::unsupported(
                "a transaction block that writes on more than one node (cross-node transactions are not available yet)",
            )
        };
        if nodes.len() > 1 {
            return Err(refuse());
        }
        if let Some(&n) = nodes.first() {
            match t.writer {
                Some(w) if w != n => return Err(refuse()),
                _ => t.writer = Some(n),
            }
        }
        Ok(())
    }

    pub async fn begin(&mut self, text: &str) {
        if self.txn.txn.is_some() {
            self.push(&be::notice("there is already a transaction in progress"));
        } else {
            self.txn.txn = Some(Txn {
                started: std::time::SystemTime::now(),
                settings_before: self.settings.clone(),
                marks: Vec::new(),
                begin_sql: text.to_string(),
                failed: false,
                writer: None,
                savepoints: Vec::new(),
                implicit: false,
            });
        }
        self.push(&be::command_complete("BEGIN"));
    }

    /// COMMIT or ROLLBACK of the block: read-only nodes first, the writer last, so a failure
    /// to commit the writer is the only failure that matters.
    pub async fn end(&mut self, commit: bool) -> SgResult<()> {
        let Some(t) = self.txn.txn.take() else {
            self.push(&be::notice("there is no transaction in progress"));
            self.push(&be::command_complete(if commit {
                "COMMIT"
            } else {
                "ROLLBACK"
            }));
            return Ok(());
        };
        let commit = commit && !t.failed;
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        if !commit {
            self.restore_settings(t.settings_before.clone());
        }
        let mut nodes: Vec<usize> = self.txn.in_txn.iter().copied().collect();
        nodes.sort_by_key(|n| Some(*n) == t.writer);
        let mut err = None;
        for n in nodes {
            if let Some(c) = self.txn.conns.get_mut(&n) {
                if let Err(e) = c.run(sql).await {
                    c.broken = c.broken || e.code == crate::error::code::CONNECTION_FAILURE;
                    err.get_or_insert(e);
                }
            }
        }
        self.txn.end_block();
        match err {
            Some(e) => self.push(&be::error(&e)),
            None => self.push(&be::command_complete(sql)),
        }
        Ok(())
    }

    /// Runs a multi-statement simple query's statements as PostgreSQL does, in one implicit
    /// transaction: BEGIN reaches each node as it is first used.
    pub fn begin_implicit(&mut self) {
        self.txn.txn = Some(Txn {
            started: std::time::SystemTime::now(),
            settings_before: self.settings.clone(),
            marks: Vec::new(),
            begin_sql: "BEGIN".into(),
            failed: false,
            writer: None,
            savepoints: Vec::new(),
            implicit: true,
        });
    }

    /// Ends the implicit transaction: COMMIT on every node if every statement succeeded, else
    /// ROLLBACK. Atomic for statement failures; a node failing its own COMMIT after others
    /// committed is the one case cross-node two-phase commit will close.
    pub async fn end_implicit(&mut self) -> SgResult<()> {
        let Some(t) = self.txn.txn.take_if(|t| t.implicit) else {
            return Ok(());
        };
        let commit = !t.failed && !self.errored;
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        if !commit {
            self.restore_settings(t.settings_before.clone());
        }
        let mut err = None;
        let nodes: Vec<usize> = self.txn.in_txn.iter().copied().collect();
        for n in nodes {
            if let Some(c) = self.txn.conns.get_mut(&n) {
                if let Err(e) = c.run(sql).await {
                    c.broken = true;
                    err.get_or_insert(e);
                }
            }
        }
        self.txn.drop_broken();
        self.txn.end_block();
        if let (true, Some(e)) = (commit, err) {
            self.error(&e);
        }
        Ok(())
    }

    /// SAVEPOINT, RELEASE, ROLLBACK TO: on every node the block has reached.
    pub async fn txn_other(&mut self, text: &str) -> SgResult<()> {
        let lower = text.trim_start().to_ascii_lowercase();
        let Some(t) = self.txn.txn.as_mut() else {
            return self.route_text(self.shared.config.default_node, text).await;
        };
        let name = savepoint_name(text);
        let mut restore = None;
        if lower.starts_with("rollback") {
            t.failed = false;
            // ROLLBACK TO undoes the SETs and SET LOCALs made since the savepoint, which stays.
            if let Some((_, settings, len)) = t.marks.iter().rev().find(|m| m.0 == name) {
                t.savepoints.truncate(*len);
                restore = Some(settings.clone());
            }
        } else if lower.starts_with("savepoint") {
            t.savepoints.push(text.to_string());
            t.marks
                .push((name, self.settings.clone(), t.savepoints.len()));
        } else if lower.starts_with("release") {
            if let Some(i) = t.marks.iter().rposition(|m| m.0 == name) {
                t.marks.truncate(i);
            }
        }
        let rolled_back = restore.is_some();
        if let Some(s) = restore {
            self.restore_settings(s);
        }
        if self.txn.in_txn.is_empty() {
            let d = self.shared.config.default_node;
            self.backend(d).await?;
        }
        let nodes: Vec<usize> = self.txn.in_txn.iter().copied().collect();
        let mut tag = String::new();
        for n in nodes {
            let c = self.backend(n).await?;
            match c.run(text).await {
                Ok(frames) => {
                    if let Some(f) = frames.iter().find(|f| f.tag == be::COMMAND_COMPLETE) {
                        tag = be::command_tag(f).unwrap_or("").to_string();
                    }
                }
                Err(e) => {
                    self.error(&e);
                    return Ok(());
                }
            }
            // A node that joined the block after the savepoint took the settings of then
            // before its BEGIN, which ROLLBACK TO does not undo there: set them back now.
            if rolled_back {
                let wanted = self.settings.clone();
                if let Some(c) = self.txn.conns.get_mut(&n) {
                    if let Err(e) = c.sync_settings(&wanted).await {
                        self.error(&e);
                        return Ok(());
                    }
                }
            }
        }
        self.push(&be::command_complete(&tag));
        Ok(())
    }
}

/// The savepoint a SAVEPOINT, RELEASE or ROLLBACK TO statement names, folded as PostgreSQL
/// folds an identifier (lower case unless double-quoted).
fn savepoint_name(text: &str) -> String {
    let last = text
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .last()
        .unwrap_or("");
    match last.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(q) => q.replace("\"\"", "\""),
        None => last.to_lowercase(),
    }
}
