//! A Solana RPC node: balances, the rent-exempt minimum and the latest blockhash for a
//! transfer, `sendTransaction`, `getSignatureStatuses` / `getTransaction`, and recent
//! prioritization fees.

use async_trait::async_trait;
use keyfold_domain::DomainError;
use keyfold_domain::ports::{
    BroadcastOutcome, ChainTxStatus, TransferBuild, TransferIntent, TransferPlan,
};
use keyfold_types::keys::SignatureKind;
use keyfold_types::networks::FeesResponse;
use keyfold_types::transfers::{Asset, TransferPriority};
use serde_json::{Value, json};

use super::{ChainRpcs, FamilyRpc, bad_answer, native_of, object};
use crate::{Network, evm, solana};

/// The price (micro-lamports per compute unit) a `priority` pays: the 25th, 50th or 75th
/// percentile of what recent slots paid; 0 (no priority fee) when nobody paid any.
fn price_for(sorted: &[u64], priority: TransferPriority) -> u64 {
    let pct = match priority {
        TransferPriority::Slow => 25,
        TransferPriority::Standard => 50,
        TransferPriority::Fast => 75,
    };
    if sorted.is_empty() {
        0
    } else {
        sorted[(sorted.len() - 1) * pct / 100]
    }
}

/// A Solana network's RPC node, through the shared transport.
pub(super) struct Solana<'a> {
    pub(super) rpc: &'a ChainRpcs,
}

