//! The key, wallet, signature and presignature ports in SQL both dialects accept.

use async_trait::async_trait;
use keyfold_domain::StoreError;
use keyfold_domain::model::{Key, LifecycleStatus, SignatureRecord, UserAction, Wallet};
use keyfold_domain::page::{Cursor, Page, PageRequest};
use keyfold_domain::ports::{
    KeyStore, PooledKey, PresignatureRecord, PresignatureStore, SignatureStore, StoreResult,
    WalletStore,
};
use keyfold_domain::time::Timestamp;
use keyfold_types::keys::KeyScheme;

use crate::rows::{KeyRow, PresignatureRow, SignatureRow, WalletRow};
use crate::sql::{insert_user_action, is_unique_violation, map_err, placeholders};
use crate::{Backend, SqlStore, on_read, on_write};

const KEY_COLS: &str = "id, org_id, scheme, curve, public_key, name, status, custodial, owner_id, \
    external_id, created_at, deleted_at, delegation_pending";
const WALLET_COLS: &str = "id, org_id, key_id, network, address, name, status, external_id, tags, \
    created_at, deleted_at";
const SIG_COLS: &str = "id, org_id, key_id, wallet_id, requester_id, token_id, kind, request_body, \
    network, status, reason, signature, signed_data, tx_hash, external_id, user_action_id, \
    created_at, signed_at";

fn tags_json(tags: &[String]) -> StoreResult<String> {
    serde_json::to_string(tags).map_err(|e| StoreError::Internal(format!("tags: {e}")))
}

/// `(after_ts, after_id)` for keyset pagination, newest first.
pub(crate) fn after(page: &PageRequest) -> (i64, String) {
    match &page.after {
        Some(c) => (c.created_at.0, c.id.clone()),
        None => (i64::MAX, "~".to_string()),
    }
}

pub(crate) fn paged<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

