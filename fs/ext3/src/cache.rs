//! [`BlockCache`]: a bounded, concurrent cache of metadata blocks (inode tables, indirect
//! blocks, directory and xattr blocks). File data is read around it.
//!
//! A hit takes a shard read lock; concurrent misses on one block wait for a single loader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::{Cache, GuardResult};

/// A block's bytes, shared.
pub type Block = Arc<[u8]>;

/// Metadata blocks by block number, at most `capacity` of them.
pub struct BlockCache {
    cache: Cache<u64, Block>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BlockCache {
    /// A cache of about `bytes` bytes of `block_size`-byte blocks (at least 64 blocks).
    pub fn new(bytes: usize, block_size: u32) -> BlockCache {
        let items = (bytes / block_size.max(1) as usize).max(64);
        BlockCache {
            cache: Cache::new(items),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Block `blk`, from the cache or from `load` (run once even if many threads miss).
    pub fn get_or_load<E>(
        &self,
        blk: u64,
        load: impl FnOnce() -> Result<Block, E>,
    ) -> Result<Block, E> {
        match self.cache.get_value_or_guard(&blk, None) {
            GuardResult::Value(v) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(v)
            }
            GuardResult::Guard(g) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let v = load()?;
                let _ = g.insert(Arc::clone(&v));
                Ok(v)
            }
            GuardResult::Timeout => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                load()
            }
        }
    }

    /// Put `block` in the cache as the current content of `blk`.
    pub fn insert(&self, blk: u64, block: Block) {
        self.cache.insert(blk, block);
    }

    /// Drop `blk` from the cache (it was freed).
    pub fn remove(&self, blk: u64) {
        self.cache.remove(&blk);
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (h, m) = self.stats();
        write!(f, "BlockCache {{ hits: {h}, misses: {m} }}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_then_hits() {
        let c = BlockCache::new(1 << 20, 1024);
        let a: Result<Block, ()> = c.get_or_load(5, || Ok(Arc::from(vec![1u8; 4])));
        assert_eq!(&*a.unwrap(), &[1, 1, 1, 1]);
        let b: Result<Block, ()> = c.get_or_load(5, || panic!("must hit"));
        assert_eq!(b.unwrap().len(), 4);
        assert_eq!(c.stats(), (1, 1));
        let e: Result<Block, &str> = c.get_or_load(6, || Err("bad"));
        assert_eq!(e.unwrap_err(), "bad");
    }
}
