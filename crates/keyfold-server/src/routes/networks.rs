//! Network information (`/networks`): what the chains themselves say, through their RPC.

use axum::Json;
use axum::extract::State;
use keyfold_types::networks::{FeesQuery, FeesResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Auth, QueryParams};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_fees))
}

/// Current fee estimates (slow, standard, fast) for a network, from its configured RPC.
/// 400 when the network has no `rpc_url`, 503 when the endpoint does not answer.
#[utoipa::path(get, path = "/networks/fees", tag = "networks",
    params(FeesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = FeesResponse), Errors))]
async fn get_fees(
    State(s): State<AppState>,
    Auth(_principal): Auth,
    QueryParams(q): QueryParams<FeesQuery>,
) -> ApiResult<Json<FeesResponse>> {
    Ok(Json(s.rpc.fees(&q.network).await?))
}
