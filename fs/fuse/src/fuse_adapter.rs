//! The one `fuser::Filesystem` adapter: it serves any [`squashbox_vfs::Filesystem`].
//!
//! It only translates: requests become trait calls with our own types, results become fuser
//! replies. What to cache, when to answer from another thread (reads carry a `Send` reply),
//! and every errno are the filesystem's. What belongs to the FUSE protocol stays here:
//! capability negotiation, negative entries, ENOSYS for OPEN/OPENDIR where the kernel may
//! skip them ([`MountPolicy::no_open`]), and quiet answers to requests no driver handles
//! (IOCTL: ENOTTY; POLL, GETLK, SETLK, BMAP: ENOSYS, which the kernel remembers). Nothing
//! is logged per request.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents, PollFlags,
    PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen,
    ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use squashbox_vfs as vfs;
use vfs::MountPolicy;

pub use crate::activity::Activity;
use crate::capabilities;
pub use crate::capabilities::WANTED_CAPABILITIES;
use crate::convert::{errno, file_attr, file_type, fopen_flags, negative_attr, time_set, timespec};
use crate::replies::{ctx, reply_empty, reply_entry, reply_xattr};
use crate::stats::{Op, RequestStats};
use crate::write_back::WriteOpens;

/// Serves a [`vfs::Filesystem`] to the kernel.
pub struct FuseAdapter<F: vfs::Filesystem + ?Sized> {
    fs: Arc<F>,
    policy: MountPolicy,
    activity: Option<Arc<Activity>>,
    stats: Option<Arc<RequestStats>>,
    max_background: u16,
    /// Answer OPEN with ENOSYS (the policy allows it, the kernel granted NO_OPEN, and no idle
    /// timeout counts open files).
    no_open: bool,
    /// Likewise for OPENDIR.
    no_opendir: bool,
    /// The kernel granted HANDLE_KILLPRIV_V2: writes and truncation clear set-IDs here.
    kills_privs: bool,
    /// Inodes open for writing, when the filesystem asks for the writeback cache (their
    /// dirty pages are written back before the server exits).
    write_opens: Option<Arc<WriteOpens>>,
    /// Capabilities the kernel granted (filled in by `init`, for logging and tests).
    pub granted: Vec<&'static str>,
}

impl<F: vfs::Filesystem + ?Sized> FuseAdapter<F> {
    /// Serve `fs`; `activity` is updated on every request when an idle timeout is in force,
    /// `stats` counts requests when asked for.
    pub fn new(
        fs: Arc<F>,
        activity: Option<Arc<Activity>>,
        stats: Option<Arc<RequestStats>>,
        max_background: u16,
    ) -> FuseAdapter<F> {
        let policy = fs.policy();
        FuseAdapter {
            fs,
            policy,
            activity,
            stats,
            max_background,
            no_open: false,
            no_opendir: false,
            kills_privs: false,
            write_opens: None,
            granted: Vec::new(),
        }
    }

    /// Record in `opens` which inodes are open for writing.
    pub fn track_write_opens(mut self, opens: Arc<WriteOpens>) -> Self {
        self.write_opens = Some(opens);
        self
    }

    fn touch(&self, op: Op) {
        if let Some(a) = &self.activity {
            a.touch();
        }
        if let Some(s) = &self.stats {
            s.count(op);
        }
    }

    fn opened(&self, delta: i64) {
        if let Some(a) = &self.activity {
            a.open_handles.fetch_add(delta, Ordering::Relaxed);
            a.touch();
        }
    }

