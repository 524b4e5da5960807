//! Bitcoin Core's JSON-RPC: the wallet's coins by `scantxoutset` (no wallet is loaded in the
//! node), fee rates by `estimatesmartfee`, `sendrawtransaction`, `getrawtransaction`.

use std::time::Duration;

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
use crate::{Network, evm};

/// Bitcoin Core's `scantxoutset` reads the whole UTXO set: on mainnet, a minute or more.
const UTXO_SCAN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a scan waits for one another process started on the same node.
const SCAN_BUSY_RETRIES: u32 = 40;
/// A coinbase output is spendable this many blocks after its own (consensus rule).
const COINBASE_MATURITY: u64 = 100;
/// How many of a transaction's outputs are looked up to find it in a block without
/// `-txindex` (a transfer has two: the payment and the change).
const OUTPUTS_PROBED: u32 = 4;
/// Confirmation targets (blocks) of `estimatesmartfee` per priority.
const BITCOIN_TARGETS: [(TransferPriority, u16); 3] = [
    (TransferPriority::Slow, 24),
    (TransferPriority::Standard, 6),
    (TransferPriority::Fast, 2),
];

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

/// A Bitcoin network's Bitcoin Core node, through the shared transport.
pub(super) struct Bitcoin<'a> {
    pub(super) rpc: &'a ChainRpcs,
}

impl Bitcoin<'_> {
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
            let _one_at_a_time = self.rpc.scans.lock().await;
            let mut tries = 0;
            loop {
                let params = json!(["start", [format!("addr({address})")]]);
                match self
                    .rpc
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
        // An aborted scan answers a partial list with success = false.
        if scan.get("success").and_then(Value::as_bool) == Some(false) {
            return Err(DomainError::Unavailable(format!(
                "the {n} RPC endpoint's UTXO scan did not complete; try again"
            )));
        }
        let tip = scan.get("height").and_then(Value::as_u64).unwrap_or(0);
        let unspents = scan
            .get("unspents")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_answer(n, "scantxoutset without unspents"))?;
        let own = address.script_pubkey();
        // Parsed once: each coin is then a set lookup, not a string compare per reservation.
        let reserved: std::collections::HashSet<bitcoin::OutPoint> =
            reserved.iter().filter_map(|r| r.parse().ok()).collect();
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
            if reserved.contains(&outpoint) {
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
            .rpc
            .call(n, "estimatesmartfee", json!([target, "conservative"]))
            .await?;
        if let Some(rate) = btc_per_kvb(&estimate, "feerate") {
            return Ok((rate, "estimatesmartfee"));
        }
        // No estimate yet (a young chain, regtest): what the node's mempool accepts.
        let info = self.rpc.call(n, "getmempoolinfo", json!([])).await?;
        let floor = btc_per_kvb(&info, "mempoolminfee")
            .max(btc_per_kvb(&info, "minrelaytxfee"))
            .ok_or_else(|| bad_answer(n, "getmempoolinfo without mempoolminfee"))?;
        Ok((floor, "mempoolminfee"))
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
            self.rpc.call(n, "getblockcount", json!([])),
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

    /// Bitcoin Core's `sendrawtransaction`.
    async fn bitcoin_broadcast(
        &self,
        n: Network,
        raw_hex: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        match self
            .rpc
            .call_coded(n, "sendrawtransaction", json!([raw_hex]))
            .await?
        {
            Ok(_) => Ok(BroadcastOutcome::Accepted),
            Err((code, msg)) => {
                let lower = msg.to_ascii_lowercase();
                // -27: mined already ("already in block chain" before Bitcoin Core 28,
                // "outputs already in utxo set" since), or known to the mempool.
                if code == -27
                    || lower.contains("already in block chain")
                    || lower.contains("already in utxo set")
                    || lower.contains("txn-already-known")
                    || lower.contains("txn-already-in-mempool")
                {
                    return Ok(BroadcastOutcome::Accepted);
                }
                match code {
                    // The node's verdict on this transaction: undecodable (-22), inputs
                    // missing or spent (-25), refused by policy or consensus (-26).
                    -22 | -25 | -26 => Ok(BroadcastOutcome::Rejected {
                        reason: msg,
                        nonce_used: false,
                    }),
                    // Warming up (-28), an internal error, anything else: the node's own
                    // trouble. The bytes are kept and sent again.
                    _ => Err(DomainError::Unavailable(format!(
                        "the {n} RPC endpoint could not take the transaction now: {msg}"
                    ))),
                }
            }
        }
    }

    /// Bitcoin Core's `getrawtransaction <txid> true`, then the block's height. Without
    /// `-txindex` (Core's default) a mined transaction is not found that way: it is then
    /// looked for by its unspent outputs (`gettxout`).
    async fn bitcoin_status(&self, n: Network, txid: &str) -> Result<ChainTxStatus, DomainError> {
        let tx = match self
            .rpc
            .call_coded(n, "getrawtransaction", json!([txid, true]))
            .await?
        {
            Ok(tx) => tx,
            Err((code, msg)) if code != -5 => {
                return Err(DomainError::Unavailable(format!(
                    "the {n} RPC endpoint refused getrawtransaction: {msg}"
                )));
            }
            // -5: "No such mempool or blockchain transaction" (or, without -txindex, "No
            // such mempool transaction" for a mined one).
            Err(_not_found) => {
                return Ok(match self.mined_by_outputs(n, txid).await? {
                    Some((block_number, block_time)) => ChainTxStatus::Confirmed {
                        block_number,
                        block_time,
                        fee: None,
                    },
                    None => ChainTxStatus::Unknown,
                });
            }
        };
        let confirmations = tx.get("confirmations").and_then(Value::as_u64).unwrap_or(0);
        let Some(block_hash) = tx.get("blockhash").and_then(Value::as_str) else {
            return Ok(ChainTxStatus::Pending);
        };
        if confirmations == 0 {
            return Ok(ChainTxStatus::Pending);
        }
        let header = self
            .rpc
            .call(n, "getblockheader", json!([block_hash]))
            .await?;
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
}

impl Bitcoin<'_> {
    /// The height and time of the block holding `txid`, found through one of its first
    /// outputs still unspent in the UTXO set (`gettxout`, mempool excluded). `None` when no
    /// probed output is there: not mined, or mined and every probed output spent since — the
    /// tracker then sends it again, and a node that knows it answers so.
    async fn mined_by_outputs(
        &self,
        n: Network,
        txid: &str,
    ) -> Result<Option<(u64, Option<i64>)>, DomainError> {
        for vout in 0..OUTPUTS_PROBED {
            // An error answer (a malformed id, a node without the call) counts as not found.
            let out = self
                .rpc
                .call_raw(n, "gettxout", json!([txid, vout, false]))
                .await?
                .unwrap_or(Value::Null);
            let confirmations = out.get("confirmations").and_then(Value::as_u64);
            let best = out.get("bestblock").and_then(Value::as_str);
            let (Some(confirmations), Some(best)) = (confirmations, best) else {
                continue;
            };
            if confirmations == 0 {
                continue;
            }
            let tip = self
                .rpc
                .call(n, "getblockheader", json!([best]))
                .await?
                .get("height")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad_answer(n, "block header without height"))?;
            let height = (tip + 1).saturating_sub(confirmations);
            let hash = self.rpc.call(n, "getblockhash", json!([height])).await?;
            let header = self.rpc.call(n, "getblockheader", json!([hash])).await?;
            let time = header
                .get("time")
                .and_then(Value::as_i64)
                .map(|s| s.saturating_mul(1000));
            return Ok(Some((height, time)));
        }
        Ok(None)
    }
}

