//! A small PostgreSQL wire-protocol client for differential tests: one query in the simple
//! protocol, or in the extended protocol with text or binary results, giving back exactly what
//! the server sent: column names, type OIDs and type modifiers from RowDescription, every value's
//! bytes, the CommandComplete tag, or the error's SQLSTATE and message. (tokio-postgres cannot
//! ask for text results in the extended protocol, and drops the simple protocol's type OIDs.)
#![allow(dead_code)]

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Simple,
    ExtText,
    ExtBinary,
}

pub const MODES: [Mode; 3] = [Mode::Simple, Mode::ExtText, Mode::ExtBinary];

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::ExtText => "extended-text",
            Mode::ExtBinary => "extended-binary",
        }
    }
}

/// One column of a RowDescription: name, type OID, type modifier.
pub type Column = (String, u32, i32);
pub type Row = Vec<Option<Vec<u8>>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    pub tag: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// SQLSTATE; empty when the connection broke or timed out.
    pub code: String,
    pub message: String,
}

pub type Outcome = Result<Answer, Failure>;

pub struct Conn {
    sock: TcpStream,
    buf: BytesMut,
}

fn io_fail(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: String::new(),
        message: format!("connection: {e}"),
    }
}

fn cstr(b: &mut &[u8]) -> String {
    let n = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..n]).to_string();
    *b = &b[(n + 1).min(b.len())..];
    s
}

fn error_fields(mut body: &[u8]) -> Failure {
    let mut f = Failure {
        code: String::new(),
        message: String::new(),
    };
    while !body.is_empty() && body[0] != 0 {
        let t = body[0];
        body = &body[1..];
        let v = cstr(&mut body);
        match t {
            b'C' => f.code = v,
            b'M' => f.message = v,
            _ => {}
        }
    }
    f
}

