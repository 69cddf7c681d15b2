//! The thin `fuser::Filesystem` adapter over [`SquashFs`].
//!
//! Metadata requests (lookup, getattr, readdir, ...) and reads of at most one block are
//! answered inline on the fuser loop thread that read them (one loop per core): they are short
//! and a hand-off would only add latency. Larger reads are handed to the rayon pool and replied
//! to from the worker that did the work, while the loop reads the next request; their blocks
//! are decompressed in parallel by the reader. A sequential reader triggers a background
//! prefetch of the following blocks. OPEN/OPENDIR are answered with ENOSYS where the kernel
//! supports that (NO_OPEN/NO_OPENDIR), so opening costs no round trip and page and directory
//! caches are kept across opens.
//!
//! Every other request a read-only filesystem can see is answered here too, without logging
//! (fuser's default handlers log a multi-line warning per request): IOCTL (CPython's `isatty`
//! on every open) with ENOTTY; FLUSH, FSYNC, FSYNCDIR, POLL, LSEEK, GETLK, SETLK and BMAP with
//! ENOSYS, which the kernel remembers (it stops sending them, or never sends them because the
//! capability is not negotiated); anything that would modify the image with EROFS.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner,
    OpenAccMode, OpenFlags, PollEvents, PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyLock, ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};
use squashbox_squashfs::InodeKind;

use crate::squashfs_fs::{Attr, FsError, SquashFs};

/// Entry and attribute time-to-live: the image never changes, so "forever" (as squashfuse's
/// `DBL_MAX`; the kernel clamps it to its own maximum).
pub const TTL: Duration = Duration::from_secs(u64::MAX);

/// Request activity, for the idle timeout (`-o timeout=N`).
#[derive(Debug, Default)]
pub struct Activity {
    /// Unix seconds of the last request.
    pub last_request: AtomicU64,
    /// Open files and directories.
    pub open_handles: AtomicI64,
}

impl Activity {
    fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Only write when the second changes: keeps the shared line clean on hot paths.
        if self.last_request.load(Ordering::Relaxed) != now {
            self.last_request.store(now, Ordering::Relaxed);
        }
    }
}

/// The capabilities requested in `init`, in the order tried.
pub const WANTED_CAPABILITIES: &[(&str, InitFlags)] = &[
    ("PARALLEL_DIROPS", InitFlags::FUSE_PARALLEL_DIROPS),
    ("DO_READDIRPLUS", InitFlags::FUSE_DO_READDIRPLUS),
    ("READDIRPLUS_AUTO", InitFlags::FUSE_READDIRPLUS_AUTO),
    ("CACHE_SYMLINKS", InitFlags::FUSE_CACHE_SYMLINKS),
    ("ASYNC_DIO", InitFlags::FUSE_ASYNC_DIO),
    ("MAX_PAGES", InitFlags::FUSE_MAX_PAGES),
    ("NO_OPEN_SUPPORT", InitFlags::FUSE_NO_OPEN_SUPPORT),
    ("NO_OPENDIR_SUPPORT", InitFlags::FUSE_NO_OPENDIR_SUPPORT),
];

/// The fuser filesystem: a [`SquashFs`] plus per-session settings.
pub struct FuseFs {
    fs: Arc<SquashFs>,
    activity: Option<Arc<Activity>>,
    max_background: u16,
    /// Answer OPEN with ENOSYS (kernel NO_OPEN support; not with an idle timeout, which
    /// counts open files).
    no_open: bool,
    /// Likewise for OPENDIR.
    no_opendir: bool,
    /// Capabilities the kernel granted (filled in by `init`, for logging and tests).
    pub granted: Vec<&'static str>,
}

impl FuseFs {
    /// Wrap `fs`; `activity` is updated on every request when an idle timeout is in force.
    pub fn new(fs: Arc<SquashFs>, activity: Option<Arc<Activity>>, max_background: u16) -> FuseFs {
        FuseFs {
            fs,
            activity,
            max_background,
            no_open: false,
            no_opendir: false,
            granted: Vec::new(),
        }
    }

    fn touch(&self) {
        if let Some(a) = &self.activity {
            a.touch();
        }
    }
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.0)
}

fn file_type(kind: InodeKind) -> FileType {
    match kind {
        InodeKind::Directory => FileType::Directory,
        InodeKind::File => FileType::RegularFile,
        InodeKind::Symlink => FileType::Symlink,
        InodeKind::BlockDevice => FileType::BlockDevice,
        InodeKind::CharDevice => FileType::CharDevice,
        InodeKind::Fifo => FileType::NamedPipe,
        InodeKind::Socket => FileType::Socket,
    }
}

