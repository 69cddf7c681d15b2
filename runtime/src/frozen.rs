//! A read-only view of a filesystem that promises the kernel it never changes, so that an
//! overlay stacking it over immutable images stays cacheable (misses cached, pages kept).
//! Used for the skeleton layer: a host directory the runtime fills before the server
//! opens it and never touches again.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use squashbox_vfs::{
    AttrOut, DirVisitor, Entry, FileHandle, Filesystem, MountPolicy, NodeId, OpenFlags, Opened,
    ReadReply, Request, Result, StatFs, Whence, XattrData,
};

/// `inner`, read-only and declared immutable.
pub struct Frozen(pub Arc<dyn Filesystem>);

impl Filesystem for Frozen {
    fn policy(&self) -> MountPolicy {
        MountPolicy {
            read_only: true,
            negative_ttl: Duration::MAX,
            ..self.0.policy()
        }
    }

    fn destroy(&self) {
        self.0.destroy()
    }

    fn lookup(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        self.0.lookup(req, parent, name)
    }

    fn forget(&self, node: NodeId, nlookup: u64) {
        self.0.forget(node, nlookup)
    }

    fn getattr(&self, req: &Request, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut> {
        self.0.getattr(req, node, fh)
    }

    fn readlink(&self, req: &Request, node: NodeId) -> Result<Vec<u8>> {
        self.0.readlink(req, node)
    }

    fn open(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        self.0.open(req, node, flags)
    }

    fn read(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReadReply,
    ) {
        self.0.read(req, node, fh, offset, size, reply)
    }

    fn release(&self, req: &Request, node: NodeId, fh: FileHandle, flags: OpenFlags) -> Result<()> {
        self.0.release(req, node, fh, flags)
    }

    fn opendir(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        self.0.opendir(req, node, flags)
    }

    fn readdir(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        self.0.readdir(req, node, fh, offset, plus, visit)
    }

    fn releasedir(&self, req: &Request, node: NodeId, fh: FileHandle) -> Result<()> {
        self.0.releasedir(req, node, fh)
    }

    fn statfs(&self, req: &Request, node: NodeId) -> Result<StatFs> {
        self.0.statfs(req, node)
    }

    fn getxattr(&self, req: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        self.0.getxattr(req, node, name, size)
    }

    fn listxattr(&self, req: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        self.0.listxattr(req, node, size)
    }

    fn access(&self, req: &Request, node: NodeId, mask: i32) -> Result<()> {
        self.0.access(req, node, mask)
    }

    fn lseek(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: Whence,
    ) -> Result<u64> {
        self.0.lseek(req, node, fh, offset, whence)
    }
}
