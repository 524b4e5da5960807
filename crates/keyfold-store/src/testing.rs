//! Throwaway databases for tests: a SQLite file in a temp dir, or a fresh PostgreSQL database
//! created on the server named by `KEYFOLD_TEST_POSTGRES_URL` (default: the machine's local
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped when the fixture goes away — even if
//! the test panicked — so parallel runs never see each other's rows.
#![allow(clippy::expect_used, clippy::panic)]

use rand::Rng;
use sqlx::Connection;

use crate::{SqlNodeStore, SqlStore, StoreOptions};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_admin_url() -> String {
    std::env::var("KEYFOLD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

/// A migrated store over a throwaway database.
#[derive(Debug)]
pub struct TestDb {
    pub store: SqlStore,
    pub url: String,
    _guard: Guard,
}

#[derive(Debug)]
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, db: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, db } = self {
            let (admin_url, db) = (admin_url.clone(), db.clone());
            // Drop runs outside async context (or while unwinding): use a private runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A throwaway database URL (and the guard that drops it).
async fn fresh(postgres: bool) -> (String, Guard) {
    if !postgres {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("keyfold.db").display());
        return (url, Guard::Sqlite(dir));
    }
    let admin_url = postgres_admin_url();
    let db = format!("keyfold_test_{:016x}", rand::thread_rng().r#gen::<u64>());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required for this test: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{db}\""))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let _ = admin.close().await;
    let mut url = url::Url::parse(&admin_url).expect("postgres url");
    url.set_path(&db);
    (url.to_string(), Guard::Postgres { admin_url, db })
}

impl TestDb {
    pub async fn sqlite() -> Self {
        Self::new(false).await
    }

    pub async fn postgres() -> Self {
        Self::new(true).await
    }

    async fn new(postgres: bool) -> Self {
        let (url, guard) = fresh(postgres).await;
        let store = SqlStore::connect(&StoreOptions::new(&url))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        Self {
            store,
            url,
            _guard: guard,
        }
    }
}

/// A migrated signer-node store over a throwaway database.
#[derive(Debug)]
pub struct TestNodeDb {
    pub store: SqlNodeStore,
    pub url: String,
    _guard: Guard,
}

impl TestNodeDb {
    pub async fn sqlite() -> Self {
        Self::new(false).await
    }

    pub async fn postgres() -> Self {
        Self::new(true).await
    }

    async fn new(postgres: bool) -> Self {
        let (url, guard) = fresh(postgres).await;
        Self::open(url, guard).await
    }

    async fn open(url: String, guard: Guard) -> Self {
        let store = SqlNodeStore::connect(&StoreOptions::new(&url))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        Self {
            store,
            url,
            _guard: guard,
        }
    }
    /// A throwaway SQLite node database that starts as a copy of `template` (a file written
    /// by [`Self::snapshot_to`]).
    pub async fn sqlite_copy_of(template: &std::path::Path) -> Self {
        let (url, guard) = fresh(false).await;
        let file = url.trim_start_matches("sqlite://");
        std::fs::copy(template, file).expect("copy the template database");
        Self::open(url, guard).await
    }

    /// Writes a consistent copy of this SQLite node database to `path` (`VACUUM INTO`).
    pub async fn snapshot_to(&self, path: &std::path::Path) {
        assert!(
            !self.url.starts_with("postgres"),
            "snapshots are for SQLite node databases"
        );
        let mut c = sqlx::SqliteConnection::connect(&self.url)
            .await
            .expect("connect");
        let target = path.to_str().expect("utf-8 path").replace('\'', "''");
        sqlx::query(&format!("VACUUM INTO '{target}'"))
            .execute(&mut c)
            .await
            .expect("vacuum into");
    }

    /// Flips one byte of the sealed share of `key_id`, as a disk error or an attacker with
    /// write access to the node's database would.
    pub async fn flip_share_byte(&self, key_id: &str) {
        let select = "SELECT sealed FROM node_shares WHERE key_id = $1";
        let update = "UPDATE node_shares SET sealed = $1 WHERE key_id = $2";
        let flip = |mut b: Vec<u8>| {
            let i = b.len() / 2;
            b[i] ^= 0x01;
            b
        };
        if self.url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            let (b,): (Vec<u8>,) = sqlx::query_as(select)
                .bind(key_id)
                .fetch_one(&mut c)
                .await
                .expect("share");
            sqlx::query(update)
                .bind(flip(b))
                .bind(key_id)
                .execute(&mut c)
                .await
                .expect("update");
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            let (b,): (Vec<u8>,) = sqlx::query_as(select)
                .bind(key_id)
                .fetch_one(&mut c)
                .await
                .expect("share");
            sqlx::query(update)
                .bind(flip(b))
                .bind(key_id)
                .execute(&mut c)
                .await
                .expect("update");
        }
    }
}
