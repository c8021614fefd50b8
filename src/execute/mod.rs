//! Runs plans on the workers: pools per node, the shared state every session uses, and the
//! combination of several nodes' replies into one.

pub mod backend;
pub mod combine;
pub mod health;
pub mod pool;
pub mod rows;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use crate::analyze::cache::AnalysisCache;
use crate::config::Config;
use crate::error::{SgError, SgResult};
use backend::Target;
use pool::{Manager, Pool, Pooled};

/// What every session shares.
pub struct Shared {
    pub config: Config,
    /// Connections as the nodes' URLs name their role: shardgate's own work, and the
    /// sessions of users without a `role`.
    pub pools: Vec<Pool>,
    /// Per user with a `role`: connections as that role, for its sessions' statements.
    pub role_pools: HashMap<String, Vec<Pool>>,
    pub targets: Vec<Target>,
    pub node_names: Vec<String>,
    pub cache: AnalysisCache,
    /// ParameterStatus values a client gets at startup: the default node's.
    pub server_params: Vec<(String, String)>,
    /// The workers sort text in C (byte) order, so shardgate's merges can too.
    pub c_collation: bool,
    /// The default node's superuser roles, for the `is_superuser` a mapped user is told.
    pub superusers: std::collections::HashSet<String>,
    /// Sessions by the process id in their BackendKeyData: their secret and the worker
    /// connections they hold (host, port, worker pid, worker secret), for CancelRequest.
    cancels: std::sync::Mutex<HashMap<i32, (i32, Active)>>,
    /// Held while the function names load (see `reload_functions`).
    functions_loading: tokio::sync::Mutex<()>,
    /// Ids for this process's two-phase commits.
    pub gids: crate::catalog::transactions::Gids,
    /// Tables' columns, for the defaults shardgate fills (`plan::fill`).
    pub columns: crate::catalog::columns::ColumnCache,
}

/// The worker connections a session holds right now, as CancelRequest needs them.
pub type Active = Arc<std::sync::Mutex<Vec<(String, u16, i32, i32)>>>;

