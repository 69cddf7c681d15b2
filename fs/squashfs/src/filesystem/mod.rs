//! The image as a [`Filesystem`]: node ids, attributes, lookup, readdir, reads (big ones on
//! the rayon pool, answered from there), readlink, xattrs, statfs and owner mapping.
//!
//! Everything takes `&self` and is safe to call from many threads at once; the only shared
//! state is the reader's (sharded) caches, the lock-free [`NodeTable`] and the sequential-read
//! table. Faults of a corrupt image are logged once per kind and node ([`FaultLog`]).

mod node_table;
mod open;
mod prefetch;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::Arc;
use std::time::Duration;

use squashbox_vfs::{
    Attr, AttrOut, DirItem, DirVisitor, Entry, Errno, FaultLog, FileHandle, FileType, Filesystem,
    MountPolicy, NodeId, OpenFlags, Opened, ReadReply, Request, Result, StatFs, Timespec,
    XattrData,
};

pub use node_table::{NodeError, NodeTable, ROOT_NODE};
pub use open::{ImageOptions, open_image};
pub use prefetch::SeqTable;

use crate::{DirEntry, Image, Inode, InodeKind, InodeRef};

/// The longest name SquashFS stores (what the kernel driver reports in statfs).
pub const NAME_MAX: u32 = 256;

/// `st_blksize` as the kernel driver reports it (its device block size).
pub const BLKSIZE: u32 = 1024;

/// Entry and attribute lifetime: the image never changes, so "for ever" (as squashfuse's
/// `DBL_MAX`; the kernel clamps it to its own maximum).
pub const FOREVER: Duration = Duration::from_secs(u64::MAX);

/// How to present the image.
#[derive(Debug, Clone, Default)]
pub struct FsOptions {
    /// Report every owner as this uid (`-o uid=N`, as squashfuse_ll).
    pub uid: Option<u32>,
    /// Report every group as this gid (`-o gid=N`).
    pub gid: Option<u32>,
    /// Serve this directory of the image as the root (`-o subdir=PATH`).
    pub subdir: Option<String>,
    /// How many bytes past a sequential reader's position to decompress ahead (0: off).
    pub prefetch_bytes: u64,
}

