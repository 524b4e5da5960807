//! Keys and their signatures (`/keys`).

use axum::Json;
use axum::extract::State;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::keys::{
    CreateKeyBody, DelegateKeyBody, DelegateKeyResponse, GenerateSignatureBody, KeyIdPath,
    KeyResponse, KeySignaturePath, ListKeysQuery, SignatureResponse, UpdateKeyBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Approved, Empty, PathId, PathParams, Perm, QueryParams, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(get_key, update_key, delete_key))
        .routes(routes!(delegate_key))
        .routes(routes!(generate_signature, list_signatures))
        .routes(routes!(get_signature))
}

/// Create a key by distributed key generation across the signers.
#[utoipa::path(post, path = "/keys", tag = "keys",
    request_body = CreateKeyBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = KeyResponse), Errors))]
async fn create_key(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysCreate>,
    signed: Signed<CreateKeyBody>,
) -> ApiResult<Json<KeyResponse>> {
    Ok(Json(s.keys()?.create_key(&g, signed.body).await?))
}

/// Hand a key created with `delayDelegation` to an end user, who alone can sign with it from
/// then on. Final.
#[utoipa::path(post, path = "/keys/{keyId}/delegate", tag = "keys",
    params(KeyIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = DelegateKeyBody,
    security(("bearer" = [])),
    responses((status = 200, body = DelegateKeyResponse), Errors))]
async fn delegate_key(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysDelegate>,
    PathId(id): PathId,
    signed: Signed<DelegateKeyBody>,
) -> ApiResult<Json<DelegateKeyResponse>> {
    let key = s
        .keys()?
        .delegate_key(&g, &id, &signed.body.delegate_to)
        .await?;
    Ok(Json(DelegateKeyResponse {
        key_id: key.id,
        status: "Delegated".into(),
    }))
}

#[utoipa::path(get, path = "/keys", tag = "keys",
    params(ListKeysQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<KeyResponse>), Errors))]
async fn list_keys(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysRead>,
    QueryParams(q): QueryParams<ListKeysQuery>,
) -> ApiResult<Json<ListResponse<KeyResponse>>> {
    Ok(Json(s.keys()?.list_keys(&g, q).await?.into_list()))
}

#[utoipa::path(get, path = "/keys/{keyId}", tag = "keys",
    params(KeyIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = KeyResponse), Errors))]
async fn get_key(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysRead>,
    PathId(id): PathId,
) -> ApiResult<Json<KeyResponse>> {
    Ok(Json(s.keys()?.get_key(&g, &id).await?))
}

#[utoipa::path(put, path = "/keys/{keyId}", tag = "keys",
    params(KeyIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = UpdateKeyBody,
    security(("bearer" = [])),
    responses((status = 200, body = KeyResponse), Errors))]
async fn update_key(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysUpdate>,
    PathId(id): PathId,
    signed: Signed<UpdateKeyBody>,
) -> ApiResult<Json<KeyResponse>> {
    Ok(Json(
        s.keys()?.rename_key(&g, &id, &signed.body.name).await?,
    ))
}

/// Archive a key (and its wallets): it can no longer sign.
#[utoipa::path(delete, path = "/keys/{keyId}", tag = "keys",
    params(KeyIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = KeyResponse), Errors))]
async fn delete_key(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysDelete>,
    PathId(id): PathId,
    _signed: Signed<Empty>,
) -> ApiResult<Json<KeyResponse>> {
    Ok(Json(s.keys()?.delete_key(&g, &id).await?))
}

/// Sign with a key. Answers `status: "Signed"` with the signature once the signers are done.
#[utoipa::path(post, path = "/keys/{keyId}/signatures", tag = "keys",
    params(KeyIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = GenerateSignatureBody,
    security(("bearer" = [])),
    responses((status = 200, body = SignatureResponse), Errors))]
async fn generate_signature(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysSignaturesCreate>,
    PathId(id): PathId,
    approved: Approved<GenerateSignatureBody>,
) -> ApiResult<Json<SignatureResponse>> {
    Ok(Json(
        s.keys()?
            .sign_with_key(&g, &id, approved.body, approved.approving)
            .await?,
    ))
}

#[utoipa::path(get, path = "/keys/{keyId}/signatures", tag = "keys",
    params(KeyIdPath, ListKeysQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<SignatureResponse>), Errors))]
async fn list_signatures(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysSignaturesRead>,
    PathId(id): PathId,
    QueryParams(q): QueryParams<ListKeysQuery>,
) -> ApiResult<Json<ListResponse<SignatureResponse>>> {
    Ok(Json(
        s.keys()?.list_key_signatures(&g, &id, q).await?.into_list(),
    ))
}

#[utoipa::path(get, path = "/keys/{keyId}/signatures/{signatureId}", tag = "keys",
    params(KeySignaturePath),
    security(("bearer" = [])),
    responses((status = 200, body = SignatureResponse), Errors))]
async fn get_signature(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysSignaturesRead>,
    PathParams((key_id, signature_id)): PathParams<(String, String)>,
) -> ApiResult<Json<SignatureResponse>> {
    Ok(Json(
        s.keys()?
            .get_key_signature(&g, &key_id, &signature_id)
            .await?,
    ))
}
