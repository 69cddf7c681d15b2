//! [`Error`]: what went wrong, naming the image and, where known, the inode and byte offset.

use std::fmt;
use std::sync::Arc;

/// The class of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Reading or writing the image failed (or it ended early).
    Io,
    /// The image holds something no valid ext2/3/4 filesystem holds.
    Corrupt,
    /// A valid filesystem that uses a feature this driver does not implement.
    Unsupported,
}

/// An error of the ext3 driver. Its message names the image and, when they are known, the
/// inode and the byte offset in the image where the fault was found.
#[derive(Debug)]
pub struct Error {
    image: Arc<str>,
    kind: ErrorKind,
    ino: Option<u32>,
    offset: Option<u64>,
    msg: String,
    io: Option<std::io::Error>,
}

/// Result with an ext3 [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A corruption found in `image` (at inode `ino`, byte `offset` where known).
    pub fn corrupt(
        image: &Arc<str>,
        ino: Option<u32>,
        offset: Option<u64>,
        msg: impl Into<String>,
    ) -> Error {
        Error {
            image: Arc::clone(image),
            kind: ErrorKind::Corrupt,
            ino,
            offset,
            msg: msg.into(),
            io: None,
        }
    }

    /// A feature of `image` this driver does not implement.
    pub fn unsupported(image: &Arc<str>, ino: Option<u32>, msg: impl Into<String>) -> Error {
        Error {
            image: Arc::clone(image),
            kind: ErrorKind::Unsupported,
            ino,
            offset: None,
            msg: msg.into(),
            io: None,
        }
    }

    /// An I/O failure on `image` at byte `offset`.
    pub fn io(image: &Arc<str>, offset: u64, msg: impl Into<String>, e: std::io::Error) -> Error {
        Error {
            image: Arc::clone(image),
            kind: ErrorKind::Io,
            ino: None,
            offset: Some(offset),
            msg: msg.into(),
            io: Some(e),
        }
    }

    /// The same error, now known to concern inode `ino` (kept if already set).
    pub fn at_inode(mut self, ino: u32) -> Error {
        self.ino.get_or_insert(ino);
        self
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The inode this error concerns, if known.
    pub fn ino(&self) -> Option<u32> {
        self.ino
    }

    /// The byte offset in the image where the fault was found, if known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The errno a filesystem call answers with for this error.
    pub fn errno(&self) -> i32 {
        match self.kind {
            ErrorKind::Io => self
                .io
                .as_ref()
                .and_then(std::io::Error::raw_os_error)
                .unwrap_or(libc::EIO),
            ErrorKind::Corrupt => libc::EIO,
            ErrorKind::Unsupported => libc::EOPNOTSUPP,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.image)?;
        if let Some(ino) = self.ino {
            write!(f, "inode {ino}: ")?;
        }
        f.write_str(&self.msg)?;
        if let Some(off) = self.offset {
            write!(f, " (at byte offset {off})")?;
        }
        if let Some(e) = &self.io {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