/// `a` as fuser's `FileAttr`, reporting `ino` (the node id for entries, `st_ino` for getattr).
pub fn file_attr(a: &Attr, ino: u64) -> FileAttr {
    let t = UNIX_EPOCH + Duration::from_secs(u64::from(a.mtime));
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.blocks,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
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

fn negative_attr() -> FileAttr {
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

fn reply_xattr(data: Vec<u8>, size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(u32::try_from(data.len()).unwrap_or(u32::MAX));
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(&data);
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        for (name, flag) in WANTED_CAPABILITIES {
            if config.add_capabilities(*flag).is_ok() {
                self.granted.push(name);
            }
        }
        // 1 MiB requests (max_pages = max(max_write, max_readahead) / page size; the kernel
        // caps it by fs.fuse.max_pages_limit) and as much readahead as the kernel allows.
        let _ = config.set_max_write(1 << 20);
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(self.max_background);
        let _ = config.set_congestion_threshold(self.max_background / 4 * 3);
        let tracking_opens = self.activity.is_some();
        self.no_open = !tracking_opens && self.granted.contains(&"NO_OPEN_SUPPORT");
        self.no_opendir = !tracking_opens && self.granted.contains(&"NO_OPENDIR_SUPPORT");
        log::info!("FUSE capabilities granted: {}", self.granted.join(" "));
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.touch();
        match self.fs.lookup(parent.0, name.as_bytes()) {
            // The alias of inode 1 gets no attribute caching, so `stat` asks `getattr`, which
            // reports st_ino 1 (see node_table).
            Ok(Some(a)) if a.st_ino != a.node => {
                reply.entry_with_ttls(&Duration::ZERO, &TTL, &file_attr(&a, a.node), Generation(0))
            }
            Ok(Some(a)) => reply.entry(&TTL, &file_attr(&a, a.node), Generation(0)),
            // A negative entry with a timeout: the kernel caches the miss.
            Ok(None) => reply.entry(&TTL, &negative_attr(), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.touch();
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a, a.st_ino)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.touch();
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.touch();
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if self.no_open {
            // ENOSYS once: the kernel stops sending OPEN/RELEASE and keeps the page cache.
            return reply.error(Errno::ENOSYS);
        }
        match self.fs.open(ino.0) {
            Ok(()) => {
                if let Some(a) = &self.activity {
                    a.open_handles.fetch_add(1, Ordering::Relaxed);
                }
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.touch();
        let answer = move |fs: &SquashFs, reply: ReplyData| match fs.read(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        };
        if size <= self.fs.block_size() {
            // One block at most: a hand-off would cost more than it saves.
            answer(&self.fs, reply);
        } else {
            // Many blocks: decompress them in parallel on the pool, reply from there, and
            // let this loop thread read the next request meanwhile.
            let fs = Arc::clone(&self.fs);
            rayon::spawn(move || answer(&fs, reply));
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(a) = &self.activity {
            a.open_handles.fetch_sub(1, Ordering::Relaxed);
            a.touch();
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.touch();
        match self.fs.opendir(ino.0) {
            Ok(()) if self.no_opendir => reply.error(Errno::ENOSYS),
            Ok(()) => {
                if let Some(a) = &self.activity {
                    a.open_handles.fetch_add(1, Ordering::Relaxed);
                }
                // Keep the cached listing across opens: the image never changes.
                let flags = FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR;
                reply.opened(FileHandle(0), flags);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        if let Some(a) = &self.activity {
            a.open_handles.fetch_sub(1, Ordering::Relaxed);
            a.touch();
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.touch();
        let res = self.fs.readdir(ino.0, offset, false, &mut |item, _| {
            !reply.add(
                INodeNo(item.ino),
                item.next_offset,
                file_type(item.kind),
                OsStr::from_bytes(item.name),
            )
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.touch();
        let dir_attr = if offset <= 1 {
            match self.fs.getattr(ino.0) {
                Ok(a) => Some(a),
                Err(e) => return reply.error(errno(e)),
            }
        } else {
            None
        };
        let res = self.fs.readdir(ino.0, offset, true, &mut |item, attr| {
            let Some(a) = attr.or(dir_attr.as_ref()) else {
                return false;
            };
            // For "." and ".." the kernel links nothing, so the id only serves as d_ino.
            let id = if attr.is_some() { item.node } else { item.ino };
            let fa = file_attr(a, id);
            let ttl = if attr.is_some_and(|a| a.st_ino != a.node) {
                Duration::ZERO
            } else {
                TTL
            };
            !reply.add(
                INodeNo(id),
                item.next_offset,
                OsStr::from_bytes(item.name),
                &ttl,
                &fa,
                Generation(0),
            )
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.touch();
        let s = self.fs.statfs();
        reply.statfs(s.blocks, 0, 0, s.files, 0, s.bsize, s.namelen, s.bsize);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.touch();
        match self.fs.getxattr(ino.0, name.as_bytes()) {
            Ok(v) => reply_xattr(v, size, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.touch();
        match self.fs.listxattr(ino.0) {
            Ok(v) => reply_xattr(v, size, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.touch();
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok();
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        // What the kernel driver answers for an ioctl a file does not know (e.g. TCGETS from
        // isatty). The kernel never caches this answer, so it must stay cheap.
        reply.error(Errno::ENOTTY);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to flush; ENOSYS makes the kernel stop sending FLUSH on close().
        reply.error(Errno::ENOSYS);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        // ENOSYS: the kernel stops asking and reports files as always ready.
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        // ENOSYS: the kernel stops asking and handles SEEK_DATA/SEEK_HOLE itself.
        reply.error(Errno::ENOSYS);
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn bmap(&self, _req: &Request, _ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(Errno::ENOSYS);
    }

    // Modifying requests: a read-only mount stops them in the VFS, but a pre-mounted fd
    // (`/dev/fd/N`) may not carry `ro`, so answer them with EROFS.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}
