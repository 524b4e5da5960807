//! Users (`/auth/users`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum UserKind {
    DfnsStaff,
    AccountUser,
    CustomerEmployee,
    EndUser,
}

impl UserKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DfnsStaff => "DfnsStaff",
            Self::AccountUser => "AccountUser",
            Self::CustomerEmployee => "CustomerEmployee",
            Self::EndUser => "EndUser",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "DfnsStaff" => Self::DfnsStaff,
            "AccountUser" => Self::AccountUser,
            "CustomerEmployee" => Self::CustomerEmployee,
            "EndUser" => Self::EndUser,
            _ => return None,
        })
    }
}

/// Kinds `POST /auth/users` accepts (the SDK's `CreateUserBody.kind`). `DfnsStaff` parses but
/// Keyfold refuses it: there is no staff in a self-hosted deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum CreatableUserKind {
    CustomerEmployee,
    DfnsStaff,
}

/// Kinds a user list can be filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ListableUserKind {
    CustomerEmployee,
    EndUser,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserBody {
    /// The new user's email; it becomes the username.
    #[schema(max_length = 254)]
    pub email: String,
    pub kind: CreatableUserKind,
    #[schema(max_length = 4096)]
    pub public_key: Option<String>,
    /// Correlates the user with an external system; a retry with the same value returns
    /// the same user.
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
    #[serde(rename = "isSSORequired")]
    pub is_sso_required: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateUserBody {
    #[serde(rename = "isSSORequired")]
    pub is_sso_required: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(max_length = 512)]
    pub pagination_token: Option<String>,
    pub kind: Option<ListableUserKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionAssignmentInfo {
    pub permission_name: String,
    pub permission_id: String,
    pub assignment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<String>>,
}

/// A user as every `/auth/users` endpoint returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
    pub username: String,
    pub name: String,
    pub user_id: String,
    pub kind: UserKind,
    /// Id of the user's first credential (empty until the user registers).
    pub credential_uuid: String,
    pub org_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    pub is_active: bool,
    pub is_service_account: bool,
    pub is_registered: bool,
    #[serde(rename = "isSSORequired")]
    pub is_sso_required: bool,
    pub permission_assignments: Vec<PermissionAssignmentInfo>,
}

/// The parameters of `/auth/users/{userId}`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct UserIdPath {
    #[param(max_length = 512)]
    pub user_id: String,
}

/// `POST /auth/service-accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateServiceAccountBody {
    #[schema(max_length = 128)]
    pub name: String,
    /// PEM SPKI of the key the service account signs its user actions with.
    #[schema(max_length = 4096)]
    pub public_key: String,
    #[schema(max_length = 512)]
    pub permission_id: Option<String>,
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
    /// Lifetime of the access token in days (default 365, at most 3650).
    #[schema(minimum = 1, maximum = 3650)]
    pub days_valid: Option<u32>,
}

/// `PUT /auth/service-accounts/{serviceAccountId}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateServiceAccountBody {
    #[schema(max_length = 128)]
    pub name: Option<String>,
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
}

/// One access token of a service account (the token itself only in the create response).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountToken {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    pub date_created: String,
    pub cred_id: String,
    pub is_active: bool,
    pub kind: String,
    pub linked_user_id: String,
    pub linked_app_id: String,
    pub name: String,
    pub org_id: String,
    pub permission_assignments: Vec<PermissionAssignmentInfo>,
    pub public_key: String,
    pub token_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountResponse {
    pub user_info: UserResponse,
    pub access_tokens: Vec<ServiceAccountToken>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct ServiceAccountIdPath {
    #[param(max_length = 512)]
    pub service_account_id: String,
}

/// `POST /auth/pats`: a personal access token acting for the caller's user, with its own key
/// (it signs the token's user actions) and at most the user's operations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePatBody {
    #[schema(max_length = 128)]
    pub name: String,
    /// PEM SPKI of the key the token signs its user actions with.
    #[schema(max_length = 4096)]
    pub public_key: String,
    /// The permission the token holds (never more than its user's). Without one the token
    /// holds no operations until a permission is assigned to it.
    #[schema(max_length = 512)]
    pub permission_id: Option<String>,
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
    /// Lifetime in days (default 365, at most 3650); `secondsValid` wins when both are given.
    #[schema(minimum = 1, maximum = 3650)]
    pub days_valid: Option<u32>,
    #[schema(minimum = 60)]
    pub seconds_valid: Option<u64>,
}

/// `PUT /auth/pats/{tokenId}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePatBody {
    #[schema(max_length = 128)]
    pub name: Option<String>,
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct TokenIdPath {
    #[param(max_length = 512)]
    pub token_id: String,
}

/// A personal access token (the token itself only in the create response): the same shape
/// as a service account's tokens, `kind: "Pat"`.
pub type PatResponse = ServiceAccountToken;
