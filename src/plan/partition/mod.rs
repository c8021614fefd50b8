//! PostgreSQL's partitioning DDL, run through shardgate, as the shard map: `CREATE TABLE t ...
//! PARTITION BY` makes `t` a distributed table (its parent on every node), `CREATE TABLE p
//! PARTITION OF t FOR VALUES ...` puts partition `p` on one node, `DROP TABLE p` removes it.
//! Pure: what a statement asks for and where it goes; the session runs it with the catalog
//! write in one transaction (`session::partition`), and the map is rebuilt from the catalog
//! (`build`).

use sqlparser::ast::{CreateTable, Expr, Statement};

use crate::analyze::attach::PartitionCmd;
use crate::analyze::scope::{ident_name, table_name};
use crate::error::{SgError, SgResult};
use crate::shardmap::{KeyType, ShardMap, TableDist, TableKind};

mod bound;
mod build;

pub use bound::{bound, PartBound};
pub use build::{build, CatalogPartition};

/// A partitioning statement shardgate carries across nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionDdl {
    /// `CREATE TABLE t ... PARTITION BY method (column)`: the parent, on every node.
    CreateParent {
        table: String,
        method: &'static str,
        column: String,
        key_type: KeyType,
    },
    /// `CREATE TABLE p PARTITION OF parent ...`: on `node`. `bound` is None for a partition of
    /// a partition (its bounds are its node's business).
    CreatePartition {
        name: String,
        parent: String,
        node: usize,
        bound: Option<PartBound>,
    },
    /// `DROP TABLE` of tables and partitions from the catalog.
    Drop { names: Vec<String> },
    /// `ALTER TABLE parent ATTACH PARTITION name ...`: `name`'s rows are on `node`. Where
    /// `placeholder` is given, `name` exists on `node` only (a plain table there), and the
    /// other nodes create it empty with that statement.
    Attach {
        name: String,
        parent: String,
        node: usize,
        bound: Option<PartBound>,
        placeholder: Option<String>,
    },
    /// `ALTER TABLE parent DETACH PARTITION name`: `name` becomes a table of its own, its rows
    /// where they were (the catalog remembers the node).
    Detach { name: String, parent: String },
}

impl PartitionDdl {
    /// The nodes the statement runs on: every node. A partition's rows live on its node, and
    /// every other node holds it empty, so that each node's partition tree is the whole tree:
    /// PostgreSQL itself then checks a new partition against a DEFAULT partition's rows
    /// wherever they are (23514, partbounds.c check_default_partition_contents), and catalog
    /// queries on any node (psql's `\d+`, `pg_inherits`, `pg_tables`) list every partition
    /// with its bounds, as on one PostgreSQL.
    pub fn nodes(&self, map: &ShardMap) -> Vec<usize> {
        (0..map.node_count).collect()
    }

    /// The tables whose layout the statement changes.
    pub fn tables(&self) -> Vec<String> {
        match self {
            PartitionDdl::CreateParent { table, .. } => vec![table.clone()],
            PartitionDdl::CreatePartition { name, parent, .. }
            | PartitionDdl::Attach { name, parent, .. }
            | PartitionDdl::Detach { name, parent } => vec![name.clone(), parent.clone()],
            PartitionDdl::Drop { names } => names.clone(),
        }
    }

    /// What each node runs for the client's statement `text`.
    pub fn statements(&self, text: &str, map: &ShardMap) -> Vec<(usize, Vec<String>)> {
        self.nodes(map)
            .into_iter()
            .map(|n| match self {
                PartitionDdl::Attach {
                    node,
                    placeholder: Some(p),
                    ..
                } if n != *node => (n, vec![p.clone()]),
                _ => (n, vec![text.to_string()]),
            })
            .collect()
    }
}

/// The partition key of `CREATE TABLE ... PARTITION BY method (column)`.
fn partition_key(e: &Expr) -> SgResult<(&'static str, String)> {
    let Expr::Function(f) = e else {
        return Err(SgError::unsupported(format!("PARTITION BY {e}")));
    };
    let method = match crate::analyze::scope::function_name(f).as_str() {
        "hash" => "hash",
        "range" => "range",
        "list" => "list",
        other => {
            return Err(SgError::new(
                "22023",
                format!("unrecognized partitioning strategy \"{other}\""),
            ))
        }
    };
    let sqlparser::ast::FunctionArguments::List(args) = &f.args else {
        return Err(SgError::unsupported("PARTITION BY without a column"));
    };
    match args.args.as_slice() {
        [sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(
            Expr::Identifier(id),
        ))] => Ok((method, ident_name(id))),
        _ => Err(SgError::unsupported(
            "a partition key of several columns or an expression (shardgate partitions on one column)",
        )),
    }
}