    /// Clear set-user-ID, and set-group-ID where group execution is on (what the kernel
    /// clears on a write or truncation), of `ino` whose permission bits are `perm`. `None`
    /// when there was nothing to clear; else the setattr's answer.
    fn drop_set_ids(&self, ino: u64, perm: u16) -> Option<vfs::Result<vfs::AttrOut>> {
        let perm = u32::from(perm);
        let mut kill = perm & libc::S_ISUID;
        if perm & (libc::S_ISGID | libc::S_IXGRP) == libc::S_ISGID | libc::S_IXGRP {
            kill |= libc::S_ISGID;
        }
        if kill == 0 {
            return None;
        }
        let set = vfs::SetAttr {
            mode: Some(perm & !kill),
            ..Default::default()
        };
        // As root: the writer need not own the file it may write to.
        Some(self.fs.setattr(&vfs::Request::root(), ino, &set))
    }

    /// Answer an open: `skip` says the kernel may skip opens from now on.
    fn reply_open(&self, r: vfs::Result<vfs::Opened>, skip: bool, reply: ReplyOpen) {
        match r {
            // ENOSYS once: the kernel stops sending OPEN/RELEASE and keeps its caches.
            Ok(_) | Err(vfs::Errno::ENOSYS) if skip => reply.error(Errno::ENOSYS),
            Ok(o) => {
                self.opened(1);
                reply.opened(FileHandle(o.fh.0), fopen_flags(&o));
            }
            // A filesystem without per-open state: a stateless open.
            Err(vfs::Errno::ENOSYS) => {
                self.opened(1);
                reply.opened(FileHandle(0), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl<F: vfs::Filesystem + ?Sized + 'static> Filesystem for FuseAdapter<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        self.granted = capabilities::request(config, &self.policy, self.max_background);
        // Opens are counted for the idle timeout, and write opens under the writeback cache
        // for the write-back at SIGTERM (the kernel may hold dirty pages of a file still
        // open): both need OPEN and RELEASE.
        let tracking_opens = self.activity.is_some();
        self.no_open = self.policy.no_open
            && !tracking_opens
            && self.write_opens.is_none()
            && self.granted.contains(&"NO_OPEN_SUPPORT");
        self.no_opendir = self.policy.no_opendir
            && !tracking_opens
            && self.granted.contains(&"NO_OPENDIR_SUPPORT");
        self.kills_privs = self.granted.contains(&"HANDLE_KILLPRIV_V2");
        log::info!("FUSE capabilities granted: {}", self.granted.join(" "));
        Ok(())
    }

    fn destroy(&mut self) {
        self.fs.destroy();
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.touch(Op::Lookup);
        match self.fs.lookup(&ctx(req, 0), parent.0, name) {
            Ok(Some(e)) => reply_entry(Ok(e), reply),
            // A negative entry with a timeout: the kernel caches the miss.
            Ok(None) if !self.policy.negative_ttl.is_zero() => {
                reply.entry(&self.policy.negative_ttl, &negative_attr(), Generation(0))
            }
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.touch(Op::Getattr);
        let fh = fh.map(|f| vfs::FileHandle(f.0));
        match self.fs.getattr(&ctx(req, 0), ino.0, fh) {
            Ok(a) => reply.attr(&a.ttl, &file_attr(&a.attr, a.attr.ino)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.touch(Op::Other);
        let set = vfs::SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime: ctime.map(timespec),
            fh: fh.map(|f| vfs::FileHandle(f.0)),
        };
        let mut r = self.fs.setattr(&ctx(req, 0), ino.0, &set);
        // Under KILLPRIV_V2 set-IDs are ours to clear (fuser does not pass
        // FATTR_KILL_SUIDGID): on truncation by a caller without CAP_FSETID (uid 0 stands for
        // the capability), and on the empty SETATTR the kernel sends before a write by such a
        // caller (`file_remove_privs`), whose answer refreshes the kernel's cached mode.
        let empty = vfs::SetAttr { fh: None, ..set } == vfs::SetAttr::default();
        let kill = (size.is_some() && req.uid() != 0) || empty;
        if self.kills_privs
            && kill
            && let Ok(a) = &r
            && let Some(out) = self.drop_set_ids(ino.0, a.attr.perm)
        {
            r = out;
        }
        match r {
            Ok(a) => reply.attr(&a.ttl, &file_attr(&a.attr, a.attr.ino)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        self.touch(Op::Readlink);
        match self.fs.readlink(&ctx(req, 0), ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.touch(Op::Other);
        reply_entry(
            self.fs.mknod(&ctx(req, umask), parent.0, name, mode, rdev),
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.touch(Op::Other);
        reply_entry(self.fs.mkdir(&ctx(req, umask), parent.0, name, mode), reply);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.touch(Op::Other);
        reply_empty(self.fs.unlink(&ctx(req, 0), parent.0, name), reply);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.touch(Op::Other);
        reply_empty(self.fs.rmdir(&ctx(req, 0), parent.0, name), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.touch(Op::Other);
        let r = self
            .fs
            .symlink(&ctx(req, 0), parent.0, link_name, target.as_os_str());
        reply_entry(r, reply);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.touch(Op::Other);
        let flags = vfs::RenameFlags(flags.bits());
        let r = self
            .fs
            .rename(&ctx(req, 0), parent.0, name, newparent.0, newname, flags);
        reply_empty(r, reply);
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.touch(Op::Other);
        reply_entry(
            self.fs.link(&ctx(req, 0), ino.0, newparent.0, newname),
            reply,
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.touch(Op::Other);
        let r = self.fs.open(&ctx(req, 0), ino.0, vfs::OpenFlags(flags.0));
        // (Tracking write opens keeps no_open off, so each of these opens gets a RELEASE.)
        if let (Some(w), Ok(_) | Err(vfs::Errno::ENOSYS)) = (&self.write_opens, &r) {
            w.opened(ino.0, flags.0);
        }
        self.reply_open(r, self.no_open, reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.touch(Op::Other);
        let r = self.fs.create(
            &ctx(req, umask),
            parent.0,
            name,
            mode,
            vfs::OpenFlags(flags),
        );
        match r {
            Ok((e, o)) => {
                self.opened(1);
                if let Some(w) = &self.write_opens {
                    w.opened(e.node, flags);
                }
                reply.created(
                    &e.entry_ttl.min(e.attr_ttl),
                    &file_attr(&e.attr, e.node),
                    Generation(e.generation),
                    FileHandle(o.fh.0),
                    fopen_flags(&o),
                );
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.touch(Op::Read);
        let answer = vfs::ReadReply::new(move |r| match r {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(errno(e)),
        });
        self.fs.read(
            &ctx(req, 0),
            ino.0,
            vfs::FileHandle(fh.0),
            offset,
            size,
            answer,
        );
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.touch(Op::Other);
        // Under KILLPRIV_V2 the kernel flags a write by a caller without CAP_FSETID to a
        // set-ID file; clear the bits before the data lands.
        if self.kills_privs
            && write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            && let Ok(a) = self.fs.getattr(&ctx(req, 0), ino.0, None)
            && let Some(Err(e)) = self.drop_set_ids(ino.0, a.attr.perm)
        {
            return reply.error(errno(e));
        }
        let r = self.fs.write(
            &ctx(req, 0),
            ino.0,
            vfs::FileHandle(fh.0),
            offset,
            data,
            vfs::OpenFlags(flags.0),
        );
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.touch(Op::Other);
        let r = self
            .fs
            .flush(&ctx(req, 0), ino.0, vfs::FileHandle(fh.0), lock_owner.0);
        reply_empty(r, reply);
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.opened(-1);
        if let Some(w) = &self.write_opens {
            w.released(ino.0, flags.0);
        }
        let r = self.fs.release(
            &ctx(req, 0),
            ino.0,
            vfs::FileHandle(fh.0),
            vfs::OpenFlags(flags.0),
        );
        reply_empty(r, reply);
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.touch(Op::Other);
        let r = self
            .fs
            .fsync(&ctx(req, 0), ino.0, vfs::FileHandle(fh.0), datasync);
        reply_empty(r, reply);
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.touch(Op::Other);
        let r = self
            .fs
            .opendir(&ctx(req, 0), ino.0, vfs::OpenFlags(flags.0));
        self.reply_open(r, self.no_opendir, reply);
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.touch(Op::Readdir);
        let fh = vfs::FileHandle(fh.0);
        let r = self
            .fs
            .readdir(&ctx(req, 0), ino.0, fh, offset, false, &mut |item, _| {
                !reply.add(
                    INodeNo(item.ino),
                    item.next_offset,
                    file_type(item.kind),
                    item.name,
                )
            });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.touch(Op::Readdirplus);
        let r = ctx(req, 0);
        // "." and ".." carry the directory's own attributes; the kernel links nothing for
        // them, so their id only serves as d_ino.
        let dir_attr = if offset <= 1 {
            match self.fs.getattr(&r, ino.0, None) {
                Ok(a) => Some(a.attr),
                Err(e) => return reply.error(errno(e)),
            }
        } else {
            None
        };
        let fh = vfs::FileHandle(fh.0);
        let res = self
            .fs
            .readdir(&r, ino.0, fh, offset, true, &mut |item, entry| {
                let (id, attr, ttl, generation) = match (entry, dir_attr.as_ref()) {
                    (Some(e), _) => (e.node, e.attr, e.entry_ttl.min(e.attr_ttl), e.generation),
                    (None, Some(a)) => (item.ino, *a, Duration::ZERO, 0),
                    (None, None) => return false,
                };
                !reply.add(
                    INodeNo(id),
                    item.next_offset,
                    item.name,
                    &ttl,
                    &file_attr(&attr, id),
                    Generation(generation),
                )
            });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn releasedir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.opened(-1);
        reply_empty(
            self.fs
                .releasedir(&ctx(req, 0), ino.0, vfs::FileHandle(fh.0)),
            reply,
        );
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.touch(Op::Other);
        let r = self
            .fs
            .fsyncdir(&ctx(req, 0), ino.0, vfs::FileHandle(fh.0), datasync);
        reply_empty(r, reply);
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.touch(Op::Other);
        match self.fs.statfs(&ctx(req, 0), ino.0) {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.touch(Op::Other);
        reply_empty(
            self.fs.setxattr(&ctx(req, 0), ino.0, name, value, flags),
            reply,
        );
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.touch(Op::Getxattr);
        reply_xattr(self.fs.getxattr(&ctx(req, 0), ino.0, name, size), reply);
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.touch(Op::Listxattr);
        reply_xattr(self.fs.listxattr(&ctx(req, 0), ino.0, size), reply);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.touch(Op::Other);
        reply_empty(self.fs.removexattr(&ctx(req, 0), ino.0, name), reply);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.touch(Op::Other);
        reply_empty(self.fs.access(&ctx(req, 0), ino.0, mask.bits()), reply);
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.touch(Op::Other);
        let fh = vfs::FileHandle(fh.0);
        reply_empty(
            self.fs
                .fallocate(&ctx(req, 0), ino.0, fh, offset, length, mode),
            reply,
        );
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.touch(Op::Other);
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::ENXIO);
        };
        let whence = vfs::Whence::from_raw(whence);
        match self
            .fs
            .lseek(&ctx(req, 0), ino.0, vfs::FileHandle(fh.0), offset, whence)
        {
            Ok(o) => reply.offset(i64::try_from(o).unwrap_or(i64::MAX)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.touch(Op::Other);
        let r = self.fs.copy_file_range(
            &ctx(req, 0),
            ino_in.0,
            vfs::FileHandle(fh_in.0),
            offset_in,
            ino_out.0,
            vfs::FileHandle(fh_out.0),
            offset_out,
            len,
            u32::try_from(flags.bits()).unwrap_or(u32::MAX),
        );
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
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
        // What the kernel drivers answer for an ioctl a file does not know (e.g. TCGETS from
        // isatty). The kernel never caches this answer, so it must stay cheap.
        self.touch(Op::Other);
        reply.error(Errno::ENOTTY);
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
        // ENOSYS: the kernel keeps POSIX locks locally.
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
}
