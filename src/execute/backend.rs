//! A raw protocol connection to a worker: startup and authentication done with
//! postgres-protocol, then frames in and out untouched. Pooled with bb8.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend as pgfe;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::error::{SgError, SgResult};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::{read_frame, Frame, Reader};

/// A session's settings (SET statements by name), shared with the connections synced to
/// them: one that holds the session's own map needs no compare.
pub type Settings = Arc<BTreeMap<String, String>>;

/// Where and how to reach one worker.
#[derive(Debug, Clone)]
pub struct Target {
    pub node: usize,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub dbname: String,
    pub timeout: Duration,
    /// Longest wait for a worker's next message once a statement is sent.
    pub read_timeout: Duration,
    /// The node's health, shared by its pool, its connections and its checker.
    pub health: std::sync::Arc<super::health::Health>,
    /// TLS as the node URL's `sslmode` asks.
    pub tls: super::tls::WorkerTls,
    /// Settings made at startup (`options`), as `-c name=value` words.
    pub options: Option<String>,
}

impl Target {
    pub fn from_url(
        node: usize,
        name: &str,
        url: &str,
        timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Target, String> {
        let (url, tls) =
            super::tls::from_url(url).map_err(|e| format!("node \"{name}\": bad url: {e}"))?;
        let cfg = tokio_postgres::Config::from_str(&url)
            .map_err(|e| format!("node \"{name}\": bad url: {e}"))?;
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let user = cfg.get_user().unwrap_or("postgres").to_string();
        Ok(Target {
            node,
            name: name.to_string(),
            host,
            port: cfg.get_ports().first().copied().unwrap_or(5432),
            dbname: cfg.get_dbname().unwrap_or(&user).to_string(),
            user,
            password: cfg.get_password().map(|p| p.to_vec()),
            timeout,
            read_timeout,
            health: super::health::Health::new(name),
            tls,
            // libpq's `options` URL parameter: startup settings for this node's sessions.
            options: cfg.get_options().map(str::to_string),
        })
    }
}

pub struct Backend {
    pub node: usize,
    pub node_name: String,
    stream: super::tls::Stream,
    buf: BytesMut,
    timeout: Duration,
    read_timeout: Duration,
    /// The worker's ParameterStatus values after startup.
    pub server_params: HashMap<String, String>,
    /// Session settings applied with SET, by name → the SET statement's text.
    pub settings: Settings,
    /// Statements prepared on this connection, by shardgate's name for them.
    pub prepared: std::collections::HashSet<String>,
    /// Process id and secret for CancelRequest.
    pub cancel_key: (i32, i32),
    pub host: String,
    pub port: u16,
    /// Set when the connection is in an unknown protocol state; the pool drops it.
    pub broken: bool,
    /// The node's fall count when this connection was made, and where later falls show up:
    /// a read waiting on a node that fell ends at once.
    generation: u64,
    down: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Backend {
    pub async fn connect(t: &Target) -> SgResult<Backend> {
        let down = t.health.watch();
        let generation = *down.borrow();
        let mut b = Self::connect_unwatched(t).await?;
        b.generation = generation;
        b.down = Some(down);
        Ok(b)
    }

    /// A connection that does not follow the node's health (the health checker's own).
    pub async fn connect_unwatched(t: &Target) -> SgResult<Backend> {
        let fut = Self::connect_inner(t);
        tokio::time::timeout(t.timeout, fut)
            .await
            .map_err(|_| SgError::worker(&t.name, "connect timed out"))?
    }

    /// Whether this idle connection can no longer be trusted: its node fell since it was made,
    /// or the worker sent something or hung up while it sat in the pool (a backend terminated
    /// by pg_terminate_backend or a restart says FATAL 57P01 and closes). One non-blocking peek
    /// at the socket: asking the kernel, not the reactor's last look, so a close that has
    /// arrived is always seen.
    pub fn is_stale(&mut self) -> bool {
        if let Some(d) = &self.down {
            if *d.borrow() != self.generation {
                return true;
            }
        }
        if !self.buf.is_empty() {
            return true;
        }
        let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let peek = socket2::SockRef::from(self.stream.tcp()).peek(&mut b);
        !matches!(peek, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    async fn connect_inner(t: &Target) -> SgResult<Backend> {
        let stream = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| SgError::worker(&t.name, e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| SgError::worker(&t.name, e))?;
        let stream = super::tls::negotiate(stream, &t.tls, &t.host, &t.name).await?;
        let mut b = Backend {
            node: t.node,
            node_name: t.name.clone(),
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            timeout: t.timeout,
            read_timeout: t.read_timeout,
            server_params: HashMap::new(),
            settings: Settings::default(),
            prepared: Default::default(),
            cancel_key: (0, 0),
            host: t.host.clone(),
            port: t.port,
            broken: false,
            generation: 0,
            down: None,
        };
        let mut out = BytesMut::new();
        let mut params = vec![
            ("user", t.user.as_str()),
            ("database", t.dbname.as_str()),
            ("application_name", "shardgate"),
            ("client_encoding", "UTF8"),
        ];
        if let Some(o) = &t.options {
            params.push(("options", o.as_str()));
        }
        pgfe::startup_message(params.iter().copied(), &mut out)
            .map_err(|e| SgError::worker(&t.name, e))?;
        b.write(&out).await?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let f = b.read().await?;
            match f.tag {
                be::AUTHENTICATION => {
                    let mut r = Reader::new(f.body());
                    let kind = r.i32()?;
                    let mut out = BytesMut::new();
                    let pw = || {
                        t.password.clone().ok_or_else(|| {
                            SgError::worker(
                                &t.name,
                                "worker asks for a password; put it in the node url",
                            )
                        })
                    };
                    match kind {
                        0 => {}
                        3 => {
                            let mut p = pw()?;
                            p.push(0);
                            pgfe::password_message(&p, &mut out)
                                .map_err(|e| SgError::worker(&t.name, e))?;
                        }
                        5 => {
                            let salt: [u8; 4] = r
                                .bytes(4)?
                                .try_into()
                                .map_err(|_| SgError::protocol("md5 salt"))?;
                            let hashed = postgres_protocol::authentication::md5_hash(
                                t.user.as_bytes(),
                                &pw()?,
                                salt,
                            );
                            let mut p = hashed.into_bytes();
                            p.push(0);
                            pgfe::password_message(&p, &mut out)
                                .map_err(|e| SgError::worker(&t.name, e))?;
                        }
                        10 => {
                            let s = ScramSha256::new(&pw()?, ChannelBinding::unsupported());
                            pgfe::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut out)
                                .map_err(|e| SgError::worker(&t.name, e))?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| SgError::protocol("SASL continue before start"))?;
                            s.update(r.rest())
                                .map_err(|e| SgError::worker(&t.name, e))?;
                            pgfe::sasl_response(s.message(), &mut out)
                                .map_err(|e| SgError::worker(&t.name, e))?;
                        }
                        12 => {
                            let s = scram
                                .as_mut()
                                .ok_or_else(|| SgError::protocol("SASL final before start"))?;
                            s.finish(r.rest())
                                .map_err(|e| SgError::worker(&t.name, e))?;
                        }
                        other => {
                            return Err(SgError::worker(
                                &t.name,
                                format!("unsupported authentication {other}"),
                            ))
                        }
                    }
                    if !out.is_empty() {
                        b.write(&out).await?;
                    }
                }
                be::PARAMETER_STATUS => {
                    let mut r = Reader::new(f.body());
                    let (k, v) = (r.cstr()?.to_string(), r.cstr()?.to_string());
                    b.server_params.insert(k, v);
                }
                be::BACKEND_KEY_DATA => {
                    let mut r = Reader::new(f.body());
                    b.cancel_key = (r.i32()?, r.i32()?);
                }
                be::ERROR_RESPONSE => {
                    let (code, msg) = be::error_fields(&f);
                    return Err(SgError::worker(&t.name, format!("{code}: {msg}")));
                }
                be::READY_FOR_QUERY => return Ok(b),
                _ => {}
            }
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> SgResult<()> {
        let write = tokio::time::timeout(self.timeout, self.stream.write_all(bytes));
        // A write blocks only when the worker stopped reading (its socket buffer is full): a
        // node that falls meanwhile ends it as it ends a read.
        let Some(r) = unless_fallen(&mut self.down, self.generation, write).await else {
            self.broken = true;
            return Err(fell(&self.node_name));
        };
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(SgError::worker(&self.node_name, e))
            }
            Err(_) => {
                self.broken = true;
                Err(SgError::worker(&self.node_name, "write timed out"))
            }
        }
    }

