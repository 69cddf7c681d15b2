//! Open files and directories of the overlay.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use squashbox_vfs::FileHandle;

use crate::dir::MergedEntry;
use crate::nodes::Part;

/// One open.
pub struct Handle {
    /// The layer object a file was opened on.
    pub part: Part,
    /// The layer's handle (`None`: the layer keeps no per-open state).
    pub layer_fh: Option<FileHandle>,
    /// A directory's merged listing, built when the listing starts.
    pub listing: Mutex<Option<Arc<Vec<MergedEntry>>>>,
    /// For a file opened in a lower layer and copied up since: the upper copy and the
    /// upper's handle for it (`None` inside: the upper keeps no per-open state).
    pub upgraded: Mutex<Option<(Part, Option<FileHandle>)>>,
}

/// Handles by number (0 is never used).
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
    /// Keep `h`; returns its number.
    pub fn insert(&self, h: Handle) -> FileHandle {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map.lock().insert(fh, Arc::new(h));
        FileHandle(fh)
    }

    /// The handle `fh`, if open.
    pub fn get(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        if fh.0 == 0 {
            return None;
        }
        self.map.lock().get(&fh.0).cloned()
    }

    /// Close `fh`.
    pub fn remove(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        self.map.lock().remove(&fh.0)
    }
}
