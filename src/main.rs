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
        Some(Command::Local { data }) => {
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
