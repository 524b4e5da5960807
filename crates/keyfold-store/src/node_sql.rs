//! A signer node's own database: the [`NodeStore`] port over SQLite or PostgreSQL.
//!
//! A separate type from the API's [`SqlStore`] with separate migrations: a signer's database
//! is never the API's (pointing one at the other fails its migration check), so compromising
//! the API's database yields no share, sealed or not.

use async_trait::async_trait;
use keyfold_domain::StoreError;
use keyfold_domain::ports::{NodeRequestRecord, NodeStore, StoreResult};
use keyfold_domain::time::Timestamp;

use crate::sql::map_err;
use crate::{Backend, SqlStore, StoreOptions, on_read, on_write};

/// The signer node's store.
#[derive(Debug, Clone)]
pub struct SqlNodeStore(SqlStore);

impl SqlNodeStore {
    /// Connects. A node's store caches nothing, so it takes no sole-writer lock: a signer
    /// restarted by `keyfold dev` may briefly overlap the one it replaces (that one exits
    /// within half a second of its parent), and every spend is a transaction of its own.
    pub async fn connect(opts: &StoreOptions) -> Result<Self, StoreError> {
        let opts = StoreOptions {
            sole_writer: false,
            ..opts.clone()
        };
        Ok(Self(SqlStore::connect(&opts).await?))
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let failed = |e: sqlx::migrate::MigrateError| {
            StoreError::Internal(format!("node migration failed: {e}"))
        };
        match &self.0.backend {
            Backend::Sqlite { write, .. } => sqlx::migrate!("migrations/node-sqlite")
                .run(write)
                .await
                .map_err(failed),
            Backend::Postgres(pool) => sqlx::migrate!("migrations/node-postgres")
                .run(pool)
                .await
                .map_err(failed),
        }
    }

    pub async fn close(&self) {
        self.0.close().await;
    }
}

#[async_trait]
impl NodeStore for SqlNodeStore {
    async fn get_meta(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_read!(self.0, |p| sqlx::query_as(
            "SELECT value FROM node_meta WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(p)
        .await)
        .map_err(map_err)?;
        Ok(row.map(|r| r.0))
    }

    async fn init_meta(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        on_write!(self.0, |p| sqlx::query(
            "INSERT INTO node_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
        )
        .bind(name)
        .bind(value)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(map_err)?;
        self.get_meta(name)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("node meta {name} vanished")))
    }

    async fn put_share(
        &self,
        key_id: &str,
        version: i64,
        scheme: &str,
        sealed: &[u8],
        now: Timestamp,
    ) -> StoreResult<()> {
        on_write!(self.0, |p| sqlx::query(
            "INSERT INTO node_shares (key_id, version, scheme, sealed, created_at) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(key_id)
        .bind(version)
        .bind(scheme)
        .bind(sealed)
        .bind(now.0)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict("node_shares.key".into()),
            other => other,
        })
    }

    async fn get_share(&self, key_id: &str) -> StoreResult<Option<(i64, String, Vec<u8>)>> {
        let row: Option<(i64, String, Vec<u8>)> = on_read!(self.0, |p| sqlx::query_as(
            "SELECT version, scheme, sealed FROM node_shares WHERE key_id = $1"
        )
        .bind(key_id)
        .fetch_optional(p)
        .await)
        .map_err(map_err)?;
        Ok(row)
    }

    async fn put_aux(&self, group_id: &str, sealed: &[u8], now: Timestamp) -> StoreResult<()> {
        on_write!(self.0, |p| sqlx::query(
            "INSERT INTO node_aux (group_id, sealed, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at"
        )
        .bind(group_id)
        .bind(sealed)
        .bind(now.0)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(map_err)
    }

    async fn get_aux(&self, group_id: &str) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_read!(self.0, |p| sqlx::query_as(
            "SELECT sealed FROM node_aux WHERE group_id = $1"
        )
        .bind(group_id)
        .fetch_optional(p)
        .await)
        .map_err(map_err)?;
        Ok(row.map(|r| r.0))
    }

