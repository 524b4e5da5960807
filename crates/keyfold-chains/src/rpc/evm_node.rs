//! EVM nodes (any Ethereum JSON-RPC endpoint): fee history, gas estimates, the pending
//! nonce, ERC-20 reads by `eth_call`, `eth_sendRawTransaction` and receipts.

use async_trait::async_trait;
use keyfold_domain::DomainError;
use keyfold_domain::ports::{
    BroadcastOutcome, ChainTxStatus, EvmTransferFields, TransferBuild, TransferIntent, TransferPlan,
};
use keyfold_types::networks::FeesResponse;
use keyfold_types::transfers::{Asset, AssetMetadata, TransferPriority};
use serde_json::{Value, json};

use super::{ChainRpcs, FamilyRpc, bad_answer, native_of, object};
use crate::Network;
use crate::evm::fees::{FEE_HISTORY_BLOCKS, FEE_PERCENTILES, from_fee_history};
use crate::evm::{self, Address, U256};

/// A JSON-RPC hex quantity.
fn quantity(n: Network, v: &Value) -> Result<U256, DomainError> {
    v.as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|h| U256::from_str_radix(if h.is_empty() { "0" } else { h }, 16).ok())
        .ok_or_else(|| bad_answer(n, "not a hex quantity"))
}

fn small(n: Network, v: &Value) -> Result<u64, DomainError> {
    u64::try_from(quantity(n, v)?).map_err(|_| bad_answer(n, "quantity out of range"))
}

fn hex_data(n: Network, v: &Value) -> Result<Vec<u8>, DomainError> {
    v.as_str()
        .and_then(|s| crate::evm::parse_hex(s, "data").ok())
        .ok_or_else(|| bad_answer(n, "not hex data"))
}

fn address_field(what: &str, n: Network, s: &str) -> Result<Address, DomainError> {
    evm::parse_address(s)
        .map_err(|e| DomainError::invalid(format!("{what} is not a valid {n} address: {e}")))
}

fn amount_of(s: &str) -> Result<U256, DomainError> {
    U256::from_str_radix(s, 10)
        .map_err(|_| DomainError::invalid("amount must be a positive integer string below 2^256"))
}

/// Gas headroom for contract calls, whose cost can move between estimate and inclusion.
fn with_headroom(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 5)
}

/// An EVM network's node, through the shared transport.
pub(super) struct Evm<'a> {
    pub(super) rpc: &'a ChainRpcs,
}

