//! Read caches for sessions and credentials, for the SQLite backend only.
//!
//! Every authenticated request reads its session (token row, identity, org, operations), and
//! every user action reads the caller's credentials twice (the challenge lists them, the
//! answer is checked against one). With SQLite this process is the database's only writer, so
//! it knows every change that can alter either: those store methods invalidate (everything, or
//! one key) *after* they commit, and a reader takes a ticket *before* it queries. A value read
//! under a ticket older than an invalidation covering its key is never kept, so a read that
//! raced a write is never served afterwards, and a logout, deactivation, permission or
//! credential change counts on the very next request. A change to sessions also drops the credentials (conservative: a user's
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

/// Values valid until a write invalidates them: all at once ([`Self::invalidate`]) or one key
/// ([`Self::invalidate_key`]).
///
/// A reader takes a ticket ([`Self::generation`]) *before* it queries and hands it to
/// [`Self::put`]. Every invalidation takes a new generation *after* its write committed and
/// records it (for its key, or for everything); `put` refuses a value whose ticket is older
/// than an invalidation that covers its key, since that read may have seen the data from
/// before the write. Entries in the map are therefore always current, and an invalidation
/// also removes the entries it covers.
#[derive(Debug)]
pub(crate) struct Generational<K, V> {
    generation: AtomicU64,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    entries: HashMap<K, V>,
    /// The generation of each key's last invalidation since the last `all`.
    touched: HashMap<K, u64>,
    /// The generation of the last invalidation of everything.
    all: u64,
}

impl<K, V> Default for Generational<K, V> {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                touched: HashMap::new(),
                all: 0,
            }),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Generational<K, V> {
    /// The ticket to tag a read with; take it before querying.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.inner.lock().ok()?.entries.get(key).cloned()
    }

    /// The cached value, or `load`'s, cached under the ticket taken before it ran (so a load
    /// that raced a write is never served afterwards).
    pub(crate) async fn read_through<E, F, Fut>(&self, key: K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let ticket = self.generation();
        let value = load().await?;
        self.put(key, ticket, &value);
        Ok(value)
    }

    /// Caches `value`, read under `ticket`, unless an invalidation covering `key` came since.
    pub(crate) fn put(&self, key: K, ticket: u64, value: &V) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if ticket < inner.all || inner.touched.get(&key).is_some_and(|g| *g > ticket) {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(key, value.clone());
    }

    /// Call after committing any change that can alter cached values of any key.
    ///
    /// The generation is taken *inside* the lock, in both invalidations: marks are then
    /// recorded in the order they were taken and only ever grow. (Taken before the lock, two
    /// writers could record out of order, an older mark overwriting a newer one, and a read
    /// that predates the newer write would be kept.)
    pub(crate) fn invalidate(&self) {
        // A poisoned lock is taken anyway: an invalidation must never be skipped.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let g = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        inner.entries.clear();
        inner.touched.clear();
        inner.all = g;
    }

    /// Call after committing a change that can alter `key`'s value only.
    pub(crate) fn invalidate_key(&self, key: &K) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let g = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        inner.entries.remove(key);
        if !inner.touched.contains_key(key) && inner.touched.len() >= CAPACITY {
            // Bounded memory: forgetting the keys means covering all of them.
            inner.entries.clear();
            inner.touched.clear();
            inner.all = g;
        } else {
            inner.touched.insert(key.clone(), g);
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

    /// After a change to one user's credentials only.
    pub(crate) fn user_credentials_changed(&self, org_id: &str, user_id: &str) {
        self.credentials
            .invalidate_key(&(org_id.to_string(), user_id.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::Generational;

    #[test]
    fn a_read_older_than_an_invalidation_of_its_key_is_not_kept() {
        let c: Generational<&str, u32> = Generational::default();
        let (ta, tb) = (c.generation(), c.generation());
        // A write to "a" commits while both reads are in flight.
        c.invalidate_key(&"a");
        c.put("a", ta, &1);
        c.put("b", tb, &2);
        assert_eq!(c.get("a"), None, "the read of a may predate the write");
        assert_eq!(c.get("b"), Some(2), "b was not touched");
        // A read that started after the write is kept; the next write to "a" drops it.
        c.put("a", c.generation(), &3);
        assert_eq!(c.get("a"), Some(3));
        c.invalidate_key(&"a");
        assert_eq!(c.get("a"), None);
        assert_eq!(c.get("b"), Some(2));
    }

    #[test]
    fn a_ticket_older_than_every_mark_is_refused_for_every_key() {
        let c: Generational<&str, u32> = Generational::default();
        let t = c.generation();
        c.invalidate_key(&"a");
        c.invalidate();
        c.invalidate_key(&"a");
        // Every mark is newer than the ticket: the read it tags is refused for either key.
        c.put("a", t, &1);
        c.put("b", t, &2);
        assert_eq!((c.get("a"), c.get("b")), (None, None));
        assert!(c.generation() >= t + 3);
    }

    #[test]
    fn invalidating_everything_covers_reads_in_flight_for_every_key() {
        let c: Generational<&str, u32> = Generational::default();
        let t = c.generation();
        c.put("a", t, &1);
        c.invalidate();
        assert_eq!(c.get("a"), None);
        c.put("b", t, &2);
        assert_eq!(c.get("b"), None);
        c.put("b", c.generation(), &2);
        assert_eq!(c.get("b"), Some(2));
    }
}
