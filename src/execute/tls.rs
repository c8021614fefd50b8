//! TLS towards workers, as the node URL asks for it with libpq's parameters (libpq-ssl.html):
//! `sslmode` (disable, allow, prefer, require, verify-ca, verify-full) and `sslrootcert`. Both
//! the raw data-path connections (SSLRequest, then a rustls handshake) and the control path
//! (tokio-postgres through tokio-postgres-rustls) follow the same mode.
//!
//! Without `sslmode` a node is reached without TLS (libpq would try it first: `prefer`); with
//! it, as libpq does: `require` encrypts without checking the certificate unless `sslrootcert`
//! is given (then as `verify-ca`), `verify-ca` checks the chain against `sslrootcert`,
//! `verify-full` the chain and the host name.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pgwire::tokio::tokio_rustls::{client::TlsStream, rustls, TlsConnector};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::error::{SgError, SgResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Disable,
    /// TLS when the worker offers it (libpq's `allow` and `prefer` alike: shardgate makes one
    /// attempt, TLS first).
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// How one node is reached: the mode and, unless disabled, the rustls configuration.
#[derive(Clone)]
pub struct WorkerTls {
    pub mode: Mode,
    config: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for WorkerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerTls({:?})", self.mode)
    }
}

impl WorkerTls {
    pub fn disabled() -> WorkerTls {
        WorkerTls {
            mode: Mode::Disable,
            config: None,
        }
    }
}

/// Splits the libpq TLS parameters off a node URL: the URL tokio-postgres reads (without
/// them) and how to reach the node.
pub fn from_url(url: &str) -> Result<(String, WorkerTls), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), WorkerTls::disabled()));
    };
    let (mut mode, mut rootcert) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(v.to_string()),
            "sslrootcert" => rootcert = Some(percent_decode(v)?),
            _ => kept.push(pair),
        }
    }
    let rest = match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    };
    let mode = match (mode.as_deref(), &rootcert) {
        (None | Some("disable"), _) => Mode::Disable,
        (Some("allow" | "prefer"), _) => Mode::Prefer,
        // libpq: "if a root CA file exists, the behavior of sslmode=require will be the same
        // as that of verify-ca".
        (Some("require"), None) => Mode::Require,
        (Some("require" | "verify-ca"), Some(_)) => Mode::VerifyCa,
        (Some("verify-full"), Some(_)) => Mode::VerifyFull,
        (Some(m @ ("verify-ca" | "verify-full")), None) => {
            return Err(format!("sslmode={m} needs sslrootcert (the CA file)"))
        }
        (Some(m), _) => return Err(format!("invalid sslmode \"{m}\"")),
    };
    if mode == Mode::Disable {
        return Ok((rest, WorkerTls::disabled()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match (&rootcert, mode) {
        (Some(path), Mode::VerifyCa | Mode::VerifyFull) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for c in certs {
                let c = c.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            let verifier: Arc<dyn ServerCertVerifier> = match mode {
                Mode::VerifyFull => webpki,
                _ => Arc::new(ChainOnly(webpki)),
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
    };
    Ok((
        rest,
        WorkerTls {
            mode,
            config: Some(Arc::new(config)),
        },
    ))
}

fn percent_decode(v: &str) -> Result<String, String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in \"{v}\""))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("\"{v}\" is not UTF-8"))
}

/// `require` without a CA: encrypted, the certificate taken as it comes (libpq does the same),
/// the handshake's signatures still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the name in the certificate is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the chain was good.
        match self
            .0
            .verify_server_cert(end, intermediates, name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A data-path connection's byte stream: plain TCP or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (for the idle connection's liveness peek).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

/// SSLRequest (protocol-flow.html, "SSL Session Encryption"), then the handshake when the
/// worker agrees; a worker that declines is used in the clear only under `prefer`.
pub async fn negotiate(
    mut tcp: TcpStream,
    tls: &WorkerTls,
    host: &str,
    node: &str,
) -> SgResult<Stream> {
    let Some(config) = tls.config.clone() else {
        return Ok(Stream::Plain(tcp));
    };
    let mut req = [0u8; 8];
    req[..4].copy_from_slice(&8i32.to_be_bytes());
    req[4..].copy_from_slice(&80877103i32.to_be_bytes());
    tcp.write_all(&req)
        .await
        .map_err(|e| SgError::worker(node, e))?;
    let answer = tcp.read_u8().await.map_err(|e| SgError::worker(node, e))?;
    match answer {
        b'S' => {}
        b'N' if tls.mode == Mode::Prefer => return Ok(Stream::Plain(tcp)),
        b'N' => {
            return Err(SgError::worker(
                node,
                "the worker does not accept TLS, and the node url's sslmode requires it",
            ))
        }
        other => {
            return Err(SgError::worker(
                node,
                format!("unexpected answer {other} to SSLRequest"),
            ))
        }
    }
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| SgError::worker(node, format!("host name {host}: {e}")))?;
    let s = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| SgError::worker(node, format!("TLS handshake: {e}")))?;
    Ok(Stream::Tls(Box::new(s)))
}

/// Connects to a node for shardgate's own work (catalog, two-phase commit, recovery) with
/// the URL's TLS; the connection's task ends when the client is dropped.
pub async fn control(url: &str) -> Result<tokio_postgres::Client, String> {
    control_notified(url, None).await
}

/// As [`control`], sending `()` on `notify` for each NOTIFY the connection receives; the
/// sender is dropped when the connection ends.
pub async fn control_notified(
    url: &str,
    notify: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) -> Result<tokio_postgres::Client, String> {
    let (rest, tls) = from_url(url)?;
    let mut cfg: tokio_postgres::Config = rest.parse().map_err(|e| format!("{e}"))?;
    match tls.config {
        None => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, conn) = cfg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(pump(conn, notify));
            Ok(client)
        }
        Some(config) => {
            cfg.ssl_mode(match tls.mode {
                Mode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
            let make = tokio_postgres_rustls::MakeRustlsConnect::new((*config).clone());
            let (client, conn) = cfg.connect(make).await.map_err(|e| e.to_string())?;
            tokio::spawn(pump(conn, notify));
            Ok(client)
        }
    }
}

/// Drives a control connection until it ends, passing notifications on.
async fn pump<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    notify: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
    while let Some(m) = futures::StreamExt::next(&mut messages).await {
        match m {
            Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                if let Some(tx) = &notify {
                    let _ = tx.send(());
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_leave_the_url_tokio_postgres_reads() {
        let (rest, t) = from_url("postgresql://u@h:5/db?sslmode=require&connect_timeout=3")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rest, "postgresql://u@h:5/db?connect_timeout=3");
        assert_eq!(t.mode, Mode::Require);
        let (rest, t) = from_url("postgresql://u@h/db").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (rest.as_str(), t.mode),
            ("postgresql://u@h/db", Mode::Disable)
        );
        assert!(from_url("postgresql://u@h/db?sslmode=verify-full").is_err());
        assert!(from_url("postgresql://u@h/db?sslmode=sometimes").is_err());
        assert!(from_url("postgresql://u@h/db?sslmode=require&sslrootcert=/nonexistent").is_err());
    }
}