    pub async fn send(&mut self, frames: &[Frame]) -> SgResult<()> {
        if frames.len() == 1 {
            let raw = frames[0].raw.clone();
            return self.write(&raw).await;
        }
        let mut out = BytesMut::with_capacity(frames.iter().map(|f| f.raw.len()).sum());
        for f in frames {
            out.extend_from_slice(&f.raw);
        }
        self.write(&out).await
    }

    /// The next message from the worker, waiting at most the query timeout (a long query is
    /// not an error until then; statement_timeout on the workers may bound it sooner).
    pub async fn read(&mut self) -> SgResult<Frame> {
        // A reply usually arrives as several messages in one segment (a row set as thousands):
        // those already buffered are taken without arming a timer and a health watch per
        // message, which cost more than the message itself (perf: clock_gettime, Timeout and
        // Notified polls). Only a read that has to wait needs either.
        match crate::protocol::take_frame(&mut self.buf, crate::protocol::MAX_MESSAGE) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => {
                self.broken = true;
                return Err(SgError::worker(&self.node_name, e));
            }
        }
        let read = tokio::time::timeout(
            self.read_timeout,
            read_frame(&mut self.stream, &mut self.buf),
        );
        let Some(r) = unless_fallen(&mut self.down, self.generation, read).await else {
            self.broken = true;
            return Err(fell(&self.node_name));
        };
        match r {
            Ok(Ok(Some(f))) => Ok(f),
            Ok(Ok(None)) => {
                self.broken = true;
                Err(SgError::worker(
                    &self.node_name,
                    "worker closed the connection",
                ))
            }
            Ok(Err(e)) => {
                self.broken = true;
                Err(SgError::worker(&self.node_name, e))
            }
            Err(_) => {
                self.broken = true;
                Err(SgError::new(
                    crate::error::code::QUERY_CANCELED,
                    format!(
                        "no reply from worker \"{}\" within server.query_timeout_secs",
                        self.node_name
                    ),
                ))
            }
        }
    }

