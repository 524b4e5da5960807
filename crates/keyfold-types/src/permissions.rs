//! Permissions (Dfns "roles") and their assignments (`/permissions`). Dfns
//! `generated/permissions`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePermissionBody {
    #[schema(max_length = 128)]
    pub name: String,
    /// Operation names (`Wallets:Read`, …); an unknown name is a 400.
    #[schema(max_items = 200)]
    pub operations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePermissionBody {
    #[schema(max_length = 128)]
    pub name: Option<String>,
    #[schema(max_items = 200)]
    pub operations: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchivePermissionBody {
    /// true archives (the permission stops granting anything), false restores it.
    pub is_archived: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionResponse {
    pub id: String,
    pub name: String,
    pub operations: Vec<String>,
    /// Always `Active` (archival is `isArchived`).
    pub status: String,
    pub is_immutable: bool,
    pub is_archived: bool,
    pub date_created: String,
    pub date_updated: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAssignmentBody {
    /// A user, service account or personal access token of the organization.
    #[schema(max_length = 512)]
    pub identity_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentResponse {
    pub id: String,
    pub permission_id: String,
    pub identity_id: String,
    pub is_immutable: bool,
    pub date_created: String,
    pub date_updated: String,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct PermissionIdPath {
    #[param(max_length = 512)]
    pub permission_id: String,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct AssignmentPath {
    #[param(max_length = 512)]
    pub permission_id: String,
    #[param(max_length = 512)]
    pub assignment_id: String,
}

/// `DELETE …/assignments/{assignmentId}?force=` (approvals do not exist yet: ignored).
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeleteAssignmentQuery {
    pub force: Option<bool>,
}
