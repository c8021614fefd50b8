//! The worker connections a session holds and its transaction block. A connection is held for
//! one statement (or one extended-protocol batch), or for a whole transaction block; BEGIN is
//! sent lazily to each node the block touches, and the block records which nodes it wrote on
//! for its commit (`commit`).

use std::collections::{BTreeMap, BTreeSet};

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::{SgError, SgResult};
use crate::execute::backend::{Backend, Settings};
use crate::execute::pool::Pooled;
use crate::plan::Plan;
use crate::protocol::backend as be;

pub struct Txn {
    /// The client's BEGIN, replayed on each node the block reaches (keeps isolation level).
    pub begin_sql: String,
    pub isolation: Isolation,
    pub failed: bool,
    /// Nodes a statement of the block wrote on (or locked rows on): more than one means
    /// two-phase commit.
    pub wrote: BTreeSet<usize>,
    /// Nodes a statement of the block ran on.
    pub touched: BTreeSet<usize>,
    /// SAVEPOINT and SET LOCAL statements of the block, replayed after BEGIN on each node the
    /// block reaches later.
    pub savepoints: Vec<String>,
    /// A multi-statement simple query's implicit transaction, not a client's BEGIN.
    pub implicit: bool,
    /// When the block began, as now() reads it in statements over several nodes.
    pub started: std::time::SystemTime,
    /// The session's settings when the block began: ROLLBACK brings them back, as PostgreSQL
    /// undoes a SET made inside a rolled-back transaction (guc.c, AtEOXact_GUC).
    pub settings_before: Settings,
    /// Each SAVEPOINT: its name, the settings then and the length of `savepoints` after it,
    /// for ROLLBACK TO.
    pub marks: Vec<(String, Settings, usize)>,
    /// Tables partitioning DDL of the block changed: the map changes at COMMIT, so until
    /// then statements naming them are refused (they would be placed by the old map).
    pub partitioned: BTreeSet<String>,
}

/// The isolation level a block asked for, as far as shardgate must know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    /// Every node's snapshot is taken when the block first runs a statement.
    RepeatableRead,
    /// Refused over more than one node.
    Serializable,
}

impl Isolation {
    /// From the BEGIN's text, else the session's default_transaction_isolation.
    pub fn of(begin: &str, settings: &BTreeMap<String, String>) -> Isolation {
        let from = |t: &str| {
            let t = t.to_ascii_lowercase();
            if t.contains("serializable") {
                Some(Isolation::Serializable)
            } else if t.contains("repeatable") {
                Some(Isolation::RepeatableRead)
            } else if t.contains("isolation") || t.contains("committed") {
                Some(Isolation::ReadCommitted)
            } else {
                None
            }
        };
        from(begin)
            .or_else(|| {
                settings
                    .get("default_transaction_isolation")
                    .and_then(|s| from(s))
            })
            .unwrap_or(Isolation::ReadCommitted)
    }
}

impl Txn {
    pub fn new(begin: &str, implicit: bool, settings: &Settings) -> Txn {
        Txn {
            begin_sql: begin.to_string(),
            isolation: Isolation::of(begin, settings),
            failed: false,
            wrote: BTreeSet::new(),
            touched: BTreeSet::new(),
            savepoints: Vec::new(),
            implicit,
            started: std::time::SystemTime::now(),
            settings_before: settings.clone(),
            marks: Vec::new(),
            partitioned: BTreeSet::new(),
        }
    }
}

#[derive(Default)]
pub struct Held {
    /// Nodes written outside a block in the client's current unit of work (a simple query,
    /// or an extended-protocol batch up to Sync): a second node opens an implicit transaction.
    pub unit_writes: BTreeSet<usize>,
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
    /// and transaction block) on first use. The first node a REPEATABLE READ block uses brings
    /// every node in, each with its snapshot taken now, so the block reads every node as of
    /// its start rather than as of whenever it first reaches it.
    pub async fn backend(&mut self, node: usize) -> SgResult<&mut Backend> {
        self.attach(node).await?;
        if let (Some(t), false) = (&self.txn.txn, self.txn.in_txn.contains(&node)) {
            let all = t.isolation == Isolation::RepeatableRead && self.txn.in_txn.is_empty();
            self.join(node, all).await?;
            if all {
                for n in 0..self.shared.config.nodes.len() {
                    if n != node {
                        self.attach(n).await?;
                        self.join(n, true).await?;
                    }
                }
            }
        }
        self.txn
            .conns
            .get_mut(&node)
            .map(|c| &mut **c)
            .ok_or_else(|| SgError::internal("held connection vanished"))
    }

