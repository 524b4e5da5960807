//! Talking to the chains: JSON-RPC over HTTP to each network's configured endpoint
//! (`[networks.<Name>] rpc_url`), behind the domain's [`ChainRpc`] port.
//!
//! Errors are sorted by whose fault they are: a network with no endpoint configured, or a
//! family whose RPC is not implemented, is the caller's 400; an endpoint that is down, slow or
//! answers nonsense is a 503 (retry later), and its URL (which may carry an API key) is never
//! put in the message.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use keyfold_domain::DomainError;
use keyfold_domain::ports::{
    BroadcastOutcome, ChainRpc, ChainTxStatus, TransferIntent, TransferPlan,
};
use keyfold_types::networks::FeesResponse;
use keyfold_types::transfers::{Asset, AssetMetadata, TransferPriority};
use serde_json::{Value, json};

use crate::evm::fees::{FEE_HISTORY_BLOCKS, FEE_PERCENTILES, from_fee_history};
use crate::evm::{self, Address, U256};
use crate::{Family, Network};

/// Per-call bound: a chain RPC that does not answer in this time counts as down.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JSON-RPC answer read (the calls made here answer in kilobytes).
pub const MAX_RPC_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The configured RPC endpoints.
#[derive(Clone)]
pub struct ChainRpcs {
    http: reqwest::Client,
    endpoints: HashMap<Network, String>,
    chain_ids: HashMap<Network, u64>,
}

impl std::fmt::Debug for ChainRpcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may embed provider API keys.
        f.debug_struct("ChainRpcs")
            .field("networks", &self.endpoints.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ChainRpcs {
    /// Endpoints by Dfns network name, and the configured EVM chain ids (a network without
    /// one uses its public chain id); an unknown name is a configuration error.
    pub fn new(
        endpoints: impl IntoIterator<Item = (String, String)>,
        chain_ids: impl IntoIterator<Item = (String, u64)>,
    ) -> Result<Self, DomainError> {
        let parse = |name: &str| {
            Network::from_str(name)
                .map_err(|e| DomainError::invalid(format!("networks.{name}: {e}")))
        };
        let mut map = HashMap::new();
        for (name, url) in endpoints {
            map.insert(parse(&name)?, url);
        }
        let mut ids = HashMap::new();
        for (name, id) in chain_ids {
            ids.insert(parse(&name)?, id);
        }
        let http = reqwest::Client::builder()
            .timeout(RPC_TIMEOUT)
            .build()
            .map_err(|e| DomainError::internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoints: map,
            chain_ids: ids,
        })
    }

    fn endpoint(&self, n: Network) -> Result<&str, DomainError> {
        self.endpoints.get(&n).map(String::as_str).ok_or_else(|| {
            DomainError::invalid(format!(
                "no RPC endpoint is configured for {n} (set [networks.{n}] rpc_url)"
            ))
        })
    }

    /// One JSON-RPC 2.0 call whose error answer is a failure of the endpoint (503).
    async fn call(&self, n: Network, method: &str, params: Value) -> Result<Value, DomainError> {
        self.call_raw(n, method, params).await?.map_err(|msg| {
            DomainError::Unavailable(format!("the {n} RPC endpoint refused {method}: {msg}"))
        })
    }

    /// One JSON-RPC 2.0 call: `Ok(Err(message))` when the node answered with an error (its
    /// verdict on the request: estimation failed, transaction refused), `Err` when the
    /// endpoint itself failed.
    async fn call_raw(
        &self,
        n: Network,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, String>, DomainError> {
        let url = self.endpoint(n)?;
        let down = |why: String| DomainError::Unavailable(format!("the {n} RPC endpoint {why}"));
        let resp = self
            .http
            .post(url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .map_err(|e| {
                down(if e.is_timeout() {
                    "did not answer in time".into()
                } else {
                    "is unreachable".into()
                })
            })?;
        if !resp.status().is_success() {
            return Err(down(format!("answered HTTP {}", resp.status().as_u16())));
        }
        // A provider cannot make us buffer more than this, whatever it sends.
        let mut resp = resp;
        let mut raw = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| down("broke off its answer".into()))?
        {
            if raw.len() + chunk.len() > MAX_RPC_ANSWER_BYTES {
                return Err(down("answered with an oversized body".into()));
            }
            raw.extend_from_slice(&chunk);
        }
        let body: Value = serde_json::from_slice(&raw)
            .map_err(|_| down("answered something that is not JSON-RPC".into()))?;
        if let Some(err) = body.get("error") {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error");
            return Ok(Err(crate::error::clip(msg)));
        }
        body.get("result")
            .cloned()
            .map(Ok)
            .ok_or_else(|| down("answered without a result".into()))
    }
}

fn parse_network(network: &str) -> Result<Network, DomainError> {
    Network::from_str(network).map_err(|e| DomainError::invalid(e.to_string()))
}

fn evm_only(n: Network, what: &str) -> Result<(), DomainError> {
    if n.family() == Family::Evm {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "{what} on {n} are not supported yet (EVM networks are; Bitcoin and Solana \
             transactions are broadcast through /wallets/{{walletId}}/transactions)"
        )))
    }
}

