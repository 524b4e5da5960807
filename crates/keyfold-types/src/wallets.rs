//! Wallets (`/wallets`): a key bound to a network, with that network's address.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::keys::{KeyCurve, KeyScheme};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletSigningKeyOptions {
    /// Reuse an existing key (same address on networks that share the format).
    #[schema(max_length = 512)]
    pub id: Option<String>,
    pub scheme: Option<KeyScheme>,
    pub curve: Option<KeyCurve>,
    #[schema(max_length = 512)]
    pub store_id: Option<String>,
}

/// `POST /wallets`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWalletBody {
    #[schema(max_length = 64)]
    pub network: String,
    #[schema(max_length = 128)]
    pub name: Option<String>,
    pub signing_key: Option<WalletSigningKeyOptions>,
    #[schema(max_length = 512)]
    pub delegate_to: Option<String>,
    pub delay_delegation: Option<bool>,
    /// A retry with the same value returns the same wallet.
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletSigningKey {
    pub id: String,
    pub scheme: KeyScheme,
    pub curve: KeyCurve,
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegated_to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum WalletStatus {
    Active,
    Inactive,
    Archived,
}

/// A wallet as every `/wallets` endpoint returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletResponse {
    pub id: String,
    pub network: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub signing_key: WalletSigningKey,
    pub status: WalletStatus,
    pub date_created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_deleted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub custodial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub tags: Vec<String>,
}

/// `POST /wallets/{walletId}/delegate`: hands the wallet's key (created with
/// `delayDelegation`) to an end user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegateWalletBody {
    #[schema(max_length = 64)]
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegateWalletResponse {
    pub wallet_id: String,
    /// Always `Delegated`.
    pub status: String,
}

/// `PUT /wallets/{walletId}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateWalletBody {
    #[schema(max_length = 128)]
    pub name: Option<String>,
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
}

/// `PUT /wallets/{walletId}/tags` and `DELETE /wallets/{walletId}/tags`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WalletTagsBody {
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListWalletsQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(max_length = 512)]
    pub pagination_token: Option<String>,
    #[param(max_length = 512)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct WalletIdPath {
    #[param(max_length = 512)]
    pub wallet_id: String,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct WalletSignaturePath {
    #[param(max_length = 512)]
    pub wallet_id: String,
    #[param(max_length = 512)]
    pub signature_id: String,
}
