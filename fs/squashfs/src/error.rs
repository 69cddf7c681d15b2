//! Errors with context: which image, which inode, which offset.

/// Result alias for the reader.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong reading an image. Messages are one line and name the place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error reading the image file.
    #[error("{image}: read error at byte {offset}: {source}")]
    Io {
        /// Image path (or description) for context.
        image: String,
        /// Absolute byte offset in the file.
        offset: u64,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The image is malformed: `what` says what is wrong, `offset` where (image-relative).
    #[error("{image}: corrupt image at byte {offset}: {what}")]
    Corrupt {
        /// Image path for context.
        image: String,
        /// Byte offset (relative to the start of the SquashFS image) of the bad structure.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A feature the reader does not support.
    #[error("{image}: unsupported: {what}")]
    Unsupported {
        /// Image path for context.
        image: String,
        /// What is unsupported.
        what: String,
    },
    /// The operation does not apply to this inode type (e.g. readdir on a file).
    #[error("inode {inode:#x}: {what}")]
    WrongType {
        /// The inode reference.
        inode: u64,
        /// What was expected.
        what: &'static str,
    },
}

impl Error {
    /// The errno a FUSE server should answer with for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::WrongType { what, .. } if what.contains("directory") => libc::ENOTDIR,
            Error::WrongType { .. } => libc::EINVAL,
            Error::Unsupported { .. } => libc::EOPNOTSUPP,
            _ => libc::EIO,
        }
    }
}

impl Error {
    /// Build a [`Error::Corrupt`] for image `image` at image-relative `offset`.
    pub fn corrupt(image: &str, offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt {
            image: image.to_string(),
            offset,
            what: what.into(),
        }
    }
}

impl Error {
    /// Put `ctx()` (where the reader was: which inode, which block) in front of what a
    /// [`Error::Corrupt`] says; other errors already carry their place and are returned as is.
    pub(crate) fn within(self, ctx: impl FnOnce() -> String) -> Error {
        match self {
            Error::Corrupt {
                image,
                offset,
                what,
            } => Error::Corrupt {
                image,
                offset,
                what: format!("{}: {what}", ctx()),
            },
            other => other,
        }
    }
}
