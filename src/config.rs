//! The TOML configuration: parsed, then checked as a whole so that a wrong config is refused at
//! start with a message naming the table and the problem.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::shardmap::{Bound, HashFunc, KeyType, KeyValue, ShardMap, TableDist, TableKind};

#[derive(Debug, Deserialize, Clone)]
pub struct RawConfig {
    pub server: ServerSection,
    #[serde(default)]
    pub users: Vec<UserSection>,
    #[serde(default)]
    pub nodes: Vec<NodeSection>,
    #[serde(default)]
    pub tables: Vec<TableSection>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct ServerSection {
    pub listen: String,
    pub default_node: Option<String>,
    /// tracing filter, e.g. "info" or "shardgate=debug"; RUST_LOG wins when set.
    pub log_level: Option<String>,
    /// Connections per worker node in each pool.
    pub pool_size: Option<u32>,
    /// Most rows any coordinator-side buffer (sort, hash aggregate, DISTINCT) may hold.
    pub max_buffered_rows: Option<usize>,
    /// Seconds to wait for a worker connection or a worker's reply before giving up.
    pub worker_timeout_secs: Option<u64>,
    /// Most concurrent client sessions.
    pub max_clients: Option<usize>,
    /// Runtime threads (default: one per core).
    pub threads: Option<usize>,
    /// Seconds to wait for a worker's next reply message before giving up on the statement.
    pub query_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct UserSection {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Deserialize, Clone)]
pub struct NodeSection {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Deserialize, Clone)]
pub struct TableSection {
    pub name: String,
    pub method: String,
    pub column: Option<String>,
    pub shards: Option<u64>,
    pub placement: Option<Vec<String>>,
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    pub hash: Option<String>,
    pub ranges: Option<Vec<RangeSection>>,
    pub lists: Option<Vec<ListSection>>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct RangeSection {
    pub from: Option<toml::Value>,
    pub to: Option<toml::Value>,
    #[serde(default)]
    pub default: bool,
    pub node: String,
}

#[derive(Debug, Deserialize, Clone)]
pub struct ListSection {
    #[serde(default)]
    pub values: Vec<toml::Value>,
    #[serde(default)]
    pub default: bool,
    pub node: String,
}

/// A node as the rest of the program sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub url: String,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: String,
    pub log_level: Option<String>,
    pub users: BTreeMap<String, String>,
    pub nodes: Vec<Node>,
    pub default_node: usize,
    pub pool_size: u32,
    pub max_buffered_rows: usize,
    pub worker_timeout_secs: u64,
    pub max_clients: usize,
    pub threads: Option<usize>,
    pub query_timeout_secs: u64,
    pub shardmap: ShardMap,
}

pub fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<Config, String> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| format!("config: {e}"))?;
    check(raw)
}

fn check(raw: RawConfig) -> Result<Config, String> {
    if raw.nodes.is_empty() {
        return Err("config: at least one [[nodes]] entry is required".into());
    }
    let mut seen = HashSet::new();
    for n in &raw.nodes {
        if !seen.insert(n.name.as_str()) {
            return Err(format!("config: node \"{}\" is listed twice", n.name));
        }
        if !n.url.starts_with("postgres://") && !n.url.starts_with("postgresql://") {
            return Err(format!(
                "config: node \"{}\": url must be a postgresql:// URL",
                n.name
            ));
        }
    }
    let node_index = |table: &str, name: &str| -> Result<usize, String> {
        raw.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| format!("config: table \"{table}\": unknown node \"{name}\""))
    };
    let default_node = match &raw.server.default_node {
        Some(n) => node_index("(server.default_node)", n)?,
        None => 0,
    };
    let mut users = BTreeMap::new();
    for u in &raw.users {
        users.insert(u.name.clone(), u.password.clone());
    }
    let mut tables = Vec::new();
    let mut names = HashSet::new();
    for t in &raw.tables {
        let name = t.name.to_lowercase();
        if !names.insert(name.clone()) {
            return Err(format!("config: table \"{}\" is listed twice", t.name));
        }
        tables.push(check_table(t, &name, raw.nodes.len(), &node_index)?);
    }
    Ok(Config {
        listen: raw.server.listen.clone(),
        log_level: raw.server.log_level.clone(),
        users,
        nodes: raw
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                url: n.url.clone(),
            })
            .collect(),
        default_node,
        pool_size: raw.server.pool_size.unwrap_or(32).max(1),
        max_buffered_rows: raw.server.max_buffered_rows.unwrap_or(1_000_000),
        worker_timeout_secs: raw.server.worker_timeout_secs.unwrap_or(30).max(1),
        max_clients: raw.server.max_clients.unwrap_or(1000).max(1),
        threads: raw.server.threads,
        query_timeout_secs: raw.server.query_timeout_secs.unwrap_or(3600).max(1),
        shardmap: ShardMap::new(tables, raw.nodes.len(), default_node),
    })
}