/// A SquashFS image served as a filesystem.
pub struct SquashFs {
    image: Arc<Image>,
    faults: Arc<FaultLog>,
    nodes: NodeTable,
    seq: SeqTable,
    opts: FsOptions,
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

/// Whether the kernel driver answers `listxattr` on `inode` with its squashfs handler, which
/// refuses with EOPNOTSUPP on an image without an xattr table (`mksquashfs -no-xattrs`):
/// directories, symlinks and every extended inode have it. Basic files, devices, fifos and
/// sockets have no inode operations of their own, so the VFS answers an empty list for them.
/// (`getxattr` is ENODATA on every inode of such an image, as here.)
fn kernel_lists_xattrs(inode: &Inode) -> bool {
    inode.extended || matches!(inode.kind, InodeKind::Directory | InodeKind::Symlink)
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

fn reader_errno(e: &crate::Error) -> Errno {
    Errno(e.errno())
}

impl SquashFs {
    /// Serve `image` (`name` is used in log messages). Resolves `opts.subdir`.
    pub fn new(
        image: Arc<Image>,
        name: &str,
        opts: FsOptions,
    ) -> std::result::Result<SquashFs, String> {
        let mut root_ref = image.root_ref();
        let mut root = image
            .inode(root_ref)
            .map_err(|e| format!("{name}: root inode: {e}"))?;
        if let Some(sub) = opts.subdir.as_deref() {
            for comp in Path::new(sub).components() {
                let part = match comp {
                    Component::Normal(p) => p.as_bytes(),
                    Component::RootDir | Component::CurDir => continue,
                    _ => return Err(format!("{name}: subdir {sub:?}: '..' is not allowed")),
                };
                let entry = image
                    .lookup(&root, part)
                    .map_err(|e| format!("{name}: subdir {sub:?}: {e}"))?
                    .ok_or_else(|| format!("{name}: subdir {sub:?}: no such directory"))?;
                root_ref = entry.inode_ref;
                root = image
                    .inode(root_ref)
                    .map_err(|e| format!("{name}: subdir {sub:?}: {e}"))?;
                if root.kind != InodeKind::Directory {
                    return Err(format!("{name}: subdir {sub:?}: not a directory"));
                }
            }
        }
        let inode_count = image.superblock().inode_count;
        let nodes = NodeTable::new(root_ref, root.inode_number, inode_count);
        Ok(SquashFs {
            image,
            faults: Arc::new(FaultLog::new(name)),
            nodes,
            seq: SeqTable::new(),
            opts,
        })
    }

    /// The image being served.
    pub fn image(&self) -> &Arc<Image> {
        &self.image
    }

    /// The options in force.
    pub fn options(&self) -> &FsOptions {
        &self.opts
    }

    /// The fault log (for its counts, and a summary at unmount).
    pub fn faults(&self) -> &FaultLog {
        &self.faults
    }

    /// The data block size of the image.
    pub fn block_size(&self) -> u32 {
        self.image.superblock().block_size
    }

    fn reader_error(&self, what: &'static str, node: u64, e: crate::Error) -> Errno {
        self.faults.warn(what, node, &e);
        reader_errno(&e)
    }

    fn node_error(&self, e: NodeError) -> Errno {
        match e {
            NodeError::BadNumber(n) => {
                self.faults
                    .warn("corrupt image: inode number out of range", u64::from(n), &n);
                Errno::EIO
            }
            NodeError::Unknown(n) => {
                self.faults.warn("kernel asked for an unknown node", n, &n);
                Errno::ESTALE
            }
        }
    }

    fn resolve(&self, node: u64) -> Result<InodeRef> {
        self.nodes.resolve(node).map_err(|e| self.node_error(e))
    }

    /// Decode the inode behind `node`.
    pub fn inode(&self, node: u64) -> Result<Inode> {
        let r = self.resolve(node)?;
        self.image
            .inode(r)
            .map_err(|e| self.reader_error("reading inode", node, e))
    }

    fn attr_of(&self, node: u64, inode: &Inode) -> Attr {
        let t = Timespec::from_secs(i64::from(inode.mtime));
        Attr {
            ino: self.nodes.st_ino(node),
            kind: file_type(inode.kind),
            perm: inode.permissions & 0o7777,
            size: inode.size,
            blocks: inode.blocks(),
            nlink: inode.nlink,
            uid: self.opts.uid.unwrap_or(inode.uid),
            gid: self.opts.gid.unwrap_or(inode.gid),
            rdev: inode.rdev,
            atime: t,
            mtime: t,
            ctime: t,
            blksize: BLKSIZE,
        }
    }

    fn entry_of(&self, node: u64, inode: &Inode) -> Entry {
        let attr = self.attr_of(node, inode);
        // The alias of inode 1 gets no attribute caching, so `stat` asks `getattr`, which
        // reports st_ino 1 (see node_table).
        let attr_ttl = if attr.ino != node && node != ROOT_NODE {
            Duration::ZERO
        } else {
            FOREVER
        };
        Entry {
            node,
            generation: 0,
            attr,
            entry_ttl: FOREVER,
            attr_ttl,
        }
    }

    fn node_of(&self, inode: &Inode) -> Result<u64> {
        self.nodes
            .node_for(inode.inode_number, inode.inode_ref)
            .map_err(|e| self.node_error(e))
    }

    fn dir_inode(&self, node: u64) -> Result<Inode> {
        let dir = self.inode(node)?;
        if dir.kind != InodeKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(dir)
    }

    /// One listed entry as a [`DirItem`] (and, with `plus`, its [`Entry`]).
    fn list_entry(
        &self,
        node: u64,
        entry: &DirEntry,
        plus: bool,
    ) -> Result<(u64, FileType, Option<Entry>)> {
        if plus {
            let inode = self
                .image
                .inode(entry.inode_ref)
                .map_err(|e| self.reader_error("readdirplus inode", node, e))?;
            let child = self.node_of(&inode)?;
            let e = self.entry_of(child, &inode);
            Ok((e.attr.ino, e.attr.kind, Some(e)))
        } else {
            let child = self
                .nodes
                .node_for(entry.inode_number, entry.inode_ref)
                .map_err(|e| self.node_error(e))?;
            Ok((self.nodes.st_ino(child), file_type(entry.kind), None))
        }
    }
}

/// One read to answer, inline or on a pool thread.
struct PendingRead {
    node: u64,
    inode: Inode,
    offset: u64,
    len: u64,
    /// What a sequential reader asks next, to decompress ahead once this read is answered.
    prefetch: Option<(u64, u64)>,
}

impl PendingRead {
    fn answer(self, image: &Image, faults: &FaultLog, reply: ReadReply) {
        let mut buf = vec![0u8; self.len as usize];
        match image.read(&self.inode, self.offset, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                reply.data(&buf);
            }
            Err(e) => {
                faults.warn("read", self.node, &e);
                return reply.error(reader_errno(&e));
            }
        }
        if let Some((start, len)) = self.prefetch {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            image.prefetch(&self.inode, start, len);
        }
    }
}

impl Filesystem for SquashFs {
    fn policy(&self) -> MountPolicy {
        MountPolicy::immutable()
    }

    fn destroy(&self) {
        self.faults.summary();
    }

    fn lookup(&self, _req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        let dir = self.dir_inode(parent)?;
        let name = name.as_bytes();
        if is_dot(name) {
            // The kernel resolves "." and ".." itself; we never export handles.
            return Err(Errno::ENOENT);
        }
        let entry = match self.image.lookup(&dir, name) {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.reader_error("lookup", parent, e)),
        };
        let inode = self
            .image
            .inode(entry.inode_ref)
            .map_err(|e| self.reader_error("reading inode of entry", parent, e))?;
        let node = self.node_of(&inode)?;
        Ok(Some(self.entry_of(node, &inode)))
    }

