//! `COPY (query) TO STDOUT` where the query needs shardgate to merge rows (ORDER BY, GROUP
//! BY, aggregates over several nodes), as psql's `\copy (query) TO` sends it: the query runs
//! through shardgate as a cursor's does (merged, its rows spooled and copied into a temporary
//! table on the default node), and PostgreSQL there runs the client's COPY over that table in
//! the rows' order, so every COPY option (FORMAT, HEADER, DELIMITER, NULL, ...) is its own.

use sqlparser::ast::{CopySource, CopyTarget, Statement};
use tokio::io::{AsyncRead, AsyncWrite};

use super::cursor::{holding_table, reading};
use super::Session;
use crate::error::SgResult;

/// The table holding the rows while the COPY reads them.
const TABLE: &str = "pg_temp.\"sg_copy_query\"";

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs `text` when it is a COPY (query) TO STDOUT whose query reads several nodes; None
    /// otherwise.
    pub(in crate::session) async fn copy_query(&mut self, text: &str) -> SgResult<Option<bool>> {
        let Some(Statement::Copy {
            source: CopySource::Query(query),
            to: true,
            target: CopyTarget::Stdout,
            options,
            legacy_options,
            values,
        }) = crate::analyze::parse_sql(text)
            .ok()
            .and_then(|mut v| v.pop())
        else {
            return Ok(None);
        };
        if self.on_default(&query) {
            return Ok(None);
        }
        let Some((names, rows)) = self.captured_with_names(&query.to_string()).await? else {
            return Ok(Some(false));
        };
        if self.txn.txn.is_none() {
            self.begin_implicit();
        }
        let create = holding_table(TABLE, &names, &query.to_string(), false);
        for sql in [format!("DROP TABLE IF EXISTS {TABLE}"), create] {
            if !self.on_default_node(&sql).await? {
                return Ok(Some(false));
            }
        }
        if self.copy_rows(TABLE, rows, true).await?.is_none() {
            return Ok(Some(false));
        }
        let copy = Statement::Copy {
            source: CopySource::Query(reading(TABLE, &names)?),
            to: true,
            target: CopyTarget::Stdout,
            options,
            legacy_options,
            values,
        };
        let done = self.forward_default(&copy.to_string()).await?;
        if done == Some(true) && !self.on_default_node(&format!("DROP TABLE {TABLE}")).await? {
            return Ok(Some(false));
        }
        Ok(done)
    }
}