/// The node a new partition of `parent` goes to when the session names none: the one holding
/// fewest of its partitions, the lowest-numbered on a tie.
pub fn fewest(parent: &TableDist, node_count: usize) -> usize {
    let mut counts = vec![0usize; node_count];
    for s in 0..parent.shard_count() {
        if let Some(c) = counts.get_mut(parent.node_of(s)) {
            *c += 1;
        }
    }
    (0..node_count).min_by_key(|n| counts[*n]).unwrap_or(0)
}

/// What a CREATE TABLE or DROP TABLE asks of the partitioned tables, if anything. `chosen` is
/// the node the session asked for (`SET shardgate.node`).
pub fn classify(
    ast: &Statement,
    map: &ShardMap,
    chosen: Option<usize>,
) -> SgResult<Option<PartitionDdl>> {
    match ast {
        Statement::CreateTable(ct) => create(ct, map, chosen),
        Statement::Drop {
            object_type: sqlparser::ast::ObjectType::Table,
            names,
            ..
        } => {
            let names: Vec<String> = names.iter().map(table_name).collect();
            if !names.iter().any(|n| map.is_managed(n)) {
                return Ok(None);
            }
            if !names.iter().all(|n| map.is_managed(n)) {
                return Err(SgError::unsupported(
                    "one DROP TABLE of partitioned tables and other tables (drop them apart)",
                ));
            }
            Ok(Some(PartitionDdl::Drop { names }))
        }
        _ => Ok(None),
    }
}

/// What a statement's text asks of the partitioned tables, if anything.
pub fn classify_text(
    text: &str,
    map: &ShardMap,
    chosen: Option<usize>,
) -> SgResult<Option<PartitionDdl>> {
    match crate::analyze::parse_sql(text)
        .ok()
        .and_then(|mut v| v.pop())
    {
        Some(ast) => classify(&ast, map, chosen),
        None => match crate::analyze::attach::parse(text) {
            Some(cmd) => classify_cmd(&cmd, map),
            None => Ok(None),
        },
    }
}

/// What an ALTER TABLE ... ATTACH/DETACH PARTITION asks of the partitioned tables, if anything.
pub fn classify_cmd(cmd: &PartitionCmd, map: &ShardMap) -> SgResult<Option<PartitionDdl>> {
    match cmd {
        PartitionCmd::Attach {
            parent,
            partition,
            bound: fv,
        } => {
            let (parent_name, name) = (table_name(parent), table_name(partition));
            let Some(p) = map.get(&parent_name) else {
                return Ok(None);
            };
            if !map.is_managed(&parent_name) {
                return Err(SgError::unsupported(format!(
                    "ATTACH PARTITION to \"{parent_name}\", whose shards the config declares"
                )));
            }
            // Where the table's rows are: a table detached through shardgate is on every node
            // (its rows on one), any other table not in the map is on the default node alone.
            let (node, everywhere) = match map.get(&name).map(|t| t.kind.clone()) {
                None => (map.default_node, false),
                Some(TableKind::Partition { node, parent }) if parent.is_empty() => (node, true),
                Some(TableKind::Partition { .. }) => {
                    return Err(SgError::new(
                        "42809",
                        format!("\"{name}\" is already a partition"),
                    ))
                }
                Some(_) => {
                    return Err(SgError::unsupported(format!(
                        "ATTACH PARTITION of \"{name}\", a distributed table"
                    )))
                }
            };
            let bound = match p.kind {
                // A partition of a partition lives on its parent's node.
                TableKind::Partition { node: at, .. } => {
                    if at != node {
                        return Err(SgError::unsupported(format!(
                            "ATTACH PARTITION of \"{name}\", whose rows are on node {} of {}, to \"{parent_name}\" on node {} (partitions of a partition share its node)",
                            node + 1,
                            map.node_count,
                            at + 1
                        )));
                    }
                    None
                }
                _ => {
                    let b = bound(fv, p.kind.method(), p.key_type()?)?;
                    check_fits(&p, &name, &b)?;
                    Some(b)
                }
            };
            let placeholder = if everywhere {
                None
            } else {
                let mut ct =
                    match crate::analyze::parse_sql("CREATE TABLE a PARTITION OF b DEFAULT")
                        .ok()
                        .and_then(|mut v| v.pop())
                    {
                        Some(Statement::CreateTable(ct)) => ct,
                        _ => {
                            return Err(SgError::internal(
                                "a CREATE TABLE ... PARTITION OF template",
                            ))
                        }
                    };
                ct.name = partition.clone();
                ct.partition_of = Some(parent.clone());
                ct.for_values = Some(fv.clone());
                Some(Statement::CreateTable(ct).to_string())
            };
            Ok(Some(PartitionDdl::Attach {
                name,
                parent: parent_name,
                node,
                bound,
                placeholder,
            }))
        }
        PartitionCmd::Detach {
            parent,
            partition,
            concurrently,
        } => {
            let (parent_name, name) = (table_name(parent), table_name(partition));
            if !map.is_managed(&parent_name) {
                return Ok(None);
            }
            if *concurrently {
                return Err(SgError::unsupported(
                    "DETACH PARTITION CONCURRENTLY or FINALIZE (it cannot run in the transaction shardgate wraps partitioning DDL in; detach without it)",
                ));
            }
            match map.get(&name).map(|t| t.kind.clone()) {
                Some(TableKind::Partition { parent: of, .. }) if of == parent_name => {
                    Ok(Some(PartitionDdl::Detach {
                        name,
                        parent: parent_name,
                    }))
                }
                _ => Err(SgError::new(
                    "42P01",
                    format!("relation \"{name}\" is not a partition of relation \"{parent_name}\""),
                )),
            }
        }
    }
}

