//! Whether each worker node answers, as a health check sees it: every
//! `server.health_check_interval_ms` an empty query on a connection of its own must come back
//! within `server.health_check_timeout_ms`. A node that fails is down at once: new statements
//! that need it fail fast with 08006, statements waiting on it are woken with the same error,
//! and connections made before it went down are not handed out again. It is up again at the
//! first check it answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{code, SgError};

/// One node's state.
#[derive(Debug)]
pub struct Health {
    pub name: String,
    up: AtomicBool,
    /// Counts the node's falls: a connection made in an earlier generation predates a failure.
    generation: watch::Sender<u64>,
    since: Mutex<(Instant, String)>,
}

impl Health {
    pub fn new(name: &str) -> Arc<Health> {
        Arc::new(Health {
            name: name.to_string(),
            up: AtomicBool::new(true),
            generation: watch::channel(0).0,
            since: Mutex::new((Instant::now(), String::new())),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The error for a statement that needs this node while it is down.
    pub fn down_error(&self) -> SgError {
        let (since, why) = self
            .since
            .lock()
            .map(|s| (s.0.elapsed().as_secs(), s.1.clone()))
            .unwrap_or_default();
        SgError::new(
            code::CONNECTION_FAILURE,
            format!(
                "worker node \"{}\" is down (no answer to health checks for {since} s)",
                self.name
            ),
        )
        .with_detail(why)
    }

    pub fn mark_down(&self, why: &str) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!("worker node \"{}\" is down: {why}", self.name);
            if let Ok(mut s) = self.since.lock() {
                *s = (Instant::now(), why.to_string());
            }
            self.generation.send_modify(|g| *g += 1);
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!("worker node \"{}\" is up again", self.name);
        }
    }
}

/// Checks one node until the process no longer needs it (its `Health` is dropped).
pub fn spawn(target: super::backend::Target, interval: Duration, timeout: Duration) {
    let health: Weak<Health> = Arc::downgrade(&target.health);
    tokio::spawn(async move {
        let mut t = target;
        t.timeout = timeout;
        t.read_timeout = timeout;
        // The checker's own connection carries no generation: it is what decides them.
        let mut conn: Option<super::backend::Backend> = None;
        loop {
            let Some(h) = health.upgrade() else { return };
            let ok = tokio::time::timeout(timeout, check(&t, &mut conn)).await;
            match ok {
                Ok(Ok(())) => h.mark_up(),
                Ok(Err(e)) => {
                    conn = None;
                    h.mark_down(&e.detail.unwrap_or(e.message));
                }
                Err(_) => {
                    conn = None;
                    h.mark_down(&format!("no answer within {} ms", timeout.as_millis()));
                }
            }
            drop(h);
            tokio::time::sleep(interval).await;
        }
    });
}

async fn check(
    t: &super::backend::Target,
    conn: &mut Option<super::backend::Backend>,
) -> Result<(), SgError> {
    // An empty query: the cheapest round trip through a backend (EmptyQueryResponse). A
    // connection of ours that was terminated (pg_terminate_backend, a restart) is not a verdict
    // on the node: a fresh one decides.
    if let Some(c) = conn.as_mut() {
        if c.run("").await.is_ok() {
            return Ok(());
        }
    }
    let mut c = super::backend::Backend::connect_unwatched(t).await?;
    c.run("").await?;
    *conn = Some(c);
    Ok(())
}
