//! [`Ext3Fs`]: the image as a [`Filesystem`]. Node ids are inode numbers (the root, inode 2,
//! is node 1), so no table is needed and `forget` has nothing to drop. Faults of a corrupt
//! image are logged once per kind and node ([`FaultLog`]) and answered with EIO.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use squashbox_vfs::{
    Attr, AttrOut, DirItem, DirVisitor, Entry, Errno, FaultLog, FileHandle, FileType, Filesystem,
    MountPolicy, NodeId, OpenFlags, Opened, ROOT_ID, ReadReply, RenameFlags, Request, Result,
    SetAttr, StatFs, XattrData,
};

mod journaling;
mod privs;
mod range_ops;
mod write;

use crate::alloc::Allocator;
use crate::dir;
use crate::error::Error;
use crate::htree::{self, DxLookup};
use crate::inode::{Inode, ROOT_INO};
use crate::journal_write::JournalWriter;
use crate::locks::{InodeLocks, LookupCounts};
use crate::statfs;
use crate::superblock::COMPAT_HAS_JOURNAL;
use crate::symlink;
use crate::volume::Volume;
use crate::xattr;

/// Attribute and entry lifetime of a read-only image: "for ever".
pub const FOREVER: Duration = Duration::from_secs(u64::MAX);

/// Attribute and entry lifetime on a writable image (only this server changes it).
pub const WRITABLE_TTL: Duration = Duration::from_secs(1);

/// Readdir offsets: 1 after ".", 2 after "..", `2 + byte position` after a real entry.
const DOTS: u64 = 2;

/// An ext2/ext3/ext4 image served as a filesystem.
pub struct Ext3Fs {
    vol: Arc<Volume>,
    faults: FaultLog,
    ro_reason: Option<String>,
    overhead: u64,
    /// The allocator, present when the image is served read-write.
    alloc: Option<Arc<Allocator>>,
    /// The journal writer, when the read-write image has a journal this driver can write.
    journal: Option<Arc<JournalWriter>>,
    /// Tells the background committer to stop.
    stop_committer: Arc<std::sync::atomic::AtomicBool>,
    locks: InodeLocks,
    lookups: LookupCounts,
    /// Unlinked inodes the kernel still holds: freed at their last forget or at unmount.
    orphans: parking_lot::Mutex<std::collections::HashSet<u32>>,
    /// Head of the on-disk orphan list (`s_last_orphan`).
    orphan_head: parking_lot::Mutex<u32>,
    /// Held while [`Ext3Fs::shutdown`] runs, so later callers wait for it.
    shutting: parking_lot::Mutex<()>,
    /// Set when the shutdown starts: from then on changing operations fail with EIO (a
    /// lazily detached mount can still send requests after the flush at SIGTERM, and
    /// nothing may reach the image after it is marked clean).
    shut_down: std::sync::atomic::AtomicBool,
}

/// The vfs file type of a dirent `file_type` byte, if it names one.
fn dirent_kind(ft: u8) -> Option<FileType> {
    Some(match ft {
        1 => FileType::RegularFile,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::NamedPipe,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => return None,
    })
}

fn node_of(ino: u32) -> NodeId {
    if ino == ROOT_INO {
        ROOT_ID
    } else {
        u64::from(ino)
    }
}

impl Ext3Fs {
    /// Open the filesystem at byte `offset` of the image `path`, read-write unless
    /// `read_only`. An image this driver cannot write (ext4 features, an error state) is
    /// served read-only even when write access is asked for; [`Ext3Fs::read_only_reason`]
    /// says why.
    pub fn open(path: &Path, offset: u64, read_only: bool) -> std::result::Result<Ext3Fs, Error> {
        Self::open_with_cache(path, offset, read_only, crate::volume::DEFAULT_CACHE_BYTES)
    }

