//! Balanced range partitions from data, in one call (tutorial 001's `ntile` split without its
//! DO block): `SELECT shardgate.create_balanced_partitions('user_events', 8, 'users'
//! [, 'id'])` splits the source column's values (default: the table's partition key column)
//! into that many groups of equal size, as `ntile` does, and creates one range partition of
//! the table per group, `user_events_p0001` ... (the first from MINVALUE, the last to
//! MAXVALUE, so every value has a partition), each placed and recorded as the DDL a client
//! would send (`session::partition`). Returns how many it created.
//!
//! The source is read on the default node: a local or reference table. A distributed source
//! would need `ntile` over every node's rows, which shardgate does not merge (0A000).

use tokio::io::{AsyncRead, AsyncWrite};

use super::time_partitions::{shardgate_call, table_arg};
use super::Session;
use crate::analyze::Kind;
use crate::error::{SgError, SgResult};
use crate::quote::{ident, literal};
use crate::shardmap::{KeyType, TableKind};

const NAME: &str = "shardgate.create_balanced_partitions";

/// At most this many partitions per call.
const MAX_PARTITIONS: i64 = 10_000;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs `text` if it calls `shardgate.create_balanced_partitions`: Some(succeeded).
    pub async fn balanced_partitions(&mut self, text: &str) -> SgResult<Option<bool>> {
        let known: &[(&str, &[&str])] = &[(
            NAME,
            &[
                "table_name",
                "partition_count",
                "source_table",
                "source_column",
            ],
        )];
        let args = match shardgate_call(text, known) {
            Ok(Some((_, args))) => args,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.error(&e);
                return Ok(Some(false));
            }
        };
        match self.balanced(&args).await {
            Ok(done) => Ok(Some(done)),
            Err(e) => {
                self.error(&e);
                Ok(Some(false))
            }
        }
    }

    async fn balanced(&mut self, args: &[Option<sqlparser::ast::Expr>]) -> SgResult<bool> {
        let arg = |i: usize| args.get(i).and_then(|e| e.as_ref());
        let table = table_arg(NAME, arg(0))?;
        let source = table_arg(NAME, arg(2))?;
        let count = arg(1).map(|e| e.to_string()).ok_or_else(|| {
            SgError::new("42883", format!("{NAME}(): partition_count is required"))
        })?;
        let map = &self.shared.config.shardmap;
        let t = match map.get(&table) {
            Some(t) if map.is_managed(&table) && matches!(t.kind, TableKind::Range(_)) => t,
            _ => {
                return Err(SgError::new(
                    "22023",
                    format!("\"{table}\" is not a table partitioned by range through shardgate"),
                ))
            }
        };
        if map.get(&source).is_some_and(|s| !s.is_reference()) {
            return Err(SgError::unsupported(format!(
                "{NAME}() over distributed table \"{source}\" (ntile over every node's rows; balance from a local or reference table)"
            )));
        }
        let column = match arg(3) {
            Some(_) => table_arg(NAME, arg(3))?,
            None => t.column.clone(),
        };
        let ty = t.key_type()?;
        // Bounds as text every session setting reads alike (DateStyle does not reach these).
        let as_text = match ty {
            KeyType::Date => "to_char(v, 'YYYY-MM-DD')",
            KeyType::Timestamp => "to_char(v, 'YYYY-MM-DD HH24:MI:SS.US')",
            _ => "v::text",
        };
        let col = ident(&column);
        let sql = format!(
            "SELECT CASE WHEN n.n BETWEEN 1 AND {MAX_PARTITIONS} THEN n.n END, b.t \
             FROM (SELECT ({count})::int8 AS n) n \
             LEFT JOIN LATERAL (SELECT {as_text} AS t, part FROM (SELECT DISTINCT ON (part) c AS v, part \
                 FROM (SELECT {col} AS c, ntile(least(greatest(n.n, 1), {MAX_PARTITIONS})::int) OVER (ORDER BY {col}) AS part \
                       FROM {} WHERE {col} IS NOT NULL) s ORDER BY part, c) g WHERE part > 1) b ON true \
             ORDER BY b.part",
            ident(&source)
        );
        let node = self.shared.config.default_node;
        let Some(rows) = self.rows_on(node, &sql).await? else {
            return Ok(false);
        };
        let n: i64 = rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                SgError::new(
                    "22023",
                    format!("{NAME}(): partition_count must be between 1 and {MAX_PARTITIONS}"),
                )
            })?;
        // Inner bounds, in order, without repeats (many equal values end groups alike).
        let mut bounds: Vec<String> = Vec::new();
        for r in &rows {
            if let Some(b) = r.get(1).filter(|b| !b.is_empty()) {
                if bounds.last() != Some(b) {
                    bounds.push(b.clone());
                }
            }
        }
        let width = n.to_string().len().max(4);
        let mut from = "MINVALUE".to_string();
        let mut made = 0;
        for (i, upper) in bounds
            .iter()
            .map(|b| literal(b))
            .chain(std::iter::once("MAXVALUE".to_string()))
            .enumerate()
        {
            let name = format!("{table}_p{:0width$}", i + 1);
            let sql = format!(
                "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({from}) TO ({upper})",
                ident(&name),
                ident(&table)
            );
            if !self.quietly(&sql, Kind::CreateTable).await? {
                return Ok(false);
            }
            made += 1;
            from = upper;
        }
        self.route_text(
            node,
            &format!("SELECT {made} AS create_balanced_partitions"),
        )
        .await?;
        Ok(!self.errored)
    }
}