impl Conn {
    pub async fn connect(port: u16, user: &str, password: &str, db: &str) -> Result<Conn, Failure> {
        let sock = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(io_fail)?;
        let _ = sock.set_nodelay(true);
        let mut c = Conn {
            sock,
            buf: BytesMut::new(),
        };
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", user),
                ("database", db),
                ("client_encoding", "UTF8"),
            ],
            &mut out,
        )
        .map_err(io_fail)?;
        c.send(&out).await?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = c.read().await?;
            match tag {
                b'R' => {
                    let mut b = &body[..];
                    let code = b.get_i32();
                    let mut out = BytesMut::new();
                    match code {
                        0 => {}
                        3 => {
                            frontend::password_message(password.as_bytes(), &mut out)
                                .map_err(io_fail)?;
                        }
                        5 => {
                            let salt = [b[0], b[1], b[2], b[3]];
                            let h = postgres_protocol::authentication::md5_hash(
                                user.as_bytes(),
                                password.as_bytes(),
                                salt,
                            );
                            frontend::password_message(h.as_bytes(), &mut out).map_err(io_fail)?;
                        }
                        10 => {
                            let s = ScramSha256::new(
                                password.as_bytes(),
                                ChannelBinding::unsupported(),
                            );
                            frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut out)
                                .map_err(io_fail)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| io_fail("SASL continue"))?;
                            s.update(b).map_err(io_fail)?;
                            frontend::sasl_response(s.message(), &mut out).map_err(io_fail)?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| io_fail("SASL final"))?;
                            s.finish(b).map_err(io_fail)?;
                        }
                        other => return Err(io_fail(format!("auth method {other}"))),
                    }
                    if !out.is_empty() {
                        c.send(&out).await?;
                    }
                }
                b'E' => return Err(error_fields(&body)),
                b'Z' => return Ok(c),
                _ => {}
            }
        }
    }

    /// Sends raw frontend messages; returns each message's type (and an error's SQLSTATE)
    /// up to ReadyForQuery, whose status ends the list.
    pub async fn exchange(&mut self, b: &[u8]) -> Result<Vec<String>, Failure> {
        self.send(b).await?;
        let mut out = Vec::new();
        loop {
            let (t, body) = self.read().await?;
            match t {
                b'E' => out.push(format!("E {}", error_fields(&body).code)),
                b'Z' => {
                    out.push(format!(
                        "Z {}",
                        body.first().map(|s| *s as char).unwrap_or('?')
                    ));
                    return Ok(out);
                }
                b'N' | b'S' => {}
                t => out.push((t as char).to_string()),
            }
        }
    }

    async fn send(&mut self, b: &[u8]) -> Result<(), Failure> {
        self.sock.write_all(b).await.map_err(io_fail)
    }

    async fn read(&mut self) -> Result<(u8, Vec<u8>), Failure> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    self.buf.advance(5);
                    let body = self.buf.split_to(len - 4).to_vec();
                    return Ok((tag, body));
                }
            }
            let n = self.sock.read_buf(&mut self.buf).await.map_err(io_fail)?;
            if n == 0 {
                return Err(io_fail("closed"));
            }
        }
    }

    /// Reads up to ReadyForQuery; the first error wins; the last result is kept.
    async fn collect(&mut self) -> Outcome {
        let mut err: Option<Failure> = None;
        let mut cur = Answer {
            columns: Vec::new(),
            rows: Vec::new(),
            tag: String::new(),
        };
        let mut results = 0;
        loop {
            let (tag, body) = self.read().await?;
            let mut b = &body[..];
            match tag {
                b'T' => {
                    let n = b.get_i16();
                    cur.columns.clear();
                    for _ in 0..n {
                        let name = cstr(&mut b);
                        let _table = b.get_i32();
                        let _att = b.get_i16();
                        let oid = b.get_u32();
                        let _len = b.get_i16();
                        let typmod = b.get_i32();
                        let _fmt = b.get_i16();
                        cur.columns.push((name, oid, typmod));
                    }
                }
                b'D' => {
                    let n = b.get_i16();
                    let mut row = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let len = b.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else {
                            row.push(Some(b[..len as usize].to_vec()));
                            b.advance(len as usize);
                        }
                    }
                    cur.rows.push(row);
                }
                b'C' => {
                    cur.tag = cstr(&mut b);
                    results += 1;
                }
                b'E' if err.is_none() => err = Some(error_fields(b)),
                b'Z' => break,
                _ => {}
            }
        }
        match err {
            Some(e) => Err(e),
            None if results == 0 && cur.columns.is_empty() => Err(Failure {
                code: String::new(),
                message: "no result".into(),
            }),
            None => Ok(cur),
        }
    }

    /// COPY ... FROM STDIN in a simple Query: `chunks` as CopyData messages cut exactly so,
    /// then CopyFail with `fail` if given, else CopyDone. The command tag, or the error.
    pub async fn copy_in(
        &mut self,
        sql: &str,
        chunks: &[&[u8]],
        fail: Option<&str>,
    ) -> Result<String, Failure> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(io_fail)?;
        self.send(&out).await?;
        loop {
            let (tag, body) = self.read().await?;
            match tag {
                b'G' => break,
                b'E' => {
                    let e = error_fields(&body);
                    while self.read().await?.0 != b'Z' {}
                    return Err(e);
                }
                _ => {}
            }
        }
        let mut out = BytesMut::new();
        for c in chunks {
            out.put_u8(b'd');
            out.put_i32(c.len() as i32 + 4);
            out.put_slice(c);
        }
        match fail {
            Some(msg) => {
                out.put_u8(b'f');
                out.put_i32(msg.len() as i32 + 5);
                out.put_slice(msg.as_bytes());
                out.put_u8(0);
            }
            None => {
                out.put_u8(b'c');
                out.put_i32(4);
            }
        }
        self.send(&out).await?;
        let mut tag = Err(Failure {
            code: String::new(),
            message: "no result".into(),
        });
        loop {
            let (t, body) = self.read().await?;
            match t {
                b'C' if tag.is_err() => tag = Ok(cstr(&mut &body[..])),
                b'E' => tag = Err(error_fields(&body)),
                b'Z' => return tag,
                _ => {}
            }
        }
    }

    pub async fn run(&mut self, mode: Mode, sql: &str) -> Outcome {
        let mut out = BytesMut::new();
        match mode {
            Mode::Simple => frontend::query(sql, &mut out).map_err(io_fail)?,
            Mode::ExtText | Mode::ExtBinary => {
                let fmt: i16 = if mode == Mode::ExtBinary { 1 } else { 0 };
                frontend::parse("", sql, std::iter::empty(), &mut out).map_err(io_fail)?;
                frontend::describe(b'S', "", &mut out).map_err(io_fail)?;
                frontend::bind(
                    "",
                    "",
                    std::iter::empty::<i16>(),
                    std::iter::empty::<()>(),
                    |_: (), _: &mut BytesMut| {
                        Ok::<_, Box<dyn std::error::Error + Sync + Send>>(
                            postgres_protocol::IsNull::Yes,
                        )
                    },
                    [fmt],
                    &mut out,
                )
                .map_err(|_| io_fail("bind"))?;
                frontend::execute("", 0, &mut out).map_err(io_fail)?;
                frontend::sync(&mut out);
            }
        }
        self.send(&out).await?;
        self.collect().await
    }
}

