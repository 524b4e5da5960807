//! A read cache for sessions, for the SQLite backend only.
//!
//! Every authenticated request reads its session (token row, identity, org, operations). With
//! SQLite this process is the database's only writer, so it knows every change that can alter
//! a session: those store methods call [`SessionCache::invalidate`] *after* they commit, and a
//! reader records the generation *before* it queries. An entry is served only while the
//! generation is unchanged, so a read that raced a write is never served afterwards, and a
//! logout, deactivation or permission change still counts on the very next request.
//!
//! PostgreSQL deployments may run several API replicas that cannot see each other's writes,
//! so they read through to the database every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use keyfold_domain::model::SessionRecord;

/// Entries kept before the cache starts over (sessions are small; this bounds memory).
const CAPACITY: usize = 50_000;

#[derive(Debug, Default)]
pub(crate) struct SessionCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, (u64, SessionRecord)>>,
}

impl SessionCache {
    /// The generation to tag a read with; take it before querying.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, token_id: &str) -> Option<SessionRecord> {
        let current = self.generation();
        let entries = self.entries.lock().ok()?;
        match entries.get(token_id) {
            Some((g, rec)) if *g == current => Some(rec.clone()),
            _ => None,
        }
    }

    pub(crate) fn put(&self, token_id: &str, generation: u64, rec: &SessionRecord) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(token_id.to_string(), (generation, rec.clone()));
        }
    }

    /// Call after committing any change that can alter a session.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
