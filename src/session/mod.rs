//! One client session: startup and authentication (pgwire), then the query loop over raw
//! frames, the transaction state, and the worker connections the session holds.

pub mod auth;
pub mod balanced;
pub mod commit;
pub mod copy_query;
pub mod cursor;
pub mod explain;
pub mod extended;
pub mod fill;
pub mod insert_select;
pub mod keys;
pub mod materialize;
pub mod merge;
pub mod move_rows;
pub mod partition;
pub mod settings;
pub mod shards;
pub mod simple;
pub mod spool;
pub mod sql_prepared;
pub mod startup;
pub mod time_partitions;
pub mod tls;
pub mod txn;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::error::{SgError, SgResult};
use crate::execute::Shared;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::{read_frame_max, Frame};

pub use txn::Txn;

/// Client output is flushed once this much is buffered.
const OUT_FLUSH: usize = 64 * 1024;

pub struct Session<S> {
    pub shared: Arc<Shared>,
    client: S,
    rbuf: BytesMut,
    out: BytesMut,
    /// Session-level settings (SET), replayed on each worker connection it uses.
    pub settings: crate::execute::backend::Settings,
    pub txn: txn::Held,
    pub statements: HashMap<String, Arc<extended::Prepared>>,
    /// What the prepared statements are assumed to hold (`analyze::cache::cost`), bounded.
    pub statements_bytes: usize,
    pub portals: HashMap<String, extended::Portal>,
    /// SQL-level prepared statements (PREPARE), by name.
    pub sql_prepared: HashMap<String, crate::plan::prepared::SqlPrepared>,
    /// The last statement reported an error (set by `error` and by forwarded worker errors).
    pub errored: bool,
    /// The worker connections held now, for CancelRequest (shared with the server's registry).
    pub active: crate::execute::Active,
    /// The extended-protocol batch being run has reached its Sync.
    pub batch_synced: bool,
    /// A query's rows kept for shardgate instead of sent (`materialize`).
    pub capture: Option<materialize::Capture>,
    /// The client's user name: its worker connections are its role's (`Shared::acquire_for`).
    pub user: String,
    /// A client message read but not yet handled (a Query that ended an extended batch).
    pending: Option<Frame>,
    /// How the errors of the statement running now point into the client's text.
    pub position: be::Position,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub fn new(
        shared: Arc<Shared>,
        client: S,
        rbuf: BytesMut,
        settings: BTreeMap<String, String>,
        user: String,
    ) -> Self {
        Session {
            shared,
            client,
            rbuf,
            out: BytesMut::with_capacity(OUT_FLUSH * 2),
            settings: std::sync::Arc::new(settings),
            txn: txn::Held::default(),
            statements: HashMap::new(),
            statements_bytes: 0,
            portals: HashMap::new(),
            sql_prepared: HashMap::new(),
            errored: false,
            active: Default::default(),
            batch_synced: false,
            capture: None,
            pending: None,
            position: be::Position::Keep,
            user,
        }
    }

    pub fn push(&mut self, f: &Frame) {
        if self.capture.as_mut().is_some_and(|c| c.take(f)) {
            return;
        }
        self.put(f);
    }

    /// Appends `f` to the client's output, its error position (if any) made the client's.
    fn put(&mut self, f: &Frame) {
        match be::reposition(f, self.position) {
            Some(moved) => self.out.extend_from_slice(&moved.raw),
            None => self.out.extend_from_slice(&f.raw),
        }
    }

