//! [`MountPolicy`]: what a filesystem allows the kernel for the whole mount.

use std::time::Duration;

/// Mount-wide settings FUSE cannot set per reply. The server asks the kernel for each
/// capability and uses it only where the kernel grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountPolicy {
    /// The filesystem never changes: mount `ro`, and every cache may be kept for ever.
    pub read_only: bool,
    /// Opens carry no state here: the kernel may skip OPEN/RELEASE (FUSE_NO_OPEN_SUPPORT)
    /// and keeps the page cache across opens. The FUSE layer still takes opens where it
    /// counts them: for an idle timeout, and under the writeback cache (files open for
    /// writing get their dirty pages written back at SIGTERM).
    pub no_open: bool,
    /// Likewise for OPENDIR/RELEASEDIR (FUSE_NO_OPENDIR_SUPPORT).
    pub no_opendir: bool,
    /// The kernel may cache writes and send them later (FUSE_WRITEBACK_CACHE).
    pub writeback_cache: bool,
    /// The filesystem clears set-user-ID, set-group-ID and `security.capability` itself where
    /// a change calls for it (chown, and writes and truncation by an unprivileged caller), so
    /// the kernel need not ask for `security.capability` before every write
    /// (FUSE_HANDLE_KILLPRIV_V2). The FUSE adapter does the set-ID part of writes and
    /// truncation for it; the filesystem answers for chown and `security.capability`.
    pub kills_privs: bool,
    /// How long the kernel may remember that a name does not exist (0: never; the server then
    /// answers a miss with ENOENT instead of a negative entry).
    pub negative_ttl: Duration,
}

impl MountPolicy {
    /// An image that never changes: everything may be cached for ever, no opens needed.
    pub fn immutable() -> MountPolicy {
        MountPolicy {
            read_only: true,
            no_open: true,
            no_opendir: true,
            writeback_cache: false,
            kills_privs: false,
            negative_ttl: Duration::MAX,
        }
    }

    /// A writable filesystem that others may also change (no caching of misses).
    pub fn writable() -> MountPolicy {
        MountPolicy {
            read_only: false,
            no_open: false,
            no_opendir: false,
            writeback_cache: false,
            kills_privs: false,
            negative_ttl: Duration::ZERO,
        }
    }
}

impl Default for MountPolicy {
    fn default() -> Self {
        MountPolicy::writable()
    }
}
