//! Keyfold's persistence: the domain's store port over SQLite (embedded, the default) and
//! PostgreSQL (production), with sqlx.
//!
//! One implementation serves both backends. Every query is written once in the SQL both
//! dialects accept (`$n` placeholders, partial indexes, `RETURNING`) and run against whichever
//! pool is configured; the [`on_read!`] / [`on_write!`] macros expand the same code once per
//! backend so each arm is statically typed. Where the dialects truly differ (row locking for
//! work queues) the SQL is chosen per arm.
//!
//! SQLite gets a single writer connection and a pool of readers in WAL mode: SQLite allows one
//! writer at a time anyway, and funnelling writes through one connection means a transaction
//! never fails to upgrade from reader to writer (`SQLITE_BUSY`) under concurrency.
//! `synchronous=FULL` makes every acknowledged write survive a crash or power loss. SQLite is
//! built to sync with `fdatasync(2)` (`LIBSQLITE3_FLAGS` in `.cargo/config.toml`), as
//! Debian's own SQLite is: the WAL is rewritten in place after a checkpoint, so a commit
//! rarely changes its size and needs no file-system journal commit, which `fsync(2)` forces
//! and which waits behind every other process's writes on the same disk.
//!
//! The conformance suite in `tests/conformance.rs` runs every test on both backends.

mod cache;
mod keys_sql;
mod node_sql;
mod permissions_sql;
mod rows;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;
mod transfers_sql;

pub use node_sql::SqlNodeStore;

use std::str::FromStr;
use std::time::Duration;

use keyfold_domain::StoreError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// The sqlx store. Cheap to clone (pools are shared handles).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) backend: Backend,
    /// Sessions and credentials cached in memory: present exactly when this process is the
    /// database's sole writer (SQLite, [`StoreOptions::sole_writer`]; see `cache`).
    pub(crate) cache: Option<std::sync::Arc<cache::AuthCache>>,
    /// The lock that keeps it so, held while any clone of the store lives (none for an
    /// in-memory database).
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

/// Runs `$body` with `$p` bound to a pool that may read.
macro_rules! on_read {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { read: $p, .. } => $body,
            $crate::Backend::Postgres($p) => $body,
        }
    };
}
/// Runs `$body` with `$p` bound to the pool that writes.
macro_rules! on_write {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { write: $p, .. } => $body,
            $crate::Backend::Postgres($p) => $body,
        }
    };
}
pub(crate) use {on_read, on_write};

/// Takes the exclusive lock on `<file>.lock` beside a SQLite database file. The lock is the
/// operating system's (`flock`): it dies with the process, so a crash never leaves it behind.
fn lock_sqlite(
    file: &std::path::Path,
) -> Result<Option<std::sync::Arc<std::fs::File>>, StoreError> {
    let name = file.as_os_str();
    if name.is_empty() {
        return Ok(None);
    }
    let mut path = name.to_owned();
    path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open {}: {e}",
                std::path::Path::new(&path).display()
            ))
        })?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(std::sync::Arc::new(lock))),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "the SQLite database {} is in use by another Keyfold process; SQLite serves one \
             process (run several replicas on PostgreSQL)",
            file.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            std::path::Path::new(&path).display()
        ))),
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a free connection before the store reports unavailable.
    pub acquire_timeout: Duration,
    /// SQLite: whether this process is to be the database's only writer (the default, for
    /// servers). It then holds an exclusive lock on `<file>.lock`, so a second server on the
    /// same file fails to start instead of serving from caches the other's writes make stale,
    /// and it caches what only it can change. Off for short operator tools (`keyfold admin`)
    /// that write beside a running server: they take no lock and cache nothing.
    pub sole_writer: bool,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            sole_writer: true,
        }
    }
}

impl SqlStore {
    /// Connects (creating a SQLite file if needed). Call [`SqlStore::migrate`] next.
    pub async fn connect(opts: &StoreOptions) -> Result<Self, StoreError> {
        match BackendKind::of_url(&opts.url) {
            Some(BackendKind::Sqlite) => {
                let base = SqliteConnectOptions::from_str(&opts.url)
                    .map_err(|e| StoreError::Unavailable(format!("bad sqlite url: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                // An in-memory database (which sqlx renames `file:sqlx-in-memory-N`) is
                // this process's alone: nothing to lock.
                let in_memory = opts.url.contains(":memory:") || opts.url.contains("mode=memory");
                let lock = if opts.sole_writer && !in_memory {
                    lock_sqlite(base.get_filename())?
                } else {
                    None
                };
                let write = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(opts.acquire_timeout.max(Duration::from_secs(30)))
                    .connect_with(base.clone())
                    .await
                    .map_err(sql::unavailable)?;
                let read = SqlitePoolOptions::new()
                    .max_connections(opts.max_connections.max(1))
                    .acquire_timeout(opts.acquire_timeout)
                    .connect_with(base.read_only(true))
                    .await
                    .map_err(sql::unavailable)?;
                Ok(Self {
                    backend: Backend::Sqlite { read, write },
                    cache: opts.sole_writer.then(Default::default),
                    _lock: lock,
                })
            }
            Some(BackendKind::Postgres) => {
                let pool = PgPoolOptions::new()
                    .max_connections(opts.max_connections.max(1))
                    .acquire_timeout(opts.acquire_timeout)
                    .connect(&opts.url)
                    .await
                    .map_err(sql::unavailable)?;
                Ok(Self {
                    backend: Backend::Postgres(pool),
                    cache: None,
                    _lock: None,
                })
            }
            None => Err(StoreError::Unavailable(
                "database url must start with sqlite: or postgres://".into(),
            )),
        }
    }

    /// After committing a change that can alter any session.
    pub(crate) fn sessions_changed(&self) {
        if let Some(c) = &self.cache {
            c.sessions_changed();
        }
    }

    /// After committing a change to any credential (its state, or a new one).
    pub(crate) fn credentials_changed(&self) {
        if let Some(c) = &self.cache {
            c.credentials_changed();
        }
    }

    /// After committing a change to one user's credentials only (a counter, say).
    pub(crate) fn user_credentials_changed(&self, org_id: &str, user_id: &str) {
        if let Some(c) = &self.cache {
            c.user_credentials_changed(org_id, user_id);
        }
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite { .. } => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Applies pending migrations (idempotent; safe to run from several replicas).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite { write, .. } => sqlx::migrate!("migrations/sqlite")
                .run(write)
                .await
                .map_err(|e| StoreError::Internal(format!("migration failed: {e}"))),
            Backend::Postgres(pool) => sqlx::migrate!("migrations/postgres")
                .run(pool)
                .await
                .map_err(|e| StoreError::Internal(format!("migration failed: {e}"))),
        }
    }

    /// Closes every connection (flushes SQLite's WAL on the last one).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(p) => p.close().await,
        }
    }
}
