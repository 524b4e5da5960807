//! Network information (`/networks/fees`). Dfns `generated/networks`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /networks/fees?network=…`
#[derive(Debug, Clone, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct FeesQuery {
    /// The network, spelled as in the Dfns API (`EthereumSepolia`, …).
    #[param(max_length = 64)]
    pub network: String,
}

/// One EIP-1559 fee level, in wei (decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Eip1559Fee {
    pub max_priority_fee_per_gas: String,
    pub max_fee_per_gas: String,
}

/// Fee estimates for a network, by family.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
pub enum FeesResponse {
    /// An EVM network with EIP-1559 fees.
    Eip1559 {
        network: String,
        /// The newest block the estimate looked at.
        block_number: u64,
        slow: Eip1559Fee,
        standard: Eip1559Fee,
        fast: Eip1559Fee,
        /// The base fee of the next block, in wei.
        base_fee_per_gas: String,
    },
    /// A Bitcoin network: Bitcoin Core's `estimatesmartfee` per confirmation target.
    Bitcoin {
        network: String,
        /// The chain's height when estimated.
        block_number: u64,
        slow: BitcoinFee,
        standard: BitcoinFee,
        fast: BitcoinFee,
    },
    /// A Solana network: recent prioritization fees (`getRecentPrioritizationFees`).
    Solana {
        network: String,
        /// The slot when estimated.
        block_number: u64,
        slow: SolanaFee,
        standard: SolanaFee,
        fast: SolanaFee,
    },
}

/// One Bitcoin fee level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BitcoinFee {
    /// sat per virtual byte, decimal.
    pub fee_rate: String,
    /// The confirmation target (blocks) this rate aims at.
    pub block_horizon: u32,
}

/// One Solana fee level: the price of a compute unit on top of the base fee.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SolanaFee {
    /// micro-lamports per compute unit, decimal.
    pub compute_unit_price: String,
}
