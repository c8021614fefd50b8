//! COPY of a distributed or reference table: the statement every node runs (printed from the
//! AST with identifiers quoted), the nodes, how each row finds its node (by the distribution
//! key, as INSERT routes it, or every node for a reference table), and the errors PostgreSQL
//! gives for rows shardgate itself refuses. Pure: the session streams the rows.

use sqlparser::ast::{CopySource, Ident, ObjectNamePart, Statement};

use super::route::{plan, reparse, Values};
use super::{Combine, Plan};
use crate::analyze::scope::{ident_name, table_name};
use crate::analyze::Stmt;
use crate::error::{SgError, SgResult};
use crate::protocol::copy::field::{self, Force};
use crate::protocol::copy::{printout, CopyOptions, Format, Row};
use crate::shardmap::{KeyType, KeyValue, ShardMap, TableDist};

#[derive(Debug, Clone, PartialEq)]
pub struct CopyPlan {
    /// The sharded table (for COPY (query) TO, empty).
    pub table: String,
    /// What every node runs.
    pub sql: String,
    pub nodes: Vec<usize>,
    pub options: CopyOptions,
    pub dir: Dir,
    /// The column list of COPY FROM as written (empty: every column).
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dir {
    /// FROM STDIN, rows sent as `Rows` says.
    In(Rows),
    /// TO STDOUT: each node's rows in node order.
    Out,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    /// A reference table: every row to every node.
    Every,
    /// By the key: its position among the COPY's columns, None when the column list leaves it
    /// out (the row's key is NULL).
    Key { pos: Option<usize>, force: Force },
}

/// Where one row goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Dest {
    Node(usize),
    Every,
    /// A row every worker refuses with PostgreSQL's own error (a missing field, an unterminated
    /// quote, bytes no type reads): it goes to one node, which says so.
    AnyNode,
    /// A row shardgate refuses as PostgreSQL would (a key no shard takes, a key that does not
    /// read as its type), with the DETAIL and CONTEXT PostgreSQL gives.
    Refuse {
        error: SgError,
        detail: Option<String>,
        context: String,
    },
}

impl CopyPlan {
    /// Routes one row of a COPY FROM into `t`, whose key has type `ty`.
    pub fn route(&self, t: &TableDist, ty: KeyType, row: &Row) -> Dest {
        let Dir::In(Rows::Key { pos, force }) = &self.dir else {
            return Dest::Every;
        };
        let binary = self.options.format == Format::Binary;
        // CopyFromErrorCallback: the line's text, except in binary.
        let line_context = || {
            if binary {
                format!("COPY {}, line {}", t.name, row.line)
            } else {
                format!(
                    "COPY {}, line {}: \"{}\"",
                    t.name,
                    row.line,
                    printout(row.content())
                )
            }
        };
        let key = match pos {
            None => None,
            Some(k) => match field::read(&self.options, row.content(), *k, *force) {
                Ok(Some(None)) => None,
                Ok(Some(Some(v))) => {
                    let parsed = if binary {
                        KeyValue::parse_binary(ty, &v).ok()
                    } else {
                        let Ok(s) = std::str::from_utf8(&v) else {
                            return Dest::AnyNode;
                        };
                        match KeyValue::parse_text(ty, s) {
                            Ok(k) => Some(k),
                            Err(e) => {
                                let message = e.message.replace(
                                    &format!("type {}", ty.name()),
                                    &format!("type {}", ty.sql_name()),
                                );
                                return Dest::Refuse {
                                    error: SgError::new(e.code, message),
                                    detail: None,
                                    context: format!(
                                        "COPY {}, line {}, column {}: \"{}\"",
                                        t.name,
                                        row.line,
                                        t.column,
                                        printout(s.as_bytes())
                                    ),
                                };
                            }
                        }
                    };
                    match parsed {
                        Some(k) => Some(k),
                        None => return Dest::AnyNode,
                    }
                }
                Ok(None) | Err(_) => return Dest::AnyNode,
            },
        };
        match t.shard_for_row(key.as_ref()) {
            Ok(shard) => Dest::Node(t.node_of(shard)),
            Err(e) => Dest::Refuse {
                detail: e.detail.clone(),
                error: SgError::new(e.code, e.message),
                context: line_context(),
            },
        }
    }
}

/// The statement with the table and column names quoted as the shard map knows them.
fn print_quoted(ast: &Statement) -> String {
    let mut printed = ast.clone();
    if let Statement::Copy {
        source: CopySource::Table {
            table_name,
            columns,
        },
        values,
        ..
    } = &mut printed
    {
        let quote = |id: &Ident| Ident::with_quote('"', ident_name(id));
        for part in table_name.0.iter_mut() {
            if let ObjectNamePart::Identifier(id) = part {
                *id = quote(id);
            }
        }
        for c in columns.iter_mut() {
            *c = quote(c);
        }
        values.clear();
    }
    printed.to_string()
}

