//! What `shardgate local` adds around serving: workers started from the config's node URLs, and
//! a schema file loaded through shardgate itself, once, before it says "ready".

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use super::LocalCluster;
use crate::config::Config;

/// Starts (or reuses) one local PostgreSQL per `[[nodes]]` entry, on the port its URL names,
/// with the database its URL names, data under `data`.
pub fn start_for(cfg: &Config, data: &Path) -> Result<LocalCluster, String> {
    let mut nodes = Vec::new();
    for n in &cfg.nodes {
        let port = tokio_postgres::Config::from_str(&n.url)
            .ok()
            .and_then(|c| c.get_ports().first().copied())
            .ok_or_else(|| format!("node \"{}\" has no port in its url", n.name))?;
        nodes.push((n.name.as_str(), port));
    }
    LocalCluster::start(data, &nodes, &database(cfg))
        .map_err(|e| format!("starting local workers failed: {e}"))
}

/// The database clients name: the first node's (all example nodes use the same).
pub fn database(cfg: &Config) -> String {
    cfg.nodes
        .first()
        .and_then(|n| tokio_postgres::Config::from_str(&n.url).ok())
        .and_then(|c| c.get_dbname().map(str::to_string))
        .unwrap_or_else(|| "postgres".into())
}

/// Where a client on this machine reaches a listener: the loopback address when it listens on
/// every interface.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// What [`load_schema`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    /// The schema's first table did not exist: every statement ran.
    Now,
    /// The schema's first table exists already (an earlier start loaded it).
    Before(String),
}

/// Runs `sql` through the shardgate at `addr` as `user` when the first table it creates does
/// not exist yet, so a second start (same data folder) keeps the rows it has.
pub async fn load_schema(
    addr: SocketAddr,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> Result<Loaded, String> {
    let addr = reachable(addr);
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(addr.ip().to_string())
        .port(addr.port())
        .user(user)
        .password(password)
        .dbname(db);
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to shardgate at {addr} as \"{user}\": {e}"))?;
    let task = tokio::spawn(conn);
    let first_table = first_created_table(sql);
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_tables WHERE tablename = $1",
            &[&first_table],
        )
        .await
        .map_err(|e| format!("looking for table \"{first_table}\": {e}"))?;
    let result = match exists {
        Some(_) => Ok(Loaded::Before(first_table)),
        None => client
            .batch_execute(sql)
            .await
            .map(|()| Loaded::Now)
            .map_err(|e| match e.as_db_error() {
                Some(d) => format!("{} ({})", d.message(), d.code().code()),
                None => e.to_string(),
            }),
    };
    drop(client);
    let _ = task.await;
    result
}

/// The table named by the first `CREATE TABLE` in `sql`, lower-cased ("" when there is none).
fn first_created_table(sql: &str) -> String {
    let words: Vec<&str> = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect();
    words
        .windows(3)
        .find(|w| w[0].eq_ignore_ascii_case("CREATE") && w[1].eq_ignore_ascii_case("TABLE"))
        .map(|w| {
            w[2].trim_matches(|c: char| c == '(' || c == '"')
                .to_lowercase()
        })
        .unwrap_or_default()
}
