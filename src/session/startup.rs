//! A connection's opening, before it is a session: SSLRequest and TLS, the startup packet (or a
//! CancelRequest), SCRAM-SHA-256 against the config's users, then the parameters, key and
//! first ReadyForQuery a client expects. Every byte read here comes from a client that has not
//! proven who it is, so lengths are checked before anything is read or reserved, and the whole
//! opening has one deadline (`server.auth_timeout_secs`).
//!
//! The messages follow PostgreSQL's backend/libpq/pqcomm.c, postmaster/postmaster.c
//! (ProcessStartupPacket) and libpq/auth.c + auth-scram.c; the SCRAM exchange itself is
//! pgwire's sans-IO `ScramServerAuth`. Reading is ours rather than pgwire's framed codec,
//! which panics on some malformed pre-login messages (see tests/robust.rs, `hostile_openings`).

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};
use pgwire::api::auth::sasl::scram::{random_nonce, ScramServerAuth};
use pgwire::tokio::server::MaybeTls;
use pgwire::tokio::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use super::auth::Users;
use super::auth::{self, auth_message, SCRAM_ITERATIONS};
use crate::error::{code, SgError};
use crate::protocol::backend as be;
use crate::protocol::{Frame, Reader};

/// PostgreSQL's MAX_STARTUP_PACKET_LENGTH (pqcomm.h).
const MAX_STARTUP_PACKET: usize = 10_000;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
const PROTOCOL_3_0: i32 = 196_608;

/// What the opening needs that outlives one connection.
pub struct Authenticator {
    users: Users,
    scram: ScramServerAuth,
    tls: Option<TlsAcceptor>,
    tls_required: bool,
    /// ParameterStatus values every client gets (the default node's).
    server_params: Vec<(String, String)>,
    /// Users with a worker role: the role, and whether it is a superuser there. A session
    /// is told the role as its `session_authorization`, as PostgreSQL tells its own.
    pub roles: BTreeMap<String, (String, bool)>,
    next_pid: std::sync::atomic::AtomicI32,
}

impl Authenticator {
    pub fn new(
        users: Users,
        tls: Option<TlsAcceptor>,
        tls_required: bool,
        server_params: Vec<(String, String)>,
    ) -> Authenticator {
        let mut scram = ScramServerAuth::new();
        scram.set_iterations(SCRAM_ITERATIONS);
        Authenticator {
            users,
            scram,
            tls,
            tls_required,
            server_params,
            roles: BTreeMap::new(),
            next_pid: std::sync::atomic::AtomicI32::new(random_i32().rem_euclid(1 << 20) + 1000),
        }
    }
}

/// An authenticated client: its socket, bytes it already sent, and its startup settings.
pub struct Started {
    pub io: MaybeTls,
    pub read_buf: BytesMut,
    /// Startup parameters that are session settings (DateStyle, TimeZone, ...), as SETs.
    pub settings: BTreeMap<String, String>,
    pub user: String,
    pub application_name: String,
    /// The BackendKeyData the client will get: its key for CancelRequest.
    pub key: (i32, i32),
}

/// What a new connection turned out to be.
pub enum Opening {
    /// Authenticated; the caller admits it (`admit`) or turns it away (`refuse`).
    Session(Started),
    /// A CancelRequest for the session with this key.
    Cancel(i32, i32),
}

/// Reads the opening up to a successful authentication. `None`: the connection is done (it
/// failed, and was told why where PostgreSQL would tell it). The whole opening must finish
/// within `timeout`.
pub async fn startup(
    socket: TcpStream,
    auth: &Authenticator,
    timeout: std::time::Duration,
) -> Option<Opening> {
    let _ = socket.set_nodelay(true);
    let mut conn = Opener {
        io: Some(MaybeTls::Plain(socket)),
        tls: false,
    };
    match tokio::time::timeout(timeout, conn.open(auth)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::debug!("opening refused: {e}");
            conn.fatal(&e).await;
            None
        }
        Err(_) => {
            // PostgreSQL closes a connection that does not authenticate in time without a word
            // (authentication_timeout); a client that is still there gets the reason.
            let e = SgError::new(code::CONNECTION_FAILURE, "authentication timed out");
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(200), conn.fatal(&e)).await;
            None
        }
    }
}

/// Sends what a successful opening ends with: AuthenticationOk, the parameters, the cancel
/// key, ReadyForQuery. The caller checks connection limits first.
pub async fn admit(
    s: &mut Started,
    auth: &Authenticator,
    reported: &[(String, String)],
) -> Result<(), SgError> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&auth_message(0, &[]).raw);
    let role = auth.roles.get(&s.user);
    for (k, v) in &auth.server_params {
        let v = match (k.as_str(), role) {
            ("is_superuser", Some((_, sup))) => {
                if *sup {
                    "on"
                } else {
                    "off"
                }
            }
            _ => reported
                .iter()
                .find(|(r, _)| r == k)
                .map_or(v.as_str(), |(_, v)| v.as_str()),
        };
        out.extend_from_slice(&be::parameter_status(k, v).raw);
    }
    out.extend_from_slice(&be::parameter_status("application_name", &s.application_name).raw);
    let authorization = role.map_or(s.user.as_str(), |(r, _)| r.as_str());
    out.extend_from_slice(&be::parameter_status("session_authorization", authorization).raw);
    let mut key = BytesMut::new();
    key.put_i32(s.key.0);
    key.put_i32(s.key.1);
    out.extend_from_slice(&Frame::build(be::BACKEND_KEY_DATA, &key).raw);
    out.extend_from_slice(&be::ready(b'I').raw);
    s.io.write_all(&out).await.map_err(gone)
}

