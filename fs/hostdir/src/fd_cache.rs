//! [`FdCache`]: a bounded set of open `O_PATH` descriptors, least recently used out first.
//!
//! A node whose descriptor was evicted is found again from its parent and name (see
//! `nodes`). Descriptors are shared (`Arc`): one evicted while a request still uses it is
//! closed when that request is done.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use parking_lot::Mutex;
use squashbox_vfs::NodeId;

struct Inner {
    by_node: HashMap<NodeId, (Arc<OwnedFd>, u64)>,
    by_age: BTreeMap<u64, NodeId>,
    tick: u64,
}

/// At most `limit` descriptors, keyed by node id.
pub struct FdCache {
    limit: usize,
    inner: Mutex<Inner>,
}

impl FdCache {
    /// A cache holding at most `limit` descriptors (at least 1).
    pub fn new(limit: usize) -> FdCache {
        FdCache {
            limit: limit.max(1),
            inner: Mutex::new(Inner {
                by_node: HashMap::new(),
                by_age: BTreeMap::new(),
                tick: 0,
            }),
        }
    }

    /// The descriptor of `node`, marking it recently used.
    pub fn get(&self, node: NodeId) -> Option<Arc<OwnedFd>> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let (fd, age) = inner.by_node.get_mut(&node)?;
        inner.by_age.remove(age);
        *age = tick;
        inner.by_age.insert(tick, node);
        Some(Arc::clone(fd))
    }

    /// Keep `fd` for `node`, evicting the least recently used beyond the limit. The evicted
    /// descriptors are returned so they are closed outside the lock.
    pub fn insert(&self, node: NodeId, fd: Arc<OwnedFd>) {
        let mut evicted = Vec::new();
        {
            let mut g = self.inner.lock();
            let inner = &mut *g;
            inner.tick += 1;
            let tick = inner.tick;
            if let Some((old, age)) = inner.by_node.insert(node, (fd, tick)) {
                inner.by_age.remove(&age);
                evicted.push(old);
            }
            inner.by_age.insert(tick, node);
            while inner.by_node.len() > self.limit {
                let Some((_, victim)) = inner.by_age.pop_first() else {
                    break;
                };
                if let Some((fd, _)) = inner.by_node.remove(&victim) {
                    evicted.push(fd);
                }
            }
        }
        drop(evicted);
    }

    /// Drop the descriptor of `node`, if any.
    pub fn remove(&self, node: NodeId) {
        let old = {
            let mut g = self.inner.lock();
            let inner = &mut *g;
            let old = inner.by_node.remove(&node);
            if let Some((_, age)) = &old {
                inner.by_age.remove(age);
            }
            old
        };
        drop(old);
    }

    /// Descriptors held now.
    pub fn len(&self) -> usize {
        self.inner.lock().by_node.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn fd() -> Arc<OwnedFd> {
        Arc::new(OwnedFd::from(File::open("/").unwrap()))
    }

    #[test]
    fn least_recently_used_goes_first() {
        let c = FdCache::new(2);
        c.insert(1, fd());
        c.insert(2, fd());
        assert!(c.get(1).is_some());
        c.insert(3, fd());
        assert_eq!(c.len(), 2);
        assert!(c.get(2).is_none(), "2 was the least recently used");
        assert!(c.get(1).is_some() && c.get(3).is_some());
        c.remove(1);
        assert!(c.get(1).is_none());
        assert_eq!(c.len(), 1);
    }
}