fn create(
    ct: &CreateTable,
    map: &ShardMap,
    chosen: Option<usize>,
) -> SgResult<Option<PartitionDdl>> {
    let name = table_name(&ct.name);
    if let Some(parent) = &ct.partition_of {
        let parent = table_name(parent);
        let Some(p) = map.get(&parent) else {
            return Ok(None);
        };
        if !map.is_managed(&parent) {
            return Err(SgError::unsupported(format!(
                "PARTITION OF \"{parent}\", whose shards the config declares (declare them there)"
            )));
        }
        if map.get(&name).is_some() {
            return Err(SgError::new(
                "42P07",
                format!("relation \"{name}\" already exists"),
            ));
        }
        if let TableKind::Partition { node, .. } = p.kind {
            return Ok(Some(PartitionDdl::CreatePartition {
                name,
                parent,
                node,
                bound: None,
            }));
        }
        let ty = p.key_type()?;
        let fv = ct.for_values.as_ref().ok_or_else(|| {
            SgError::syntax("syntax error: PARTITION OF needs FOR VALUES or DEFAULT")
        })?;
        let b = bound(fv, p.kind.method(), ty)?;
        let node = chosen.unwrap_or_else(|| fewest(&p, map.node_count));
        check_fits(&p, &name, &b)?;
        return Ok(Some(PartitionDdl::CreatePartition {
            name,
            parent,
            node,
            bound: Some(b),
        }));
    }
    let Some(key) = &ct.partition_by else {
        return Ok(None);
    };
    if map.get(&name).is_some() {
        // A table of the config: its layout is the config's.
        return Err(SgError::unsupported(format!(
            "PARTITION BY in CREATE TABLE of \"{name}\", which the config distributes (shardgate partitions it)"
        )));
    }
    if ct.query.is_some() {
        return Err(SgError::unsupported(
            "CREATE TABLE ... AS with PARTITION BY",
        ));
    }
    let (method, column) = partition_key(key)?;
    let col = ct
        .columns
        .iter()
        .find(|c| ident_name(&c.name) == column)
        .ok_or_else(|| {
            SgError::new(
                "42703",
                format!("column \"{column}\" named in partition key does not exist"),
            )
        })?;
    let ty_name = col.data_type.to_string();
    let key_type = KeyType::from_sql_name(&ty_name).ok_or_else(|| {
        SgError::unsupported(format!(
            "partitioning on column \"{column}\" of type {ty_name} (supported: int2, int4, int8, text, varchar, uuid, date, timestamp)"
        ))
    })?;
    Ok(Some(PartitionDdl::CreateParent {
        table: name,
        method,
        column,
        key_type,
    }))
}