/// Tells an authenticated client it cannot have a session (a connection limit), then closes.
pub async fn refuse(s: &mut Started, e: &SgError) {
    let _ = s.io.write_all(&be::fatal(e).raw).await;
    let _ = s.io.shutdown().await;
}

struct Opener {
    /// None only while a TLS handshake has the socket.
    io: Option<MaybeTls>,
    tls: bool,
}

pub(super) fn gone(e: impl std::fmt::Display) -> SgError {
    SgError::new(code::CLIENT_GONE, "client went away").with_detail(e)
}

impl Opener {
    fn io(&mut self) -> Result<&mut MaybeTls, SgError> {
        self.io
            .as_mut()
            .ok_or_else(|| gone("socket lost in a TLS handshake"))
    }

    async fn fatal(&mut self, e: &SgError) {
        if let Ok(io) = self.io() {
            let _ = io.write_all(&be::fatal(e).raw).await;
            let _ = io.flush().await;
        }
    }

    async fn open(&mut self, auth: &Authenticator) -> Result<Option<Opening>, SgError> {
        let params = loop {
            let Some(packet) = read_startup_packet(self.io()?).await? else {
                return Ok(None);
            };
            let mut r = Reader::new(&packet);
            match r.i32()? {
                SSL_REQUEST if !self.tls => {
                    let Some(acceptor) = &auth.tls else {
                        self.write(b"N").await?;
                        continue;
                    };
                    self.write(b"S").await?;
                    let Some(MaybeTls::Plain(tcp)) = self.io.take() else {
                        return Ok(None);
                    };
                    let tls = acceptor.accept(tcp).await.map_err(|e| {
                        SgError::new(code::CLIENT_GONE, "TLS handshake failed").with_detail(e)
                    })?;
                    self.io = Some(MaybeTls::Tls(Box::new(tls)));
                    self.tls = true;
                }
                GSSENC_REQUEST if !self.tls => self.write(b"N").await?,
                CANCEL_REQUEST => return Ok(Some(Opening::Cancel(r.i32()?, r.i32()?))),
                PROTOCOL_3_0 => break startup_params(r.rest())?,
                v if v >> 16 == 3 => {
                    // A newer 3.x minor (or _pq_ options) would need NegotiateProtocolVersion;
                    // libpq asks for 3.0 unless told otherwise.
                    return Err(SgError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!(
                            "shardgate does not support frontend protocol 3.{}: only 3.0",
                            v & 0xffff
                        ),
                    ));
                }
                v => {
                    return Err(SgError::new(
                        code::PROTOCOL_VIOLATION,
                        format!(
                            "unsupported frontend protocol {}.{}: server supports 3.0 to 3.0",
                            v >> 16,
                            v & 0xffff
                        ),
                    ))
                }
            }
        };
        let user = params.get("user").cloned().unwrap_or_default();
        if user.is_empty() {
            return Err(SgError::new(
                code::INVALID_AUTHORIZATION,
                "no PostgreSQL user name specified in startup packet",
            ));
        }
        let database = params.get("database").cloned().unwrap_or(user.clone());
        if auth.tls_required && !self.tls {
            return Err(SgError::new(
                code::INVALID_AUTHORIZATION,
                format!(
                    "no pg_hba.conf entry for host, user \"{user}\", database \"{database}\", no encryption (server.tls_required)"
                ),
            ));
        }
        let settings = super::settings::startup_settings(params.iter())?;
        let io = self.io()?;
        auth::authenticate(io, &auth.scram, &auth.users, &user).await?;
        let pid = auth
            .next_pid
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(io) = self.io.take() else {
            return Ok(None);
        };
        Ok(Some(Opening::Session(Started {
            io,
            read_buf: BytesMut::new(),
            settings,
            user,
            application_name: params.get("application_name").cloned().unwrap_or_default(),
            key: (pid, random_i32()),
        })))
    }

    async fn write(&mut self, b: &[u8]) -> Result<(), SgError> {
        self.io()?.write_all(b).await.map_err(gone)
    }
}

/// An untyped startup-phase packet (length, then body), bounded before anything is reserved;
/// None when the client closed without sending one.
async fn read_startup_packet<R: AsyncRead + Unpin>(io: &mut R) -> Result<Option<Vec<u8>>, SgError> {
    let mut len = [0u8; 4];
    if io.read_exact(&mut len).await.is_err() {
        return Ok(None);
    }
    let len = i32::from_be_bytes(len);
    let body = usize::try_from(len)
        .ok()
        .filter(|&l| (8..=MAX_STARTUP_PACKET).contains(&l))
        .map(|l| l - 4)
        .ok_or_else(|| {
            SgError::new(code::PROTOCOL_VIOLATION, "invalid length of startup packet")
        })?;
    let mut buf = vec![0u8; body];
    io.read_exact(&mut buf).await.map_err(|e| {
        SgError::new(code::PROTOCOL_VIOLATION, "incomplete startup packet").with_detail(e)
    })?;
    Ok(Some(buf))
}

/// The name/value pairs of a 3.0 startup packet (ProcessStartupPacket).
fn startup_params(body: &[u8]) -> Result<BTreeMap<String, String>, SgError> {
    let invalid = || {
        SgError::new(
            code::PROTOCOL_VIOLATION,
            "invalid startup packet layout: expected terminator as last byte",
        )
    };
    if body.last() != Some(&0) {
        return Err(invalid());
    }
    let mut r = Reader::new(body);
    let mut out = BTreeMap::new();
    loop {
        let name = r.cstr().map_err(|_| invalid())?;
        if name.is_empty() {
            return Ok(out);
        }
        let value = r.cstr().map_err(|_| invalid())?;
        out.insert(name.to_string(), value.to_string());
    }
}

pub(super) fn random_i32() -> i32 {
    let n = random_nonce();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&n, &mut h);
    std::hash::Hasher::finish(&h) as i32
}
