//! Statement → Stmt: its kind, its accesses, and what would stop it from running across nodes.
//! Statements the parser cannot read are classified by their leading keywords.

use sqlparser::ast::{
    AssignmentTarget, FromTable, ObjectType, Query, SetExpr, Statement, UpdateTableFromKind, Visit,
};

use super::scope::{collect, table_name, Collector};
use super::{Access, Kind, Stmt};
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

pub(super) fn apply_found(s: &mut Stmt, mut f: super::scope::Found, map: &ShardMap) {
    if !f.resolve_derived() {
        s.no_scatter.get_or_insert_with(|| {
            "a subquery in FROM whose tables shardgate could not follow, across nodes".into()
        });
    }
    if let Some(t) = &f.only {
        s.refuse = Some(SgError::unsupported(format!(
            "ONLY on sharded table \"{t}\" (its rows live in the workers' partitions)"
        )));
    }
    if f.opaque_from {
        s.no_scatter.get_or_insert_with(|| {
            "a subquery or CTE in FROM that needs rows of several nodes at once (LIMIT, or an aggregate, DISTINCT or window not by the distribution key), across nodes".into()
        });
    }
    if f.outer_join_risk {
        s.no_scatter.get_or_insert_with(|| {
            "an outer join that keeps rows present on every node (a reference table, a function such as generate_series, VALUES), across nodes".into()
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
            super::aggregates::merge_reasons(q, &mut s);
            if let Some(why) = modifying_cte(q, map) {
                s.refuse = Some(SgError::unsupported(why));
            }
            s
        }
        Statement::Insert(ins) => super::insert::insert(ins, text, map),
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
                let plain = u.from.is_none()
                    && u.returning.is_none()
                    && u.assignments
                        .iter()
                        .all(|a| matches!(a.target, AssignmentTarget::ColumnName(_)));
                if sets_key && plain {
                    s.moves_key = true;
                } else if sets_key {
                    s.refuse = Some(SgError::unsupported(format!(
                        "UPDATE of the distribution column \"{}\" of table \"{}\" with FROM, RETURNING or a column tuple",
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
        Statement::CreateFunction(_) => {
            let mut s = Stmt::new(Kind::OtherDdl { all_nodes: true }, text);
            s.warning = function_over_distributed(text, map);
            s
        }
        Statement::CreateSchema { .. }
        | Statement::CreateExtension(_)
        | Statement::CreateType { .. }
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
        Statement::Explain { statement, .. } => {
            let inner = self::statement(statement, &statement.to_string(), map);
            // EXPLAIN (ANALYZE) runs the statement as EXPLAIN ANALYZE does; a FORMAT
            // shardgate cannot print is refused when planned (`plan::route`).
            let analyze = super::explain::options(ast)
                .ok()
                .flatten()
                .is_some_and(|o| o.analyze);
            let mut s = Stmt::new(Kind::Explain { analyze }, text);
            s.accesses = inner.accesses.clone();
            s.explained = Some(Box::new(inner));
            s
        }
        Statement::Copy { .. } => super::copy::copy(ast, text, map),
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
                "SQL-level PREPARE/EXECUTE/DEALLOCATE in the extended query protocol (send them as simple Queries)",
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
            maintenance(text)
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
/// VACUUM, ANALYZE and friends, with the tables VACUUM and ANALYZE name (gram.y
/// vacuum_relation_list: each a name with an optional column list, after optional options).
fn maintenance(text: &str) -> Stmt {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let mut s = Stmt::new(Kind::Maintenance, text);
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, text).tokenize() else {
        return s;
    };
    let mut words = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_)));
    let verb = match words.next() {
        Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
        _ => return s,
    };
    if !matches!(verb.as_str(), "vacuum" | "analyze" | "analyse") {
        return s;
    }
    const OPTIONS: &[&str] = &[
        "full",
        "freeze",
        "verbose",
        "analyze",
        "analyse",
        "skip_locked",
    ];
    let (mut depth, mut expect_name, mut last) = (0, true, None::<String>);
    for t in words {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 => {
                let v = match w.quote_style {
                    Some(_) => w.value.clone(),
                    None => w.value.to_lowercase(),
                };
                if expect_name && w.quote_style.is_none() && OPTIONS.contains(&v.as_str()) {
                    continue;
                }
                expect_name = false;
                last = Some(v);
            }
            Token::Period if depth == 0 => last = None,
            Token::Comma if depth == 0 => {
                s.ddl_tables.extend(last.take());
                expect_name = true;
            }
            _ => {}
        }
    }
    s.ddl_tables.extend(last);
    s
}

/// The first distributed table a text names (any word, string bodies included).
fn names_distributed(text: &str, map: &ShardMap) -> Option<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .find(|w| map.get(w).is_some_and(|t| !t.is_reference()))
        .map(str::to_string)
}

/// A function is created on every node, where its body runs inside PostgreSQL and sees that
/// node's rows only: said when it is created, as Citus warns about functions it cannot
/// delegate.
fn function_over_distributed(text: &str, map: &ShardMap) -> Option<String> {
    if let Some(t) = names_distributed(text, map) {
        return Some(format!(
            "function body names distributed table \"{t}\": called through a statement, it runs on a node and sees only that node's rows of \"{t}\""
        ));
    }
    // SQL built at run time (tutorial 002's `EXECUTE format('CREATE TABLE %I PARTITION OF
    // %I ...')`) names no table shardgate can see; DDL it runs reaches one node only.
    let lower = text.to_lowercase();
    let dynamic = lower.contains("execute") && (lower.contains("format(") || lower.contains("||"));
    let ddl = [
        "partition of",
        "create table",
        "drop table",
        "alter table",
        "create index",
    ]
    .iter()
    .any(|w| lower.contains(w));
    (dynamic && ddl && map.tables().iter().any(|t| !t.is_reference())).then(|| {
        "function body runs SQL built at run time: called through a statement, it runs inside PostgreSQL on one node, so DDL it runs on distributed tables (such as CREATE TABLE ... PARTITION OF) reaches that node only (use shardgate.create_time_partitions / drop_time_partitions, or run the DDL through shardgate)".to_string()
    })
}

pub fn fallback(text: &str, map: &ShardMap, parse_error: &str) -> Stmt {
    if let Some(cmd) = super::attach::parse(text) {
        let (super::attach::PartitionCmd::Attach {
            parent, partition, ..
        }
        | super::attach::PartitionCmd::Detach {
            parent, partition, ..
        }) = &cmd;
        let mut s = Stmt::new(Kind::AlterTable, text);
        s.ddl_tables = vec![table_name(parent), table_name(partition)];
        return s;
    }
    let lower = text.trim_start().to_lowercase();
    let first = lower.split_whitespace().next().unwrap_or("");
    let second = lower.split_whitespace().nth(1).unwrap_or("");
    let mentions_distributed = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| map.get(w).is_some());
    if matches!(
        first,
        "vacuum" | "analyze" | "analyse" | "reindex" | "cluster" | "checkpoint"
    ) {
        return maintenance(text);
    }
    let kind = match first {
        "set" | "reset" | "discard" => Kind::Set(set_action(text)),
        "show" => Kind::Show,
        "begin" | "start" => Kind::Begin,
        "commit" | "end" if second != "prepared" => Kind::Commit,
        "rollback" | "abort" if second != "prepared" => Kind::Rollback,
        "savepoint" | "release" => Kind::TxnOther,
        // Objects distributed tables' queries may use (sqlparser reads some of these, not
        // CREATE AGGREGATE or CREATE OPERATOR): on every node, as other such DDL.
        "create" | "drop" | "alter" | "comment"
            if lower.split_whitespace().skip(1).take(4).any(|w| {
                matches!(
                    w,
                    "aggregate"
                        | "function"
                        | "procedure"
                        | "operator"
                        | "cast"
                        | "collation"
                        | "type"
                        | "domain"
                )
            }) =>
        {
            Kind::OtherDdl { all_nodes: true }
        }
        _ => Kind::Other,
    };
    let mut s = Stmt::new(kind.clone(), text);
    s.unparsed = Some(parse_error.to_string());
    if matches!(kind, Kind::OtherDdl { .. })
        && first == "create"
        && lower
            .split_whitespace()
            .take(5)
            .any(|w| w == "function" || w == "procedure")
    {
        s.warning = function_over_distributed(text, map);
    }
    if (first == "prepare" && second == "transaction")
        || ((first == "commit" || first == "rollback") && second == "prepared")
    {
        s.refuse = Some(SgError::unsupported("two-phase commit statements"));
    } else if kind == Kind::Other && mentions_distributed {
        // Shown to PostgreSQL before the client sees it (`Session::refuse`): its syntax error
        // if it has one, else this.
        s.refuse = Some(SgError::new(
            crate::error::code::FEATURE_NOT_SUPPORTED,
            format!(
                "shardgate cannot analyse this statement, which names a distributed table: {parse_error}"
            ),
        ));
    }
    s
}
