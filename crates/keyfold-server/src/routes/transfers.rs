//! Transfers, broadcast transactions, balances and history of a wallet
//! (`/wallets/{walletId}/transfers`, `/transactions`, `/assets`, `/history`).

use axum::Json;
use axum::extract::State;
use keyfold_domain::authz::op;
use keyfold_types::ListResponse;
use keyfold_types::transfers::{
    AssetsResponse, BroadcastTransactionBody, HistoryQuery, HistoryResponse, TransactionResponse,
    TransferBody, TransferResponse, WalletTransactionPath, WalletTransferPath,
};
use keyfold_types::wallets::{ListWalletsQuery, WalletIdPath};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{PathId, PathParams, Perm, QueryParams, Signed};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transfer, list_transfers))
        .routes(routes!(get_transfer))
        .routes(routes!(broadcast_transaction, list_transactions))
        .routes(routes!(get_transaction))
        .routes(routes!(get_assets))
        .routes(routes!(get_history))
}

/// Send the network's coin or an ERC-20 token: built (nonce, gas, fees from the network's
/// RPC), signed by the cluster, broadcast, then followed to confirmation in the background.
#[utoipa::path(post, path = "/wallets/{walletId}/transfers", tag = "wallets",
    params(WalletIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = TransferBody,
    security(("bearer" = [])),
    responses((status = 200, body = TransferResponse), Errors))]
async fn transfer(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTransfersCreate>,
    PathId(id): PathId,
    signed: Signed<TransferBody>,
) -> ApiResult<Json<TransferResponse>> {
    let evidence = signed.evidence();
    Ok(Json(
        s.keys()?.transfer(&g, &id, signed.body, evidence).await?,
    ))
}

#[utoipa::path(get, path = "/wallets/{walletId}/transfers", tag = "wallets",
    params(WalletIdPath, ListWalletsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<TransferResponse>), Errors))]
async fn list_transfers(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTransfersRead>,
    PathId(id): PathId,
    QueryParams(q): QueryParams<ListWalletsQuery>,
) -> ApiResult<Json<ListResponse<TransferResponse>>> {
    Ok(Json(
        s.keys()?.list_transfers(&g, &id, q).await?.into_list(),
    ))
}

#[utoipa::path(get, path = "/wallets/{walletId}/transfers/{transferId}", tag = "wallets",
    params(WalletTransferPath),
    security(("bearer" = [])),
    responses((status = 200, body = TransferResponse), Errors))]
async fn get_transfer(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTransfersRead>,
    PathParams((wallet_id, transfer_id)): PathParams<(String, String)>,
) -> ApiResult<Json<TransferResponse>> {
    Ok(Json(
        s.keys()?.get_transfer(&g, &wallet_id, &transfer_id).await?,
    ))
}

/// Sign a transaction the caller built and broadcast it.
#[utoipa::path(post, path = "/wallets/{walletId}/transactions", tag = "wallets",
    params(WalletIdPath, ("x-dfns-useraction" = String, Header, description = "signed user action token")),
    request_body = BroadcastTransactionBody,
    security(("bearer" = [])),
    responses((status = 200, body = TransactionResponse), Errors))]
async fn broadcast_transaction(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTransactionsCreate>,
    PathId(id): PathId,
    signed: Signed<BroadcastTransactionBody>,
) -> ApiResult<Json<TransactionResponse>> {
    let evidence = signed.evidence();
    Ok(Json(
        s.keys()?
            .broadcast_transaction(&g, &id, signed.body, evidence)
            .await?,
    ))
}

#[utoipa::path(get, path = "/wallets/{walletId}/transactions", tag = "wallets",
    params(WalletIdPath, ListWalletsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ListResponse<TransactionResponse>), Errors))]
async fn list_transactions(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTransactionsRead>,
    PathId(id): PathId,
    QueryParams(q): QueryParams<ListWalletsQuery>,
) -> ApiResult<Json<ListResponse<TransactionResponse>>> {
    Ok(Json(
        s.keys()?.list_transactions(&g, &id, q).await?.into_list(),
    ))
}

#[utoipa::path(get, path = "/wallets/{walletId}/transactions/{transactionId}", tag = "wallets",
    params(WalletTransactionPath),
    security(("bearer" = [])),
    responses((status = 200, body = TransactionResponse), Errors))]
async fn get_transaction(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsTransactionsRead>,
    PathParams((wallet_id, transaction_id)): PathParams<(String, String)>,
) -> ApiResult<Json<TransactionResponse>> {
    Ok(Json(
        s.keys()?
            .get_transaction(&g, &wallet_id, &transaction_id)
            .await?,
    ))
}

/// Live balances: the native coin and the ERC-20 tokens this wallet has sent.
#[utoipa::path(get, path = "/wallets/{walletId}/assets", tag = "wallets",
    params(WalletIdPath),
    security(("bearer" = [])),
    responses((status = 200, body = AssetsResponse), Errors))]
async fn get_assets(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsRead>,
    PathId(id): PathId,
) -> ApiResult<Json<AssetsResponse>> {
    Ok(Json(s.keys()?.wallet_assets(&g, &id).await?))
}

/// The wallet's confirmed outgoing transfers, newest first.
#[utoipa::path(get, path = "/wallets/{walletId}/history", tag = "wallets",
    params(WalletIdPath, HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = HistoryResponse), Errors))]
async fn get_history(
    State(s): State<AppState>,
    Perm(g): Perm<op::WalletsRead>,
    PathId(id): PathId,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> ApiResult<Json<HistoryResponse>> {
    Ok(Json(s.keys()?.wallet_history(&g, &id, q).await?))
}
