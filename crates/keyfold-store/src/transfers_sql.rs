//! The transfer port in SQL both dialects accept: transfers and broadcast transactions, and
//! the per-wallet nonce allocator and the Bitcoin coins transfers hold.

use async_trait::async_trait;
use keyfold_domain::StoreError;
use keyfold_domain::model::{TransferRecord, TransferResource};
use keyfold_domain::page::{Cursor, Page, PageRequest};
use keyfold_domain::ports::{StoreResult, TransferStore};
use keyfold_domain::time::Timestamp;
use keyfold_types::transfers::TransferStatus;

use crate::sql::map_err;
use crate::{Backend, SqlStore, on_read, on_write};

const COLS: &str = "id, org_id, wallet_id, network, resource, requester_id, token_id, kind, \
    request_body, status, reason, contract, recipient, amount, nonce, details, signed_tx, \
    tx_hash, fee, block_number, block_time, external_id, user_action_id, created_at, broadcast_at, \
    confirmed_at, send_lease_until";

#[derive(Debug, sqlx::FromRow)]
struct TransferRow {
    id: String,
    org_id: String,
    wallet_id: String,
    network: String,
    resource: String,
    requester_id: String,
    token_id: Option<String>,
    kind: String,
    request_body: String,
    status: String,
    reason: Option<String>,
    contract: Option<String>,
    recipient: Option<String>,
    amount: Option<String>,
    nonce: Option<i64>,
    details: Option<String>,
    signed_tx: Option<String>,
    tx_hash: Option<String>,
    fee: Option<String>,
    block_number: Option<i64>,
    block_time: Option<i64>,
    external_id: Option<String>,
    user_action_id: Option<String>,
    created_at: i64,
    broadcast_at: Option<i64>,
    confirmed_at: Option<i64>,
    send_lease_until: Option<i64>,
}

impl TryFrom<TransferRow> for TransferRecord {
    type Error = StoreError;
    fn try_from(r: TransferRow) -> Result<Self, StoreError> {
        let bad = |what: &str, v: &str| StoreError::Internal(format!("bad {what} in row: {v}"));
        Ok(TransferRecord {
            status: TransferStatus::parse(&r.status).ok_or_else(|| bad("status", &r.status))?,
            resource: TransferResource::parse(&r.resource)
                .ok_or_else(|| bad("resource", &r.resource))?,
            id: r.id,
            org_id: r.org_id,
            wallet_id: r.wallet_id,
            network: r.network,
            requester_id: r.requester_id,
            token_id: r.token_id,
            kind: r.kind,
            request_body: r.request_body,
            reason: r.reason,
            contract: r.contract,
            recipient: r.recipient,
            amount: r.amount,
            nonce: r.nonce,
            details: r.details,
            signed_tx: r.signed_tx,
            tx_hash: r.tx_hash,
            fee: r.fee,
            block_number: r.block_number,
            block_time: r.block_time.map(Timestamp),
            external_id: r.external_id,
            user_action_id: r.user_action_id,
            created_at: Timestamp(r.created_at),
            broadcast_at: r.broadcast_at.map(Timestamp),
            confirmed_at: r.confirmed_at.map(Timestamp),
            send_lease_until: r.send_lease_until.map(Timestamp),
        })
    }
}

fn records(rows: Vec<TransferRow>) -> StoreResult<Vec<TransferRecord>> {
    rows.into_iter().map(TransferRecord::try_from).collect()
}

