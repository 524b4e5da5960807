//! A user's credentials (`/auth/credentials`): add one (Key, Fido2 passkey,
//! PasswordProtectedKey, RecoveryKey) under a user action or, from a second device, with a
//! one-time code; list; activate / deactivate (never the last active one).

use axum::Json;
use axum::extract::State;
use keyfold_types::ListResponse;
use keyfold_types::auth::{
    CreateCredentialBody, CreateCredentialChallengeBody, CreateCredentialChallengeWithCodeBody,
    CreateCredentialCodeBody, CredentialChallengeResponse, CredentialCodeResponse,
    CredentialResponse, CredentialUuidBody, MessageResponse,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(credential_init))
        .routes(routes!(create_credential, list_credentials))
        .routes(routes!(activate_credential))
        .routes(routes!(deactivate_credential))
        .routes(routes!(create_credential_code))
        .routes(routes!(credential_init_with_code))
        .routes(routes!(create_credential_with_code))
}

/// A challenge for a new credential of the given kind (Fido2: WebAuthn creation options).
#[utoipa::path(post, path = "/auth/credentials/init", tag = "credentials",
    request_body = CreateCredentialChallengeBody,
    security(("bearer" = [])),
    responses((status = 200, body = CredentialChallengeResponse), Errors))]
async fn credential_init(
    State(s): State<AppState>,
    Auth(p): Auth,
    JsonBody(body): JsonBody<CreateCredentialChallengeBody>,
) -> ApiResult<Json<CredentialChallengeResponse>> {
    Ok(Json(s.auth.credential_init(&p, body).await?))
}

/// Add the credential that answered the challenge.
#[utoipa::path(post, path = "/auth/credentials", tag = "credentials",
    request_body = CreateCredentialBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = CredentialResponse), Errors))]
async fn create_credential(
    State(s): State<AppState>,
    Auth(p): Auth,
    signed: Signed<CreateCredentialBody>,
) -> ApiResult<Json<CredentialResponse>> {
    Ok(Json(s.auth.create_credential(&p, signed.body).await?))
}

/// The caller's credentials.
#[utoipa::path(get, path = "/auth/credentials", tag = "credentials",
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<CredentialResponse>), Errors))]
async fn list_credentials(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<ListResponse<CredentialResponse>>> {
    Ok(Json(ListResponse {
        items: s.auth.list_user_credentials(&p).await?,
        next_page_token: None,
    }))
}

#[utoipa::path(put, path = "/auth/credentials/activate", tag = "credentials",
    request_body = CredentialUuidBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), Errors))]
async fn activate_credential(
    State(s): State<AppState>,
    Auth(p): Auth,
    signed: Signed<CredentialUuidBody>,
) -> ApiResult<Json<MessageResponse>> {
    Ok(Json(
        s.auth
            .set_credential_active(&p, &signed.body.credential_uuid, true)
            .await?,
    ))
}

/// Deactivate one: it can no longer log in or sign actions. The last active one cannot be.
#[utoipa::path(put, path = "/auth/credentials/deactivate", tag = "credentials",
    request_body = CredentialUuidBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), Errors))]
async fn deactivate_credential(
    State(s): State<AppState>,
    Auth(p): Auth,
    signed: Signed<CredentialUuidBody>,
) -> ApiResult<Json<MessageResponse>> {
    Ok(Json(
        s.auth
            .set_credential_active(&p, &signed.body.credential_uuid, false)
            .await?,
    ))
}

/// A one-time code with which another device adds a credential to the caller's user.
#[utoipa::path(post, path = "/auth/credentials/code", tag = "credentials",
    request_body = CreateCredentialCodeBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = CredentialCodeResponse), Errors))]
async fn create_credential_code(
    State(s): State<AppState>,
    Auth(p): Auth,
    signed: Signed<CreateCredentialCodeBody>,
) -> ApiResult<Json<CredentialCodeResponse>> {
    Ok(Json(s.auth.create_credential_code(&p, signed.body).await?))
}

/// On the second device: the code buys a credential challenge (no token needed).
#[utoipa::path(post, path = "/auth/credentials/code/init", tag = "credentials",
    request_body = CreateCredentialChallengeWithCodeBody,
    responses((status = 200, body = CredentialChallengeResponse), Errors))]
async fn credential_init_with_code(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<CreateCredentialChallengeWithCodeBody>,
) -> ApiResult<Json<CredentialChallengeResponse>> {
    Ok(Json(s.auth.credential_init_with_code(body).await?))
}

/// On the second device: add the credential that answered the code's challenge.
#[utoipa::path(post, path = "/auth/credentials/code/verify", tag = "credentials",
    request_body = CreateCredentialBody,
    responses((status = 200, body = CredentialResponse), Errors))]
async fn create_credential_with_code(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<CreateCredentialBody>,
) -> ApiResult<Json<CredentialResponse>> {
    Ok(Json(s.auth.create_credential_with_code(body).await?))
}