fn check_table(
    t: &TableSection,
    name: &str,
    node_count: usize,
    node_index: &dyn Fn(&str, &str) -> Result<usize, String>,
) -> Result<TableDist, String> {
    let err = |msg: String| format!("config: table \"{}\": {msg}", t.name);
    let key_type = match &t.key_type {
        Some(s) => Some(KeyType::from_sql_name(s).ok_or_else(|| {
            err(format!(
                "distribution column type \"{s}\" is not supported (int2, int4, int8, text, varchar, uuid, date, timestamp)"
            ))
        })?),
        None => None,
    };
    let column = || -> Result<String, String> {
        t.column
            .as_ref()
            .map(|c| c.to_lowercase())
            .ok_or_else(|| err("a \"column\" (the distribution column) is required".into()))
    };
    let kind = match t.method.as_str() {
        "reference" => TableKind::Reference,
        "hash" => {
            let modulus = t
                .shards
                .ok_or_else(|| err("hash tables need \"shards\"".into()))?;
            if modulus == 0 || modulus > 4096 {
                return Err(err("\"shards\" must be between 1 and 4096".into()));
            }
            let func = match t.hash.as_deref() {
                None | Some("postgres") | Some("postgresql") => HashFunc::Postgres,
                Some("siphash") => HashFunc::SipHash,
                Some(other) => {
                    return Err(err(format!(
                        "unknown hash \"{other}\" (postgres or siphash)"
                    )))
                }
            };
            let placement = match &t.placement {
                Some(p) => {
                    if p.len() as u64 != modulus {
                        return Err(err(format!(
                            "placement lists {} nodes but there are {modulus} shards",
                            p.len()
                        )));
                    }
                    p.iter()
                        .map(|n| node_index(&t.name, n))
                        .collect::<Result<Vec<_>, _>>()?
                }
                None => (0..modulus as usize).map(|r| r % node_count).collect(),
            };
            TableKind::Hash {
                modulus,
                func,
                placement,
            }
        }
        "range" => {
            let ranges = t
                .ranges
                .as_ref()
                .filter(|r| !r.is_empty())
                .ok_or_else(|| err("range tables need \"ranges\"".into()))?;
            let mut out = Vec::new();
            let mut default = None;
            for r in ranges {
                let node = node_index(&t.name, &r.node)?;
                if r.default {
                    if default.replace(node).is_some() {
                        return Err(err("more than one default range".into()));
                    }
                    continue;
                }
                let lo = bound(r.from.as_ref(), key_type, &err, "from")?;
                let hi = bound(r.to.as_ref(), key_type, &err, "to")?;
                out.push((lo, hi, node));
            }
            TableKind::range(out, default).map_err(err)?
        }
        "list" => {
            let lists = t
                .lists
                .as_ref()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| err("list tables need \"lists\"".into()))?;
            let mut out = Vec::new();
            let mut default = None;
            for l in lists {
                let node = node_index(&t.name, &l.node)?;
                if l.default {
                    if default.replace(node).is_some() {
                        return Err(err("more than one default list".into()));
                    }
                    continue;
                }
                if l.values.is_empty() {
                    return Err(err("a list entry needs \"values\" or default = true".into()));
                }
                let values = l
                    .values
                    .iter()
                    .map(|v| literal(v, key_type).map_err(&err))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push((values, node));
            }
            TableKind::list(out, default).map_err(err)?
        }
        other => {
            return Err(err(format!(
                "unknown method \"{other}\" (hash, range, list or reference)"
            )))
        }
    };
    let column = match kind {
        TableKind::Reference => t.column.clone().unwrap_or_default().to_lowercase(),
        _ => column()?,
    };
    Ok(TableDist::new(name.to_string(), column, key_type, kind))
}

fn bound(
    v: Option<&toml::Value>,
    key_type: Option<KeyType>,
    err: &dyn Fn(String) -> String,
    which: &str,
) -> Result<Bound, String> {
    match v {
        None => Err(err(format!("a range needs \"{which}\""))),
        Some(toml::Value::String(s)) if s.eq_ignore_ascii_case("MINVALUE") => Ok(Bound::Min),
        Some(toml::Value::String(s)) if s.eq_ignore_ascii_case("MAXVALUE") => Ok(Bound::Max),
        Some(v) => Ok(Bound::Value(literal(v, key_type).map_err(err)?)),
    }
}

/// A bound or list value from the config. Without a declared type the value's own TOML type
/// decides: integers are int8, strings that read as dates are dates, other strings text.
fn literal(v: &toml::Value, key_type: Option<KeyType>) -> Result<KeyValue, String> {
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => return Err(format!("value {other} is neither a string nor an integer")),
    };
    let ty = key_type.unwrap_or_else(|| match v {
        toml::Value::Integer(_) => KeyType::Int8,
        _ => KeyType::guess_from_text(&text),
    });
    KeyValue::parse_text(ty, &text).map_err(|e| e.message)
}
