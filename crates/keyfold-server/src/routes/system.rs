//! Health, the OpenAPI document, and what answers paths we do not serve.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(list_signers))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemeHealth {
    pub ready: bool,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemesHealth {
    #[serde(rename = "ECDSA")]
    pub ecdsa: SchemeHealth,
    #[serde(rename = "EdDSA")]
    pub eddsa: SchemeHealth,
    #[serde(rename = "Schnorr")]
    pub schnorr: SchemeHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the API can serve requests.
    pub status: String,
    /// `ok` or `unavailable`.
    pub database: String,
    /// Per key scheme: can keys be created and used now? (ECDSA needs a one-time setup of the
    /// signer cluster.) Absent when the server runs without signers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemes: Option<SchemesHealth>,
}

/// Readiness (no authentication).
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(s): State<AppState>) -> (axum::http::StatusCode, Json<Health>) {
    use keyfold_domain::ports::SignerCluster;
    let schemes = s.cluster.as_ref().map(|c| {
        let r = c.readiness();
        let h = |x: keyfold_domain::ports::SchemeReadiness| SchemeHealth {
            ready: x.ready,
            detail: x.detail,
        };
        SchemesHealth {
            ecdsa: h(r.ecdsa),
            eddsa: h(r.eddsa),
            schnorr: h(r.schnorr),
        }
    });
    match s.store.ping().await {
        Ok(()) => (
            axum::http::StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                database: "ok".into(),
                schemes,
            }),
        ),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
                database: "unavailable".into(),
                schemes,
            }),
        ),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignerEntry {
    pub signer_id: String,
    /// The signer's encryption key (X25519, base64url): what export/import encrypt to.
    pub encryption_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignerCluster {
    pub cluster_id: String,
    pub signers: Vec<SignerEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListSignersResponse {
    pub clusters: Vec<SignerCluster>,
}

/// The signer cluster: signer ids and their encryption keys.
#[utoipa::path(get, path = "/signers", tag = "system",
    security(("bearer" = [])),
    responses((status = 200, body = ListSignersResponse), crate::routes::Errors))]
async fn list_signers(
    State(s): State<AppState>,
    crate::extract::Perm(_g): crate::extract::Perm<keyfold_domain::authz::op::SignersList>,
) -> ApiResult<Json<ListSignersResponse>> {
    use base64::Engine;
    let clusters = s
        .cluster
        .iter()
        .map(|c| SignerCluster {
            cluster_id: c.group().group_id.clone(),
            signers: c
                .group()
                .members
                .iter()
                .map(|m| SignerEntry {
                    signer_id: m.signer_id.clone(),
                    encryption_key: base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(m.public.enc_key),
                })
                .collect(),
        })
        .collect();
    Ok(Json(ListSignersResponse { clusters }))
}

/// Dfns areas Keyfold deliberately does not provide: they depend on third-party services.
const OUT_OF_SCOPE: &[(&str, &str)] = &[
    ("/agreements", "agreements"),
    ("/allocations", "allocations"),
    ("/exchanges", "exchanges"),
    ("/payouts", "payouts"),
    ("/staking", "staking"),
    ("/swaps", "swaps"),
    ("/fee-sponsors", "fee sponsors"),
    ("/key-stores", "key stores"),
    ("/fleets", "fleets"),
    ("/auth/registration/social", "social registration"),
    ("/auth/login/social", "social login"),
    ("/auth/login/sso", "SSO login"),
];

/// Unknown paths: 501 for Dfns areas that are out of scope, 404 otherwise — always JSON.
pub async fn fallback(uri: Uri) -> ApiResult<()> {
    let path = uri.path();
    for (prefix, what) in OUT_OF_SCOPE {
        if path == *prefix || path.starts_with(&format!("{prefix}/")) {
            return Err(ApiError::NotImplemented(format!(
                "Keyfold does not provide {what}: it depends on third-party services"
            )));
        }
    }
    Err(ApiError::RouteNotFound)
}

pub async fn method_not_allowed() -> ApiResult<()> {
    Err(ApiError::MethodNotAllowed)
}

/// `GET /app/`: a minimal page that registers a passkey, logs in with it and signs a user
/// action, using only the public API and `navigator.credentials` (served from the API's
/// origin, which is the default application's expected WebAuthn origin).
pub async fn app_page() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        include_str!("../../assets/app.html"),
    )
}
