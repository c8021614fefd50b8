//! The config file's sections as written (serde), each refusing keys it does not know, and the
//! reading of the file section by section so that an error names the section and the table.

use serde::de::DeserializeOwned;
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct RawConfig {
    pub server: ServerSection,
    pub users: Vec<UserSection>,
    pub nodes: Vec<NodeSection>,
    pub tables: Vec<TableSection>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: String,
    pub default_node: Option<String>,
    /// tracing filter, e.g. "info" or "shardgate=debug"; RUST_LOG wins when set.
    pub log_level: Option<String>,
    /// "text" (default) or "json".
    pub log_format: Option<String>,
    /// Connections per worker node in each pool.
    pub pool_size: Option<u32>,
    /// Most rows any coordinator-side buffer (sort, hash aggregate, DISTINCT) may hold.
    pub max_buffered_rows: Option<usize>,
    /// Bytes of a held result (a portal fetched in batches, a cursor's rows) kept in memory;
    /// the rest goes to a temporary file.
    pub spool_memory_bytes: Option<usize>,
    /// Most bytes one held result may put in its temporary file.
    pub max_spool_bytes: Option<u64>,
    /// Directory of those files (default: the system's temporary directory).
    pub spool_dir: Option<String>,
    /// Seconds to wait for a worker connection or a worker's reply before giving up.
    pub worker_timeout_secs: Option<u64>,
    /// Most concurrent client sessions.
    pub max_clients: Option<usize>,
    /// Runtime threads (default: one per core).
    pub threads: Option<usize>,
    /// Seconds to wait for a worker's next reply message before giving up on the statement.
    pub query_timeout_secs: Option<u64>,
    /// Start even when a node is unreachable at start (it is named in the log).
    pub start_degraded: Option<bool>,
    /// PEM files for TLS towards clients: both or neither.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Refuse clients that do not ask for TLS.
    pub tls_required: Option<bool>,
    /// Seconds a connection has to finish startup and authentication.
    pub auth_timeout_secs: Option<u64>,
    /// Largest protocol message accepted from a client.
    pub max_message_bytes: Option<usize>,
    /// Byte bound of the statement analysis cache.
    pub analysis_cache_bytes: Option<usize>,
    /// Statements nested deeper are refused (54001).
    pub max_expression_depth: Option<usize>,
    pub health_check_interval_ms: Option<u64>,
    pub health_check_timeout_ms: Option<u64>,
    /// TCP keepalive on worker and client sockets.
    pub tcp_keepalive_secs: Option<u64>,
    /// The node holding shardgate's catalog (the `shardgate` schema): the default node unless set.
    pub catalog_node: Option<String>,
    /// Seconds between runs of prepared-transaction recovery (it also runs at start).
    pub recovery_interval_secs: Option<u64>,
    /// plan_cache_mode of the data path's worker connections ("" leaves the workers' own).
    pub worker_plan_cache_mode: Option<String>,
    /// Run simple-protocol SELECTs whose literals may be parameters as prepared statements on
    /// their worker (default true).
    pub prepare_simple_lookups: Option<bool>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub name: String,
    pub password: String,
    /// Most concurrent sessions of this user.
    pub max_connections: Option<usize>,
    /// The role this user's statements run as on the workers (its privileges, its
    /// `current_user`), instead of the role in the nodes' URLs, which shardgate keeps for its
    /// own work (catalog, two-phase commit, health).
    pub role: Option<String>,
    /// That role's password on the workers, if they ask for one.
    pub role_password: Option<String>,
    /// How the user proves its password: "scram-sha-256" (the default) or "md5".
    pub auth: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct RangeSection {
    pub from: Option<toml::Value>,
    pub to: Option<toml::Value>,
    #[serde(default)]
    pub default: bool,
    pub node: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    #[serde(default)]
    pub values: Vec<toml::Value>,
    #[serde(default)]
    pub default: bool,
    pub node: String,
}

const TOP_LEVEL: [&str; 4] = ["server", "users", "nodes", "tables"];

/// Reads the file one section at a time: TOML syntax errors keep toml's line and column; a
/// section's own errors (unknown or missing keys, wrong types) name the section, and for
/// `[[users]]`, `[[nodes]]` and `[[tables]]` the entry by its name (or its position when the
/// name itself is what is wrong).
pub fn read(text: &str) -> Result<RawConfig, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| format!("config: {e}"))?;
    if let Some(k) = doc.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(format!(
            "config: unknown top-level key \"{k}\" (expected [server], [[users]], [[nodes]], [[tables]])"
        ));
    }
    let server = match doc.remove("server") {
        Some(v) => v
            .try_into::<ServerSection>()
            .map_err(|e| format!("config: [server]: {}", e.message()))?,
        None => return Err("config: a [server] section with \"listen\" is required".into()),
    };
    Ok(RawConfig {
        server,
        users: entries(doc.remove("users"), "users", "user")?,
        nodes: entries(doc.remove("nodes"), "nodes", "node")?,
        tables: entries(doc.remove("tables"), "tables", "table")?,
    })
}

fn entries<T: DeserializeOwned>(
    v: Option<toml::Value>,
    section: &str,
    what: &str,
) -> Result<Vec<T>, String> {
    let items = match v {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            return Err(format!(
                "config: \"{section}\" must be written [[{section}]]"
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let name = item
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let entry = match &name {
            Some(n) => format!("{what} \"{n}\""),
            None => format!("[[{section}]] entry {}", i + 1),
        };
        let parsed = item
            .try_into::<T>()
            .map_err(|e| format!("config: {entry}: {}", e.message()))?;
        out.push(parsed);
    }
    Ok(out)
}
