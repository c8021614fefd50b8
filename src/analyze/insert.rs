//! INSERT → Stmt: the target table, and either the rows of a VALUES list with their key
//! values (split by node at plan time) or an INSERT ... SELECT to run once and copy.

use sqlparser::ast::{SetExpr, TableObject};

use super::classify::apply_found;
use super::pins::{value_src, Pin};
use super::scope::{collect, table_name};
use super::{Access, InsertSpec, Kind, Stmt};
use crate::error::SgError;
use crate::shardmap::ShardMap;

pub fn insert(ins: &sqlparser::ast::Insert, text: &str, map: &ShardMap) -> Stmt {
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
    if map.get(&table).is_some() {
        s.insert_into = Some(insert_into(ins, &table));
    }
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
                key: dist.column.clone(),
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
                    // A partition's rows all go to its node, whatever their key.
                    None if matches!(dist.kind, crate::shardmap::TableKind::Partition { .. }) => {
                        None
                    }
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
            // A key written as an expression (`md5('x')::uuid`, `gen_random_uuid()`) is
            // computed by shardgate first, as a left-out key is (`plan::fill`).
            let key_pos = key_index.or_else(|| map.key_position(&table));
            if let (Some(ii), Some(k), Some(SetExpr::Values(v))) = (
                s.insert_into.as_mut(),
                key_pos,
                ins.source.as_ref().map(|q| q.body.as_ref()),
            ) {
                ii.key_computed = v.rows.iter().zip(&rows).any(|(row, srcs): (_, &Vec<_>)| {
                    matches!(srcs.get(k), Some(None))
                        && row
                            .content
                            .get(k)
                            .is_some_and(|e| !crate::plan::fill::is_default_keyword(e))
                });
            }
            s.insert = Some(InsertSpec {
                table: table.clone(),
                key_index,
                rows,
            });
            s.accesses.push(Access {
                alias: table.clone(),
                key: dist.column.clone(),
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

/// The columns an INSERT names and whether it leaves any to DEFAULT.
fn insert_into(ins: &sqlparser::ast::Insert, table: &str) -> super::InsertInto {
    let values = match ins.source.as_ref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(v)) => Some(v),
        _ => None,
    };
    super::InsertInto {
        table: table.to_string(),
        columns: ins.columns.iter().map(table_name).collect(),
        shortest_row: values.map(|v| v.rows.iter().map(|r| r.len()).min().unwrap_or(0)),
        has_default: values.is_some_and(|v| {
            v.rows
                .iter()
                .flat_map(|r| r.content.iter())
                .any(crate::plan::fill::is_default_keyword)
        }),
        key_computed: false,
    }
}