fn bad_answer(n: Network, what: &str) -> DomainError {
    DomainError::Unavailable(format!("the {n} RPC endpoint answered badly ({what})"))
}

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

/// Native coin of each network.
fn native_of(n: Network) -> AssetMetadata {
    let (symbol, decimals) = match n {
        Network::Polygon | Network::PolygonAmoy => ("POL", 18),
        Network::Bsc | Network::BscTestnet => ("BNB", 18),
        Network::AvalancheC | Network::AvalancheCFuji => ("AVAX", 18),
        Network::Bitcoin
        | Network::BitcoinTestnet3
        | Network::BitcoinTestnet4
        | Network::BitcoinSignet => ("BTC", 8),
        Network::Solana | Network::SolanaDevnet => ("SOL", 9),
        Network::KeyECDSA | Network::KeyEdDSA => ("", 0),
        _ => ("ETH", 18),
    };
    AssetMetadata {
        symbol: (!symbol.is_empty()).then(|| symbol.to_string()),
        decimals: Some(decimals),
        verified: Some(true),
    }
}

/// Gas headroom for contract calls, whose cost can move between estimate and inclusion.
fn with_headroom(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 5)
}

impl ChainRpcs {
    fn chain_id(&self, n: Network) -> Result<u64, DomainError> {
        self.chain_ids
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
            .call(n, "eth_getBalance", json!([owner.to_string(), tag]))
            .await?;
        quantity(n, &v)
    }

