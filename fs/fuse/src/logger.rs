//! A minimal `log` backend writing one line per record to stderr.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) && !is_noise(record) {
            eprintln!(
                "{}: {}: {}",
                record.level().as_str().to_lowercase(),
                record.target(),
                record.args()
            );
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

static LOGGER: StderrLogger = StderrLogger;

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
