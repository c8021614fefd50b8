//! The `shardgate` binary: `shardgate --config PATH` serves a cluster; `shardgate local` starts
//! three PostgreSQL workers of its own and serves the example config over them. Both check the
//! config against the workers before they listen, and say "ready" only once clients can query.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use shardgate::config::{Config, LogFormat};
use shardgate::{catalog, config, execute, local, server};

/// The environment variable that overrides `server.listen` (`--listen` wins over it).
const LISTEN_ENV: &str = "SHARDGATE_LISTEN";

#[derive(Parser)]
#[command(
    name = "shardgate",
    version,
    about = "A sharding coordinator that speaks the PostgreSQL protocol"
)]
struct Cli {
    /// The TOML config to serve [default: config/example.toml].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// HOST:PORT to listen on, instead of the config's server.listen (so does $SHARDGATE_LISTEN).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Start even when a node does not answer (the log names it); as server.start_degraded.
    #[arg(long, global = true)]
    degraded: bool,
    /// SQL run through shardgate before "ready" when the first table it creates does not exist
    /// yet [`local`: config/example-schema.sql].
    #[arg(long, global = true)]
    schema: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start PostgreSQL workers under a data folder, serve the config over them, stop them on exit.
    Local {
        /// Where the workers' data lives.
        #[arg(long, default_value = "shardgate-data")]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = (cli.config.clone()).unwrap_or_else(|| PathBuf::from("config/example.toml"));
    let mut cfg = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(2);
        }
    };
    let env_listen = std::env::var(LISTEN_ENV).ok().filter(|s| !s.is_empty());
    let listen_from = match (cli.listen.clone(), env_listen) {
        (Some(l), _) => Some((l, "--listen")),
        (None, Some(l)) => Some((l, LISTEN_ENV)),
        (None, None) => None,
    };
    let listen_from = match listen_from {
        Some((l, from)) => {
            cfg.listen = l;
            from
        }
        None => "server.listen",
    };
    init_logging(&cfg);
    let degraded = cli.degraded || cfg.start_degraded;
    let is_local = matches!(cli.command, Some(Command::Local { .. }));
    let schema = (cli.schema.clone())
        .or_else(|| is_local.then(|| PathBuf::from("config/example-schema.sql")));

    // Kept until the end of main: dropping it stops the workers `local` started.
    let _cluster = match &cli.command {
        Some(Command::Local { data }) => match local::start_for(&cfg, data) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("shardgate: {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    server::install_panic_hook();
    let rt = match server::runtime(cfg.threads, cfg.max_expression_depth) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(cfg, listen_from, degraded, schema, is_local))
}

/// Text for people (colour only when stderr is a terminal and NO_COLOR is unset) or one JSON
/// object per line; on stderr, so stdout carries only the "connect with" line.
fn init_logging(cfg: &Config) {
    let level = cfg.log_level.clone().unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).init()
        }
    }
}

async fn run(
    cfg: Config,
    listen_from: &str,
    degraded: bool,
    schema: Option<PathBuf>,
    is_local: bool,
) -> ExitCode {
    let startup = match catalog::check_workers(&cfg, degraded).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(2);
        }
    };
    for (name, why) in &startup.down {
        tracing::warn!(
            "starting degraded: {why}; statements that need node \"{name}\" fail until it answers"
        );
    }
    let user = cfg.users.iter().next().map(|(u, p)| (u.clone(), p.clone()));
    let db = local::database(&cfg);
    let workers = cfg.nodes.len();
    let listen = cfg.listen.clone();
    let shared = match execute::Shared::new(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shardgate: cannot listen on {listen} (from {listen_from}): {e}");
            return ExitCode::from(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(1);
        }
    };
    // The listener is bound (its port is taken and known) but not accepted on until the schema
    // is in: a client that connects early waits in the backlog and then sees every table.
    let mut schema_note = String::new();
    if let (Some(path), Some((u, p))) = (&schema, &user) {
        match std::fs::read_to_string(path) {
            Err(e) => tracing::warn!("no schema loaded: cannot read {}: {e}", path.display()),
            Ok(sql) => {
                let load = load_privately(shared.clone(), u, p, &db, &sql);
                let loaded = tokio::select! {
                    r = load => r,
                    _ = server::signal() => return ExitCode::from(130),
                };
                match loaded {
                    Ok(local::Loaded::Now) => {
                        tracing::info!("loaded {}", path.display());
                        schema_note = format!("{} loaded, ", path.display());
                    }
                    Ok(local::Loaded::Before(t)) => {
                        schema_note =
                            format!("{} loaded before (table {t} exists), ", path.display())
                    }
                    Err(e) => {
                        eprintln!("shardgate: loading {} failed: {e}", path.display());
                        return ExitCode::from(1);
                    }
                }
            }
        }
    }
    let serving = tokio::spawn(server::serve(shared, listener, server::signal()));
    let answering = workers - startup.down.len();
    let down: Vec<&str> = startup.down.iter().map(|(n, _)| n.as_str()).collect();
    let down = if down.is_empty() {
        String::new()
    } else {
        format!(" (degraded: {} down)", down.join(", "))
    };
    tracing::info!("ready on {addr}: {schema_note}{answering} of {workers} workers answer{down}");
    if let Some((u, p)) = &user {
        println!("connect with: {}", psql_line(addr, u, p, &db, is_local));
    }
    match serving.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("shardgate: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("shardgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// Loads `sql` through a shardgate of its own on an ephemeral loopback port, stopped afterwards.
async fn load_privately(
    shared: std::sync::Arc<execute::Shared>,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> Result<local::Loaded, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("loopback listener: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(server::serve(shared, listener, std::future::pending()));
    let result = local::load_schema(addr, user, password, db, sql).await;
    // The loader's session has ended with its connection; aborting (rather than a shutdown)
    // keeps the drain message out of the log of a server that is only starting.
    task.abort();
    result
}

/// The psql command that reaches this shardgate; it shows the password only for `local`, whose
/// example password the README prints anyway.
fn psql_line(addr: SocketAddr, user: &str, password: &str, db: &str, is_local: bool) -> String {
    let a = local::reachable(addr);
    let pw = if is_local {
        format!("PGPASSWORD={password} ")
    } else {
        String::new()
    };
    format!("{pw}psql -h {} -p {} -U {user} {db}", a.ip(), a.port())
}
