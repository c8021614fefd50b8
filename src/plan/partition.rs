//! PostgreSQL's partitioning DDL, run through shardgate, as the shard map: `CREATE TABLE t ...
//! PARTITION BY` makes `t` a distributed table (its parent on every node), `CREATE TABLE p
//! PARTITION OF t FOR VALUES ...` puts partition `p` on one node, `DROP TABLE p` removes it.
//! Pure: what a statement asks for and where it goes; the session runs it with the catalog
//! write in one transaction (`session::partition`), and the map is rebuilt from the catalog
//! (`build`).

use sqlparser::ast::{CreateTable, Expr, ForValues, PartitionBoundValue, Statement, UnaryOperator};

use crate::analyze::scope::{ident_name, table_name};
use crate::error::{SgError, SgResult};
use crate::shardmap::{
    Bound, HashFunc, KeyType, KeyValue, ShardMap, TableDist, TableKind, NO_NODE,
};

/// A partition's bounds, as `FOR VALUES` gives them.
#[derive(Debug, Clone, PartialEq)]
pub enum PartBound {
    Hash { modulus: u64, remainder: u64 },
    Range { from: Bound, to: Bound },
    List(Vec<KeyValue>),
    Default,
}

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
}

impl PartitionDdl {
    /// The nodes the statement runs on.
    pub fn nodes(&self, map: &ShardMap) -> Vec<usize> {
        match self {
            PartitionDdl::CreateParent { .. } => (0..map.node_count).collect(),
            PartitionDdl::CreatePartition { node, .. } => vec![*node],
            PartitionDdl::Drop { names } => {
                let mut nodes: Vec<usize> = names
                    .iter()
                    .flat_map(|n| match map.get(n) {
                        Some(t) if matches!(t.kind, TableKind::Partition { .. }) => {
                            t.nodes(map.node_count)
                        }
                        _ => (0..map.node_count).collect(),
                    })
                    .collect();
                nodes.sort_unstable();
                nodes.dedup();
                nodes
            }
        }
    }
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            sqlparser::ast::Value::Number(n, _) => Some(n.clone()),
            sqlparser::ast::Value::SingleQuotedString(s) => Some(s.replace("''", "'")),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => literal_text(expr).map(|t| format!("-{t}")),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => literal_text(expr),
        _ => None,
    }
}

fn bound_value(e: &Expr, ty: KeyType) -> SgResult<KeyValue> {
    let text = literal_text(e).ok_or_else(|| {
        SgError::unsupported(format!("partition bound {e} (write it as a constant)"))
    })?;
    KeyValue::parse_text(ty, &text)
}

fn range_bound(b: &[PartitionBoundValue], ty: KeyType) -> SgResult<Bound> {
    match b {
        [PartitionBoundValue::MinValue] => Ok(Bound::Min),
        [PartitionBoundValue::MaxValue] => Ok(Bound::Max),
        [PartitionBoundValue::Expr(e)] => Ok(Bound::Value(bound_value(e, ty)?)),
        _ => Err(SgError::unsupported(
            "a range bound of several columns (shardgate partitions on one column)",
        )),
    }
}

