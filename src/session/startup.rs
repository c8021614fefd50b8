//! Startup and SCRAM-SHA-256 authentication against the config's users, done by pgwire; then
//! the socket is taken back for shardgate's own frame loop.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::StreamExt;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{AuthSource, LoginInfo, Password, ServerParameterProvider, StartupHandler};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::SecretKey;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{negotiate_tls, process_error, MaybeTls};
use tokio::net::TcpStream;

use crate::execute::Shared;

const SCRAM_ITERATIONS: usize = 4096;
const SALT: &[u8] = b"shardgate-scram-salt";

/// The configured users' salted passwords, computed once (PBKDF2 is deliberately slow).
#[derive(Debug)]
pub struct Users {
    salted: HashMap<String, Vec<u8>>,
}

impl Users {
    pub fn new(users: &BTreeMap<String, String>) -> Users {
        Users {
            salted: users
                .iter()
                .map(|(u, p)| (u.clone(), gen_salted_password(p, SALT, SCRAM_ITERATIONS)))
                .collect(),
        }
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or("");
        match self.salted.get(user) {
            Some(p) => Ok(Password::new(Some(SALT.to_vec()), p.clone())),
            None => Err(PgWireError::InvalidPassword(user.to_string())),
        }
    }
}

struct Params {
    shared: Arc<Shared>,
}

impl ServerParameterProvider for Params {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let mut m: HashMap<String, String> = self.shared.server_params.iter().cloned().collect();
        m.insert(
            "application_name".into(),
            client
                .metadata()
                .get("application_name")
                .cloned()
                .unwrap_or_default(),
        );
        if let Some(user) = client.metadata().get("user") {
            m.insert("session_authorization".into(), user.clone());
        }
        Some(m)
    }
}

pub struct Authenticator {
    handler: SASLAuthStartupHandler<Params>,
}

impl Authenticator {
    pub fn new(shared: Arc<Shared>, users: Arc<Users>) -> Authenticator {
        let mut scram = ScramAuth::new(users);
        scram.set_iterations(SCRAM_ITERATIONS);
        Authenticator {
            handler: SASLAuthStartupHandler::new(Arc::new(Params { shared })).with_scram(scram),
        }
    }
}

/// An authenticated client: its socket, bytes it already sent, and its startup settings.
pub struct Started {
    pub io: MaybeTls,
    pub read_buf: BytesMut,
    /// Startup parameters that are session settings (DateStyle, TimeZone, ...), as SETs.
    pub settings: BTreeMap<String, String>,
    /// The BackendKeyData the client got: its key for CancelRequest.
    pub key: (i32, SecretKey),
}

/// What a new connection turned out to be.
pub enum Opening {
    Session(Started),
    /// A CancelRequest for the session with this key.
    Cancel(i32, SecretKey),
}

/// Startup parameters that are not settings.
const NOT_SETTINGS: [&str; 5] = [
    "user",
    "database",
    "replication",
    "options",
    "client_encoding",
];

pub async fn startup(
    socket: TcpStream,
    auth: &Authenticator,
    timeout: std::time::Duration,
) -> Option<Opening> {
    let fut = async {
        let mut framed = negotiate_tls::<()>(socket, None).await.ok()??;
        while let Some(Ok(msg)) = framed.next().await {
            if let PgWireFrontendMessage::CancelRequest(c) = msg {
                return Some(Opening::Cancel(c.pid, c.secret_key));
            }
            if let Err(e) = auth.handler.on_startup(&mut framed, msg).await {
                let _ = process_error(&mut framed, e, false).await;
                return None;
            }
            if matches!(framed.state(), PgWireConnectionState::ReadyForQuery) {
                let mut settings = BTreeMap::new();
                for (k, v) in framed.metadata() {
                    let name = k.to_lowercase();
                    if NOT_SETTINGS.contains(&name.as_str()) || name.starts_with("_pq_") {
                        continue;
                    }
                    let value = v.replace('\'', "''");
                    settings.insert(name.clone(), format!("SET {name} = '{value}'"));
                }
                let key = framed.pid_and_secret_key();
                let parts = framed.into_parts();
                return Some(Opening::Session(Started {
                    io: parts.io,
                    read_buf: parts.read_buf,
                    settings,
                    key,
                }));
            }
        }
        None
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}
