//! Conversions between the filesystem trait's types (`squashbox-vfs`) and fuser's.

use std::time::{SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, FopenFlags, INodeNo, TimeOrNow};
use squashbox_vfs::{Attr, Errno, Opened, TimeSet, Timespec};

/// fuser's errno for ours.
pub fn errno(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.0)
}

/// fuser's file type for ours.
pub fn file_type(kind: squashbox_vfs::FileType) -> FileType {
    use squashbox_vfs::FileType as T;
    match kind {
        T::Directory => FileType::Directory,
        T::RegularFile => FileType::RegularFile,
        T::Symlink => FileType::Symlink,
        T::BlockDevice => FileType::BlockDevice,
        T::CharDevice => FileType::CharDevice,
        T::NamedPipe => FileType::NamedPipe,
        T::Socket => FileType::Socket,
    }
}

/// `a` as fuser's `FileAttr`, carrying `ino`: fuser sends it both as the node id of an entry
/// and as `st_ino`, so entries pass the node id and `getattr` passes `a.ino`.
pub fn file_attr(a: &Attr, ino: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime.to_system_time(),
        mtime: a.mtime.to_system_time(),
        ctime: a.ctime.to_system_time(),
        crtime: a.ctime.to_system_time(),
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

/// The attributes of a negative entry (node id 0: the kernel caches the miss).
pub fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

/// fuser's open flags for an [`Opened`].
pub fn fopen_flags(o: &Opened) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if o.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.cache_dir {
        f |= FopenFlags::FOPEN_CACHE_DIR;
    }
    if o.direct_io {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    if o.nonseekable {
        f |= FopenFlags::FOPEN_NONSEEKABLE;
    }
    f
}

/// A setattr time.
pub fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(Timespec::from(t)),
    }
}

/// A timestamp from the kernel.
pub fn timespec(t: SystemTime) -> Timespec {
    Timespec::from(t)
}