impl Evm<'_> {
    fn chain_id(&self, n: Network) -> Result<u64, DomainError> {
        self.rpc
            .chain_ids
            .get(&n)
            .copied()
            .or_else(|| n.default_chain_id())
            .ok_or_else(|| DomainError::invalid(format!("{n} has no chain id")))
    }

    async fn eth_call(
        &self,
        n: Network,
        to: Address,
        data: Vec<u8>,
    ) -> Result<Result<Vec<u8>, String>, DomainError> {
        match self
            .rpc
            .call_raw(
                n,
                "eth_call",
                json!([{"to": to.to_string(), "data": evm::to_hex(data)}, "latest"]),
            )
            .await?
        {
            Ok(v) => Ok(Ok(hex_data(n, &v)?)),
            Err(m) => Ok(Err(m)),
        }
    }

    /// An ERC-20's balance of `owner`, decimals and symbol. `Ok(Err(_))` when the contract
    /// does not behave like an ERC-20.
    async fn erc20(
        &self,
        n: Network,
        contract: Address,
        owner: Address,
    ) -> Result<Result<(U256, u8, Option<String>), String>, DomainError> {
        use evm::transfer::*;
        let (bal, dec, sym) = tokio::join!(
            self.eth_call(n, contract, erc20_balance_of_data(owner)),
            self.eth_call(n, contract, erc20_decimals_data()),
            self.eth_call(n, contract, erc20_symbol_data()),
        );
        let not_erc20 = || format!("{contract} does not answer as an ERC-20 contract");
        let balance = match bal? {
            Ok(r) => match decode_uint(&r) {
                Ok(b) => b,
                Err(_) => return Ok(Err(not_erc20())),
            },
            Err(_) => return Ok(Err(not_erc20())),
        };
        let decimals = match dec? {
            Ok(r) => match decode_uint(&r).ok().and_then(|d| u8::try_from(d).ok()) {
                Some(d) => d,
                None => return Ok(Err(not_erc20())),
            },
            Err(_) => return Ok(Err(not_erc20())),
        };
        let symbol = sym?.ok().and_then(|r| decode_string(&r).ok());
        Ok(Ok((balance, decimals, symbol)))
    }

    async fn native_balance(
        &self,
        n: Network,
        owner: Address,
        tag: &str,
    ) -> Result<U256, DomainError> {
        let v = self
            .rpc
            .call(n, "eth_getBalance", json!([owner.to_string(), tag]))
            .await?;
        quantity(n, &v)
    }

    async fn tx_known(&self, n: Network, hash: &str) -> Result<bool, DomainError> {
        let v = self
            .rpc
            .call(n, "eth_getTransactionByHash", json!([hash]))
            .await?;
        Ok(!v.is_null())
    }

    async fn evm_broadcast(
        &self,
        n: Network,
        signed_tx: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        let raw = evm::parse_hex(signed_tx, "signed transaction")
            .map_err(|e| DomainError::internal(e.to_string()))?;
        let hash = evm::to_hex(alloy_primitives::keccak256(&raw));
        match self
            .rpc
            .call_raw(n, "eth_sendRawTransaction", json!([signed_tx]))
            .await?
        {
            Ok(_) => Ok(BroadcastOutcome::Accepted),
            Err(msg) => {
                // Sent before (a retry after a crash or a lost answer): the node knows it.
                if self.tx_known(n, &hash).await? {
                    return Ok(BroadcastOutcome::Accepted);
                }
                let lower = msg.to_ascii_lowercase();
                if lower.contains("already known") || lower.contains("known transaction") {
                    return Ok(BroadcastOutcome::Accepted);
                }
                Ok(BroadcastOutcome::Rejected {
                    nonce_used: lower.contains("nonce too low")
                        || lower.contains("nonce is too low"),
                    reason: msg,
                })
            }
        }
    }

    async fn evm_status(&self, n: Network, tx_hash: &str) -> Result<ChainTxStatus, DomainError> {
        let receipt = self
            .rpc
            .call(n, "eth_getTransactionReceipt", json!([tx_hash]))
            .await?;
        if receipt.is_null() {
            return Ok(if self.tx_known(n, tx_hash).await? {
                ChainTxStatus::Pending
            } else {
                ChainTxStatus::Unknown
            });
        }
        let field = |k: &str| receipt.get(k).cloned().unwrap_or(Value::Null);
        let block_number = small(n, &field("blockNumber"))?;
        let gas_used = quantity(n, &field("gasUsed"))?;
        let price = quantity(n, &field("effectiveGasPrice"))?;
        let fee = Some(gas_used.saturating_mul(price).to_string());
        let block_time = match self
            .rpc
            .call(
                n,
                "eth_getBlockByNumber",
                json!([format!("0x{block_number:x}"), false]),
            )
            .await
        {
            Ok(b) => b
                .get("timestamp")
                .and_then(|t| small(n, t).ok())
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| s.saturating_mul(1000)),
            Err(_) => None,
        };
        Ok(if field("status").as_str() == Some("0x1") {
            ChainTxStatus::Confirmed {
                block_number,
                block_time,
                fee,
            }
        } else {
            ChainTxStatus::Reverted {
                block_number,
                block_time,
                fee,
            }
        })
    }

    /// EVM: gas from `eth_estimateGas`, fees from the fee history, the pending nonce.
    async fn evm_plan(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
    ) -> Result<TransferPlan, DomainError> {
        let from = address_field("the wallet", n, from)?;
        let (recipient, amount, contract) = match intent {
            TransferIntent::Native { to, amount } => {
                (address_field("to", n, to)?, amount_of(amount)?, None)
            }
            TransferIntent::Erc20 {
                contract,
                to,
                amount,
            } => (
                address_field("to", n, to)?,
                amount_of(amount)?,
                Some(address_field("contract", n, contract)?),
            ),
        };
        let (nonce, fees, balance) = tokio::join!(
            self.rpc.call(
                n,
                "eth_getTransactionCount",
                json!([from.to_string(), "pending"])
            ),
            self.evm_fees(n),
            self.native_balance(n, from, "pending"),
        );
        let chain_nonce = small(n, &nonce?)?;
        let FeesResponse::Eip1559 {
            slow,
            standard,
            fast,
            ..
        } = fees?
        else {
            return Err(DomainError::internal("EVM fees of another family"));
        };
        let level = match priority {
            TransferPriority::Slow => slow,
            TransferPriority::Standard => standard,
            TransferPriority::Fast => fast,
        };
        let fee = |s: &str| s.parse::<u128>().map_err(|_| bad_answer(n, "fee level"));
        let max_fee = fee(&level.max_fee_per_gas)?;
        let tip = fee(&level.max_priority_fee_per_gas)?;
        let balance = balance?;
        let (tx_to, value, data, asset) = match contract {
            None => {
                if balance < amount {
                    return Err(DomainError::invalid(format!(
                        "insufficient funds: the wallet holds {balance} and the transfer \
                         needs {amount} plus fees"
                    )));
                }
                (recipient, amount, Vec::new(), native_of(n))
            }
            Some(c) => {
                let (held, decimals, symbol) = self
                    .erc20(n, c, from)
                    .await?
                    .map_err(DomainError::invalid)?;
                if held < amount {
                    return Err(DomainError::invalid(format!(
                        "insufficient funds: the wallet holds {held} of token {c} and the \
                         transfer needs {amount}"
                    )));
                }
                let asset = AssetMetadata {
                    symbol,
                    decimals: Some(decimals),
                    verified: None,
                };
                (
                    c,
                    U256::ZERO,
                    evm::transfer::erc20_transfer_data(recipient, amount),
                    asset,
                )
            }
        };
        let estimate = self
            .rpc
            .call_raw(
                n,
                "eth_estimateGas",
                json!([{
                    "from": from.to_string(),
                    "to": tx_to.to_string(),
                    "value": format!("0x{value:x}"),
                    "data": evm::to_hex(&data),
                }]),
            )
            .await?
            .map_err(|m| DomainError::invalid(format!("the network refuses this transfer: {m}")))?;
        let estimate = small(n, &estimate)?;
        // A plain payment costs exactly what it costs; a contract call gets headroom.
        let gas_limit = if data.is_empty() && estimate == 21_000 {
            estimate
        } else {
            with_headroom(estimate)
        };
        let worst = U256::from(gas_limit)
            .saturating_mul(U256::from(max_fee))
            .saturating_add(value);
        if balance < worst {
            return Err(DomainError::invalid(format!(
                "insufficient funds: the wallet holds {balance} and the transfer may cost up \
                 to {worst} (value + gas limit {gas_limit} × max fee {max_fee})"
            )));
        }
        let details = json!({
            "gasLimit": gas_limit.to_string(),
            "maxFeePerGas": max_fee.to_string(),
            "maxPriorityFeePerGas": tip.to_string(),
            "chainId": self.chain_id(n)?,
        });
        Ok(TransferPlan {
            chain_nonce: Some(chain_nonce),
            recipient: recipient.to_string(),
            contract: contract.map(|c| c.to_string()),
            asset,
            details: object(details),
            spends: Vec::new(),
            build: TransferBuild::Evm(EvmTransferFields {
                chain_id: self.chain_id(n)?,
                tx_to: tx_to.to_string(),
                tx_value: value.to_string(),
                data: evm::to_hex(&data),
                gas_limit,
                max_fee_per_gas: max_fee,
                max_priority_fee_per_gas: tip,
            }),
        })
    }

    /// EIP-1559 levels from `eth_feeHistory`.
    async fn evm_fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
        let history = self
            .rpc
            .call(
                n,
                "eth_feeHistory",
                json!([
                    format!("0x{FEE_HISTORY_BLOCKS:x}"),
                    "latest",
                    FEE_PERCENTILES
                ]),
            )
            .await?;
        from_fee_history(n.as_str(), &history).map_err(|e| {
            DomainError::Unavailable(format!("the {n} RPC endpoint answered badly: {e}"))
        })
    }
}