    /// [`Ext3Fs::open`] with a metadata block cache of about `cache_bytes` (`-o cache=MiB`,
    /// fuse2fs's `cache_size=`).
    pub fn open_with_cache(
        path: &Path,
        offset: u64,
        read_only: bool,
        cache_bytes: usize,
    ) -> std::result::Result<Ext3Fs, Error> {
        let probe = Volume::open(path, offset, true)?;
        let ro_reason = if read_only {
            None
        } else {
            probe.sb().read_only_reason().or_else(|| {
                (probe.sb().state & 0x2 != 0)
                    .then(|| "the filesystem has errors (run e2fsck); served read-only".to_string())
            })
        };
        let writable = !read_only && ro_reason.is_none();
        let mut vol = if writable {
            drop(probe);
            Volume::open(path, offset, false)?
        } else {
            probe
        };
        vol.set_cache_bytes(cache_bytes);
        let journal_blocks =
            if vol.sb().has_compat(COMPAT_HAS_JOURNAL) && vol.sb().journal_inum != 0 {
                let j = vol.inode(vol.sb().journal_inum)?;
                j.size / u64::from(vol.block_size())
            } else {
                0
            };
        let overhead = statfs::overhead_blocks(&vol, journal_blocks);
        let faults = FaultLog::new(vol.name());
        if let Some(r) = &ro_reason {
            log::warn!("{}: serving read-only: {r}", vol.name());
        }
        let alloc = if writable {
            let a = Arc::new(Allocator::new(&vol));
            vol.note_mount()?;
            // Not clean while mounted read-write: cleared again at unmount.
            vol.write_super(
                a.free_blocks(),
                a.free_inodes() as u32,
                vol.sb().state & !crate::volume_write::STATE_VALID,
            )?;
            Some(a)
        } else {
            None
        };
        let mut fs = Ext3Fs {
            vol: Arc::new(vol),
            faults,
            ro_reason,
            overhead,
            alloc,
            locks: InodeLocks::default(),
            lookups: LookupCounts::default(),
            orphans: parking_lot::Mutex::new(std::collections::HashSet::new()),
            orphan_head: parking_lot::Mutex::new(0),
            journal: None,
            stop_committer: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            shutting: parking_lot::Mutex::new(()),
            shut_down: std::sync::atomic::AtomicBool::new(false),
        };
        if fs.writable() {
            let n = fs.process_orphans()?;
            if n > 0 {
                log::info!(
                    "{}: freed {n} orphaned inodes left by a crash",
                    fs.vol.name()
                );
            }
            fs.start_journal()?;
        }
        Ok(fs)
    }

    /// Flush and close as an unmount does: free orphans, commit, checkpoint, mark the image
    /// clean. Runs once; a later or concurrent call (fuser's `destroy` while a signal thread
    /// flushes, then the flush at `exit()`) waits until the first has finished and then does
    /// nothing, so no caller returns (and lets the process exit) before the image is written.
    pub fn shutdown(&self) -> std::result::Result<(), Error> {
        let _one = self.shutting.lock();
        if self
            .shut_down
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        let r = self.unmount();
        self.faults.summary();
        r
    }

    /// The opened volume (superblock, groups, raw reads).
    pub fn volume(&self) -> &Volume {
        &self.vol
    }

    /// Why the image is served read-only although write access was asked for, if it is.
    pub fn read_only_reason(&self) -> Option<&str> {
        self.ro_reason.as_deref()
    }

    /// The fault log (for its counts, and a summary at unmount).
    pub fn faults(&self) -> &FaultLog {
        &self.faults
    }

    fn fault(&self, what: &'static str, node: NodeId, e: Error) -> Errno {
        self.faults.warn(what, node, &e);
        Errno(e.errno())
    }

    /// The inode number behind `node`; ESTALE for ids never handed out.
    fn ino_of(&self, node: NodeId) -> Result<u32> {
        if node == ROOT_ID {
            return Ok(ROOT_INO);
        }
        match u32::try_from(node) {
            Ok(ino) if ino != ROOT_INO && self.vol.ino_is_valid(ino) => Ok(ino),
            _ => {
                self.faults
                    .warn("kernel asked for an unknown node", node, &node);
                Err(Errno::ESTALE)
            }
        }
    }

    /// Load inode `ino` for `node`, refusing deleted inodes and bad modes.
    fn load(&self, what: &'static str, node: NodeId, ino: u32) -> Result<Inode> {
        let inode = self.vol.inode(ino).map_err(|e| self.fault(what, node, e))?;
        if inode.kind().is_none() {
            let e = self
                .vol
                .corrupt(Some(ino), None, format!("invalid mode {:o}", inode.mode));
            return Err(self.fault(what, node, e));
        }
        if inode.links == 0 && !(self.writable() && self.orphans.lock().contains(&ino)) {
            let e = self
                .vol
                .corrupt(Some(ino), None, "a directory entry names a deleted inode");
            self.faults.warn(what, node, &e);
            return Err(Errno::ESTALE);
        }
        Ok(inode)
    }

