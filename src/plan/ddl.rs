//! DDL for distributed tables: a CREATE TABLE becomes, on every node, a PostgreSQL partitioned
//! table on the distribution column with all of its partitions, the rows living only in the
//! partitions the node owns (others stay empty), so each node's catalog is the whole tree, as
//! psql's `\d+` reads it. Built by editing the parsed statement, never by splicing text.

use sqlparser::ast::{
    CreateTable, Expr, ForValues, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, PartitionBoundValue, Statement, Value,
};

use super::route::reparse;
use super::{Combine, Plan};
use crate::analyze::Stmt;
use crate::error::{SgError, SgResult};
use crate::shardmap::{
    Bound, HashFunc, KeyType, KeyValue, ShardId, ShardMap, TableDist, TableKind,
};

fn ident(name: &str) -> Ident {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        Ident::new(name)
    } else {
        Ident::with_quote('"', name)
    }
}

/// The partition's name, in the parent's schema.
fn shard_table_name(parent: &ObjectName, shard_name: &str) -> ObjectName {
    let mut parts = parent.0.clone();
    parts.pop();
    parts.push(ObjectNamePart::Identifier(ident(shard_name)));
    ObjectName(parts)
}

fn bound_expr(v: &KeyValue) -> Expr {
    match v {
        KeyValue::Int(i) => Expr::Value(Value::Number(i.to_string(), false).into()),
        // Literals print as written (parse_sql keeps them raw), so quotes are doubled here.
        other => Expr::Value(Value::SingleQuotedString(other.to_text().replace('\'', "''")).into()),
    }
}

fn range_bound(b: &Bound) -> PartitionBoundValue {
    match b {
        Bound::Min => PartitionBoundValue::MinValue,
        Bound::Max => PartitionBoundValue::MaxValue,
        Bound::Value(v) => PartitionBoundValue::Expr(bound_expr(v)),
    }
}

fn for_values(t: &TableDist, shard: ShardId) -> Option<ForValues> {
    Some(match &t.kind {
        TableKind::Hash { modulus, .. } => ForValues::With {
            modulus: *modulus,
            remainder: shard as u64,
        },
        TableKind::Range(r) => match r.ranges.get(shard as usize) {
            Some(rs) => ForValues::From {
                from: vec![range_bound(&rs.from)],
                to: vec![range_bound(&rs.to)],
            },
            None => ForValues::Default,
        },
        TableKind::List(l) => match l.lists.get(shard as usize) {
            Some((vals, _)) => ForValues::In(vals.iter().map(bound_expr).collect()),
            None => ForValues::Default,
        },
        TableKind::Reference | TableKind::Partition { .. } => return None,
    })
}

/// The distribution column's type and position as the CREATE TABLE declares them.
pub fn key_column(ct: &CreateTable, t: &TableDist) -> SgResult<(KeyType, usize)> {
    let (pos, col) = ct
        .columns
        .iter()
        .enumerate()
        .find(|(_, c)| crate::analyze::scope::ident_name(&c.name) == t.column)
        .ok_or_else(|| {
            SgError::new(
                "42703",
                format!(
                    "column \"{}\" named as distribution column of \"{}\" in the config does not exist",
                    t.column, t.name
                ),
            )
        })?;
    let ty_name = col.data_type.to_string();
    let ty = KeyType::from_sql_name(&ty_name).ok_or_else(|| {
        SgError::unsupported(format!(
            "distribution column \"{}\" of type {ty_name} (supported: int2, int4, int8, text, varchar, uuid, date, timestamp)",
            t.column
        ))
    })?;
    Ok((ty, pos))
}

/// The statements that create `t` on a node: the partitioned parent and every partition.
pub fn create_statements(ct: &CreateTable, t: &TableDist) -> SgResult<Vec<String>> {
    if ct.partition_by.is_some() || ct.partition_of.is_some() {
        return Err(SgError::unsupported(format!(
            "PARTITION BY/OF in CREATE TABLE of distributed table \"{}\" (shardgate partitions it)",
            t.name
        )));
    }
    if ct.query.is_some() {
        return Err(SgError::unsupported(format!(
            "CREATE TABLE ... AS for distributed table \"{}\"",
            t.name
        )));
    }
    let strategy = match &t.kind {
        TableKind::Hash {
            func: HashFunc::SipHash,
            ..
        }
        | TableKind::Reference
        | TableKind::Partition { .. } => {
            return Ok(vec![Statement::CreateTable(ct.clone()).to_string()])
        }
        TableKind::Hash { .. } => "HASH",
        TableKind::Range(_) => "RANGE",
        TableKind::List(_) => "LIST",
    };
    let mut parent = ct.clone();
    // PostgreSQL refuses storage parameters on a partitioned table ("cannot specify storage
    // parameters for a partitioned table", tablecmds.c): they belong to the partitions,
    // where the plain table's rows now live.
    let storage = match std::mem::take(&mut parent.table_options) {
        sqlparser::ast::CreateTableOptions::With(o) => Some(o),
        other => {
            parent.table_options = other;
            None
        }
    };
    parent.partition_by = Some(Box::new(Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(strategy)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(
                Expr::Identifier(ident(&t.column)),
            ))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })));
    let mut out = vec![Statement::CreateTable(parent).to_string()];
    for shard in 0..t.shard_count() {
        let Some(bounds) = for_values(t, shard) else {
            continue;
        };
        let mut part = partition_template()?;
        part.name = shard_table_name(&ct.name, &t.shard_name(shard));
        part.partition_of = Some(ct.name.clone());
        part.for_values = Some(bounds);
        part.if_not_exists = ct.if_not_exists;
        part.temporary = ct.temporary;
        if let Some(o) = &storage {
            part.table_options = sqlparser::ast::CreateTableOptions::With(o.clone());
        }
        out.push(Statement::CreateTable(part).to_string());
    }
    Ok(out)
}