#[async_trait]
impl FamilyRpc for Evm<'_> {
    async fn fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
        self.evm_fees(n).await
    }

    async fn plan_transfer(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        _reserved: &[String],
        _transfer_id: &str,
    ) -> Result<TransferPlan, DomainError> {
        self.evm_plan(n, from, intent, priority).await
    }

    async fn broadcast(
        &self,
        n: Network,
        signed_tx: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        self.evm_broadcast(n, signed_tx).await
    }

    async fn status(&self, n: Network, tx_hash: &str) -> Result<ChainTxStatus, DomainError> {
        self.evm_status(n, tx_hash).await
    }

    async fn balances(
        &self,
        n: Network,
        address: &str,
        contracts: &[String],
    ) -> Result<Vec<Asset>, DomainError> {
        let owner = address_field("the wallet", n, address)?;
        let native = native_of(n);
        let mut assets = vec![Asset::Native {
            symbol: native.symbol,
            decimals: native.decimals.unwrap_or(18),
            balance: self.native_balance(n, owner, "latest").await?.to_string(),
            verified: Some(true),
        }];
        for c in contracts {
            let Ok(contract) = evm::parse_address(c) else {
                continue;
            };
            if let Ok((balance, decimals, symbol)) = self.erc20(n, contract, owner).await? {
                assets.push(Asset::Erc20 {
                    contract: contract.to_string(),
                    symbol,
                    decimals,
                    balance: balance.to_string(),
                    verified: None,
                });
            }
        }
        Ok(assets)
    }
}
