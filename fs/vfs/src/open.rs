//! Opening files and directories: [`FileHandle`], [`Opened`], and the flag sets passed with
//! rename, open and lseek.

/// A per-open handle a filesystem hands out in `open`/`opendir`/`create` and gets back with
/// every request on that open. 0 is fine for filesystems that keep no per-open state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileHandle(pub u64);

/// What `open`, `opendir` and `create` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Opened {
    /// The handle for later requests on this open.
    pub fh: FileHandle,
    /// Keep the kernel's page cache of this file from earlier opens (the data did not
    /// change behind the kernel's back).
    pub keep_cache: bool,
    /// For directories: the kernel may cache the listing.
    pub cache_dir: bool,
    /// Bypass the page cache for this open.
    pub direct_io: bool,
    /// The file is not seekable.
    pub nonseekable: bool,
}

/// `open(2)` flags as the kernel passes them (`O_ACCMODE`, `O_TRUNC`, `O_APPEND`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenFlags(pub i32);

impl OpenFlags {
    /// Whether the open asks for write access.
    pub fn writes(self) -> bool {
        matches!(self.0 & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
    }

    /// Whether the flag bits `bits` are all set.
    pub fn has(self, bits: i32) -> bool {
        self.0 & bits == bits
    }
}

/// `renameat2` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags(pub u32);

impl RenameFlags {
    /// Fail with EEXIST when the target exists.
    pub const NOREPLACE: u32 = libc::RENAME_NOREPLACE;
    /// Swap source and target atomically.
    pub const EXCHANGE: u32 = libc::RENAME_EXCHANGE;
    /// Leave a whiteout where the source was (overlay upper layers).
    pub const WHITEOUT: u32 = libc::RENAME_WHITEOUT;

    /// Whether `flag` is set.
    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    /// Whether any bit outside the three known flags is set.
    pub fn has_unknown(self) -> bool {
        self.0 & !(Self::NOREPLACE | Self::EXCHANGE | Self::WHITEOUT) != 0
    }
}

/// `lseek` whence values beyond SEEK_SET/CUR/END that a filesystem answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    /// `SEEK_DATA`: the next offset at or after the given one that holds data.
    Data,
    /// `SEEK_HOLE`: the next hole at or after the given offset (end of file counts).
    Hole,
    /// Anything else, with its raw value (the kernel handles SET/CUR/END itself).
    Other(i32),
}

impl Whence {
    /// From the raw `whence` argument.
    pub fn from_raw(w: i32) -> Whence {
        match w {
            libc::SEEK_DATA => Whence::Data,
            libc::SEEK_HOLE => Whence::Hole,
            other => Whence::Other(other),
        }
    }
}