/// PostgreSQL's checks of a new partition against the table's others (partbounds.c
/// check_new_partition_bound), across every node: 42P17 where they overlap.
fn check_fits(parent: &TableDist, name: &str, b: &PartBound) -> SgResult<()> {
    let overlap = |other: String| {
        SgError::new(
            "42P17",
            format!("partition \"{name}\" would overlap partition \"{other}\""),
        )
    };
    match (&parent.kind, b) {
        (TableKind::Range(r), PartBound::Default) if r.default.is_some() => {
            Err(overlap(parent.shard_name(r.ranges.len() as u32)))
        }
        (TableKind::List(l), PartBound::Default) if l.default.is_some() => {
            Err(overlap(parent.shard_name(l.lists.len() as u32)))
        }
        (TableKind::Hash { .. }, PartBound::Default) => Err(SgError::new(
            "42P16",
            "a hash-partitioned table may not have a default partition",
        )),
        (
            TableKind::Hash { modulus, .. },
            PartBound::Hash {
                modulus: m,
                remainder,
            },
        ) => {
            if parent.nodes(0).is_empty() {
                return Ok(());
            }
            if m != modulus {
                return Err(SgError::unsupported(format!(
                    "hash partitions of \"{}\" with different moduli ({modulus} and {m})",
                    parent.name
                )));
            }
            if parent.has_shard(*remainder as u32) {
                return Err(overlap(parent.shard_name(*remainder as u32)));
            }
            Ok(())
        }
        (TableKind::Range(r), PartBound::Range { from, to }) => {
            use crate::shardmap::range::RangeLayout;
            let alone = RangeLayout::new(vec![(from.clone(), to.clone(), 0)], None);
            if alone.is_err() {
                return Err(SgError::new(
                    "42P17",
                    format!("empty range bound specified for partition \"{name}\""),
                ));
            }
            let hit = r.ranges.iter().position(|x| {
                RangeLayout::new(
                    vec![
                        (x.from.clone(), x.to.clone(), 0),
                        (from.clone(), to.clone(), 0),
                    ],
                    None,
                )
                .is_err()
            });
            match hit {
                Some(i) => Err(overlap(parent.shard_name(i as u32))),
                None => Ok(()),
            }
        }
        (TableKind::List(l), PartBound::List(values)) => {
            for (i, (vals, _)) in l.lists.iter().enumerate() {
                if vals.iter().any(|v| values.contains(v)) {
                    return Err(overlap(parent.shard_name(i as u32)));
                }
            }
            Ok(())
        }
        (TableKind::Range(_) | TableKind::List(_), PartBound::Default) => Ok(()),
        _ => Err(SgError::new(
            "42P16",
            format!(
                "invalid bound specification for a {} partition",
                parent.kind.method()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shardmap::{Bound, KeyValue};

    fn parse(sql: &str) -> Statement {
        crate::analyze::parse_sql(sql).unwrap().pop().unwrap()
    }

    fn map_with(parts: &[CatalogPartition]) -> ShardMap {
        let m = ShardMap::new(Vec::new(), 3, 0);
        m.replace_managed(build("m", "range", "d", KeyType::Date, parts).unwrap());
        m
    }

    fn month(name: &str, from: &str, to: &str, node: usize) -> CatalogPartition {
        CatalogPartition {
            name: name.into(),
            parent: "m".into(),
            node,
            bound: Some(PartBound::Range {
                from: Bound::Value(KeyValue::parse_text(KeyType::Date, from).unwrap()),
                to: Bound::Value(KeyValue::parse_text(KeyType::Date, to).unwrap()),
            }),
        }
    }

    #[test]
    fn partitions_go_where_fewest_are_and_may_not_overlap() {
        let m = map_with(&[month("m_01", "2024-01-01", "2024-02-01", 0)]);
        let ddl = classify(
            &parse(
                "CREATE TABLE m_02 PARTITION OF m FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')",
            ),
            &m,
            None,
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(ddl, PartitionDdl::CreatePartition { node: 1, .. }),
            "{ddl:?}"
        );
        let e = classify(
            &parse(
                "CREATE TABLE m_x PARTITION OF m FOR VALUES FROM ('2024-01-15') TO ('2024-03-01')",
            ),
            &m,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, "42P17");
        assert_eq!(
            e.message,
            "partition \"m_x\" would overlap partition \"m_01\""
        );
        let t = m.get("m").unwrap();
        assert_eq!(t.shard_name(0), "m_01");
        assert!(matches!(
            m.get("m_01").unwrap().kind,
            TableKind::Partition { node: 0, .. }
        ));
    }

    #[test]
    fn a_hash_table_routes_only_to_remainders_it_has() {
        let parts = [CatalogPartition {
            name: "h_0".into(),
            parent: "h".into(),
            node: 2,
            bound: Some(PartBound::Hash {
                modulus: 4,
                remainder: 0,
            }),
        }];
        let t = build("h", "hash", "k", KeyType::Int4, &parts)
            .unwrap()
            .remove(0);
        assert_eq!(t.nodes(3), vec![2]);
        // 0 → remainder 0, 2 → remainder 2 (PostgreSQL's vectors in shardmap's tests).
        assert_eq!(t.shard_of(Some(&KeyValue::Int(0))), Ok(Some(0)));
        assert_eq!(t.shard_of(Some(&KeyValue::Int(2))), Ok(None));
    }
}