fn partition_template() -> SgResult<CreateTable> {
    let parsed = crate::analyze::parse_sql(
        "CREATE TABLE shard PARTITION OF parent FOR VALUES WITH (MODULUS 1, REMAINDER 0)",
    )
    .map_err(SgError::internal)?;
    match parsed.into_iter().next() {
        Some(Statement::CreateTable(ct)) => Ok(ct),
        _ => Err(SgError::internal("partition template did not parse")),
    }
}

/// CREATE TABLE of a table in the shard map: on every node, the partitioned table with that
/// node's partitions; other tables go to the default node.
pub fn create_table(stmt: &Stmt, text: &str, map: &ShardMap) -> SgResult<Plan> {
    let name = stmt.ddl_tables.first().cloned().unwrap_or_default();
    let Statement::CreateTable(ct) = reparse(text)? else {
        return Err(SgError::internal("CREATE TABLE did not re-parse as one"));
    };
    let Some(t) = map.get(&name) else {
        let here = Plan::Route {
            node: map.default_node,
            why: "table not in the shard map".into(),
        };
        return match &ct.query {
            Some(q) => {
                let text = q.to_string();
                let inner =
                    crate::analyze::classify::statement(&Statement::Query(q.clone()), &text, map);
                let p = super::route::plan(&inner, &text, &super::route::Values::NONE, map)?;
                super::route::creates_from_query(p, map, "CREATE TABLE ... AS")?;
                Ok(here)
            }
            None => Ok(here),
        };
    };
    let (ty, pos) = if t.is_reference() {
        (KeyType::Text, 0)
    } else {
        key_column(&ct, &t)?
    };
    let typed = if t.is_reference() {
        (*t).clone()
    } else {
        t.with_key_type(ty).map_err(SgError::unsupported)?
    };
    // Every node gets the whole tree, the partitions it does not own empty: statements
    // planned or described on any node (the merge node, catalog queries such as psql's \d+ on
    // the default node) see the table as one PostgreSQL would.
    let all = create_statements(&ct, &typed)?;
    let parts = (0..map.node_count)
        .map(|node| (node, all.clone()))
        .collect();
    Ok(Plan::PerNode {
        parts,
        combine: Combine::Same,
        why: format!("create {} table \"{name}\" on its nodes", t.kind.method()),
        learn: (!t.is_reference()).then(|| (name.clone(), ty, pos)),
        returning_order: Vec::new(),
        params: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shardmap::{list::ListLayout, range::RangeLayout};

    fn create(sql: &str) -> CreateTable {
        match crate::analyze::parse_sql(sql)
            .ok()
            .and_then(|mut v| v.pop())
        {
            Some(Statement::CreateTable(ct)) => ct,
            _ => panic!("not a CREATE TABLE"),
        }
    }

    #[test]
    fn hash_table_gets_its_nodes_partitions() {
        let ct = create("CREATE TABLE users (user_uuid uuid PRIMARY KEY, name text)");
        let t = TableDist::new(
            "users".into(),
            "user_uuid".into(),
            None,
            TableKind::Hash {
                modulus: 4,
                func: HashFunc::Postgres,
                placement: vec![0, 1, 2, 0],
            },
        );
        assert_eq!(key_column(&ct, &t), Ok((KeyType::Uuid, 0)));
        let sql = create_statements(&ct, &t).unwrap_or_default();
        assert_eq!(
            sql,
            vec![
                "CREATE TABLE users (user_uuid UUID PRIMARY KEY, name TEXT) PARTITION BY HASH(user_uuid)",
                "CREATE TABLE users_0 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 0)",
                "CREATE TABLE users_1 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 1)",
                "CREATE TABLE users_2 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 2)",
                "CREATE TABLE users_3 PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 3)",
            ]
        );
    }

    #[test]
    fn range_and_list_bounds() {
        let ct = create("CREATE TABLE s (d date, region text)");
        let d = |s: &str| {
            Bound::Value(KeyValue::parse_text(KeyType::Date, s).unwrap_or(KeyValue::Date(0)))
        };
        let t = TableDist::new(
            "s".into(),
            "d".into(),
            Some(KeyType::Date),
            TableKind::Range(
                RangeLayout::new(vec![(Bound::Min, d("2024-03-01"), 0)], Some(1))
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
        );
        let sql = create_statements(&ct, &t).unwrap_or_default();
        assert_eq!(
            sql[1],
            "CREATE TABLE s_0 PARTITION OF s FOR VALUES FROM (MINVALUE) TO ('2024-03-01')"
        );
        assert_eq!(sql[2], "CREATE TABLE s_default PARTITION OF s DEFAULT");
        let l = TableDist::new(
            "s".into(),
            "region".into(),
            Some(KeyType::Text),
            TableKind::List(
                ListLayout::new(vec![(vec![KeyValue::Text("US".into())], 0)], None)
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
        );
        let sql = create_statements(&ct, &l).unwrap_or_default();
        assert_eq!(
            sql[1],
            "CREATE TABLE s_0 PARTITION OF s FOR VALUES IN ('US')"
        );
    }
}
