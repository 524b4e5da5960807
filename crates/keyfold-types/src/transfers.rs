//! Transfers, broadcast transactions, assets and history (`/wallets/{walletId}/transfers`,
//! `/transactions`, `/assets`, `/history`). Dfns `generated/wallets` (`TransferAssetBody`,
//! `GetTransferResponse`, `BroadcastTransactionBody`, `GetTransactionResponse`,
//! `GetWalletAssetsResponse`, `GetWalletHistoryResponse`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::keys::Requester;

/// How much tip a transfer pays (the levels of `GET /networks/fees`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum TransferPriority {
    Slow,
    #[default]
    Standard,
    Fast,
}

/// `POST /wallets/{walletId}/transfers`: what to move. Amounts are integer strings in the
/// asset's smallest unit (wei, token base units).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum TransferBody {
    /// The network's own coin.
    Native {
        #[schema(max_length = 128)]
        to: String,
        #[schema(max_length = 80)]
        amount: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<TransferPriority>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 128)]
        external_id: Option<String>,
    },
    /// An ERC-20 token (`transfer(to, amount)` on `contract`).
    Erc20 {
        #[schema(max_length = 128)]
        contract: String,
        #[schema(max_length = 128)]
        to: String,
        #[schema(max_length = 80)]
        amount: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<TransferPriority>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 128)]
        external_id: Option<String>,
    },
}

impl TransferBody {
    pub fn external_id(&self) -> Option<&str> {
        match self {
            Self::Native { external_id, .. } | Self::Erc20 { external_id, .. } => {
                external_id.as_deref()
            }
        }
    }
    pub fn priority(&self) -> TransferPriority {
        match self {
            Self::Native { priority, .. } | Self::Erc20 { priority, .. } => {
                priority.unwrap_or_default()
            }
        }
    }
}

/// `POST /wallets/{walletId}/transactions`: a transaction the caller built, to be signed and
/// broadcast as is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum BroadcastTransactionBody {
    /// EVM: the unsigned serialized transaction (hex). Solana: the serialized transaction.
    Transaction {
        #[schema(max_length = 262144)]
        transaction: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 128)]
        external_id: Option<String>,
    },
    /// Bitcoin: a PSBT whose inputs are all this wallet's; it is signed, finalized and sent.
    Psbt {
        #[schema(max_length = 262144)]
        psbt: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 128)]
        external_id: Option<String>,
    },
}

impl BroadcastTransactionBody {
    pub fn external_id(&self) -> Option<&str> {
        match self {
            Self::Transaction { external_id, .. } | Self::Psbt { external_id, .. } => {
                external_id.as_deref()
            }
        }
    }
}

/// Where a transfer or transaction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TransferStatus {
    Pending,
    Executing,
    Broadcasted,
    Confirmed,
    Failed,
    Rejected,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Executing => "Executing",
            Self::Broadcasted => "Broadcasted",
            Self::Confirmed => "Confirmed",
            Self::Failed => "Failed",
            Self::Rejected => "Rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Pending" => Self::Pending,
            "Executing" => Self::Executing,
            "Broadcasted" => Self::Broadcasted,
            "Confirmed" => Self::Confirmed,
            "Failed" => Self::Failed,
            "Rejected" => Self::Rejected,
            _ => return None,
        })
    }
    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Failed | Self::Rejected)
    }
}

/// What an asset is, as far as a transfer or a balance needs to say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferMetadata {
    pub asset: AssetMetadata,
}

/// A transfer (`GetTransferResponse`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferResponse {
    pub id: String,
    pub wallet_id: String,
    pub network: String,
    pub requester: Requester,
    pub request_body: serde_json::Value,
    pub metadata: TransferMetadata,
    pub status: TransferStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// What the chain charged, in the native coin's smallest unit (once confirmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee: Option<String>,
    pub date_requested: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_broadcasted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_confirmed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// What was signed: nonce and gas for EVM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// A broadcast transaction (`GetTransactionResponse`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResponse {
    pub id: String,
    pub wallet_id: String,
    pub network: String,
    pub requester: Requester,
    pub request_body: serde_json::Value,
    pub status: TransferStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee: Option<String>,
    pub date_requested: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_broadcasted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_confirmed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct WalletTransferPath {
    #[param(max_length = 512)]
    pub wallet_id: String,
    #[param(max_length = 512)]
    pub transfer_id: String,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct WalletTransactionPath {
    #[param(max_length = 512)]
    pub wallet_id: String,
    #[param(max_length = 512)]
    pub transaction_id: String,
}

/// One balance (`GetWalletAssetsResponse.assets[]`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum Asset {
    Native {
        #[serde(skip_serializing_if = "Option::is_none")]
        symbol: Option<String>,
        decimals: u8,
        balance: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
    },
    Erc20 {
        contract: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        symbol: Option<String>,
        decimals: u8,
        balance: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        verified: Option<bool>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetsResponse {
    pub wallet_id: String,
    pub network: String,
    pub assets: Vec<Asset>,
}

/// `GET /wallets/{walletId}/history` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(max_length = 512)]
    pub pagination_token: Option<String>,
    /// `In` or `Out`.
    #[param(max_length = 8)]
    pub direction: Option<String>,
    /// `NativeTransfer` or `Erc20Transfer`.
    #[param(max_length = 32)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryMetadata {
    pub asset: AssetMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee: Option<AssetMetadata>,
}

/// One on-chain movement of the wallet's assets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    pub wallet_id: String,
    pub network: String,
    /// `NativeTransfer` or `Erc20Transfer`.
    pub kind: String,
    /// `In` or `Out`.
    pub direction: String,
    pub block_number: u64,
    pub tx_hash: String,
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee: Option<String>,
    pub symbol: String,
    pub decimals: u8,
    pub metadata: HistoryMetadata,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryResponse {
    pub wallet_id: String,
    pub items: Vec<HistoryItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
