//! The `shardgate` binary: `shardgate --config PATH` serves a cluster; `shardgate local` starts
//! three PostgreSQL workers of its own and serves the example config over them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use shardgate::{catalog, config, execute, local, server};

#[derive(Parser)]
#[command(
    name = "shardgate",
    version,
    about = "A sharding coordinator that speaks the PostgreSQL protocol"
)]
struct Cli {
    /// The TOML config to serve.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
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
        /// SQL loaded through shardgate when its first table does not exist yet.
        #[arg(long, default_value = "config/example-schema.sql")]
        schema: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("config/example.toml"));
    let cfg = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(cfg.log_level.clone().unwrap_or_else(|| "info".into())));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let _cluster = match &cli.command {
        Some(Command::Local { data, .. }) => {
            let mut nodes = Vec::new();
            for n in &cfg.nodes {
                let port = match port_of(&n.url) {
                    Some(p) => p,
                    None => {
                        eprintln!("shardgate: node \"{}\" has no port in its url", n.name);
                        return ExitCode::from(2);
                    }
                };
                nodes.push((n.name.clone(), port));
            }
            let db = cfg
                .nodes
                .first()
                .and_then(|n| n.url.rsplit('/').next())
                .unwrap_or("postgres")
                .to_string();
            let specs: Vec<(&str, u16)> = nodes.iter().map(|(n, p)| (n.as_str(), *p)).collect();
            match local::LocalCluster::start(data, &specs, &db) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("shardgate: starting local workers failed: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        None => None,
    };

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(async move {
        if let Err(e) = catalog::learn_key_types(&cfg).await {
            eprintln!("shardgate: {e}");
            return ExitCode::from(2);
        }
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
                eprintln!("shardgate: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!("shardgate listening on {listen}");
        if let Some(Command::Local { schema, .. }) = &cli.command {
            let user = shared
                .config
                .users
                .iter()
                .next()
                .map(|(u, p)| (u.clone(), p.clone()));
            if let (Some((user, password)), Ok(sql)) = (user, std::fs::read_to_string(schema)) {
                let addr = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or(listen.clone());
                tokio::spawn(load_schema(addr, user, password, sql));
            }
        }
        match server::serve(shared, listener, server::signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("shardgate: {e}");
                ExitCode::from(1)
            }
        }
    });
    code
}

fn port_of(url: &str) -> Option<u16> {
    use std::str::FromStr;
    tokio_postgres::Config::from_str(url)
        .ok()?
        .get_ports()
        .first()
        .copied()
}

/// `local`: loads the example schema through shardgate itself, once.
async fn load_schema(addr: String, user: String, password: String, sql: String) {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return;
    };
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(host)
        .port(port.parse().unwrap_or(6432))
        .user(&user)
        .password(&password)
        .dbname("app");
    let Ok((client, conn)) = cfg.connect(tokio_postgres::NoTls).await else {
        tracing::warn!("could not connect to load the example schema");
        return;
    };
    tokio::spawn(conn);
    let first_table = sql
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("TABLE"))
        .nth(1)
        .unwrap_or("")
        .to_string();
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_tables WHERE tablename = $1",
            &[&first_table],
        )
        .await;
    if matches!(exists, Ok(None)) {
        match client.batch_execute(&sql).await {
            Ok(()) => tracing::info!("loaded the example schema and rows"),
            Err(e) => tracing::warn!("loading the example schema failed: {e}"),
        }
    }
}
