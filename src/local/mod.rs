//! Throwaway local PostgreSQL worker servers on loopback (initdb, pg_ctl start/stop, psql), used by `shardgate local` and the integration tests.

mod host;
mod serve;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use host::{free_ports, pg_bindir, pg_libdir};
pub use serve::{database, load_schema, reachable, start_for, Loaded};

use host::{
    check, euid_is_root, has_pg_stat_statements, pg_cmd, pg_ctl_stop, pid_is_postgres, port_open,
    prepare_root_for_postgres, run,
};

const CONF_MARKER: &str = "# --- shardgate local settings (rewritten on every start) ---";

/// PostgreSQL servers started (or reused) by [`LocalCluster::start`]; stopped on drop.
#[derive(Debug)]
pub struct LocalCluster {
    nodes: Vec<LocalNode>,
    /// Parallel to `nodes`: true if this cluster started that server (and so must stop it).
    started: Vec<bool>,
    root: PathBuf,
    bindir: PathBuf,
    as_postgres: bool,
}

/// One worker server: listens on 127.0.0.1:`port`, data in `data_dir`.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl LocalCluster {
    /// Start (initdb if the data dir is new) one PostgreSQL per port under `root`
    /// (root/<name>/data), create database `db` on each if missing, return when all accept connections.
    pub fn start(root: &Path, nodes: &[(&str, u16)], db: &str) -> io::Result<LocalCluster> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        for (name, _) in nodes {
            std::fs::create_dir_all(root.join(name))?;
        }
        let as_postgres = euid_is_root();
        if as_postgres {
            tracing::info!("running as root: PostgreSQL commands run as user `postgres`");
            prepare_root_for_postgres(&root)?;
        }
        let bindir = pg_bindir()?;
        let pgss = has_pg_stat_statements(&bindir);
        let (nodes_out, started) = (Vec::new(), Vec::new());
        let mut cluster = LocalCluster {
            nodes: nodes_out,
            started,
            root,
            bindir,
            as_postgres,
        };
        // Nodes come up in parallel; on error `cluster` is dropped, which stops those that did start.
        let results: Vec<io::Result<(LocalNode, bool)>> = std::thread::scope(|s| {
            let c = &cluster;
            let handles: Vec<_> = (nodes.iter())
                .map(|&(name, port)| s.spawn(move || c.start_node(name, port, db, pgss)))
                .collect();
            let panicked = || Err(io::Error::other("node start thread panicked"));
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| panicked()))
                .collect()
        });
        let mut first_err = None;
        for r in results {
            match r {
                Ok((node, started)) => {
                    cluster.nodes.push(node);
                    cluster.started.push(started);
                }
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        first_err.map_or(Ok(cluster), Err)
    }

    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    /// libpq URL for node i, e.g. postgresql://postgres@127.0.0.1:PORT/db ("" if i is out of range).
    pub fn url(&self, i: usize, db: &str) -> String {
        let port = self.nodes.get(i).map(|n| n.port);
        port.map_or(String::new(), |p| {
            format!("postgresql://postgres@127.0.0.1:{p}/{db}")
        })
    }

    /// Run SQL with psql on node i, database db (psql -X -q -At -v ON_ERROR_STOP=1, SQL on stdin);
    /// returns stdout without trailing newlines. Errors carry psql's stderr.
    pub fn psql(&self, i: usize, db: &str, sql: &str) -> io::Result<String> {
        let no_node = || io::Error::new(io::ErrorKind::InvalidInput, format!("no local node {i}"));
        self.psql_port(self.nodes.get(i).ok_or_else(no_node)?.port, db, sql)
    }

    /// The postmaster's process id of node i, from its postmaster.pid.
    pub fn pid(&self, i: usize) -> Option<i32> {
        let node = self.nodes.get(i)?;
        let text = std::fs::read_to_string(node.data_dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// `pg_ctl stop -m fast` for node i alone (the failure tests stop a worker and start it
    /// again with [`LocalCluster::restart_node`]).
    pub fn stop_node(&self, i: usize) -> io::Result<()> {
        let no_node = || io::Error::new(io::ErrorKind::InvalidInput, format!("no local node {i}"));
        let node = self.nodes.get(i).ok_or_else(no_node)?;
        pg_ctl_stop(&self.bindir, self.as_postgres, &self.root, &node.data_dir)
    }

    /// Starts node i again after a stop or a crash (a stale postmaster.pid is removed).
    pub fn restart_node(&self, i: usize) -> io::Result<()> {
        let no_node = || io::Error::new(io::ErrorKind::InvalidInput, format!("no local node {i}"));
        let node = self.nodes.get(i).ok_or_else(no_node)?;
        let pgss = has_pg_stat_statements(&self.bindir);
        self.start_node(&node.name, node.port, "app", pgss)
            .map(|_| ())
    }

    /// `pg_ctl stop -m fast` for every node this cluster started (reused servers keep running); idempotent.
    pub fn stop(&mut self) {
        for (node, started) in self.nodes.iter().zip(self.started.iter_mut()) {
            if std::mem::take(started) {
                tracing::info!(node = %node.name, port = node.port, "stopping local PostgreSQL");
                let stop = pg_ctl_stop(&self.bindir, self.as_postgres, &self.root, &node.data_dir);
                if let Err(e) = stop {
                    tracing::warn!(node = %node.name, "{e}");
                }
            }
        }
    }

    fn start_node(
        &self,
        name: &str,
        port: u16,
        db: &str,
        pgss: bool,
    ) -> io::Result<(LocalNode, bool)> {
        let dir = self.root.join(name);
        let data = dir.join("data");
        let node = LocalNode {
            name: name.to_string(),
            port,
            data_dir: data.clone(),
        };
        if !data.join("PG_VERSION").exists() {
            if data.exists() {
                std::fs::remove_dir_all(&data)?; // leftover of a failed initdb
            }
            tracing::info!(node = name, "initdb {}", data.display());
            let mut c = self.cmd("initdb");
            c.arg("-D").arg(&data);
            c.args("-A trust -U postgres -E UTF8 --locale=C --no-sync".split(' '));
            check(run(&mut c)?, "initdb")?;
        }
        let mut status = self.cmd("pg_ctl");
        status.arg("-D").arg(&data).arg("status");
        let running = run(&mut status)?.status.success();
        let listening = port_open(port);
        if running && listening {
            tracing::info!(node = name, port, "reusing running PostgreSQL");
            self.create_db(port, db)?;
            return Ok((node, false));
        }
        let pidfile = data.join("postmaster.pid");
        if running && pid_is_postgres(&pidfile) {
            tracing::warn!(node = name, "running, but not on port {port}: restarting");
            self.stop_data_dir(&data)?;
        } else if pidfile.exists() && !listening {
            tracing::warn!(node = name, "removing stale {}", pidfile.display());
            std::fs::remove_file(&pidfile)?;
            // A crashed postmaster also leaves its socket lock file behind.
            for e in std::fs::read_dir(&dir)?.flatten() {
                if e.file_name().to_string_lossy().starts_with(".s.PGSQL.") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        write_conf(&data.join("postgresql.conf"), &dir, port, pgss)?;
        tracing::info!(node = name, port, "starting PostgreSQL");
        let log = dir.join("node.log");
        let mut c = self.cmd("pg_ctl");
        c.arg("-D").arg(&data).arg("-l").arg(&log);
        if let Err(e) = check(run(c.args(["-w", "-t", "60", "start"]))?, "pg_ctl start") {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            let log = log.display();
            return Err(io::Error::other(format!("{e}\n--- {log} ---\n{tail}")));
        }
        // The server is ours now: stop it again if the database cannot be created.
        if let Err(e) = self.create_db(port, db) {
            let _ = self.stop_data_dir(&data);
            return Err(e);
        }
        Ok((node, true))
    }

    fn stop_data_dir(&self, data: &Path) -> io::Result<()> {
        pg_ctl_stop(&self.bindir, self.as_postgres, &self.root, data)
    }

    fn create_db(&self, port: u16, db: &str) -> io::Result<()> {
        let lit = db.replace('\'', "''");
        let q = format!("SELECT 1 FROM pg_database WHERE datname = '{lit}'");
        if self.psql_port(port, "postgres", &q)? != "1" {
            tracing::info!(port, "creating database {db}");
            let q = format!("CREATE DATABASE \"{}\"", db.replace('"', "\"\""));
            self.psql_port(port, "postgres", &q)?;
        }
        Ok(())
    }

    fn psql_port(&self, port: u16, db: &str, sql: &str) -> io::Result<String> {
        let mut c = self.cmd("psql");
        c.args("-X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -f -".split(' '));
        c.arg("-p").arg(port.to_string()).arg("-d").arg(db);
        c.env("PGCONNECT_TIMEOUT", "10")
            .env("PGCLIENTENCODING", "UTF8");
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (stdin, sql) = (child.stdin.take(), sql.to_string());
        // Feed stdin from a thread so a large result cannot deadlock against a large script.
        let writer = std::thread::spawn(move || stdin.map(|mut s| s.write_all(sql.as_bytes())));
        let out = child.wait_with_output()?;
        let _ = writer.join();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let msg = format!(
                "psql on port {port}, db {db} failed ({}): {}",
                out.status,
                stderr.trim()
            );
            return Err(io::Error::other(msg));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_string())
    }

    fn cmd(&self, tool: &str) -> Command {
        pg_cmd(&self.bindir, self.as_postgres, &self.root, tool)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop()
    }
}

/// Replace our settings block at the end of postgresql.conf (appended once, rewritten on each start).
fn write_conf(conf: &Path, sock_dir: &Path, port: u16, pgss: bool) -> io::Result<()> {
    let mut text = std::fs::read_to_string(conf)?;
    if let Some(i) = text.find(CONF_MARKER) {
        text.truncate(i);
    }
    // Unix socket paths max out at ~107 bytes; we only need TCP, so go without one if too long.
    let sock = sock_dir.display().to_string().replace('\'', "''");
    let sock = if sock.len() > 80 { String::new() } else { sock };
    text += &format!("\n{CONF_MARKER}\nport = {port}\nlisten_addresses = '127.0.0.1'\n");
    text += &format!("unix_socket_directories = '{sock}'\n");
    if pgss {
        text +=
            "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = 'all'\n";
    }
    text +=
        "max_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
    text += "max_prepared_transactions = 100\nlog_min_messages = warning\n";
    std::fs::write(conf, text)
}
