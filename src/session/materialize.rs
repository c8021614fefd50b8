//! Tables and materialized views made from a query that reads several nodes (CREATE TABLE
//! ... AS, SELECT ... INTO, CREATE MATERIALIZED VIEW, REFRESH MATERIALIZED VIEW), as Citus
//! makes them on its coordinator: shardgate runs the query as any client query (merged
//! across nodes), holds the rows (at most `max_buffered_rows`) and copies them into a table
//! on the default node, in one transaction with its CREATE.
//!
//! A materialized view stays a real one on the default node (psql's `\dm`, `pg_matviews`,
//! indexes, `REFRESH ... CONCURRENTLY`, `DROP MATERIALIZED VIEW` behave as PostgreSQL's):
//! it is defined over `shardgate_views.<name>`, a table holding the merged rows, whose
//! COMMENT keeps the query; REFRESH fills that table again through shardgate first.

use sqlparser::ast::{ObjectName, Query, Statement};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::matview::{self, Made};
use crate::error::{SgError, SgResult};
use crate::execute::rows;
use crate::plan::route::Values;
use crate::plan::Plan;
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::quote::{ident, literal};
use crate::session::spool::Spool;

/// Where the rows of materialized views over several nodes live, on the default node.
pub const VIEWS_SCHEMA: &str = "shardgate_views";

/// The rows of a query run for shardgate itself instead of the client (`Session::push`).
#[derive(Default)]
pub struct Capture {
    pub rows: Spool,
    /// The rows' RowDescription.
    pub description: Option<Frame>,
    /// The command tag of the query that made them.
    pub tag: Option<String>,
}

impl Capture {
    /// Whether the frame is the query's own (kept or dropped here) rather than the client's
    /// (errors and notices still reach the client).
    pub fn take(&mut self, f: &Frame) -> bool {
        match f.tag {
            be::DATA_ROW => {
                self.rows.push(f);
                true
            }
            be::ROW_DESCRIPTION => {
                self.description = Some(f.clone());
                true
            }
            be::COMMAND_COMPLETE => {
                self.tag = be::command_tag(f).ok().map(str::to_string);
                true
            }
            be::EMPTY_QUERY => true,
            _ => false,
        }
    }
}

fn hidden(name: &ObjectName) -> String {
    format!("{VIEWS_SCHEMA}.{}", ident(&matview::relname(name)))
}