    pub async fn push_flushing(&mut self, f: &Frame) -> SgResult<()> {
        if self.capture.as_mut().is_some_and(|c| c.take(f)) {
            return Ok(());
        }
        self.put(f);
        if self.out.len() >= OUT_FLUSH {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> SgResult<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.client.write_all(&self.out).await;
        self.out.clear();
        r.map_err(|e| {
            SgError::new(crate::error::code::CLIENT_GONE, "client write failed").with_detail(e)
        })
    }

    pub async fn read_client(&mut self) -> SgResult<Option<Frame>> {
        let max = self.shared.config.max_message_bytes;
        match read_frame_max(&mut self.client, &mut self.rbuf, max).await {
            Ok(f) => Ok(f),
            // Too long to read: PostgreSQL ends the connection too (pq_getmessage), as the
            // stream cannot be resynchronised without reading the message anyway.
            Err(e) if e.code == crate::error::code::PROGRAM_LIMIT_EXCEEDED => {
                self.push(&be::fatal(&e));
                let _ = self.flush().await;
                Err(SgError {
                    code: crate::error::code::CLIENT_GONE,
                    ..e
                })
            }
            Err(e) => Err(SgError {
                code: crate::error::code::CLIENT_GONE,
                ..e
            }),
        }
    }

    /// A worker failed mid-statement: its connections are dropped (never reused in an unknown
    /// state), a transaction block is left failed, the client gets the error and, for the
    /// extended protocol, its messages are skipped up to Sync as PostgreSQL does.
    async fn recover(&mut self, e: SgError, extended: bool) -> SgResult<()> {
        tracing::warn!("statement failed: {e}");
        for c in self.txn.conns.values_mut() {
            c.broken = true;
        }
        self.txn.drop_broken();
        self.publish_active();
        self.push(&be::error(&e));
        if let Some(t) = self.txn.txn.as_mut() {
            t.failed = true;
        }
        // An implicit transaction ends with its statement: its connections were dropped
        // (their nodes roll back), so only the settings are left to restore.
        if let Some(t) = self.txn.txn.take_if(|t| t.implicit) {
            self.restore_settings(t.settings_before);
            self.txn.end_block();
        }
        if extended && !self.batch_synced {
            loop {
                match self.read_client().await? {
                    Some(f) if f.tag == fe::SYNC => break,
                    Some(_) => {}
                    None => {
                        return Err(SgError::new(crate::error::code::CLIENT_GONE, "client left"))
                    }
                }
            }
        }
        self.ready();
        self.flush().await
    }

    pub fn status(&self) -> u8 {
        match &self.txn.txn {
            Some(t) if t.failed => b'E',
            Some(_) => b'T',
            None => b'I',
        }
    }

    pub fn ready(&mut self) {
        self.txn.unit_writes.clear();
        let s = self.status();
        if s == b'I' {
            // Protocol-level portals end with their transaction, the implicit one of a Sync
            // included (portalmem.c AtCommit_Portals / AtAbort_Portals); held rows go too.
            self.portals.clear();
        }
        self.push(&be::ready(s));
    }

    /// Reports a statement shardgate refused. A statement its parser could not read is first
    /// shown to PostgreSQL (Parse on a connection of the default node, outside the client's
    /// transaction): if PostgreSQL rejects it too, the client gets PostgreSQL's own error
    /// (its code, text and position in the client's text), else shardgate's refusal.
    pub async fn refuse(
        &mut self,
        stmt: &crate::analyze::Stmt,
        text: &str,
        e: &SgError,
    ) -> SgResult<()> {
        match self.postgres_rejects(stmt, text, e).await? {
            Some(f) => {
                self.push(&f);
                self.errored = true;
                if let Some(t) = self.txn.txn.as_mut() {
                    t.failed = true;
                }
            }
            None => self.error(e),
        }
        Ok(())
    }

    /// PostgreSQL's ErrorResponse for a statement shardgate could not parse, when PostgreSQL
    /// cannot either; None when PostgreSQL can (or the refusal has another cause).
    pub async fn postgres_rejects(
        &mut self,
        stmt: &crate::analyze::Stmt,
        text: &str,
        e: &SgError,
    ) -> SgResult<Option<Frame>> {
        if stmt.unparsed.is_none() || e.code != crate::error::code::FEATURE_NOT_SUPPORTED {
            return Ok(None);
        }
        let node = self.shared.config.default_node;
        let mut c = self.shared.acquire_for(&self.user, node).await?;
        let checked = async {
            c.sync_settings(&self.settings).await?;
            let frames = [
                fe::build_parse(
                    "",
                    &fe::Parse {
                        name: String::new(),
                        sql: text.to_string(),
                        types: fe::param_types(&[]),
                    },
                ),
                fe::sync(),
            ];
            c.send(&frames).await?;
            let mut err = None;
            loop {
                let f = c.read().await?;
                match f.tag {
                    be::READY_FOR_QUERY => return Ok(err),
                    be::ERROR_RESPONSE => err = Some(f),
                    _ => {}
                }
            }
        }
        .await;
        if checked.is_err() {
            c.broken = true;
        }
        checked
    }

    /// The statement failed (its error already reached the client): a transaction block, or
    /// the statement's implicit transaction, rolls back whatever its other nodes did.
    pub fn statement_failed(&mut self) {
        self.errored = true;
        if let Some(t) = self.txn.txn.as_mut() {
            t.failed = true;
        }
    }

    /// Reports an error to the client; inside a transaction block it aborts the transaction.
    pub fn error(&mut self, e: &SgError) {
        if let Some(d) = &e.detail {
            tracing::debug!("error {}: {} ({d})", e.code, e.message);
        }
        self.push(&be::error(e));
        self.errored = true;
        if let Some(t) = self.txn.txn.as_mut() {
            t.failed = true;
        }
    }

    /// Records which worker connections a cancel would have to reach.
    pub fn publish_active(&self) {
        if let Ok(mut a) = self.active.lock() {
            // Called for every message: most find the list as it was.
            let conns = self.txn.conns.values();
            if a.len() == conns.len()
                && a.iter()
                    .zip(conns)
                    .all(|(x, c)| (x.1, x.2, x.3) == (c.port, c.cancel_key.0, c.cancel_key.1))
            {
                return;
            }
            a.clear();
            for c in self.txn.conns.values() {
                a.push((c.host.clone(), c.port, c.cancel_key.0, c.cancel_key.1));
            }
        }
    }

    /// The query loop: until the client terminates or disconnects.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) -> SgResult<()> {
        // pgwire sent the first ReadyForQuery when startup finished.
        loop {
            // Draining: a session outside a transaction block ends between statements.
            if *shutdown.borrow() && self.txn.txn.is_none() {
                let e = SgError::new(
                    crate::error::code::ADMIN_SHUTDOWN,
                    "terminating connection due to administrator command",
                );
                self.push(&be::fatal(&e));
                let _ = self.flush().await;
                break;
            }
            let draining = *shutdown.borrow();
            let frame = match self.pending.take() {
                Some(f) => Some(f),
                // The client first: a message already buffered is read without registering
                // with the shutdown watch every session shares.
                None => tokio::select! {
                    biased;
                    f = self.read_client() => f?,
                    _ = shutdown.changed(), if !draining => continue,
                },
            };
            let Some(frame) = frame else { break };
            self.publish_active();
            self.position = be::Position::Keep;
            match frame.tag {
                fe::QUERY => {
                    let sql = fe::query(&frame)?.to_string();
                    // Boxed, as the batch below: the session's own future (held by every idle
                    // client) stays small instead of as large as the largest statement path.
                    match Box::pin(self.simple_query(&sql, &frame)).await {
                        Ok(()) => {
                            self.ready();
                            self.flush().await?;
                        }
                        Err(e) if e.code == crate::error::code::CLIENT_GONE => break,
                        Err(e) => self.recover(e, false).await?,
                    }
                }
                fe::TERMINATE => break,
                tag if fe::is_extended(tag) => {
                    self.batch_synced = false;
                    match Box::pin(self.extended_batch(frame)).await {
                        Ok(()) => self.flush().await?,
                        Err(e) if e.code == crate::error::code::CLIENT_GONE => break,
                        Err(e) => self.recover(e, true).await?,
                    }
                }
                fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL => {}
                other => {
                    let e =
                        SgError::protocol(format!("unexpected message type '{}'", other as char));
                    self.push(&be::fatal(&e));
                    self.flush().await?;
                    break;
                }
            }
        }
        self.txn.abandon();
        Ok(())
    }
}

/// The hash in the names of statements shardgate prepares on pooled worker connections, which
/// every session shares: keyed with this process's random keys (std's RandomState), so no
/// client can make up a text whose name another session's statement already has.
pub(crate) fn statement_hash<T: std::hash::Hash>(t: T) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new).hash_one(t)
}