#[async_trait]
impl FamilyRpc for Bitcoin<'_> {
    async fn fees(&self, n: Network) -> Result<FeesResponse, DomainError> {
        self.bitcoin_fees(n).await
    }

    async fn plan_transfer(
        &self,
        n: Network,
        from: &str,
        intent: &TransferIntent,
        priority: TransferPriority,
        reserved: &[String],
        _transfer_id: &str,
    ) -> Result<TransferPlan, DomainError> {
        self.bitcoin_plan(n, from, intent, priority, reserved).await
    }

    async fn broadcast(
        &self,
        n: Network,
        signed_tx: &str,
    ) -> Result<BroadcastOutcome, DomainError> {
        self.bitcoin_broadcast(n, signed_tx).await
    }

    async fn status(&self, n: Network, tx_hash: &str) -> Result<ChainTxStatus, DomainError> {
        self.bitcoin_status(n, tx_hash).await
    }

    /// The confirmed, spendable coins: what a transfer can spend.
    async fn balances(
        &self,
        n: Network,
        address: &str,
        _contracts: &[String],
    ) -> Result<Vec<Asset>, DomainError> {
        let addr = crate::bitcoin::transfer::parse_address(n, "the wallet", address)
            .map_err(|e| DomainError::invalid(e.to_string()))?;
        let (coins, _) = self.bitcoin_coins(n, &addr, &[]).await?;
        let native = native_of(n);
        Ok(vec![Asset::Native {
            symbol: native.symbol,
            decimals: native.decimals.unwrap_or(8),
            balance: coins.iter().map(|c| c.value).sum::<u64>().to_string(),
            verified: Some(true),
        }])
    }
}
