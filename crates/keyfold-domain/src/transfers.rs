//! Transfers and broadcast transactions: build, sign, broadcast, track.
//!
//! Why it is shaped this way:
//! * **The row comes first.** A request is written (`Executing`) before anything is built, so
//!   a retry with the same `externalId` finds it and returns it instead of sending twice, and
//!   nothing the caller asked for is ever lost: it ends `Confirmed` or `Failed` with a reason.
//! * **One nonce per request.** The store hands out nonces per wallet in one transaction
//!   (never the same one twice, even to concurrent requests), records it on the row, and takes
//!   back a nonce whose transaction was never broadcast, so the next transfer fills the gap
//!   instead of queueing behind it forever.
//! * **Durable before broadcast.** The signed bytes are stored before they are sent. A crash
//!   in between is resumed by the tracker sending the very same bytes (same hash: a chain
//!   cannot execute it twice); a request that died before it was signed is failed and its
//!   nonce released.
//! * **The tracker** ([`KeyService::track_transfers`]) is the only thing that moves a row
//!   past `Broadcasted`; a request's own handler only ever moves its row out of `Executing`,
//!   and every move is conditional on the status it saw.

use std::time::Duration;

use keyfold_types::keys::{Requester, SignatureKind};
use keyfold_types::transfers::{
    AssetMetadata, AssetsResponse, BroadcastTransactionBody, HistoryItem, HistoryMetadata,
    HistoryQuery, HistoryResponse, TransactionResponse, TransferBody, TransferMetadata,
    TransferResponse, TransferStatus,
};
use keyfold_types::wallets::ListWalletsQuery;

use crate::authz::{Granted, Principal, op};
use crate::error::{DomainError, Result, StoreError};
use crate::ids::{IdKind, looks_like, new_id};
use crate::keys::{KeyService, iso, optional_text};
use crate::model::{Key, TransferRecord, TransferResource, Wallet};
use crate::page::{Page, PageRequest};
use crate::ports::{
    ActionEvidence, BroadcastForm, BroadcastOutcome, ChainTxStatus, TransferIntent, TransferPlan,
};
use crate::time::Timestamp;

/// A request still `Executing` without signed bytes after this long was abandoned by a
/// crashed API process (a signature takes seconds): it is failed and its nonce released.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(300);

/// How long one sender holds the right to send a row's stored bytes: longer than an RPC call
/// can take (10 s), so the lease never runs out under a send in flight.
const SEND_LEASE: Duration = Duration::from_secs(60);

/// After an endpoint failure, how soon the tracker may try the same bytes again.
const SEND_RETRY: Duration = Duration::from_secs(2);

fn after(t: crate::time::Timestamp, d: Duration) -> crate::time::Timestamp {
    crate::time::Timestamp(t.0.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// How long a retry with the same `externalId` waits for the first request to get past
/// signing before it answers with the row as it stands.
const SETTLE_WAIT: Duration = Duration::from_secs(60);
/// How long a retry waits, once the first request has signed, for its broadcast to be
/// answered (see `settled_transfer`).
const BROADCAST_SETTLE_WAIT: Duration = Duration::from_secs(5);

/// How many times a transfer plans again when concurrent transfers took its coins first.
const PLAN_ATTEMPTS: usize = 4;

fn positive_amount(amount: &str) -> Result<()> {
    let ok = !amount.is_empty()
        && amount.len() <= 78
        && amount.bytes().all(|b| b.is_ascii_digit())
        && amount.bytes().any(|b| b != b'0');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "amount must be a positive integer string in the asset's smallest unit",
        ))
    }
}

fn transfer_not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("transfer {id} not found"))
}

fn transaction_not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("transaction {id} not found"))
}

/// What a failure says on the row (internal details stay in the logs).
fn reason_of(e: &DomainError) -> String {
    match e {
        DomainError::Internal(_) => "internal error".to_string(),
        other => other.to_string(),
    }
}

impl KeyService {
    // ------------------------------------------------------------------ transfers

