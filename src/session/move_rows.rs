//! Running an UPDATE of the distribution column (`plan::moves`): the source nodes'
//! `DELETE ... RETURNING` rows are held (at most `max_buffered_rows`), given their new values,
//! and copied (COPY, text format) into the nodes of their new keys, all inside the statement's
//! transaction, so a failure anywhere keeps every row where it was.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::insert_select::copy_escape;
use super::Session;
use crate::error::{code, SgError, SgResult};
use crate::execute::rows;
use crate::plan::Plan;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::shardmap::KeyValue;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn move_rows(&mut self, p: &Plan) -> SgResult<()> {
        let Plan::MoveRows {
            table,
            column,
            delete_sql,
            sources,
            assigned,
            ..
        } = p
        else {
            return Err(SgError::internal("not a moving UPDATE"));
        };
        self.errored = false;
        let (names, held, total) = match self.delete_returning(sources, delete_sql).await? {
            Ok(r) => r,
            Err(f) => return self.move_failed(f),
        };
        let width = names.len().saturating_sub(assigned.len());
        let columns = &names[..width];
        let mut targets = Vec::new();
        for (i, a) in assigned.iter().enumerate() {
            if assigned[..i].contains(a) {
                return self.move_failed(be::error(&SgError::new(
                    code::SYNTAX_ERROR,
                    format!("multiple assignments to same column \"{a}\""),
                )));
            }
            match columns.iter().position(|c| c == a) {
                Some(p) => targets.push(p),
                None => {
                    return self.move_failed(be::error(&SgError::new(
                        "42703",
                        format!("column \"{a}\" of relation \"{table}\" does not exist"),
                    )))
                }
            }
        }
        let key_pos = columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| SgError::internal("the distribution column is not among the rows"))?;
        let map = &self.shared.config.shardmap;
        let t = map
            .get(table)
            .ok_or_else(|| SgError::internal("moved table vanished"))?;
        let ty = t.key_type()?;
        let mut buffers: BTreeMap<usize, BytesMut> = BTreeMap::new();
        for mut row in held {
            for (i, p) in targets.iter().enumerate() {
                row[*p] = row[width + i].take();
            }
            row.truncate(width);
            let key = match &row[key_pos] {
                None => None,
                Some(v) => {
                    let text = String::from_utf8_lossy(v).into_owned();
                    match KeyValue::parse_text(ty, &text) {
                        Ok(k) => Some(k),
                        // Under another DateStyle the node printed the key its way.
                        Err(_) => Some(self.read_key(ty, &text).await?),
                    }
                }
            };
            let node = match t.shard_for_row(key.as_ref()) {
                Ok(shard) => t.node_of(shard),
                Err(e) => return self.move_failed(be::error(&e)),
            };
            let buf = buffers.entry(node).or_default();
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b'\t');
                }
                match v {
                    None => buf.put_slice(b"\\N"),
                    Some(v) => copy_escape(buf, v),
                }
            }
            buf.put_u8(b'\n');
        }
        let cols: Vec<String> = columns.iter().map(|c| crate::quote::ident(c)).collect();
        let copy_sql = format!(
            "COPY {} ({}) FROM STDIN",
            crate::quote::ident(table),
            cols.join(", ")
        );
        for (node, buf) in buffers {
            if let Err(f) = self.open_copy(node, &copy_sql).await? {
                return self.move_failed(f);
            }
            let c = self.backend(node).await?;
            c.send(&[
                Frame::build(fe::COPY_DATA, &buf),
                Frame::build(fe::COPY_DONE, &[]),
            ])
            .await?;
            let mut failure = None;
            loop {
                let f = c.read().await?;
                match f.tag {
                    be::ERROR_RESPONSE if failure.is_none() => failure = Some(f),
                    be::READY_FOR_QUERY => break,
                    _ => {}
                }
            }
            if let Some(f) = failure {
                return self.move_failed(f);
            }
        }
        self.push(&be::command_complete(&format!("UPDATE {total}")));
        Ok(())
    }

    /// The DELETE on every source node (all sent, then read): the returned columns' names,
    /// the rows, and how many were deleted; Err is the first node error.
    #[allow(clippy::type_complexity)]
    async fn delete_returning(
        &mut self,
        sources: &[usize],
        sql: &str,
    ) -> SgResult<Result<(Vec<String>, Vec<Vec<Option<Bytes>>>, u64), Frame>> {
        for &n in sources {
            self.backend(n).await?.send(&[fe::build_query(sql)]).await?;
        }
        let limit = self.shared.config.max_buffered_rows;
        let mut names = Vec::new();
        let mut held = Vec::new();
        let mut total = 0u64;
        let mut failure = None;
        for &n in sources {
            loop {
                let f = self.backend(n).await?.read().await?;
                match f.tag {
                    be::ROW_DESCRIPTION if names.is_empty() => {
                        names = rows::parse_row_description(&f)?
                            .into_iter()
                            .map(|c| c.name)
                            .collect();
                    }
                    be::DATA_ROW if failure.is_none() => {
                        if held.len() >= limit {
                            failure = Some(be::error(&SgError::new(
                                code::INSUFFICIENT_RESOURCES,
                                format!(
                                    "an UPDATE of the distribution column moving more than {limit} rows (server.max_buffered_rows)"
                                ),
                            )));
                        } else {
                            held.push(rows::columns(&f)?);
                        }
                    }
                    be::COMMAND_COMPLETE => {
                        total += be::split_tag(be::command_tag(&f)?).1.unwrap_or(0);
                    }
                    be::ERROR_RESPONSE if failure.is_none() => failure = Some(f),
                    be::READY_FOR_QUERY => break,
                    _ => {}
                }
            }
        }
        Ok(match failure {
            Some(f) => Err(f),
            None => Ok((names, held, total)),
        })
    }

    /// The statement's error; its transaction (implicit or the client's) is left failed so
    /// the rows deleted on some nodes come back with the ROLLBACK.
    fn move_failed(&mut self, f: Frame) -> SgResult<()> {
        self.push(&f);
        self.statement_failed();
        Ok(())
    }
}
