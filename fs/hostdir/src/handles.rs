//! [`HandleTable`]: open files and directories, each holding its own descriptor.

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

/// Handles by number (0 is never used: it means "no handle").
pub struct HandleTable {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Handle>>>,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable {
            next: AtomicU64::new(1),
            map: Mutex::new(HashMap::new()),
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
        self.map.lock().insert(fh, h);
        FileHandle(fh)
    }

    /// The handle `fh`, if open.
    pub fn get(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        if fh.0 == 0 {
            return None;
        }
        self.map.lock().get(&fh.0).cloned()
    }

    /// Close `fh` (the descriptor closes when the last user lets go).
    pub fn remove(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        self.map.lock().remove(&fh.0)
    }

    /// Handles open now.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
