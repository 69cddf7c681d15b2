//! The [`Filesystem`] trait.

use std::ffi::OsStr;

use crate::attr::{AttrOut, Entry, NodeId, SetAttr, StatFs};
use crate::dir::DirVisitor;
use crate::errno::{Errno, Result};
use crate::open::{FileHandle, OpenFlags, Opened, RenameFlags, Whence};
use crate::policy::MountPolicy;
use crate::reply::ReadReply;
use crate::request::Request;
use crate::xattr::XattrData;

/// A filesystem squashbox can serve over FUSE or stack under an overlay.
///
/// Every method takes `&self` and may be called from many threads at once. Node ids come
/// from `lookup` (and the other calls that return an [`Entry`]); [`crate::ROOT_ID`] is the
/// root and is never forgotten.
///
/// Defaults: operations that would change the filesystem answer `EROFS`, the others `ENOSYS`,
/// so a read-only filesystem implements only the read half. The kernel remembers an `ENOSYS`
/// for the whole mount for some operations (xattrs, fsync, flush, lseek, fallocate,
/// copy_file_range, rename flags, open/opendir with NO_OPEN), so a filesystem that composes
/// others, like the overlay, must never pass a layer's `ENOSYS` up as its own answer.
#[allow(unused_variables)]
pub trait Filesystem: Send + Sync {
    /// What the kernel may cache for the whole mount.
    fn policy(&self) -> MountPolicy {
        MountPolicy::writable()
    }

    /// The mount is going away: write back what is pending. May be called more than once
    /// (on a signal, then again when the session ends), so it must be idempotent.
    fn destroy(&self) {}

    /// Find `name` in directory `parent`. `Ok(None)`: it does not exist (the server may let
    /// the kernel cache the miss for [`MountPolicy::negative_ttl`]).
    fn lookup(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>>;

    /// The kernel dropped `nlookup` references to `node` (lookups it was given).
    fn forget(&self, node: NodeId, nlookup: u64) {}

    /// The attributes of `node` (`fh` when the call came through an open file).
    fn getattr(&self, req: &Request, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut>;

    /// Change mode, owner, size or times of `node`.
    fn setattr(&self, req: &Request, node: NodeId, set: &SetAttr) -> Result<AttrOut> {
        Err(Errno::EROFS)
    }

    /// The target of symlink `node`.
    fn readlink(&self, req: &Request, node: NodeId) -> Result<Vec<u8>> {
        Err(Errno::ENOSYS)
    }

    /// Create a node of any non-directory type (`mode` includes the type bits; `rdev` for
    /// devices). The caller's umask is in `req`.
    fn mknod(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    /// Create a directory.
    fn mkdir(&self, req: &Request, parent: NodeId, name: &OsStr, mode: u32) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    /// Remove a non-directory entry.
    fn unlink(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }

    /// Remove an empty directory.
    fn rmdir(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }

    /// Create symlink `name` pointing at `target`.
    fn symlink(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    /// Rename, honouring NOREPLACE, EXCHANGE and WHITEOUT; a flag the filesystem cannot honour
    /// is EINVAL, never silently a plain rename.
    fn rename(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        Err(Errno::EROFS)
    }

    /// Make a hard link to `node` as `new_name` in `new_parent`.
    fn link(
        &self,
        req: &Request,
        node: NodeId,
        new_parent: NodeId,
        new_name: &OsStr,
    ) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    /// Open file `node`. A filesystem that keeps no per-open state may answer `ENOSYS`; the
    /// server then treats opens as stateless (and, where the kernel allows, stops sending
    /// them).
    fn open(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        Err(Errno::ENOSYS)
    }

    /// Create and open a regular file (`mode` includes the type bits).
    fn create(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        Err(Errno::EROFS)
    }

    /// Read up to `size` bytes at `offset` (short only at end of file), answering through
    /// `reply` now or later from another thread.
    fn read(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReadReply,
    ) {
        reply.error(Errno::ENOSYS)
    }

    /// Write `data` at `offset`; returns the bytes written.
    fn write(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        flags: OpenFlags,
    ) -> Result<u32> {
        Err(Errno::EROFS)
    }

    /// `close` of one descriptor of an open (may come several times per open).
    fn flush(&self, req: &Request, node: NodeId, fh: FileHandle, lock_owner: u64) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Make the file's data (and, unless `datasync`, its metadata) durable.
    fn fsync(&self, req: &Request, node: NodeId, fh: FileHandle, datasync: bool) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// The last close of an open.
    fn release(&self, req: &Request, node: NodeId, fh: FileHandle, flags: OpenFlags) -> Result<()> {
        Ok(())
    }

    /// Open directory `node` (see [`Filesystem::open`] for `ENOSYS`).
    fn opendir(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        Err(Errno::ENOSYS)
    }

    /// List directory `node` from `offset` (0: the start; otherwise a `next_offset` this
    /// listing gave). "." and ".." come first. With `plus`, each other entry comes with its
    /// [`Entry`], which counts as a lookup when the visitor takes it.
    fn readdir(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// The last close of an opened directory.
    fn releasedir(&self, req: &Request, node: NodeId, fh: FileHandle) -> Result<()> {
        Ok(())
    }

    /// Make the directory durable.
    fn fsyncdir(&self, req: &Request, node: NodeId, fh: FileHandle, datasync: bool) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Filesystem statistics.
    fn statfs(&self, req: &Request, node: NodeId) -> Result<StatFs> {
        Err(Errno::ENOSYS)
    }

    /// Set an extended attribute (`flags`: XATTR_CREATE / XATTR_REPLACE).
    fn setxattr(
        &self,
        req: &Request,
        node: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        Err(Errno::EROFS)
    }

    /// Get an extended attribute: its size when `size` is 0, ERANGE when it does not fit,
    /// ENODATA when there is none (see [`XattrData::fit`]).
    fn getxattr(&self, req: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        Err(Errno::ENOSYS)
    }

    /// List extended attribute names (NUL-terminated), under the same size rules.
    fn listxattr(&self, req: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        Err(Errno::ENOSYS)
    }

    /// Remove an extended attribute.
    fn removexattr(&self, req: &Request, node: NodeId, name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }

    /// `access(2)` (only sent without `default_permissions`).
    fn access(&self, req: &Request, node: NodeId, mask: i32) -> Result<()> {
        Err(Errno::ENOSYS)
    }

    /// Allocate or punch a range (`mode`: FALLOC_FL_*).
    fn fallocate(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        Err(Errno::EROFS)
    }

    /// SEEK_DATA / SEEK_HOLE.
    fn lseek(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: Whence,
    ) -> Result<u64> {
        Err(Errno::ENOSYS)
    }

    /// Copy `len` bytes between two open files without passing them through the caller.
    #[allow(clippy::too_many_arguments)]
    fn copy_file_range(
        &self,
        req: &Request,
        node_in: NodeId,
        fh_in: FileHandle,
        offset_in: u64,
        node_out: NodeId,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u32> {
        Err(Errno::EROFS)
    }
}
