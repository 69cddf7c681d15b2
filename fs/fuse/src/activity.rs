//! Request activity for the idle timeout, and the capabilities the adapter asks the kernel
//! for.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use fuser::InitFlags;

/// Request activity, for the idle timeout (`-o timeout=N`).
#[derive(Debug, Default)]
pub struct Activity {
    /// Unix seconds of the last request.
    pub last_request: AtomicU64,
    /// Open files and directories.
    pub open_handles: AtomicI64,
}

impl Activity {
    /// Note a request now.
    pub fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Only write when the second changes: keeps the shared line clean on hot paths.
        if self.last_request.load(Ordering::Relaxed) != now {
            self.last_request.store(now, Ordering::Relaxed);
        }
    }
}

/// The capabilities requested in `init`, in the order tried (the writeback cache is added
/// when the filesystem's policy allows it).
pub const WANTED_CAPABILITIES: &[(&str, InitFlags)] = &[
    ("PARALLEL_DIROPS", InitFlags::FUSE_PARALLEL_DIROPS),
    ("DO_READDIRPLUS", InitFlags::FUSE_DO_READDIRPLUS),
    ("READDIRPLUS_AUTO", InitFlags::FUSE_READDIRPLUS_AUTO),
    ("CACHE_SYMLINKS", InitFlags::FUSE_CACHE_SYMLINKS),
    ("ASYNC_DIO", InitFlags::FUSE_ASYNC_DIO),
    ("MAX_PAGES", InitFlags::FUSE_MAX_PAGES),
    ("NO_OPEN_SUPPORT", InitFlags::FUSE_NO_OPEN_SUPPORT),
    ("NO_OPENDIR_SUPPORT", InitFlags::FUSE_NO_OPENDIR_SUPPORT),
];
