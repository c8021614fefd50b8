//! What a statement's function calls and system columns mean across nodes: values unique
//! per node only (ctid, nextval), per-node clocks (now()), aggregates shardgate cannot merge
//! and names the workers' catalog must be asked about, collations its merges cannot honour,
//! and `set_config` calls that change the session's settings.

use sqlparser::ast::{SetExpr, Statement};

use super::scope::ident_name;
use super::Stmt;
use crate::error::SgError;
use crate::shardmap::ShardMap;

/// Functions whose value is one instant per transaction or statement (now(), current_date,
/// ...): several nodes would each give their own (see plan::clock).
pub fn is_stable_time(name: &str) -> bool {
    matches!(
        name,
        "now"
            | "current_timestamp"
            | "transaction_timestamp"
            | "statement_timestamp"
            | "current_date"
            | "current_time"
            | "localtime"
            | "localtimestamp"
    )
}

/// `tableoid` of a sharded table names the worker's partition, not the table: refused rather
/// than answered with OIDs that differ from one PostgreSQL's. Values that are unique only within
/// one PostgreSQL (a row's `ctid`, `xmin`, ...; `nextval` of a sequence every node has its own
/// copy of) cannot be combined across nodes: such statements may run on one node only
/// (`no_scatter`).
pub fn system_column(ast: &Statement, s: &mut Stmt, map: &ShardMap) -> Option<SgError> {
    let sharded = s
        .accesses
        .iter()
        .any(|a| map.get(&a.table).is_some_and(|t| !t.is_reference()));
    if !sharded {
        return None;
    }
    let mut tableoid = false;
    let mut stable_time = false;
    let mut per_node: Option<String> = None;
    let _ = sqlparser::ast::visit_expressions(ast, |e: &sqlparser::ast::Expr| {
        let name = match e {
            sqlparser::ast::Expr::Identifier(id) => Some(ident_name(id)),
            sqlparser::ast::Expr::CompoundIdentifier(p) => p.last().map(ident_name),
            sqlparser::ast::Expr::Function(f) => {
                let n = super::scope::function_name(f);
                stable_time |= is_stable_time(&n);
                if matches!(n.as_str(), "nextval" | "setval" | "currval" | "lastval") {
                    per_node.get_or_insert_with(|| {
                        format!("{n}() in a statement over rows of several nodes (each node has its own sequence)")
                    });
                }
                None
            }
            _ => None,
        };
        match name.as_deref() {
            Some("tableoid") => tableoid = true,
            Some(c @ ("ctid" | "xmin" | "xmax" | "cmin" | "cmax")) => {
                per_node.get_or_insert_with(|| {
                    format!("the system column {c} over rows of several nodes (it is unique per node only)")
                });
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if let Some(why) = per_node {
        s.no_scatter.get_or_insert(why);
    }
    s.stable_time = stable_time;
    tableoid.then(|| SgError::unsupported("the system column tableoid of a sharded table"))
}

/// Whether the statement names a collation other than C or POSIX outside WHERE clauses (a
/// WHERE compares on the node; the merge never sees it).
fn explicit_collation(ast: &Statement, text: &str) -> bool {
    struct NoWhere;
    impl sqlparser::ast::VisitorMut for NoWhere {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
            if let SetExpr::Select(sel) = q.body.as_mut() {
                sel.selection = None;
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    // Most statements name no collation: the text says so without a walk or a copy.
    if !text
        .as_bytes()
        .windows(7)
        .any(|w| w.eq_ignore_ascii_case(b"collate"))
    {
        return false;
    }
    let mut a = ast.clone();
    let _ = sqlparser::ast::VisitMut::visit(&mut a, &mut NoWhere);
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(&a, |e: &sqlparser::ast::Expr| {
        if let sqlparser::ast::Expr::Collate { collation, .. } = e {
            let name = collation
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.clone())
                .unwrap_or_default();
            found |= !matches!(name.as_str(), "C" | "POSIX" | "c" | "posix" | "default");
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// Function calls the workers' catalog makes a difference to: an aggregate shardgate has no
/// merge for may run on one node only (`no_scatter`); a name the catalog did not have when last
/// loaded is noted so the session can reload it (`unknown_function`).
pub fn calls(
    ast: &Statement,
    s: &mut Stmt,
    map: &ShardMap,
    funcs: &crate::catalog::functions::Functions,
) {
    s.collated = s
        .accesses
        .iter()
        .any(|a| funcs.collated_tables.contains(&a.table))
        || explicit_collation(ast, &s.text);
    if !funcs.loaded
        || !s
            .accesses
            .iter()
            .any(|a| map.get(&a.table).is_some_and(|t| !t.is_reference()))
    {
        return;
    }
    let mut foreign = None;
    let mut unknown = false;
    let _ = sqlparser::ast::visit_expressions(ast, |e: &sqlparser::ast::Expr| {
        if let sqlparser::ast::Expr::Function(f) = e {
            let n = super::scope::function_name(f);
            if funcs.is_foreign_aggregate(&n) {
                foreign.get_or_insert(n);
            } else if funcs.is_unknown(&n) {
                unknown = true;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if let Some(n) = foreign {
        s.no_scatter.get_or_insert_with(|| {
            format!("the aggregate {n} over rows of several nodes (shardgate has no merge for it)")
        });
    }
    s.unknown_function = unknown;
}

/// `SELECT set_config('name', 'value', is_local)` with constant arguments and nothing else:
/// the setting, its value and whether it is local. The session records it as it records a SET
/// (PostgreSQL's set_config is SET's function form, guc_funcs.c).
pub fn set_config_call(ast: &Statement, shape_only: bool) -> Option<(String, String, bool)> {
    use sqlparser::ast::{
        Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, Value,
    };
    let Statement::Query(q) = ast else {
        return None;
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    if !sel.from.is_empty() || sel.selection.is_some() || sel.projection.len() != 1 {
        return None;
    }
    let (SelectItem::UnnamedExpr(Expr::Function(f))
    | SelectItem::ExprWithAlias {
        expr: Expr::Function(f),
        ..
    }) = &sel.projection[0]
    else {
        return None;
    };
    if super::scope::function_name(f) != "set_config" {
        return None;
    }
    let FunctionArguments::List(l) = &f.args else {
        return None;
    };
    let lit = |a: &FunctionArg| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => Some(v.value.clone()),
        _ => None,
    };
    if shape_only {
        // Analysed from the shape text, the constants are placeholders: the session reads
        // them from the statement's own text when it runs.
        return (l.args.len() == 3 && l.args.iter().all(|a| lit(a).is_some()))
            .then(|| (String::new(), String::new(), false));
    }
    let args: Vec<Value> = l.args.iter().map(lit).collect::<Option<Vec<_>>>()?;
    let text = |v: &Value| match v {
        Value::SingleQuotedString(s) => Some(s.replace("''", "'")),
        _ => None,
    };
    match args.as_slice() {
        [n, v, Value::Boolean(local)] => {
            let name = text(n)?.to_lowercase();
            crate::quote::is_setting_name(&name).then_some((name, text(v)?, *local))
        }
        _ => None,
    }
}

/// Built-in functions whose every call may give another value (pg_proc.provolatile = 'v')
/// that a write is likely to call.
const VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setval",
    "setseed",
    "txid_current",
    "pg_current_xact_id",
];

/// A write to a reference table runs on every node: a volatile function in it would give
/// each copy its own value, and the copies would differ. Refused (0A000).
pub fn volatile_reference_write(ast: &Statement, map: &ShardMap) -> Option<SgError> {
    use sqlparser::ast::{FromTable, TableFactor, TableObject};
    let target = match ast {
        Statement::Insert(i) => match &i.table {
            TableObject::TableName(n) => Some(super::scope::table_name(n)),
            _ => None,
        },
        Statement::Update(u) => match &u.table.relation {
            TableFactor::Table { name, .. } => Some(super::scope::table_name(name)),
            _ => None,
        },
        Statement::Delete(d) => {
            let tables = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            match tables.first().map(|t| &t.relation) {
                Some(TableFactor::Table { name, .. }) => Some(super::scope::table_name(name)),
                _ => None,
            }
        }
        _ => None,
    }?;
    let table = target;
    if !map.get(&table).is_some_and(|t| t.is_reference()) {
        return None;
    }
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(ast, |e: &sqlparser::ast::Expr| {
        if let sqlparser::ast::Expr::Function(f) = e {
            let n = super::scope::function_name(f);
            if VOLATILE.contains(&n.as_str()) {
                found.get_or_insert(n);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found.map(|n| {
        SgError::unsupported(format!(
            "{n}() in a write to reference table \"{table}\" (each node would compute its own value and the copies would differ)"
        ))
    })
}
