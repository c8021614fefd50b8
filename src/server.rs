//! Accepts clients, caps their number, and drains on shutdown: no new sessions, running
//! statements finish, idle sessions are told to go, then the process exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::error::{code, SgError};
use crate::execute::Shared;
use crate::session::startup::{self, Authenticator, Opening, Started, Users};
use crate::session::Session;

/// How long a drain waits for sessions inside transaction blocks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the accept loop enforces, from `[server]` and `[[users]]`.
pub struct Options {
    /// Time a connection has to finish TLS, startup and authentication.
    pub auth_timeout: Duration,
    /// Connections still in their opening: they do not count against `max_clients`, and past
    /// this many more are closed at once (what keeps silent sockets from holding every slot).
    pub max_openings: usize,
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    pub tls_required: bool,
    /// Sessions per user, for users with a limit.
    pub user_limits: HashMap<String, usize>,
}

impl Options {
    pub fn from_config(c: &crate::config::Config) -> Result<Options, String> {
        let tls = match (&c.tls_cert, &c.tls_key) {
            (Some(cert), Some(key)) => Some(crate::session::tls::acceptor(
                std::path::Path::new(cert),
                std::path::Path::new(key),
            )?),
            _ => None,
        };
        Ok(Options {
            auth_timeout: Duration::from_secs(c.auth_timeout_secs.max(1)),
            max_openings: c.max_clients.max(256),
            tls,
            tls_required: c.tls_required,
            user_limits: c.user_limits.clone().into_iter().collect(),
        })
    }
}

/// Sessions per user, for the per-user limits.
#[derive(Default)]
struct PerUser(Mutex<HashMap<String, usize>>);

/// One admitted session's place in the per-user count, given back when dropped.
struct UserSlot<'a>(&'a PerUser, String);

impl Drop for UserSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = (self.0).0.lock() {
            if let Some(n) = m.get_mut(&self.1) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl PerUser {
    fn take(&self, user: &str, limit: Option<usize>) -> Option<UserSlot<'_>> {
        let mut m = self.0.lock().ok()?;
        let n = m.entry(user.to_string()).or_insert(0);
        if limit.is_some_and(|l| *n >= l) {
            return None;
        }
        *n += 1;
        Some(UserSlot(self, user.to_string()))
    }
}

pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let opts = Options::from_config(&shared.config).map_err(std::io::Error::other)?;
    crate::catalog::recovery::spawn(Arc::downgrade(&shared));
    crate::catalog::partitions::follow(Arc::downgrade(&shared));
    let max = shared.config.max_clients;
    let slots = Arc::new(Semaphore::new(max));
    let openings = Arc::new(Semaphore::new(opts.max_openings));
    let mut auth = Authenticator::new(
        Users::with_md5(&shared.config.users, &shared.config.md5_users),
        opts.tls.clone(),
        opts.tls_required,
        shared.server_params.clone(),
    );
    auth.roles = shared
        .config
        .user_roles
        .iter()
        .map(|(u, (r, _))| (u.clone(), (r.clone(), shared.superusers.contains(r))))
        .collect();
    let auth = Arc::new(auth);
    let per_user = Arc::new(PerUser::default());
    let opts = Arc::new(opts);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(opening) = openings.clone().try_acquire_owned() else {
            tracing::warn!(
                "refusing {peer}: {} connections still opening",
                opts.max_openings
            );
            drop(socket);
            continue;
        };
        let _ = crate::execute::pool::keepalive(&socket, shared.config.tcp_keepalive_secs);
        let (shared, auth, stop) = (shared.clone(), auth.clone(), stop_rx.clone());
        let (slots, per_user, opts) = (slots.clone(), per_user.clone(), opts.clone());
        let fut = async move {
            let started = match Box::pin(startup::startup(socket, &auth, opts.auth_timeout)).await {
                Some(Opening::Session(s)) => s,
                Some(Opening::Cancel(pid, secret)) => {
                    drop(opening);
                    shared.cancel(pid, secret).await;
                    return;
                }
                None => return,
            };
            drop(opening);
            let Some((_permit, _user_slot, started)) =
                Box::pin(admit(&shared, started, &auth, &slots, &per_user, &opts)).await
            else {
                return;
            };
            let key = started.key;
            let active = shared.register(key.0, key.1);
            let mut session = Session::new(
                shared.clone(),
                started.io,
                started.read_buf,
                started.settings,
                started.user.clone(),
            );
            session.active = active;
            if let Err(e) = session.run(stop).await {
                tracing::debug!("session {peer} ended: {e}");
            }
            shared.deregister(key.0);
        };
        // Every idle client holds this future: 4 KB, the statement paths boxed inside it
        // (was 19 KB; bench/run.sh's idle section measures the resident memory per client).
        tokio::spawn(fut);
    }
    tracing::info!("shutting down: draining sessions");
    let _ = stop_tx.send(true);
    drop(listener);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all)).await;
    Ok(())
}

