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
use keyfold_domain::ports::ChainRpc;
use keyfold_types::networks::FeesResponse;
use serde_json::{Value, json};

use crate::evm::fees::{FEE_HISTORY_BLOCKS, FEE_PERCENTILES, from_fee_history};
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
    /// Endpoints by Dfns network name; an unknown name is a configuration error.
    pub fn new(endpoints: impl IntoIterator<Item = (String, String)>) -> Result<Self, DomainError> {
        let mut map = HashMap::new();
        for (name, url) in endpoints {
            let n = Network::from_str(&name)
                .map_err(|e| DomainError::invalid(format!("networks.{name}: {e}")))?;
            map.insert(n, url);
        }
        let http = reqwest::Client::builder()
            .timeout(RPC_TIMEOUT)
            .build()
            .map_err(|e| DomainError::internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoints: map,
        })
    }

    fn endpoint(&self, n: Network) -> Result<&str, DomainError> {
        self.endpoints.get(&n).map(String::as_str).ok_or_else(|| {
            DomainError::invalid(format!(
                "no RPC endpoint is configured for {n} (set [networks.{n}] rpc_url)"
            ))
        })
    }

    /// One JSON-RPC 2.0 call.
    async fn call(&self, n: Network, method: &str, params: Value) -> Result<Value, DomainError> {
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
            return Err(down(format!(
                "refused {method}: {}",
                crate::error::clip(msg)
            )));
        }
        body.get("result")
            .cloned()
            .ok_or_else(|| down("answered without a result".into()))
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
}
