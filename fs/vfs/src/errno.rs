//! [`Errno`]: the error every filesystem operation returns, a plain errno value.

use std::fmt;

/// An errno value (`libc::ENOENT`, ...), the one error type of the [`crate::Filesystem`] trait.
///
/// A filesystem logs the reason (rate-limited) where it knows it; the errno is what the
/// caller sees.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Result of a filesystem operation.
pub type Result<T> = std::result::Result<T, Errno>;

impl Errno {
    /// No such file or directory.
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    /// Input/output error: what corrupt images give.
    pub const EIO: Errno = Errno(libc::EIO);
    /// Not implemented: the kernel remembers it for the whole mount for some operations.
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    /// Read-only filesystem.
    pub const EROFS: Errno = Errno(libc::EROFS);
    /// Not a directory.
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    /// Is a directory.
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// No such attribute.
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    /// Result too large for the caller's buffer.
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    /// Stale handle: a node id this filesystem never handed out or already forgot.
    pub const ESTALE: Errno = Errno(libc::ESTALE);
    /// Permission denied.
    pub const EACCES: Errno = Errno(libc::EACCES);
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(libc::EPERM);
    /// File exists.
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    /// Directory not empty.
    pub const ENOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
    /// Cross-device link (overlay renames of merged directories).
    pub const EXDEV: Errno = Errno(libc::EXDEV);
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    /// Inappropriate ioctl for device.
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    /// File name too long.
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
    /// Too many links.
    pub const EMLINK: Errno = Errno(libc::EMLINK);
    /// Bad file descriptor / handle.
    pub const EBADF: Errno = Errno(libc::EBADF);
    /// Too many levels of symbolic links.
    pub const ELOOP: Errno = Errno(libc::ELOOP);
    /// No such device or address (lseek past the last data or hole).
    pub const ENXIO: Errno = Errno(libc::ENXIO);
    /// File too large.
    pub const EFBIG: Errno = Errno(libc::EFBIG);

    /// The raw value.
    pub fn raw(self) -> i32 {
        self.0
    }

    /// The errno of an I/O error (EIO when it carries none).
    pub fn from_io(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        Errno::from_io(&e)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Errno({}: {})",
            self.0,
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&std::io::Error::from_raw_os_error(self.0), f)
    }
}

impl std::error::Error for Errno {}
