//! Partitioning DDL through shardgate (`plan::partition`): the statement runs on its nodes and
//! the catalog records it, in one transaction (two-phase across nodes), then every process
//! reads the new map (this one at once, the others on the catalog's notification).

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::Stmt;
use crate::error::SgResult;
use crate::error::{code, SgError};
use crate::plan::partition::{classify, classify_cmd, PartitionDdl};
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
        let ast = crate::analyze::parse_sql(text)
            .ok()
            .and_then(|mut v| v.pop());
        let cmd = match ast {
            Some(_) => None,
            None => crate::analyze::attach::parse(text),
        };
        if ast.is_none() && cmd.is_none() {
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
        let map = &self.shared.config.shardmap;
        let classified = match (&ast, &cmd) {
            (Some(ast), _) => classify(ast, map, chosen),
            (None, Some(cmd)) => classify_cmd(cmd, map),
            (None, None) => Ok(None),
        };
        let ddl = match classified {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.error(&e);
                return Ok(Some(false));
            }
        };
        if self.txn.txn.is_some() {
            self.error(&SgError::unsupported(
                "partitioning DDL inside a transaction block or a multi-statement string (send it as a statement of its own)",
            ));
            return Ok(Some(false));
        }
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
        };
        // The DDL and the catalog's record commit together, or neither does.
        self.begin_implicit();
        if let Err(e) = self.before_run(&plan, stmt) {
            self.error(&e);
            self.end_implicit().await?;
            return Ok(Some(false));
        }
        let catalog = self.shared.config.catalog_node;
        if let Some(t) = self.txn.txn.as_mut() {
            t.wrote.insert(catalog);
        }
        let ok = self.run_per_node(&plan).await?;
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
        self.end_implicit().await?;
        self.txn.release();
        if !self.errored {
            if let Err(e) = self.shared.reload_map().await {
                tracing::warn!("reading the catalog after {text}: {e}");
            }
        }
        Ok(Some(!self.errored))
    }
}
