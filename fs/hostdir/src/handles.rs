//! [`HandleTable`]: open files and directories, each holding its own descriptor.
//!
//! The table also finds an open handle by node, so calls that come without one (the kernel
//! sends chown, chmod, utimes and xattr calls without a handle even when the caller used a
//! descriptor) can use a real descriptor instead of the node's `O_PATH` one.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use squashbox_vfs::{FileHandle, NodeId};

/// One open file or directory.
pub struct Handle {
    /// The node it was opened on.
    pub node: NodeId,
    /// The descriptor with the access the open asked for.
    pub fd: OwnedFd,
    /// Serialises readdir calls on a directory handle (they move the descriptor's
    /// position).
    pub dir_lock: Mutex<()>,
}

#[derive(Default)]
struct Maps {
    by_fh: HashMap<u64, Arc<Handle>>,
    /// The handles open on each node, in the order they were opened.
    by_node: HashMap<NodeId, Vec<u64>>,
}

/// Handles by number (0 is never used: it means "no handle").
pub struct HandleTable {
    next: AtomicU64,
    map: Mutex<Maps>,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable {
            next: AtomicU64::new(1),
            map: Mutex::new(Maps::default()),
        }
    }
}

impl HandleTable {
    /// Keep `fd` opened on `node`; returns its handle.
    pub fn insert(&self, node: NodeId, fd: OwnedFd) -> FileHandle {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            node,
            fd,
            dir_lock: Mutex::new(()),
        });
        let mut m = self.map.lock();
        m.by_fh.insert(fh, h);
        m.by_node.entry(node).or_default().push(fh);
        FileHandle(fh)
    }

    /// The handle `fh`, if open.
    pub fn get(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        if fh.0 == 0 {
            return None;
        }
        self.map.lock().by_fh.get(&fh.0).cloned()
    }

    /// The most recently opened handle still open on `node`, if any.
    pub fn any_for(&self, node: NodeId) -> Option<Arc<Handle>> {
        let m = self.map.lock();
        let fh = *m.by_node.get(&node)?.last()?;
        m.by_fh.get(&fh).cloned()
    }

    /// Close `fh` (the descriptor closes when the last user lets go).
    pub fn remove(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        let mut m = self.map.lock();
        let h = m.by_fh.remove(&fh.0)?;
        if let Some(list) = m.by_node.get_mut(&h.node) {
            list.retain(|&x| x != fh.0);
            if list.is_empty() {
                m.by_node.remove(&h.node);
            }
        }
        Some(h)
    }

    /// Handles open now.
    pub fn len(&self) -> usize {
        self.map.lock().by_fh.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
