//! `keyfold dev` and `keyfold api`.
//!
//! `dev` is the README's first command: one process, SQLite under a data folder, an
//! organization bootstrapped on first start with a root key credential generated *here* —
//! its private key goes to `DIR/admin.json` (mode 0600) and nowhere else. A restart reuses
//! the folder: same organization, same admin, ready in well under two seconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use keyfold_auth::bootstrap::{NewOrganization, new_organization};
use keyfold_auth::sealer::Sealer;
use keyfold_domain::ports::{OrgStore, Store};
use keyfold_domain::time::{Clock, SystemClock};
use keyfold_sdk::{AdminFile, KeySigner};
use keyfold_server::{Config, Server, Signing};
use keyfold_store::{SqlStore, StoreOptions};
use tokio::net::TcpListener;

/// The root user `keyfold dev` creates.
pub const DEV_ADMIN_USERNAME: &str = "admin@keyfold.localhost";

/// `keyfold dev`'s defaults, all under `data_dir`.
fn dev_defaults(data_dir: &Path) -> Config {
    let mut c = Config::default();
    c.database.url = format!("sqlite://{}", data_dir.join("keyfold.db").display());
    c.auth.secret_key_file = Some(data_dir.join("secret.key"));
    c.email.outbox_dir = Some(data_dir.join("outbox"));
    c.email.log_messages = true;
    c
}

pub async fn run(
    data_dir: PathBuf,
    listen: Option<std::net::SocketAddr>,
    config: Option<PathBuf>,
    signers: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    create_private_dir(&data_dir)?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("data dir {}", data_dir.display()))?;
    let mut cfg = Config::load(&dev_defaults(&data_dir), config.as_deref())?;
    let listener = bind(&mut cfg, listen).await?;
    if cfg.auth.secret_key.is_none()
        && let Some(path) = &cfg.auth.secret_key_file
        && !path.exists()
    {
        write_private_file(path, Sealer::generate_hex().as_bytes())?;
        tracing::info!(file = %path.display(), "generated the server secret key");
    }
    let (store, sealer) = open(&cfg, true).await?;
    restrict_database_files(&data_dir);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let admin_path = data_dir.join("admin.json");
    let admin = ensure_organization(&cfg, &store, clock.as_ref(), &admin_path).await?;
    let store: Arc<dyn Store> = Arc::new(store);
    let signers = if cfg.signing.cluster_file.is_none() && signers > 0 {
        let signers = crate::devcluster::start(&data_dir, signers).await?;
        cfg.signing.cluster_file = Some(signers.cluster_file.clone());
        cfg.signing.token_file = Some(signers.token_file.clone());
        Some(signers)
    } else {
        None
    };
    let signing = Signing::from_config(&cfg, store.clone(), clock.clone())?;
    let cluster = signing.as_ref().map(|s| s.cluster.clone());
    let server = Server::build_with(cfg.clone(), store, clock, sealer, signing).await?;
    print_how_to(&cfg.public_url(), &admin_path, admin.as_ref());
    tracing::info!(url = %cfg.public_url(), ms = started.elapsed().as_millis() as u64, "keyfold dev is ready");
    if let Some(c) = cluster {
        tokio::spawn(crate::devcluster::show_ecdsa_progress(c, started));
    }
    server.serve(listener, crate::shutdown_signal()).await?;
    if let Some(s) = signers {
        s.stop().await;
    }
    Ok(())
}

pub async fn run_api(config: PathBuf, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut cfg = Config::load(&Config::default(), Some(&config))?;
    let listener = bind(&mut cfg, listen).await?;
    let (store, sealer) = open(&cfg, true).await?;
    if store.list_orgs().await?.is_empty() {
        tracing::warn!(
            "the database holds no organization yet: run `keyfold admin init --config …`"
        );
    }
    let store: Arc<dyn Store> = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let signing = Signing::from_config(&cfg, store.clone(), clock.clone())?;
    if signing.is_none() {
        tracing::warn!("no signing.cluster_file: keys and wallets are unavailable");
    }
    let server = Server::build_with(cfg.clone(), store, clock, sealer, signing).await?;
    tracing::info!(url = %cfg.public_url(), ms = started.elapsed().as_millis() as u64, "keyfold api is ready");
    server.serve(listener, crate::shutdown_signal()).await?;
    Ok(())
}

