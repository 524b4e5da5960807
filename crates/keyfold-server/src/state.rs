//! What every handler can reach: the use cases (behind `Arc`), the store port and the
//! validated configuration. Built once at start-up.

use std::ops::Deref;
use std::sync::Arc;

use keyfold_auth::AuthService;
use keyfold_domain::ports::Store;
use keyfold_domain::time::Clock;
use keyfold_domain::users::UserService;
use tokio::sync::Notify;

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub auth: AuthService,
    pub users: UserService,
    pub permissions: keyfold_domain::permissions::PermissionService,
    /// Keys, wallets and signatures; absent when the server runs without a signer cluster.
    pub keys: Option<keyfold_domain::keys::KeyService>,
    /// The coordinator, when there is a cluster (for `/signers` and `/healthz`).
    pub cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
    /// Wakes the outbox worker when a request queued mail.
    pub outbox: Notify,
    /// The chains' RPC endpoints (`[networks.<Name>] rpc_url`).
    pub rpc: std::sync::Arc<dyn keyfold_domain::ports::ChainRpc>,
}

impl AppState {
    /// The key use cases, or 501 when this server runs without a signer cluster.
    pub fn keys(&self) -> Result<&keyfold_domain::keys::KeyService, crate::error::ApiError> {
        self.0.keys.as_ref().ok_or_else(|| {
            crate::error::ApiError::NotImplemented(
                "this server runs without a signer cluster (signing.cluster_file)".into(),
            )
        })
    }

    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
