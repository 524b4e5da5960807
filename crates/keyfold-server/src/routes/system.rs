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
    OpenApiRouter::new().routes(routes!(healthz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the API can serve requests.
    pub status: String,
    /// `ok` or `unavailable`.
    pub database: String,
}

/// Readiness (no authentication).
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(s): State<AppState>) -> (axum::http::StatusCode, Json<Health>) {
    match s.store.ping().await {
        Ok(()) => (
            axum::http::StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                database: "ok".into(),
            }),
        ),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
                database: "unavailable".into(),
            }),
        ),
    }
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