    fn inode(&self, node: NodeId) -> Result<Inode> {
        let ino = self.ino_of(node)?;
        self.load("reading inode", node, ino)
    }

    fn dir_inode(&self, node: NodeId) -> Result<Inode> {
        let d = self.inode(node)?;
        if d.is_dir() {
            Ok(d)
        } else {
            Err(Errno::ENOTDIR)
        }
    }

    fn ttl(&self) -> Duration {
        if self.alloc.is_some() {
            WRITABLE_TTL
        } else {
            FOREVER
        }
    }

    /// Whether the image is served read-write.
    pub fn writable(&self) -> bool {
        self.alloc.is_some()
    }

    fn attr_of(&self, inode: &Inode) -> Attr {
        let kind = inode.kind().unwrap_or(FileType::RegularFile);
        let rdev = match kind {
            FileType::CharDevice | FileType::BlockDevice => inode.rdev(),
            _ => 0,
        };
        Attr {
            ino: u64::from(inode.ino),
            kind,
            perm: inode.mode & 0o7777,
            size: inode.size,
            blocks: inode.blocks_512(self.vol.inode_format()),
            nlink: u32::from(inode.links),
            uid: inode.uid,
            gid: inode.gid,
            rdev,
            atime: inode.atime,
            mtime: inode.mtime,
            ctime: inode.ctime,
            blksize: self.vol.block_size(),
        }
    }

    fn entry_of(&self, inode: &Inode) -> Entry {
        Entry {
            node: node_of(inode.ino),
            generation: u64::from(inode.generation),
            attr: self.attr_of(inode),
            entry_ttl: self.ttl(),
            attr_ttl: self.ttl(),
        }
    }

    /// The inode a directory entry names, checked.
    fn child(&self, what: &'static str, parent: NodeId, ino: u32) -> Result<Inode> {
        if !self.vol.ino_is_valid(ino) || ino == ROOT_INO {
            let e = self.vol.corrupt(
                Some(ino),
                None,
                format!("a directory entry names reserved inode {ino}"),
            );
            return Err(self.fault(what, parent, e));
        }
        self.load(what, parent, ino)
    }

    /// Find `name` in `dir`: through the htree index when it is usable, else linearly.
    fn find(&self, node: NodeId, dir: &Inode, name: &[u8]) -> Result<Option<u32>> {
        if htree::is_indexed(&self.vol, dir) {
            match htree::lookup(&self.vol, dir, name) {
                Ok(DxLookup::Found(ino, _)) => return Ok(Some(ino)),
                Ok(DxLookup::Missing) => return Ok(None),
                Ok(DxLookup::Unusable(why)) => {
                    let e = self
                        .vol
                        .corrupt(Some(dir.ino), None, format!("htree index: {why}"));
                    self.faults.warn("htree index unusable, scanning", node, &e);
                }
                Err(e) => return Err(self.fault("htree lookup", node, e)),
            }
        }
        match dir::find_linear(&self.vol, dir, name) {
            Ok(hit) => Ok(hit.map(|(ino, _)| ino)),
            Err(e) => Err(self.fault("lookup", node, e)),
        }
    }
}

impl Filesystem for Ext3Fs {
    fn policy(&self) -> MountPolicy {
        if self.writable() {
            // Every change reaches the image through this server and the kernel that sends
            // it: the kernel may keep written pages and send them in large writes (fsync
            // and unmount write them back first), remember misses for as long as entries,
            // and skip OPEN/RELEASE (opens hold no state here, though the FUSE layer takes them
            // to write back files still open at SIGTERM). Privileges are dropped here
            // (`privs`), so the kernel does not ask for security.capability before every
            // write.
            MountPolicy {
                writeback_cache: true,
                kills_privs: true,
                no_open: true,
                negative_ttl: WRITABLE_TTL,
                ..MountPolicy::writable()
            }
        } else {
            MountPolicy::immutable()
        }
    }

    fn destroy(&self) {
        if let Err(e) = self.shutdown() {
            log::error!("{e}");
        }
    }

    fn forget(&self, node: NodeId, nlookup: u64) {
        self.forget_node(node, nlookup);
    }

