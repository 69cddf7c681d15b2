//! Byte-bounded, sharded block caches. A hit takes only a shard read lock (no global lock);
//! concurrent misses on one key wait for a single loader and all get its value.

use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::{Cache, GuardResult};

/// Values that know their size in bytes.
pub(crate) trait Weighted {
    fn weight(&self) -> u64;
}

impl Weighted for std::sync::Arc<[u8]> {
    fn weight(&self) -> u64 {
        self.len() as u64 + 64
    }
}

#[derive(Clone)]
pub(crate) struct ByteWeighter;

impl<K, V: Weighted> Weighter<K, V> for ByteWeighter {
    fn weight(&self, _key: &K, val: &V) -> u64 {
        val.weight().max(1)
    }
}

/// A block cache keyed by `K` with hit/miss counters.
pub(crate) struct BlockCache<K, V> {
    cache: Cache<K, V, ByteWeighter>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: Eq + std::hash::Hash + Clone, V: Clone + Weighted> BlockCache<K, V> {
    /// A cache holding about `bytes` bytes of blocks of about `typical` bytes each.
    pub(crate) fn new(bytes: usize, typical: usize) -> Self {
        let bytes = bytes.max(1);
        let items = (bytes / typical.max(1)).clamp(16, 1 << 20);
        BlockCache {
            cache: Cache::with_weighter(items, bytes as u64, ByteWeighter),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached value, or the one `load` produces (run once even if many threads miss).
    pub(crate) fn get_or_load<E>(
        &self,
        key: &K,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        match self.cache.get_value_or_guard(key, None) {
            GuardResult::Value(v) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(v)
            }
            GuardResult::Guard(g) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let v = load()?;
                let _ = g.insert(v.clone());
                Ok(v)
            }
            GuardResult::Timeout => {
                // Unreachable without a timeout; load directly rather than fail.
                self.misses.fetch_add(1, Ordering::Relaxed);
                load()
            }
        }
    }

    /// The cached value for `key`, counting a hit; `None` (not counted) when absent.
    pub(crate) fn get_cached(&self, key: &K) -> Option<V> {
        let v = self.cache.get(key);
        if v.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    /// Whether `key` is cached (no counters touched, no recency update).
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.cache.peek(key).is_some()
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub(crate) fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.cache.weight()
    }
}
