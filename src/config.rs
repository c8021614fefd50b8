//! The TOML configuration: parsed, then checked as a whole so that a wrong config is refused at
//! start with a message naming the table and the problem.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

mod sections;

pub use sections::{
    ListSection, NodeSection, RangeSection, RawConfig, ServerSection, TableSection, UserSection,
};

use crate::shardmap::{Bound, HashFunc, KeyType, KeyValue, ShardMap, TableDist, TableKind};

/// A node as the rest of the program sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub url: String,
}

/// How log lines are written: for people (colour on a terminal) or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: String,
    pub log_level: Option<String>,
    pub log_format: LogFormat,
    /// user name -> password
    pub users: BTreeMap<String, String>,
    /// user name -> most concurrent sessions, for users with `max_connections`
    pub user_limits: BTreeMap<String, usize>,
    /// user name -> the worker role its sessions connect as, and that role's password
    pub user_roles: BTreeMap<String, (String, Option<String>)>,
    /// Users who authenticate with md5 instead of SCRAM-SHA-256.
    pub md5_users: std::collections::BTreeSet<String>,
    pub nodes: Vec<Node>,
    pub default_node: usize,
    pub pool_size: u32,
    pub max_buffered_rows: usize,
    pub spool_memory_bytes: usize,
    pub max_spool_bytes: u64,
    pub spool_dir: Option<std::path::PathBuf>,
    pub worker_timeout_secs: u64,
    pub max_clients: usize,
    pub threads: Option<usize>,
    pub query_timeout_secs: u64,
    /// Start even when a node does not answer at start (`--degraded` sets it too).
    pub start_degraded: bool,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_required: bool,
    pub auth_timeout_secs: u64,
    pub max_message_bytes: usize,
    pub analysis_cache_bytes: usize,
    pub max_expression_depth: usize,
    pub health_check_interval_ms: u64,
    /// plan_cache_mode the data path's worker connections start with (None: the workers' own).
    pub worker_plan_cache_mode: Option<String>,
    /// Simple-protocol keyed SELECTs run on their worker as prepared statements (`analyze::generic`).
    pub prepare_simple_lookups: bool,
    pub health_check_timeout_ms: u64,
    pub tcp_keepalive_secs: u64,
    /// Where shardgate's catalog lives (commit decisions of two-phase commits).
    pub catalog_node: usize,
    pub recovery_interval_secs: u64,
    pub shardmap: ShardMap,
}

const MIB_64: usize = 64 * 1024 * 1024;

pub fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<Config, String> {
    check(sections::read(text)?)
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
    let catalog_node = match &raw.server.catalog_node {
        Some(n) => node_index("(server.catalog_node)", n)?,
        None => default_node,
    };
    let mut users = BTreeMap::new();
    let mut user_limits = BTreeMap::new();
    let mut user_roles = BTreeMap::new();
    let mut md5_users = std::collections::BTreeSet::new();
    for u in &raw.users {
        if users.insert(u.name.clone(), u.password.clone()).is_some() {
            return Err(format!("config: user \"{}\" is listed twice", u.name));
        }
        if let Some(n) = u.max_connections {
            user_limits.insert(u.name.clone(), n);
        }
        match (&u.role, &u.role_password) {
            (Some(r), p) if !r.is_empty() => {
                user_roles.insert(u.name.clone(), (r.clone(), p.clone()));
            }
            (Some(_), _) => return Err(format!("config: user \"{}\": role is empty", u.name)),
            (None, Some(_)) => {
                return Err(format!(
                    "config: user \"{}\": role_password without a role",
                    u.name
                ))
            }
            (None, None) => {}
        }
        match u.auth.as_deref() {
            None | Some("scram-sha-256") => {}
            Some("md5") => {
                md5_users.insert(u.name.clone());
            }
            Some(other) => {
                return Err(format!(
                "config: user \"{}\": auth \"{other}\" is neither \"scram-sha-256\" nor \"md5\"",
                u.name
            ))
            }
        }
    }
    let s = &raw.server;
    let log_format = match s.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(format!(
                "config: [server]: log_format \"{other}\" is neither \"text\" nor \"json\""
            ))
        }
    };
    let tls_required = s.tls_required.unwrap_or(false);
    match (&s.tls_cert, &s.tls_key) {
        (Some(_), None) => {
            return Err("config: [server]: tls_cert is set but tls_key is not".into())
        }
        (None, Some(_)) => {
            return Err("config: [server]: tls_key is set but tls_cert is not".into())
        }
        (None, None) if tls_required => {
            return Err("config: [server]: tls_required = true needs tls_cert and tls_key".into())
        }
        _ => {}
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
        log_format,
        users,
        user_limits,
        user_roles,
        md5_users,
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
        spool_memory_bytes: raw.server.spool_memory_bytes.unwrap_or(4 << 20),
        max_spool_bytes: raw.server.max_spool_bytes.unwrap_or(16 << 30),
        spool_dir: raw.server.spool_dir.clone().map(Into::into),
        worker_timeout_secs: raw.server.worker_timeout_secs.unwrap_or(30).max(1),
        max_clients: raw.server.max_clients.unwrap_or(1000).max(1),
        threads: raw.server.threads,
        query_timeout_secs: raw.server.query_timeout_secs.unwrap_or(3600).max(1),
        start_degraded: s.start_degraded.unwrap_or(false),
        tls_cert: s.tls_cert.clone(),
        tls_key: s.tls_key.clone(),
        tls_required,
        auth_timeout_secs: s.auth_timeout_secs.unwrap_or(10).max(1),
        max_message_bytes: s.max_message_bytes.unwrap_or(MIB_64),
        analysis_cache_bytes: s.analysis_cache_bytes.unwrap_or(MIB_64),
        max_expression_depth: s.max_expression_depth.unwrap_or(10_000),
        health_check_interval_ms: s.health_check_interval_ms.unwrap_or(1000).max(1),
        health_check_timeout_ms: s.health_check_timeout_ms.unwrap_or(2000).max(1),
        tcp_keepalive_secs: s.tcp_keepalive_secs.unwrap_or(10),
        catalog_node,
        recovery_interval_secs: s.recovery_interval_secs.unwrap_or(5).max(1),
        worker_plan_cache_mode: plan_cache_mode(s.worker_plan_cache_mode.as_deref())?,
        prepare_simple_lookups: s.prepare_simple_lookups.unwrap_or(true),
        shardmap: ShardMap::new(tables, raw.nodes.len(), default_node),
    })
}

/// A prepared statement on a partitioned table gets a custom plan per execution under
/// PostgreSQL's `auto` (plancache.c choose_custom_plan: the generic plan's cost sums every
/// partition), so the workers plan every routed lookup again; a generic plan prunes the
/// partitions at executor start-up and costs what a plain table's does.
fn plan_cache_mode(v: Option<&str>) -> Result<Option<String>, String> {
    match v.unwrap_or("force_generic_plan") {
        "" => Ok(None),
        m @ ("auto" | "force_generic_plan" | "force_custom_plan") => Ok(Some(m.to_string())),
        other => Err(format!(
            "config: server.worker_plan_cache_mode: \"{other}\" is not one of auto, force_generic_plan, force_custom_plan or \"\""
        )),
    }
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
