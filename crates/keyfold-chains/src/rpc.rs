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
    BroadcastOutcome, ChainRpc, ChainTxStatus, EvmTransferFields, TransferBuild, TransferIntent,
    TransferPlan,
};
use keyfold_types::keys::SignatureKind;
use keyfold_types::networks::FeesResponse;
use keyfold_types::transfers::{Asset, AssetMetadata, TransferPriority};
use serde_json::{Value, json};

use crate::evm::fees::{FEE_HISTORY_BLOCKS, FEE_PERCENTILES, from_fee_history};
use crate::evm::{self, Address, U256};
use crate::{Family, Network, solana};

/// The `estimatesmartfee` confirmation target of `priority`.
fn bitcoin_target(priority: TransferPriority) -> u16 {
    BITCOIN_TARGETS
        .iter()
        .find(|(p, _)| *p == priority)
        .map_or(6, |(_, t)| *t)
}

/// sat per 1000 vbytes as sat/vB, decimal, without trailing zeros.
fn sat_per_vb(sat_per_kvb: u64) -> String {
    let whole = sat_per_kvb / 1000;
    let frac = sat_per_kvb % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:03}")
            .trim_end_matches('0')
            .to_string()
    }
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Per-call bound: a chain RPC that does not answer in this time counts as down.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Bitcoin Core's `scantxoutset` reads the whole UTXO set: on mainnet, a minute or more.
pub const UTXO_SCAN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a scan waits for one another process started on the same node.
const SCAN_BUSY_RETRIES: u32 = 40;
/// A coinbase output is spendable this many blocks after its own (consensus rule).
const COINBASE_MATURITY: u64 = 100;
/// Confirmation targets (blocks) of `estimatesmartfee` per priority.
const BITCOIN_TARGETS: [(TransferPriority, u16); 3] = [
    (TransferPriority::Slow, 24),
    (TransferPriority::Standard, 6),
    (TransferPriority::Fast, 2),
];
/// The largest JSON-RPC answer read (the calls made here answer in kilobytes).
pub const MAX_RPC_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The configured RPC endpoints.
#[derive(Clone)]
pub struct ChainRpcs {
    http: reqwest::Client,
    endpoints: HashMap<Network, String>,
    chain_ids: HashMap<Network, u64>,
    /// Bitcoin Core runs one `scantxoutset` at a time: this process queues its own.
    scans: std::sync::Arc<tokio::sync::Mutex<()>>,
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
            scans: std::sync::Arc::default(),
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
        self.call_raw_within(n, method, params, RPC_TIMEOUT).await
    }

    /// [`Self::call_raw`] with its own time bound (a UTXO-set scan takes longer).
    async fn call_raw_within(
        &self,
        n: Network,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Result<Value, String>, DomainError> {
        let url = self.endpoint(n)?;
        let down = |why: String| DomainError::Unavailable(format!("the {n} RPC endpoint {why}"));
        let resp = self
            .http
            .post(url)
            .timeout(timeout)
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
            self.call(
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

    /// Solana: one System-program transfer, paid and signed by the wallet, valid until the
    /// latest blockhash expires (about a minute; a transfer lost longer is failed by the
    /// tracker). Refused here: too little money for the amount and the 5000-lamport fee, a
    /// payment that would leave the wallet below the rent-exempt minimum (unless it empties
    /// it), or a first payment to an account too small to create it.
    async fn solana_plan(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
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
        let (balance, to_balance, rent, latest) = tokio::join!(
            self.call(n, "getBalance", json!([from, {"commitment": "confirmed"}])),
            self.call(
                n,
                "getBalance",
                json!([to_text, {"commitment": "confirmed"}])
            ),
            self.call(n, "getMinimumBalanceForRentExemption", json!([0])),
            self.call(
                n,
                "getLatestBlockhash",
                json!([{"commitment": "confirmed"}])
            ),
        );
        let (balance, to_balance) = (lamports_of(balance)?, lamports_of(to_balance)?);
        let rent = rent?
            .as_u64()
            .ok_or_else(|| bad_answer(n, "rent exemption"))?;
        let latest = latest?;
        let blockhash = latest
            .pointer("/value/blockhash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_answer(n, "getLatestBlockhash without blockhash"))?;
        let fee = solana::LAMPORTS_PER_SIGNATURE;
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
            solana::unsigned_transfer(from_key, to_key, lamports, blockhash, transfer_id).map_err(
                |e| DomainError::Unavailable(format!("the {n} RPC endpoint answered badly: {e}")),
            )?;
        let details = json!({
            "fee": fee.to_string(),
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

    /// Bitcoin: the wallet's confirmed coins from `scantxoutset` (less those other transfers
    /// hold and immature coinbase outputs), a fee rate from `estimatesmartfee` (the node's
    /// relay minimum when it has no estimate yet), then coin selection and the PSBT.
    async fn bitcoin_plan(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        reserved: &[String],
    ) -> Result<TransferPlan, DomainError> {
        use crate::bitcoin::transfer as btc;
        let TransferIntent::Native { to, amount } = intent else {
            return Err(DomainError::invalid(format!(
                "Erc20 transfers are for EVM networks; {n} transfers are Native"
            )));
        };
        let bad = |e: crate::Error| DomainError::invalid(e.to_string());
        let from_addr = btc::parse_address(n, "the wallet", from).map_err(bad)?;
        let to_addr = btc::parse_address(n, "to", to).map_err(bad)?;
        let amount: u64 = amount
            .parse()
            .ok()
            .filter(|a| *a <= 21_000_000 * 100_000_000)
            .ok_or_else(|| DomainError::invalid("amount is more sats than exist"))?;
        let (coins, rate) = tokio::join!(
            self.bitcoin_coins(n, &from_addr, reserved),
            self.bitcoin_fee_rate(n, priority),
        );
        let ((coins, held), (sat_per_kvb, source)) = (coins?, rate?);
        let built = btc::build_native_transfer(&from_addr, &to_addr, amount, coins, sat_per_kvb)
            .map_err(|e| match e {
                e if e.is_bad_input() && held > 0 => DomainError::invalid(format!(
                    "{e} ({held} sats more are in coins held by transfers in flight)"
                )),
                e => bad(e),
            })?;
        let details = json!({
            "fee": built.fee.to_string(),
            "feeRate": sat_per_vb(sat_per_kvb),
            "feeRateSource": source,
            "vsize": built.vsize,
            "inputs": built.spends,
            "change": built.change.to_string(),
        });
        Ok(TransferPlan {
            chain_nonce: None,
            recipient: to_addr.to_string(),
            contract: None,
            asset: native_of(n),
            details: object(details),
            spends: built.spends,
            build: TransferBuild::Ready(SignatureKind::Psbt {
                psbt: evm::to_hex(&built.psbt),
            }),
        })
    }

    /// The coins of `address` a transfer may spend, and the sats in coins `reserved` holds.
    async fn bitcoin_coins(
        &self,
        n: Network,
        address: &bitcoin::Address,
        reserved: &[String],
    ) -> Result<(Vec<crate::bitcoin::transfer::Coin>, u64), DomainError> {
        let scan = {
            let _one_at_a_time = self.scans.lock().await;
            let mut tries = 0;
            loop {
                let params = json!(["start", [format!("addr({address})")]]);
                match self
                    .call_raw_within(n, "scantxoutset", params, UTXO_SCAN_TIMEOUT)
                    .await?
                {
                    Ok(v) => break v,
                    // Another client's scan is running on the node: wait for it.
                    Err(m) if m.contains("in progress") && tries < SCAN_BUSY_RETRIES => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(m) => {
                        return Err(DomainError::Unavailable(format!(
                            "the {n} RPC endpoint refused scantxoutset: {m}"
                        )));
                    }
                }
            }
        };
        let tip = scan.get("height").and_then(Value::as_u64).unwrap_or(0);
        let unspents = scan
            .get("unspents")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_answer(n, "scantxoutset without unspents"))?;
        let own = address.script_pubkey();
        let (mut coins, mut held) = (Vec::new(), 0u64);
        for u in unspents {
            let txid = u.get("txid").and_then(Value::as_str);
            let vout = u.get("vout").and_then(Value::as_u64);
            let (Some(txid), Some(vout)) = (txid, vout) else {
                return Err(bad_answer(n, "scantxoutset entry without txid/vout"));
            };
            let outpoint = bitcoin::OutPoint {
                txid: txid
                    .parse()
                    .map_err(|_| bad_answer(n, "scantxoutset txid"))?,
                vout: u32::try_from(vout).map_err(|_| bad_answer(n, "scantxoutset vout"))?,
            };
            let value = u
                .get("amount")
                .and_then(Value::as_f64)
                .and_then(|btc| bitcoin::Amount::from_btc(btc).ok())
                .ok_or_else(|| bad_answer(n, "scantxoutset amount"))?
                .to_sat();
            let script = u.get("scriptPubKey").and_then(Value::as_str).unwrap_or("");
            if !script.eq_ignore_ascii_case(&own.to_hex_string()) {
                continue;
            }
            let height = u.get("height").and_then(Value::as_u64).unwrap_or(0);
            if u.get("coinbase").and_then(Value::as_bool) == Some(true)
                && tip.saturating_sub(height) + 1 < COINBASE_MATURITY
            {
                continue;
            }
            if reserved.iter().any(|r| *r == outpoint.to_string()) {
                held = held.saturating_add(value);
                continue;
            }
            coins.push(crate::bitcoin::transfer::Coin { outpoint, value });
        }
        Ok((coins, held))
    }

    /// sat per 1000 vbytes for `priority`, and where it came from.
    async fn bitcoin_fee_rate(
        &self,
        n: Network,
        priority: TransferPriority,
    ) -> Result<(u64, &'static str), DomainError> {
        let target = bitcoin_target(priority);
        let btc_per_kvb = |v: &Value, field: &str| {
            v.get(field)
                .and_then(Value::as_f64)
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| (r * 100_000_000.0).round() as u64)
        };
        let estimate = self
            .call(n, "estimatesmartfee", json!([target, "conservative"]))
            .await?;
        if let Some(rate) = btc_per_kvb(&estimate, "feerate") {
            return Ok((rate, "estimatesmartfee"));
        }
        // No estimate yet (a young chain, regtest): what the node's mempool accepts.
        let info = self.call(n, "getmempoolinfo", json!([])).await?;
        let floor = btc_per_kvb(&info, "mempoolminfee")
            .max(btc_per_kvb(&info, "minrelaytxfee"))
            .ok_or_else(|| bad_answer(n, "getmempoolinfo without mempoolminfee"))?;
        Ok((floor, "mempoolminfee"))
    }

    /// EIP-1559 levels from `eth_feeHistory`.
    async fn evm_fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
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

    /// The same rates a Bitcoin transfer of each priority pays.
    async fn bitcoin_fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
        let level = |p: TransferPriority| async move {
            let (rate, _) = self.bitcoin_fee_rate(n, p).await?;
            Ok::<_, DomainError>(keyfold_types::networks::BitcoinFee {
                fee_rate: sat_per_vb(rate),
                block_horizon: u32::from(bitcoin_target(p)),
            })
        };
        let (height, slow, standard, fast) = tokio::join!(
            self.call(n, "getblockcount", json!([])),
            level(TransferPriority::Slow),
            level(TransferPriority::Standard),
            level(TransferPriority::Fast),
        );
        Ok(FeesResponse::Bitcoin {
            network: n.as_str().to_string(),
            block_number: height?
                .as_u64()
                .ok_or_else(|| bad_answer(n, "getblockcount"))?,
            slow: slow?,
            standard: standard?,
            fast: fast?,
        })
    }

    /// Percentiles (25th, 50th, 75th) of the compute-unit prices paid in recent slots.
    async fn solana_fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
        let (recent, slot) = tokio::join!(
            self.call(n, "getRecentPrioritizationFees", json!([])),
            self.call(n, "getSlot", json!([{"commitment": "confirmed"}])),
        );
        let mut prices = recent?
            .as_array()
            .ok_or_else(|| bad_answer(n, "getRecentPrioritizationFees"))?
            .iter()
            .map(|e| e.get("prioritizationFee").and_then(Value::as_u64))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| bad_answer(n, "getRecentPrioritizationFees entry"))?;
        prices.sort_unstable();
        let at = |pct: usize| {
            let price = if prices.is_empty() {
                0
            } else {
                prices[(prices.len() - 1) * pct / 100]
            };
            keyfold_types::networks::SolanaFee {
                compute_unit_price: price.to_string(),
            }
        };
        Ok(FeesResponse::Solana {
            network: n.as_str().to_string(),
            block_number: slot?.as_u64().ok_or_else(|| bad_answer(n, "getSlot"))?,
            slow: at(25),
            standard: at(50),
            fast: at(75),
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
        match n.family() {
            Family::Evm => self.evm_fees(n).await,
            Family::Bitcoin => self.bitcoin_fees(n).await,
            Family::Solana => self.solana_fees(n).await,
            Family::Key => Err(DomainError::invalid(format!(
                "{n} is not a blockchain: it has no fees"
            ))),
        }
    }

    async fn plan_transfer(
        &self,
        network: &str,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        reserved: &[String],
        transfer_id: &str,
    ) -> Result<TransferPlan, DomainError> {
        let n = parse_network(network)?;
        if n.family() == Family::Key {
            return Err(DomainError::invalid(format!(
                "{n} is not a blockchain: there is nothing to transfer on it"
            )));
        }
        self.endpoint(n)?;
        match n.family() {
            Family::Evm => self.evm_plan(n, from, intent, priority).await,
            Family::Bitcoin => self.bitcoin_plan(n, from, intent, priority, reserved).await,
            Family::Solana | Family::Key => self.solana_plan(n, from, intent, transfer_id).await,
        }
    }

    fn build_transfer(
        &self,
        network: &str,
        plan: &TransferPlan,
        nonce: Option<u64>,
    ) -> Result<SignatureKind, DomainError> {
        let f = match &plan.build {
            TransferBuild::Ready(kind) => return Ok(kind.clone()),
            TransferBuild::Evm(f) => f,
        };
        let n = parse_network(network)?;
        evm_only(n, "transfers")?;
        let internal = |what: &str| DomainError::internal(format!("transfer plan: bad {what}"));
        let fields = evm::transfer::Eip1559Fields {
            chain_id: f.chain_id,
            nonce: nonce.ok_or_else(|| internal("nonce"))?,
            to: evm::parse_address(&f.tx_to).map_err(|_| internal("to"))?,
            value: U256::from_str_radix(&f.tx_value, 10).map_err(|_| internal("value"))?,
            data: evm::parse_hex(&f.data, "data").map_err(|_| internal("data"))?,
            gas_limit: f.gas_limit,
            max_fee_per_gas: f.max_fee_per_gas,
            max_priority_fee_per_gas: f.max_priority_fee_per_gas,
        };
        Ok(SignatureKind::Transaction {
            transaction: Value::String(evm::to_hex(evm::transfer::unsigned_eip1559(&fields))),
        })
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
        if n.family() == Family::Bitcoin {
            // The confirmed, spendable coins (what a transfer can spend).
            let addr = crate::bitcoin::transfer::parse_address(n, "the wallet", address)
                .map_err(|e| DomainError::invalid(e.to_string()))?;
            let (coins, _) = self.bitcoin_coins(n, &addr, &[]).await?;
            let native = native_of(n);
            return Ok(vec![Asset::Native {
                symbol: native.symbol,
                decimals: native.decimals.unwrap_or(8),
                balance: coins.iter().map(|c| c.value).sum::<u64>().to_string(),
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