/// A connection that is replaced after a timeout or a broken connection.
pub struct Session {
    pub port: u16,
    pub user: String,
    pub password: String,
    pub db: String,
    conn: Option<Conn>,
}

pub const TIMEOUT: Duration = Duration::from_secs(30);

impl Session {
    pub fn new(port: u16, user: &str, password: &str, db: &str) -> Session {
        Session {
            port,
            user: user.into(),
            password: password.into(),
            db: db.into(),
            conn: None,
        }
    }

    pub async fn run(&mut self, mode: Mode, sql: &str) -> Outcome {
        if self.conn.is_none() {
            self.conn = Some(Conn::connect(self.port, &self.user, &self.password, &self.db).await?);
        }
        let c = self.conn.as_mut().expect("connection");
        match tokio::time::timeout(TIMEOUT, c.run(mode, sql)).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(f)) => {
                if f.code.is_empty() {
                    self.conn = None;
                }
                Err(f)
            }
            Err(_) => {
                self.conn = None;
                Err(Failure {
                    code: String::new(),
                    message: format!("HANG: no answer within {}s", TIMEOUT.as_secs()),
                })
            }
        }
    }
}

/// What a pipeline of statements got: each statement's command tag up to the first error, the
/// error, and the transaction status of the final ReadyForQuery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piped {
    pub tags: Vec<String>,
    pub error: Option<String>,
    pub status: u8,
}

impl Conn {
    /// Parse/Bind/Execute of every statement, then one Sync (as psycopg's executemany and
    /// pgjdbc's batches send them): PostgreSQL runs them in one implicit transaction.
    pub async fn pipeline(&mut self, stmts: &[&str]) -> Result<Piped, Failure> {
        let mut out = BytesMut::new();
        for sql in stmts {
            frontend::parse("", sql, std::iter::empty(), &mut out).map_err(io_fail)?;
            frontend::bind(
                "",
                "",
                std::iter::empty::<i16>(),
                std::iter::empty::<()>(),
                |_: (), _: &mut BytesMut| {
                    Ok::<_, Box<dyn std::error::Error + Sync + Send>>(
                        postgres_protocol::IsNull::Yes,
                    )
                },
                [0i16],
                &mut out,
            )
            .map_err(|_| io_fail("bind"))?;
            frontend::execute("", 0, &mut out).map_err(io_fail)?;
        }
        frontend::sync(&mut out);
        self.send(&out).await?;
        let mut p = Piped {
            tags: Vec::new(),
            error: None,
            status: b'?',
        };
        loop {
            let (tag, body) = self.read().await?;
            let mut b = &body[..];
            match tag {
                b'C' => p.tags.push(cstr(&mut b)),
                b'E' if p.error.is_none() => p.error = Some(error_fields(b).code),
                b'Z' => {
                    p.status = b.first().copied().unwrap_or(b'?');
                    return Ok(p);
                }
                _ => {}
            }
        }
    }
}
