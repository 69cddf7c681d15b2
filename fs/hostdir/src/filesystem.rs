//! [`Filesystem`] for [`HostDir`]: each call goes to the `do_*` method that does it.

use std::ffi::OsStr;

use squashbox_vfs::{
    AttrOut, DirVisitor, Entry, Errno, FileHandle, Filesystem, MountPolicy, NodeId, OpenFlags,
    Opened, ReadReply, RenameFlags, Request, Result, SetAttr, StatFs, Whence, XattrData,
};

use crate::HostDir;

impl Filesystem for HostDir {
    fn policy(&self) -> MountPolicy {
        MountPolicy {
            read_only: self.opts.read_only,
            // Every change goes through the host kernel, which drops set-IDs on chown and
            // `security.capability` on writes, truncation and chown; the FUSE adapter drops
            // set-IDs on writes and truncation by unprivileged callers.
            kills_privs: true,
            ..MountPolicy::writable()
        }
    }

    fn destroy(&self) {
        self.faults.summary();
    }

    fn lookup(&self, _req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        self.do_lookup(parent, name)
    }

    fn forget(&self, node: NodeId, nlookup: u64) {
        self.do_forget(node, nlookup);
    }

    fn getattr(&self, _req: &Request, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut> {
        self.do_getattr(node, fh)
    }

    fn setattr(&self, _req: &Request, node: NodeId, set: &SetAttr) -> Result<AttrOut> {
        self.do_setattr(node, set)
    }

    fn readlink(&self, _req: &Request, node: NodeId) -> Result<Vec<u8>> {
        self.do_readlink(node)
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
        self.do_remove(parent, name, 0)
    }

    fn rmdir(&self, _req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        self.do_remove(parent, name, libc::AT_REMOVEDIR)
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

    fn open(&self, _req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        self.do_open(node, flags)
    }

    fn create(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        self.do_create(req, parent, name, mode, flags)
    }

    fn read(
        &self,
        _req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReadReply,
    ) {
        self.answer_read(node, fh, offset, size, reply);
    }

    fn write(
        &self,
        _req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _flags: OpenFlags,
    ) -> Result<u32> {
        self.do_write(node, fh, offset, data)
    }

    fn flush(
        &self,
        _req: &Request,
        _node: NodeId,
        _fh: FileHandle,
        _lock_owner: u64,
    ) -> Result<()> {
        // Nothing happens here on close (descriptors close on release, locks are the
        // kernel's): ENOSYS tells the kernel to stop sending FLUSH.
        Err(Errno::ENOSYS)
    }

    fn fsync(&self, _req: &Request, node: NodeId, fh: FileHandle, datasync: bool) -> Result<()> {
        self.do_fsync(node, fh, datasync, false)
    }

    fn release(
        &self,
        _req: &Request,
        _node: NodeId,
        fh: FileHandle,
        _flags: OpenFlags,
    ) -> Result<()> {
        self.do_release(fh);
        Ok(())
    }

    fn opendir(&self, _req: &Request, node: NodeId, _flags: OpenFlags) -> Result<Opened> {
        self.do_opendir(node)
    }

    fn readdir(
        &self,
        _req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        self.do_readdir(node, fh, offset, plus, visit)
    }

    fn releasedir(&self, _req: &Request, _node: NodeId, fh: FileHandle) -> Result<()> {
        self.do_release(fh);
        Ok(())
    }

    fn fsyncdir(&self, _req: &Request, node: NodeId, fh: FileHandle, datasync: bool) -> Result<()> {
        self.do_fsync(node, fh, datasync, true)
    }

    fn statfs(&self, _req: &Request, _node: NodeId) -> Result<StatFs> {
        self.do_statfs()
    }

    fn setxattr(
        &self,
        _req: &Request,
        node: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.do_setxattr(node, name, value, flags)
    }

    fn getxattr(&self, _req: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        self.do_getxattr(node, name, size)
    }

    fn listxattr(&self, _req: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        self.do_listxattr(node, size)
    }

    fn removexattr(&self, _req: &Request, node: NodeId, name: &OsStr) -> Result<()> {
        self.do_removexattr(node, name)
    }

    fn access(&self, _req: &Request, node: NodeId, mask: i32) -> Result<()> {
        self.do_access(node, mask)
    }

    fn fallocate(
        &self,
        _req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        self.do_fallocate(node, fh, offset, length, mode)
    }

    fn lseek(
        &self,
        _req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: Whence,
    ) -> Result<u64> {
        self.do_lseek(node, fh, offset, whence)
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        node_in: NodeId,
        fh_in: FileHandle,
        offset_in: u64,
        node_out: NodeId,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u32> {
        self.do_copy_file_range(
            node_in, fh_in, offset_in, node_out, fh_out, offset_out, len, flags,
        )
    }
}
