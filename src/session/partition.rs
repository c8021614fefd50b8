//! Partitioning DDL through shardgate (`plan::partition`): the statement runs on its nodes and
//! the catalog records it, in one transaction (two-phase across nodes), then every process
//! reads the new map (this one at once, the others on the catalog's notification).

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::Stmt;
use crate::error::SgResult;
use crate::error::{code, SgError};
use crate::plan::partition::{classify_text, PartitionDdl};
use crate::plan::{Combine, Plan};

/// The session setting that places the next partitions on a node (`SET shardgate.node`).
pub const NODE_SETTING: &str = "shardgate.node";

/// The value a recorded `SET name = value` / `SET name TO value` statement sets.
fn set_value(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let rest = match (sql.find('='), lower.find(" to ")) {
        (Some(i), _) => &sql[i + 1..],
        (None, Some(i)) => &sql[i + 4..],
        _ => "",
    };
    rest.trim()
        .trim_end_matches(';')
        .trim()
        .trim_matches('\'')
        .trim_matches('"')
        .to_string()
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs `text` if it is partitioning DDL: Some(succeeded), or None for other statements.
    pub async fn partition_ddl(&mut self, stmt: &Stmt, text: &str) -> SgResult<Option<bool>> {
        if stmt.refuse.is_some() {
            // Refused at analysis (a foreign key shardgate cannot keep): the planner says so.
            return Ok(None);
        }
        let value = self.settings.get(NODE_SETTING).map(|sql| set_value(sql));
        let chosen = match value.as_deref() {
            None | Some("") => None,
            Some(v) if v.eq_ignore_ascii_case("default") => None,
            Some(name) => {
                match self.shared.node_names.iter().position(|n| n == name) {
                    Some(i) => Some(i),
                    None => {
                        self.error(&SgError::new(
                        code::INVALID_PARAMETER_VALUE,
                        format!("{NODE_SETTING} names node \"{name}\", which the config does not list"),
                    ));
                        return Ok(Some(false));
                    }
                }
            }
        };
        let shared = self.shared.clone();
        let map = &shared.config.shardmap;
        let classified = classify_text(text, map, chosen);
        let ddl = match classified {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.error(&e);
                return Ok(Some(false));
            }
        };
        let why = match &ddl {
            PartitionDdl::CreateParent { table, .. } => {
                format!("partitioned table \"{table}\" on every node")
            }
            PartitionDdl::CreatePartition { name, .. } => {
                format!("partition \"{name}\" on its node")
            }
            PartitionDdl::Drop { .. } => "drop partitioned tables".to_string(),
            PartitionDdl::Attach { name, .. } => format!("attach \"{name}\" on every node"),
            PartitionDdl::Detach { name, .. } => format!("detach \"{name}\" on every node"),
        };
        let plan = Plan::PerNode {
            parts: ddl.statements(text, map),
            combine: Combine::Same,
            why,
            learn: None,
            returning_order: Vec::new(),
            params: Vec::new(),
        };
        // The DDL and the catalog's record commit together, or neither does: in the client's
        // transaction (the map changes when it commits), else in one of their own.
        let inside = self.txn.txn.is_some();
        if !inside {
            self.begin_implicit();
        }
        // Partitioning DDL on a table whose partitions the block changed already is fine:
        // every node checks it against them (they are on every node).
        let pending = self
            .txn
            .txn
            .as_mut()
            .map(|t| std::mem::take(&mut t.partitioned));
        let checked = self.before_run(&plan, stmt);
        if let (Some(t), Some(p)) = (self.txn.txn.as_mut(), pending) {
            t.partitioned.extend(p);
        }
        if let Err(e) = checked {
            self.error(&e);
            if !inside {
                self.end_implicit().await?;
            }
            return Ok(Some(false));
        }
        let catalog = self.shared.config.catalog_node;
        if let Some(t) = self.txn.txn.as_mut() {
            t.wrote.insert(catalog);
            t.wrote.extend(ddl.nodes(map));
            t.partitioned.extend(ddl.tables());
        }
        let ok = self.run_per_node(&plan, None).await?;
        if ok {
            let sql = crate::catalog::partitions::record_sql(&ddl, &self.shared.node_names);
            let recorded = match self.backend(catalog).await {
                Ok(c) => c.run(&sql).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = recorded {
                self.error(&e);
            }
        }
        if inside {
            if self.errored {
                if let Some(t) = self.txn.txn.as_mut() {
                    t.failed = true;
                }
            }
            return Ok(Some(!self.errored));
        }
        // Its own transaction: the map changes with its COMMIT (`Session::finish`).
        self.end_implicit().await?;
        self.txn.release();
        Ok(Some(!self.errored))
    }
}
