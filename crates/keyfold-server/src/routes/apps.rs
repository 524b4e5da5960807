//! Applications (`/auth/apps`): client-side apps scope passkeys to an origin and relying
//! party; server-side apps sign every request made under them (`keyfold_auth::apps`).

use axum::Json;
use axum::extract::State;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::auth::{AppIdPath, AppResponse, CreateAppBody};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{PathId, Perm, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app, list_apps))
        .routes(routes!(get_app))
}

/// Create a client-side (origin + relying party) or server-side (public key) application.
#[utoipa::path(post, path = "/auth/apps", tag = "apps",
    request_body = CreateAppBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = AppResponse), Errors))]
async fn create_app(
    State(s): State<AppState>,
    Perm(g): Perm<op::AppsCreate>,
    signed: Signed<CreateAppBody>,
) -> ApiResult<Json<AppResponse>> {
    Ok(Json(s.auth.create_app(&g, signed.body).await?))
}

/// The organization's applications, the default one first.
#[utoipa::path(get, path = "/auth/apps", tag = "apps",
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<AppResponse>), Errors))]
async fn list_apps(
    State(s): State<AppState>,
    Perm(g): Perm<op::AppsRead>,
) -> ApiResult<Json<ListResponse<AppResponse>>> {
    Ok(Json(ListResponse {
        items: s.auth.list_apps(&g).await?,
        next_page_token: None,
    }))
}

#[utoipa::path(get, path = "/auth/apps/{appId}", tag = "apps",
    params(AppIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = AppResponse), Errors))]
async fn get_app(
    State(s): State<AppState>,
    Perm(g): Perm<op::AppsRead>,
    PathId(id): PathId,
) -> ApiResult<Json<AppResponse>> {
    Ok(Json(s.auth.get_app(&g, &id).await?))
}
