//! Personal access tokens (`/auth/pats`): a user's long-lived tokens, each with its own key
//! and never more than the user's operations. Creating one takes `Auth:Pats:Create`; a user
//! reads and manages only its own.

use axum::Json;
use axum::extract::State;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::users::{CreatePatBody, PatResponse, TokenIdPath, UpdatePatBody};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Auth, Empty, PathId, Perm, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_pat, list_pats))
        .routes(routes!(get_pat, update_pat, archive_pat))
        .routes(routes!(activate_pat))
        .routes(routes!(deactivate_pat))
}

/// Create a personal access token for the caller's user; the token is in this response only.
#[utoipa::path(post, path = "/auth/pats", tag = "pats",
    request_body = CreatePatBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PatResponse), Errors))]
async fn create_pat(
    State(s): State<AppState>,
    Perm(g): Perm<op::PatsCreate>,
    signed: Signed<CreatePatBody>,
) -> ApiResult<Json<PatResponse>> {
    Ok(Json(s.auth.create_pat(&g, signed.body).await?))
}

/// The caller's user's live personal access tokens.
#[utoipa::path(get, path = "/auth/pats", tag = "pats",
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<PatResponse>), Errors))]
async fn list_pats(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<ListResponse<PatResponse>>> {
    Ok(Json(ListResponse {
        items: s.auth.list_pats(&p).await?,
        next_page_token: None,
    }))
}

#[utoipa::path(get, path = "/auth/pats/{tokenId}", tag = "pats",
    params(TokenIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = PatResponse), Errors))]
async fn get_pat(
    State(s): State<AppState>,
    Auth(p): Auth,
    PathId(id): PathId,
) -> ApiResult<Json<PatResponse>> {
    Ok(Json(s.auth.get_pat(&p, &id).await?))
}

#[utoipa::path(put, path = "/auth/pats/{tokenId}", tag = "pats",
    request_body = UpdatePatBody,
    params(TokenIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PatResponse), Errors))]
async fn update_pat(
    State(s): State<AppState>,
    Auth(p): Auth,
    PathId(id): PathId,
    signed: Signed<UpdatePatBody>,
) -> ApiResult<Json<PatResponse>> {
    Ok(Json(s.auth.update_pat(&p, &id, signed.body).await?))
}

/// Delete (revoke) it for good.
#[utoipa::path(delete, path = "/auth/pats/{tokenId}", tag = "pats",
    params(TokenIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PatResponse), Errors))]
async fn archive_pat(
    State(s): State<AppState>,
    Auth(p): Auth,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<PatResponse>> {
    Ok(Json(s.auth.archive_pat(&p, &id).await?))
}

#[utoipa::path(put, path = "/auth/pats/{tokenId}/activate", tag = "pats",
    params(TokenIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PatResponse), Errors))]
async fn activate_pat(
    State(s): State<AppState>,
    Auth(p): Auth,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<PatResponse>> {
    Ok(Json(s.auth.set_pat_active(&p, &id, true).await?))
}

/// Deactivate it: it stops working on its next use (and works again once activated).
#[utoipa::path(put, path = "/auth/pats/{tokenId}/deactivate", tag = "pats",
    params(TokenIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PatResponse), Errors))]
async fn deactivate_pat(
    State(s): State<AppState>,
    Auth(p): Auth,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<PatResponse>> {
    Ok(Json(s.auth.set_pat_active(&p, &id, false).await?))
}
