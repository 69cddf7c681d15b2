//! The sequential-read detector.
//!
//! The kernel's FUSE readahead window is 128 KiB by default, so a reader streaming a file
//! sends one block-sized request after another and waits for each decompression. When reads of
//! one file arrive back to back, the detector asks for the next `window` bytes to be
//! decompressed ahead of time (into the reader's block cache), so later requests hit the cache.
//!
//! The server does not see opens (it negotiates NO_OPEN), so the state is keyed by node id in
//! a fixed, direct-mapped table of atomics: no lock, no allocation, bounded memory. Two files
//! that share a slot just reset each other's pattern (a missed prefetch, never a wrong read).

use std::sync::atomic::{AtomicU64, Ordering};

const SLOTS: usize = 4096;

#[derive(Debug, Default)]
struct Slot {
    node: AtomicU64,
    /// End offset of the previous read (where a sequential reader continues).
    next_expected: AtomicU64,
    /// Everything below this offset has already been prefetched (or read).
    prefetched_to: AtomicU64,
}

/// Sequential-read state for all files.
#[derive(Debug)]
pub struct SeqTable {
    slots: Box<[Slot]>,
}

impl Default for SeqTable {
    fn default() -> Self {
        SeqTable::new()
    }
}

impl SeqTable {
    /// An empty table.
    pub fn new() -> SeqTable {
        SeqTable {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }

    /// Record a read of `len` bytes at `offset` of file `node` (`file_size` bytes long).
    /// Returns the byte range `(start, len)` to prefetch, if the access looks sequential and
    /// something within `window` bytes after this read is not prefetched yet.
    pub fn on_read(
        &self,
        node: u64,
        offset: u64,
        len: u64,
        file_size: u64,
        window: u64,
    ) -> Option<(u64, u64)> {
        let slot = &self.slots[(node.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize % SLOTS];
        let end = offset.saturating_add(len).min(file_size);
        if slot.node.swap(node, Ordering::Relaxed) != node {
            slot.next_expected.store(end, Ordering::Relaxed);
            slot.prefetched_to.store(0, Ordering::Relaxed);
            return None;
        }
        let prev = slot.next_expected.swap(end, Ordering::Relaxed);
        // Sequential: this read starts where the last one ended, or within one request of it
        // (the kernel's async readahead requests can arrive slightly out of order).
        let sequential = offset > 0 && offset <= prev.saturating_add(len) && end >= prev;
        if !sequential || window == 0 {
            return None;
        }
        let target = end.saturating_add(window).min(file_size);
        let old = slot.prefetched_to.fetch_max(target, Ordering::Relaxed);
        let from = old.max(end);
        if from < target {
            Some((from, target - from))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_reads_prefetch_ahead_once() {
        let t = SeqTable::new();
        let k = 128 * 1024;
        assert_eq!(
            t.on_read(5, 0, k, 10 * k, 4 * k),
            None,
            "first read is not yet a pattern"
        );
        assert_eq!(t.on_read(5, k, k, 10 * k, 4 * k), Some((2 * k, 4 * k)));
        // The next read lies inside the prefetched range: only the new tail is fetched.
        assert_eq!(t.on_read(5, 2 * k, k, 10 * k, 4 * k), Some((6 * k, k)));
        // Near the end nothing past EOF is requested.
        assert_eq!(
            t.on_read(5, 3 * k, k, 10 * k, 100 * k),
            Some((7 * k, 3 * k))
        );
        assert_eq!(t.on_read(5, 4 * k, k, 10 * k, 100 * k), None);
    }

    #[test]
    fn random_reads_and_other_files_do_not_prefetch() {
        let t = SeqTable::new();
        let k = 4096;
        assert_eq!(t.on_read(9, 100 * k, k, 1000 * k, 64 * k), None);
        assert_eq!(t.on_read(9, 7 * k, k, 1000 * k, 64 * k), None);
        assert_eq!(t.on_read(9, 500 * k, k, 1000 * k, 64 * k), None);
        // A different file starts its own pattern.
        assert_eq!(t.on_read(10, 501 * k, k, 1000 * k, 64 * k), None);
    }
}