impl Solana<'_> {
    /// Solana: one System-program transfer, paid and signed by the wallet, valid until the
    /// latest blockhash expires (about a minute; a transfer lost longer is failed by the
    /// tracker), with a priority fee when recent slots paid one (the priority's percentile of
    /// their compute-unit prices). Refused here: too little money for the amount and the fee, a
    /// payment that would leave the wallet below the rent-exempt minimum (unless it empties
    /// it), or a first payment to an account too small to create it.
    async fn solana_plan(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        transfer_id: &str,
    ) -> Result<TransferPlan, DomainError> {
        let TransferIntent::Native { to, amount } = intent else {
            return Err(DomainError::invalid(format!(
                "Erc20 transfers are for EVM networks; {n} transfers are Native"
            )));
        };
        let bad = |e: crate::Error| DomainError::invalid(e.to_string());
        let from_key = solana::parse_address("the wallet", from).map_err(bad)?;
        let to_key = solana::parse_address("to", to).map_err(bad)?;
        let lamports: u64 = amount
            .parse()
            .map_err(|_| DomainError::invalid("amount is more lamports than exist"))?;
        let lamports_of = |v: Result<Value, DomainError>| -> Result<u64, DomainError> {
            v?.get("value")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad_answer(n, "getBalance without value"))
        };
        let to_text = solana::address(&to_key).map_err(bad)?;
        let (balance, to_balance, rent, latest, prices) = tokio::join!(
            self.rpc
                .call(n, "getBalance", json!([from, {"commitment": "confirmed"}])),
            self.rpc.call(
                n,
                "getBalance",
                json!([to_text, {"commitment": "confirmed"}])
            ),
            self.rpc
                .call(n, "getMinimumBalanceForRentExemption", json!([0])),
            self.rpc.call(
                n,
                "getLatestBlockhash",
                json!([{"commitment": "confirmed"}])
            ),
            self.recent_prices(n),
        );
        let price = price_for(&prices?, priority);
        let (balance, to_balance) = (lamports_of(balance)?, lamports_of(to_balance)?);
        let rent = rent?
            .as_u64()
            .ok_or_else(|| bad_answer(n, "rent exemption"))?;
        let latest = latest?;
        let blockhash = latest
            .pointer("/value/blockhash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_answer(n, "getLatestBlockhash without blockhash"))?;
        let fee = solana::LAMPORTS_PER_SIGNATURE.saturating_add(solana::priority_fee(price));
        // The fee is taken first, and the wallet must still be rent-exempt after it; then
        // the payment, after which it must be rent-exempt or empty.
        let Some(after_fee) = balance.checked_sub(fee).filter(|a| *a >= rent) else {
            return Err(DomainError::invalid(format!(
                "insufficient funds: the wallet holds {balance} lamports; paying the fee of \
                 {fee} must leave it at least the rent-exempt minimum of {rent}"
            )));
        };
        let left = if from_key == to_key {
            after_fee.checked_sub(lamports).map(|_| after_fee)
        } else {
            after_fee.checked_sub(lamports)
        };
        let Some(left) = left else {
            return Err(DomainError::invalid(format!(
                "insufficient funds: the wallet holds {balance} lamports and the transfer \
                 needs {lamports} plus a fee of {fee}"
            )));
        };
        if left != 0 && left < rent {
            return Err(DomainError::invalid(format!(
                "the transfer would leave the wallet with {left} lamports, below the \
                 rent-exempt minimum of {rent}: send everything but the fee, or leave at \
                 least {rent}"
            )));
        }
        if to_balance == 0 && lamports < rent {
            return Err(DomainError::invalid(format!(
                "the recipient account does not exist yet: a first transfer to it must be \
                 at least the rent-exempt minimum of {rent} lamports"
            )));
        }
        let unsigned =
            solana::unsigned_transfer(from_key, to_key, lamports, blockhash, transfer_id, price)
                .map_err(|e| {
                    DomainError::Unavailable(format!("the {n} RPC endpoint answered badly: {e}"))
                })?;
        let details = json!({
            "fee": fee.to_string(),
            "computeUnitPrice": price.to_string(),
            "computeUnitLimit": (price > 0).then_some(solana::TRANSFER_COMPUTE_UNITS),
            "recentBlockhash": blockhash,
            "lastValidBlockHeight": latest.pointer("/value/lastValidBlockHeight"),
        });
        Ok(TransferPlan {
            chain_nonce: None,
            recipient: to_text,
            contract: None,
            asset: native_of(n),
            details: object(details),
            spends: Vec::new(),
            build: TransferBuild::Ready(SignatureKind::Transaction {
                transaction: Value::String(evm::to_hex(&unsigned)),
            }),
        })
    }

    /// Percentiles (25th, 50th, 75th) of the compute-unit prices paid in recent slots.
    async fn solana_fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
        let (prices, slot) = tokio::join!(
            self.recent_prices(n),
            self.rpc
                .call(n, "getSlot", json!([{"commitment": "confirmed"}])),
        );
        let prices = prices?;
        let at = |p: TransferPriority| keyfold_types::networks::SolanaFee {
            compute_unit_price: price_for(&prices, p).to_string(),
        };
        Ok(FeesResponse::Solana {
            network: n.as_str().to_string(),
            block_number: slot?.as_u64().ok_or_else(|| bad_answer(n, "getSlot"))?,
            slow: at(TransferPriority::Slow),
            standard: at(TransferPriority::Standard),
            fast: at(TransferPriority::Fast),
        })
    }

    /// The compute-unit prices (micro-lamports) paid in recent slots, sorted.
    async fn recent_prices(&self, n: Network) -> Result<Vec<u64>, DomainError> {
        let recent = self
            .rpc
            .call(n, "getRecentPrioritizationFees", json!([]))
            .await?;
        let mut prices = recent
            .as_array()
            .ok_or_else(|| bad_answer(n, "getRecentPrioritizationFees"))?
            .iter()
            .map(|e| e.get("prioritizationFee").and_then(Value::as_u64))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| bad_answer(n, "getRecentPrioritizationFees entry"))?;
        prices.sort_unstable();
        Ok(prices)
    }

    /// Solana's `sendTransaction` (base64 wire bytes).
    async fn solana_broadcast(
        &self,
        n: Network,
        signed_hex: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        use base64::Engine as _;
        let raw = evm::parse_hex(signed_hex, "signed transaction")
            .map_err(|e| DomainError::internal(e.to_string()))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        match self
            .rpc
            .call_raw(
                n,
                "sendTransaction",
                json!([b64, {"encoding": "base64", "preflightCommitment": "confirmed"}]),
            )
            .await?
        {
            Ok(_) => Ok(BroadcastOutcome::Accepted),
            Err(msg) => {
                if msg.to_ascii_lowercase().contains("already been processed") {
                    return Ok(BroadcastOutcome::Accepted);
                }
                Ok(BroadcastOutcome::Rejected {
                    reason: msg,
                    nonce_used: false,
                })
            }
        }
    }

    /// Solana's `getSignatureStatuses` (with history), then the fee from `getTransaction`.
    async fn solana_status(&self, n: Network, sig: &str) -> Result<ChainTxStatus, DomainError> {
        let v = self
            .rpc
            .call(
                n,
                "getSignatureStatuses",
                json!([[sig], {"searchTransactionHistory": true}]),
            )
            .await?;
        let status = v
            .get("value")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or(Value::Null);
        if status.is_null() {
            return Ok(ChainTxStatus::Unknown);
        }
        let level = status
            .get("confirmationStatus")
            .and_then(Value::as_str)
            .unwrap_or("processed");
        if level == "processed" {
            return Ok(ChainTxStatus::Pending);
        }
        let slot = status
            .get("slot")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_answer(n, "status without slot"))?;
        let tx = self
            .rpc
            .call(
                n,
                "getTransaction",
                json!([sig, {"encoding": "json", "maxSupportedTransactionVersion": 0}]),
            )
            .await
            .unwrap_or(Value::Null);
        let fee = tx
            .get("meta")
            .and_then(|m| m.get("fee"))
            .and_then(Value::as_u64)
            .map(|f| f.to_string());
        let block_time = tx
            .get("blockTime")
            .and_then(Value::as_i64)
            .map(|s| s.saturating_mul(1000));
        let failed = status.get("err").is_some_and(|e| !e.is_null());
        Ok(if failed {
            ChainTxStatus::Reverted {
                block_number: slot,
                block_time,
                fee,
            }
        } else {
            ChainTxStatus::Confirmed {
                block_number: slot,
                block_time,
                fee,
            }
        })
    }
}

#[async_trait]
impl FamilyRpc for Solana<'_> {
    async fn fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
        self.solana_fees(n).await
    }

    async fn plan_transfer(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        _reserved: &[String],
        transfer_id: &str,
    ) -> Result<TransferPlan, DomainError> {
        self.solana_plan(n, from, intent, priority, transfer_id)
            .await
    }

    async fn broadcast(
        &self,
        n: Network,
        signed_tx: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        self.solana_broadcast(n, signed_tx).await
    }

    async fn status(&self, n: Network, tx_hash: &str) -> Result<ChainTxStatus, DomainError> {
        self.solana_status(n, tx_hash).await
    }

    async fn balances(
        &self,
        n: Network,
        address: &str,
        _contracts: &[String],
    ) -> Result<Vec<Asset>, DomainError> {
        let v = self.rpc.call(n, "getBalance", json!([address])).await?;
        let lamports = v
            .get("value")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_answer(n, "getBalance without value"))?;
        let native = native_of(n);
        Ok(vec![Asset::Native {
            symbol: native.symbol,
            decimals: native.decimals.unwrap_or(9),
            balance: lamports.to_string(),
            verified: Some(true),
        }])
    }
}
