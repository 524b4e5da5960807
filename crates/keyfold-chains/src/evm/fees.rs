//! EIP-1559 fee levels from `eth_feeHistory`.
//!
//! The priority fee of each level is the median, over the last [`FEE_HISTORY_BLOCKS`] blocks,
//! of the 10th / 50th / 90th percentile tip paid in each block (empty blocks report 0). The
//! max fee is twice the next block's base fee plus the tip: the base fee can rise at most
//! 12.5 % per block, so doubling it keeps a transaction includable for about six full blocks,
//! while the caller still pays only the base fee actually in force plus the tip.

use keyfold_types::networks::{Eip1559Fee, FeesResponse};
use serde_json::Value;

use crate::error::{Error, Result};

/// How many recent blocks the estimate looks at.
pub const FEE_HISTORY_BLOCKS: u64 = 10;
/// The tip percentiles asked for, one per level (slow, standard, fast).
pub const FEE_PERCENTILES: [u8; 3] = [10, 50, 90];

fn quantity(v: &Value) -> Result<u128> {
    let s = v
        .as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .ok_or_else(|| Error::Internal(format!("not a hex quantity: {v}")))?;
    u128::from_str_radix(s, 16).map_err(|_| Error::Internal(format!("not a hex quantity: {v}")))
}

fn median(mut xs: Vec<u128>) -> u128 {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or(0)
}

/// Fee levels for `network` from an `eth_feeHistory(FEE_HISTORY_BLOCKS, "latest",
/// FEE_PERCENTILES)` result.
pub fn from_fee_history(network: &str, history: &Value) -> Result<FeesResponse> {
    let bad = |what: &str| Error::Internal(format!("eth_feeHistory answer without {what}"));
    let oldest = quantity(
        history
            .get("oldestBlock")
            .ok_or_else(|| bad("oldestBlock"))?,
    )?;
    let base_fees = history
        .get("baseFeePerGas")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("baseFeePerGas"))?;
    let next_base = quantity(base_fees.last().ok_or_else(|| bad("baseFeePerGas"))?)?;
    let blocks = history
        .get("gasUsedRatio")
        .and_then(Value::as_array)
        .map(Vec::len)
        .ok_or_else(|| bad("gasUsedRatio"))?;
    let rewards = history
        .get("reward")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut tips = [0u128; 3];
    for (level, tip) in tips.iter_mut().enumerate() {
        let per_block = rewards
            .iter()
            .map(|r| {
                r.get(level)
                    .map(quantity)
                    .transpose()
                    .map(Option::unwrap_or_default)
            })
            .collect::<Result<Vec<u128>>>()?;
        *tip = median(per_block);
    }
    // Faster never pays a smaller tip than slower.
    tips[1] = tips[1].max(tips[0]);
    tips[2] = tips[2].max(tips[1]);
    let level = |tip: u128| Eip1559Fee {
        max_priority_fee_per_gas: tip.to_string(),
        max_fee_per_gas: next_base.saturating_mul(2).saturating_add(tip).to_string(),
    };
    Ok(FeesResponse::Eip1559 {
        network: network.to_string(),
        block_number: oldest
            .checked_add(blocks.max(1) as u128 - 1)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("a block number that fits 64 bits"))?,
        slow: level(tips[0]),
        standard: level(tips[1]),
        fast: level(tips[2]),
        base_fee_per_gas: next_base.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_from_a_recorded_history() {
        // Shape as returned by geth/anvil for 3 blocks and 3 percentiles.
        let h = json!({
            "oldestBlock": "0x10",
            "baseFeePerGas": ["0x3b9aca00", "0x3b9aca00", "0x4190ab00", "0x47868c00"],
            "gasUsedRatio": [0.5, 1.0, 1.0],
            "reward": [["0x1", "0x5f5e100", "0x77359400"], ["0x0", "0x3b9aca00", "0x3b9aca00"], ["0x2", "0x1", "0x0"]]
        });
        let FeesResponse::Eip1559 {
            block_number,
            slow,
            standard,
            fast,
            base_fee_per_gas,
            network,
        } = from_fee_history("EthereumSepolia", &h).unwrap()
        else {
            panic!("EIP-1559 fees");
        };
        assert_eq!(network, "EthereumSepolia");
        assert_eq!(block_number, 0x12);
        assert_eq!(base_fee_per_gas, 0x47868c00u128.to_string());
        assert_eq!(slow.max_priority_fee_per_gas, "1");
        assert_eq!(standard.max_priority_fee_per_gas, 100_000_000.to_string());
        assert_eq!(fast.max_priority_fee_per_gas, 1_000_000_000.to_string());
        assert_eq!(
            fast.max_fee_per_gas,
            (2 * 0x47868c00u128 + 1_000_000_000).to_string()
        );
    }

    #[test]
    fn empty_blocks_and_garbage() {
        let h =
            json!({"oldestBlock": "0x0", "baseFeePerGas": ["0x7", "0x6"], "gasUsedRatio": [0.0]});
        let FeesResponse::Eip1559 {
            fast, block_number, ..
        } = from_fee_history("Base", &h).unwrap()
        else {
            panic!("EIP-1559 fees");
        };
        assert_eq!(
            (
                fast.max_priority_fee_per_gas.as_str(),
                fast.max_fee_per_gas.as_str(),
                block_number
            ),
            ("0", "12", 0)
        );
        assert!(from_fee_history("Base", &json!({"oldestBlock": 5})).is_err());
        assert!(from_fee_history("Base", &json!({})).is_err());
    }
}
