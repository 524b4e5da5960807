//! Permissions (roles) and assignments (`/permissions`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::PageQuery;
use keyfold_types::permissions::{
    ArchivePermissionBody, AssignmentPath, AssignmentResponse, CreateAssignmentBody,
    CreatePermissionBody, DeleteAssignmentQuery, PermissionIdPath, PermissionResponse,
    UpdatePermissionBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Empty, PathId, PathParams, Perm, QueryParams, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_permission, list_permissions))
        .routes(routes!(get_permission, update_permission))
        .routes(routes!(archive_permission))
        .routes(routes!(create_assignment, list_assignments))
        .routes(routes!(delete_assignment))
}

#[utoipa::path(post, path = "/permissions", tag = "permissions",
    request_body = CreatePermissionBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PermissionResponse), Errors))]
async fn create_permission(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsCreate>,
    signed: Signed<CreatePermissionBody>,
) -> ApiResult<Json<PermissionResponse>> {
    Ok(Json(s.permissions.create(&g, signed.body).await?))
}

#[utoipa::path(get, path = "/permissions", tag = "permissions",
    params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<PermissionResponse>), Errors))]
async fn list_permissions(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsRead>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListResponse<PermissionResponse>>> {
    Ok(Json(
        s.permissions
            .list(&g, q.limit, q.pagination_token.as_deref())
            .await?
            .into_list(),
    ))
}

#[utoipa::path(get, path = "/permissions/{permissionId}", tag = "permissions",
    params(PermissionIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = PermissionResponse), Errors))]
async fn get_permission(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsRead>,
    PathId(id): PathId,
) -> ApiResult<Json<PermissionResponse>> {
    Ok(Json(s.permissions.get(&g, &id).await?))
}

/// Rename it or change its operations; holders get the new set on their next request.
#[utoipa::path(put, path = "/permissions/{permissionId}", tag = "permissions",
    request_body = UpdatePermissionBody,
    params(PermissionIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PermissionResponse), Errors))]
async fn update_permission(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsUpdate>,
    PathId(id): PathId,
    signed: Signed<UpdatePermissionBody>,
) -> ApiResult<Json<PermissionResponse>> {
    Ok(Json(s.permissions.update(&g, &id, signed.body).await?))
}

/// Archive (it stops granting anything at once) or restore a permission.
#[utoipa::path(put, path = "/permissions/{permissionId}/archive", tag = "permissions",
    request_body = ArchivePermissionBody,
    params(PermissionIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = PermissionResponse), Errors))]
async fn archive_permission(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsArchive>,
    PathId(id): PathId,
    signed: Signed<ArchivePermissionBody>,
) -> ApiResult<Json<PermissionResponse>> {
    Ok(Json(
        s.permissions
            .archive(&g, &id, signed.body.is_archived)
            .await?,
    ))
}

/// Grant the permission to a user, service account or PAT of the organization.
#[utoipa::path(post, path = "/permissions/{permissionId}/assignments", tag = "permissions",
    request_body = CreateAssignmentBody,
    params(PermissionIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = AssignmentResponse), Errors))]
async fn create_assignment(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsAssign>,
    PathId(id): PathId,
    signed: Signed<CreateAssignmentBody>,
) -> ApiResult<Json<AssignmentResponse>> {
    Ok(Json(s.permissions.assign(&g, &id, signed.body).await?))
}

#[utoipa::path(get, path = "/permissions/{permissionId}/assignments", tag = "permissions",
    params(PermissionIdPath, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<AssignmentResponse>), Errors))]
async fn list_assignments(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsAssignmentsRead>,
    PathId(id): PathId,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<ListResponse<AssignmentResponse>>> {
    Ok(Json(
        s.permissions
            .list_assignments(&g, &id, q.limit, q.pagination_token.as_deref())
            .await?
            .into_list(),
    ))
}

/// Revoke an assignment; it counts on the identity's next request.
#[utoipa::path(delete, path = "/permissions/{permissionId}/assignments/{assignmentId}", tag = "permissions",
    params(AssignmentPath, DeleteAssignmentQuery, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 204, description = "revoked"), Errors))]
async fn delete_assignment(
    State(s): State<AppState>,
    Perm(g): Perm<op::PermissionsRevoke>,
    PathParams((permission_id, assignment_id)): PathParams<(String, String)>,
    QueryParams(_q): QueryParams<DeleteAssignmentQuery>,
    _signed: Signed<Empty>,
) -> ApiResult<StatusCode> {
    s.permissions
        .revoke(&g, &permission_id, &assignment_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