/// The statement `CREATE MATERIALIZED VIEW` runs on the default node: the client's, over the
/// table holding the rows.
fn view_over_rows(create: &sqlparser::ast::CreateView, with_data: bool) -> SgResult<String> {
    let table = hidden(&create.name);
    let q =
        crate::analyze::parse_sql(&format!("SELECT * FROM {table}")).map_err(SgError::internal)?;
    let Some(Statement::Query(q)) = q.into_iter().next() else {
        return Err(SgError::internal("view template did not parse"));
    };
    let mut v = create.clone();
    v.query = q;
    let mut sql = Statement::CreateView(v).to_string();
    if !with_data {
        sql.push_str(" WITH NO DATA");
    }
    Ok(sql)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Runs `text` when it makes a table or materialized view from rows of several nodes;
    /// None when it is not such a statement or PostgreSQL on the default node makes it whole.
    pub(super) async fn materialize(&mut self, text: &str) -> SgResult<Option<bool>> {
        let Some(made) = matview::read(text) else {
            return Ok(None);
        };
        let map = &self.shared.config.shardmap;
        match made {
            Made::Table { create, query } => {
                let name = matview::relname(&create.name);
                if create.temporary || map.get(&name).is_some() || self.on_default(&query) {
                    return Ok(None);
                }
                let mut empty = (*create).clone();
                empty.with_data = Some(sqlparser::ast::WithData {
                    data: false,
                    statistics: None,
                });
                let Some(rows) = self.captured(&query.to_string()).await? else {
                    return Ok(Some(false));
                };
                self.begin_if_none();
                if !self
                    .on_default_node(&Statement::CreateTable(empty).to_string())
                    .await?
                {
                    return Ok(Some(false));
                }
                let Some(n) = self
                    .copy_rows(&create.name.to_string(), rows, false)
                    .await?
                else {
                    return Ok(Some(false));
                };
                self.push(&be::command_complete(&format!("SELECT {n}")));
                Ok(Some(true))
            }
            Made::View {
                create,
                query,
                with_data,
            } => {
                if self.on_default(&query) {
                    return Ok(None);
                }
                let table = hidden(&create.name);
                let q = query.to_string();
                let Some(rows) = self.view_rows(&q, with_data).await? else {
                    return Ok(Some(false));
                };
                self.begin_if_none();
                let setup = [
                    format!("CREATE SCHEMA IF NOT EXISTS {VIEWS_SCHEMA}"),
                    format!("CREATE TABLE {table} AS {q} WITH NO DATA"),
                    format!("COMMENT ON TABLE {table} IS {}", literal(&q)),
                ];
                for sql in &setup {
                    if !self.on_default_node(sql).await? {
                        return Ok(Some(false));
                    }
                }
                if self.copy_rows(&table, rows, false).await?.is_none() {
                    return Ok(Some(false));
                }
                let sql = view_over_rows(&create, with_data)?;
                self.forward_default(&sql).await
            }
            Made::Refresh { name, with_data } => {
                let table = hidden(&name);
                let lookup = format!(
                    "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = {} AND c.relname = {}",
                    literal(VIEWS_SCHEMA),
                    literal(&matview::relname(&name))
                );
                let node = self.shared.config.default_node;
                let Some(found) = self.rows_on(node, &lookup).await? else {
                    return Ok(Some(false));
                };
                let Some(q) = found.into_iter().next().and_then(|r| r.into_iter().next()) else {
                    return Ok(None);
                };
                let Some(rows) = self.view_rows(&q, with_data).await? else {
                    return Ok(Some(false));
                };
                self.begin_if_none();
                if !self.on_default_node(&format!("TRUNCATE {table}")).await? {
                    return Ok(Some(false));
                }
                if self.copy_rows(&table, rows, false).await?.is_none() {
                    return Ok(Some(false));
                }
                self.forward_default(text).await
            }
        }
    }

    /// After `DROP MATERIALIZED VIEW` succeeded: the tables that held those views' rows.
    pub(super) async fn drop_view_rows(&mut self, text: &str) -> SgResult<()> {
        for v in matview::dropped_views(text) {
            let sql = format!("DROP TABLE IF EXISTS {VIEWS_SCHEMA}.{}", ident(&v));
            let node = self.shared.config.default_node;
            if let Err(e) = self.backend(node).await?.run(&sql).await {
                tracing::warn!("dropping the rows of materialized view \"{v}\": {e}");
            }
        }
        self.txn.release();
        Ok(())
    }

    /// Whether PostgreSQL on the default node reads every row of the query itself.
    pub(super) fn on_default(&self, query: &Query) -> bool {
        let map = &self.shared.config.shardmap;
        let q = query.to_string();
        let s = crate::analyze::classify::statement(
            &Statement::Query(Box::new(query.clone())),
            &q,
            map,
        );
        matches!(
            crate::plan::route::plan(&s, &q, &Values::NONE, map),
            Ok(Plan::Route { node, .. }) if node == map.default_node
        )
    }

    fn begin_if_none(&mut self) {
        if self.txn.txn.is_none() {
            self.begin_implicit();
        }
        let node = self.shared.config.default_node;
        if let Some(t) = self.txn.txn.as_mut() {
            t.wrote.insert(node);
        }
    }

    /// A view's rows: its query's, or none for WITH NO DATA; None after the query's error.
    async fn view_rows(&mut self, q: &str, with_data: bool) -> SgResult<Option<Spool>> {
        match with_data {
            true => self.captured(q).await,
            false => Ok(Some(Spool::default())),
        }
    }

    /// The rows of `sql` run as a client query; None after its error reached the client.
    async fn captured(&mut self, sql: &str) -> SgResult<Option<Spool>> {
        Ok(self.captured_with_names(sql).await?.map(|(_, rows)| rows))
    }

    /// As [`captured`], with the names of the result's columns.
    pub(super) async fn captured_with_names(
        &mut self,
        sql: &str,
    ) -> SgResult<Option<(Vec<String>, Spool)>> {
        let analyzed = self.shared.cache.simple(sql, &self.shared.config.shardmap);
        let Some(s) = analyzed.analysis.stmts.first().cloned() else {
            return Err(SgError::internal("a materialized query vanished"));
        };
        let clock = s.stable_time.then(|| self.clock());
        let v = Values {
            literals: &analyzed.literals,
            clock: clock.as_ref(),
            ..Values::NONE
        };
        self.capture = Some(Capture {
            rows: self.spool(),
            ..Capture::default()
        });
        let frame = fe::build_query(sql);
        let ok = Box::pin(self.run_stmt(&s, sql, &v, &frame, false)).await;
        let cap = self.capture.take().unwrap_or_default();
        if !ok? || self.errored {
            return Ok(None);
        }
        if let Some(e) = cap.rows.failure() {
            self.error(e);
            return Ok(None);
        }
        let names = match &cap.description {
            Some(d) => rows::parse_row_description(d)?
                .into_iter()
                .map(|f| f.name)
                .collect(),
            None => Vec::new(),
        };
        Ok(Some((names, cap.rows)))
    }

    /// Runs shardgate's own statement on the default node; false after its error.
    pub(super) async fn on_default_node(&mut self, sql: &str) -> SgResult<bool> {
        let node = self.shared.config.default_node;
        match self.backend(node).await?.run(sql).await {
            Ok(_) => Ok(true),
            Err(e) => {
                self.error(&e);
                Ok(false)
            }
        }
    }

    /// The client's statement (or its stand-in) on the default node, answered as it answers.
    pub(super) async fn forward_default(&mut self, sql: &str) -> SgResult<Option<bool>> {
        let node = self.shared.config.default_node;
        self.errored = false;
        self.forward_simple(node, fe::build_query(sql)).await?;
        Ok(Some(!self.errored))
    }

    /// COPY of held text rows into `table` on the default node (each after its number when
    /// `numbered`), sent as they are read back so none is held twice; the row count, or None
    /// after the node's error.
    pub(super) async fn copy_rows(
        &mut self,
        table: &str,
        mut held: Spool,
        numbered: bool,
    ) -> SgResult<Option<u64>> {
        let node = self.shared.config.default_node;
        if let Err(f) = self
            .open_copy(node, &format!("COPY {table} FROM STDIN"))
            .await?
        {
            self.push(&f);
            self.statement_failed();
            return Ok(None);
        }
        let mut buf = bytes::BytesMut::new();
        let mut n = 0u64;
        let c = self.backend(node).await?;
        // A node that fails mid-COPY drops the CopyData still to come and answers at
        // CopyDone (protocol-flow.html, "COPY Operations"), so the rows can go unread.
        // A held row that cannot be read back (the spill file failed) ends the COPY with
        // CopyFail, so the node rolls it back and its connection stays usable.
        let unreadable = loop {
            let f = match held.pop() {
                Ok(Some(f)) => f,
                Ok(None) => break None,
                Err(e) => break Some(e),
            };
            n += 1;
            if numbered {
                buf.extend_from_slice(format!("{n}\t").as_bytes());
            }
            match rows::columns(&f) {
                Ok(cols) => super::insert_select::copy_line(&mut buf, &cols),
                Err(e) => break Some(e),
            }
            if buf.len() >= super::insert_select::COPY_CHUNK {
                c.send(&[Frame::build(fe::COPY_DATA, &buf)]).await?;
                buf.clear();
            }
        };
        let mut frames = Vec::new();
        match &unreadable {
            None => {
                if !buf.is_empty() {
                    frames.push(Frame::build(fe::COPY_DATA, &buf));
                }
                frames.push(Frame::build(fe::COPY_DONE, &[]));
            }
            Some(e) => frames.push(Frame::build(
                fe::COPY_FAIL,
                format!("{}\0", e.message).as_bytes(),
            )),
        }
        c.send(&frames).await?;
        let mut n = 0;
        let mut failure = None;
        loop {
            let f = c.read().await?;
            match f.tag {
                be::COMMAND_COMPLETE => n = be::split_tag(be::command_tag(&f)?).1.unwrap_or(0),
                be::ERROR_RESPONSE if failure.is_none() => failure = Some(f),
                be::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        if let Some(e) = unreadable {
            self.error(&e);
            self.statement_failed();
            return Ok(None);
        }
        if let Some(f) = failure {
            self.push(&f);
            self.statement_failed();
            return Ok(None);
        }
        Ok(Some(n))
    }

    /// An empty spool bounded as `[server]` says.
    pub(super) fn spool(&self) -> Spool {
        let c = &self.shared.config;
        Spool::new(crate::session::spool::Limits {
            memory_bytes: c.spool_memory_bytes,
            disk_bytes: c.max_spool_bytes,
            dir: c.spool_dir.clone(),
        })
    }
}