    /// Acquires a connection to `node` for the session unless it holds one, in the session's
    /// settings.
    async fn attach(&mut self, node: usize) -> SgResult<()> {
        if !self.txn.conns.contains_key(&node) {
            let mut c = self.shared.acquire_for(&self.user, node).await?;
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
        Ok(())
    }

    /// Brings the held connection to `node` into the block: BEGIN, the block's savepoints and
    /// SET LOCALs, and with `snapshot` a statement that takes the transaction's snapshot.
    async fn join(&mut self, node: usize, snapshot: bool) -> SgResult<()> {
        if self.txn.in_txn.contains(&node) {
            return Ok(());
        }
        if let (Some(t), Some(c)) = (&self.txn.txn, self.txn.conns.get_mut(&node)) {
            c.run(&t.begin_sql).await?;
            for sp in &t.savepoints {
                c.run(sp).await?;
            }
            if snapshot {
                c.run("SELECT").await?;
            }
        }
        self.txn.in_txn.insert(node);
        Ok(())
    }

    /// What a statement must pass before its plan runs. A write outside a transaction block
    /// that reaches a second node (in this statement, or earlier in the client's
    /// extended-protocol batch) opens an implicit transaction, so it commits on every node or
    /// none (`commit`). Inside a block, the nodes written are recorded for the commit, and a
    /// SERIALIZABLE block may not span nodes. A statement that leaves session state behind
    /// keeps its connections.
    pub fn before_run(&mut self, plan: &Plan, stmt: &crate::analyze::Stmt) -> SgResult<()> {
        if let Some(w) = &stmt.warning {
            self.push(&crate::protocol::backend::warning("01000", w));
        }
        if let Some(t) = self.txn.txn.as_ref() {
            if let Some(name) = mentioned(&stmt.text, &t.partitioned) {
                return Err(SgError::unsupported(format!(
                    "a statement naming \"{name}\" after partitioning DDL on it in the same transaction (shardgate places its rows by the new partitions once the transaction commits: COMMIT first)"
                )));
            }
        }
        let nodes = plan.nodes();
        if stmt.sticky {
            self.txn.sticky.extend(nodes.iter().copied());
        }
        match self.txn.txn.as_mut() {
            Some(t) => {
                if t.isolation == Isolation::Serializable
                    && nodes
                        .iter()
                        .chain(&t.touched)
                        .collect::<BTreeSet<_>>()
                        .len()
                        > 1
                {
                    return Err(SgError::unsupported(
                        "a SERIALIZABLE transaction block over more than one node (shardgate cannot give serializable isolation across nodes; use REPEATABLE READ or keep the block on one node)",
                    ));
                }
                t.touched.extend(nodes.iter().copied());
                if stmt.kind.is_write() {
                    t.wrote.extend(nodes);
                }
            }
            // PostgreSQL refuses these inside any transaction (PreventInTransactionBlock): they
            // run as they are on each node, as they would on one.
            None if stmt.kind.is_write() && !runs_outside_transactions(&stmt.text) => {
                self.txn.unit_writes.extend(nodes);
                if self.txn.unit_writes.len() > 1 {
                    self.begin_implicit();
                    if let Some(t) = self.txn.txn.as_mut() {
                        t.wrote = self.txn.unit_writes.clone();
                        t.touched = t.wrote.clone();
                    }
                }
            }
            None => {}
        }
        Ok(())
    }

    pub async fn begin(&mut self, text: &str) {
        match self.txn.txn.as_mut() {
            // BEGIN inside a multi-statement string's implicit transaction makes it a block,
            // statements before it included (xact.c BeginTransactionBlock,
            // TBLOCK_IMPLICIT_INPROGRESS).
            Some(t) if t.implicit => {
                t.implicit = false;
                t.begin_sql = text.to_string();
                t.isolation = Isolation::of(text, &self.settings);
            }
            Some(_) => self.push(&be::warning(
                "25001",
                "there is already a transaction in progress",
            )),
            None => {
                self.txn.txn = Some(Txn::new(text, false, &self.settings));
            }
        }
        self.push(&be::command_complete("BEGIN"));
    }

    /// Runs the statements that follow as one implicit transaction (a multi-statement simple
    /// query, or a write reaching several nodes): BEGIN reaches each node as it is first used.
    pub fn begin_implicit(&mut self) {
        self.txn.txn = Some(Txn::new("BEGIN", true, &self.settings));
    }

    /// SAVEPOINT, RELEASE, ROLLBACK TO: on every node the block has reached.
    pub async fn txn_other(&mut self, text: &str) -> SgResult<()> {
        let lower = text.trim_start().to_ascii_lowercase();
        let Some(t) = self.txn.txn.as_mut() else {
            return self.route_text(self.shared.config.default_node, text).await;
        };
        if t.implicit {
            // xact.c DefineSavepoint and friends, TBLOCK_IMPLICIT_INPROGRESS.
            let verb = if lower.starts_with("savepoint") {
                "SAVEPOINT"
            } else if lower.starts_with("release") {
                "RELEASE SAVEPOINT"
            } else {
                "ROLLBACK TO SAVEPOINT"
            };
            self.error(&SgError::new(
                "25P01",
                format!("{verb} can only be used in transaction blocks"),
            ));
            return Ok(());
        }
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

/// Statements PostgreSQL runs only outside a transaction block (PreventInTransactionBlock
/// callers: vacuum.c, indexcmds.c CONCURRENTLY, dbcommands.c, tablespace.c, ALTER SYSTEM).
fn runs_outside_transactions(text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(6)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match w(0) {
        "vacuum" => true,
        "create" | "drop" if matches!(w(1), "database" | "tablespace") => true,
        "alter" if w(1) == "system" => true,
        "create" | "drop" | "reindex" => words.iter().any(|x| x == "concurrently"),
        _ => false,
    }
}

/// The first of `names` that `text` names, word for word (case-insensitively; quoted names
/// as written).
pub fn mentioned<'a>(text: &str, names: &'a BTreeSet<String>) -> Option<&'a str> {
    if names.is_empty() {
        return None;
    }
    let lower = text.to_lowercase();
    let words: BTreeSet<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .chain(text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')))
        .collect();
    names
        .iter()
        .find(|n| words.contains(n.as_str()))
        .map(String::as_str)
}
