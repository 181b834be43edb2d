//! [`Cache`]: task results by [`CacheKey`], with an in-memory implementation.
//!
//! A cache maps a key to the outputs of the task run that produced it (the
//! artifacts stay where that run wrote them; the entry holds their URIs and
//! digests). Freshness (KFP's max cache staleness) is the caller's decision,
//! made with [`CacheEntry::is_fresh`] and the caller's clock. Other
//! implementations (over object_store) pass the same suite,
//! [`crate::testing::cache_conformance`].

mod object;

pub use object::ObjectStoreCache;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::run::TaskOutputs;
use crate::{CacheKey, Result};

/// A cached task result.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    /// The outputs to reuse.
    pub outputs: TaskOutputs,
    /// Milliseconds since the Unix epoch when the result was produced.
    pub created_ms: u64,
    /// The run that produced it.
    pub run: String,
    /// The task (execution path) that produced it.
    pub task: String,
}

impl CacheEntry {
    /// Whether the entry may be reused at `now_ms` when results older than
    /// `max_age` must not be (`None`: any age). An entry from the future
    /// (clock skew) counts as fresh.
    ///
    /// ```
    /// use kf_dag::cache::CacheEntry;
    /// use kf_dag::run::TaskOutputs;
    /// use std::time::Duration;
    /// let e = CacheEntry { outputs: TaskOutputs::default(), created_ms: 1_000, run: "r".into(), task: "t".into() };
    /// assert!(e.is_fresh(5_000, Some(Duration::from_secs(10))));
    /// assert!(!e.is_fresh(20_000, Some(Duration::from_secs(10))));
    /// assert!(e.is_fresh(u64::MAX, None));
    /// ```
    pub fn is_fresh(&self, now_ms: u64, max_age: Option<Duration>) -> bool {
        match max_age {
            None => true,
            Some(max_age) => {
                let age = u128::from(now_ms.saturating_sub(self.created_ms));
                age <= max_age.as_millis()
            }
        }
    }
}

/// Task results by cache key.
pub trait Cache: Send + Sync {
    /// The entry stored under `key`, if any.
    fn get(&self, key: &CacheKey) -> Result<Option<CacheEntry>>;

    /// Stores `entry` under `key`, replacing any earlier entry (the newest
    /// result wins, so a refreshed entry restarts its max-age clock).
    fn put(&self, key: &CacheKey, entry: CacheEntry) -> Result<()>;
}

/// A [`Cache`] in memory.
#[derive(Debug, Default)]
pub struct InMemoryCache {
    entries: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl InMemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, CacheEntry>> {
        // Each operation is a single insert or read: a poisoned lock holds consistent data.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Cache for InMemoryCache {
    fn get(&self, key: &CacheKey) -> Result<Option<CacheEntry>> {
        Ok(self.lock().get(key).cloned())
    }

    fn put(&self, key: &CacheKey, entry: CacheEntry) -> Result<()> {
        self.lock().insert(*key, entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_memory_cache_passes_the_conformance_suite() {
        crate::testing::cache_conformance(&InMemoryCache::new());
    }

    /// A cache that keeps the first entry per key: the suite must notice.
    struct FirstWins(InMemoryCache);

    impl Cache for FirstWins {
        fn get(&self, key: &CacheKey) -> Result<Option<CacheEntry>> {
            self.0.get(key)
        }
        fn put(&self, key: &CacheKey, entry: CacheEntry) -> Result<()> {
            if self.0.get(key)?.is_none() {
                self.0.put(key, entry)?;
            }
            Ok(())
        }
    }

    #[test]
    #[should_panic(expected = "the newest put wins")]
    fn the_suite_catches_a_cache_that_keeps_stale_entries() {
        crate::testing::cache_conformance(&FirstWins(InMemoryCache::new()));
    }
}
