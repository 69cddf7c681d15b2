//! The node-id scheme: FUSE node ids are the image's own inode numbers.
//!
//! fuser sends `attr.ino` both as the FUSE node id and as the `st_ino` the kernel reports, so
//! to make `stat` agree with the kernel SquashFS driver the node id must be the on-disk inode
//! number. SquashFS numbers inodes densely from 1 to `inode_count`, so the map from node id to
//! the 48-bit inode reference (what the reader needs) is a flat, zero-initialised array of
//! atomics indexed by node id: one relaxed load per request, no lock, no hashing, and
//! `forget` is a no-op because entries are never removed (an inode's reference never changes).
//! Its pages are touched only for inodes the kernel has been told about.
//!
//! Two ids are special:
//! - node 1 is FUSE's root (`FUSE_ROOT_ID`). `getattr` on it still reports the root's real
//!   inode number, so `stat` of the mountpoint matches the kernel too.
//! - the inode whose number is 1 (if it is not the root) gets node id `inode_count + 1`. Its
//!   entries are sent with an attribute timeout of 0, so every `stat` asks `getattr`, which
//!   reports `st_ino` 1: `stat` matches the kernel for every inode. (Only `d_ino` from
//!   readdirplus shows the alias for that one entry.)
//!
//! Images with absurd inode counts (> 2^27) fall back to a sharded hash map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::InodeRef;
use parking_lot::Mutex;

/// FUSE's root node id.
pub const ROOT_NODE: u64 = 1;

/// Largest inode count served from the dense array (1 GiB of virtual memory at most).
const DENSE_LIMIT: u64 = 1 << 27;
const SHARDS: usize = 64;

enum Store {
    Dense(Box<[AtomicU64]>),
    Sparse(Box<[Mutex<HashMap<u64, u64>>]>),
}

/// Maps node ids to inode references (see the module docs for the scheme).
pub struct NodeTable {
    root_ref: InodeRef,
    root_number: u32,
    inode_count: u32,
    store: Store,
}

/// Why a node id could not be assigned or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeError {
    /// The image gives an inode number outside `1..=inode_count`.
    BadNumber(u32),
    /// The kernel sent a node id this server never handed out.
    Unknown(u64),
}

fn zeroed_atomics(len: usize) -> Box<[AtomicU64]> {
    // calloc-backed: pages are mapped lazily, so RSS grows only with the inodes touched.
    let zeros: Box<[u64]> = vec![0u64; len].into_boxed_slice();
    const _: () = assert!(
        std::mem::size_of::<AtomicU64>() == std::mem::size_of::<u64>()
            && std::mem::align_of::<AtomicU64>() == std::mem::align_of::<u64>()
    );
    // SAFETY: AtomicU64 has the same size, alignment and bit validity as u64 (checked above),
    // and the box is uniquely owned, so reinterpreting the slice is sound.
    unsafe { Box::from_raw(Box::into_raw(zeros) as *mut [AtomicU64]) }
}

impl NodeTable {
    /// A table for an image with `inode_count` inodes whose (served) root is `root_ref`
    /// numbered `root_number`.
    pub fn new(root_ref: InodeRef, root_number: u32, inode_count: u32) -> NodeTable {
        let store = if u64::from(inode_count) <= DENSE_LIMIT {
            Store::Dense(zeroed_atomics(inode_count as usize + 2))
        } else {
            Store::Sparse((0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect())
        };
        NodeTable {
            root_ref,
            root_number,
            inode_count,
            store,
        }
    }

    /// The inode number `getattr` reports for `node`: the node id itself, except for the root
    /// (its real inode number) and the alias of inode 1.
    pub fn st_ino(&self, node: u64) -> u64 {
        if node == ROOT_NODE {
            u64::from(self.root_number)
        } else if node == u64::from(self.inode_count) + 1 {
            1
        } else {
            node
        }
    }

    /// The node id for the inode numbered `number` at `r`, recording the mapping.
    pub fn node_for(&self, number: u32, r: InodeRef) -> Result<u64, NodeError> {
        if r == self.root_ref {
            return Ok(ROOT_NODE);
        }
        if number == 0 || number > self.inode_count {
            return Err(NodeError::BadNumber(number));
        }
        let node = if number == 1 {
            u64::from(self.inode_count) + 1
        } else {
            u64::from(number)
        };
        let stored = r.0 + 1;
        match &self.store {
            Store::Dense(slots) => {
                let slot = &slots[node as usize];
                // Read first: the common case (already known) then never dirties the line.
                if slot.load(Ordering::Relaxed) != stored {
                    slot.store(stored, Ordering::Relaxed);
                }
            }
            Store::Sparse(shards) => {
                shards[node as usize % SHARDS].lock().insert(node, stored);
            }
        }
        Ok(node)
    }

    /// The inode reference behind `node`.
    pub fn resolve(&self, node: u64) -> Result<InodeRef, NodeError> {
        if node == ROOT_NODE {
            return Ok(self.root_ref);
        }
        let stored = match &self.store {
            Store::Dense(slots) => slots
                .get(usize::try_from(node).unwrap_or(usize::MAX))
                .map_or(0, |s| s.load(Ordering::Relaxed)),
            Store::Sparse(shards) => shards[node as usize % SHARDS]
                .lock()
                .get(&node)
                .copied()
                .unwrap_or(0),
        };
        if stored == 0 {
            Err(NodeError::Unknown(node))
        } else {
            Ok(InodeRef(stored - 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_inode_one_are_remapped() {
        let t = NodeTable::new(InodeRef(0x1234_0010), 9, 9);
        assert_eq!(t.node_for(9, InodeRef(0x1234_0010)), Ok(ROOT_NODE));
        assert_eq!(t.resolve(ROOT_NODE), Ok(InodeRef(0x1234_0010)));
        assert_eq!(t.st_ino(ROOT_NODE), 9);
        let one = t.node_for(1, InodeRef(0)).unwrap();
        assert_eq!(one, 10);
        assert_eq!(t.st_ino(one), 1);
        assert_eq!(t.resolve(one), Ok(InodeRef(0)));
        let five = t.node_for(5, InodeRef(0x20_0040)).unwrap();
        assert_eq!((five, t.st_ino(five)), (5, 5));
        assert_eq!(t.resolve(5), Ok(InodeRef(0x20_0040)));
    }

    #[test]
    fn unknown_and_bad_numbers_are_errors() {
        let t = NodeTable::new(InodeRef(7), 3, 3);
        assert_eq!(t.resolve(2), Err(NodeError::Unknown(2)));
        assert_eq!(t.resolve(u64::MAX), Err(NodeError::Unknown(u64::MAX)));
        assert_eq!(t.node_for(0, InodeRef(1)), Err(NodeError::BadNumber(0)));
        assert_eq!(t.node_for(4, InodeRef(1)), Err(NodeError::BadNumber(4)));
    }
}