/// COPY t TO as `COPY (SELECT cols FROM t) TO`: on a worker the table is partitioned, and
/// PostgreSQL copies only plain tables out (copyto.c: "cannot copy from partitioned table").
fn select_form(ast: &Statement) -> SgResult<String> {
    let Statement::Copy {
        source: CopySource::Table {
            table_name: t,
            columns,
        },
        to,
        target,
        options,
        legacy_options,
        ..
    } = ast
    else {
        return Err(SgError::internal("not a COPY of a table"));
    };
    let quoted = |id: &Ident| crate::quote::ident(&ident_name(id));
    let cols = if columns.is_empty() {
        "*".to_string()
    } else {
        columns.iter().map(quoted).collect::<Vec<_>>().join(", ")
    };
    let parts: Vec<String> =
        t.0.iter()
            .filter_map(|p| p.as_ident().map(quoted))
            .collect();
    let select = format!("SELECT {cols} FROM {}", parts.join("."));
    let Statement::Query(q) = reparse(&select)? else {
        return Err(SgError::internal("SELECT did not parse as a query"));
    };
    Ok(Statement::Copy {
        source: CopySource::Query(q),
        to: *to,
        target: target.clone(),
        options: options.clone(),
        legacy_options: legacy_options.clone(),
        values: Vec::new(),
    }
    .to_string())
}

pub fn copy(stmt: &Stmt, text: &str, map: &ShardMap) -> SgResult<Plan> {
    let default = Plan::Route {
        node: map.default_node,
        why: "no distributed table".into(),
    };
    let ast = reparse(text)?;
    let Statement::Copy {
        source,
        to,
        options,
        legacy_options,
        ..
    } = &ast
    else {
        return Err(SgError::internal("COPY did not re-parse as one"));
    };
    let opts = CopyOptions::from_ast(options, legacy_options);
    let (name, columns) = match source {
        CopySource::Table {
            table_name: n,
            columns,
        } => (table_name(n), columns),
        CopySource::Query(q) => return copy_query(stmt, q, text, opts, map),
    };
    let Some(t) = map.get(&name) else {
        return Ok(default);
    };
    let nodes = t.nodes(map.node_count);
    if *to {
        if t.is_reference() {
            return Ok(Plan::Route {
                node: map.default_node,
                why: "COPY TO of a reference table".into(),
            });
        }
        return Ok(Plan::Copy(Box::new(CopyPlan {
            table: name,
            sql: select_form(&ast)?,
            nodes,
            options: opts,
            dir: Dir::Out,
            columns: Vec::new(),
        })));
    }
    // On the nodes the table is partitioned, and PostgreSQL refuses FREEZE there ("cannot
    // perform COPY FREEZE on a partitioned table", copyfrom.c); freezing only spares later
    // VACUUM work, so the rows are the same without it.
    let mut ast = ast.clone();
    if !t.is_reference() {
        if let Statement::Copy { options, .. } = &mut ast {
            options.retain(|o| !matches!(o, sqlparser::ast::CopyOption::Freeze(_)));
        }
    }
    let sql = print_quoted(&ast);
    let rows = if t.is_reference() {
        Rows::Every
    } else {
        t.key_type()?;
        let cols: Vec<String> = columns.iter().map(ident_name).collect();
        let pos = if matches!(t.kind, crate::shardmap::TableKind::Partition { .. }) {
            // One node takes every row.
            None
        } else if cols.is_empty() {
            Some(map.key_position(&name).ok_or_else(|| {
                SgError::unsupported(format!(
                    "COPY into \"{name}\" without a column list before the position of its distribution column is known (name the columns)"
                ))
            })?)
        } else {
            cols.iter().position(|c| *c == t.column)
        };
        let force = Force {
            null: opts.force_null.contains(&t.column),
            not_null: opts.force_not_null.contains(&t.column),
        };
        Rows::Key { pos, force }
    };
    Ok(Plan::Copy(Box::new(CopyPlan {
        table: name,
        sql,
        nodes,
        options: opts,
        dir: Dir::In(rows),
        columns: columns.iter().map(ident_name).collect(),
    })))
}

/// What the planner refuses and the session runs itself (`session::copy_query`).
pub const NEEDS_MERGE: &str = "COPY (query) TO STDOUT of a query that needs a merge";

/// COPY (query) TO STDOUT: where the query would run on one node, there; where its rows are
/// every node's rows concatenated, on each; a query that needs shardgate to merge rows is
/// refused here (the session holds its rows first: `session::copy_query`).
fn copy_query(
    stmt: &Stmt,
    q: &sqlparser::ast::Query,
    text: &str,
    opts: CopyOptions,
    map: &ShardMap,
) -> SgResult<Plan> {
    let inner_text = q.to_string();
    let inner_ast = Statement::Query(Box::new(q.clone()));
    let inner = crate::analyze::classify::statement(&inner_ast, &inner_text, map);
    let merge = || SgError::unsupported(NEEDS_MERGE);
    match plan(&inner, &inner_text, &Values::NONE, map)? {
        Plan::Route { node, why } => Ok(Plan::Route {
            node,
            why: format!("COPY (query) on one node: {why}"),
        }),
        // now() and its kin would read each node's own clock.
        Plan::Scatter { .. } if stmt.stable_time => Err(merge()),
        Plan::Scatter {
            nodes,
            combine: Combine::Concat,
            ..
        } => Ok(Plan::Copy(Box::new(CopyPlan {
            table: String::new(),
            sql: text.to_string(),
            nodes,
            options: opts,
            dir: Dir::Out,
            columns: Vec::new(),
        }))),
        _ => Err(merge()),
    }
}
