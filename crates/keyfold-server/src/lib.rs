//! The Keyfold API server: the Dfns API over HTTP, on axum.
//!
//! [`Server::build`] wires the use cases to a store and a configuration; [`Server::router`]
//! is the whole HTTP surface (also usable in tests without a socket); [`Server::serve`] runs
//! it with the background workers until shutdown. The OpenAPI document is generated from the
//! same handler annotations that route requests, so it cannot drift from the code.

pub mod app_signature;
pub mod cluster;
pub mod config;
pub mod error;
pub mod extract;
pub mod mail;
pub mod routes;
pub mod signer_api;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use keyfold_auth::AuthService;
use keyfold_auth::sealer::Sealer;
use keyfold_domain::authz::ALL_OPERATIONS;
use keyfold_domain::ports::Store;
use keyfold_domain::time::Clock;
use keyfold_domain::users::{UserService, UserSettings};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

pub use config::Config;
pub use state::AppState;

use crate::error::ApiError;
use crate::mail::Mailer;
use crate::state::Inner;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keyfold API",
        description = "Self-hostable wallet-as-a-service speaking the Dfns API. Every call carries \
            `Authorization: Bearer <JWT>`; every state-changing call also carries \
            `x-dfns-useraction`, a single-use token obtained by signing a challenge bound to the \
            exact method, path and body (`POST /auth/action/init`, then `POST /auth/action`).",
        license(name = "Apache-2.0")
    ),
    components(schemas(
        keyfold_types::ErrorBody,
        keyfold_types::users::ListableUserKind,
        keyfold_types::users::UserKind,
        keyfold_types::auth::CredentialKind,
    )),
    tags(
        (name = "auth", description = "Login, user action signing, registration"),
        (name = "users", description = "Users of the organization"),
        (name = "keys", description = "Threshold keys and their signatures"),
        (name = "wallets", description = "Keys bound to networks"),
        (name = "networks", description = "What the chains say, through their configured RPC"),
        (name = "system", description = "Health and metadata"),
    )
)]
struct ApiDoc;

/// The assembled API.
#[derive(Clone)]
pub struct Server {
    state: AppState,
    router: Router,
    openapi: Arc<OpenApi>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The signer cluster and the network rules, for servers that sign.
#[derive(Debug, Clone)]
pub struct Signing {
    pub cluster: Arc<cluster::Cluster>,
    pub networks: Arc<dyn keyfold_domain::ports::Networks>,
    /// How long a key creation waits for ECDSA setup before answering 503.
    pub ready_wait: Duration,
}

impl Signing {
    /// The cluster and network rules a configuration describes, or `None` when it names no
    /// cluster file.
    pub fn from_config(
        cfg: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Self>, config::ConfigError> {
        let Some(cluster) = cluster::file::cluster_from_config(cfg, store, clock)? else {
            return Ok(None);
        };
        Ok(Some(Self::new(cfg, cluster)?))
    }

    /// Signing over `cluster` with the configuration's network rules.
    pub fn new(cfg: &Config, cluster: Arc<cluster::Cluster>) -> Result<Self, config::ConfigError> {
        let networks = keyfold_chains::rules::NetworkRules::new(cfg.chain_ids())
            .map_err(|e| config::ConfigError(format!("networks: {e}")))?;
        Ok(Self {
            cluster,
            networks: Arc::new(networks),
            ready_wait: Duration::from_secs(cfg.signing.ready_wait_secs),
        })
    }
}

impl Server {
    /// Wires the use cases. `sealer` opens the server's own sealed secrets (JWT keys).
    pub async fn build(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sealer: Sealer,
    ) -> Result<Self, ApiError> {
        Self::build_with(config, store, clock, sealer, None).await
    }

