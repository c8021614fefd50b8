//! A shardgate of a test's own, for tests that break things or need other settings than the
//! shared cluster: its own PostgreSQL workers (or none, for tests of the opening alone), its
//! own config, served in-process on the harness runtime. Stopped and removed when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use shardgate::local::LocalCluster;
use tokio_postgres::{Client, NoTls};

pub struct Own {
    pub cluster: Option<LocalCluster>,
    pub root: PathBuf,
    pub worker_ports: Vec<u16>,
    pub port: u16,
    pub shared: Arc<shardgate::execute::Shared>,
}

/// Fast health checks so failure tests see verdicts quickly (the bounds they assert follow).
pub const HEALTH: &str = "health_check_interval_ms = 200\nhealth_check_timeout_ms = 2000\n";

impl Own {
    /// `workers` PostgreSQL servers, `[server]` lines, `[[users]]` entries beyond `app`, and a
    /// hash table `t (id int8 primary key, v text)` in 4 shards with ids 1..=100 loaded.
    pub async fn start(name: &str, workers: usize, server: &str, users: &str) -> Own {
        Self::start_with_tables(name, workers, server, users, "").await
    }

    /// As [`Own::start`], with `tables` (more `[[tables]]` entries) appended to the config.
    pub async fn start_with_tables(
        name: &str,
        workers: usize,
        server: &str,
        users: &str,
        tables: &str,
    ) -> Own {
        let url = |p: u16| format!("postgresql://postgres@127.0.0.1:{p}/app");
        Self::start_custom(name, workers, server, users, tables, &url, &|_, _| {}).await
    }

    /// As [`Own::start_with_tables`], with each node's URL made from its port by `url`, and
    /// `prepare` run on the workers' root directory and ports before shardgate starts.
    pub async fn start_custom(
        name: &str,
        workers: usize,
        server: &str,
        users: &str,
        tables: &str,
        url: &dyn Fn(u16) -> String,
        prepare: &dyn Fn(&std::path::Path, &[u16]),
    ) -> Own {
        let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .to_path_buf();
        let root = target
            .join("test-clusters")
            .join(format!("{name}-{}", std::process::id()));
        let (cluster, ports) = if workers > 0 {
            let ports = shardgate::local::free_ports(workers).expect("ports");
            let names: Vec<String> = (1..=workers).map(|i| format!("w{i}")).collect();
            let specs: Vec<(&str, u16)> = names
                .iter()
                .map(|n| n.as_str())
                .zip(ports.clone())
                .collect();
            let c = LocalCluster::start(&root, &specs, "app").expect("workers start");
            (Some(c), ports)
        } else {
            // A node nobody listens on: the opening and its limits need no worker.
            (None, shardgate::local::free_ports(1).expect("ports"))
        };
        prepare(&root, &ports);
        let mut toml =
            format!("[server]\nlisten = \"127.0.0.1:0\"\nworker_timeout_secs = 5\n{server}\n");
        toml += &format!("[[users]]\nname = \"app\"\npassword = \"app-secret\"\n\n{users}\n");
        for (i, p) in ports.iter().enumerate() {
            toml += &format!(
                "[[nodes]]\nname = \"w{}\"\nurl = \"{}\"\n\n",
                i + 1,
                url(*p)
            );
        }
        toml += "[[tables]]\nname = \"t\"\nmethod = \"hash\"\ncolumn = \"id\"\nshards = 4\ntype = \"int8\"\n";
        toml += tables;
        let cfg = shardgate::config::parse(&toml).expect("config");
        let (shared, port) = super::runtime()
            .spawn(async move {
                let shared = shardgate::execute::Shared::new(cfg).await.expect("shared");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let port = listener.local_addr().expect("addr").port();
                let s = shared.clone();
                tokio::spawn(async move {
                    let _ = shardgate::server::serve(s, listener, std::future::pending()).await;
                });
                (shared, port)
            })
            .await
            .expect("serve");
        let own = Own {
            cluster,
            root,
            worker_ports: ports,
            port,
            shared,
        };
        if workers > 0 {
            let c = own.connect().await.expect("connect");
            c.batch_execute("CREATE TABLE t (id int8 PRIMARY KEY, v text)")
                .await
                .expect("create t");
            let values: Vec<String> = (1..=100).map(|i| format!("({i}, 'v{i}')")).collect();
            c.batch_execute(&format!("INSERT INTO t VALUES {}", values.join(",")))
                .await
                .expect("load t");
        }
        own
    }

    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let dsn = format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=app connect_timeout=20",
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&dsn, NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        self.connect_as("app", "app-secret").await
    }

    /// A direct connection to worker i.
    pub async fn worker(&self, i: usize) -> Client {
        let dsn = format!(
            "host=127.0.0.1 port={} user=postgres dbname=app connect_timeout=10",
            self.worker_ports[i]
        );
        let (client, conn) = tokio_postgres::connect(&dsn, NoTls)
            .await
            .expect("worker connect");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// An id of `t` that worker i holds.
    pub async fn key_on(&self, i: usize) -> i64 {
        let w = self.worker(i).await;
        let row = w
            .query_one("SELECT id FROM t ORDER BY id LIMIT 1", &[])
            .await
            .expect("a row on the worker");
        row.get(0)
    }

    fn cluster(&self) -> &LocalCluster {
        self.cluster.as_ref().expect("workers")
    }

    /// The postmaster of worker i and every process it started.
    pub fn processes(&self, i: usize) -> Vec<i32> {
        let Some(pm) = self.cluster().pid(i) else {
            return Vec::new();
        };
        let mut out = vec![pm];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                // The parent is the second field after the parenthesised command name.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<i32>().ok());
                if ppid == Some(pm) {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// Sends `sig` to worker i's postmaster, then to every process it started (a backend
    /// that exits in between is no longer there to signal).
    pub fn signal(&self, i: usize, sig: &str) {
        let pids = self.processes(i);
        assert!(!pids.is_empty(), "worker {i} has no processes");
        for (n, pid) in pids.iter().enumerate() {
            let st = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("kill");
            assert!(n > 0 || st.success(), "kill -{sig} {pid} (postmaster)");
        }
    }

    pub fn stop_worker(&self, i: usize) {
        self.cluster().stop_node(i).expect("pg_ctl stop");
    }

    pub fn start_worker(&self, i: usize) {
        self.cluster().restart_node(i).expect("pg_ctl start");
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        let n = self.cluster.as_ref().map_or(0, |c| c.nodes().len());
        // A test that failed while a worker was frozen must not leave it frozen.
        for i in 0..n {
            for pid in self.processes(i) {
                let _ = Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
        }
        if let Some(c) = self.cluster.as_mut() {
            c.stop();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The SQLSTATE of an error (empty when it has none).
pub fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_default()
}

/// The message of an error, or its text when it did not come from the server.
pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}