    async fn tx_known(&self, n: Network, hash: &str) -> Result<bool, DomainError> {
        let v = self
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

    /// Bitcoin Core's `sendrawtransaction`.
    async fn bitcoin_broadcast(
        &self,
        n: Network,
        raw_hex: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        match self
            .call_raw(n, "sendrawtransaction", json!([raw_hex]))
            .await?
        {
            Ok(_) => Ok(BroadcastOutcome::Accepted),
            Err(msg) => {
                let lower = msg.to_ascii_lowercase();
                if lower.contains("already in block chain")
                    || lower.contains("txn-already-known")
                    || lower.contains("txn-already-in-mempool")
                {
                    return Ok(BroadcastOutcome::Accepted);
                }
                Ok(BroadcastOutcome::Rejected {
                    reason: msg,
                    nonce_used: false,
                })
            }
        }
    }

    /// Bitcoin Core's `getrawtransaction <txid> true`, then the block's height.
    async fn bitcoin_status(&self, n: Network, txid: &str) -> Result<ChainTxStatus, DomainError> {
        let tx = match self
            .call_raw(n, "getrawtransaction", json!([txid, true]))
            .await?
        {
            Ok(tx) => tx,
            // -5: "No such mempool or blockchain transaction".
            Err(_) => return Ok(ChainTxStatus::Unknown),
        };
        let confirmations = tx.get("confirmations").and_then(Value::as_u64).unwrap_or(0);
        let Some(block_hash) = tx.get("blockhash").and_then(Value::as_str) else {
            return Ok(ChainTxStatus::Pending);
        };
        if confirmations == 0 {
            return Ok(ChainTxStatus::Pending);
        }
        let header = self.call(n, "getblockheader", json!([block_hash])).await?;
        let block_number = header
            .get("height")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_answer(n, "block header without height"))?;
        let block_time = tx
            .get("blocktime")
            .and_then(Value::as_i64)
            .map(|s| s.saturating_mul(1000));
        Ok(ChainTxStatus::Confirmed {
            block_number,
            block_time,
            fee: None,
        })
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
impl ChainRpc for ChainRpcs {
    async fn fees(&self, network: &str) -> Result<FeesResponse, DomainError> {
        let n = Network::from_str(network).map_err(|e| DomainError::invalid(e.to_string()))?;
        if n.family() != Family::Evm {
            return Err(DomainError::invalid(format!(
                "fee estimates for {n} are not supported yet (EVM networks are)"
            )));
        }
        let history = self
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

    async fn plan_transfer(
        &self,
        network: &str,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
    ) -> Result<TransferPlan, DomainError> {
        let n = parse_network(network)?;
        evm_only(n, "transfers")?;
        self.endpoint(n)?;
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
            self.call(
                n,
                "eth_getTransactionCount",
                json!([from.to_string(), "pending"])
            ),
            self.fees(network),
            self.native_balance(n, from, "pending"),
        );
        let chain_nonce = small(n, &nonce?)?;
        let FeesResponse::Eip1559 {
            slow,
            standard,
            fast,
            ..
        } = fees?;
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
        Ok(TransferPlan {
            chain_id: self.chain_id(n)?,
            chain_nonce,
            tx_to: tx_to.to_string(),
            tx_value: value.to_string(),
            data: evm::to_hex(&data),
            gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            recipient: recipient.to_string(),
            contract: contract.map(|c| c.to_string()),
            asset,
        })
    }

    fn build_transfer(
        &self,
        network: &str,
        plan: &TransferPlan,
        nonce: u64,
    ) -> Result<String, DomainError> {
        let n = parse_network(network)?;
        evm_only(n, "transfers")?;
        let internal = |what: &str| DomainError::internal(format!("transfer plan: bad {what}"));
        let f = evm::transfer::Eip1559Fields {
            chain_id: plan.chain_id,
            nonce,
            to: evm::parse_address(&plan.tx_to).map_err(|_| internal("to"))?,
            value: U256::from_str_radix(&plan.tx_value, 10).map_err(|_| internal("value"))?,
            data: evm::parse_hex(&plan.data, "data").map_err(|_| internal("data"))?,
            gas_limit: plan.gas_limit,
            max_fee_per_gas: plan.max_fee_per_gas,
            max_priority_fee_per_gas: plan.max_priority_fee_per_gas,
        };
        Ok(evm::to_hex(evm::transfer::unsigned_eip1559(&f)))
    }

    async fn broadcast(
        &self,
        network: &str,
        signed_tx: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        let n = parse_network(network)?;
        match n.family() {
            Family::Evm => self.evm_broadcast(n, signed_tx).await,
            Family::Bitcoin => self.bitcoin_broadcast(n, signed_tx).await,
            Family::Solana => self.solana_broadcast(n, signed_tx).await,
            Family::Key => evm_only(n, "broadcasts").map(|_| BroadcastOutcome::Accepted),
        }
    }

    async fn transaction_status(
        &self,
        network: &str,
        tx_hash: &str,
    ) -> Result<ChainTxStatus, DomainError> {
        let n = parse_network(network)?;
        match n.family() {
            Family::Evm => self.evm_status(n, tx_hash).await,
            Family::Bitcoin => self.bitcoin_status(n, tx_hash).await,
            Family::Solana => self.solana_status(n, tx_hash).await,
            Family::Key => evm_only(n, "transactions").map(|_| ChainTxStatus::Unknown),
        }
    }

    fn native_asset(&self, network: &str) -> Result<AssetMetadata, DomainError> {
        Ok(native_of(parse_network(network)?))
    }

    async fn balances(
        &self,
        network: &str,
        address: &str,
        contracts: &[String],
    ) -> Result<Vec<Asset>, DomainError> {
        let n = parse_network(network)?;
        if n.family() == Family::Solana {
            let v = self.call(n, "getBalance", json!([address])).await?;
            let lamports = v
                .get("value")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad_answer(n, "getBalance without value"))?;
            let native = native_of(n);
            return Ok(vec![Asset::Native {
                symbol: native.symbol,
                decimals: native.decimals.unwrap_or(9),
                balance: lamports.to_string(),
                verified: Some(true),
            }]);
        }
        evm_only(n, "balances")?;
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