    /// [`Server::build`] with a signer cluster.
    pub async fn build_with(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        sealer: Sealer,
        signing: Option<Signing>,
    ) -> Result<Self, ApiError> {
        // New releases add operations; the built-in administrator permission follows.
        let all_ops: Vec<String> = ALL_OPERATIONS.iter().map(|s| s.to_string()).collect();
        store
            .sync_builtin_permissions(&all_ops, clock.now())
            .await
            .map_err(keyfold_domain::DomainError::from)?;
        let auth = AuthService::start(store.clone(), clock.clone(), sealer, config.auth_settings())
            .await?;
        let users = UserService::new(
            store.clone(),
            clock.clone(),
            UserSettings {
                registration_code_ttl_secs: config.auth.registration_code_ttl_secs,
                public_url: config.public_url(),
            },
        );
        let rpc = keyfold_chains::rpc::ChainRpcs::new(
            config
                .networks
                .iter()
                .map(|(name, n)| (name.clone(), n.rpc_url.clone())),
            config.chain_ids(),
        )?;
        let rpc: Arc<dyn keyfold_domain::ports::ChainRpc> = Arc::new(rpc);
        let keys = signing.as_ref().map(|sg| {
            keyfold_domain::keys::KeyService::new(
                store.clone(),
                sg.cluster.clone() as Arc<dyn keyfold_domain::ports::SignerCluster>,
                sg.networks.clone(),
                rpc.clone(),
                clock.clone(),
                keyfold_domain::keys::KeySettings {
                    ready_wait: sg.ready_wait,
                    dropped_after: Duration::from_secs(config.transfers.dropped_after_secs),
                },
            )
        });
        let permissions =
            keyfold_domain::permissions::PermissionService::new(store.clone(), clock.clone());
        let state = AppState::new(Inner {
            config,
            store,
            clock,
            auth,
            users,
            permissions,
            keys,
            cluster: signing.map(|sg| sg.cluster),
            outbox: tokio::sync::Notify::new(),
            rpc,
        });
        let (router, openapi) = Self::routes(state.clone());
        Ok(Self {
            state,
            router,
            openapi: Arc::new(openapi),
        })
    }

    fn routes(state: AppState) -> (Router, OpenApi) {
        let (api, mut openapi) =
            OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
                .merge(routes::auth::router())
                .merge(routes::users::router())
                .merge(routes::keys::router())
                .merge(routes::wallets::router())
                .merge(routes::transfers::router())
                .merge(routes::permissions::router())
                .merge(routes::service_accounts::router())
                .merge(routes::pats::router())
                .merge(routes::credentials::router())
                .merge(routes::apps::router())
                .merge(routes::networks::router())
                .merge(routes::system::router())
                .split_for_parts();
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
        let doc = Arc::new(openapi.clone());
        let max_body = state.config.server.max_body_bytes;
        let router = api
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { axum::Json((*doc).clone()) }
                }),
            )
            .route("/app", axum::routing::get(routes::system::app_page))
            .route("/app/", axum::routing::get(routes::system::app_page))
            .fallback(routes::system::fallback)
            .method_not_allowed_fallback(routes::system::method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                app_signature::check,
            ))
            .layer(DefaultBodyLimit::max(max_body))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                }),
            )
            .layer(CatchPanicLayer::custom(|_| {
                tracing::error!("a handler panicked");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(keyfold_types::ErrorBody::new("internal error; the incident was logged")),
                )
                    .into_response()
            }))
            .with_state(state);
        (router, openapi)
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn openapi(&self) -> &OpenApi {
        &self.openapi
    }

    /// Serves on `listener` with the background workers until `shutdown` resolves, then
    /// drains in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mailer = Mailer::from_config(&self.state.config.email)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let worker = tokio::spawn(mail::run_outbox_worker(
            self.state.clone(),
            mailer,
            stop_rx.clone(),
        ));
        let mut background = vec![worker];
        if let Some(c) = &self.state.cluster {
            c.forget_pooled_keys()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            background.push(tokio::spawn(c.clone().run_background(stop_rx.clone())));
        }
        if self.state.keys.is_some() {
            background.push(tokio::spawn(recover_interrupted(
                self.state.clone(),
                stop_rx.clone(),
            )));
            background.push(tokio::spawn(track_transfers(self.state.clone(), stop_rx)));
        }
        let result = axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_tx.send(true);
        for task in background {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        result
    }
}

/// Marks signature requests a crashed API left `Executing` as failed, once a minute.
async fn recover_interrupted(state: AppState, mut shutdown: watch::Receiver<bool>) {
    // Longer than any signing run can take (the session timeout), so a live request is never
    // failed by another replica's sweep.
    const STALE: Duration = Duration::from_secs(15 * 60);
    loop {
        if let Some(keys) = &state.keys {
            match keys.recover_interrupted(STALE).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(count = n, "marked interrupted signature requests as failed")
                }
                Err(e) => tracing::warn!(error = %e, "interrupted-request sweep failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Follows broadcast transactions to confirmation, re-sends stored bytes nobody has seen, and
/// fails requests abandoned before signing (see `keyfold_domain::transfers`). Rows live in
/// the database, so a restarted API picks up where the last one stopped.
async fn track_transfers(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(state.config.transfers.tracker_interval_ms.max(10));
    let batch = state.config.transfers.tracker_batch.max(1);
    loop {
        if let Some(keys) = &state.keys
            && let Err(e) = keys.track_transfers(batch).await
        {
            tracing::warn!(error = %e, "transfer tracking pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The header name clients put the user action token in.
pub fn user_action_header() -> HeaderName {
    HeaderName::from_static(extract::USER_ACTION_HEADER)
}
