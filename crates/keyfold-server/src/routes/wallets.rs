//! Wallets and their signatures (`/wallets`).

use axum::Json;
use axum::extract::State;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::keys::{GenerateSignatureBody, SignatureResponse};
use keyfold_types::wallets::{
    CreateWalletBody, DelegateWalletBody, DelegateWalletResponse, ListWalletsQuery,
    UpdateWalletBody, WalletIdPath, WalletResponse, WalletSignaturePath, WalletTagsBody,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{Approved, PathId, PathParams, Perm, QueryParams, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_wallet, list_wallets))
        .routes(routes!(get_wallet, update_wallet))
        .routes(routes!(delegate_wallet))
        .routes(routes!(tag_wallet, untag_wallet))
        .routes(routes!(generate_signature, list_signatures))
        .routes(routes!(get_signature))
}

/// Hand a wallet created with `delayDelegation` (its key, and so every wallet on that key)
/// to an end user, who alone can sign with it from then on. Final.
#[utoipa::path(post, path = "/wallets/{walletId}/delegate", tag = "wallets",
    params(WalletIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = DelegateWalletBody,
    security(("bearer" = [])),
    responses((status = 200, body = DelegateWalletResponse), Errors))]
async fn delegate_wallet(
    State(s): State<AppState>,
    Perm(g): Perm<op::KeysDelegate>,
    PathId(id): PathId,
    signed: Signed<DelegateWalletBody>,
) -> ApiResult<Json<DelegateWalletResponse>> {
    let w = s
        .keys()?
        .delegate_wallet(&g, &id, &signed.body.user_id)
        .await?;
    Ok(Json(DelegateWalletResponse {
        wallet_id: w.id,
        status: "Delegated".into(),
    }))
}

/// Create a wallet: a new key (distributed key generation) bound to a network, with its
/// address — or an existing key on another network (`signingKey.id`).
#[utoipa::path(post, path = "/wallets", tag = "wallets",
    request_body = CreateWalletBody,
    params(("x-dfns-useraction" = String, Header, description = "signed user action token")),
    security(("bearer" = [])),
    responses((status = 200, body = WalletResponse), Errors))]
async fn create_wallet(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsCreate>,
    signed: Signed<CreateWalletBody>,
) -> ApiResult<Json<WalletResponse>> {
    Ok(Json(s.keys()?.create_wallet(&g, signed.body).await?))
}

#[utoipa::path(get, path = "/wallets", tag = "wallets",
    params(ListWalletsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<WalletResponse>), Errors))]
async fn list_wallets(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsRead>,
    QueryParams(q): QueryParams<ListWalletsQuery>,
) -> ApiResult<Json<ListResponse<WalletResponse>>> {
    Ok(Json(s.keys()?.list_wallets(&g, q).await?.into_list()))
}

#[utoipa::path(get, path = "/wallets/{walletId}", tag = "wallets",
    params(WalletIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = WalletResponse), Errors))]
async fn get_wallet(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsRead>,
    PathId(id): PathId,
) -> ApiResult<Json<WalletResponse>> {
    Ok(Json(s.keys()?.get_wallet(&g, &id).await?))
}

#[utoipa::path(put, path = "/wallets/{walletId}", tag = "wallets",
    params(WalletIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = UpdateWalletBody,
    security(("bearer" = [])),
    responses((status = 200, body = WalletResponse), Errors))]
async fn update_wallet(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsUpdate>,
    PathId(id): PathId,
    signed: Signed<UpdateWalletBody>,
) -> ApiResult<Json<WalletResponse>> {
    Ok(Json(s.keys()?.update_wallet(&g, &id, signed.body).await?))
}

#[utoipa::path(put, path = "/wallets/{walletId}/tags", tag = "wallets",
    params(WalletIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = WalletTagsBody,
    security(("bearer" = [])),
    responses((status = 200, body = WalletResponse), Errors))]
async fn tag_wallet(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTagsAdd>,
    PathId(id): PathId,
    signed: Signed<WalletTagsBody>,
) -> ApiResult<Json<WalletResponse>> {
    Ok(Json(s.keys()?.add_tags(&g, &id, &signed.body.tags).await?))
}

#[utoipa::path(delete, path = "/wallets/{walletId}/tags", tag = "wallets",
    params(WalletIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = WalletTagsBody,
    security(("bearer" = [])),
    responses((status = 200, body = WalletResponse), Errors))]
async fn untag_wallet(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTagsDelete>,
    PathId(id): PathId,
    signed: Signed<WalletTagsBody>,
) -> ApiResult<Json<WalletResponse>> {
    Ok(Json(
        s.keys()?.remove_tags(&g, &id, &signed.body.tags).await?,
    ))
}

/// Sign with a wallet, in its network's terms (EVM: EIP-191 messages, EIP-712, transactions).
#[utoipa::path(post, path = "/wallets/{walletId}/signatures", tag = "wallets",
    params(WalletIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = GenerateSignatureBody,
    security(("bearer" = [])),
    responses((status = 200, body = SignatureResponse), Errors))]
async fn generate_signature(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsGenerateSignature>,
    PathId(id): PathId,
    approved: Approved<GenerateSignatureBody>,
) -> ApiResult<Json<SignatureResponse>> {
    Ok(Json(
        s.keys()?
            .sign_with_wallet(&g, &id, approved.body, approved.approving)
            .await?,
    ))
}

#[utoipa::path(get, path = "/wallets/{walletId}/signatures", tag = "wallets",
    params(WalletIdPath, ListWalletsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<SignatureResponse>), Errors))]
async fn list_signatures(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsRead>,
    PathId(id): PathId,
    QueryParams(q): QueryParams<ListWalletsQuery>,
) -> ApiResult<Json<ListResponse<SignatureResponse>>> {
    Ok(Json(
        s.keys()?
            .list_wallet_signatures(&g, &id, q)
            .await?
            .into_list(),
    ))
}

#[utoipa::path(get, path = "/wallets/{walletId}/signatures/{signatureId}", tag = "wallets",
    params(WalletSignaturePath),
    security(("bearer" = [])),
    responses((status = 200, body = SignatureResponse), Errors))]
async fn get_signature(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsRead>,
    PathParams((wallet_id, signature_id)): PathParams<(String, String)>,
) -> ApiResult<Json<SignatureResponse>> {
    Ok(Json(
        s.keys()?
            .get_wallet_signature(&g, &wallet_id, &signature_id)
            .await?,
    ))
}