macro_rules! insert_key {
    ($exec:expr, $k:expr) => {
        sqlx::query(
            "INSERT INTO keys (id, org_id, scheme, curve, public_key, name, status, custodial, \
             owner_id, external_id, created_at, deleted_at, delegation_pending) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&$k.id)
        .bind(&$k.org_id)
        .bind($k.scheme.as_str())
        .bind($k.curve.as_str())
        .bind(&$k.public_key)
        .bind(&$k.name)
        .bind($k.status.as_str())
        .bind($k.custodial)
        .bind(&$k.owner_id)
        .bind(&$k.external_id)
        .bind($k.created_at.0)
        .bind($k.deleted_at.map(|t| t.0))
        .bind($k.delegation_pending)
        .execute($exec)
        .await
        .map(|_| ())
        .map_err(map_err)
    };
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn insert_key(&self, key: &Key) -> StoreResult<()> {
        on_write!(self, |p| insert_key!(p, key))?;
        Ok(())
    }

    async fn finish_key(
        &self,
        key_id: &str,
        public_key: &[u8],
        status: LifecycleStatus,
    ) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query("UPDATE keys SET public_key = $1, status = $2 WHERE id = $3 AND status = 'Creating'")
                .bind(public_key)
                .bind(status.as_str())
                .bind(key_id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn get_key(&self, org_id: &str, key_id: &str) -> StoreResult<Option<Key>> {
        let sql = format!("SELECT {KEY_COLS} FROM keys WHERE org_id = $1 AND id = $2");
        let row: Option<KeyRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(key_id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(Key::try_from).transpose()
    }

    async fn find_key_by_external_id(
        &self,
        org_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<Key>> {
        let sql = format!("SELECT {KEY_COLS} FROM keys WHERE org_id = $1 AND external_id = $2");
        let row: Option<KeyRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(external_id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(Key::try_from).transpose()
    }

    async fn list_keys(
        &self,
        org_id: &str,
        owner: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Key>> {
        let (ts, id) = after(page);
        let sql = format!(
            "SELECT {KEY_COLS} FROM keys WHERE org_id = $1 AND status IN ('Active', 'Archived') \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             AND ($5 = '' OR (owner_id = $5 AND custodial = FALSE AND delegation_pending = FALSE)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows: Vec<KeyRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(ts)
            .bind(&id)
            .bind(i64::from(page.limit) + 1)
            .bind(owner.unwrap_or_default())
            .fetch_all(p)
            .await)
        .map_err(map_err)?;
        let items = rows
            .into_iter()
            .map(Key::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |k| Cursor {
            created_at: k.created_at,
            id: k.id.clone(),
        }))
    }

    async fn rename_key(&self, org_id: &str, key_id: &str, name: &str) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE keys SET name = $1 WHERE org_id = $2 AND id = $3 AND status = 'Active'",
            )
            .bind(name)
            .bind(org_id)
            .bind(key_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn delegate_key(&self, org_id: &str, key_id: &str, user_id: &str) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE keys SET owner_id = $1, delegation_pending = FALSE, custodial = FALSE \
                 WHERE org_id = $2 AND id = $3 AND status = 'Active' AND delegation_pending = TRUE",
            )
            .bind(user_id)
            .bind(org_id)
            .bind(key_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn archive_key(&self, org_id: &str, key_id: &str, now: Timestamp) -> StoreResult<bool> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            let n = sqlx::query(
                "UPDATE keys SET status = 'Archived', deleted_at = $1 \
                 WHERE org_id = $2 AND id = $3 AND status = 'Active'",
            )
            .bind(now.0)
            .bind(org_id)
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE wallets SET status = 'Archived', deleted_at = $1 \
                 WHERE key_id = $2 AND status = 'Active'",
            )
            .bind(now.0)
            .bind(key_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            sqlx::query("DELETE FROM presignatures WHERE key_id = $1")
                .bind(key_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }
}

#[async_trait]
impl WalletStore for SqlStore {
    async fn insert_wallet(&self, w: &Wallet, key: Option<&Key>) -> StoreResult<()> {
        let tags = tags_json(&w.tags)?;
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            if let Some(k) = key {
                insert_key!(&mut *tx, k)?;
            }
            sqlx::query(
                "INSERT INTO wallets (id, org_id, key_id, network, address, name, status, \
                 external_id, tags, created_at, deleted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&w.id)
            .bind(&w.org_id)
            .bind(&w.key_id)
            .bind(&w.network)
            .bind(&w.address)
            .bind(&w.name)
            .bind(w.status.as_str())
            .bind(&w.external_id)
            .bind(&tags)
            .bind(w.created_at.0)
            .bind(w.deleted_at.map(|t| t.0))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)
        })
    }

    async fn finish_wallet(
        &self,
        wallet_id: &str,
        address: Option<&str>,
        key: Option<(&str, &[u8])>,
        status: LifecycleStatus,
    ) -> StoreResult<bool> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            if let Some((key_id, public_key)) = key {
                sqlx::query(
                    "UPDATE keys SET public_key = $1, status = $2 WHERE id = $3 AND status = 'Creating'",
                )
                .bind(public_key)
                .bind(status.as_str())
                .bind(key_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            let n = sqlx::query(
                "UPDATE wallets SET address = $1, status = $2 WHERE id = $3 AND status = 'Creating'",
            )
            .bind(address)
            .bind(status.as_str())
            .bind(wallet_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            tx.commit().await.map_err(map_err)?;
            Ok(n == 1)
        })
    }

    async fn get_wallet(&self, org_id: &str, wallet_id: &str) -> StoreResult<Option<Wallet>> {
        let sql = format!("SELECT {WALLET_COLS} FROM wallets WHERE org_id = $1 AND id = $2");
        let row: Option<WalletRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(wallet_id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(Wallet::try_from).transpose()
    }

    async fn find_wallet_by_external_id(
        &self,
        org_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<Wallet>> {
        let sql =
            format!("SELECT {WALLET_COLS} FROM wallets WHERE org_id = $1 AND external_id = $2");
        let row: Option<WalletRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(external_id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(Wallet::try_from).transpose()
    }

    async fn list_wallets(
        &self,
        org_id: &str,
        owner: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<Wallet>> {
        let (ts, id) = after(page);
        let sql = format!(
            "SELECT {WALLET_COLS} FROM wallets WHERE org_id = $1 AND status IN ('Active', 'Archived') \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             AND ($5 = '' OR key_id IN \
                 (SELECT k.id FROM keys k WHERE k.owner_id = $5 AND k.custodial = FALSE \
                  AND k.delegation_pending = FALSE)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows: Vec<WalletRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(ts)
            .bind(&id)
            .bind(i64::from(page.limit) + 1)
            .bind(owner.unwrap_or_default())
            .fetch_all(p)
            .await)
        .map_err(map_err)?;
        let items = rows
            .into_iter()
            .map(Wallet::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |w| Cursor {
            created_at: w.created_at,
            id: w.id.clone(),
        }))
    }

    async fn update_wallet(
        &self,
        org_id: &str,
        wallet_id: &str,
        name: Option<&str>,
        external_id: Option<&str>,
    ) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE wallets SET name = COALESCE($1, name), external_id = COALESCE($2, external_id) \
                 WHERE org_id = $3 AND id = $4 AND status = 'Active'",
            )
            .bind(name)
            .bind(external_id)
            .bind(org_id)
            .bind(wallet_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn set_wallet_tags(
        &self,
        org_id: &str,
        wallet_id: &str,
        tags: &[String],
    ) -> StoreResult<bool> {
        let tags = tags_json(tags)?;
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE wallets SET tags = $1 WHERE org_id = $2 AND id = $3 AND status = 'Active'",
            )
            .bind(&tags)
            .bind(org_id)
            .bind(wallet_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }
}

/// One `signatures` row (`$r: &SignatureRecord`) through `$exec`; `Result<(), sqlx::Error>`.
macro_rules! insert_signature {
    ($exec:expr, $r:expr) => {
        sqlx::query(
            "INSERT INTO signatures (id, org_id, key_id, wallet_id, requester_id, token_id, kind, \
             request_body, network, status, reason, signature, signed_data, tx_hash, external_id, \
             user_action_id, created_at, signed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&$r.id)
        .bind(&$r.org_id)
        .bind(&$r.key_id)
        .bind(&$r.wallet_id)
        .bind(&$r.requester_id)
        .bind(&$r.token_id)
        .bind(&$r.kind)
        .bind(&$r.request_body)
        .bind(&$r.network)
        .bind($r.status.as_str())
        .bind(&$r.reason)
        .bind(&$r.signature)
        .bind(&$r.signed_data)
        .bind(&$r.tx_hash)
        .bind(&$r.external_id)
        .bind(&$r.user_action_id)
        .bind($r.created_at.0)
        .bind($r.signed_at.map(|t| t.0))
        .execute($exec)
        .await
        .map(|_| ())
    };
}

#[async_trait]
impl SignatureStore for SqlStore {
    async fn insert_signature_spending(
        &self,
        r: &SignatureRecord,
        action: &UserAction,
    ) -> StoreResult<bool> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            match insert_user_action!(&mut *tx, action) {
                Ok(()) => {}
                Err(e) if is_unique_violation(&e) => return Ok(false),
                Err(e) => return Err(map_err(e)),
            }
            insert_signature!(&mut *tx, r).map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    async fn finish_signature(&self, r: &SignatureRecord) -> StoreResult<bool> {
        let n = on_write!(self, |p| {
            sqlx::query(
                "UPDATE signatures SET status = $1, reason = $2, signature = $3, signed_data = $4, \
                 tx_hash = $5, signed_at = $6 WHERE id = $7 AND status = 'Executing'",
            )
            .bind(r.status.as_str())
            .bind(&r.reason)
            .bind(&r.signature)
            .bind(&r.signed_data)
            .bind(&r.tx_hash)
            .bind(r.signed_at.map(|t| t.0))
            .bind(&r.id)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn get_signature(
        &self,
        org_id: &str,
        signature_id: &str,
    ) -> StoreResult<Option<SignatureRecord>> {
        let sql = format!("SELECT {SIG_COLS} FROM signatures WHERE org_id = $1 AND id = $2");
        let row: Option<SignatureRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(signature_id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(SignatureRecord::try_from).transpose()
    }

    async fn find_signature_by_external_id(
        &self,
        org_id: &str,
        key_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<SignatureRecord>> {
        let sql = format!(
            "SELECT {SIG_COLS} FROM signatures WHERE org_id = $1 AND key_id = $2 AND external_id = $3"
        );
        let row: Option<SignatureRow> = on_read!(self, |p| sqlx::query_as(&sql)
            .bind(org_id)
            .bind(key_id)
            .bind(external_id)
            .fetch_optional(p)
            .await)
        .map_err(map_err)?;
        row.map(SignatureRecord::try_from).transpose()
    }

    async fn list_signatures(
        &self,
        org_id: &str,
        key_id: &str,
        wallet_id: Option<&str>,
        page: &PageRequest,
    ) -> StoreResult<Page<SignatureRecord>> {
        let (ts, id) = after(page);
        let wallet_filter = if wallet_id.is_some() {
            "AND wallet_id = $6"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {SIG_COLS} FROM signatures WHERE org_id = $1 AND key_id = $2 \
             AND (created_at < $3 OR (created_at = $3 AND id < $4)) {wallet_filter} \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        let rows: Vec<SignatureRow> = on_read!(self, |p| {
            let q = sqlx::query_as(&sql)
                .bind(org_id)
                .bind(key_id)
                .bind(ts)
                .bind(&id)
                .bind(i64::from(page.limit) + 1);
            let q = match wallet_id {
                Some(w) => q.bind(w),
                None => q,
            };
            q.fetch_all(p).await
        })
        .map_err(map_err)?;
        let items = rows
            .into_iter()
            .map(SignatureRecord::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |r| Cursor {
            created_at: r.created_at,
            id: r.id.clone(),
        }))
    }

    async fn fail_interrupted_signatures(
        &self,
        before: Timestamp,
        reason: &str,
    ) -> StoreResult<u64> {
        on_write!(self, |p| {
            sqlx::query(
                "UPDATE signatures SET status = 'Failed', reason = $1 \
                 WHERE status = 'Executing' AND created_at < $2",
            )
            .bind(reason)
            .bind(before.0)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)
    }
}

#[async_trait]
impl PresignatureStore for SqlStore {
    async fn add_presignature(&self, ps: &PresignatureRecord) -> StoreResult<()> {
        self.add_presignatures(std::slice::from_ref(ps)).await
    }

    async fn add_presignatures(&self, batch: &[PresignatureRecord]) -> StoreResult<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            for ps in batch {
                sqlx::query(
                    "INSERT INTO presignatures (id, key_id, signers, public, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&ps.id)
                .bind(&ps.key_id)
                .bind(&ps.signers)
                .bind(&ps.public)
                .bind(ps.created_at.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)
        })
    }

    async fn take_presignature(
        &self,
        key_id: &str,
        signer_sets: &[String],
    ) -> StoreResult<Option<PresignatureRecord>> {
        Ok(self
            .take_presignatures(key_id, signer_sets, 1)
            .await?
            .into_iter()
            .next())
    }

    async fn take_presignatures(
        &self,
        key_id: &str,
        signer_sets: &[String],
        limit: i64,
    ) -> StoreResult<Vec<PresignatureRecord>> {
        if signer_sets.is_empty() || limit < 1 {
            return Ok(vec![]);
        }
        let sets = placeholders(3, signer_sets.len());
        // Select and delete in one statement: whoever deletes a row owns it.
        let lock = match self.backend {
            Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite { .. } => "",
        };
        let sql = format!(
            "DELETE FROM presignatures WHERE id IN (SELECT id FROM presignatures \
             WHERE key_id = $1 AND signers IN ({sets}) ORDER BY created_at, id LIMIT $2 {lock}) \
             RETURNING id, key_id, signers, public, created_at"
        );
        let rows: Vec<PresignatureRow> = on_write!(self, |p| {
            let mut q = sqlx::query_as(&sql).bind(key_id).bind(limit);
            for s in signer_sets {
                q = q.bind(s);
            }
            q.fetch_all(p).await
        })
        .map_err(map_err)?;
        let mut out: Vec<PresignatureRecord> =
            rows.into_iter().map(PresignatureRecord::from).collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn add_pooled_key(&self, k: &PooledKey) -> StoreResult<()> {
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO key_pool (id, scheme, public_key, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&k.id)
            .bind(k.scheme.as_str())
            .bind(&k.public_key)
            .bind(k.created_at.0)
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(map_err)
    }

    async fn take_pooled_key(&self, scheme: KeyScheme) -> StoreResult<Option<PooledKey>> {
        let lock = match self.backend {
            Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite { .. } => "",
        };
        let sql = format!(
            "DELETE FROM key_pool WHERE id = (SELECT id FROM key_pool WHERE scheme = $1 \
             ORDER BY created_at, id LIMIT 1 {lock}) RETURNING id, public_key, created_at"
        );
        let row: Option<(String, Vec<u8>, i64)> = on_write!(self, |p| {
            sqlx::query_as(&sql)
                .bind(scheme.as_str())
                .fetch_optional(p)
                .await
        })
        .map_err(map_err)?;
        Ok(row.map(|(id, public_key, created_at)| PooledKey {
            id,
            scheme,
            public_key,
            created_at: Timestamp(created_at),
        }))
    }

    async fn count_pooled_keys(&self, scheme: KeyScheme) -> StoreResult<i64> {
        let n: (i64,) = on_read!(self, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM key_pool WHERE scheme = $1"
        )
        .bind(scheme.as_str())
        .fetch_one(p)
        .await)
        .map_err(map_err)?;
        Ok(n.0)
    }

    async fn count_presignatures(&self, key_id: &str) -> StoreResult<i64> {
        let n: (i64,) = on_read!(self, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM presignatures WHERE key_id = $1"
        )
        .bind(key_id)
        .fetch_one(p)
        .await)
        .map_err(map_err)?;
        Ok(n.0)
    }

    async fn forget_presignatures_before(&self, party: u16, before: Timestamp) -> StoreResult<u64> {
        // `signers` is a comma-separated list of party indices ("0,2").
        on_write!(self, |p| sqlx::query(
            "DELETE FROM presignatures WHERE created_at < $1 AND (',' || signers || ',') LIKE $2"
        )
        .bind(before.0)
        .bind(format!("%,{party},%"))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .map_err(map_err)
    }

    async fn forget_pooled_keys(&self) -> StoreResult<u64> {
        on_write!(self, |p| sqlx::query("DELETE FROM key_pool")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(map_err)
    }

    async fn ecdsa_key_status(&self, key_id: &str) -> StoreResult<Option<LifecycleStatus>> {
        let row: Option<(String,)> = on_read!(self, |p| sqlx::query_as(
            "SELECT status FROM keys WHERE id = $1 AND scheme = 'ECDSA'"
        )
        .bind(key_id)
        .fetch_optional(p)
        .await)
        .map_err(map_err)?;
        row.map(|(s,)| LifecycleStatus::parse(&s).ok_or_else(|| crate::rows::bad("key status", &s)))
            .transpose()
    }
}
