//! Per-inode locks (sharded, taken in shard order so several can be held without
//! deadlock) and the kernel's lookup counts, which decide when an unlinked inode may go.

use std::collections::HashMap;

use parking_lot::{Mutex, MutexGuard};

const SHARDS: usize = 256;

/// Sharded per-inode locks.
pub struct InodeLocks {
    shards: Box<[Mutex<()>]>,
}

/// Held inode locks; released on drop.
pub struct Held<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl Default for InodeLocks {
    fn default() -> Self {
        InodeLocks {
            shards: (0..SHARDS).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl InodeLocks {
    /// Lock every inode of `inos` (0s are ignored), in shard order.
    pub fn lock(&self, inos: &[u32]) -> Held<'_> {
        let mut idx: Vec<usize> = inos
            .iter()
            .filter(|&&i| i != 0)
            .map(|&i| i as usize % SHARDS)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        Held {
            _guards: idx.into_iter().map(|i| self.shards[i].lock()).collect(),
        }
    }
}

/// How many lookups the kernel holds on each inode (only counted on writable mounts).
#[derive(Default)]
pub struct LookupCounts {
    shards: [Mutex<HashMap<u32, u64>>; 16],
}

impl LookupCounts {
    /// The kernel was handed one more reference to `ino`.
    pub fn add(&self, ino: u32) {
        *self.shards[ino as usize % 16]
            .lock()
            .entry(ino)
            .or_insert(0) += 1;
    }

    /// The kernel dropped `n` references to `ino`; returns whether none are left.
    pub fn drop_refs(&self, ino: u32, n: u64) -> bool {
        let mut m = self.shards[ino as usize % 16].lock();
        match m.get_mut(&ino) {
            Some(c) if *c > n => {
                *c -= n;
                false
            }
            _ => {
                m.remove(&ino);
                true
            }
        }
    }

    /// Whether the kernel holds any reference to `ino`.
    pub fn held(&self, ino: u32) -> bool {
        self.shards[ino as usize % 16].lock().contains_key(&ino)
    }
}
