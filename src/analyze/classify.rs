//! Statement → Stmt: its kind, its accesses, and what would stop it from running across nodes.
//! Statements the parser cannot read are classified by their leading keywords.

use sqlparser::ast::{
    AssignmentTarget, Expr, FromTable, ObjectType, Query, SetExpr, Statement, TableObject,
    UpdateTableFromKind, Visit,
};

use super::pins::{value_src, Pin};
use super::scope::{collect, ident_name, table_name, Collector};
use super::{Access, InsertSpec, Kind, Stmt};
use crate::error::SgError;
use crate::shardmap::ShardMap;

/// What a SET/RESET/DISCARD does to session state shardgate must replay on pooled backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetAction {
    /// A session-level setting, by case-folded name; the statement text replays it.
    Session(String),
    Reset(String),
    ResetAll,
    /// SET LOCAL, SET TRANSACTION, SET CONSTRAINTS: lives and dies with the transaction.
    Local,
}

const AGGREGATES: [&str; 24] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bit_and",
    "bit_or",
    "percentile_cont",
    "mode",
];

pub fn is_aggregate_name(name: &str) -> bool {
    AGGREGATES.contains(&name)
        || matches!(
            name,
            "percentile_disc"
                | "corr"
                | "covar_pop"
                | "covar_samp"
                | "xmlagg"
                | "bit_xor"
                | "regr_count"
        )
}