#[async_trait]
impl TransferStore for SqlStore {
    async fn insert_transfer(&self, t: &TransferRecord) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query(&format!(
                "INSERT INTO transfers ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
            ))
            .bind(&t.id)
            .bind(&t.org_id)
            .bind(&t.wallet_id)
            .bind(&t.network)
            .bind(t.resource.as_str())
            .bind(&t.requester_id)
            .bind(&t.token_id)
            .bind(&t.kind)
            .bind(&t.request_body)
            .bind(t.status.as_str())
            .bind(&t.reason)
            .bind(&t.contract)
            .bind(&t.recipient)
            .bind(&t.amount)
            .bind(t.nonce)
            .bind(&t.details)
            .bind(&t.signed_tx)
            .bind(&t.tx_hash)
            .bind(&t.fee)
            .bind(t.block_number)
            .bind(t.block_time.map(|x| x.0))
            .bind(&t.external_id)
            .bind(&t.user_action_id)
            .bind(t.created_at.0)
            .bind(t.broadcast_at.map(|x| x.0))
            .bind(t.confirmed_at.map(|x| x.0))
            .bind(t.send_lease_until.map(|x| x.0))
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(map_err)
    }

    async fn get_transfer(&self, org_id: &str, id: &str) -> StoreResult<Option<TransferRecord>> {
        let sql = format!("SELECT {COLS} FROM transfers WHERE org_id = $1 AND id = $2");
        // Read from the writer: a retry polls for what another request just wrote.
        let row: Option<TransferRow> = on_write!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(TransferRecord::try_from).transpose()
    }

    async fn find_transfer_by_external_id(
        &self,
        wallet_id: &str,
        resource: TransferResource,
        external_id: &str,
    ) -> StoreResult<Option<TransferRecord>> {
        let sql = format!(
            "SELECT {COLS} FROM transfers WHERE wallet_id = $1 AND resource = $2 \
             AND external_id = $3"
        );
        let row: Option<TransferRow> = on_write!(self, |p| sqlx::query_as(&sql)
            .bind(wallet_id)
            .bind(resource.as_str())
            .bind(external_id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(TransferRecord::try_from).transpose()
    }

    async fn list_transfers(
        &self,
        org_id: &str,
        wallet_id: &str,
        resource: Option<TransferResource>,
        confirmed_only: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<TransferRecord>> {
        let (after_ts, after_id) = match &page.after {
            Some(c) => (c.created_at.0, c.id.clone()),
            None => (i64::MAX, "~".to_string()),
        };
        let mut sql = format!(
            "SELECT {COLS} FROM transfers WHERE org_id = $1 AND wallet_id = $2 \
             AND (created_at < $3 OR (created_at = $4 AND id < $5))"
        );
        // Placeholders appear in the text in their numeric order (SQLite numbers `$n` by
        // first appearance).
        if resource.is_some() {
            sql.push_str(" AND resource = $6");
        }
        if confirmed_only {
            sql.push_str(" AND status = 'Confirmed'");
        }
        sql.push_str(if resource.is_some() {
            " ORDER BY created_at DESC, id DESC LIMIT $7"
        } else {
            " ORDER BY created_at DESC, id DESC LIMIT $6"
        });
        let limit = i64::from(page.limit) + 1;
        let rows: Vec<TransferRow> = on_read!(self, |p| {
            let mut q = sqlx::query_as(&sql)
                .bind(org_id)
                .bind(wallet_id)
                .bind(after_ts)
                .bind(after_ts)
                .bind(&after_id);
            if let Some(r) = resource {
                q = q.bind(r.as_str());
            }
            q.bind(limit).fetch_all(p).await
        })
        .map_err(map_err)?;
        let mut items = records(rows)?;
        let next = if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            items.last().map(|t| Cursor {
                created_at: t.created_at,
                id: t.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn update_transfer(
        &self,
        t: &TransferRecord,
        expected: TransferStatus,
    ) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE transfers SET status = $1, reason = $2, contract = $3, recipient = $4, \
                 nonce = $5, details = $6, signed_tx = $7, tx_hash = $8, fee = $9, \
                 block_number = $10, block_time = $11, broadcast_at = $12, confirmed_at = $13, \
                 send_lease_until = $14 WHERE id = $15 AND status = $16",
            )
            .bind(t.status.as_str())
            .bind(&t.reason)
            .bind(&t.contract)
            .bind(&t.recipient)
            .bind(t.nonce)
            .bind(&t.details)
            .bind(&t.signed_tx)
            .bind(&t.tx_hash)
            .bind(&t.fee)
            .bind(t.block_number)
            .bind(t.block_time.map(|x| x.0))
            .bind(t.broadcast_at.map(|x| x.0))
            .bind(t.confirmed_at.map(|x| x.0))
            .bind(t.send_lease_until.map(|x| x.0))
            .bind(&t.id)
            .bind(expected.as_str())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn unsettled_transfers(&self, limit: i64) -> StoreResult<Vec<TransferRecord>> {
        let sql = format!(
            "SELECT {COLS} FROM transfers WHERE status IN ('Executing', 'Broadcasted') \
             ORDER BY created_at, id LIMIT $1"
        );
        let rows: Vec<TransferRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(p)
            .await)
        .map_err(map_err)?;
        records(rows)
    }

    async fn claim_send(&self, id: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE transfers SET send_lease_until = $1 WHERE id = $2 \
                 AND status = 'Executing' AND signed_tx IS NOT NULL \
                 AND (send_lease_until IS NULL OR send_lease_until <= $3)",
            )
            .bind(until.0)
            .bind(id)
            .bind(now.0)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn allocate_nonce(
        &self,
        transfer_id: &str,
        wallet_id: &str,
        chain_next: i64,
    ) -> StoreResult<i64> {
        // Postgres: the upsert locks the counter row, so concurrent allocations for one
        // wallet queue up; a released nonce is claimed by whoever deletes its row.
        // SQLite: one writer connection, so the transaction runs alone.
        let lock = match self.backend {
            Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite { .. } => "",
        };
        let reuse = format!(
            "DELETE FROM wallet_free_nonces WHERE wallet_id = $1 AND nonce = \
             (SELECT nonce FROM wallet_free_nonces WHERE wallet_id = $2 \
              ORDER BY nonce LIMIT 1 {lock}) RETURNING nonce"
        );
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            // Released nonces the chain has since moved past are used: forget them.
            sqlx::query("DELETE FROM wallet_free_nonces WHERE wallet_id = $1 AND nonce < $2")
                .bind(wallet_id)
                .bind(chain_next)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let reused: Option<(i64,)> = sqlx::query_as(&reuse)
                .bind(wallet_id)
                .bind(wallet_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let nonce = match reused {
                Some((n,)) => n,
                None => {
                    let (n,): (i64,) = sqlx::query_as(
                        "INSERT INTO wallet_nonces (wallet_id, next_nonce) VALUES ($1, $2) \
                         ON CONFLICT (wallet_id) DO UPDATE SET next_nonce = CASE \
                         WHEN wallet_nonces.next_nonce > $3 THEN wallet_nonces.next_nonce + 1 \
                         ELSE $4 END RETURNING next_nonce - 1",
                    )
                    .bind(wallet_id)
                    .bind(chain_next + 1)
                    .bind(chain_next)
                    .bind(chain_next + 1)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    n
                }
            };
            sqlx::query("UPDATE transfers SET nonce = $1 WHERE id = $2")
                .bind(nonce)
                .bind(transfer_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(nonce)
        })
    }

    async fn release_nonce(&self, wallet_id: &str, nonce: i64) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO wallet_free_nonces (wallet_id, nonce) VALUES ($1, $2) \
                 ON CONFLICT (wallet_id, nonce) DO NOTHING",
            )
            .bind(wallet_id)
            .bind(nonce)
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(map_err)
    }

    async fn reserve_outpoints(
        &self,
        wallet_id: &str,
        transfer_id: &str,
        outpoints: &[String],
    ) -> StoreResult<bool> {
        // ON CONFLICT DO NOTHING, not a unique violation: a PostgreSQL transaction survives
        // it, and a concurrent holder's row (committed or not) makes the count fall short.
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            for outpoint in outpoints {
                let n = sqlx::query(
                    "INSERT INTO wallet_reserved_outpoints (wallet_id, outpoint, transfer_id) \
                     VALUES ($1, $2, $3) ON CONFLICT (wallet_id, outpoint) DO NOTHING",
                )
                .bind(wallet_id)
                .bind(outpoint)
                .bind(transfer_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                if n != 1 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
            }
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    async fn reserved_outpoints(&self, wallet_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, |p| {
            sqlx::query_as(
            "SELECT outpoint FROM wallet_reserved_outpoints WHERE wallet_id = $1 ORDER BY outpoint"
        )
        .bind(wallet_id)
        .fetch_all(p)
        .await
        })
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|(o,)| o).collect())
    }

    async fn release_outpoints(&self, transfer_id: &str) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query("DELETE FROM wallet_reserved_outpoints WHERE transfer_id = $1")
                .bind(transfer_id)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(map_err)
    }

    async fn transfer_contracts(&self, wallet_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = on_read!(self, |p| sqlx::query_as(
            "SELECT DISTINCT contract FROM transfers WHERE wallet_id = $1 \
             AND contract IS NOT NULL AND status IN ('Broadcasted', 'Confirmed') \
             ORDER BY contract"
        )
        .bind(wallet_id)
        .fetch_all(p)
        .await)
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }
}
