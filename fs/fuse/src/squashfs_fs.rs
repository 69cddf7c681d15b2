//! SquashFS filesystem semantics with no FUSE types: node ids, attributes, lookup, readdir,
//! read, readlink, xattrs, statfs, owner mapping and errno mapping.
//!
//! Everything here takes `&self` and is safe to call from many threads at once; the only shared
//! state is the reader's (sharded) caches and the lock-free [`NodeTable`].

use std::path::Path;
use std::sync::Arc;

use squashbox_squashfs::{DirEntry, Image, Inode, InodeKind, InodeRef};

use crate::node_table::{NodeError, NodeTable, ROOT_NODE};
use crate::prefetch::SeqTable;

/// The longest name SquashFS stores (what the kernel driver reports in statfs).
pub const NAME_MAX: u32 = 256;

/// `st_blksize` as the kernel driver reports it (its device block size).
pub const BLKSIZE: u32 = 1024;

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

/// An errno, with the reason already logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsError(pub i32);

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

/// Attributes of one node, ready for `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// The FUSE node id (also what the kernel reports as `st_ino` after a lookup).
    pub node: u64,
    /// The inode number `getattr` should report (differs from `node` only for the root and
    /// the alias of inode 1; see [`crate::node_table`]).
    pub st_ino: u64,
    /// File type.
    pub kind: InodeKind,
    /// Permission bits (lower 12 bits of `st_mode`).
    pub perm: u16,
    /// Size in bytes.
    pub size: u64,
    /// `st_blocks` (512-byte units).
    pub blocks: u64,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number (`new_encode_dev` form) for devices.
    pub rdev: u32,
    /// Modification time (also atime and ctime), Unix seconds.
    pub mtime: u32,
    /// `st_blksize`.
    pub blksize: u32,
}

/// One directory entry produced by [`SquashFs::readdir`].
#[derive(Debug, Clone)]
pub struct DirItem<'a> {
    /// Entry name.
    pub name: &'a [u8],
    /// Node id of the entry.
    pub node: u64,
    /// `d_ino` as the kernel driver reports it (differs from `node` for "." and "..").
    pub ino: u64,
    /// Entry type.
    pub kind: InodeKind,
    /// The offset that resumes the listing after this entry.
    pub next_offset: u64,
}

/// `statfs` values, as the kernel driver computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks of `bsize` bytes.
    pub blocks: u64,
    /// Total inodes.
    pub files: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
}

