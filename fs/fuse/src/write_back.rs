//! Getting the kernel's dirty pages written before the server exits.
//!
//! Under the writeback cache the kernel keeps written data in its page cache and sends it
//! later. Closing a file sends it (FLUSH writes the pages back first), but a file still open
//! when the server is told to stop may hold dirty pages that no request has carried yet. On
//! SIGTERM, before the filesystem flushes and the process exits, the server asks the kernel
//! to invalidate the pages of every inode open for writing: the kernel writes each dirty page
//! back (WRITE requests the request loops answer) before it drops it. The kernel bounds the
//! dirty pages of a FUSE mount to a small share of memory, so this takes milliseconds.

use std::collections::HashMap;

use fuser::{INodeNo, Notifier};
use parking_lot::Mutex;

/// Inodes open for writing, with how many handles each has.
#[derive(Debug, Default)]
pub struct WriteOpens(Mutex<HashMap<u64, u32>>);

/// Whether open flags allow writing.
fn writes(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY
}

impl WriteOpens {
    /// Note an open (or create) of `ino` with `flags`.
    pub fn opened(&self, ino: u64, flags: i32) {
        if writes(flags) {
            *self.0.lock().entry(ino).or_insert(0) += 1;
        }
    }

    /// Note a release of a handle of `ino` opened with `flags`.
    pub fn released(&self, ino: u64, flags: i32) {
        if !writes(flags) {
            return;
        }
        let mut map = self.0.lock();
        if let Some(n) = map.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ino);
            }
        }
    }

    /// The inodes open for writing now.
    pub fn inodes(&self) -> Vec<u64> {
        self.0.lock().keys().copied().collect()
    }
}

/// Have the kernel write back the dirty pages of every inode in `opens` (see the module
/// comment). Returns how many inodes were asked; errors (an inode the kernel already
/// forgot, a connection already gone) are logged and skipped.
pub fn write_back(notifier: &Notifier, opens: &WriteOpens) -> usize {
    let inodes = opens.inodes();
    for &ino in &inodes {
        // Offset 0 with length 0: the whole file.
        if let Err(e) = notifier.inval_inode(INodeNo(ino), 0, 0) {
            log::debug!("writing back inode {ino} before exit: {e}");
        }
    }
    inodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_write_handles_only() {
        let w = WriteOpens::default();
        w.opened(5, libc::O_RDONLY);
        assert!(w.inodes().is_empty());
        w.opened(5, libc::O_WRONLY);
        w.opened(5, libc::O_RDWR | libc::O_APPEND);
        w.opened(7, libc::O_RDWR);
        let mut i = w.inodes();
        i.sort();
        assert_eq!(i, [5, 7]);
        w.released(5, libc::O_WRONLY);
        w.released(7, libc::O_RDWR);
        w.released(7, libc::O_RDWR);
        assert_eq!(w.inodes(), [5]);
        w.released(5, libc::O_RDONLY);
        assert_eq!(w.inodes(), [5]);
        w.released(5, libc::O_RDWR);
        assert!(w.inodes().is_empty());
    }
}
