//! Foreign keys that touch distributed tables. Each node checks a foreign key against its own
//! rows only, so one holds across the cluster only where every referencing row's referenced row
//! lives on the same node: between co-located tables on their distribution columns, and from
//! any table to a reference table (every node has all of it). Citus allows the same set. Any
//! other one would reject valid rows or, worse, let a node miss a violation; it is refused at
//! CREATE/ALTER with 0A000.

use sqlparser::ast::{
    AlterTableOperation, ColumnOption, ForeignKeyConstraint, ObjectName, Statement, TableConstraint,
};

use super::scope::{ident_name, table_name};
use crate::error::SgError;
use crate::shardmap::{ShardMap, TableDist};

/// One foreign key: the referencing columns and the referenced table and columns (empty: its
/// primary key).
struct Fk {
    columns: Vec<String>,
    table: String,
    referred: Vec<String>,
}

fn fk(c: &ForeignKeyConstraint, column: Option<&str>) -> Fk {
    let mut columns: Vec<String> = c.columns.iter().map(ident_name).collect();
    if columns.is_empty() {
        columns.extend(column.map(str::to_string));
    }
    Fk {
        columns,
        table: table_name(&c.foreign_table),
        referred: c.referred_columns.iter().map(ident_name).collect(),
    }
}

fn foreign_keys(ast: &Statement) -> Option<(ObjectName, Vec<Fk>)> {
    let mut out = Vec::new();
    let name = match ast {
        Statement::CreateTable(ct) => {
            for c in &ct.constraints {
                if let TableConstraint::ForeignKey(f) = c {
                    out.push(fk(f, None));
                }
            }
            for col in &ct.columns {
                for o in &col.options {
                    if let ColumnOption::ForeignKey(f) = &o.option {
                        out.push(fk(f, Some(&ident_name(&col.name))));
                    }
                }
            }
            ct.name.clone()
        }
        Statement::AlterTable(at) => {
            for op in &at.operations {
                match op {
                    AlterTableOperation::AddConstraint {
                        constraint: TableConstraint::ForeignKey(f),
                        ..
                    } => out.push(fk(f, None)),
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        for o in &column_def.options {
                            if let ColumnOption::ForeignKey(f) = &o.option {
                                out.push(fk(f, Some(&ident_name(&column_def.name))));
                            }
                        }
                    }
                    _ => {}
                }
            }
            at.name.clone()
        }
        _ => return None,
    };
    Some((name, out))
}

/// Two tables whose rows with equal keys are on the same node: the same method, key type and
/// bounds, and the same node for each shard.
pub fn co_located(a: &TableDist, b: &TableDist) -> bool {
    !a.is_reference()
        && !b.is_reference()
        && a.key_type.is_some()
        && a.key_type == b.key_type
        && format!("{:?}", a.kind) == format!("{:?}", b.kind)
}

/// The table as the CREATE TABLE that creates it types its distribution column.
fn typed_by(ast: &Statement, t: &TableDist) -> TableDist {
    let Statement::CreateTable(ct) = ast else {
        return t.clone();
    };
    ct.columns
        .iter()
        .find(|c| ident_name(&c.name) == t.column)
        .and_then(|c| crate::shardmap::KeyType::from_sql_name(&c.data_type.to_string()))
        .and_then(|ty| t.with_key_type(ty).ok())
        .unwrap_or_else(|| t.clone())
}

/// The refusal for a foreign key of this CREATE TABLE or ALTER TABLE that would not hold
/// across nodes, if any.
pub fn refuse(ast: &Statement, map: &ShardMap) -> Option<SgError> {
    let (name, fks) = foreign_keys(ast)?;
    let table = table_name(&name);
    let own = map.get(&table).map(|t| typed_by(ast, &t));
    for f in fks {
        let target = map.get(&f.table);
        let why = match (&own, &target) {
            // Every node holds all of a reference table.
            (_, Some(t)) if t.is_reference() => continue,
            // Plain tables, on the default node.
            (None, None) => continue,
            (Some(o), None) => format!(
                "a foreign key from {} table \"{table}\" to \"{}\", which lives on the default node only",
                o.kind.method(),
                f.table
            ),
            (Some(o), Some(t)) if !o.is_reference() => {
                let on_keys = if f.referred.is_empty() {
                    // The referenced primary key must then be the key column alone.
                    f.columns == [o.column.clone()]
                } else {
                    f.columns
                        .iter()
                        .zip(&f.referred)
                        .any(|(c, r)| *c == o.column && *r == t.column)
                };
                if co_located(o, t) && on_keys {
                    continue;
                }
                format!(
                    "a foreign key from \"{table}\" to \"{}\" other than between co-located tables on their distribution columns (\"{}\" to \"{}\")",
                    f.table, o.column, t.column
                )
            }
            _ => format!(
                "a foreign key from \"{table}\" to distributed table \"{}\" (each node would check it against its own rows only)",
                f.table
            ),
        };
        return Some(SgError::unsupported(why));
    }
    None
}
