//! Accepts clients, caps their number, and drains on shutdown: no new sessions, running
//! statements finish, idle sessions are told to go, then the process exits.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::execute::Shared;
use crate::session::startup::{startup, Authenticator, Opening, Users};
use crate::session::Session;

/// How long a drain waits for sessions inside transaction blocks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let max = shared.config.max_clients;
    let slots = Arc::new(Semaphore::new(max));
    let users = Arc::new(Users::new(&shared.config.users));
    let auth = Arc::new(Authenticator::new(shared.clone(), users));
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("refusing {peer}: {max} clients already connected");
            drop(socket);
            continue;
        };
        let (shared, auth, stop) = (shared.clone(), auth.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let started = match startup(socket, &auth, STARTUP_TIMEOUT).await {
                Some(Opening::Session(s)) => s,
                Some(Opening::Cancel(pid, secret)) => {
                    shared.cancel(pid, &secret).await;
                    return;
                }
                None => return,
            };
            let key = started.key.clone();
            let active = shared.register(key.0, key.1.clone());
            let mut session = Session::new(
                shared.clone(),
                started.io,
                started.read_buf,
                started.settings,
            );
            session.active = active;
            if let Err(e) = session.run(stop).await {
                tracing::debug!("session {peer} ended: {e}");
            }
            shared.deregister(key.0);
        });
    }
    tracing::info!("shutting down: draining sessions");
    let _ = stop_tx.send(true);
    drop(listener);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all)).await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