/// A SquashFS image served as a filesystem.
pub struct SquashFs {
    image: Arc<Image>,
    name: String,
    nodes: NodeTable,
    seq: SeqTable,
    opts: FsOptions,
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl SquashFs {
    /// Serve `image` (`name` is used in log messages). Resolves `opts.subdir`.
    pub fn new(image: Arc<Image>, name: &str, opts: FsOptions) -> Result<SquashFs, String> {
        let mut root_ref = image.root_ref();
        let mut root = image
            .inode(root_ref)
            .map_err(|e| format!("{name}: root inode: {e}"))?;
        if let Some(sub) = opts.subdir.as_deref() {
            for comp in Path::new(sub).components() {
                use std::os::unix::ffi::OsStrExt;
                let part = match comp {
                    std::path::Component::Normal(p) => p.as_bytes(),
                    std::path::Component::RootDir | std::path::Component::CurDir => continue,
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
            name: name.to_string(),
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

    fn reader_error(&self, what: &str, node: u64, e: squashbox_squashfs::Error) -> FsError {
        log::warn!("{}: {what} (node {node}): {e}", self.name);
        FsError(e.errno())
    }

    fn node_error(&self, e: NodeError) -> FsError {
        match e {
            NodeError::BadNumber(n) => {
                log::warn!(
                    "{}: corrupt image: inode number {n} out of range",
                    self.name
                );
                FsError(libc::EIO)
            }
            NodeError::Unknown(n) => {
                log::warn!("{}: kernel asked for unknown node {n}", self.name);
                FsError(libc::ESTALE)
            }
        }
    }

    fn resolve(&self, node: u64) -> FsResult<InodeRef> {
        self.nodes.resolve(node).map_err(|e| self.node_error(e))
    }

    /// Decode the inode behind `node`.
    pub fn inode(&self, node: u64) -> FsResult<Inode> {
        let r = self.resolve(node)?;
        self.image
            .inode(r)
            .map_err(|e| self.reader_error("reading inode", node, e))
    }

    fn attr_of(&self, node: u64, inode: &Inode) -> Attr {
        let blocks = inode.blocks();
        Attr {
            node,
            st_ino: self.nodes.st_ino(node),
            kind: inode.kind,
            perm: inode.permissions & 0o7777,
            size: inode.size,
            blocks,
            nlink: inode.nlink,
            uid: self.opts.uid.unwrap_or(inode.uid),
            gid: self.opts.gid.unwrap_or(inode.gid),
            rdev: inode.rdev,
            mtime: inode.mtime,
            blksize: BLKSIZE,
        }
    }

    fn node_of(&self, inode: &Inode) -> FsResult<u64> {
        self.nodes
            .node_for(inode.inode_number, inode.inode_ref)
            .map_err(|e| self.node_error(e))
    }

    /// `getattr`.
    pub fn getattr(&self, node: u64) -> FsResult<Attr> {
        let inode = self.inode(node)?;
        Ok(self.attr_of(node, &inode))
    }

    /// `lookup`: `Ok(None)` when `name` does not exist (a cacheable negative entry).
    pub fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Option<Attr>> {
        let dir = self.inode(parent)?;
        if dir.kind != InodeKind::Directory {
            return Err(FsError(libc::ENOTDIR));
        }
        if is_dot(name) {
            // The kernel resolves "." and ".." itself; we never export handles.
            return Err(FsError(libc::ENOENT));
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
        Ok(Some(self.attr_of(node, &inode)))
    }

    /// Check that `node` is a directory (`opendir`).
    pub fn opendir(&self, node: u64) -> FsResult<()> {
        match self.inode(node)?.kind {
            InodeKind::Directory => Ok(()),
            _ => Err(FsError(libc::ENOTDIR)),
        }
    }

    /// List directory `node` from `offset` (0 = start; "." and ".." come first). `visit` gets
    /// each entry and, when `plus`, its attributes; it returns `false` when its buffer is full.
    pub fn readdir(
        &self,
        node: u64,
        offset: u64,
        plus: bool,
        visit: &mut dyn FnMut(DirItem<'_>, Option<&Attr>) -> bool,
    ) -> FsResult<()> {
        let dir = self.inode(node)?;
        if dir.kind != InodeKind::Directory {
            return Err(FsError(libc::ENOTDIR));
        }
        // Offsets: 1 after ".", 2 after "..", cookie + 2 after a real entry. d_ino of "." and
        // ".." are what the kernel reports (the parent number is stored in the directory).
        if offset == 0 {
            let ino = self.nodes.st_ino(node);
            let item = DirItem {
                name: b".",
                node,
                ino,
                kind: InodeKind::Directory,
                next_offset: 1,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        if offset <= 1 {
            let ino = u64::from(dir.parent_inode_number().unwrap_or(0));
            let item = DirItem {
                name: b"..",
                node,
                ino,
                kind: InodeKind::Directory,
                next_offset: 2,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        let cookie = offset.saturating_sub(2);
        let mut failure: Option<FsError> = None;
        let mut each = |entry: DirEntry, next: u64| -> bool {
            let Some(next_offset) = next.checked_add(2) else {
                failure = Some(FsError(libc::EIO));
                return false;
            };
            if plus {
                let inode = match self.image.inode(entry.inode_ref) {
                    Ok(i) => i,
                    Err(e) => {
                        failure = Some(self.reader_error("readdirplus inode", node, e));
                        return false;
                    }
                };
                let child = match self.node_of(&inode) {
                    Ok(n) => n,
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                };
                let attr = self.attr_of(child, &inode);
                let item = DirItem {
                    name: &entry.name,
                    node: child,
                    ino: child,
                    kind: inode.kind,
                    next_offset,
                };
                visit(item, Some(&attr))
            } else {
                let child = match self.nodes.node_for(entry.inode_number, entry.inode_ref) {
                    Ok(n) => n,
                    Err(e) => {
                        failure = Some(self.node_error(e));
                        return false;
                    }
                };
                let ino = self.nodes.st_ino(child);
                let item = DirItem {
                    name: &entry.name,
                    node: child,
                    ino,
                    kind: entry.kind,
                    next_offset,
                };
                visit(item, None)
            }
        };
        if let Err(e) = self.image.read_dir(&dir, cookie, &mut each) {
            return Err(self.reader_error("readdir", node, e));
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `open` of a regular file: check the type.
    pub fn open(&self, node: u64) -> FsResult<()> {
        match self.inode(node)?.kind {
            InodeKind::File => Ok(()),
            InodeKind::Directory => Err(FsError(libc::EISDIR)),
            _ => Err(FsError(libc::EINVAL)),
        }
    }

    /// Read up to `size` bytes at `offset` of file `node` (short only at end of file). Blocks
    /// the range spans are decompressed in parallel by the reader. A sequential pattern
    /// starts a background prefetch of the following blocks.
    pub fn read(&self, node: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let inode = self.inode(node)?;
        if inode.kind != InodeKind::File {
            return Err(FsError(if inode.kind == InodeKind::Directory {
                libc::EISDIR
            } else {
                libc::EINVAL
            }));
        }
        let len = inode.size.saturating_sub(offset).min(u64::from(size));
        let mut buf = vec![0u8; len as usize];
        if len == 0 {
            return Ok(buf);
        }
        let n = self
            .image
            .read(&inode, offset, &mut buf)
            .map_err(|e| self.reader_error("read", node, e))?;
        buf.truncate(n);
        let window = self.opts.prefetch_bytes;
        if let Some((start, len)) = self.seq.on_read(node, offset, n as u64, inode.size, window) {
            self.image
                .prefetch(&inode, start, usize::try_from(len).unwrap_or(usize::MAX));
        }
        Ok(buf)
    }

    /// The data block size of the image.
    pub fn block_size(&self) -> u32 {
        self.image.superblock().block_size
    }

    /// `readlink`.
    pub fn readlink(&self, node: u64) -> FsResult<Vec<u8>> {
        let inode = self.inode(node)?;
        if inode.kind != InodeKind::Symlink {
            return Err(FsError(libc::EINVAL));
        }
        self.image
            .readlink(&inode)
            .map_err(|e| self.reader_error("readlink", node, e))
    }

    /// `listxattr`: NUL-terminated names.
    pub fn listxattr(&self, node: u64) -> FsResult<Vec<u8>> {
        let inode = self.inode(node)?;
        let names = self
            .image
            .xattr_names(&inode)
            .map_err(|e| self.reader_error("listxattr", node, e))?;
        let mut out = Vec::new();
        for name in names {
            out.extend_from_slice(&name);
            out.push(0);
        }
        Ok(out)
    }

    /// `getxattr`: the value, or `ENODATA`.
    pub fn getxattr(&self, node: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let inode = self.inode(node)?;
        match self.image.xattr_get(&inode, name) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(FsError(libc::ENODATA)),
            Err(e) => Err(self.reader_error("getxattr", node, e)),
        }
    }

    /// `statfs`, as the kernel driver computes it.
    pub fn statfs(&self) -> StatFs {
        let s = self.image.statfs();
        StatFs {
            blocks: s.blocks,
            files: s.files,
            bsize: s.block_size,
            namelen: NAME_MAX,
        }
    }

    /// The root node id.
    pub fn root(&self) -> u64 {
        ROOT_NODE
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn image(dir: &Path) -> Option<Arc<Image>> {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::write(src.join("hello"), b"hello world\n").unwrap();
        let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(src.join("sub/big"), &big).unwrap();
        for i in 0..300 {
            std::fs::write(src.join("sub/deeper").join(format!("f{i:03}")), [i as u8]).unwrap();
        }
        std::os::unix::fs::symlink("hello", src.join("link")).unwrap();
        let img = dir.join("img.sqfs");
        let ok = Command::new("mksquashfs")
            .arg(&src)
            .arg(&img)
            .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("skipped: mksquashfs not available");
            return None;
        }
        Some(Arc::new(Image::open(&img, &Default::default()).unwrap()))
    }

    #[test]
    fn lookup_read_readdir_readlink_statfs_without_a_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(img) = image(tmp.path()) else { return };
        let opts = FsOptions {
            uid: Some(1000),
            gid: Some(100),
            ..Default::default()
        };
        let fs = SquashFs::new(Arc::clone(&img), "test", opts).unwrap();
        let root = fs.getattr(ROOT_NODE).unwrap();
        assert_eq!(
            (root.kind, root.uid, root.gid),
            (InodeKind::Directory, 1000, 100)
        );
        assert_eq!(root.st_ino, u64::from(img.root().unwrap().inode_number));
        assert_eq!(fs.lookup(ROOT_NODE, b"missing").unwrap(), None);
        assert_eq!(fs.lookup(ROOT_NODE, b".."), Err(FsError(libc::ENOENT)));
        let hello = fs.lookup(ROOT_NODE, b"hello").unwrap().unwrap();
        assert_eq!(hello.size, 12);
        assert_eq!(fs.read(hello.node, 6, 100).unwrap(), b"world\n");
        assert_eq!(fs.read(hello.node, 100, 100).unwrap(), b"");
        assert_eq!(fs.lookup(hello.node, b"x"), Err(FsError(libc::ENOTDIR)));
        let link = fs.lookup(ROOT_NODE, b"link").unwrap().unwrap();
        assert_eq!(fs.readlink(link.node).unwrap(), b"hello");
        assert_eq!(fs.readlink(hello.node), Err(FsError(libc::EINVAL)));
        assert_eq!(
            fs.getxattr(hello.node, b"user.none"),
            Err(FsError(libc::ENODATA))
        );
        assert_eq!(fs.listxattr(hello.node).unwrap(), b"");
        let sub = fs.lookup(ROOT_NODE, b"sub").unwrap().unwrap();
        let big = fs.lookup(sub.node, b"big").unwrap().unwrap();
        let data = fs.read(big.node, 131_000, 300_000).unwrap();
        assert_eq!(data.len(), 269_000);
        assert!(
            data.iter()
                .enumerate()
                .all(|(i, &b)| b == ((131_000 + i as u32) % 251) as u8)
        );
        let s = fs.statfs();
        assert_eq!(
            (s.files, s.bsize, s.namelen),
            (u64::from(img.superblock().inode_count), 131072, 256)
        );

        // readdir resumes exactly where a full buffer stopped.
        let deeper = fs.lookup(sub.node, b"deeper").unwrap().unwrap();
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let mut batch = Vec::new();
            fs.readdir(deeper.node, offset, offset % 2 == 1, &mut |item, _| {
                if batch.len() == 7 {
                    return false;
                }
                batch.push((item.name.to_vec(), item.next_offset));
                true
            })
            .unwrap();
            if batch.is_empty() {
                break;
            }
            offset = batch.last().unwrap().1;
            all.extend(batch.into_iter().map(|(n, _)| n));
        }
        assert_eq!(all.len(), 302, "., .. and 300 files");
        assert_eq!(all[0], b".");
        assert_eq!(all[1], b"..");
        assert_eq!(all[2], b"f000");
        assert_eq!(all[301], b"f299");
    }

    #[test]
    fn subdir_becomes_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(img) = image(tmp.path()) else { return };
        let opts = FsOptions {
            subdir: Some("/sub/".into()),
            ..Default::default()
        };
        let fs = SquashFs::new(Arc::clone(&img), "test", opts).unwrap();
        assert!(fs.lookup(ROOT_NODE, b"big").unwrap().is_some());
        assert!(fs.lookup(ROOT_NODE, b"hello").unwrap().is_none());
        let bad = FsOptions {
            subdir: Some("hello".into()),
            ..Default::default()
        };
        let err = SquashFs::new(Arc::clone(&img), "test", bad).err().unwrap();
        assert!(err.contains("not a directory"), "{err}");
        let missing = FsOptions {
            subdir: Some("nope".into()),
            ..Default::default()
        };
        assert!(SquashFs::new(img, "test", missing).is_err());
    }
}
