//! Attributes and entries: [`FileType`], [`Timespec`], [`Attr`], [`Entry`], [`AttrOut`],
//! [`SetAttr`] and [`StatFs`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A node id: FUSE's handle for a node, valid from the lookup that returned it until the
/// kernel forgets it. [`crate::ROOT_ID`] is the root.
pub type NodeId = u64;

/// The type of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A directory.
    Directory,
    /// A regular file.
    RegularFile,
    /// A symbolic link.
    Symlink,
    /// A block device.
    BlockDevice,
    /// A character device (0/0 is an overlay whiteout).
    CharDevice,
    /// A FIFO.
    NamedPipe,
    /// A Unix socket.
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Directory => libc::S_IFDIR,
            FileType::RegularFile => libc::S_IFREG,
            FileType::Symlink => libc::S_IFLNK,
            FileType::BlockDevice => libc::S_IFBLK,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::NamedPipe => libc::S_IFIFO,
            FileType::Socket => libc::S_IFSOCK,
        }
    }

    /// The type of a full `st_mode`, if it names one.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFREG => FileType::RegularFile,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFIFO => FileType::NamedPipe,
            libc::S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }
}

/// A point in time as `stat` reports it: seconds since the epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timespec {
    /// Seconds since the Unix epoch (negative before it).
    pub secs: i64,
    /// Nanoseconds, below 1e9.
    pub nsecs: u32,
}

impl Timespec {
    /// Whole seconds.
    pub fn from_secs(secs: i64) -> Timespec {
        Timespec { secs, nsecs: 0 }
    }

    /// The current time.
    pub fn now() -> Timespec {
        Timespec::from(SystemTime::now())
    }

    /// As a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        let nanos = Duration::from_nanos(u64::from(self.nsecs));
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.secs as u64) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(self.secs.unsigned_abs()) + nanos
        }
    }
}

impl From<SystemTime> for Timespec {
    fn from(t: SystemTime) -> Timespec {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nsecs: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let mut secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut nsecs = d.subsec_nanos();
                if nsecs > 0 {
                    secs -= 1;
                    nsecs = 1_000_000_000 - nsecs;
                }
                Timespec { secs, nsecs }
            }
        }
    }
}

/// The attributes of one node, as `stat` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// `st_ino`: what `stat` reports (may differ from the node id).
    pub ino: u64,
    /// File type.
    pub kind: FileType,
    /// Permission bits: the low 12 bits of `st_mode`.
    pub perm: u16,
    /// Size in bytes.
    pub size: u64,
    /// `st_blocks`, in 512-byte units.
    pub blocks: u64,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device node, in the kernel's `new_encode_dev` form.
    pub rdev: u32,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
    /// `st_blksize`: the preferred I/O size.
    pub blksize: u32,
}

impl Attr {
    /// The full `st_mode`: type bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | u32::from(self.perm)
    }
}

/// What `getattr` answers: the attributes and how long the kernel may cache them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrOut {
    /// The attributes.
    pub attr: Attr,
    /// How long the kernel may use them without asking again.
    pub ttl: Duration,
}

/// A positive lookup result: the node the name leads to, and what the kernel may cache.
///
/// Every `Entry` a filesystem hands out (from lookup, mknod, mkdir, symlink, link, create,
/// and each entry of readdirplus the caller accepted) counts as one lookup of `node`, which
/// the kernel later returns through [`crate::Filesystem::forget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The node id the kernel will use for this node.
    pub node: NodeId,
    /// Generation: with `node`, unique over the filesystem's lifetime.
    pub generation: u64,
    /// The node's attributes.
    pub attr: Attr,
    /// How long the kernel may cache the name -> node binding.
    pub entry_ttl: Duration,
    /// How long the kernel may cache `attr`.
    pub attr_ttl: Duration,
}

/// How `setattr` sets a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// The current time (`UTIME_NOW`).
    Now,
    /// This time.
    At(Timespec),
}

impl TimeSet {
    /// The time this stands for, taking "now" as `now`.
    pub fn resolve(self, now: Timespec) -> Timespec {
        match self {
            TimeSet::Now => now,
            TimeSet::At(t) => t,
        }
    }
}

/// What `setattr` changes: each `Some` field is set; `None` is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// New permission bits (only the low 12 bits are used).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeSet>,
    /// New modification time.
    pub mtime: Option<TimeSet>,
    /// New change time (sent by the kernel with some setattr calls).
    pub ctime: Option<Timespec>,
    /// The open file this came through (ftruncate, futimens), if any.
    pub fh: Option<crate::FileHandle>,
}

impl SetAttr {
    /// Whether nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.size.is_none()
            && self.atime.is_none()
            && self.mtime.is_none()
            && self.ctime.is_none()
    }
}

/// `statfs` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatFs {
    /// Total blocks of `frsize` bytes.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Preferred block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size: the unit of `blocks`.
    pub frsize: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespec_round_trips_through_system_time() {
        for t in [
            Timespec { secs: 0, nsecs: 0 },
            Timespec {
                secs: 1_700_000_000,
                nsecs: 123_456_789,
            },
            Timespec {
                secs: -5,
                nsecs: 250_000_000,
            },
        ] {
            assert_eq!(Timespec::from(t.to_system_time()), t);
        }
    }

    #[test]
    fn mode_has_type_and_permission_bits() {
        assert_eq!(FileType::from_mode(0o100644), Some(FileType::RegularFile));
        assert_eq!(FileType::from_mode(0o644), None);
        assert_eq!(FileType::Directory.mode_bits() | 0o755, 0o40755);
    }
}
