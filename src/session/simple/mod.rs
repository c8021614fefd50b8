//! The simple query protocol: each statement of the string is planned and run; replies are
//! forwarded frame by frame (rows are never decoded), and several nodes' replies combined.

mod copy;
mod copy_out;
mod forward;
mod generic;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Session;
use crate::analyze::classify::SetAction;
use crate::analyze::{shape, Kind, Stmt};
use crate::error::{code, SgError, SgResult};
use crate::plan::route::{plan, Values};
use crate::plan::{Plan, SessionOp};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;

pub use forward::{Mode, Outcome};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub async fn simple_query(&mut self, sql: &str, frame: &Frame) -> SgResult<()> {
        if shape::is_blank(sql) {
            self.push(&be::simple(be::EMPTY_QUERY));
            return Ok(());
        }
        let mut analyzed = self.shared.cache.simple(sql, &self.shared.config.shardmap);
        if analyzed.analysis.stmts.iter().any(|s| s.unknown_function)
            && self.shared.reload_functions(false).await
        {
            analyzed = self.shared.cache.simple(sql, &self.shared.config.shardmap);
        }
        let analysis = analyzed.analysis.clone();
        let clock = analysis
            .stmts
            .iter()
            .any(|s| s.stable_time)
            .then(|| self.clock());
        let values = Values {
            literals: &analyzed.literals,
            params: &[],
            formats: &[],
            clock: clock.as_ref(),
            keys: &[],
        };
        let map = &self.shared.config.shardmap;
        // Statement texts of this query: a cached analysis may come from another text.
        let texts: Vec<&str> = if analysis.stmts.len() == 1 {
            vec![sql]
        } else {
            shape::split_statements(sql)
        };
        if texts.len() != analysis.stmts.len() {
            self.error(&SgError::internal("statement split mismatch"));
            return Ok(());
        }
        // A whole string whose statements all go to one node, outside any session-level
        // statement, is forwarded as one message: PostgreSQL then runs it as one implicit
        // transaction, as it would without shardgate.
        if analysis.stmts.len() > 1 {
            let plans: Vec<_> = analysis
                .stmts
                .iter()
                .zip(&texts)
                .map(|(s, t)| plan(s, t, &values, map))
                .collect();
            let single = plans.iter().all(|p| matches!(p, Ok(Plan::Route { .. })));
            let nodes: std::collections::BTreeSet<usize> = plans
                .iter()
                .flat_map(|p| p.as_ref().map(|p| p.nodes()).unwrap_or_default())
                .collect();
            let all_writes_ok = self.txn.txn.is_none();
            let mut fills = false;
            if single && nodes.len() == 1 && all_writes_ok {
                for s in &analysis.stmts {
                    fills |= match self.needs_fill(s).await {
                        Ok(f) => f,
                        Err(e) => {
                            self.error(&e);
                            return Ok(());
                        }
                    };
                }
            }
            if single && nodes.len() == 1 && all_writes_ok && !fills {
                let node = nodes.into_iter().next().unwrap_or(0);
                if analysis.stmts.iter().any(|s| s.sticky) {
                    self.txn.sticky.insert(node);
                }
                let raw = frame.clone();
                self.forward_simple(node, raw).await?;
                self.txn.release();
                return Ok(());
            }
        }
        let many = analysis.stmts.len() > 1;
        if many {
            // PostgreSQL parses the whole string before running any of it.
            // A statement shardgate cannot read is shown to PostgreSQL first: its syntax error
            // stops the whole string before anything runs, as it would on PostgreSQL.
            for (s, t) in analysis.stmts.iter().zip(&texts) {
                let Some(e) = s.unparsed.as_ref().filter(|_| s.kind == Kind::Other) else {
                    continue;
                };
                let refusal = SgError::unsupported(format!("this statement ({e})"));
                if let Some(f) = self.postgres_rejects(s, t, &refusal).await? {
                    if be::error_fields(&f).0 == code::SYNTAX_ERROR {
                        self.position = position_in(sql, t);
                        self.push(&f);
                        self.errored = true;
                        return Ok(());
                    }
                }
            }
        }
        // A multi-statement string runs in one implicit transaction, as PostgreSQL runs it
        // (postgres.c exec_simple_query): COMMIT or ROLLBACK inside it end it and the
        // statements after them start another; BEGIN makes it a block. A single statement
        // gets one when it writes on several nodes (`before_run`).
        self.errored = false;
        let mut failed = false;
        for (stmt, text) in analysis.stmts.iter().zip(&texts) {
            if many && self.txn.txn.is_none() {
                self.begin_implicit();
            }
            if self
                .txn
                .txn
                .as_ref()
                .is_some_and(|t| t.failed && !t.implicit)
                && !matches!(stmt.kind, Kind::Commit | Kind::Rollback | Kind::TxnOther)
            {
                self.error(&SgError::new(
                    code::IN_FAILED_TXN,
                    "current transaction is aborted, commands ignored until end of transaction block",
                ));
                break;
            }
            self.position = position_in(sql, text);
            let ok = self
                .run_stmt(stmt, text, &values, frame, analysis.stmts.len() == 1)
                .await?;
            if !ok {
                failed = true;
                break;
            }
        }
        self.position = be::Position::Keep;
        if self.txn.txn.as_ref().is_some_and(|t| t.implicit) {
            self.errored = failed;
            self.end_implicit().await?;
        }
        self.txn.release();
        Ok(())
    }

    /// Runs one statement of a simple query; false when it failed (the rest are skipped).
    pub(in crate::session) async fn run_stmt(
        &mut self,
        stmt: &Stmt,
        text: &str,
        values: &Values<'_>,
        frame: &Frame,
        whole: bool,
    ) -> SgResult<bool> {
        // Errors point into the client's text only where a worker runs that text as sent.
        let client_position = std::mem::replace(&mut self.position, be::Position::Drop);
        if matches!(stmt.kind, Kind::Select { .. })
            && stmt.accesses.is_empty()
            && text
                .as_bytes()
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"shardgate."))
        {
            if let Some(done) = self.time_partitions(text).await? {
                return Ok(done);
            }
            if let Some(done) = self.balanced_partitions(text).await? {
                return Ok(done);
            }
        }
        if stmt.accesses.is_empty() && !self.portals.is_empty() {
            if let Some(done) = self.portal_sql(text).await? {
                return Ok(done);
            }
        }
        // SQL-level PREPARE/EXECUTE/DEALLOCATE: EXECUTE runs its statement in its place.
        // Read from the text itself: a cached analysis has its constants lifted out.
        let explains_execute = matches!(&stmt.ast, Some(sqlparser::ast::Statement::Explain { statement, .. })
            if matches!(statement.as_ref(), sqlparser::ast::Statement::Execute { .. }));
        let own = (explains_execute
            || matches!(
                stmt.ast,
                Some(
                    sqlparser::ast::Statement::Prepare { .. }
                        | sqlparser::ast::Statement::Execute { .. }
                        | sqlparser::ast::Statement::Deallocate { .. }
                )
            ))
        .then(|| {
            crate::analyze::parse_sql(text)
                .ok()
                .and_then(|mut v| v.pop())
        })
        .flatten();
        let prepared = match (explains_execute, own.as_ref()) {
            (true, Some(e)) => self.explain_execute(e)?,
            _ => self.sql_prepared(own.as_ref())?,
        };
        match prepared {
            crate::session::sql_prepared::Prepared::No => {}
            crate::session::sql_prepared::Prepared::Done(ok) => return Ok(ok),
            crate::session::sql_prepared::Prepared::Run(sql) => {
                // The statement runs as if sent itself (filled ids, routing by its values).
                let analyzed = self.shared.cache.simple(&sql, &self.shared.config.shardmap);
                let Some(s) = analyzed.analysis.stmts.first().cloned() else {
                    return Err(SgError::internal("an executed statement vanished"));
                };
                // One clock for every node's now(), as the statement sent itself would get.
                let clock = s.stable_time.then(|| self.clock());
                let v = Values {
                    literals: &analyzed.literals,
                    clock: clock.as_ref().or(values.clock),
                    ..*values
                };
                return Box::pin(self.run_stmt(&s, &sql, &v, frame, false)).await;
            }
        };
        // A table or materialized view made from rows of several nodes.
        if makes_from_query(stmt, text) {
            if let Some(done) = self.materialize(text).await? {
                return Ok(done);
            }
        }
        if matches!(stmt.ast, Some(sqlparser::ast::Statement::Declare { .. })) {
            if let Some(done) = self.declare_cursor(text).await? {
                return Ok(done);
            }
        }
        // `shardgate.shards`: the node's rows in place of the view.
        let shards = if matches!(stmt.kind, Kind::Select { .. }) {
            match self.shards_view(text).await {
                Ok(s) => s,
                Err(e) => {
                    self.error(&e);
                    return Ok(false);
                }
            }
        } else {
            None
        };
        if matches!(stmt.kind, Kind::CreateTable | Kind::Drop | Kind::AlterTable) {
            if let Some(done) = self.partition_ddl(stmt, text).await? {
                return Ok(done);
            }
        }
        // Column defaults shardgate computes (serial ids, the key): the statement runs as
        // rewritten with their values.
        let filled = match stmt.insert_into {
            Some(_) => match self.fill(stmt, text, None).await {
                Ok(f) => f,
                Err(e) => {
                    self.error(&e);
                    return Ok(false);
                }
            },
            None => None,
        };
        let refilled;
        let is_filled = filled.is_some();
        let rewritten = filled.map(|f| f.sql).or(shards);
        let (stmt, text, values, whole) = match &rewritten {
            Some(sql) => {
                refilled = self.shared.cache.simple(sql, &self.shared.config.shardmap);
                let s = refilled
                    .analysis
                    .stmts
                    .first()
                    .ok_or_else(|| SgError::internal("a filled INSERT vanished"))?;
                let v = Values {
                    literals: &refilled.literals,
                    ..*values
                };
                (s, sql.as_str(), v, false)
            }
            None => (stmt, text, *values, whole),
        };
        let values = &values;
        let p = match self.plan_reading_keys(stmt, text, values).await {
            Ok(p) => p,
            Err(e) if e.message.ends_with(crate::plan::copy::NEEDS_MERGE) => {
                if let Some(done) = self.copy_query(text).await? {
                    return Ok(done);
                }
                self.error(&e);
                return Ok(false);
            }
            Err(e) => {
                // PostgreSQL reads the client's own text here.
                if rewritten.is_none() {
                    self.position = client_position;
                }
                self.refuse(stmt, text, &e).await?;
                return Ok(false);
            }
        };
        if is_filled {
            if let Err(e) = self.filled_runs_on_default(stmt, &p) {
                self.error(&e);
                return Ok(false);
            }
        }
        if let Err(e) = self.before_run(&p, stmt) {
            self.error(&e);
            return Ok(false);
        }
        self.errored = false;
        if rewritten.is_none()
            && matches!(
                p,
                Plan::Route { .. } | Plan::Scatter { .. } | Plan::Session(_)
            )
        {
            self.position = client_position;
        }
        match &p {
            Plan::Route { node, .. } => {
                if let Some(shape) = whole
                    .then(|| self.generic_shape(stmt, values.literals))
                    .flatten()
                {
                    if let generic::Generic::Done =
                        self.run_generic(*node, shape, values.literals).await?
                    {
                        return Ok(!self.errored);
                    }
                }
                let f = if whole {
                    frame.clone()
                } else {
                    fe::build_query(text)
                };
                self.forward_simple(*node, f).await?;
                if !self.errored && stmt.set_config {
                    let call = crate::analyze::parse_sql(text).ok().and_then(|p| {
                        p.first()
                            .and_then(|a| crate::analyze::calls::set_config_call(a, false))
                    });
                    if let Some(call) = call {
                        self.record_set_config(*node, &call).await?;
                    }
                }
            }
            Plan::Scatter { nodes, combine, .. } => {
                let parts = nodes.iter().map(|n| (*n, vec![text.to_string()])).collect();
                self.multi(parts, *combine).await?;
            }
            Plan::Merge { nodes, merge, .. } => {
                self.run_merge(super::merge::MergeCall {
                    nodes,
                    merge,
                    original: text,
                    param_types: &[],
                    params: &[],
                    param_formats: &[],
                    result_formats: &[],
                    describe: true,
                    collated: stmt.collated,
                })
                .await?;
            }
            Plan::Session(op) => self.session_op(op.clone(), stmt, text).await?,
            Plan::Explain {
                inner,
                analyze,
                sql,
                options,
            } => {
                // What a routed SELECT runs as, when the workers get it prepared.
                let prepared = match (inner.as_ref(), stmt.explained.as_deref()) {
                    (Plan::Route { .. }, Some(s)) if whole => {
                        crate::analyze::generic::shape_of(sql)
                            .filter(|(_, n)| self.generic_allowed(s, *n))
                            .map(|(shape, _)| shape)
                    }
                    _ => None,
                };
                self.explain(inner, (*analyze, options), sql, true, false, prepared)
                    .await?
            }
            Plan::PerNode { .. } | Plan::InsertSelect { .. } | Plan::MoveRows { .. } => {
                self.run_per_node(&p, None).await?;
            }
            Plan::Copy(c) => self.copy(c).await?,
        }
        if !self.errored
            && matches!(
                stmt.ast,
                Some(sqlparser::ast::Statement::Drop {
                    object_type: sqlparser::ast::ObjectType::MaterializedView,
                    ..
                })
            )
        {
            self.drop_view_rows(text).await?;
        }
        // Tables' collations and the functions analyses depend on may have changed.
        if !self.errored
            && matches!(
                stmt.kind,
                Kind::CreateTable | Kind::AlterTable | Kind::Drop | Kind::OtherDdl { .. }
            )
        {
            self.shared.columns.forget();
            self.shared.reload_functions(true).await;
        }
        Ok(!self.errored)
    }

    /// Rewritten per-node statements (then what DDL taught about the table), or an
    /// INSERT ... SELECT. True when it succeeded.
    /// Runs a per-node plan; `bound` carries an extended-protocol INSERT's Bind.
    pub async fn run_per_node(
        &mut self,
        p: &Plan,
        bound: Option<(&crate::protocol::frontend::Bind, &[u32])>,
    ) -> SgResult<bool> {
        self.errored = false;
        match p {
            Plan::PerNode {
                parts,
                combine,
                learn,
                returning_order,
                params,
                ..
            } => {
                let ok = match bound {
                    Some((bind, types)) => {
                        let b = forward::Bound {
                            bind,
                            types,
                            params,
                        };
                        self.multi_in_order(parts, returning_order, Some(&b))
                            .await?
                    }
                    None if !params.is_empty() => {
                        return Err(SgError::internal("per-node parts with parameters unbound"))
                    }
                    None if returning_order.is_empty() => {
                        self.multi(parts.clone(), *combine).await?
                    }
                    None => self.multi_in_order(parts, returning_order, None).await?,
                };
                if let (true, Some((table, ty, pos))) = (ok, learn) {
                    let map = &self.shared.config.shardmap;
                    if let Err(e) = map.set_key_type(table, *ty) {
                        tracing::warn!("{e}");
                    }
                    map.set_key_position(table, *pos);
                    self.shared.cache.clear();
                }
            }
            Plan::InsertSelect { .. } => self.insert_select(p).await?,
            Plan::MoveRows { .. } => self.move_rows(p).await?,
            _ => return Err(SgError::internal("not a per-node plan")),
        }
        Ok(!self.errored)
    }

    pub async fn session_op(&mut self, op: SessionOp, stmt: &Stmt, text: &str) -> SgResult<()> {
        match op {
            SessionOp::Begin => self.begin(text).await,
            SessionOp::Commit => self.end(true).await?,
            SessionOp::Rollback => self.end(false).await?,
            SessionOp::TxnOther => self.txn_other(text).await?,
            SessionOp::Set => {
                let Kind::Set(action) = &stmt.kind else {
                    return Ok(());
                };
                if let SetAction::ResetAll = action {
                    if text
                        .trim_start()
                        .to_ascii_lowercase()
                        .starts_with("discard")
                    {
                        self.settings = Default::default();
                        self.sql_prepared.clear();
                        self.txn.discard();
                        self.push(&be::command_complete("DISCARD ALL"));
                        return Ok(());
                    }
                }
                let node = self.shared.config.default_node;
                self.errored = false;
                // Inside a block, every node the block has reached takes the SET now (it is
                // part of their transactions: a ROLLBACK undoes it there, see
                // `restore_settings`); nodes reached later get it before or after their BEGIN.
                // Outside, the default node answers and the others are brought to the
                // session's settings when next used.
                if self.txn.txn.is_some() {
                    self.backend(node).await?;
                }
                let others = self.txn.block_nodes_except(node);
                self.route_text(node, text).await?;
                for n in &others {
                    if self.errored {
                        break;
                    }
                    if let Err(e) = self.backend(*n).await?.run(text).await {
                        self.error(&e);
                    }
                }
                if !self.errored {
                    match action {
                        SetAction::Session(name) => {
                            std::sync::Arc::make_mut(&mut self.settings)
                                .insert(name.clone(), text.to_string());
                        }
                        SetAction::Reset(name) => {
                            std::sync::Arc::make_mut(&mut self.settings).remove(name);
                        }
                        SetAction::ResetAll => self.settings = Default::default(),
                        SetAction::Local => {
                            if let Some(t) = self.txn.txn.as_mut() {
                                t.savepoints.push(text.to_string());
                            }
                            return Ok(());
                        }
                    }
                    // The connections that ran it already have it.
                    let wanted = self.settings.clone();
                    for n in others.iter().chain(std::iter::once(&node)) {
                        if let Some(c) = self.txn.conns.get_mut(n) {
                            c.settings = wanted.clone();
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The statement's first word.
/// Where the errors of statement `text`, a part of the client's string `sql`, point: PostgreSQL
/// counts a position from the start of the whole string (errors.sgml, "position").
fn position_in(sql: &str, text: &str) -> be::Position {
    if std::ptr::eq(sql, text) {
        return be::Position::Keep;
    }
    (text.as_ptr() as usize)
        .checked_sub(sql.as_ptr() as usize)
        .and_then(|at| sql.get(..at))
        .map_or(be::Position::Drop, |before| {
            be::Position::Shift(before.chars().count())
        })
}

fn first_word(text: &str) -> &str {
    text.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
}

/// Whether the statement may make a table or materialized view from a query's rows (checked
/// cheaply: most statements are not).
fn makes_from_query(stmt: &Stmt, text: &str) -> bool {
    let w = first_word(text);
    w.eq_ignore_ascii_case("create")
        || w.eq_ignore_ascii_case("refresh")
        || matches!(&stmt.ast, Some(sqlparser::ast::Statement::Query(q))
            if matches!(q.body.as_ref(), sqlparser::ast::SetExpr::Select(s) if s.into.is_some()))
}