    pub async fn transfer(
        &self,
        g: &Granted<op::WalletsTransfersCreate>,
        wallet_id: &str,
        body: TransferBody,
        evidence: ActionEvidence,
    ) -> Result<TransferResponse> {
        let (w, k) = self.active_wallet(g.principal(), wallet_id).await?;
        crate::keys::may_sign(g.principal(), &k)?;
        let external_id = optional_text("externalId", body.external_id())?;
        let (intent, kind) = match &body {
            TransferBody::Native { to, amount, .. } => {
                positive_amount(amount)?;
                (
                    TransferIntent::Native {
                        to: to.clone(),
                        amount: amount.clone(),
                    },
                    "Native",
                )
            }
            TransferBody::Erc20 {
                contract,
                to,
                amount,
                ..
            } => {
                positive_amount(amount)?;
                (
                    TransferIntent::Erc20 {
                        contract: contract.clone(),
                        to: to.clone(),
                        amount: amount.clone(),
                    },
                    "Erc20",
                )
            }
        };
        if let Some(ext) = &external_id
            && let Some(existing) = self
                .store
                .find_transfer_by_external_id(&w.id, TransferResource::Transfer, ext)
                .await?
        {
            return self.transfer_response(self.settled_transfer(existing).await?);
        }
        // Build: what the chain needs. Bad addresses or too little money are a 400 that
        // writes nothing; a dead endpoint is a 503 recorded as a failed transfer.
        let from = w
            .address
            .clone()
            .ok_or_else(|| DomainError::invalid("this wallet has no address to send from"))?;
        let mut rec = self.new_record(
            g.principal(),
            &w,
            TransferResource::Transfer,
            kind,
            serde_json::to_value(&body),
            external_id,
            &evidence,
        )?;
        let started = std::time::Instant::now();
        let plan = match self.plan_and_hold(&w, &from, &intent, &body, &rec.id).await {
            Ok(p) => p,
            Err(e @ DomainError::Unavailable(_)) => {
                rec.status = TransferStatus::Failed;
                rec.reason = Some(reason_of(&e));
                if let Some(existing) = self.insert_or_replay(&rec).await? {
                    return self.transfer_response(self.settled_transfer(existing).await?);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let plan_ms = started.elapsed().as_millis();
        // Requested now, as far as the tracker's abandonment clock goes: planning (a Bitcoin
        // UTXO scan) may have taken minutes.
        rec.created_at = self.clock.now();
        let inserted = self.insert_or_replay(&rec).await;
        if !matches!(inserted, Ok(None)) {
            // A replay (or no row at all): the coins held for this attempt go back.
            self.store.release_outpoints(&rec.id).await?;
            if let Some(existing) = inserted? {
                return self.transfer_response(self.settled_transfer(existing).await?);
            }
        }
        rec.contract = plan.contract.clone();
        rec.recipient = Some(plan.recipient.clone());
        let nonce = match plan.chain_nonce {
            None => None,
            Some(chain_next) => match self
                .store
                .allocate_nonce(
                    &rec.id,
                    &w.id,
                    i64::try_from(chain_next).unwrap_or(i64::MAX),
                )
                .await
            {
                Ok(n) => Some(n),
                Err(e) => {
                    let e = DomainError::from(e);
                    self.fail(&mut rec, &e).await?;
                    return Err(e);
                }
            },
        };
        rec.nonce = nonce;
        let mut details = plan.details.clone();
        if let Some(n) = nonce {
            details.insert("nonce".into(), n.into());
        }
        details.insert("symbol".into(), plan.asset.symbol.clone().into());
        details.insert("decimals".into(), plan.asset.decimals.into());
        rec.details = Some(serde_json::Value::Object(details).to_string());
        let unsigned = nonce
            .map(|n| u64::try_from(n).map_err(|_| DomainError::internal("negative nonce")))
            .transpose()
            .and_then(|n| self.rpc.build_transfer(&w.network, &plan, n));
        let signing = std::time::Instant::now();
        let signed = match unsigned {
            Ok(kind) => self.sign_kind(&k, &w, &kind, &evidence, &rec.id).await,
            Err(e) => Err(e),
        };
        // Where the time goes (docs/benchmarks.md reads these).
        tracing::info!(
            transfer = %rec.id,
            plan_ms,
            sign_ms = signing.elapsed().as_millis(),
            "transfer built and signed"
        );
        self.after_signing(rec, signed).await
    }

    /// Plans the transfer and holds the coins it spends for `transfer_id`. Coins another
    /// transfer took between the plan and the hold make it plan again, a few times.
    async fn plan_and_hold(
        &self,
        w: &Wallet,
        from: &str,
        intent: &TransferIntent,
        body: &TransferBody,
        transfer_id: &str,
    ) -> Result<TransferPlan> {
        for _ in 0..PLAN_ATTEMPTS {
            let reserved = self.store.reserved_outpoints(&w.id).await?;
            let plan = self
                .rpc
                .plan_transfer(
                    &w.network,
                    from,
                    intent,
                    body.priority(),
                    &reserved,
                    transfer_id,
                )
                .await?;
            if plan.spends.is_empty() {
                return Ok(plan);
            }
            match self
                .store
                .reserve_outpoints(&w.id, transfer_id, &plan.spends)
                .await
            {
                Ok(true) => return Ok(plan),
                Ok(false) => {}
                Err(e) => {
                    // It may have committed before the error: let go (best effort).
                    let _ = self.store.release_outpoints(transfer_id).await;
                    return Err(e.into());
                }
            }
        }
        Err(DomainError::Conflict(
            "the wallet's coins are being spent by concurrent transfers; try again".into(),
        ))
    }

    pub async fn list_transfers(
        &self,
        g: &Granted<op::WalletsTransfersRead>,
        wallet_id: &str,
        q: ListWalletsQuery,
    ) -> Result<Page<TransferResponse>> {
        let p = self
            .list_records(g.principal(), wallet_id, TransferResource::Transfer, q)
            .await?;
        Ok(Page {
            items: p
                .items
                .iter()
                .map(|r| self.transfer_response(r.clone()))
                .collect::<Result<_>>()?,
            next: p.next,
        })
    }

    pub async fn get_transfer(
        &self,
        g: &Granted<op::WalletsTransfersRead>,
        wallet_id: &str,
        transfer_id: &str,
    ) -> Result<TransferResponse> {
        let rec = self
            .record(
                g.principal(),
                wallet_id,
                transfer_id,
                TransferResource::Transfer,
            )
            .await?;
        self.transfer_response(rec)
    }

    // ------------------------------------------------------------------ transactions

    pub async fn broadcast_transaction(
        &self,
        g: &Granted<op::WalletsTransactionsCreate>,
        wallet_id: &str,
        body: BroadcastTransactionBody,
        evidence: ActionEvidence,
    ) -> Result<TransactionResponse> {
        let (w, k) = self.active_wallet(g.principal(), wallet_id).await?;
        crate::keys::may_sign(g.principal(), &k)?;
        let external_id = optional_text("externalId", body.external_id())?;
        let (kind, sig_kind) = match &body {
            BroadcastTransactionBody::Transaction { transaction, .. } => (
                "Transaction",
                SignatureKind::Transaction {
                    transaction: serde_json::Value::String(transaction.clone()),
                },
            ),
            BroadcastTransactionBody::Psbt { psbt, .. } => {
                ("Psbt", SignatureKind::Psbt { psbt: psbt.clone() })
            }
        };
        // Bad transactions are refused before anything is written.
        self.networks.prepare(Some(&w.network), &k, &sig_kind)?;
        self.networks
            .check_broadcastable(&w.network, &k, &sig_kind)?;
        self.rpc.native_asset(&w.network)?;
        if let Some(ext) = &external_id
            && let Some(existing) = self
                .store
                .find_transfer_by_external_id(&w.id, TransferResource::Transaction, ext)
                .await?
        {
            return transaction_response(&self.settled_transfer(existing).await?);
        }
        let rec = self.new_record(
            g.principal(),
            &w,
            TransferResource::Transaction,
            kind,
            serde_json::to_value(&body),
            external_id,
            &evidence,
        )?;
        if let Some(existing) = self.insert_or_replay(&rec).await? {
            return transaction_response(&self.settled_transfer(existing).await?);
        }
        let signed = self.sign_kind(&k, &w, &sig_kind, &evidence, &rec.id).await;
        let rec = self.after_signing_record(rec, signed).await?;
        transaction_response(&rec)
    }

    pub async fn list_transactions(
        &self,
        g: &Granted<op::WalletsTransactionsRead>,
        wallet_id: &str,
        q: ListWalletsQuery,
    ) -> Result<Page<TransactionResponse>> {
        let p = self
            .list_records(g.principal(), wallet_id, TransferResource::Transaction, q)
            .await?;
        Ok(Page {
            items: p
                .items
                .iter()
                .map(transaction_response)
                .collect::<Result<_>>()?,
            next: p.next,
        })
    }

    pub async fn get_transaction(
        &self,
        g: &Granted<op::WalletsTransactionsRead>,
        wallet_id: &str,
        transaction_id: &str,
    ) -> Result<TransactionResponse> {
        let rec = self
            .record(
                g.principal(),
                wallet_id,
                transaction_id,
                TransferResource::Transaction,
            )
            .await?;
        transaction_response(&rec)
    }

    // ------------------------------------------------------------------ assets, history

    pub async fn wallet_assets(
        &self,
        g: &Granted<op::WalletsRead>,
        wallet_id: &str,
    ) -> Result<AssetsResponse> {
        let (w, _) = self.visible_wallet(g.principal(), wallet_id).await?;
        let contracts = self.store.transfer_contracts(&w.id).await?;
        let Some(address) = w.address.clone() else {
            return Err(DomainError::invalid("this wallet has no address"));
        };
        let assets = self.rpc.balances(&w.network, &address, &contracts).await?;
        Ok(AssetsResponse {
            wallet_id: w.id,
            network: w.network,
            assets,
        })
    }

    /// The wallet's confirmed outgoing transfers and transactions, newest first. (Incoming
    /// movements need a chain indexer, which Keyfold does not run.)
    pub async fn wallet_history(
        &self,
        g: &Granted<op::WalletsRead>,
        wallet_id: &str,
        q: HistoryQuery,
    ) -> Result<HistoryResponse> {
        let (w, _) = self.visible_wallet(g.principal(), wallet_id).await?;
        match q.direction.as_deref() {
            None | Some("Out") | Some("In") => {}
            Some(other) => {
                return Err(DomainError::invalid(format!(
                    "direction must be In or Out, not {other:?}"
                )));
            }
        }
        match q.kind.as_deref() {
            None | Some("NativeTransfer") | Some("Erc20Transfer") => {}
            Some(other) => {
                return Err(DomainError::invalid(format!(
                    "kind {other:?} is not recorded by Keyfold (NativeTransfer, Erc20Transfer)"
                )));
            }
        }
        let page = PageRequest::parse(q.limit, q.pagination_token.as_deref())?;
        if q.direction.as_deref() == Some("In") {
            return Ok(HistoryResponse {
                wallet_id: w.id,
                items: vec![],
                next_page_token: None,
            });
        }
        let native = self.rpc.native_asset(&w.network)?;
        let p = self
            .store
            .list_transfers(g.org_id(), &w.id, None, true, &page)
            .await?;
        let mut items = Vec::new();
        for r in &p.items {
            if let Some(item) = history_item(&w, r, &native)?
                && q.kind.as_deref().is_none_or(|k| k == item.kind)
            {
                items.push(item);
            }
        }
        Ok(HistoryResponse {
            wallet_id: w.id,
            items,
            next_page_token: p.next.map(|c| c.encode()),
        })
    }

    // ------------------------------------------------------------------ the tracker

    /// One pass over the requests in flight: resends signed bytes nobody has seen yet,
    /// settles confirmed or reverted transactions, fails requests abandoned before signing.
    /// Returns how many rows moved. Errors on one row do not stop the others.
    pub async fn track_transfers(&self, batch: i64) -> Result<u64> {
        let rows = self.store.unsettled_transfers(batch).await?;
        let mut moved = 0;
        for rec in rows {
            match self.track_one(rec).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "tracking a transfer"),
            }
        }
        Ok(moved)
    }

    async fn track_one(&self, mut rec: TransferRecord) -> Result<bool> {
        let now = self.clock.now();
        match (rec.status, rec.signed_tx.clone()) {
            (TransferStatus::Executing, None) => {
                if now.0 - rec.created_at.0 < ABANDONED_AFTER.as_millis() as i64 {
                    return Ok(false);
                }
                rec.status = TransferStatus::Failed;
                rec.reason = Some("interrupted before it was signed; nothing was sent".into());
                let moved = self
                    .store
                    .update_transfer(&rec, TransferStatus::Executing)
                    .await?;
                if moved {
                    self.release_holds(&rec, true).await?;
                }
                Ok(moved)
            }
            (TransferStatus::Executing, Some(signed)) => {
                // Signed and stored, never confirmed sent: send the same bytes — but only
                // with the lease (not while the request itself, or another pass, is sending:
                // a refusal must be the only answer before the row is failed).
                let until = after(now, SEND_LEASE);
                if !self.store.claim_send(&rec.id, now, until).await? {
                    return Ok(false);
                }
                rec.send_lease_until = Some(until);
                match self.rpc.broadcast(&rec.network, &signed).await {
                    Ok(outcome) => self.record_broadcast(rec, outcome).await.map(|_| true),
                    Err(e) => {
                        rec.send_lease_until = Some(after(self.clock.now(), SEND_RETRY));
                        self.store
                            .update_transfer(&rec, TransferStatus::Executing)
                            .await?;
                        Err(e)
                    }
                }
            }
            (TransferStatus::Broadcasted, Some(signed)) => {
                let Some(hash) = rec.tx_hash.clone() else {
                    return Ok(false);
                };
                match self.rpc.transaction_status(&rec.network, &hash).await? {
                    ChainTxStatus::Pending => Ok(false),
                    ChainTxStatus::Unknown => {
                        // Dropped from the pool (or a node restart): the same bytes again.
                        match self.rpc.broadcast(&rec.network, &signed).await? {
                            BroadcastOutcome::Accepted => Ok(false),
                            BroadcastOutcome::Rejected { reason, nonce_used } => {
                                // Lost, and refused now (an expired blockhash, spent inputs):
                                // it can never land. One refusal soon after the broadcast
                                // may be a lagging node, so it must persist first.
                                let since = rec.broadcast_at.unwrap_or(rec.created_at);
                                let waited = now.0.saturating_sub(since.0);
                                if waited < self.settings.dropped_after.as_millis() as i64
                                    || !self.rpc.lost_transactions_expire(&rec.network)
                                {
                                    // (Bitcoin: never given up on, it may still be mined;
                                    // it stays Broadcasted and keeps its coins.)
                                    return Ok(false);
                                }
                                rec.status = TransferStatus::Failed;
                                rec.reason = Some(format!(
                                    "the network dropped the transaction and refuses it now: {reason}"
                                ));
                                let moved = self
                                    .store
                                    .update_transfer(&rec, TransferStatus::Broadcasted)
                                    .await?;
                                if moved {
                                    self.release_holds(&rec, !nonce_used).await?;
                                }
                                Ok(moved)
                            }
                        }
                    }
                    ChainTxStatus::Confirmed {
                        block_number,
                        block_time,
                        fee,
                    } => {
                        rec.status = TransferStatus::Confirmed;
                        rec.block_number = i64::try_from(block_number).ok();
                        rec.block_time = block_time.map(Timestamp);
                        rec.fee = fee.or(rec.fee);
                        rec.confirmed_at = Some(now);
                        self.store
                            .update_transfer(&rec, TransferStatus::Broadcasted)
                            .await
                            .map_err(Into::into)
                    }
                    ChainTxStatus::Reverted {
                        block_number,
                        block_time,
                        fee,
                    } => {
                        rec.status = TransferStatus::Failed;
                        rec.reason = Some("the transaction reverted on chain".into());
                        rec.block_number = i64::try_from(block_number).ok();
                        rec.block_time = block_time.map(Timestamp);
                        rec.fee = fee.or(rec.fee);
                        rec.confirmed_at = Some(now);
                        self.store
                            .update_transfer(&rec, TransferStatus::Broadcasted)
                            .await
                            .map_err(Into::into)
                    }
                }
            }
            _ => Ok(false),
        }
    }

    // ------------------------------------------------------------------ steps

    #[allow(clippy::too_many_arguments)]
    fn new_record(
        &self,
        requester: &Principal,
        w: &Wallet,
        resource: TransferResource,
        kind: &str,
        body: serde_json::Result<serde_json::Value>,
        external_id: Option<String>,
        evidence: &ActionEvidence,
    ) -> Result<TransferRecord> {
        let body = body.map_err(|e| DomainError::internal(format!("encoding body: {e}")))?;
        let (recipient, amount) = (
            body.get("to").and_then(|v| v.as_str()).map(str::to_string),
            body.get("amount")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        );
        Ok(TransferRecord {
            id: new_id(match resource {
                TransferResource::Transfer => IdKind::Transfer,
                TransferResource::Transaction => IdKind::Transaction,
            }),
            org_id: w.org_id.clone(),
            wallet_id: w.id.clone(),
            network: w.network.clone(),
            resource,
            requester_id: requester.user_id.clone(),
            token_id: Some(requester.token_id.clone()),
            kind: kind.to_string(),
            request_body: body.to_string(),
            status: TransferStatus::Executing,
            reason: None,
            contract: None,
            recipient,
            amount,
            nonce: None,
            details: None,
            signed_tx: None,
            tx_hash: None,
            fee: None,
            block_number: None,
            block_time: None,
            external_id,
            user_action_id: Some(evidence.user_action_id.clone()),
            created_at: self.clock.now(),
            broadcast_at: None,
            confirmed_at: None,
            send_lease_until: None,
        })
    }

    /// Writes the new row; when a concurrent request with the same `externalId` won the race,
    /// returns that one instead.
    async fn insert_or_replay(&self, rec: &TransferRecord) -> Result<Option<TransferRecord>> {
        match self.store.insert_transfer(rec).await {
            Ok(()) => Ok(None),
            Err(StoreError::Conflict(_)) if rec.external_id.is_some() => {
                let ext = rec.external_id.as_deref().unwrap_or_default();
                self.store
                    .find_transfer_by_external_id(&rec.wallet_id, rec.resource, ext)
                    .await?
                    .map(Some)
                    .ok_or_else(|| DomainError::conflict("externalId is already in use"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Signs an unsigned transaction through the cluster, in the form it is sent.
    async fn sign_kind(
        &self,
        k: &Key,
        w: &Wallet,
        kind: &SignatureKind,
        evidence: &ActionEvidence,
        request_id: &str,
    ) -> Result<BroadcastForm> {
        let prepared = self.networks.prepare(Some(&w.network), k, kind)?;
        let done = self.sign_all(k, &prepared, evidence, request_id).await?;
        let data = done
            .signed_data
            .ok_or_else(|| DomainError::internal("a signed transaction without its bytes"))?;
        self.networks
            .broadcast_form(&w.network, &data, done.tx_hash.as_deref())
    }

    async fn after_signing(
        &self,
        rec: TransferRecord,
        signed: Result<BroadcastForm>,
    ) -> Result<TransferResponse> {
        let rec = self.after_signing_record(rec, signed).await?;
        self.transfer_response(rec)
    }

    /// Stores the signed bytes (or the failure), then broadcasts. A dead endpoint leaves the
    /// row `Executing` with its bytes: the tracker sends them when it can.
    async fn after_signing_record(
        &self,
        mut rec: TransferRecord,
        signed: Result<BroadcastForm>,
    ) -> Result<TransferRecord> {
        let form = match signed {
            Ok(s) => s,
            Err(e) => {
                self.fail(&mut rec, &e).await?;
                return Err(e);
            }
        };
        let raw = form.raw;
        rec.signed_tx = Some(raw.clone());
        // Stored together with the bytes: this request is their one sender for now.
        rec.send_lease_until = Some(after(self.clock.now(), SEND_LEASE));
        rec.tx_hash = Some(form.tx_hash);
        if form.fee.is_some() {
            rec.fee = form.fee;
        }
        if !self
            .store
            .update_transfer(&rec, TransferStatus::Executing)
            .await?
        {
            // The tracker declared this request abandoned meanwhile: never send it now.
            return self
                .store
                .get_transfer(&rec.org_id, &rec.id)
                .await?
                .ok_or_else(|| DomainError::internal("transfer vanished"));
        }
        let sending = std::time::Instant::now();
        let sent = self.rpc.broadcast(&rec.network, &raw).await;
        tracing::info!(
            transfer = %rec.id,
            broadcast_ms = sending.elapsed().as_millis(),
            "transfer broadcast"
        );
        match sent {
            Ok(outcome) => self.record_broadcast(rec, outcome).await,
            Err(e @ DomainError::Unavailable(_)) => {
                tracing::warn!(transfer = %rec.id, error = %e, "broadcast deferred");
                // The tracker may try the same bytes soon.
                rec.send_lease_until = Some(after(self.clock.now(), SEND_RETRY));
                self.store
                    .update_transfer(&rec, TransferStatus::Executing)
                    .await?;
                Ok(rec)
            }
            Err(e) => {
                self.fail(&mut rec, &e).await?;
                Err(e)
            }
        }
    }

    async fn record_broadcast(
        &self,
        mut rec: TransferRecord,
        outcome: BroadcastOutcome,
    ) -> Result<TransferRecord> {
        match outcome {
            BroadcastOutcome::Accepted => {
                rec.status = TransferStatus::Broadcasted;
                rec.broadcast_at = Some(self.clock.now());
                self.store
                    .update_transfer(&rec, TransferStatus::Executing)
                    .await?;
            }
            BroadcastOutcome::Rejected { reason, nonce_used } => {
                rec.status = TransferStatus::Failed;
                rec.reason = Some(format!("the network refused the transaction: {reason}"));
                let moved = self
                    .store
                    .update_transfer(&rec, TransferStatus::Executing)
                    .await?;
                if moved {
                    self.release_holds(&rec, !nonce_used).await?;
                }
            }
        }
        Ok(rec)
    }

    /// Marks the row failed with `e`'s message; a nonce it held was never used, so it goes
    /// back. Nothing was broadcast on any path that calls this.
    async fn fail(&self, rec: &mut TransferRecord, e: &DomainError) -> Result<()> {
        rec.status = TransferStatus::Failed;
        rec.reason = Some(reason_of(e));
        let moved = self
            .store
            .update_transfer(rec, TransferStatus::Executing)
            .await?;
        if moved {
            self.release_holds(rec, true).await?;
        }
        Ok(())
    }

    /// A transfer that never reached the chain gives back what it held: the coins it would
    /// have spent, and its nonce unless another transaction took that nonce on chain.
    async fn release_holds(&self, rec: &TransferRecord, nonce_unused: bool) -> Result<()> {
        if rec.resource != TransferResource::Transfer {
            return Ok(());
        }
        if nonce_unused && let Some(n) = rec.nonce {
            self.store.release_nonce(&rec.wallet_id, n).await?;
        }
        self.store.release_outpoints(&rec.id).await?;
        Ok(())
    }

    /// A retry waits (bounded) for the first request to get past signing, and then briefly
    /// for its broadcast, so that both answer with the same outcome. A transfer whose
    /// broadcast stays pending (the network's node is down; the tracker sends it again
    /// later) is returned `Executing` after [`BROADCAST_SETTLE_WAIT`] rather than holding the
    /// retry for the whole [`SETTLE_WAIT`].
    async fn settled_transfer(&self, mut rec: TransferRecord) -> Result<TransferRecord> {
        let deadline = std::time::Instant::now() + SETTLE_WAIT;
        let mut signed_seen: Option<std::time::Instant> = None;
        while rec.status == TransferStatus::Executing && std::time::Instant::now() < deadline {
            if rec.signed_tx.is_some() {
                let since = *signed_seen.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= BROADCAST_SETTLE_WAIT {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            match self.store.get_transfer(&rec.org_id, &rec.id).await? {
                Some(r) => rec = r,
                None => break,
            }
        }
        Ok(rec)
    }

    async fn list_records(
        &self,
        who: &Principal,
        wallet_id: &str,
        resource: TransferResource,
        q: ListWalletsQuery,
    ) -> Result<Page<TransferRecord>> {
        let (w, _) = self.visible_wallet(who, wallet_id).await?;
        let org_id = who.org_id.as_str();
        let page = PageRequest::parse(q.limit, q.pagination_token.as_deref())?;
        Ok(self
            .store
            .list_transfers(org_id, &w.id, Some(resource), false, &page)
            .await?)
    }

    async fn record(
        &self,
        who: &Principal,
        wallet_id: &str,
        id: &str,
        resource: TransferResource,
    ) -> Result<TransferRecord> {
        // The wallet first: an end user reads records of their own wallets only.
        self.visible_wallet(who, wallet_id).await?;
        let org_id = who.org_id.as_str();
        let (kind, not_found): (IdKind, fn(&str) -> DomainError) = match resource {
            TransferResource::Transfer => (IdKind::Transfer, transfer_not_found),
            TransferResource::Transaction => (IdKind::Transaction, transaction_not_found),
        };
        if !looks_like(kind, id) {
            return Err(not_found(id));
        }
        match self.store.get_transfer(org_id, id).await? {
            Some(r) if r.wallet_id == wallet_id && r.resource == resource => Ok(r),
            _ => Err(not_found(id)),
        }
    }

    fn transfer_response(&self, r: TransferRecord) -> Result<TransferResponse> {
        let asset = if r.kind == "Native" {
            self.rpc.native_asset(&r.network)?
        } else {
            token_metadata(&r)
        };
        Ok(TransferResponse {
            id: r.id.clone(),
            wallet_id: r.wallet_id.clone(),
            network: r.network.clone(),
            requester: requester(&r),
            request_body: body_json(&r)?,
            metadata: TransferMetadata { asset },
            status: r.status,
            reason: r.reason.clone(),
            tx_hash: r.tx_hash.clone(),
            fee: r.fee.clone(),
            date_requested: r.created_at.to_iso(),
            date_broadcasted: iso(r.broadcast_at),
            date_confirmed: iso(r.confirmed_at),
            external_id: r.external_id.clone(),
            details: details_json(&r),
        })
    }
}

/// An ERC-20's decimals and symbol are what the contract said when the transfer was planned
/// (kept in `details`).
fn token_metadata(r: &TransferRecord) -> AssetMetadata {
    let d: serde_json::Value = r
        .details
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    AssetMetadata {
        symbol: d.get("symbol").and_then(|v| v.as_str()).map(str::to_string),
        decimals: d
            .get("decimals")
            .and_then(|v| v.as_u64())
            .and_then(|v| u8::try_from(v).ok()),
        verified: None,
    }
}

fn requester(r: &TransferRecord) -> Requester {
    Requester {
        user_id: r.requester_id.clone(),
        token_id: r.token_id.clone(),
    }
}

fn body_json(r: &TransferRecord) -> Result<serde_json::Value> {
    serde_json::from_str(&r.request_body)
        .map_err(|e| DomainError::internal(format!("stored request body: {e}")))
}

fn details_json(r: &TransferRecord) -> Option<serde_json::Value> {
    let mut d: serde_json::Value = serde_json::from_str(r.details.as_deref()?).ok()?;
    if let Some(o) = d.as_object_mut() {
        o.remove("symbol");
        o.remove("decimals");
    }
    Some(d)
}

fn transaction_response(r: &TransferRecord) -> Result<TransactionResponse> {
    Ok(TransactionResponse {
        id: r.id.clone(),
        wallet_id: r.wallet_id.clone(),
        network: r.network.clone(),
        requester: requester(r),
        request_body: body_json(r)?,
        status: r.status,
        reason: r.reason.clone(),
        tx_hash: r.tx_hash.clone(),
        fee: r.fee.clone(),
        date_requested: r.created_at.to_iso(),
        date_broadcasted: iso(r.broadcast_at),
        date_confirmed: iso(r.confirmed_at),
        external_id: r.external_id.clone(),
        details: details_json(r),
    })
}

fn history_item(
    w: &Wallet,
    r: &TransferRecord,
    native: &AssetMetadata,
) -> Result<Option<HistoryItem>> {
    let (Some(hash), Some(block)) = (r.tx_hash.clone(), r.block_number) else {
        return Ok(None);
    };
    let (kind, asset) = match r.kind.as_str() {
        "Native" => ("NativeTransfer", native.clone()),
        "Erc20" => ("Erc20Transfer", token_metadata(r)),
        // A caller-built transaction: what it moved is the caller's business; its native
        // value is known only for EVM and is not recorded here.
        _ => return Ok(None),
    };
    Ok(Some(HistoryItem {
        wallet_id: w.id.clone(),
        network: w.network.clone(),
        kind: kind.to_string(),
        direction: "Out".to_string(),
        block_number: u64::try_from(block).unwrap_or_default(),
        tx_hash: hash,
        timestamp: r
            .block_time
            .or(r.confirmed_at)
            .unwrap_or(r.created_at)
            .to_iso(),
        from: w.address.clone(),
        to: r.recipient.clone(),
        contract: r.contract.clone(),
        value: r.amount.clone().unwrap_or_default(),
        fee: r.fee.clone(),
        symbol: asset.symbol.clone().unwrap_or_default(),
        decimals: asset.decimals.unwrap_or(0),
        metadata: HistoryMetadata {
            asset,
            fee: Some(native.clone()),
        },
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::positive_amount;

    #[test]
    fn amounts_are_positive_integers() {
        for ok in [
            "1",
            "10",
            "000100",
            "115792089237316195423570985008687907853269984665640564039457584007913129639935",
        ] {
            assert!(positive_amount(ok).is_ok(), "{ok}");
        }
        for bad in ["", "0", "000", "-1", "1.5", "abc", "1e18", " 1", "0x10"] {
            assert!(positive_amount(bad).is_err(), "{bad}");
        }
    }
}