impl Shared {
    pub async fn new(config: Config) -> Result<Arc<Shared>, String> {
        let timeout = Duration::from_secs(config.worker_timeout_secs);
        let build = |target: &Target| {
            bb8::Pool::builder()
                .max_size(config.pool_size)
                .min_idle(Some(0))
                .test_on_check_out(false)
                // The most recently used backend is the one whose PostgreSQL process has warm
                // caches and is likely still on a CPU; FIFO would cycle through all of them.
                .queue_strategy(bb8::QueueStrategy::Lifo)
                // A node that refuses connections is an error now, not after retries until
                // connection_timeout; the health check says when it is back.
                .retry_connection(false)
                .connection_timeout(timeout)
                .build_unchecked(Manager {
                    target: target.clone(),
                })
        };
        let mut pools = Vec::new();
        let mut targets = Vec::new();
        for (i, n) in config.nodes.iter().enumerate() {
            let mut target = Target::from_url(
                i,
                &n.name,
                &n.url,
                timeout,
                Duration::from_secs(config.query_timeout_secs),
            )?;
            // The data path's connections: a session's own SET plan_cache_mode still wins, and
            // its RESET comes back to this (a startup option is the reset value, guc.c).
            // The node URL's own `options` come after, so a setting made there for one node
            // wins (PostgreSQL applies startup -c settings in order).
            let cache =
                (config.worker_plan_cache_mode.as_ref()).map(|m| format!("-c plan_cache_mode={m}"));
            target.options = match (cache, target.options.take()) {
                (Some(c), Some(u)) => Some(format!("{c} {u}")),
                (c, u) => c.or(u),
            };
            let pool = build(&target);
            health::spawn(
                target.clone(),
                Duration::from_millis(config.health_check_interval_ms.max(10)),
                Duration::from_millis(config.health_check_timeout_ms.max(10)),
            );
            pools.push(pool);
            targets.push(target);
        }
        // A user's role connects to the same nodes (their health shared) as another login.
        let mut role_pools = HashMap::new();
        for (user, (role, password)) in &config.user_roles {
            let as_role: Vec<Pool> = targets
                .iter()
                .map(|t| {
                    build(&Target {
                        user: role.clone(),
                        password: password.as_ref().map(|p| p.as_bytes().to_vec()),
                        ..t.clone()
                    })
                })
                .collect();
            role_pools.insert(user.clone(), as_role);
        }
        let node_names = config.nodes.iter().map(|n| n.name.clone()).collect();
        let mut server_params = Vec::new();
        let mut c_collation = false;
        let mut superusers = std::collections::HashSet::new();
        let mut functions = crate::catalog::functions::Functions::default();
        // The default node's own parameters, so clients see the workers' server_version.
        match backend::Backend::connect(&targets[config.default_node]).await {
            Ok(mut b) => {
                if let Ok(frames) = b
                    .run("SELECT datcollate FROM pg_database WHERE datname = current_database()")
                    .await
                {
                    c_collation = frames.iter().any(|f| {
                        f.tag == crate::protocol::backend::DATA_ROW
                            && rows::columns(f)
                                .ok()
                                .and_then(|c| c.into_iter().next().flatten())
                                .is_some_and(|v| &v[..] == b"C" || &v[..] == b"POSIX")
                    });
                }
                if let Ok(frames) = b.run("SELECT rolname FROM pg_roles WHERE rolsuper").await {
                    for f in frames
                        .iter()
                        .filter(|f| f.tag == crate::protocol::backend::DATA_ROW)
                    {
                        if let Some(Some(v)) =
                            rows::columns(f).ok().and_then(|c| c.into_iter().next())
                        {
                            superusers.insert(String::from_utf8_lossy(&v).to_string());
                        }
                    }
                }
                match crate::catalog::functions::Functions::load(&mut b).await {
                    Ok(f) => functions = f,
                    Err(e) => tracing::warn!("could not read the default node's functions: {e}"),
                }
                for k in [
                    "server_version",
                    "server_encoding",
                    "client_encoding",
                    "DateStyle",
                    "IntervalStyle",
                    "TimeZone",
                    "integer_datetimes",
                    "standard_conforming_strings",
                    "is_superuser",
                ] {
                    if let Some(v) = b.server_params.get(k) {
                        server_params.push((k.to_string(), v.clone()));
                    }
                }
            }
            Err(e) => tracing::warn!("default node unreachable at start: {e}"),
        }
        if server_params.is_empty() {
            server_params.push(("server_version".into(), "15.0".into()));
            server_params.push(("client_encoding".into(), "UTF8".into()));
            server_params.push(("standard_conforming_strings".into(), "on".into()));
            server_params.push(("integer_datetimes".into(), "on".into()));
            server_params.push(("DateStyle".into(), "ISO, MDY".into()));
        }
        let limits = crate::analyze::cache::Limits {
            cache_bytes: config.analysis_cache_bytes,
            in_flight_bytes: config.analysis_cache_bytes.saturating_mul(32),
            max_depth: config.max_expression_depth,
        };
        let cache = AnalysisCache::new(limits);
        cache.set_functions(functions);
        // The catalog's tables must exist before the first two-phase commit; if the catalog
        // node is down now, recovery creates them when it answers.
        let catalog_url = &config.nodes[config.catalog_node].url;
        if let Err(e) = crate::catalog::transactions::ensure_schema(catalog_url, timeout).await {
            tracing::warn!("cannot create the shardgate catalog schema yet: {e}");
        }
        // Tables created with PARTITION BY through shardgate, from the catalog.
        match crate::catalog::partitions::reload(&config, &config.shardmap).await {
            Ok(_) => {}
            Err(e) if e.contains("both in the config") => return Err(e),
            Err(e) => tracing::warn!("cannot read shardgate's catalog yet: {e}"),
        }
        Ok(Arc::new(Shared {
            gids: Default::default(),
            columns: Default::default(),
            config,
            pools,
            role_pools,
            targets,
            node_names,
            cache,
            functions_loading: Default::default(),
            server_params,
            c_collation,
            superusers,
            cancels: Default::default(),
        }))
    }

    /// Reads the shard map of partitioned tables from the catalog again; analyses made with
    /// the old map are forgotten when it changed.
    pub async fn reload_map(&self) -> Result<(), String> {
        if crate::catalog::partitions::reload(&self.config, &self.config.shardmap).await? {
            self.cache.clear();
            self.columns.forget();
        }
        Ok(())
    }

