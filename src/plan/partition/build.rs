//! The shard map's entries for a table partitioned through shardgate, built from the
//! catalog's rows (`catalog::partitions`): one shard per top-level partition, an entry per
//! partition at any depth.

use super::bound::PartBound;
use crate::shardmap::{HashFunc, KeyType, TableDist, TableKind, NO_NODE};

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
