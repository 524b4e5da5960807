//! Talking to the chains: JSON-RPC over HTTP to each network's configured endpoint
//! (`[networks.<Name>] rpc_url`), behind the domain's [`ChainRpc`] port.
//!
//! [`ChainRpcs`] owns the transport (one HTTP client, the endpoints, bounded answers); what
//! each network family asks its nodes is a [`FamilyRpc`] implementation of its own —
//! `evm_node.rs` (any EVM JSON-RPC node), `bitcoin_core.rs` (Bitcoin Core), `solana_node.rs`
//! (a Solana RPC node) — and the port's methods pick one by the network's family.
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
    BroadcastOutcome, ChainRpc, ChainTxStatus, TransferBuild, TransferIntent, TransferPlan,
};
use keyfold_types::keys::SignatureKind;
use keyfold_types::networks::FeesResponse;
use keyfold_types::transfers::{Asset, AssetMetadata, TransferPriority};
use serde_json::{Value, json};

use crate::evm::{self, U256};
use crate::{Family, Network};

mod bitcoin_core;
mod evm_node;
mod solana_node;

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

    pub(super) fn endpoint(&self, n: Network) -> Result<&str, DomainError> {
        self.endpoints.get(&n).map(String::as_str).ok_or_else(|| {
            DomainError::invalid(format!(
                "no RPC endpoint is configured for {n} (set [networks.{n}] rpc_url)"
            ))
        })
    }

    /// One JSON-RPC 2.0 call whose error answer is a failure of the endpoint (503).
    pub(super) async fn call(
        &self,
        n: Network,
        method: &str,
        params: Value,
    ) -> Result<Value, DomainError> {
        self.call_raw(n, method, params).await?.map_err(|msg| {
            DomainError::Unavailable(format!("the {n} RPC endpoint refused {method}: {msg}"))
        })
    }

    /// One JSON-RPC 2.0 call: `Ok(Err(message))` when the node answered with an error (its
    /// verdict on the request: estimation failed, transaction refused), `Err` when the
    /// endpoint itself failed.
    pub(super) async fn call_raw(
        &self,
        n: Network,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, String>, DomainError> {
        self.call_raw_within(n, method, params, RPC_TIMEOUT).await
    }

    /// [`Self::call_raw`] with its own time bound (a UTXO-set scan takes longer).
    pub(super) async fn call_raw_within(
        &self,
        n: Network,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Result<Value, String>, DomainError> {
        Ok(self
            .call_coded_within(n, method, params, timeout)
            .await?
            .map_err(|(_, message)| message))
    }

    /// [`Self::call_raw`] with the node's error code: Bitcoin Core's codes say whether a
    /// refusal is a verdict on the request or the node's own trouble.
    pub(super) async fn call_coded(
        &self,
        n: Network,
        method: &str,
        params: Value,
    ) -> Result<Result<Value, (i64, String)>, DomainError> {
        self.call_coded_within(n, method, params, RPC_TIMEOUT).await
    }

    async fn call_coded_within(
        &self,
        n: Network,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Result<Value, (i64, String)>, DomainError> {
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
        let status = resp.status();
        // Bitcoin Core before v28 answers every RPC error with HTTP 500 (404 for an unknown
        // method) and the JSON-RPC error in the body: the node's verdict, not an outage.
        // Anywhere else a non-2xx answer (a gateway, a rate limit) is the endpoint failing.
        let legacy_error = n.family() == Family::Bitcoin && matches!(status.as_u16(), 404 | 500);
        if !status.is_success() && !legacy_error {
            return Err(down(format!("answered HTTP {}", status.as_u16())));
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
        let body: Value = serde_json::from_slice(&raw).map_err(|_| {
            down(if status.is_success() {
                "answered something that is not JSON-RPC".into()
            } else {
                format!("answered HTTP {}", status.as_u16())
            })
        })?;
        // JSON-RPC 1.0 answers (Bitcoin Core before v28) carry `"error": null` on success.
        if let Some(err) = body.get("error").filter(|e| !e.is_null()) {
            // An internal error of the node is the endpoint failing, not a verdict.
            if err.get("code").and_then(Value::as_i64) == Some(-32603) && !status.is_success() {
                return Err(down(format!("answered HTTP {}", status.as_u16())));
            }
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            return Ok(Err((code, crate::error::clip(msg))));
        }
        if !status.is_success() {
            return Err(down(format!("answered HTTP {}", status.as_u16())));
        }
        body.get("result")
            .cloned()
            .map(Ok)
            .ok_or_else(|| down("answered without a result".into()))
    }
}

pub(super) fn parse_network(network: &str) -> Result<Network, DomainError> {
    Network::from_str(network).map_err(|e| DomainError::invalid(e.to_string()))
}

pub(super) fn evm_only(n: Network, what: &str) -> Result<(), DomainError> {
    if n.family() == Family::Evm {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "{what} on {n} are not supported yet (EVM networks are; Bitcoin and Solana \
             transactions are broadcast through /wallets/{{walletId}}/transactions)"
        )))
    }
}

