//! The `log` backend: one line per record on stderr, written by a thread of its own.
//!
//! A request thread never writes to stderr itself: it hands the line to a bounded queue and
//! goes on. If stderr is a pipe nobody drains (a supervisor reading late, a full disk
//! behind it), the writer blocks, the queue fills, and further lines are dropped and counted
//! instead of stalling requests; the count is reported once the writer can write again.
//! The writer thread starts with the first line logged, so a process that logs nothing
//! before forking or unsharing stays single-threaded.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Lines queued for the writer at most.
const QUEUE: usize = 256;

struct StderrLogger {
    queue: OnceLock<Option<Sender<String>>>,
    dropped: AtomicU64,
}

impl StderrLogger {
    fn sender(&self) -> Option<&Sender<String>> {
        self.queue
            .get_or_init(|| {
                let (tx, rx) = bounded(QUEUE);
                std::thread::Builder::new()
                    .name("squashbox-log".into())
                    .spawn(move || write_lines(&rx))
                    .ok()
                    .map(|_| tx)
            })
            .as_ref()
    }

    fn push(&self, line: String) {
        let Some(tx) = self.sender() else {
            // No writer thread could start: drop rather than block a request.
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write_lines(rx: &Receiver<String>) {
    let stderr = std::io::stderr();
    for line in rx {
        let mut out = stderr.lock();
        let dropped = LOGGER.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "warning: squashbox: {dropped} log lines dropped (stderr was not being read)"
            );
        }
        let _ = writeln!(out, "{line}");
    }
}

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) && !is_noise(record) {
            self.push(format!(
                "{}: {}: {}",
                record.level().as_str().to_lowercase(),
                record.target(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

/// Records that report nothing wrong: fuser unmounts again when its session ends and warns
/// with EINVAL when the mount is already gone (`squashbox unmount`, `fusermount3 -u`, the
/// idle timeout or a signal did it). Shown with `-d`.
fn is_noise(record: &Record<'_>) -> bool {
    if record.level() > Level::Warn
        || log::max_level() >= LevelFilter::Debug
        || !record.target().starts_with("fuser")
    {
        return false;
    }
    let text = record.args().to_string();
    (text.starts_with("Failed to umount filesystem") || text.starts_with("Unmount failed"))
        && text.contains("Invalid argument")
}

static LOGGER: StderrLogger = StderrLogger {
    queue: OnceLock::new(),
    dropped: AtomicU64::new(0),
};

/// Install the stderr logger at `level` (a second call only changes the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Install the stderr logger: every request with `debug` (`-d`), else warnings only.
pub fn init_for(debug: bool) {
    init(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Warn
    });
}

/// Write `line` to stderr from the calling thread, after what is queued (for the last words
/// of a session, when blocking no longer stalls a request).
pub fn write_now(line: &str) {
    if let Some(tx) = LOGGER.queue.get().and_then(Option::as_ref) {
        // Give the writer a moment to empty the queue first, without waiting on a dead pipe.
        for _ in 0..50 {
            if tx.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