/// Calls `f` on each function call of the main SELECT's own expressions (select list, HAVING,
/// QUALIFY, ORDER BY), not on those of its subqueries: an aggregate in a subquery does not make
/// the main query an aggregate.
fn top_level_functions(q: &Query, f: &mut dyn FnMut(&sqlparser::ast::Function)) {
    struct Calls<'f> {
        depth: usize,
        f: &'f mut dyn FnMut(&sqlparser::ast::Function),
    }
    impl sqlparser::ast::Visitor for Calls<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            self.depth += 1;
            std::ops::ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> std::ops::ControlFlow<()> {
            self.depth -= 1;
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            if let (0, Expr::Function(call)) = (self.depth, e) {
                (self.f)(call);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut calls = Calls { depth: 0, f };
    if let SetExpr::Select(sel) = q.body.as_ref() {
        let _ = sel.projection.visit(&mut calls);
        let _ = sel.having.visit(&mut calls);
        let _ = sel.qualify.visit(&mut calls);
    }
    let _ = q.order_by.visit(&mut calls);
}

/// What the top-level query does that a plain concatenation of node results would get wrong.
fn merge_reasons(q: &Query, s: &mut Stmt) {
    let mut aggregates = false;
    let mut windows = false;
    let keys = s.top_keys.clone();
    // A window partitioned by a distribution key sees only rows of one node: it runs there.
    let keyed = |e: &Expr| {
        let name = match e {
            Expr::Identifier(id) => ident_name(id),
            Expr::CompoundIdentifier(p) => p.iter().map(ident_name).collect::<Vec<_>>().join("."),
            _ => return false,
        };
        keys.contains(&name)
    };
    top_level_functions(q, &mut |f| {
        let name = super::scope::function_name(f);
        match &f.over {
            Some(sqlparser::ast::WindowType::WindowSpec(w)) if w.partition_by.iter().any(keyed) => {
                s.keyed_windows = true;
            }
            Some(_) => windows = true,
            None if is_aggregate_name(&name) => aggregates = true,
            None => {}
        }
    });
    match q.body.as_ref() {
        SetExpr::Select(sel) => {
            if windows {
                s.no_scatter = Some(
                    "window functions not partitioned by the distribution key over rows of several nodes"
                        .into(),
                );
            }
            let grouped = !matches!(&sel.group_by, sqlparser::ast::GroupByExpr::Expressions(v, _) if v.is_empty());
            if sel.distinct.is_some() {
                s.needs_merge = Some("DISTINCT".into());
            } else if grouped || sel.having.is_some() {
                s.needs_merge = Some("GROUP BY".into());
            } else if aggregates {
                s.needs_merge = Some("aggregate functions".into());
            }
        }
        SetExpr::Values(_) => {}
        _ => s.no_scatter = Some("UNION, INTERSECT or EXCEPT over rows of several nodes".into()),
    }
    if s.needs_merge.is_none() {
        if q.order_by.is_some() {
            s.needs_merge = Some("ORDER BY".into());
        } else if q.limit_clause.is_some() || q.fetch.is_some() {
            s.needs_merge = Some("LIMIT or OFFSET".into());
        }
    }
}

fn apply_found(s: &mut Stmt, mut f: super::scope::Found, map: &ShardMap) {
    if !f.resolve_derived() {
        s.no_scatter.get_or_insert_with(|| {
            "a subquery in FROM whose tables shardgate could not follow, across nodes".into()
        });
    }
    if f.opaque_from {
        s.no_scatter.get_or_insert_with(|| {
            "a subquery or CTE in FROM that needs rows of several nodes at once (LIMIT, or an aggregate, DISTINCT or window not by the distribution key), across nodes".into()
        });
    }
    if f.outer_join_risk {
        s.no_scatter.get_or_insert_with(|| {
            "an outer join that keeps rows of a reference table, across nodes".into()
        });
    }
    // Reference tables read the same on every node; a distributed table in a subquery sees
    // only its node's rows.
    let distributed = |a: &Access| map.get(&a.table).is_some_and(|t| !t.is_reference());
    if f.accesses.iter().any(|a| !a.top && distributed(a)) {
        s.no_scatter.get_or_insert_with(|| {
            "a distributed table inside a subquery or CTE, across nodes".into()
        });
    }
    s.touches_local |= f.touches_local;
    s.top_keys = f.top_keys;
    s.key_joins = f.key_joins;
    s.accesses = f.accesses;
}

/// A data-modifying statement in WITH that writes a table of the shard map: the analysis here
/// follows SELECTs only, so it cannot route such a write.
fn modifying_cte(q: &Query, map: &ShardMap) -> Option<String> {
    let w = q.with.as_ref()?;
    w.cte_tables.iter().find_map(|cte| {
        if !matches!(
            cte.query.body.as_ref(),
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
        ) {
            return None;
        }
        let mut hit = None;
        let _ = sqlparser::ast::visit_relations(&cte.query, |name| {
            let t = table_name(name);
            if map.get(&t).is_some() {
                hit = Some(t);
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        });
        hit.map(|t| format!("INSERT, UPDATE or DELETE of table \"{t}\" inside WITH"))
    })
}

pub fn statement(ast: &Statement, text: &str, map: &ShardMap) -> Stmt {
    match ast {
        Statement::Query(q) => {
            let mut s = Stmt::new(
                Kind::Select {
                    locking: !q.locks.is_empty(),
                },
                text,
            );
            let top = match q.body.as_ref() {
                SetExpr::Select(sel) => Some(sel.as_ref()),
                _ => None,
            };
            let mut found = collect(q.as_ref(), map, top);
            if let Some(top) = top {
                super::subquery::link(top, &mut found, map);
            }
            apply_found(&mut s, found, map);
            merge_reasons(q, &mut s);
            if let Some(why) = modifying_cte(q, map) {
                s.refuse = Some(SgError::unsupported(why));
            }
            s
        }
        Statement::Insert(ins) => insert(ins, text, map),
        Statement::Update(u) => {
            let mut s = Stmt::new(Kind::Update, text);
            let mut c = Collector::new(map, None);
            let mut from = vec![u.table.clone()];
            if let Some(UpdateTableFromKind::AfterSet(t) | UpdateTableFromKind::BeforeSet(t)) =
                &u.from
            {
                from.extend(t.iter().cloned());
            }
            c.scope(&from, u.selection.as_ref(), true);
            // Subqueries in FROM get their own scopes.
            let _ = from.visit(&mut c);
            let target = match &u.table.relation {
                sqlparser::ast::TableFactor::Table { name, .. } => table_name(name),
                _ => String::new(),
            };
            if let Some(dist) = map.get(&target).filter(|d| !d.is_reference()) {
                let sets_key = u.assignments.iter().any(|a| match &a.target {
                    AssignmentTarget::ColumnName(n) => table_name(n) == dist.column,
                    AssignmentTarget::Tuple(ns) => ns.iter().any(|n| table_name(n) == dist.column),
                });
                if sets_key {
                    s.refuse = Some(SgError::unsupported(format!(
                        "UPDATE of the distribution column \"{}\" of table \"{}\" (it would move rows between shards)",
                        dist.column, dist.name
                    )));
                }
            }
            for a in &u.assignments {
                let _ = a.value.visit(&mut c);
            }
            let _ = u.selection.visit(&mut c);
            apply_found(&mut s, c.found, map);
            s
        }
        Statement::Delete(d) => {
            let mut s = Stmt::new(Kind::Delete, text);
            let mut c = Collector::new(map, None);
            let mut from = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t.clone(),
            };
            if let Some(using) = &d.using {
                from.extend(using.iter().cloned());
            }
            c.scope(&from, d.selection.as_ref(), true);
            let _ = from.visit(&mut c);
            let _ = d.selection.visit(&mut c);
            apply_found(&mut s, c.found, map);
            s
        }
        Statement::CreateTable(ct) => {
            let mut s = Stmt::new(Kind::CreateTable, text);
            s.ddl_tables.push(table_name(&ct.name));
            s
        }
        Statement::CreateIndex(ci) => {
            let mut s = Stmt::new(Kind::CreateIndex, text);
            s.ddl_tables.push(table_name(&ci.table_name));
            s
        }
        Statement::AlterTable(at) => {
            let mut s = Stmt::new(Kind::AlterTable, text);
            s.ddl_tables.push(table_name(&at.name));
            s
        }
        Statement::Truncate(t) => {
            let mut s = Stmt::new(Kind::Truncate, text);
            s.ddl_tables = t.table_names.iter().map(|n| table_name(&n.name)).collect();
            s
        }
        Statement::Drop {
            object_type, names, ..
        } => match object_type {
            ObjectType::Table => {
                let mut s = Stmt::new(Kind::Drop, text);
                s.ddl_tables = names.iter().map(table_name).collect();
                s
            }
            ObjectType::Index | ObjectType::Schema | ObjectType::Type => {
                Stmt::new(Kind::OtherDdl { all_nodes: true }, text)
            }
            _ => Stmt::new(Kind::OtherDdl { all_nodes: false }, text),
        },
        Statement::CreateSchema { .. }
        | Statement::CreateExtension(_)
        | Statement::CreateType { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateDomain(_) => Stmt::new(Kind::OtherDdl { all_nodes: true }, text),
        Statement::StartTransaction { .. } => Stmt::new(Kind::Begin, text),
        Statement::Commit { .. } => Stmt::new(Kind::Commit, text),
        Statement::Rollback {
            savepoint: None, ..
        } => Stmt::new(Kind::Rollback, text),
        Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => Stmt::new(Kind::TxnOther, text),
        Statement::Set(_) => Stmt::new(Kind::Set(set_action(text)), text),
        Statement::ShowVariable { .. } | Statement::ShowVariables { .. } => {
            Stmt::new(Kind::Show, text)
        }
        Statement::Discard { .. } => Stmt::new(Kind::Set(SetAction::ResetAll), text),
        Statement::Explain {
            statement, analyze, ..
        } => {
            let inner = self::statement(statement, &statement.to_string(), map);
            let mut s = Stmt::new(Kind::Explain { analyze: *analyze }, text);
            s.accesses = inner.accesses.clone();
            s.explained = Some(Box::new(inner));
            s
        }
        Statement::Copy { .. } => {
            let mut s = Stmt::new(Kind::Copy, text);
            let _ = sqlparser::ast::visit_relations(ast, |r| {
                s.ddl_tables.push(table_name(r));
                std::ops::ControlFlow::<()>::Continue(())
            });
            if s.ddl_tables.iter().any(|t| map.get(t).is_some()) {
                s.refuse = Some(SgError::unsupported(
                    "COPY of a distributed or reference table (use INSERT)",
                ));
            }
            s
        }
        Statement::LISTEN { .. } | Statement::UNLISTEN { .. } => {
            let mut s = Stmt::new(Kind::Other, text);
            s.refuse = Some(SgError::unsupported(
                "LISTEN (sessions share pooled worker connections)",
            ));
            s
        }
        Statement::Prepare { .. } | Statement::Execute { .. } | Statement::Deallocate { .. } => {
            let mut s = Stmt::new(Kind::Other, text);
            s.refuse = Some(SgError::unsupported(
                "SQL-level PREPARE/EXECUTE/DEALLOCATE (use the extended query protocol)",
            ));
            s
        }
        _ if matches!(
            text.split_whitespace()
                .next()
                .map(|w| w.to_ascii_lowercase())
                .as_deref(),
            Some("reset" | "discard")
        ) =>
        {
            Stmt::new(Kind::Set(set_action(text)), text)
        }
        _ if matches!(
            text.split_whitespace()
                .next()
                .map(|w| w.to_ascii_lowercase())
                .as_deref(),
            Some("vacuum" | "analyze" | "analyse" | "reindex" | "cluster" | "checkpoint")
        ) =>
        {
            Stmt::new(Kind::Maintenance, text)
        }
        _ => {
            let mut s = Stmt::new(Kind::Other, text);
            let _ = sqlparser::ast::visit_relations(ast, |r| {
                if map.get(&table_name(r)).is_some() {
                    s.ddl_tables.push(table_name(r));
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            if !s.ddl_tables.is_empty() {
                s.refuse = Some(SgError::unsupported(format!(
                    "this statement on distributed table \"{}\"",
                    s.ddl_tables[0]
                )));
            }
            s
        }
    }
}

fn insert(ins: &sqlparser::ast::Insert, text: &str, map: &ShardMap) -> Stmt {
    let mut s = Stmt::new(Kind::Insert, text);
    let TableObject::TableName(name) = &ins.table else {
        s.refuse = Some(SgError::unsupported("INSERT into a table function"));
        return s;
    };
    let table = table_name(name);
    let f = match &ins.source {
        Some(q) => collect(q.as_ref(), map, None),
        None => Default::default(),
    };
    let source_touches_tables = !f.accesses.is_empty() || f.touches_local;
    apply_found(&mut s, f, map);
    s.no_scatter = None;
    match map.get(&table) {
        None => s.touches_local = true,
        Some(dist) if dist.is_reference() => {
            let from_query = !matches!(
                ins.source.as_ref().map(|q| q.body.as_ref()),
                Some(SetExpr::Values(_))
            ) || source_touches_tables;
            if from_query {
                // Evaluated once and copied to every node, so volatile expressions agree.
                s.insert_select = insert_select(ins, &table, None);
                if s.insert_select.is_none() {
                    s.refuse = Some(SgError::unsupported(
                        "INSERT ... SELECT with RETURNING or ON CONFLICT into a reference table",
                    ));
                }
            }
            s.accesses.push(Access {
                alias: table.clone(),
                table,
                pin: Pin::All,
                top: true,
            });
        }
        Some(dist) => {
            let columns: Vec<String> = ins.columns.iter().map(table_name).collect();
            let key_index = if columns.is_empty() {
                None
            } else {
                match columns.iter().position(|c| *c == dist.column) {
                    Some(i) => Some(i),
                    None => {
                        s.refuse = Some(SgError::unsupported(format!(
                            "INSERT into \"{table}\" without a value for its distribution column \"{}\"",
                            dist.column
                        )));
                        return s;
                    }
                }
            };
            let rows = match ins.source.as_ref().map(|q| q.body.as_ref()) {
                Some(SetExpr::Values(v)) if !source_touches_tables => v
                    .rows
                    .iter()
                    .map(|row| row.iter().map(value_src).collect())
                    .collect(),
                _ => {
                    s.insert_select = insert_select(ins, &table, key_index);
                    if s.insert_select.is_none() {
                        s.refuse = Some(SgError::unsupported(format!(
                            "INSERT ... SELECT with RETURNING or ON CONFLICT into distributed table \"{table}\""
                        )));
                    }
                    return s;
                }
            };
            s.insert = Some(InsertSpec {
                table: table.clone(),
                key_index,
                rows,
            });
            s.accesses.push(Access {
                alias: table.clone(),
                table,
                pin: Pin::All,
                top: true,
            });
        }
    }
    s
}

/// INSERT ... SELECT into a distributed or reference table: the SELECT runs once, its rows are
/// routed by key and copied into each node. RETURNING and ON CONFLICT need row-by-row INSERTs.
fn insert_select(
    ins: &sqlparser::ast::Insert,
    table: &str,
    key_index: Option<usize>,
) -> Option<super::InsertSelectSpec> {
    if ins.returning.is_some() || ins.on.is_some() {
        return None;
    }
    let source = ins.source.as_ref()?;
    Some(super::InsertSelectSpec {
        table: table.to_string(),
        columns: ins.columns.iter().map(table_name).collect(),
        key_index,
        source: source.to_string(),
    })
}

/// Reads the setting a SET/RESET names (PostgreSQL's gram.y VariableSetStmt forms).
pub fn set_action(text: &str) -> SetAction {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_end_matches(';').to_string())
        .collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let get = |i: usize| lower.get(i).map(String::as_str).unwrap_or("");
    match get(0) {
        "reset" => match get(1) {
            "all" => SetAction::ResetAll,
            "time" => SetAction::Reset("timezone".into()),
            "session" if get(2) == "authorization" => {
                SetAction::Reset("session_authorization".into())
            }
            name => SetAction::Reset(name.trim_matches('"').to_string()),
        },
        "discard" => SetAction::ResetAll,
        _ => {
            let mut i = 1;
            if get(i) == "local" {
                return SetAction::Local;
            }
            if get(i) == "session" {
                i += 1;
                if get(i) == "characteristics" {
                    return SetAction::Local;
                }
            }
            match get(i) {
                "transaction" | "constraints" => SetAction::Local,
                "time" => SetAction::Session("timezone".into()),
                "names" => SetAction::Session("client_encoding".into()),
                "authorization" => SetAction::Session("session_authorization".into()),
                name => SetAction::Session(name.trim_matches('"').to_string()),
            }
        }
    }
}

/// Statements the parser could not read: classified by leading keywords. A statement that
/// names a distributed table is refused (the parser's complaint is most likely a real syntax
/// error); anything else goes to the default node, which reports PostgreSQL's own errors.
pub fn fallback(text: &str, map: &ShardMap, parse_error: &str) -> Stmt {
    let lower = text.trim_start().to_lowercase();
    let first = lower.split_whitespace().next().unwrap_or("");
    let second = lower.split_whitespace().nth(1).unwrap_or("");
    let mentions_distributed = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| map.get(w).is_some());
    let kind = match first {
        "vacuum" | "analyze" | "analyse" | "reindex" | "cluster" | "checkpoint" => {
            Kind::Maintenance
        }
        "set" | "reset" | "discard" => Kind::Set(set_action(text)),
        "show" => Kind::Show,
        "begin" | "start" => Kind::Begin,
        "commit" | "end" if second != "prepared" => Kind::Commit,
        "rollback" | "abort" if second != "prepared" => Kind::Rollback,
        "savepoint" | "release" => Kind::TxnOther,
        _ => Kind::Other,
    };
    let mut s = Stmt::new(kind.clone(), text);
    s.unparsed = Some(parse_error.to_string());
    if (first == "prepare" && second == "transaction")
        || ((first == "commit" || first == "rollback") && second == "prepared")
    {
        s.refuse = Some(SgError::unsupported("two-phase commit statements"));
    } else if kind == Kind::Other && mentions_distributed {
        s.refuse = Some(SgError::syntax(format!("syntax error: {parse_error}")));
    }
    s
}
