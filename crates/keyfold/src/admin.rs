//! `keyfold admin`: operator tasks against a configured deployment.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;
use keyfold_auth::AuthService;
use keyfold_domain::ports::OrgStore;
use keyfold_domain::time::{Clock, SystemClock};
use keyfold_server::Config;

use crate::dev;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Bootstrap the first organization: generates the root key credential on this machine
    /// and writes the admin file (mode 0600). Refuses if an organization exists.
    Init {
        #[arg(long, env = "KEYFOLD_CONFIG")]
        config: PathBuf,
        /// Where to write the admin file (it holds the root's private key).
        #[arg(long)]
        out: PathBuf,
        /// The root user's username (an email).
        #[arg(long, default_value = dev::DEV_ADMIN_USERNAME)]
        username: String,
    },
    /// Make a new JWT signing key current. Tokens signed by older keys keep working until
    /// they expire.
    RotateJwtKey {
        #[arg(long, env = "KEYFOLD_CONFIG")]
        config: PathBuf,
    },
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Init {
            config,
            out,
            username,
        } => {
            let cfg = load(&config)?;
            let (store, _) = dev::open(&cfg, false).await?;
            if !store.list_orgs().await?.is_empty() {
                bail!("this database already holds an organization");
            }
            if out.exists() {
                bail!(
                    "{} exists; refusing to overwrite a credential",
                    out.display()
                );
            }
            let admin = dev::bootstrap(&cfg, &store, &SystemClock, &username, &out).await?;
            tracing::info!(org = %admin.org_id, file = %out.display(), "organization created");
            Ok(())
        }
        AdminCommand::RotateJwtKey { config } => {
            let cfg = load(&config)?;
            let (store, sealer) = dev::open(&cfg, false).await?;
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let auth =
                AuthService::start(Arc::new(store), clock, sealer, cfg.auth_settings()).await?;
            let kid = auth.rotate_signing_key().await?;
            tracing::info!(%kid, "new JWT signing key is current");
            Ok(())
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let cfg = Config::load(&Config::default(), Some(path))?;
    cfg.validate()?;
    Ok(cfg)
}