    async fn add_primes(&self, id: &str, sealed: &[u8], now: Timestamp) -> StoreResult<()> {
        on_write!(self.0, |p| sqlx::query(
            "INSERT INTO node_primes (id, sealed, created_at) VALUES ($1, $2, $3)"
        )
        .bind(id)
        .bind(sealed)
        .bind(now.0)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(map_err)
    }

    async fn oldest_primes(&self) -> StoreResult<Option<(String, Vec<u8>)>> {
        let row: Option<(String, Vec<u8>)> = on_read!(self.0, |p| sqlx::query_as(
            "SELECT id, sealed FROM node_primes ORDER BY created_at, id LIMIT 1"
        )
        .fetch_optional(p)
        .await)
        .map_err(map_err)?;
        Ok(row)
    }

    async fn delete_primes(&self, id: &str) -> StoreResult<bool> {
        let n = on_write!(self.0, |p| sqlx::query(
            "DELETE FROM node_primes WHERE id = $1"
        )
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .map_err(map_err)?;
        Ok(n == 1)
    }

    async fn count_primes(&self) -> StoreResult<i64> {
        let n: (i64,) = on_read!(self.0, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM node_primes"
        )
        .fetch_one(p)
        .await)
        .map_err(map_err)?;
        Ok(n.0)
    }

    async fn put_presignature(
        &self,
        id: &str,
        key_id: &str,
        sealed: &[u8],
        now: Timestamp,
    ) -> StoreResult<()> {
        on_write!(self.0, |p| sqlx::query(
            "INSERT INTO node_presignatures (id, key_id, sealed, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(id)
        .bind(key_id)
        .bind(sealed)
        .bind(now.0)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(map_err)
    }

    async fn take_presignature(&self, id: &str, key_id: &str) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_write!(self.0, |p| sqlx::query_as(
            "DELETE FROM node_presignatures WHERE id = $1 AND key_id = $2 RETURNING sealed"
        )
        .bind(id)
        .bind(key_id)
        .fetch_optional(p)
        .await)
        .map_err(map_err)?;
        Ok(row.map(|r| r.0))
    }

    async fn put_presignatures(
        &self,
        key_id: &str,
        batch: &[(String, Vec<u8>)],
        now: Timestamp,
    ) -> StoreResult<()> {
        on_write!(self.0, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            for (id, sealed) in batch {
                sqlx::query(
                    "INSERT INTO node_presignatures (id, key_id, sealed, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(key_id)
                .bind(sealed)
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)
        })
    }

    async fn take_presignature_recording(
        &self,
        id: &str,
        key_id: &str,
        rec: Option<&NodeRequestRecord>,
    ) -> StoreResult<Option<Vec<u8>>> {
        let Some(rec) = rec else {
            return self.take_presignature(id, key_id).await;
        };
        on_write!(self.0, |p| {
            let mut tx = p.begin().await.map_err(map_err)?;
            let row: Option<(Vec<u8>,)> = sqlx::query_as(
                "DELETE FROM node_presignatures WHERE id = $1 AND key_id = $2 RETURNING sealed",
            )
            .bind(id)
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            let Some((sealed,)) = row else {
                return Ok(None);
            };
            sqlx::query(
                "INSERT INTO node_requests (session_id, key_id, protocol, evidence, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&rec.session_id)
            .bind(&rec.key_id)
            .bind(&rec.protocol)
            .bind(&rec.evidence)
            .bind(rec.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(Some(sealed))
        })
    }

    async fn record_request(&self, rec: &NodeRequestRecord) -> StoreResult<()> {
        on_write!(self.0, |p| sqlx::query(
            "INSERT INTO node_requests (session_id, key_id, protocol, evidence, created_at) \
             VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&rec.session_id)
        .bind(&rec.key_id)
        .bind(&rec.protocol)
        .bind(&rec.evidence)
        .bind(rec.created_at.0)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(map_err)
    }

    async fn burn_pooled(&self) -> StoreResult<u64> {
        on_write!(self.0, |p| sqlx::query("DELETE FROM node_presignatures")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(map_err)
    }

    async fn count_requests(&self, key_id: &str) -> StoreResult<i64> {
        let n: (i64,) = on_read!(self.0, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM node_requests WHERE key_id = $1"
        )
        .bind(key_id)
        .fetch_one(p)
        .await)
        .map_err(map_err)?;
        Ok(n.0)
    }
}
