//! Read caches for sessions and credentials, for the SQLite backend only.
//!
//! Every authenticated request reads its session (token row, identity, org, operations), and
//! every user action reads the caller's credentials twice (the challenge lists them, the
//! answer is checked against one). With SQLite this process is the database's only writer, so
//! it knows every change that can alter either: those store methods call `invalidate` *after*
//! they commit, and a reader records the generation *before* it queries. An entry is served
//! only while its cache's generation is unchanged, so a read that raced a write is never served
//! afterwards, and a logout, deactivation, permission or credential change counts on the very
//! next request. A change to sessions also drops the credentials (conservative: a user's
//! credentials are only read for sessions that exist).
//!
//! PostgreSQL deployments may run several API replicas that cannot see each other's writes,
//! so they read through to the database every time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use keyfold_domain::model::{Credential, SessionRecord};

/// Entries kept before a cache starts over (entries are small; this bounds memory).
const CAPACITY: usize = 50_000;

/// Values valid while no write has bumped the generation.
#[derive(Debug)]
pub(crate) struct Generational<K, V> {
    generation: AtomicU64,
    entries: Mutex<HashMap<K, (u64, V)>>,
}

impl<K, V> Default for Generational<K, V> {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Generational<K, V> {
    /// The generation to tag a read with; take it before querying.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let current = self.generation();
        let entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((g, v)) if *g == current => Some(v.clone()),
            _ => None,
        }
    }

    /// The cached value, or `load`'s, cached under the generation taken before it ran (so a
    /// load that raced a write is never served afterwards).
    pub(crate) async fn read_through<E, F, Fut>(&self, key: K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation();
        let value = load().await?;
        self.put(key, generation, &value);
        Ok(value)
    }

    pub(crate) fn put(&self, key: K, generation: u64, value: &V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key, (generation, value.clone()));
        }
    }

    /// Call after committing any change that can alter a cached value.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// What the SQLite backend caches: sessions by token id, credentials by (org, user).
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    pub(crate) sessions: Generational<String, SessionRecord>,
    pub(crate) credentials: Generational<(String, String), Vec<Credential>>,
}

impl AuthCache {
    /// After a change that can alter a session (and so, conservatively, credentials).
    pub(crate) fn sessions_changed(&self) {
        self.sessions.invalidate();
        self.credentials.invalidate();
    }

    /// After a change to any credential.
    pub(crate) fn credentials_changed(&self) {
        self.credentials.invalidate();
    }
}