    fn getattr(&self, _req: &Request, node: NodeId, _fh: Option<FileHandle>) -> Result<AttrOut> {
        let inode = self.inode(node)?;
        Ok(AttrOut {
            attr: self.attr_of(node, &inode),
            ttl: FOREVER,
        })
    }

    fn readlink(&self, _req: &Request, node: NodeId) -> Result<Vec<u8>> {
        let inode = self.inode(node)?;
        if inode.kind != InodeKind::Symlink {
            return Err(Errno::EINVAL);
        }
        self.image
            .readlink(&inode)
            .map_err(|e| self.reader_error("readlink", node, e))
    }

    fn open(&self, _req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        if flags.writes() {
            return Err(Errno::EROFS);
        }
        match self.inode(node)?.kind {
            InodeKind::File => Ok(Opened {
                keep_cache: true,
                ..Opened::default()
            }),
            InodeKind::Directory => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
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
        if inode.kind != InodeKind::File {
            let e = if inode.kind == InodeKind::Directory {
                Errno::EISDIR
            } else {
                Errno::EINVAL
            };
            return reply.error(e);
        }
        let len = inode.size.saturating_sub(offset).min(u64::from(size));
        if len == 0 {
            return reply.data(&[]);
        }
        let window = self.opts.prefetch_bytes;
        let prefetch = self.seq.on_read(node, offset, len, inode.size, window);
        let pending = PendingRead {
            node,
            inode,
            offset,
            len,
            prefetch,
        };
        if size <= self.block_size() {
            // One block at most: a hand-off would cost more than it saves.
            pending.answer(&self.image, &self.faults, reply);
        } else {
            // Many blocks: decompress them in parallel on the pool, answer from there, and
            // let the request loop read the next request meanwhile.
            let image = Arc::clone(&self.image);
            let faults = Arc::clone(&self.faults);
            rayon::spawn(move || pending.answer(&image, &faults, reply));
        }
    }

    fn opendir(&self, _req: &Request, node: NodeId, _flags: OpenFlags) -> Result<Opened> {
        self.dir_inode(node)?;
        // Keep the cached listing across opens: the image never changes.
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
        // Offsets: 1 after ".", 2 after "..", cookie + 2 after a real entry. d_ino of "." and
        // ".." are what the kernel reports (the parent number is stored in the directory).
        if offset == 0 {
            let item = DirItem {
                name: OsStr::new("."),
                ino: self.nodes.st_ino(node),
                kind: FileType::Directory,
                next_offset: 1,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        if offset <= 1 {
            let item = DirItem {
                name: OsStr::new(".."),
                ino: u64::from(dir.parent_inode_number().unwrap_or(0)),
                kind: FileType::Directory,
                next_offset: 2,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        let cookie = offset.saturating_sub(2);
        let mut failure: Option<Errno> = None;
        let mut each = |entry: DirEntry, next: u64| -> bool {
            let Some(next_offset) = next.checked_add(2) else {
                failure = Some(Errno::EIO);
                return false;
            };
            match self.list_entry(node, &entry, plus) {
                Ok((ino, kind, e)) => {
                    let item = DirItem {
                        name: OsStr::from_bytes(&entry.name),
                        ino,
                        kind,
                        next_offset,
                    };
                    visit(item, e.as_ref())
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        };
        if let Err(e) = self.image.read_dir(&dir, cookie, &mut each) {
            return Err(self.reader_error("readdir", node, e));
        }
        failure.map_or(Ok(()), Err)
    }

    fn statfs(&self, _req: &Request, _node: NodeId) -> Result<StatFs> {
        let s = self.image.statfs();
        Ok(StatFs {
            blocks: s.blocks,
            files: s.files,
            bsize: s.block_size,
            frsize: s.block_size,
            namelen: NAME_MAX,
            ..StatFs::default()
        })
    }

    fn getxattr(&self, _req: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        let inode = self.inode(node)?;
        match self.image.xattr_get(&inode, name.as_bytes()) {
            Ok(Some(v)) => XattrData::fit(v, size),
            Ok(None) => Err(Errno::ENODATA),
            Err(e) => Err(self.reader_error("getxattr", node, e)),
        }
    }

    fn listxattr(&self, _req: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        let inode = self.inode(node)?;
        if !self.image.superblock().has_xattrs() && kernel_lists_xattrs(&inode) {
            return Err(Errno::EOPNOTSUPP);
        }
        let names = self
            .image
            .xattr_names(&inode)
            .map_err(|e| self.reader_error("listxattr", node, e))?;
        XattrData::names(names.iter().map(Vec::as_slice), size)
    }

    fn access(&self, _req: &Request, node: NodeId, mask: i32) -> Result<()> {
        self.inode(node)?;
        if mask & libc::W_OK != 0 {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }
}