pub(super) fn bad_answer(n: Network, what: &str) -> DomainError {
    DomainError::Unavailable(format!("the {n} RPC endpoint answered badly ({what})"))
}

/// Native coin of each network.
pub(super) fn native_of(n: Network) -> AssetMetadata {
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

pub(super) fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// What Keyfold asks of one network family's nodes. One implementation per family, borrowing
/// the transport of [`ChainRpcs`] for the call.
#[async_trait]
trait FamilyRpc: Send + Sync {
    /// Fee levels (slow, standard, fast) in the family's Dfns shape.
    async fn fees(&self, n: Network) -> Result<FeesResponse, DomainError>;
    /// See [`ChainRpc::plan_transfer`].
    async fn plan_transfer(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        reserved: &[String],
        transfer_id: &str,
    ) -> Result<TransferPlan, DomainError>;
    /// Sends signed bytes (hex): accepted, or refused for good.
    async fn broadcast(&self, n: Network, signed_tx: &str)
    -> Result<BroadcastOutcome, DomainError>;
    /// Where a sent transaction stands.
    async fn status(&self, n: Network, tx_hash: &str) -> Result<ChainTxStatus, DomainError>;
    /// The native balance, then each token of `contracts` the family knows.
    async fn balances(
        &self,
        n: Network,
        address: &str,
        contracts: &[String],
    ) -> Result<Vec<Asset>, DomainError>;
}

impl ChainRpcs {
    /// The family implementation for `n`; a `Key*` pseudo-network has none (400).
    fn family(&self, n: Network, what: &str) -> Result<Box<dyn FamilyRpc + '_>, DomainError> {
        Ok(match n.family() {
            Family::Evm => Box::new(evm_node::Evm { rpc: self }),
            Family::Bitcoin => Box::new(bitcoin_core::Bitcoin { rpc: self }),
            Family::Solana => Box::new(solana_node::Solana { rpc: self }),
            Family::Key => {
                return Err(DomainError::invalid(format!(
                    "{n} is not a blockchain: it has no {what}"
                )));
            }
        })
    }
}

#[async_trait]
impl ChainRpc for ChainRpcs {
    async fn fees(&self, network: &str) -> Result<FeesResponse, DomainError> {
        let n = parse_network(network)?;
        self.family(n, "fees")?.fees(n).await
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
        let family = self.family(n, "transfers")?;
        self.endpoint(n)?;
        family
            .plan_transfer(n, from, intent, priority, reserved, transfer_id)
            .await
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
        self.family(n, "broadcasts")?.broadcast(n, signed_tx).await
    }

    async fn transaction_status(
        &self,
        network: &str,
        tx_hash: &str,
    ) -> Result<ChainTxStatus, DomainError> {
        let n = parse_network(network)?;
        self.family(n, "transactions")?.status(n, tx_hash).await
    }

    fn native_asset(&self, network: &str) -> Result<AssetMetadata, DomainError> {
        Ok(native_of(parse_network(network)?))
    }

    fn lost_transactions_expire(&self, network: &str) -> bool {
        parse_network(network).is_ok_and(|n| n.family() != Family::Bitcoin)
    }

    async fn balances(
        &self,
        network: &str,
        address: &str,
        contracts: &[String],
    ) -> Result<Vec<Asset>, DomainError> {
        let n = parse_network(network)?;
        self.family(n, "balances")?
            .balances(n, address, contracts)
            .await
    }
}
