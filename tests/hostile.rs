//! Issue 7's openings: what a client that has not logged in can send, the connection limits,
//! authentication texts, and TLS. shardgate here has no worker behind it (the opening needs
//! none), so these run in seconds; the regression corpus holds the inputs that crashed
//! sessions through pgwire's decoder before shardgate read openings itself.

mod common;

use std::time::Duration;

use common::own::{code, message, Own};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn message_bytes(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Sends `bytes`, then reads what comes back until the server closes (bounded).
async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = s.write_all(bytes).await;
    // Nothing more is coming: the server sees the end at once instead of waiting for it.
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

/// The SQLSTATE of the first ErrorResponse in `reply`.
fn error_code(reply: &[u8]) -> Option<String> {
    let at = reply.iter().position(|&b| b == b'E')?;
    let body = &reply[at + 5..];
    let c = body.windows(7).find(|w| w[0] == b'C')?;
    Some(String::from_utf8_lossy(&c[1..6]).to_string())
}

/// Inputs that crashed pgwire's startup decoder (its Bind and SASLInitialResponse decoders
/// read past the message), and other malformed openings. Each must be answered or closed.
fn corpus() -> Vec<Vec<u8>> {
    let hello = startup_packet(&[("user", "app"), ("database", "app")]);
    let with = |tail: Vec<u8>| {
        let mut v = hello.clone();
        v.extend(tail);
        v
    };
    let mut sasl_huge = b"SCRAM-SHA-256\0".to_vec();
    sasl_huge.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut sasl_negative = b"SCRAM-SHA-256\0".to_vec();
    sasl_negative.extend_from_slice(&(-7i32).to_be_bytes());
    vec![
        with(message_bytes(b'B', &[0, 0])),
        with(message_bytes(b'B', &[0, 0, 0xff, 0xff])),
        with(message_bytes(b'p', &sasl_huge)),
        with(message_bytes(b'p', &sasl_negative)),
        with(message_bytes(b'p', b"SCRAM-SHA-256")),
        with(message_bytes(b'p', b"PLAIN\0\0\0\0\x01x")),
        with(message_bytes(b'Q', b"SELECT 1\0")),
        with(vec![b'p', 0x7f, 0xff, 0xff, 0xff]),
        with(vec![b'p', 0, 0, 0, 0]),
        (-1i32).to_be_bytes().to_vec(),
        0i32.to_be_bytes().to_vec(),
        [i32::MAX.to_be_bytes(), 196_608i32.to_be_bytes()].concat(),
        [8i32.to_be_bytes(), 80_877_103i32.to_be_bytes()]
            .concat()
            .repeat(5),
        [
            16i32.to_be_bytes(),
            80_877_102i32.to_be_bytes(),
            1i32.to_be_bytes(),
            2i32.to_be_bytes(),
        ]
        .concat(),
        [
            12i32.to_be_bytes(),
            0x0004_0000i32.to_be_bytes(),
            [0, 0, 0, 0],
        ]
        .concat(),
        startup_packet(&[
            ("user", "app"),
            (
                "datestyle = 'ISO'; CREATE TABLE injected_marker(x int); SET datestyle",
                "x",
            ),
        ]),
        startup_packet(&[("database", "app")]),
        vec![0x16, 3, 1, 0, 0x50, 1, 0, 0, 0x4c],
        (0..=255u8).cycle().take(100_000).collect(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_openings_are_answered_never_crash() {
    let own = Own::start("hostile-openings", 0, "auth_timeout_secs = 2\n", "").await;
    for (i, bytes) in corpus().iter().enumerate() {
        let reply = exchange(own.port, bytes).await;
        if let Some(c) = error_code(&reply) {
            assert!(
                ["08P01", "28000", "42704", "0A000", "08006", "28P01"].contains(&c.as_str()),
                "input {i}: {c}"
            );
        }
    }
    // A parameter name that tries to be SQL is refused as PostgreSQL refuses an unknown one.
    let bad = startup_packet(&[("user", "app"), ("a'; DROP TABLE t; --", "1")]);
    assert_eq!(
        error_code(&exchange(own.port, &bad).await).as_deref(),
        Some("42704")
    );
    // Seeded mutations of a valid opening, over real sockets.
    let mut x: u64 = 0x5eed_0003;
    let base = corpus();
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = base[(x % base.len() as u64) as usize].clone();
        if !b.is_empty() {
            let at = (x >> 8) as usize % b.len();
            b[at] ^= (x >> 16) as u8 | 1;
            b.truncate(at + 1 + ((x >> 24) as usize % (b.len() - at)));
        }
        let _ = exchange(own.port, &b).await;
    }
    let c = own.connect().await.expect("still serving after the corpus");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_read_alike_for_known_and_unknown_users() {
    let own = Own::start("hostile-auth", 0, "", "").await;
    let wrong = own
        .connect_as("app", "nope")
        .await
        .expect_err("wrong password");
    let unknown = own
        .connect_as("nobody", "nope")
        .await
        .expect_err("unknown user");
    assert_eq!(code(&wrong), "28P01");
    assert_eq!(code(&unknown), "28P01");
    assert_eq!(
        message(&wrong),
        "password authentication failed for user \"app\""
    );
    assert_eq!(
        message(&unknown),
        "password authentication failed for user \"nobody\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_answer_53300_and_silent_sockets_time_out() {
    let own = Own::start(
        "hostile-limits",
        0,
        "max_clients = 3\nauth_timeout_secs = 1\n",
        "[[users]]\nname = \"limited\"\npassword = \"pw\"\nmax_connections = 1\n",
    )
    .await;
    // Silent sockets are openings, not clients: they hold no slot, and are closed in time.
    let silent = silent_sockets(own.port, 25).await;
    let l1 = own
        .connect_as("limited", "pw")
        .await
        .expect("first limited");
    let e = own
        .connect_as("limited", "pw")
        .await
        .expect_err("second limited");
    assert_eq!(code(&e), "53300");
    assert_eq!(message(&e), "too many connections for role \"limited\"");
    let a = own.connect().await.expect("second client");
    let b = own.connect().await.expect("third client");
    let e = own.connect().await.expect_err("fourth client");
    assert_eq!(code(&e), "53300");
    assert_eq!(message(&e), "sorry, too many clients already");
    drop((a, l1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = own.connect().await.expect("a freed slot is usable");
    drop(b);
    for mut s in silent {
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "a silent socket outlived auth_timeout_secs");
    }
}

/// Connections that never say a word.
async fn silent_sockets(port: u16, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TcpStream::connect(("127.0.0.1", port)).await.expect("tcp"));
    }
    out
}

/// Raises this process's open-file limit to what 1,000 clients and their server ends need.
fn raise_fd_limit() {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    extern "C" {
        fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7;
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: plain libc calls with a properly laid out struct rlimit (two rlim_t on Linux).
    unsafe {
        if getrlimit(RLIMIT_NOFILE, &mut r) == 0 && r.cur < 8192 {
            r.cur = r.max.min(8192);
            setrlimit(RLIMIT_NOFILE, &r);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_clients_and_silent_sockets_leave_room() {
    raise_fd_limit();
    let own = Own::start(
        "hostile-idle",
        0,
        "max_clients = 1100\nauth_timeout_secs = 60\n",
        "",
    )
    .await;
    let silent = silent_sockets(own.port, 25).await;
    let mut idle = Vec::new();
    for chunk in 0..20 {
        let batch: Vec<_> = (0..50).map(|_| own.connect()).collect();
        for (i, c) in futures::future::join_all(batch)
            .await
            .into_iter()
            .enumerate()
        {
            idle.push(c.unwrap_or_else(|e| panic!("idle client {}: {e}", chunk * 50 + i)));
        }
    }
    assert_eq!(idle.len(), 1000);
    let real = own.connect().await.expect("a real client gets in");
    drop(real);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_sslmode_require_verify_full_and_tls_required() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tls-{}", std::process::id()));
    certificates(&dir, &["localhost"]);
    let (ca_pem, cert_pem, key_pem) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    let server = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_required = true\n",
        cert_pem.display(),
        key_pem.display()
    );
    let own = Own::start("hostile-tls", 0, &server, "").await;
    let psql = |mode: &str| {
        let out = std::process::Command::new("psql")
            .arg(format!(
                "host=localhost port={} user=app dbname=app sslmode={mode} sslrootcert={}",
                own.port,
                ca_pem.display()
            ))
            .args(["-X", "-c", "\\conninfo"])
            .env("PGPASSWORD", "app-secret")
            .output()
            .expect("psql");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    for mode in ["require", "verify-full"] {
        let (ok, out) = psql(mode);
        assert!(
            ok && out.contains("SSL connection"),
            "sslmode={mode}: {out}"
        );
    }
    let (ok, out) = psql("disable");
    assert!(
        !ok && out.contains("no encryption"),
        "plaintext refused: {out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA and a certificate for `names`, written into `dir` as ca.pem, cert.pem and key.pem.
fn certificates(dir: &std::path::Path, names: &[&str]) {
    std::fs::create_dir_all(dir).expect("dir");
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "shardgate test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names).expect("params");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).expect("cert");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
}

/// Workers that take their shardgate role over TLS only (`hostnossl ... reject`): with
/// `sslmode=verify-full` in the node URLs every path reaches them (pools, scatter, the
/// catalog, two-phase commit) and their sessions are encrypted; the same URL without TLS, or
/// with a CA that did not sign their certificate, does not get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_reached_over_tls_when_the_node_url_asks() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("worker-tls-{}", std::process::id()));
    certificates(&dir, &["localhost", "127.0.0.1"]);
    certificates(&dir.join("other"), &["localhost", "127.0.0.1"]);
    let ca = dir.join("ca.pem").display().to_string();
    let url_ca = ca.clone();
    let url = move |p: u16| {
        format!("postgresql://tlsuser@127.0.0.1:{p}/app?sslmode=verify-full&sslrootcert={url_ca}")
    };
    let certs = dir.clone();
    let prepare = move |root: &std::path::Path, ports: &[u16]| {
        for (i, port) in ports.iter().enumerate() {
            let data = root.join(format!("w{}", i + 1)).join("data");
            let owner = std::fs::metadata(&data).expect("data dir");
            for f in ["cert.pem", "key.pem"] {
                let to = data.join(format!("worker-{f}"));
                std::fs::copy(certs.join(f), &to).expect("copy");
                std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).expect("chown");
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
            }
            let hba = data.join("pg_hba.conf");
            let old = std::fs::read_to_string(&hba).expect("hba");
            std::fs::write(&hba, format!("hostnossl all tlsuser all reject\n{old}")).expect("hba");
            let mut psql = std::process::Command::new("psql");
            psql.args(["-X", "-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-U", "postgres", "-d", "app", "-v", "ON_ERROR_STOP=1"]);
            for sql in [
                "CREATE ROLE tlsuser LOGIN SUPERUSER",
                "ALTER SYSTEM SET ssl = on",
                "ALTER SYSTEM SET ssl_cert_file = 'worker-cert.pem'",
                "ALTER SYSTEM SET ssl_key_file = 'worker-key.pem'",
                "SELECT pg_reload_conf()",
            ] {
                psql.args(["-c", sql]);
            }
            let out = psql.output().expect("psql");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let own = Own::start_custom("worker-tls", 2, "", "", "", &url, &prepare).await;
    let c = own.connect().await.expect("connect");
    // Keyed, scatter and a two-node transaction (two-phase commit over the control path).
    let n: i64 = c
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("scatter")
        .get(0);
    assert_eq!(n, 100);
    c.batch_execute("BEGIN; UPDATE t SET v = 'x' WHERE id = 1; UPDATE t SET v = 'y' WHERE id = 2; UPDATE t SET v = 'z' WHERE id = 3; COMMIT")
        .await
        .expect("two-node transaction");
    let v: Vec<String> = c
        .query("SELECT v FROM t WHERE id IN (1, 2, 3) ORDER BY id", &[])
        .await
        .expect("read back")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(v, ["x", "y", "z"]);
    let ssl: bool = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the worker session is not encrypted");
    // The same node without TLS, and with another CA: refused.
    let port = own.worker_ports[0];
    let attempt = |url: String| async move {
        let t = shardgate::execute::backend::Target::from_url(
            0,
            "w1",
            &url,
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .expect("target");
        shardgate::execute::backend::Backend::connect_unwatched(&t)
            .await
            .map(|_| ())
    };
    let plain = attempt(format!("postgresql://tlsuser@127.0.0.1:{port}/app")).await;
    assert!(plain.is_err(), "a plain connection got in");
    let other = dir.join("other/ca.pem").display().to_string();
    let wrong = attempt(format!(
        "postgresql://tlsuser@127.0.0.1:{port}/app?sslmode=verify-full&sslrootcert={other}"
    ))
    .await;
    assert!(
        wrong.as_ref().is_err_and(|e| e.to_string().contains("TLS")),
        "{wrong:?}"
    );
    let require = attempt(format!(
        "postgresql://tlsuser@127.0.0.1:{port}/app?sslmode=require"
    ))
    .await;
    assert!(require.is_ok(), "{require:?}");
}
