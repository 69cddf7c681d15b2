//! [`MissCache`]: names a lookup just found absent from a directory that lives only in the
//! upper layer, so the CREATE the kernel sends right after that miss need not ask the upper
//! again.
//!
//! Every change through the overlay holds the change lock through a [`ChangeGuard`], which
//! counts a generation up when the change starts and again when it ends (odd: a change is
//! running). A lookup records its miss with the generation it started at, only if that was
//! even and still is when the miss is recorded. A change may then trust a recorded miss only
//! if exactly one generation step separates them: its own start. Any other change in between
//! (a create, remove, rename, link or copy-up) makes the miss worthless. Changes made behind
//! the overlay's back in the upper directory are, as for any overlay, not seen.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use squashbox_vfs::NodeId;

/// Misses kept (the CREATE follows its LOOKUP closely; a few in flight at once suffice).
const KEEP: usize = 16;

/// Recent misses and the change generation.
#[derive(Default)]
pub struct MissCache {
    generation: AtomicU64,
    recent: Mutex<VecDeque<(NodeId, OsString, u64)>>,
}

/// The change lock, held; counts the generation on when dropped.
pub struct ChangeGuard<'a> {
    _lock: MutexGuard<'a, ()>,
    misses: &'a MissCache,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.misses.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl MissCache {
    /// Take the change `lock` and count a change as started.
    pub fn lock<'a>(&'a self, lock: &'a Mutex<()>) -> ChangeGuard<'a> {
        let guard = lock.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        ChangeGuard {
            _lock: guard,
            misses: self,
        }
    }

    /// The generation a lookup starts at (pass it to [`MissCache::record`]).
    pub fn lookup_started(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// A lookup that started at generation `seen` found `name` absent from `parent`.
    pub fn record(&self, parent: NodeId, name: &OsStr, seen: u64) {
        if !seen.is_multiple_of(2) || self.generation.load(Ordering::SeqCst) != seen {
            return;
        }
        let mut r = self.recent.lock();
        if r.len() >= KEEP {
            r.pop_front();
        }
        r.push_back((parent, name.to_os_string(), seen));
    }

    /// Called by a change holding the lock: whether `name` was found absent from `parent`
    /// with no other change since (the record is used up).
    pub fn take(&self, parent: NodeId, name: &OsStr) -> bool {
        let now = self.generation.load(Ordering::SeqCst);
        let mut r = self.recent.lock();
        let Some(i) = r.iter().position(|(p, n, _)| *p == parent && n == name) else {
            return false;
        };
        let (_, _, seen) = r.remove(i).expect("index just found");
        seen + 1 == now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_holds_only_until_another_change() {
        let lock = Mutex::new(());
        let m = MissCache::default();
        let name = OsStr::new("a");
        let g = m.lookup_started();
        m.record(7, name, g);
        {
            let _c = m.lock(&lock);
            assert!(m.take(7, name), "no change between the lookup and this one");
            assert!(!m.take(7, name), "used up");
        }
        let g = m.lookup_started();
        m.record(7, name, g);
        drop(m.lock(&lock)); // another change
        let _c = m.lock(&lock);
        assert!(!m.take(7, name));
    }

    #[test]
    fn a_lookup_during_a_change_records_nothing() {
        let lock = Mutex::new(());
        let m = MissCache::default();
        let c = m.lock(&lock);
        let g = m.lookup_started();
        m.record(7, OsStr::new("a"), g);
        drop(c);
        let g2 = m.lookup_started();
        m.record(8, OsStr::new("b"), g);
        assert_ne!(g, g2);
        let _c = m.lock(&lock);
        assert!(!m.take(7, OsStr::new("a")) && !m.take(8, OsStr::new("b")));
    }
}
