//! Column defaults filled in shardgate before an INSERT is planned (`plan::fill`): the
//! default node computes the values (its sequences are the ones every session shares) and
//! the statement is planned again as rewritten with them.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::Stmt;
use crate::error::{SgError, SgResult};
use crate::plan::fill::{fill_select, fill_values, TableColumns};
use crate::protocol::backend as be;

/// An INSERT rewritten with its filled values.
pub struct Filled {
    pub sql: String,
    /// The values, for the parameters the rewritten text appends (extended protocol).
    pub values: Vec<Option<String>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(crate) async fn table_columns(&mut self, table: &str) -> SgResult<Arc<TableColumns>> {
        let cached = self.shared.columns.get(table);
        if let Some((true, c)) = cached {
            return Ok(c);
        }
        let key = self
            .shared
            .config
            .shardmap
            .get(table)
            .filter(|t| !t.is_reference())
            .map(|t| t.column.clone());
        let loaded = match self.shared.acquire(self.shared.config.default_node).await {
            Ok(mut c) => crate::catalog::columns::load(&mut c, table, key.as_deref()).await,
            Err(e) => Err(e),
        };
        match (loaded, cached) {
            (Ok(cols), _) => {
                let cols = Arc::new(cols);
                self.shared.columns.put(table, cols.clone());
                Ok(cols)
            }
            // The default node is down: what it said last still tells which INSERTs need it.
            (Err(_), Some((_, c))) => Ok(c),
            (Err(e), None) => Err(e),
        }
    }

    /// An INSERT ... SELECT rewritten to compute its filled columns must run its SELECT on
    /// the default node: elsewhere nextval would draw from that node's copy of the sequence.
    pub fn filled_runs_on_default(&self, stmt: &Stmt, plan: &crate::plan::Plan) -> SgResult<()> {
        if stmt
            .insert_into
            .as_ref()
            .is_some_and(|i| i.shortest_row.is_some())
        {
            return Ok(());
        }
        match plan {
            crate::plan::Plan::InsertSelect { source_node, .. }
                if *source_node == self.shared.config.default_node =>
            {
                Ok(())
            }
            _ => Err(SgError::unsupported(
                "INSERT ... SELECT that leaves a serial, identity or distribution column to its default, from a SELECT that does not run on the default node (name the column, or select from tables on the default node)",
            )),
        }
    }

    /// Whether an INSERT leaves a column shardgate fills to its default.
    pub async fn needs_fill(&mut self, stmt: &Stmt) -> SgResult<bool> {
        match &stmt.insert_into {
            Some(ii) => Ok(!self.table_columns(&ii.table).await?.covered_by(ii)),
            None => Ok(false),
        }
    }

    /// The INSERT with the values of the columns it leaves to shardgate: literals in the
    /// text, or with `params` (the client's parameter count) appended parameters whose
    /// values come back beside the text. None when nothing is to be filled.
    pub async fn fill(
        &mut self,
        stmt: &Stmt,
        text: &str,
        params: Option<usize>,
    ) -> SgResult<Option<Filled>> {
        let Some(ii) = &stmt.insert_into else {
            return Ok(None);
        };
        let cols = self.table_columns(&ii.table).await?;
        if cols.covered_by(ii) {
            return Ok(None);
        }
        let Some(parsed) = crate::analyze::parse_sql(text)
            .ok()
            .and_then(|mut v| v.pop())
        else {
            return Ok(None);
        };
        if ii.shortest_row.is_none() {
            return Ok(fill_select(&parsed, &cols)?.map(|sql| Filled {
                sql,
                values: Vec::new(),
            }));
        }
        let Some(f) = fill_values(&parsed, &ii.table, &cols)? else {
            return Ok(None);
        };
        let sql = f.values_sql(&cols);
        let node = self.shared.config.default_node;
        // Inside a transaction the session's own connection computes them (now() is the
        // transaction's). So does it where they call nextval: the connection then stays with
        // the session (`analyze::sticky`), so its currval/lastval give these ids, as on one
        // PostgreSQL. Otherwise any pooled one.
        let sequence = sql.to_ascii_lowercase().contains("nextval");
        if sequence {
            self.txn.sticky.insert(node);
        }
        let frames = if self.txn.txn.is_some() || sequence {
            self.backend(node).await?.run(&sql).await?
        } else {
            let mut c = self.shared.acquire_for(&self.user, node).await?;
            c.sync_settings(&self.settings).await?;
            c.run(&sql).await?
        };
        let mut values = Vec::with_capacity(f.need.len());
        for fr in frames.iter().filter(|fr| fr.tag == be::DATA_ROW) {
            let v = crate::execute::rows::columns(fr)?;
            values.push(
                v.into_iter()
                    .next()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            );
        }
        if values.len() != f.need.len() {
            return Err(SgError::internal(
                "filling defaults gave the wrong number of values",
            ));
        }
        let sql = f.render(&values, params);
        Ok(Some(Filled { sql, values }))
    }
}
