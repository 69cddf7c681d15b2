//! [`FaultLog`]: rate-limited warnings for faults a filesystem meets while serving.
//!
//! A corrupt image or a vanished upper directory fails the same request again and again; a
//! line per failure would flood the log (and a log nobody reads would stall the server).
//! As the kernel's printk ratelimit does, each kind of fault is reported once per node, the
//! repeats are only counted, and new lines are limited to a burst per interval. The counts
//! are reported in one line when the next line is let through, and by [`FaultLog::summary`].

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Distinct (kind, node) pairs remembered; past this every fault counts as a repeat.
const MAX_KEYS: usize = 4096;
/// New lines allowed per interval.
const BURST: u32 = 10;
/// The rate-limit interval.
const INTERVAL: Duration = Duration::from_secs(5);

struct Window {
    start: Instant,
    lines: u32,
}

/// Rate-limited fault warnings for one filesystem.
pub struct FaultLog {
    name: String,
    seen: Mutex<HashSet<(&'static str, u64)>>,
    window: Mutex<Window>,
    suppressed: AtomicU64,
    emitted: AtomicU64,
}

impl FaultLog {
    /// A log whose lines start with `name` (the image or directory served).
    pub fn new(name: &str) -> FaultLog {
        FaultLog {
            name: name.to_string(),
            seen: Mutex::new(HashSet::new()),
            window: Mutex::new(Window {
                start: Instant::now(),
                lines: 0,
            }),
            suppressed: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
        }
    }

    /// Report a fault of `kind` at `node`: logged the first time for that pair (within the
    /// rate limit), counted otherwise.
    pub fn warn(&self, kind: &'static str, node: u64, detail: &dyn Display) {
        let first = {
            let mut seen = self.seen.lock();
            seen.len() < MAX_KEYS && seen.insert((kind, node))
        };
        if !first || !self.take_line() {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let repeats = self.suppressed.swap(0, Ordering::Relaxed);
        self.emitted.fetch_add(1, Ordering::Relaxed);
        if repeats > 0 {
            log::warn!(
                "{}: {kind} (node {node}): {detail} ({repeats} repeated or rate-limited warnings not shown)",
                self.name
            );
        } else {
            log::warn!("{}: {kind} (node {node}): {detail}", self.name);
        }
    }

    fn take_line(&self) -> bool {
        let mut w = self.window.lock();
        if w.start.elapsed() >= INTERVAL {
            w.start = Instant::now();
            w.lines = 0;
        }
        if w.lines < BURST {
            w.lines += 1;
            true
        } else {
            false
        }
    }

    /// Lines written so far.
    pub fn emitted(&self) -> u64 {
        self.emitted.load(Ordering::Relaxed)
    }

    /// Faults counted but not shown since the last line.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }

    /// Log one line with the count of warnings not shown, if any (at unmount).
    pub fn summary(&self) {
        let n = self.suppressed.swap(0, Ordering::Relaxed);
        if n > 0 {
            log::warn!(
                "{}: {n} repeated or rate-limited warnings not shown",
                self.name
            );
        }
    }
}

impl std::fmt::Debug for FaultLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultLog")
            .field("name", &self.name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_kind_and_node_then_counted_and_rate_limited() {
        let log = FaultLog::new("img");
        for _ in 0..100 {
            log.warn("readdir", 7, &"bad block");
        }
        assert_eq!((log.emitted(), log.suppressed()), (1, 99));
        log.warn("lookup", 7, &"bad block");
        assert_eq!(log.emitted(), 2, "another kind at the same node is new");
        assert_eq!(log.suppressed(), 0, "the count went out with the new line");
        for node in 100..200 {
            log.warn("read", node, &"bad block");
        }
        assert_eq!(
            log.emitted(),
            u64::from(BURST),
            "a burst at most per interval"
        );
        assert_eq!(log.suppressed(), 100 - u64::from(BURST - 2));
    }
}
