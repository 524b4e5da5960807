//! `keyfold`: the one binary.
//!
//! * `keyfold dev` — everything on one machine over SQLite under a data folder; bootstraps an
//!   organization and a root user on first start and writes `admin.json`.
//! * `keyfold api --config FILE` — the API against a configured database.
//! * `keyfold signer …` — one signer node of a threshold cluster.
//! * `keyfold admin …` — operator tasks (bootstrap an organization, rotate the JWT key).

mod admin;
mod dev;
mod devcluster;
mod signer;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc: the request path allocates many small short-lived objects (JSON, rows), where
/// it measurably beats glibc's allocator (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "keyfold",
    version,
    about = "Self-hostable wallet-as-a-service speaking the Dfns API"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine (SQLite under the data dir). First start bootstraps an
    /// organization and writes DIR/admin.json.
    Dev {
        #[arg(long, default_value = "./keyfold-data")]
        data_dir: PathBuf,
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[arg(long, env = "KEYFOLD_CONFIG")]
        config: Option<PathBuf>,
        /// Local signer processes to start (threshold 2); 0 runs without keys and wallets.
        /// Ignored when the configuration names a cluster file.
        #[arg(long, default_value_t = 3)]
        signers: usize,
    },
    /// Run the API against the database in the configuration.
    Api {
        #[arg(long, env = "KEYFOLD_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run one signer node (its own database and node key); see `--help`.
    Signer(Box<signer::SignerArgs>),
    /// Log in with an admin file (as written by `keyfold dev`) and print the access token.
    Token {
        #[arg(long, default_value = "./keyfold-data/admin.json")]
        admin_file: PathBuf,
    },
    /// Operator tasks.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Dev {
                data_dir,
                listen,
                config,
                signers,
            } => dev::run(data_dir, listen, config, signers).await,
            Command::Api { config, listen } => dev::run_api(config, listen).await,
            Command::Signer(args) => signer::run(*args).await,
            Command::Token { admin_file } => print_token(&admin_file).await,
            Command::Admin { command } => admin::run(command).await,
        }
    })
}

#[allow(clippy::print_stdout)]
async fn print_token(admin_file: &std::path::Path) -> anyhow::Result<()> {
    let client = keyfold_sdk::Client::from_admin_file(admin_file).await?;
    println!("{}", client.token().unwrap_or_default());
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
