//! `keyfold signer`: one signer node as its own process, with its own database and node key.
//!
//! The node's secrets (its identity key, key shares, aux info, safe primes) are sealed under a
//! key-encryption key (KEK) that comes from `KEYFOLD_SIGNER_KEK` (64 hex) or a file, never
//! from the API. The cluster file pins every member's public keys; the node refuses to start
//! if its own entry does not match its identity, and only ever talks to those members.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use keyfold_domain::ports::NodeStore;
use keyfold_domain::time::SystemClock;
use keyfold_keystore::Kek;
use keyfold_server::cluster::file::ClusterFile;
use keyfold_signer::{NodeConfig, SignerNode};
use keyfold_store::{SqlNodeStore, StoreOptions};

/// Environment variable holding the node KEK (64 hex characters).
pub const KEK_ENV: &str = "KEYFOLD_SIGNER_KEK";
/// Test-only: a JSON file of public safe primes to seed the pool with instead of generating
/// them. Never for real use: primes must be secret to their node.
pub const TEST_PRIMES_ENV: &str = "KEYFOLD_INSECURE_TEST_PRIMES";

#[derive(Debug, Args)]
pub struct SignerArgs {
    /// This signer's id, as in the cluster file.
    #[arg(long)]
    pub id: String,
    /// Where its SQLite database and (by default) its KEK file live.
    #[arg(long, default_value = "./keyfold-signer-data")]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`); default: SQLite under the data dir.
    #[arg(long, env = "KEYFOLD_SIGNER_DATABASE_URL")]
    pub database: Option<String>,
    /// File holding the KEK (64 hex); default DATA_DIR/kek.hex. `KEYFOLD_SIGNER_KEK` wins.
    #[arg(long, env = "KEYFOLD_SIGNER_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
    /// Create the KEK file if it does not exist (first start of a new node).
    #[arg(long)]
    pub create_kek: bool,
    /// The cluster file (see `keyfold_server::cluster::file`).
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// File with the bearer token the coordinator presents.
    #[arg(long, env = "KEYFOLD_SIGNER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub listen: SocketAddr,
    /// Safe-prime sets to keep ready (each new signer group consumes one).
    #[arg(long, default_value_t = 1)]
    pub prime_sets: i64,
    /// Print this node's id and public keys as JSON (creating its identity on first use) and
    /// exit.
    #[arg(long)]
    pub print_identity: bool,
    /// Exit when this process id is no longer our parent (`keyfold dev` passes its own).
    #[arg(long, hide = true)]
    pub parent_pid: Option<u32>,
}

fn kek(args: &SignerArgs) -> anyhow::Result<Kek> {
    if std::env::var_os(KEK_ENV).is_some() {
        return Ok(Kek::from_env(KEK_ENV)?);
    }
    let path = args
        .kek_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kek.hex"));
    if !path.exists() {
        if !args.create_kek {
            bail!(
                "no KEK: set {KEK_ENV}, or create {} (64 hex characters, e.g. `openssl rand -hex 32`), or pass --create-kek",
                path.display()
            );
        }
        let kek = Kek::generate_file(&path)
            .with_context(|| format!("creating KEK file {}", path.display()))?;
        tracing::info!(file = %path.display(), "generated a new node key-encryption key");
        return Ok(kek);
    }
    Kek::from_file(&path).with_context(|| format!("KEK file {}", path.display()))
}

/// The node's database (migrated) and its key-encryption key.
async fn open_store(args: &SignerArgs) -> anyhow::Result<(Arc<SqlNodeStore>, Kek)> {
    crate::dev::create_private_dir(&args.data_dir)?;
    let url = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("signer.db").display()));
    let store = SqlNodeStore::connect(&StoreOptions::new(&url)).await?;
    store.migrate().await?;
    Ok((Arc::new(store), kek(args)?))
}