    fn setattr(&self, req: &Request, node: NodeId, set: &SetAttr) -> Result<AttrOut> {
        self.do_setattr(req, node, set)
    }

    fn mknod(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        self.do_mknod(req, parent, name, mode, rdev)
    }

    fn mkdir(&self, req: &Request, parent: NodeId, name: &OsStr, mode: u32) -> Result<Entry> {
        self.do_mkdir(req, parent, name, mode)
    }

    fn unlink(&self, _req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        self.do_remove(parent, name, false)
    }

    fn rmdir(&self, _req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        self.do_remove(parent, name, true)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<Entry> {
        self.do_symlink(req, parent, name, target)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        self.do_rename(parent, name, new_parent, new_name, flags)
    }

    fn link(
        &self,
        _req: &Request,
        node: NodeId,
        new_parent: NodeId,
        new_name: &OsStr,
    ) -> Result<Entry> {
        self.do_link(node, new_parent, new_name)
    }

    fn create(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        _flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        let e = self.do_mknod(req, parent, name, libc::S_IFREG | (mode & 0o7777), 0)?;
        Ok((e, Opened::default()))
    }

    fn write(
        &self,
        _req: &Request,
        node: NodeId,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _flags: OpenFlags,
    ) -> Result<u32> {
        self.do_write(node, offset, data)
    }

    fn fallocate(
        &self,
        _req: &Request,
        node: NodeId,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        self.do_fallocate(node, offset, length, mode)
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        node_in: NodeId,
        _fh_in: FileHandle,
        offset_in: u64,
        node_out: NodeId,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: u32,
    ) -> Result<u32> {
        self.do_copy_file_range(node_in, offset_in, node_out, offset_out, len)
    }

    fn setxattr(
        &self,
        _req: &Request,
        node: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.do_setxattr(node, name, Some(value), flags)
    }

    fn removexattr(&self, _req: &Request, node: NodeId, name: &OsStr) -> Result<()> {
        self.do_setxattr(node, name, None, 0)
    }

    fn flush(
        &self,
        _req: &Request,
        _node: NodeId,
        _fh: FileHandle,
        _lock_owner: u64,
    ) -> Result<()> {
        Ok(())
    }

    fn fsync(&self, _req: &Request, node: NodeId, _fh: FileHandle, _datasync: bool) -> Result<()> {
        self.sync().map_err(|e| self.fault("fsync", node, e))
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        node: NodeId,
        _fh: FileHandle,
        _datasync: bool,
    ) -> Result<()> {
        self.sync().map_err(|e| self.fault("fsyncdir", node, e))
    }

    fn lookup(&self, _req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        let dir = self.dir_inode(parent)?;
        let name = name.as_bytes();
        if name == b"." || name == b".." {
            return Err(Errno::ENOENT);
        }
        if name.len() > statfs::NAME_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        let Some(ino) = self.find(parent, &dir, name)? else {
            return Ok(None);
        };
        let inode = self.child("lookup", parent, ino)?;
        Ok(Some(self.handed_out(&inode)))
    }

    fn getattr(&self, _req: &Request, node: NodeId, _fh: Option<FileHandle>) -> Result<AttrOut> {
        let inode = self.inode(node)?;
        Ok(AttrOut {
            attr: self.attr_of(&inode),
            ttl: self.ttl(),
        })
    }

    fn readlink(&self, _req: &Request, node: NodeId) -> Result<Vec<u8>> {
        let inode = self.inode(node)?;
        if inode.kind() != Some(FileType::Symlink) {
            return Err(Errno::EINVAL);
        }
        symlink::target(&self.vol, &inode).map_err(|e| self.fault("readlink", node, e))
    }

    fn open(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        if flags.writes() && !self.writable() {
            return Err(Errno::EROFS);
        }
        match self.inode(node)?.kind() {
            Some(FileType::Directory) => Err(Errno::EISDIR),
            _ => {
                if flags.writes() && flags.has(libc::O_TRUNC) {
                    let set = squashbox_vfs::SetAttr {
                        size: Some(0),
                        ..Default::default()
                    };
                    self.do_setattr(req, node, &set)?;
                }
                Ok(Opened {
                    keep_cache: !self.writable(),
                    ..Opened::default()
                })
            }
        }
    }

    fn read(
        &self,
        _req: &Request,
        node: NodeId,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReadReply,
    ) {
        let inode = match self.inode(node) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        match inode.kind() {
            Some(FileType::RegularFile) => {}
            Some(FileType::Directory) => return reply.error(Errno::EISDIR),
            _ => return reply.error(Errno::EINVAL),
        }
        let len = inode.size.saturating_sub(offset).min(u64::from(size));
        if len == 0 {
            return reply.data(&[]);
        }
        let mut buf = vec![0u8; len as usize];
        match self.vol.read_data(&inode, offset, &mut buf) {
            Ok(()) => reply.data(&buf),
            Err(e) => reply.error(self.fault("read", node, e)),
        }
    }

    fn opendir(&self, _req: &Request, node: NodeId, _flags: OpenFlags) -> Result<Opened> {
        self.dir_inode(node)?;
        Ok(Opened {
            keep_cache: true,
            cache_dir: true,
            ..Opened::default()
        })
    }

    fn readdir(
        &self,
        _req: &Request,
        node: NodeId,
        _fh: FileHandle,
        offset: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        let dir = self.dir_inode(node)?;
        if offset == 0 {
            let item = DirItem {
                name: OsStr::new("."),
                ino: u64::from(dir.ino),
                kind: FileType::Directory,
                next_offset: 1,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        if offset <= 1 {
            let parent =
                dir::parent_of(&self.vol, &dir).map_err(|e| self.fault("readdir", node, e))?;
            let item = DirItem {
                name: OsStr::new(".."),
                ino: u64::from(parent),
                kind: FileType::Directory,
                next_offset: DOTS,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        let start = offset.saturating_sub(DOTS);
        let mut failure: Option<Errno> = None;
        let mut on_bad = |e: Error| {
            self.faults
                .warn("readdir: skipping a bad directory block", node, &e);
            Ok(())
        };
        let mut each = |e: dir::DirEntry<'_>, next: u64| -> bool {
            if e.name == b"." || e.name == b".." {
                return true;
            }
            if e.name.contains(&b'/') || e.name.contains(&0) {
                let err = self.vol.corrupt(
                    Some(dir.ino),
                    None,
                    "a directory entry name holds '/' or NUL",
                );
                self.faults.warn("readdir: skipping a bad name", node, &err);
                return true;
            }
            let (kind, entry) = if plus || dirent_kind(e.file_type).is_none() {
                match self.child("readdir", node, e.ino) {
                    Ok(inode) => {
                        let en = self.entry_of(&inode);
                        (en.attr.kind, plus.then_some(en))
                    }
                    Err(err) => {
                        failure = Some(err);
                        return false;
                    }
                }
            } else {
                (
                    dirent_kind(e.file_type).unwrap_or(FileType::RegularFile),
                    None,
                )
            };
            let item = DirItem {
                name: OsStr::from_bytes(e.name),
                ino: u64::from(e.ino),
                kind,
                next_offset: next + DOTS,
            };
            let taken = visit(item, entry.as_ref());
            if taken && entry.is_some() {
                self.note_lookup(e.ino);
            }
            taken
        };
        dir::walk(&self.vol, &dir, start, &mut on_bad, &mut each)
            .map_err(|e| self.fault("readdir", node, e))?;
        failure.map_or(Ok(()), Err)
    }

    fn statfs(&self, _req: &Request, _node: NodeId) -> Result<StatFs> {
        let mut s = statfs::statfs(&self.vol, self.overhead);
        if let Some(a) = &self.alloc {
            let reserved = s.bfree - s.bavail;
            s.bfree = a.free_blocks();
            s.bavail = s.bfree.saturating_sub(reserved);
            s.ffree = a.free_inodes();
        }
        Ok(s)
    }

    fn getxattr(&self, _req: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        let inode = self.inode(node)?;
        let all = xattr::list(&self.vol, &inode).map_err(|e| self.fault("getxattr", node, e))?;
        match all.into_iter().find(|x| x.name == name.as_bytes()) {
            Some(x) => XattrData::fit(x.value, size),
            None => Err(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        let inode = self.inode(node)?;
        let all = xattr::list(&self.vol, &inode).map_err(|e| self.fault("listxattr", node, e))?;
        XattrData::names(all.iter().map(|x| x.name.as_slice()), size)
    }

    fn access(&self, _req: &Request, node: NodeId, mask: i32) -> Result<()> {
        self.inode(node)?;
        if mask & libc::W_OK != 0 && !self.writable() {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }
}
