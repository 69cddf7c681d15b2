//! Request activity, for the idle timeout.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