/// An authenticated client becomes a session if there is room for it (PostgreSQL's texts:
/// postmaster.c canAcceptConnections, postinit.c for a role's limit); else it gets FATAL 53300.
async fn admit<'a>(
    shared: &Shared,
    mut started: Started,
    auth: &Authenticator,
    slots: &Arc<Semaphore>,
    per_user: &'a PerUser,
    opts: &Options,
) -> Option<(OwnedSemaphorePermit, UserSlot<'a>, Started)> {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        let e = SgError::new(
            code::TOO_MANY_CONNECTIONS,
            "sorry, too many clients already",
        );
        startup::refuse(&mut started, &e).await;
        return None;
    };
    let limit = opts.user_limits.get(&started.user).copied();
    let Some(user_slot) = per_user.take(&started.user, limit) else {
        let e = SgError::new(
            code::TOO_MANY_CONNECTIONS,
            format!("too many connections for role \"{}\"", started.user),
        );
        startup::refuse(&mut started, &e).await;
        return None;
    };
    let reported = match startup_reports(shared, &started).await {
        Ok(r) => r,
        Err(e) => {
            startup::refuse(&mut started, &e).await;
            return None;
        }
    };
    startup::admit(&mut started, auth, &reported).await.ok()?;
    Some((permit, user_slot, started))
}

/// The settings a client's startup packet or `options` make: made on a default-node
/// connection so the client is told the reported ones (GUC_REPORT, guc_tables.c) as
/// PostgreSQL spells them (`SQL, DMY`), and a bad value is refused at startup with
/// PostgreSQL's error, as a backend refuses it (postinit.c process_startup_options).
async fn startup_reports(
    shared: &Shared,
    started: &Started,
) -> Result<Vec<(String, String)>, SgError> {
    // Every startup setting is made here, so a value PostgreSQL refuses (work_mem=bogus) is
    // refused at startup as PostgreSQL refuses it (FATAL), and the reported ones come back as
    // ParameterStatus. application_name takes any value: it alone costs no round trip (psql
    // and most drivers send it).
    let wanted: std::collections::BTreeMap<String, String> = started
        .settings
        .iter()
        .filter(|(k, _)| k.as_str() != "application_name")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // A default node that cannot be reached does not keep the client out (sessions start
    // while a node is down, as before): it is told the default node's values, and its
    // settings are made when a statement first reaches a node.
    let mut c = match shared
        .acquire_for(&started.user, shared.config.default_node)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("startup parameters not reported: {e}");
            return Ok(Vec::new());
        }
    };
    // The connection records what it now holds; the next session to use it brings it to its
    // own settings first, as with any pooled connection.
    c.apply_reporting(&wanted).await
}

/// The runtime sessions run on. Its threads' stacks hold the deepest statement analysis lets
/// through (`analyze::depth`): parsing, walking and printing a syntax tree recurse per level.
pub fn runtime(
    threads: Option<usize>,
    max_expression_depth: usize,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all()
        .thread_stack_size(stack_size(max_expression_depth));
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.build()
}

/// Stack bytes for threads that run sessions: 64 MiB (address space; only what a deep
/// statement touches is ever resident), more if the depth limit was raised.
pub fn stack_size(max_expression_depth: usize) -> usize {
    (64usize << 20).max(
        max_expression_depth
            .saturating_mul(crate::analyze::depth::STACK_PER_LEVEL)
            .saturating_add(8 << 20),
    )
}

/// A panic is a bug: it ends the one session (or task) it happened in, its worker connections
/// are dropped rather than pooled (`Manager::has_broken`), and the log gets one line. The
/// binary installs this; tests keep the default hook, which shows their own assertions.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!("bug: panic at {at}: {what}; the session it happened in was closed");
        }));
    });
}

/// Resolves on SIGTERM or Ctrl-C.
pub fn signal() -> impl std::future::Future<Output = ()> {
    // The handlers are registered now, not when the future is first polled: a signal sent as
    // soon as "ready" is printed (before the serving task ran) must not be lost.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut t), Some(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {},
                        _ = i.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
