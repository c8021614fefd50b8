//! The `shardgate.shards` view: every shard of every distributed table with its node, bounds,
//! row estimate and size. No node holds it: the session asks each node about the shards it
//! holds (`NODE_SQL`), and the client's query runs on the default node with the view replaced
//! by those rows (`rewrite`), so any SELECT over it (WHERE, ORDER BY, joins, aggregates) works.

use std::ops::ControlFlow;

use sqlparser::ast::{Query, Statement, TableAlias, TableFactor, VisitMut, VisitorMut};

use crate::analyze::scope::ident_name;
use crate::error::{SgError, SgResult};
use crate::quote::literal;
use crate::shardmap::{ShardMap, TableKind};

/// The view's name as a query writes it.
pub const VIEW: &str = "shardgate.shards";

/// The view's columns and their types.
const COLUMNS: [(&str, &str); 7] = [
    ("table_name", "text"),
    ("shard_name", "text"),
    ("parent_name", "text"),
    ("node", "text"),
    ("bound", "text"),
    ("row_estimate", "int8"),
    ("size_bytes", "int8"),
];

/// What a node answers about the shards it holds, given their names: bound, row estimate
/// (NULL until the table was analysed or vacuumed) and size, each summed over the shard's own
/// partitions where it has some.
pub fn node_sql(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| literal(n)).collect();
    format!(
        "SELECT u.name, pg_get_expr(c.relpartbound, c.oid), \
         (SELECT sum(nullif(x.reltuples, -1))::int8 FROM pg_partition_tree(c.oid) t JOIN pg_class x ON x.oid = t.relid WHERE t.isleaf), \
         (SELECT sum(pg_total_relation_size(t.relid))::int8 FROM pg_partition_tree(c.oid) t) \
         FROM unnest(ARRAY[{}]::text[]) AS u(name) JOIN pg_class c ON c.oid = to_regclass(quote_ident(u.name))",
        names.join(", ")
    )
}

/// One shard as the map places it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub table: String,
    pub shard: String,
    pub parent: Option<String>,
    pub node: usize,
}

/// One row of the view.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardRow {
    pub placed: Placed,
    pub node_name: String,
    pub bound: Option<String>,
    pub rows: Option<i64>,
    pub size: Option<i64>,
}

/// Every shard of every distributed table: a table the config declares by its shards, one
/// partitioned through shardgate by its partitions at every depth (a detached partition is a
/// table of its own). Reference tables have no shards.
pub fn placements(map: &ShardMap) -> Vec<Placed> {
    let tables = map.tables();
    let parent_of = |name: &str| {
        tables
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| match &t.kind {
                TableKind::Partition { parent, .. } if !parent.is_empty() => Some(parent.clone()),
                _ => None,
            })
    };
    let mut out = Vec::new();
    for t in &tables {
        match &t.kind {
            TableKind::Reference => {}
            TableKind::Partition { node, parent } => {
                let mut root = t.name.clone();
                for _ in 0..64 {
                    match parent_of(&root) {
                        Some(p) => root = p,
                        None => break,
                    }
                }
                out.push(Placed {
                    table: root,
                    shard: t.name.clone(),
                    parent: (!parent.is_empty()).then(|| parent.clone()),
                    node: *node,
                });
            }
            _ if map.is_managed(&t.name) => {}
            _ => {
                for s in (0..t.shard_count()).filter(|s| t.has_shard(*s)) {
                    out.push(Placed {
                        table: t.name.clone(),
                        shard: t.shard_name(s),
                        parent: Some(t.name.clone()),
                        node: t.node_of(s),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.table, &a.shard).cmp(&(&b.table, &b.shard)));
    out
}

fn is_view(name: &sqlparser::ast::ObjectName) -> bool {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(ident_name).unwrap_or_default())
        .collect();
    parts == ["shardgate", "shards"]
}

/// Whether the statement reads the view.
pub fn reads_view(stmt: &Statement) -> bool {
    struct Find(bool);
    impl VisitorMut for Find {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
            if matches!(f, TableFactor::Table { name, .. } if is_view(name)) {
                self.0 = true;
            }
            ControlFlow::Continue(())
        }
    }
    let mut s = stmt.clone();
    let mut f = Find(false);
    let _ = s.visit(&mut f);
    f.0
}

fn opt_text(v: &Option<String>) -> String {
    v.as_deref().map_or("NULL".into(), literal)
}

fn opt_int(v: Option<i64>) -> String {
    v.map_or("NULL".into(), |n| n.to_string())
}

/// The rows as a query of the view's shape.
fn rows_query(rows: &[ShardRow]) -> SgResult<Query> {
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    let typed = |i: usize, v: String| format!("{v}::{}", COLUMNS[i].1);
    let sql = if rows.is_empty() {
        let cols: Vec<String> = COLUMNS
            .iter()
            .map(|(n, t)| format!("NULL::{t} AS {n}"))
            .collect();
        format!("SELECT {} WHERE false", cols.join(", "))
    } else {
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                let vals = [
                    literal(&r.placed.table),
                    literal(&r.placed.shard),
                    opt_text(&r.placed.parent),
                    literal(&r.node_name),
                    opt_text(&r.bound),
                    opt_int(r.rows),
                    opt_int(r.size),
                ];
                let typed: Vec<String> = vals
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| typed(i, v))
                    .collect();
                format!("({})", typed.join(", "))
            })
            .collect();
        format!(
            "SELECT * FROM (VALUES {}) AS shards({})",
            values.join(", "),
            names.join(", ")
        )
    };
    match crate::analyze::parse_sql(&sql)
        .map_err(SgError::internal)?
        .pop()
    {
        Some(Statement::Query(q)) => Ok(*q),
        _ => Err(SgError::internal(
            "the shards view's rows did not parse as a query",
        )),
    }
}

/// The statement with the view replaced by `rows`, printed.
pub fn rewrite(stmt: &Statement, rows: &[ShardRow]) -> SgResult<String> {
    struct Replace(Query);
    impl VisitorMut for Replace {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, alias, .. } = f {
                if is_view(name) {
                    let alias = alias.clone().unwrap_or(TableAlias {
                        explicit: true,
                        name: sqlparser::ast::Ident::new("shards"),
                        columns: Vec::new(),
                        at: None,
                    });
                    *f = TableFactor::Derived {
                        lateral: false,
                        subquery: Box::new(self.0.clone()),
                        alias: Some(alias),
                        sample: None,
                    };
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut s = stmt.clone();
    let _ = s.visit(&mut Replace(rows_query(rows)?));
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_becomes_its_rows() {
        let stmt = crate::analyze::parse_sql(
            "SELECT node, count(*) FROM shardgate.shards s WHERE table_name = 'sales' GROUP BY node",
        )
        .unwrap()
        .remove(0);
        assert!(reads_view(&stmt));
        let row = ShardRow {
            placed: Placed {
                table: "sales".into(),
                shard: "sales_2024_01".into(),
                parent: Some("sales".into()),
                node: 0,
            },
            node_name: "w1".into(),
            bound: Some("FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')".into()),
            rows: None,
            size: Some(8192),
        };
        let sql = rewrite(&stmt, &[row]).unwrap();
        assert!(sql.contains("'sales_2024_01'::TEXT"), "{sql}");
        assert!(sql.contains(") s WHERE"), "{sql}");
        assert!(!reads_view(
            &crate::analyze::parse_sql(&sql).unwrap().remove(0)
        ));
        let none = rewrite(&stmt, &[]).unwrap();
        assert!(none.contains("WHERE false"), "{none}");
    }
}
