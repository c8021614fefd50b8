//! Answers a query over `shardgate.shards` (`plan::shards`): each node says what it knows of
//! the shards it holds, and the query runs with the view replaced by those rows.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::error::SgResult;
use crate::plan::shards::{node_sql, placements, reads_view, rewrite, ShardRow, VIEW};
use crate::protocol::backend as be;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// The statement `text` with `shardgate.shards` replaced by its rows; None when it does
    /// not read the view.
    pub async fn shards_view(&mut self, text: &str) -> SgResult<Option<String>> {
        if !text.to_ascii_lowercase().contains(VIEW) {
            return Ok(None);
        }
        let Some(stmt) = crate::analyze::parse_sql(text)
            .ok()
            .and_then(|mut v| v.pop())
        else {
            return Ok(None);
        };
        if !reads_view(&stmt) {
            return Ok(None);
        }
        let placed = placements(&self.shared.config.shardmap);
        let mut rows: Vec<ShardRow> = placed
            .into_iter()
            .map(|p| ShardRow {
                node_name: self
                    .shared
                    .node_names
                    .get(p.node)
                    .cloned()
                    .unwrap_or_default(),
                placed: p,
                bound: None,
                rows: None,
                size: None,
            })
            .collect();
        for node in 0..self.shared.node_names.len() {
            let names: Vec<&str> = rows
                .iter()
                .filter(|r| r.placed.node == node)
                .map(|r| r.placed.shard.as_str())
                .collect();
            if names.is_empty() {
                continue;
            }
            let sql = node_sql(&names);
            let frames = self
                .shared
                .acquire_for(&self.user, node)
                .await?
                .run(&sql)
                .await?;
            let mut answers = Vec::new();
            for f in frames.iter().filter(|f| f.tag == be::DATA_ROW) {
                let v = crate::execute::rows::columns(f)?;
                let text = |i: usize| {
                    v.get(i)
                        .and_then(|b| b.as_ref())
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                };
                answers.push((text(0), text(1), text(2), text(3)));
            }
            for (name, bound, est, size) in answers {
                if let Some(r) = rows
                    .iter_mut()
                    .find(|r| r.placed.node == node && Some(&r.placed.shard) == name.as_ref())
                {
                    r.bound = bound;
                    r.rows = est.and_then(|s| s.parse().ok());
                    r.size = size.and_then(|s| s.parse().ok());
                }
            }
        }
        rewrite(&stmt, &rows).map(Some)
    }
}