/// Applies the `--listen` flag, binds, and validates. Binding comes first so that port 0
/// resolves before the public URL is derived from it.
async fn bind(
    cfg: &mut Config,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<TcpListener> {
    if let Some(l) = listen {
        cfg.server.listen = l;
    }
    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    cfg.server.listen = listener.local_addr()?;
    cfg.validate()?;
    Ok(listener)
}

/// Connects, migrates, and loads the sealing key. A server is its SQLite database's sole
/// writer (see [`StoreOptions::sole_writer`]); an operator tool is not (`sole_writer` false).
pub async fn open(cfg: &Config, sole_writer: bool) -> anyhow::Result<(SqlStore, Sealer)> {
    let sealer = Sealer::from_hex(&cfg.secret_key_hex()?)?;
    let mut opts = StoreOptions::new(&cfg.database.url);
    opts.max_connections = cfg.database.max_connections;
    opts.sole_writer = sole_writer;
    let store = SqlStore::connect(&opts).await?;
    store.migrate().await?;
    Ok((store, sealer))
}

/// Bootstraps the first organization (writing the admin file), or finds the existing one.
///
/// Crash safety: the admin file is written (as `admin.json.tmp`) *before* the organization is
/// committed and renamed after, so the root's private key can never be lost between the two.
pub async fn ensure_organization(
    cfg: &Config,
    store: &SqlStore,
    clock: &dyn Clock,
    admin_path: &Path,
) -> anyhow::Result<Option<AdminFile>> {
    let tmp = admin_path.with_extension("json.tmp");
    let orgs = store.list_orgs().await?;
    if orgs.is_empty() {
        let admin = bootstrap(cfg, store, clock, DEV_ADMIN_USERNAME, &tmp).await?;
        std::fs::rename(&tmp, admin_path)?;
        tracing::info!(org = %admin.org_id, file = %admin_path.display(), "bootstrapped a new organization");
        return Ok(Some(admin));
    }
    let read = |p: &Path| -> anyhow::Result<AdminFile> {
        Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?)
    };
    if !admin_path.exists() && tmp.exists() {
        let pending = read(&tmp)?;
        if orgs.iter().any(|o| o.id == pending.org_id) {
            std::fs::rename(&tmp, admin_path)?;
        }
    }
    if !admin_path.exists() {
        tracing::warn!(
            file = %admin_path.display(),
            "the database has an organization but the admin file is missing; the root's private key \
             never reached the server, so it cannot be recovered from here"
        );
        return Ok(None);
    }
    let mut admin = read(admin_path)?;
    if !orgs.iter().any(|o| o.id == admin.org_id) {
        bail!(
            "{} belongs to another database (org {})",
            admin_path.display(),
            admin.org_id
        );
    }
    let url = cfg.public_url();
    if admin.base_url != url {
        admin.base_url = url;
        write_private_file(&tmp, serde_json::to_string_pretty(&admin)?.as_bytes())?;
        std::fs::rename(&tmp, admin_path)?;
    }
    Ok(Some(admin))
}

/// Generates the root key locally, writes the admin file to `out`, and commits the
/// organization.
pub async fn bootstrap(
    cfg: &Config,
    store: &SqlStore,
    clock: &dyn Clock,
    username: &str,
    out: &Path,
) -> anyhow::Result<AdminFile> {
    let signer = KeySigner::generate_p256();
    let url = cfg.public_url();
    let b = new_organization(
        &NewOrganization {
            org_name: cfg.server.org_name.clone(),
            root_username: username.into(),
            root_cred_id: signer.cred_id().into(),
            root_public_key_pem: signer.public_key_pem()?,
            app_origin: url.clone(),
            app_rp_id: cfg.rp_id(),
        },
        clock.now(),
    )?;
    let admin = AdminFile {
        base_url: url,
        org_id: b.org.id.clone(),
        user_id: b.root.id.clone(),
        username: b.root.username.clone(),
        cred_id: signer.cred_id().into(),
        private_key: signer.private_key_pem()?.to_string(),
    };
    let json = zeroize::Zeroizing::new(serde_json::to_string_pretty(&admin)?);
    write_private_file(out, json.as_bytes())?;
    store.bootstrap(&b).await?;
    Ok(admin)
}

/// The database holds hashes and public keys only, but nobody else needs to read it.
fn restrict_database_files(data_dir: &Path) {
    #[cfg(unix)]
    for name in ["keyfold.db", "keyfold.db-wal", "keyfold.db-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let _ =
            std::fs::set_permissions(data_dir.join(name), std::fs::Permissions::from_mode(0o600));
    }
}

/// Creates `dir` (and parents) readable only by us.
pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Writes a file only we can read (0600), durably (fsync) before returning.
pub fn write_private_file(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_how_to(url: &str, admin_path: &Path, admin: Option<&AdminFile>) {
    let org = admin.map(|a| a.org_id.as_str()).unwrap_or("?");
    println!(
        "\n  Keyfold is running at {url}  (organization {org})\n  \
         Root credential: {}  — it holds the root user's private key; keep it secret.\n\n  \
         Use it from the official Dfns SDK (npm i @dfns/sdk @dfns/sdk-keysigner):\n\n    \
         const admin = JSON.parse(require('fs').readFileSync('{}', 'utf8'))\n    \
         const signer = new AsymmetricKeySigner({{ credId: admin.credId, privateKey: admin.privateKey }})\n    \
         const init = await BaseAuthApi.createUserLoginChallenge({{ orgId: admin.orgId, username: admin.username }}, {{ baseUrl: admin.baseUrl }})\n    \
         const {{ token }} = await BaseAuthApi.createUserLogin({{ challengeIdentifier: init.challengeIdentifier, firstFactor: await signer.sign(init) }}, {{ baseUrl: admin.baseUrl }})\n    \
         const dfns = new DfnsApiClient({{ baseUrl: admin.baseUrl, orgId: admin.orgId, authToken: token, signer }})\n    \
         console.log(await dfns.auth.listUsers())\n\n  \
         API reference: {url}/openapi.json   Stop with Ctrl-C; data stays in {}.\n",
        admin_path.display(),
        admin_path.display(),
        admin_path
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
}
