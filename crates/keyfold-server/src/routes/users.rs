//! Users (`/auth/users`). Reads need the operation; writes need the operation *and* a user
//! action signed for exactly that request.

use axum::Json;
use axum::extract::State;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::users::{
    CreateUserBody, ListUsersQuery, UpdateUserBody, UserIdPath, UserResponse,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Empty, PathId, Perm, QueryParams, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(activate_user))
        .routes(routes!(deactivate_user))
}

/// Invite an employee: creates the user unregistered and emails a registration code.
/// Retrying with the same `externalId` returns the same user.
#[utoipa::path(post, path = "/auth/users", tag = "users",
    request_body = CreateUserBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = UserResponse), Errors))]
async fn create_user(
    State(s): State<AppState>,
    Perm(g): Perm<op::UsersCreate>,
    signed: Signed<CreateUserBody>,
) -> ApiResult<Json<UserResponse>> {
    let user = s.users.create(&g, signed.body).await?;
    s.outbox.notify_one();
    Ok(Json(user.into_api()))
}

/// The organization's users, newest first.
#[utoipa::path(get, path = "/auth/users", tag = "users",
    params(ListUsersQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<UserResponse>), Errors))]
async fn list_users(
    State(s): State<AppState>,
    Perm(g): Perm<op::UsersRead>,
    QueryParams(q): QueryParams<ListUsersQuery>,
) -> ApiResult<Json<ListResponse<UserResponse>>> {
    let page = s.users.list(&g, q).await?;
    Ok(Json(page.map(|u| u.into_api()).into_list()))
}

#[utoipa::path(get, path = "/auth/users/{userId}", tag = "users",
    params(UserIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = UserResponse), Errors))]
async fn get_user(
    State(s): State<AppState>,
    Perm(g): Perm<op::UsersRead>,
    PathId(id): PathId,
) -> ApiResult<Json<UserResponse>> {
    Ok(Json(s.users.get(&g, &id).await?.into_api()))
}

#[utoipa::path(put, path = "/auth/users/{userId}", tag = "users",
    params(UserIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = UpdateUserBody,
    security(("bearer" = [])),
    responses((status = 200, body = UserResponse), Errors))]
async fn update_user(
    State(s): State<AppState>,
    Perm(g): Perm<op::UsersUpdate>,
    PathId(id): PathId,
    signed: Signed<UpdateUserBody>,
) -> ApiResult<Json<UserResponse>> {
    Ok(Json(s.users.update(&g, &id, signed.body).await?.into_api()))
}

/// Delete (archive) a user: it can no longer log in and every token it held stops working.
#[utoipa::path(delete, path = "/auth/users/{userId}", tag = "users",
    params(UserIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = UserResponse), Errors))]
async fn delete_user(
    State(s): State<AppState>,
    Perm(g): Perm<op::UsersDelete>,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<UserResponse>> {
    Ok(Json(s.users.delete(&g, &id).await?.into_api()))
}

#[utoipa::path(put, path = "/auth/users/{userId}/activate", tag = "users",
    params(UserIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = UserResponse), Errors))]
async fn activate_user(
    State(s): State<AppState>,
    Perm(g): Perm<op::UsersActivate>,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<UserResponse>> {
    Ok(Json(s.users.activate(&g, &id).await?.into_api()))
}

/// Deactivate a user: its login sessions end at once.
#[utoipa::path(put, path = "/auth/users/{userId}/deactivate", tag = "users",
    params(UserIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = UserResponse), Errors))]
async fn deactivate_user(
    State(s): State<AppState>,
    Perm(g): Perm<op::UsersDeactivate>,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<UserResponse>> {
    Ok(Json(s.users.deactivate(&g, &id).await?.into_api()))
}
