//! Authentication of a client during its opening: SCRAM-SHA-256 (RFC 5802/7677 over
//! PostgreSQL's SASL messages, libpq/auth-scram.c) against the config's users, with pgwire's
//! sans-IO `ScramServerAuth` doing the cryptography. Messages are read with their lengths
//! checked first, at most PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH.

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::api::auth::sasl::scram::{gen_salted_password, random_nonce, ScramServerAuth};
use pgwire::api::auth::Password;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{code, SgError};
use crate::protocol::backend as be;
use crate::protocol::frontend::put_cstr;
use crate::protocol::{Frame, Reader};

pub const SCRAM_ITERATIONS: usize = 4096;
const SALT: &[u8] = b"shardgate-scram-salt";
/// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH (auth.h): the largest password or SASL message.
const MAX_AUTH_MESSAGE: usize = 65_535;

/// The configured users' salted passwords, computed once (PBKDF2 is deliberately slow), and a
/// stand-in for names that are not users, so that an unknown user goes through the same
/// exchange and fails at the same step with the same text as a wrong password (auth-scram.c's
/// mock authentication).
#[derive(Debug)]
pub struct Users {
    salted: HashMap<String, Vec<u8>>,
    mock: Vec<u8>,
    /// Users who authenticate with md5, and their passwords.
    md5: HashMap<String, String>,
}

impl Users {
    pub fn new(users: &BTreeMap<String, String>) -> Users {
        Self::with_md5(users, &Default::default())
    }

    pub fn with_md5(
        users: &BTreeMap<String, String>,
        md5: &std::collections::BTreeSet<String>,
    ) -> Users {
        Users {
            salted: users
                .iter()
                .filter(|(u, _)| !md5.contains(*u))
                .map(|(u, p)| (u.clone(), gen_salted_password(p, SALT, SCRAM_ITERATIONS)))
                .collect(),
            mock: gen_salted_password(&random_nonce(), SALT, SCRAM_ITERATIONS),
            md5: users
                .iter()
                .filter(|(u, _)| md5.contains(*u))
                .map(|(u, p)| (u.clone(), p.clone()))
                .collect(),
        }
    }

    fn password(&self, user: &str) -> Password {
        let p = self.salted.get(user).unwrap_or(&self.mock);
        Password::new(Some(SALT.to_vec()), p.clone())
    }
}

/// The user's password exchange: md5 for the users configured so, else SCRAM-SHA-256.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    server: &ScramServerAuth,
    users: &Users,
    user: &str,
) -> Result<(), SgError> {
    match users.md5.get(user) {
        Some(password) => md5(io, user, password).await,
        None => scram(io, server, users, user).await,
    }
}

/// md5 (auth.c CheckMD5Auth): a random salt, and the client answers
/// "md5" + md5(md5(password + user) + salt) in hex.
async fn md5<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    user: &str,
    password: &str,
) -> Result<(), SgError> {
    let salt = super::startup::random_i32().to_be_bytes();
    write(io, &auth_message(5, &salt).raw).await?;
    let Some(answer) = read_password_message(io).await? else {
        return Err(SgError::new(
            code::CLIENT_GONE,
            "client left during authentication",
        ));
    };
    let want =
        postgres_protocol::authentication::md5_hash(user.as_bytes(), password.as_bytes(), salt);
    let got = answer.strip_suffix(&[0u8]).unwrap_or(&answer);
    // Compared in constant time: how much of a guess was right must not show in the timing.
    let same = got.len() == want.len()
        && got
            .iter()
            .zip(want.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(SgError::new(
            code::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        ))
    }
}

/// SCRAM-SHA-256 (RFC 7677 over PostgreSQL's SASL messages). Any failure, for a known or
/// an unknown user, is PostgreSQL's one text for it.
pub async fn scram<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    server: &ScramServerAuth,
    users: &Users,
    user: &str,
) -> Result<(), SgError> {
    let failed = || {
        SgError::new(
            code::INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        )
    };
    let malformed = |detail: &str| {
        SgError::new(code::PROTOCOL_VIOLATION, "malformed SCRAM message").with_detail(detail)
    };
    let mut mechanisms = BytesMut::new();
    put_cstr(&mut mechanisms, "SCRAM-SHA-256");
    mechanisms.put_u8(0);
    write(io, &auth_message(10, &mechanisms).raw).await?;

    let Some(first) = read_password_message(io).await? else {
        return Err(SgError::new(
            code::CLIENT_GONE,
            "client left during authentication",
        ));
    };
    let mut r = Reader::new(&first);
    let mechanism = r.cstr().map_err(|_| malformed("mechanism"))?;
    if mechanism != "SCRAM-SHA-256" {
        return Err(SgError::new(
            code::PROTOCOL_VIOLATION,
            "client selected an invalid SASL authentication mechanism",
        ));
    }
    let len = r.i32().map_err(|_| malformed("length"))?;
    let data = usize::try_from(len)
        .ok()
        .and_then(|n| r.bytes(n).ok())
        .ok_or_else(|| malformed("initial response length"))?;
    let (server_first, waiting) = server
        .on_client_first_message(data, users.password(user))
        .map_err(|e| malformed(&e.to_string()))?;
    write(io, &auth_message(11, server_first.as_bytes()).raw).await?;

    let Some(fin) = read_password_message(io).await? else {
        return Err(SgError::new(
            code::CLIENT_GONE,
            "client left during authentication",
        ));
    };
    match waiting.on_client_final_message(&fin) {
        Ok(server_final) => write(io, &auth_message(12, server_final.as_bytes()).raw).await,
        Err(pgwire::error::PgWireError::InvalidPassword(_)) => Err(failed()),
        Err(e) => Err(malformed(&e.to_string())),
    }
}

/// The body of the client's next 'p' message; None when it terminated.
async fn read_password_message<S: AsyncRead + Unpin>(io: &mut S) -> Result<Option<Bytes>, SgError> {
    let mut head = [0u8; 5];
    if io.read_exact(&mut head).await.is_err() {
        return Ok(None);
    }
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    match head[0] {
        b'p' => {}
        b'X' => return Ok(None),
        t => {
            return Err(SgError::new(
                code::PROTOCOL_VIOLATION,
                format!("expected SASL response, got message type {}", t),
            ))
        }
    }
    let body = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_sub(4))
        .filter(|&l| l <= MAX_AUTH_MESSAGE)
        .ok_or_else(|| SgError::new(code::PROTOCOL_VIOLATION, "invalid password packet size"))?;
    let mut buf = vec![0u8; body];
    io.read_exact(&mut buf)
        .await
        .map_err(super::startup::gone)?;
    Ok(Some(Bytes::from(buf)))
}

async fn write<S: AsyncWrite + Unpin>(io: &mut S, b: &[u8]) -> Result<(), SgError> {
    io.write_all(b).await.map_err(super::startup::gone)
}

/// An Authentication message (`R`) of this kind.
pub fn auth_message(kind: i32, data: &[u8]) -> Frame {
    let mut b = BytesMut::with_capacity(4 + data.len());
    b.put_i32(kind);
    b.put_slice(data);
    Frame::build(be::AUTHENTICATION, &b)
}
