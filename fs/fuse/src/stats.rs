//! [`RequestStats`]: counts of the requests a session answered, by kind (`-o print_stats`).
//!
//! Counting is off unless asked for: a shared counter bumped by every request would be a
//! contended cache line on a many-core node.

use std::sync::atomic::{AtomicU64, Ordering};

/// The request kinds counted one by one; everything else is `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// LOOKUP.
    Lookup,
    /// GETATTR.
    Getattr,
    /// READ.
    Read,
    /// READDIR.
    Readdir,
    /// READDIRPLUS.
    Readdirplus,
    /// READLINK.
    Readlink,
    /// GETXATTR.
    Getxattr,
    /// LISTXATTR.
    Listxattr,
    /// Any other request.
    Other,
}

const NAMES: [&str; 9] = [
    "lookup",
    "getattr",
    "read",
    "readdir",
    "readdirplus",
    "readlink",
    "getxattr",
    "listxattr",
    "other",
];

/// Request counters for one session.
#[derive(Debug, Default)]
pub struct RequestStats {
    counts: [AtomicU64; 9],
}

impl RequestStats {
    /// Count one request of kind `op`.
    pub fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of kind `op` so far.
    pub fn get(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }

    /// All requests so far.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The one-line summary: `requests served: total=N lookup=N ... other=N`.
    pub fn summary(&self) -> String {
        let mut line = format!("requests served: total={}", self.total());
        for (name, c) in NAMES.iter().zip(&self.counts) {
            line.push_str(&format!(" {name}={}", c.load(Ordering::Relaxed)));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_every_kind() {
        let s = RequestStats::default();
        s.count(Op::Read);
        s.count(Op::Read);
        s.count(Op::Other);
        assert_eq!(
            s.summary(),
            "requests served: total=3 lookup=0 getattr=0 read=2 readdir=0 readdirplus=0 \
             readlink=0 getxattr=0 listxattr=0 other=1"
        );
    }
}