    pub fn register(&self, pid: i32, secret: i32) -> Active {
        let active = Active::default();
        if let Ok(mut m) = self.cancels.lock() {
            m.insert(pid, (secret, active.clone()));
        }
        active
    }

    pub fn deregister(&self, pid: i32) {
        if let Ok(mut m) = self.cancels.lock() {
            m.remove(&pid);
        }
    }

    /// A client's CancelRequest: forwarded to every worker connection its session holds.
    /// Like PostgreSQL, a request with a wrong key is ignored without a word.
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let targets = match self.cancels.lock() {
            Ok(m) => match m.get(&pid) {
                Some((s, active)) if *s == secret => {
                    active.lock().map(|a| a.clone()).unwrap_or_default()
                }
                _ => return,
            },
            Err(_) => return,
        };
        for (host, port, wpid, wsecret) in targets {
            let mut buf = bytes::BytesMut::new();
            postgres_protocol::message::frontend::cancel_request(wpid, wsecret, &mut buf);
            let send = async {
                let mut s = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tokio::io::AsyncWriteExt::write_all(&mut s, &buf).await
            };
            if let Err(e) = tokio::time::timeout(Duration::from_secs(5), send).await {
                tracing::debug!("cancel to {host}:{port} failed: {e}");
            }
        }
    }

    /// Reads the default node's function names again: a statement called a name the last
    /// load did not have, or DDL ran. One load at a time; a caller that waited for another's
    /// load does not repeat it unless `force`d. True when the names changed (cached analyses
    /// were forgotten; the statement must be analysed again).
    pub async fn reload_functions(&self, force: bool) -> bool {
        use crate::catalog::functions::Functions;
        let before = self.cache.functions();
        let _one = self.functions_loading.lock().await;
        if !force && !Arc::ptr_eq(&before, &self.cache.functions()) {
            // Loaded while this waited.
            return true;
        }
        let Ok(mut c) = self.acquire(self.config.default_node).await else {
            return false;
        };
        match Functions::load(&mut c).await {
            Ok(f) => {
                let changed = !self.cache.functions().same_names(&f);
                self.cache.set_functions(f);
                changed
            }
            Err(e) => {
                c.broken = true;
                tracing::debug!("could not reload function names: {e}");
                false
            }
        }
    }

    /// A connection to `node` that is ready for a statement: fails fast with 08006 while the
    /// node is down (or when it falls while this waits), and never hands out a connection the
    /// worker closed or that predates the node's last fall.
    pub async fn acquire(&self, node: usize) -> SgResult<Pooled> {
        self.acquire_from(&self.pools, node).await
    }

    /// As [`acquire`], for a session of `user`: as the user's worker role when it has one.
    pub async fn acquire_for(&self, user: &str, node: usize) -> SgResult<Pooled> {
        match self.role_pools.get(user) {
            Some(pools) => self.acquire_from(pools, node).await,
            None => self.acquire(node).await,
        }
    }

    async fn acquire_from(&self, pools: &[Pool], node: usize) -> SgResult<Pooled> {
        let (pool, target) = pools
            .get(node)
            .zip(self.targets.get(node))
            .ok_or_else(|| SgError::internal(format!("no pool for node {node}")))?;
        let health = &target.health;
        if !health.is_up() {
            return Err(health.down_error());
        }
        let mut down = health.watch();
        let generation = *down.borrow();
        let name = &self.node_names[node];
        // Each stale connection found is dropped; a pool holds at most pool_size of them.
        for _ in 0..=self.config.pool_size {
            // The pool first: an idle connection is taken without registering with the
            // health watch.
            let got = tokio::select! {
                biased;
                r = pool.get_owned() => r,
                _ = down.wait_for(|g| *g != generation) => return Err(health.down_error()),
            };
            let mut c = got.map_err(|e| match e {
                bb8::RunError::User(e) => e,
                bb8::RunError::TimedOut => {
                    SgError::worker(name, "timed out waiting for a connection")
                }
            })?;
            if c.is_stale() {
                c.broken = true;
                continue;
            }
            return Ok(c);
        }
        Err(SgError::worker(name, "every pooled connection was stale"))
    }
}
