//! The end of a transaction block (a client's, or an implicit one): ROLLBACK everywhere, a
//! plain COMMIT when at most one node wrote, else two-phase commit with the decision recorded
//! in shardgate's catalog (`catalog::transactions`; `catalog::recovery` finishes what a
//! failure leaves prepared).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Session, Txn};
use crate::catalog::transactions::{participant_gid, record_sql};
use crate::error::{code, SgError, SgResult};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::quote::literal;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// COMMIT or ROLLBACK of the block. COMMIT in a multi-statement string's implicit
    /// transaction commits it, with PostgreSQL's warning (xact.c EndTransactionBlock,
    /// TBLOCK_IMPLICIT_INPROGRESS); so does ROLLBACK, rolling back.
    pub async fn end(&mut self, commit: bool) -> SgResult<()> {
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        let Some(t) = self.txn.txn.take() else {
            self.push(&be::warning("25P01", "there is no transaction in progress"));
            self.push(&be::command_complete(verb));
            return Ok(());
        };
        if t.implicit {
            self.push(&be::warning("25P01", "there is no transaction in progress"));
        }
        let commit = commit && !t.failed;
        match self.finish(&t, commit).await {
            Ok(()) => self.push(&be::command_complete(if commit {
                "COMMIT"
            } else {
                "ROLLBACK"
            })),
            Err(e) => {
                self.push(&be::error(&e));
                self.errored = true;
            }
        }
        Ok(())
    }

    /// Ends an implicit transaction: COMMIT on every node if every statement succeeded (two
    /// phases over several writers), else ROLLBACK.
    pub async fn end_implicit(&mut self) -> SgResult<()> {
        let Some(t) = self.txn.txn.take_if(|t| t.implicit) else {
            return Ok(());
        };
        let commit = !t.failed && !self.errored;
        if let Err(e) = self.finish(&t, commit).await {
            self.error(&e);
        }
        Ok(())
    }

    /// Ends block `t` (already taken from the session) on every node it reached.
    async fn finish(&mut self, t: &Txn, commit: bool) -> SgResult<()> {
        if !commit {
            self.restore_settings(t.settings_before.clone());
        }
        let nodes: Vec<usize> = self.txn.in_txn.iter().copied().collect();
        let writers: Vec<usize> = nodes
            .iter()
            .copied()
            .filter(|n| t.wrote.contains(n))
            .collect();
        let result = if !commit {
            self.on_nodes(&nodes, |_| "ROLLBACK".into()).await;
            Ok(())
        } else if writers.len() <= 1 {
            // Readers first: the writer's COMMIT is then the only one whose failure matters.
            let readers: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|n| !writers.contains(n))
                .collect();
            self.on_nodes(&readers, |_| "COMMIT".into()).await;
            let done = self.on_nodes(&writers, |_| "COMMIT".into()).await;
            match done.into_iter().find_map(|(_, r)| r.err()) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        } else {
            self.two_phase(&nodes, &writers).await
        };
        self.txn.drop_broken();
        self.txn.end_block();
        if commit && result.is_ok() && !t.partitioned.is_empty() {
            // The block's partitioning DDL is the map now, for this session's next
            // statement (the other processes hear the catalog's NOTIFY).
            if let Err(e) = self.shared.reload_map().await {
                tracing::warn!("reading the catalog after a commit: {e}");
            }
        }
        result
    }

    /// Two-phase commit over `writers`. The decision record is inserted first, in a
    /// transaction on the catalog node (the block's own there, if the block reached it: its
    /// writes then commit with the decision, in one phase); every other writer PREPAREs; the
    /// catalog transaction's COMMIT is the decision; COMMIT PREPARED follows. Before the
    /// decision any failure rolls back everywhere; after it, what is left prepared is
    /// committed by recovery.
    async fn two_phase(&mut self, nodes: &[usize], writers: &[usize]) -> SgResult<()> {
        let gid = self.shared.gids.next();
        let catalog = self.shared.config.catalog_node;
        let record = record_sql(&gid, self.shared.gids.process());
        let inside = nodes.contains(&catalog) && self.txn.conns.contains_key(&catalog);
        let mut outside = None;
        let recorded = if inside {
            match self.txn.conns.get_mut(&catalog) {
                Some(c) => c.run(&record).await.map(|_| ()),
                None => Err(SgError::internal("catalog connection vanished")),
            }
        } else {
            match self.shared.acquire(catalog).await {
                Ok(mut c) => {
                    let r = async {
                        c.run("BEGIN").await?;
                        c.run(&record).await
                    }
                    .await;
                    if r.is_err() {
                        c.broken = true;
                    }
                    outside = Some(c);
                    r.map(|_| ())
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = recorded {
            self.on_nodes(nodes, |_| "ROLLBACK".into()).await;
            return Err(SgError::new(
                e.code,
                format!("could not record the commit decision: {}", e.message),
            ));
        }
        let preparers: Vec<usize> = writers
            .iter()
            .copied()
            .filter(|n| !(inside && *n == catalog))
            .collect();
        let prepared = self
            .on_nodes(&preparers, |n| {
                format!("PREPARE TRANSACTION {}", literal(&participant_gid(&gid, n)))
            })
            .await;
        failpoint("after-prepare").await;
        let mut readers: Vec<usize> = nodes
            .iter()
            .copied()
            .filter(|n| !(preparers.contains(n) || (inside && *n == catalog)))
            .collect();
        if let Some(e) = prepared.iter().find_map(|(_, r)| r.as_ref().err()).cloned() {
            // A failed PREPARE has already become a ROLLBACK on its node.
            let ok: Vec<usize> = prepared
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(n, _)| *n)
                .collect();
            self.on_nodes(&ok, |n| {
                format!("ROLLBACK PREPARED {}", literal(&participant_gid(&gid, n)))
            })
            .await;
            if inside {
                readers.push(catalog);
            }
            self.on_nodes(&readers, |_| "ROLLBACK".into()).await;
            if let Some(mut c) = outside {
                if c.run("ROLLBACK").await.is_err() {
                    c.broken = true;
                }
            }
            return Err(e);
        }
        self.on_nodes(&readers, |_| "COMMIT".into()).await;
        let decided = match (inside, outside.as_mut()) {
            (true, _) => match self.txn.conns.get_mut(&catalog) {
                Some(c) => c.run("COMMIT").await.map(|f| (f, c.broken)),
                None => Err(SgError::internal("catalog connection vanished")),
            },
            (false, Some(c)) => c.run("COMMIT").await.map(|f| (f, c.broken)),
            (false, None) => Err(SgError::internal("catalog connection vanished")),
        };
        let broken = match (inside, &outside) {
            (true, _) => self.txn.conns.get(&catalog).is_none_or(|c| c.broken),
            (false, Some(c)) => c.broken,
            (false, None) => true,
        };
        let committed = match &decided {
            Ok((frames, _)) => frames.iter().any(|f| {
                f.tag == be::COMMAND_COMPLETE && be::command_tag(f).is_ok_and(|t| t == "COMMIT")
            }),
            Err(_) => false,
        };
        if !committed {
            if broken {
                // The COMMIT may or may not have happened: only the record can tell, and
                // recovery acts on it. Rolling back here could contradict a decision made.
                return Err(SgError::new(
                    code::RESOLUTION_UNKNOWN,
                    "the connection to the catalog node failed during COMMIT; the transaction's outcome will be settled by recovery",
                ));
            }
            self.on_nodes(&preparers, |n| {
                format!("ROLLBACK PREPARED {}", literal(&participant_gid(&gid, n)))
            })
            .await;
            return Err(match decided {
                Err(e) => e,
                Ok(_) => SgError::new(
                    code::IN_FAILED_TXN,
                    "the transaction was rolled back on the catalog node",
                ),
            });
        }
        failpoint("after-decision").await;
        // The decision stands: a COMMIT PREPARED that fails here is recovery's to finish.
        for (n, r) in self
            .on_nodes(&preparers, |n| {
                format!("COMMIT PREPARED {}", literal(&participant_gid(&gid, n)))
            })
            .await
        {
            if let Err(e) = r {
                tracing::warn!("COMMIT PREPARED on node {n} failed, recovery will retry: {e}");
            }
        }
        Ok(())
    }

    /// Runs one statement on each held connection of `nodes` (all sent before any reply is
    /// read), each node's result in order. A connection that fails is marked broken.
    async fn on_nodes(
        &mut self,
        nodes: &[usize],
        sql: impl Fn(usize) -> String,
    ) -> Vec<(usize, SgResult<()>)> {
        let mut sent = Vec::new();
        let mut out = Vec::new();
        for &n in nodes {
            match self.txn.conns.get_mut(&n) {
                Some(c) => match c.send(&[fe::build_query(&sql(n))]).await {
                    Ok(()) => sent.push(n),
                    Err(e) => {
                        c.broken = true;
                        out.push((n, Err(e)));
                    }
                },
                None => out.push((n, Err(SgError::internal("held connection vanished")))),
            }
        }
        for n in sent {
            let Some(c) = self.txn.conns.get_mut(&n) else {
                continue;
            };
            let mut err = None;
            let r = loop {
                match c.read().await {
                    Ok(f) if f.tag == be::READY_FOR_QUERY => break Ok(()),
                    Ok(f) if f.tag == be::ERROR_RESPONSE => {
                        err.get_or_insert(be::to_sg_error(&f));
                    }
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            };
            out.push((
                n,
                match (r, err) {
                    (Err(e), _) => {
                        c.broken = true;
                        Err(e)
                    }
                    (Ok(()), Some(e)) => Err(e),
                    (Ok(()), None) => Ok(()),
                },
            ));
        }
        out
    }
}

/// Fault injection for the two-phase commit tests (`SHARDGATE_FAILPOINT`, read once):
/// `after-decision=exit` ends the process right after the commit decision;
/// `after-prepare=wait:PATH` creates PATH.reached after the PREPAREs and waits until PATH.go
/// exists, so a test can stop a worker between the phases by its PID.
async fn failpoint(name: &str) {
    static SPEC: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(spec) = SPEC
        .get_or_init(|| std::env::var("SHARDGATE_FAILPOINT").ok())
        .as_deref()
    else {
        return;
    };
    let Some(action) = spec.strip_prefix(name).and_then(|r| r.strip_prefix('=')) else {
        return;
    };
    if action == "exit" {
        tracing::warn!("failpoint {name}: exiting");
        std::process::exit(99);
    }
    if let Some(path) = action.strip_prefix("wait:") {
        let _ = std::fs::write(format!("{path}.reached"), b"");
        let go = format!("{path}.go");
        while !std::path::Path::new(&go).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(go);
    }
}