/// Reads `FOR VALUES` for a table partitioned by `method` on a key of type `ty`.
pub fn bound(fv: &ForValues, method: &str, ty: KeyType) -> SgResult<PartBound> {
    let wrong = || {
        SgError::new(
            "42P16",
            format!("invalid bound specification for a {method} partition"),
        )
    };
    Ok(match fv {
        ForValues::Default => PartBound::Default,
        ForValues::With { modulus, remainder } if method == "hash" => {
            if *modulus == 0 {
                return Err(SgError::new(
                    "42P16",
                    "modulus for hash partition must be an integer value greater than zero",
                ));
            }
            if remainder >= modulus {
                return Err(SgError::new(
                    "42P16",
                    "remainder for hash partition must be less than modulus",
                ));
            }
            PartBound::Hash {
                modulus: *modulus,
                remainder: *remainder,
            }
        }
        ForValues::From { from, to } if method == "range" => PartBound::Range {
            from: range_bound(from, ty)?,
            to: range_bound(to, ty)?,
        },
        ForValues::In(values) if method == "list" => {
            let mut out = Vec::new();
            for v in values {
                if matches!(v, Expr::Value(x) if matches!(x.value, sqlparser::ast::Value::Null)) {
                    return Err(SgError::unsupported("a list partition for NULL keys"));
                }
                out.push(bound_value(v, ty)?);
            }
            PartBound::List(out)
        }
        _ => return Err(wrong()),
    })
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

/// One partition as the catalog holds it.
#[derive(Debug, Clone)]
pub struct CatalogPartition {
    pub name: String,
    pub parent: String,
    pub node: usize,
    pub bound: Option<PartBound>,
}

/// The bounds `bound_of` reads from a range or list table's partitions, with their nodes, in
/// order, and the DEFAULT partition's node; `names` gets the partitions' names in shard order
/// (the DEFAULT last).
type Bounded<B> = (Vec<(B, usize)>, Option<usize>);

fn bounded<B>(
    top: &[&CatalogPartition],
    table: &str,
    method: &str,
    names: &mut Vec<String>,
    bound_of: impl Fn(&PartBound) -> Option<B>,
) -> Result<Bounded<B>, String> {
    let mut out = Vec::new();
    let mut default = None;
    let mut default_name = None;
    for p in top {
        match p.bound.as_ref() {
            Some(PartBound::Default) => {
                default = Some(p.node);
                default_name = Some(p.name.clone());
            }
            Some(b) if let Some(v) = bound_of(b) => {
                out.push((v, p.node));
                names.push(p.name.clone());
            }
            _ => {
                return Err(format!(
                    "partition \"{}\" of {method} table \"{table}\" has no {method} bound",
                    p.name
                ))
            }
        }
    }
    names.extend(default_name);
    Ok((out, default))
}

/// The shard map's entries for a table created with `PARTITION BY` and its partitions:
/// the table with one shard per top-level partition (in creation order, the DEFAULT last) and
/// an entry per partition at any depth, each on its node.
pub fn build(
    name: &str,
    method: &str,
    column: &str,
    key_type: KeyType,
    parts: &[CatalogPartition],
) -> Result<Vec<TableDist>, String> {
    let top: Vec<&CatalogPartition> = parts.iter().filter(|p| p.parent == name).collect();
    let mut names = Vec::new();
    let kind = match method {
        "hash" => {
            let modulus = top
                .iter()
                .find_map(|p| match p.bound {
                    Some(PartBound::Hash { modulus, .. }) => Some(modulus),
                    _ => None,
                })
                .unwrap_or(1);
            let mut placement = vec![NO_NODE; modulus as usize];
            names = vec![String::new(); modulus as usize];
            for p in &top {
                match p.bound {
                    Some(PartBound::Hash {
                        modulus: m,
                        remainder,
                    }) if m == modulus => {
                        if let Some(slot) = placement.get_mut(remainder as usize) {
                            *slot = p.node;
                            names[remainder as usize] = p.name.clone();
                        }
                    }
                    _ => {
                        return Err(format!(
                            "partition \"{}\" of hash table \"{name}\" has another modulus",
                            p.name
                        ))
                    }
                }
            }
            TableKind::Hash {
                modulus,
                func: HashFunc::Postgres,
                placement,
            }
        }
        "range" => {
            let (ranges, default) = bounded(&top, name, "range", &mut names, |b| match b {
                PartBound::Range { from, to } => Some((from.clone(), to.clone())),
                _ => None,
            })?;
            TableKind::range(
                ranges.into_iter().map(|((f, t), n)| (f, t, n)).collect(),
                default,
            )?
        }
        "list" => {
            let (lists, default) = bounded(&top, name, "list", &mut names, |b| match b {
                PartBound::List(values) => Some(values.clone()),
                _ => None,
            })?;
            TableKind::list(lists, default)?
        }
        other => return Err(format!("table \"{name}\": unknown method \"{other}\"")),
    };
    let mut t = TableDist::new(name.to_string(), column.to_string(), Some(key_type), kind);
    t.names = names;
    let mut out = vec![t];
    // Partitions at any depth, each where the catalog says (a sub-partition on its parent's node).
    let mut frontier = vec![name.to_string()];
    while let Some(parent) = frontier.pop() {
        for p in parts.iter().filter(|p| p.parent == parent) {
            out.push(TableDist::new(
                p.name.clone(),
                column.to_string(),
                Some(key_type),
                TableKind::Partition {
                    node: p.node,
                    parent: parent.clone(),
                },
            ));
            frontier.push(p.name.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
