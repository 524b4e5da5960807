//! Service accounts (`/auth/service-accounts`): machine identities with their own key and
//! long-lived token.

use axum::Json;
use axum::extract::State;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::PageQuery;
use keyfold_types::users::{
    CreateServiceAccountBody, ServiceAccountIdPath, ServiceAccountResponse,
    UpdateServiceAccountBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Empty, PathId, Perm, QueryParams, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_service_account, list_service_accounts))
        .routes(routes!(
            get_service_account,
            update_service_account,
            delete_service_account
        ))
        .routes(routes!(activate_service_account))
        .routes(routes!(deactivate_service_account))
}

/// Create a service account: its key signs its user actions; the response carries its access
/// token, once (Keyfold keeps only the token's id).
#[utoipa::path(post, path = "/auth/service-accounts", tag = "service-accounts",
    request_body = CreateServiceAccountBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceAccountResponse), Errors))]
async fn create_service_account(
    State(s): State<AppState>,
    Perm(g): Perm<op::ServiceAccountsCreate>,
    signed: Signed<CreateServiceAccountBody>,
) -> ApiResult<Json<ServiceAccountResponse>> {
    Ok(Json(s.auth.create_service_account(&g, signed.body).await?))
}

#[utoipa::path(get, path = "/auth/service-accounts", tag = "service-accounts",
    params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<ServiceAccountResponse>), Errors))]
async fn list_service_accounts(
    State(s): State<AppState>,
    Perm(g): Perm<op::ServiceAccountsRead>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListResponse<ServiceAccountResponse>>> {
    Ok(Json(
        s.auth
            .list_service_accounts(&g, q.limit, q.pagination_token.as_deref())
            .await?
            .into_list(),
    ))
}

#[utoipa::path(get, path = "/auth/service-accounts/{serviceAccountId}", tag = "service-accounts",
    params(ServiceAccountIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceAccountResponse), Errors))]
async fn get_service_account(
    State(s): State<AppState>,
    Perm(g): Perm<op::ServiceAccountsRead>,
    PathId(id): PathId,
) -> ApiResult<Json<ServiceAccountResponse>> {
    Ok(Json(s.auth.get_service_account(&g, &id).await?))
}

#[utoipa::path(put, path = "/auth/service-accounts/{serviceAccountId}", tag = "service-accounts",
    request_body = UpdateServiceAccountBody,
    params(ServiceAccountIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceAccountResponse), Errors))]
async fn update_service_account(
    State(s): State<AppState>,
    Perm(g): Perm<op::ServiceAccountsUpdate>,
    PathId(id): PathId,
    signed: Signed<UpdateServiceAccountBody>,
) -> ApiResult<Json<ServiceAccountResponse>> {
    Ok(Json(
        s.auth.update_service_account(&g, &id, signed.body).await?,
    ))
}

/// Delete (archive) it: its token is revoked for good.
#[utoipa::path(delete, path = "/auth/service-accounts/{serviceAccountId}", tag = "service-accounts",
    params(ServiceAccountIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceAccountResponse), Errors))]
async fn delete_service_account(
    State(s): State<AppState>,
    Perm(g): Perm<op::ServiceAccountsDelete>,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<ServiceAccountResponse>> {
    Ok(Json(s.auth.delete_service_account(&g, &id).await?))
}

#[utoipa::path(put, path = "/auth/service-accounts/{serviceAccountId}/activate", tag = "service-accounts",
    params(ServiceAccountIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceAccountResponse), Errors))]
async fn activate_service_account(
    State(s): State<AppState>,
    Perm(g): Perm<op::ServiceAccountsActivate>,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<ServiceAccountResponse>> {
    Ok(Json(s.auth.activate_service_account(&g, &id).await?))
}

/// Deactivate it: its token stops working on its next use (and works again once activated).
#[utoipa::path(put, path = "/auth/service-accounts/{serviceAccountId}/deactivate", tag = "service-accounts",
    params(ServiceAccountIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = ServiceAccountResponse), Errors))]
async fn deactivate_service_account(
    State(s): State<AppState>,
    Perm(g): Perm<op::ServiceAccountsDeactivate>,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<ServiceAccountResponse>> {
    Ok(Json(s.auth.deactivate_service_account(&g, &id).await?))
}