    /// Runs a simple query for shardgate's own purposes and returns its frames up to (not
    /// including) ReadyForQuery; an error from the worker is returned as an error.
    pub async fn run(&mut self, sql: &str) -> SgResult<Vec<Frame>> {
        self.send(&[fe::build_query(sql)]).await?;
        let mut out = Vec::new();
        let mut err = None;
        loop {
            let f = self.read().await?;
            match f.tag {
                be::READY_FOR_QUERY => break,
                be::ERROR_RESPONSE => err = Some(be::to_sg_error(&f)),
                _ => out.push(f),
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Brings the connection's session settings to `wanted` (the client session's SETs). A
    /// connection whose settings could not be brought there is in a state no session chose:
    /// it is marked broken so the pool drops it instead of handing it to anyone else.
    pub async fn sync_settings(&mut self, wanted: &Settings) -> SgResult<()> {
        // The same map (nothing SET since this connection was last synced) needs no compare.
        if Arc::ptr_eq(&self.settings, wanted) || self.settings == *wanted {
            return Ok(());
        }
        let mut sql = String::new();
        for k in self.settings.keys() {
            if !wanted.contains_key(k) {
                sql.push_str(&format!("RESET {};", crate::quote::ident(k)));
            }
        }
        for (k, v) in wanted.iter() {
            if self.settings.get(k) != Some(v) {
                sql.push_str(v);
                sql.push(';');
            }
        }
        if !sql.is_empty() {
            if let Err(e) = self.run(&sql).await {
                self.broken = true;
                return Err(e);
            }
        }
        self.settings = wanted.clone();
        Ok(())
    }

    /// Makes these settings (SET statements by name) now, whatever the connection holds,
    /// and returns the ParameterStatus values the worker reported for them (`TimeZone`,
    /// `DateStyle`, ... as PostgreSQL spells them).
    pub async fn apply_reporting(
        &mut self,
        sets: &BTreeMap<String, String>,
    ) -> SgResult<Vec<(String, String)>> {
        let sql: String = sets.values().map(|v| format!("{v};")).collect();
        let frames = match self.run(&sql).await {
            Ok(f) => f,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        };
        for (k, v) in sets {
            Arc::make_mut(&mut self.settings).insert(k.clone(), v.clone());
        }
        let mut reported = Vec::new();
        for f in frames.iter().filter(|f| f.tag == be::PARAMETER_STATUS) {
            let mut r = Reader::new(f.body());
            if let (Ok(k), Ok(v)) = (r.cstr(), r.cstr()) {
                reported.push((k.to_string(), v.to_string()));
            }
        }
        Ok(reported)
    }
}

/// Runs `fut` unless the node falls first (its generation moves past `generation`): None then.
async fn unless_fallen<T>(
    down: &mut Option<tokio::sync::watch::Receiver<u64>>,
    generation: u64,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match down {
        // The operation first: one that is ready at once (a write into the socket's buffer)
        // never registers with the health watch, whose registration costs a lock.
        Some(down) => tokio::select! {
            biased;
            r = fut => Some(r),
            _ = down.wait_for(|g| *g != generation) => None,
        },
        None => Some(fut.await),
    }
}

/// The error for a statement whose node fell while it waited on it.
fn fell(node: &str) -> SgError {
    SgError::new(
        crate::error::code::CONNECTION_FAILURE,
        format!("worker node \"{node}\" stopped answering health checks during the statement"),
    )
}