async fn open_node(args: &SignerArgs) -> anyhow::Result<(Arc<SignerNode>, Arc<SqlNodeStore>)> {
    let (store, kek) = open_store(args).await?;
    let node = SignerNode::open(
        NodeConfig {
            signer_id: args.id.clone(),
            members: vec![],
            prime_sets: args.prime_sets,
            session_ttl: Duration::from_secs(600),
        },
        kek,
        store.clone() as Arc<dyn NodeStore>,
        Arc::new(SystemClock),
    )
    .await
    .map_err(|e| anyhow::anyhow!("opening signer {}: {e}", args.id))?;
    Ok((Arc::new(node), store))
}

#[allow(clippy::print_stdout)]
pub async fn run(args: SignerArgs) -> anyhow::Result<()> {
    if args.print_identity {
        let (store, kek) = open_store(&args).await?;
        let info = SignerNode::identity_info(&args.id, &kek, store.as_ref())
            .await
            .map_err(|e| anyhow::anyhow!("opening signer {}: {e}", args.id))?;
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    let (node, store) = open_node(&args).await?;
    let cluster_path = args
        .cluster
        .as_deref()
        .context("--cluster FILE is required to serve")?;
    let cluster = ClusterFile::read(cluster_path)?;
    let Some(index) = cluster.members.iter().position(|m| m.signer_id == args.id) else {
        bail!(
            "{} is not in the cluster file {}",
            args.id,
            cluster_path.display()
        );
    };
    if cluster.members[index].public != node.info().public {
        bail!(
            "the cluster file pins other public keys for {} than this node's identity; \
             refusing to start (wrong data dir or KEK?)",
            args.id
        );
    }
    node.set_members(cluster.members());
    let token = read_token(args.token_file.as_deref())?;
    if let Some(path) = std::env::var_os(TEST_PRIMES_ENV).filter(|p| !p.is_empty()) {
        seed_test_primes(&node, store.as_ref(), Path::new(&path), index).await?;
    }
    {
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = node.fill_prime_pool().await {
                tracing::error!(error = %e, "safe prime generation failed");
            }
        });
    }
    if let Some(ppid) = args.parent_pid {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if std::os::unix::process::parent_id() != ppid {
                    tracing::warn!("parent process is gone; stopping");
                    std::process::exit(0);
                }
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(signer = %args.id, listen = %listener.local_addr()?, "signer is ready");
    let app = keyfold_server::signer_api::router(node, token);
    keyfold_server::signer_api::serve(listener, app, crate::shutdown_signal()).await?;
    Ok(())
}

fn read_token(path: Option<&Path>) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Ok(t) = std::env::var("KEYFOLD_SIGNER_TOKEN") {
        return Ok(zeroize::Zeroizing::new(t.trim().to_string()));
    }
    let path = path.context("--token-file or KEYFOLD_SIGNER_TOKEN is required")?;
    let t =
        std::fs::read_to_string(path).with_context(|| format!("token file {}", path.display()))?;
    let t = t.trim().to_string();
    if t.len() < 32 {
        bail!("the cluster token must be at least 32 characters");
    }
    Ok(zeroize::Zeroizing::new(t))
}

/// Loads the test-only fixture primes for party `index` when the pool is empty.
async fn seed_test_primes(
    node: &SignerNode,
    store: &SqlNodeStore,
    path: &Path,
    index: usize,
) -> anyhow::Result<()> {
    if store.count_primes().await? > 0 {
        return Ok(());
    }
    tracing::warn!(file = %path.display(), "INSECURE: seeding the prime pool with public test primes");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let party = v["parties"]
        .get(index)
        .and_then(|p| p.as_array())
        .context("the test primes file has no entry for this party")?;
    let hexes: Vec<Vec<u8>> = party
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    if hexes.len() != 4 {
        bail!("test primes: 4 per party expected");
    }
    let primes = keyfold_mpc::ecdsa::PaillierPrimes::from_be_bytes([
        &hexes[0], &hexes[1], &hexes[2], &hexes[3],
    ])?;
    node.add_primes(&primes)
        .await
        .map_err(|e| anyhow::anyhow!("seeding primes: {e}"))?;
    Ok(())
}
