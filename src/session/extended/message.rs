//! What each extended-protocol message does: Parse, Bind (routing the portal by its
//! parameters), Describe, Execute and Close, queued into the batch or run by shardgate.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::analyze::Kind;
use crate::error::{SgError, SgResult};
use crate::plan::partition::classify_text;
use crate::plan::route::Values;
use crate::plan::{Combine, Plan};
use crate::protocol::backend as be;
use crate::protocol::frontend as fe;
use crate::protocol::Frame;
use crate::session::{explain, Session};

use super::batch::{Batch, Item, Unit};
use super::{backend_name, no_portal, Portal, PortalRun, Prepared};

fn no_params_description() -> Frame {
    let mut b = BytesMut::new();
    b.put_i16(0);
    Frame::build(be::PARAMETER_DESCRIPTION, &b)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn message(&mut self, b: &mut Batch, f: &Frame) -> SgResult<()> {
        match f.tag {
            fe::PARSE => {
                let p = fe::parse(f)?;
                let mut analyzed = self
                    .shared
                    .cache
                    .extended(&p.sql, &self.shared.config.shardmap);
                if analyzed.analysis.stmts.iter().any(|s| s.unknown_function)
                    && self.shared.reload_functions(false).await
                {
                    analyzed = self
                        .shared
                        .cache
                        .extended(&p.sql, &self.shared.config.shardmap);
                }
                if analyzed.analysis.stmts.len() > 1 {
                    return Err(SgError::syntax(
                        "cannot insert multiple commands into a prepared statement",
                    ));
                }
                // A statement shardgate cannot read gets PostgreSQL's own Parse error when
                // PostgreSQL cannot read it either (`Session::refuse`).
                if let Some(stmt) = analyzed.analysis.stmts.first() {
                    if let Some(e) = &stmt.refuse {
                        if let Some(f) = self.postgres_rejects(stmt, &p.sql, e).await? {
                            b.items.push(Item::Local(f));
                            b.failed = true;
                            if let Some(t) = self.txn.txn.as_mut() {
                                t.failed = true;
                            }
                            return Ok(());
                        }
                    }
                }
                let prepared = Prepared {
                    backend_name: backend_name(&p),
                    analysis: analyzed.analysis,
                    parse: p,
                };
                self.keep_statement(prepared)?;
                b.items.push(Item::Local(be::simple(be::PARSE_COMPLETE)));
            }
            fe::BIND => {
                let bind = fe::bind(f)?;
                let prepared = self.statement(&bind.statement)?;
                let (prepared, bind, filled) = match self.fill_bound(&prepared, &bind).await? {
                    Some((p, b)) => (p, b, true),
                    None => (prepared, bind, false),
                };
                let partitioning = prepared.stmt().is_some_and(|s| {
                    matches!(s.kind, Kind::CreateTable | Kind::Drop | Kind::AlterTable)
                        && !matches!(
                            classify_text(&prepared.parse.sql, &self.shared.config.shardmap, None),
                            Ok(None)
                        )
                });
                let run = if let Some(op) = prepared.session_op() {
                    b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                    PortalRun::Session(op)
                } else if prepared.stmt().is_some_and(|s| {
                    matches!(s.ast, Some(sqlparser::ast::Statement::Declare { .. }))
                }) {
                    let types = fe::read_param_types(&prepared.parse.types);
                    let sql = crate::plan::inline::inline_params(
                        &prepared.parse.sql,
                        &bind.params,
                        &bind.param_formats,
                        &types,
                    )?;
                    b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                    PortalRun::Declare { sql }
                } else if partitioning {
                    // Run at Execute as the simple protocol runs it (`Session::partition_ddl`).
                    b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                    PortalRun::PartitionDdl
                } else {
                    let stmt = prepared
                        .stmt()
                        .ok_or_else(|| SgError::internal("empty prepared statement"))?;
                    let clock = stmt.stable_time.then(|| self.clock());
                    let values = Values {
                        literals: &[],
                        params: &bind.params,
                        formats: &bind.param_formats,
                        clock: clock.as_ref(),
                        keys: &[],
                    };
                    let p = self
                        .plan_reading_keys(stmt, &prepared.parse.sql, &values)
                        .await?;
                    if filled {
                        self.filled_runs_on_default(stmt, &p)?;
                    }
                    let outside = self.txn.txn.is_none();
                    self.before_run(&p, stmt)?;
                    if outside && self.txn.txn.is_some() {
                        // This batch now writes on a second node: the nodes it already used
                        // join the implicit transaction before their queued messages run.
                        for n in b.touched.clone() {
                            self.backend(n).await?;
                        }
                    }
                    match p {
                        Plan::Copy(_) => {
                            return Err(SgError::unsupported(
                                "COPY of a distributed or reference table in the extended query protocol (send it as a simple Query)",
                            ))
                        }
                        Plan::Route { node, .. } => {
                            self.bind_on(b, &prepared, &bind, vec![node], Combine::Concat)
                                .await?
                        }
                        Plan::Scatter { nodes, combine, .. } => {
                            self.bind_on(b, &prepared, &bind, nodes, combine).await?
                        }
                        Plan::PerNode { .. }
                        | Plan::InsertSelect { .. }
                        | Plan::MoveRows { .. } => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            let insert = matches!(p, Plan::PerNode { .. }) && stmt.insert.is_some();
                            PortalRun::PerNode {
                                plan: p,
                                bind: insert.then(|| bind.clone()),
                            }
                        }
                        Plan::Session(op) => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            PortalRun::Session(op)
                        }
                        Plan::Merge { .. } => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            PortalRun::Merge {
                                plan: p,
                                bind: bind.clone(),
                            }
                        }
                        Plan::Explain { .. } => {
                            b.items.push(Item::Local(be::simple(be::BIND_COMPLETE)));
                            PortalRun::Explain {
                                plan: p,
                                has_params: !bind.params.is_empty(),
                            }
                        }
                    }
                };
                self.portals.insert(
                    bind.portal.clone(),
                    Portal {
                        stmt: prepared,
                        run,
                        held: None,
                    },
                );
            }
            fe::DESCRIBE => {
                let (kind, name) = fe::target(f)?;
                if kind == b'S' {
                    let prepared = self.statement(&name)?;
                    if prepared.session_op().is_some() {
                        b.items.push(Item::Local(no_params_description()));
                        b.items.push(Item::Local(be::simple(be::NO_DATA)));
                    } else {
                        let node = self.home_node(&prepared);
                        let frame = fe::build_target(fe::DESCRIBE, b'S', &prepared.backend_name);
                        let item = Item::Remote {
                            node,
                            unit: Unit::DescribeStmt,
                            forward: true,
                        };
                        self.queue(b, node, Some(&prepared), frame, item).await?;
                    }
                } else {
                    let Some(portal) = self.portals.get(&name) else {
                        // A cursor DECLAREd in SQL is a portal of the default node's backend
                        // (every cursor lives there, `declare_cursor`): psycopg describes its
                        // server-side cursors this way.
                        let node = self.shared.config.default_node;
                        return self.describe_portal_on(b, node, &name).await;
                    };
                    match &portal.run {
                        PortalRun::Nodes { nodes, .. } => {
                            let node = nodes.first().copied().unwrap_or(0);
                            self.describe_portal_on(b, node, &name).await?;
                        }
                        PortalRun::Merge { bind, .. }
                        | PortalRun::PerNode {
                            bind: Some(bind), ..
                        } => {
                            let formats = bind.result_formats.clone();
                            let stmt = portal.stmt.clone();
                            self.play(b, false).await?;
                            let types = fe::read_param_types(&stmt.parse.types);
                            let d = self.shared.config.default_node;
                            match self.describe_fields(d, &stmt.parse.sql, &types).await? {
                                Ok(fields) if fields.is_empty() => {
                                    self.push(&be::simple(be::NO_DATA))
                                }
                                Ok(fields) => self.push(&crate::execute::rows::row_description(
                                    &fields,
                                    fields.len(),
                                    &formats,
                                )),
                                Err(f) => {
                                    self.push(&f);
                                    self.errored = true;
                                    b.failed = true;
                                }
                            }
                        }
                        PortalRun::Explain {
                            plan: Plan::Explain { options, .. },
                            ..
                        } => b.items.push(Item::Local(explain::description_for(options))),
                        PortalRun::Explain { .. } => {
                            b.items.push(Item::Local(explain::description()))
                        }
                        _ => b.items.push(Item::Local(be::simple(be::NO_DATA))),
                    }
                }
            }
            fe::EXECUTE => {
                let (name, max_rows) = fe::execute(f)?;
                let portal = self.portals.get(&name).ok_or_else(|| no_portal(&name))?;
                if portal.held.is_some() {
                    self.play(b, false).await?;
                    return self.serve_held(&name, max_rows).await;
                }
                let stmt = portal.stmt.clone();
                match &portal.run {
                    PortalRun::Nodes { nodes, combine } => {
                        let (nodes, combine) = (nodes.clone(), *combine);
                        if nodes.len() == 1 {
                            let item = Item::Remote {
                                node: nodes[0],
                                unit: Unit::Execute,
                                forward: true,
                            };
                            self.queue(b, nodes[0], None, f.clone(), item).await?;
                        } else {
                            if max_rows != 0 {
                                // Earlier messages' replies first: the capture takes this
                                // Execute's rows only.
                                self.play(b, false).await?;
                                self.capture_rows();
                            }
                            for &n in &nodes {
                                self.backend(n).await?;
                                b.frames.entry(n).or_default().push(f.clone());
                                b.touched.insert(n);
                            }
                            b.items.push(match combine {
                                Combine::Concat => Item::ExecConcat { nodes },
                                Combine::Same => Item::ExecSame { nodes },
                            });
                            if max_rows != 0 {
                                self.play(b, false).await?;
                                if !self.hold_rows(&name, max_rows, b.failed).await? {
                                    b.failed = true;
                                }
                            }
                        }
                    }
                    PortalRun::Session(op) => {
                        let op = op.clone();
                        self.play(b, false).await?;
                        if let Some(s) = stmt.stmt() {
                            let s = s.clone();
                            self.session_op(op, &s, &stmt.parse.sql).await?;
                        }
                    }
                    PortalRun::Merge {
                        plan: Plan::Merge { nodes, merge, .. },
                        bind,
                    } => {
                        let (nodes, merge, bind) = (nodes.clone(), merge.clone(), bind.clone());
                        self.play(b, false).await?;
                        if max_rows != 0 {
                            self.capture_rows();
                        }
                        let types = fe::read_param_types(&stmt.parse.types);
                        self.errored = false;
                        self.position = be::Position::Drop;
                        let merged = self
                            .run_merge(crate::session::merge::MergeCall {
                                nodes: &nodes,
                                merge: &merge,
                                original: &stmt.parse.sql,
                                param_types: &types,
                                params: &bind.params,
                                param_formats: &bind.param_formats,
                                result_formats: &bind.result_formats,
                                describe: false,
                                collated: stmt.stmt().is_some_and(|s| s.collated),
                            })
                            .await;
                        self.position = be::Position::Keep;
                        if self.errored {
                            b.failed = true;
                        }
                        if max_rows != 0 && !self.hold_rows(&name, max_rows, b.failed).await? {
                            b.failed = true;
                        }
                        merged?;
                    }
                    PortalRun::Merge { .. } => {}
                    PortalRun::Explain {
                        plan:
                            Plan::Explain {
                                inner,
                                analyze,
                                sql,
                                options,
                            },
                        has_params,
                    } => {
                        let (inner, analyze, sql, has_params, options) = (
                            inner.clone(),
                            *analyze,
                            sql.clone(),
                            *has_params,
                            options.clone(),
                        );
                        self.play(b, false).await?;
                        self.explain(&inner, (analyze, &options), &sql, false, has_params, None)
                            .await?;
                    }
                    PortalRun::Explain { .. } => {}
                    PortalRun::Declare { sql } => {
                        let sql = sql.clone();
                        self.play(b, false).await?;
                        self.errored = false;
                        let done = match self.declare_cursor(&sql).await? {
                            Some(ok) => ok,
                            None => {
                                let d = self.shared.config.default_node;
                                self.route_text(d, &sql).await?;
                                !self.errored
                            }
                        };
                        if !done {
                            b.failed = true;
                        }
                    }
                    PortalRun::PartitionDdl => {
                        self.play(b, false).await?;
                        self.errored = false;
                        let done = match stmt.stmt() {
                            Some(s) => {
                                let s = s.clone();
                                self.partition_ddl(&s, &stmt.parse.sql).await?
                            }
                            None => None,
                        };
                        if done != Some(true) {
                            b.failed = true;
                        }
                    }
                    PortalRun::PerNode { plan, bind } => {
                        let (p, bind) = (plan.clone(), bind.clone());
                        let types = fe::read_param_types(&portal.stmt.parse.types);
                        self.play(b, false).await?;
                        let bound = bind.as_ref().map(|b| (b, types.as_slice()));
                        // The nodes run rewrites: their positions are not the client's.
                        self.position = be::Position::Drop;
                        let ran = self.run_per_node(&p, bound).await;
                        self.position = be::Position::Keep;
                        if !ran? {
                            b.failed = true;
                        }
                    }
                }
            }
            fe::CLOSE => {
                let (kind, name) = fe::target(f)?;
                if kind == b'S' {
                    self.forget_statement(&name);
                } else {
                    self.portals.remove(&name);
                }
                b.items.push(Item::Local(be::simple(be::CLOSE_COMPLETE)));
            }
            _ => {}
        }
        Ok(())
    }

    /// Describe of portal `name` as the worker holding it answers.
    async fn describe_portal_on(&mut self, b: &mut Batch, node: usize, name: &str) -> SgResult<()> {
        let frame = fe::build_target(fe::DESCRIBE, b'P', name);
        let item = Item::Remote {
            node,
            unit: Unit::DescribePortal,
            forward: true,
        };
        self.queue(b, node, None, frame, item).await
    }

    /// Where a statement is described: a node holding its first table, else the default node.
    fn home_node(&self, p: &Prepared) -> usize {
        let map = &self.shared.config.shardmap;
        p.stmt()
            .and_then(|s| s.accesses.first())
            .and_then(|a| map.get(&a.table))
            .filter(|t| !t.is_reference())
            .and_then(|t| t.nodes(map.node_count).first().copied())
            .unwrap_or(map.default_node)
    }

    async fn bind_on(
        &mut self,
        b: &mut Batch,
        prepared: &Arc<Prepared>,
        bind: &fe::Bind,
        nodes: Vec<usize>,
        combine: Combine,
    ) -> SgResult<PortalRun> {
        for (i, &node) in nodes.iter().enumerate() {
            let frame = fe::build_bind(&bind.portal, &prepared.backend_name, bind);
            let item = Item::Remote {
                node,
                unit: Unit::Bind,
                forward: i == 0,
            };
            self.queue(b, node, Some(prepared), frame, item).await?;
        }
        Ok(PortalRun::Nodes { nodes, combine })
    }
}
