//! How owners and link counts are shown: [`IdMapped`] wraps any [`Filesystem`] (the overlay,
//! as fuse-overlayfs's `squash_to_root`, `squash_to_uid=`, `squash_to_gid=`, `uidmapping=`,
//! `gidmapping=` and `static_nlink` options ask) and rewrites what it reports and what it is
//! asked.
//!
//! - A mapping (`uidmapping=C:H:N[:C:H:N...]`, as in `/proc/PID/uid_map`) shows an owner `H+i`
//!   stored in the layers as `C+i`; an owner no range covers is shown as 65534 (the kernel's
//!   overflow id). The callers' ids, and the owners `chown` asks for, go the other way
//!   (container to host) before they reach the layers; an id no range covers is refused
//!   with EINVAL in `chown`, and passed unchanged as a caller's id.
//! - Squashing (`squash_to_root`, `squash_to_uid=N`, `squash_to_gid=N`) shows every owner
//!   (or group) as the one id, after any mapping; what is created keeps the server's usual
//!   owner, and `chown` to the squashed id itself changes nothing.
//! - `static_nlink` shows every directory with `st_nlink` 1.

use std::ffi::OsStr;
use std::sync::Arc;

use squashbox_vfs::{
    Attr, AttrOut, DirVisitor, Entry, Errno, FileHandle, FileType, Filesystem, MountPolicy, NodeId,
    OpenFlags, Opened, ReadReply, RenameFlags, Request, Result, SetAttr, StatFs, Whence, XattrData,
};

/// The id shown for an owner no mapping covers.
pub const OVERFLOW_ID: u32 = 65534;

/// One range of a mapping: ids `container..container+count` are stored as
/// `host..host+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id as shown.
    pub container: u32,
    /// First id as stored.
    pub host: u32,
    /// How many ids.
    pub count: u32,
}

/// A list of ranges (empty: ids shown as stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap(pub Vec<IdRange>);

impl IdMap {
    /// Parse `C:H:N[:C:H:N...]` (fuse-overlayfs's `uidmapping=` form). Errors name the
    /// offending text.
    pub fn parse(spec: &str) -> std::result::Result<IdMap, String> {
        let nums = spec
            .split(':')
            .map(|n| n.trim().parse::<u32>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| format!("invalid id mapping {spec:?}: expected C:H:N[:C:H:N...]"))?;
        if nums.is_empty() || nums.len() % 3 != 0 {
            return Err(format!(
                "invalid id mapping {spec:?}: expected C:H:N[:C:H:N...]"
            ));
        }
        let ranges = nums
            .chunks(3)
            .map(|c| IdRange {
                container: c[0],
                host: c[1],
                count: c[2],
            })
            .collect();
        Ok(IdMap(ranges))
    }

    /// Whether there is no mapping.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The id shown for a stored `host` id (`OVERFLOW_ID` when no range covers it).
    pub fn to_container(&self, host: u32) -> u32 {
        if self.0.is_empty() {
            return host;
        }
        self.0
            .iter()
            .find(|r| host >= r.host && host - r.host < r.count)
            .and_then(|r| r.container.checked_add(host - r.host))
            .unwrap_or(OVERFLOW_ID)
    }

    /// The stored id for a shown `container` id (`None` when no range covers it).
    pub fn to_host(&self, container: u32) -> Option<u32> {
        if self.0.is_empty() {
            return Some(container);
        }
        self.0
            .iter()
            .find(|r| container >= r.container && container - r.container < r.count)
            .and_then(|r| r.host.checked_add(container - r.container))
    }
}

/// What [`IdMapped`] rewrites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdOptions {
    /// `uidmapping=`.
    pub uid_map: IdMap,
    /// `gidmapping=`.
    pub gid_map: IdMap,
    /// Show every owner as this uid (`squash_to_root`: 0, `squash_to_uid=N`).
    pub squash_uid: Option<u32>,
    /// Show every group as this gid (`squash_to_root`: 0, `squash_to_gid=N`).
    pub squash_gid: Option<u32>,
    /// Show every directory with `st_nlink` 1.
    pub static_nlink: bool,
}

impl IdOptions {
    /// Whether nothing is rewritten (no wrapper needed).
    pub fn is_identity(&self) -> bool {
        *self == IdOptions::default()
    }
}

/// A filesystem shown through [`IdOptions`].
pub struct IdMapped {
    inner: Arc<dyn Filesystem>,
    opts: IdOptions,
}

impl IdMapped {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Filesystem>, opts: IdOptions) -> IdMapped {
        IdMapped { inner, opts }
    }

    fn attr(&self, a: &mut Attr) {
        a.uid = self
            .opts
            .squash_uid
            .unwrap_or_else(|| self.opts.uid_map.to_container(a.uid));
        a.gid = self
            .opts
            .squash_gid
            .unwrap_or_else(|| self.opts.gid_map.to_container(a.gid));
        if self.opts.static_nlink && a.kind == FileType::Directory {
            a.nlink = 1;
        }
    }

    fn entry(&self, mut e: Entry) -> Entry {
        self.attr(&mut e.attr);
        e
    }

    fn out(&self, mut o: AttrOut) -> AttrOut {
        self.attr(&mut o.attr);
        o
    }

    /// The request as the layers should see it: the caller's ids mapped to stored ids.
    fn req(&self, r: &Request) -> Request {
        Request {
            uid: self.opts.uid_map.to_host(r.uid).unwrap_or(r.uid),
            gid: self.opts.gid_map.to_host(r.gid).unwrap_or(r.gid),
            ..*r
        }
    }
}

impl Filesystem for IdMapped {
    fn policy(&self) -> MountPolicy {
        self.inner.policy()
    }
    fn destroy(&self) {
        self.inner.destroy()
    }
    fn lookup(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        Ok(self
            .inner
            .lookup(&self.req(req), parent, name)?
            .map(|e| self.entry(e)))
    }
    fn forget(&self, node: NodeId, nlookup: u64) {
        self.inner.forget(node, nlookup)
    }
    fn getattr(&self, req: &Request, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut> {
        Ok(self.out(self.inner.getattr(&self.req(req), node, fh)?))
    }
    fn setattr(&self, req: &Request, node: NodeId, set: &SetAttr) -> Result<AttrOut> {
        let mut set = *set;
        // chown to the squashed id is what every file already shows: nothing to change.
        if set.uid.is_some() && set.uid == self.opts.squash_uid {
            set.uid = None;
        } else if let Some(u) = set.uid {
            set.uid = Some(self.opts.uid_map.to_host(u).ok_or(Errno::EINVAL)?);
        }
        if set.gid.is_some() && set.gid == self.opts.squash_gid {
            set.gid = None;
        } else if let Some(g) = set.gid {
            set.gid = Some(self.opts.gid_map.to_host(g).ok_or(Errno::EINVAL)?);
        }
        Ok(self.out(self.inner.setattr(&self.req(req), node, &set)?))
    }
    fn readlink(&self, req: &Request, node: NodeId) -> Result<Vec<u8>> {
        self.inner.readlink(&self.req(req), node)
    }
    fn mknod(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        let e = self.inner.mknod(&self.req(req), parent, name, mode, rdev)?;
        Ok(self.entry(e))
    }
    fn mkdir(&self, req: &Request, parent: NodeId, name: &OsStr, mode: u32) -> Result<Entry> {
        Ok(self.entry(self.inner.mkdir(&self.req(req), parent, name, mode)?))
    }
    fn unlink(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        self.inner.unlink(&self.req(req), parent, name)
    }
    fn rmdir(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        self.inner.rmdir(&self.req(req), parent, name)
    }
    fn symlink(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<Entry> {
        Ok(self.entry(self.inner.symlink(&self.req(req), parent, name, target)?))
    }
    fn rename(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        self.inner
            .rename(&self.req(req), parent, name, new_parent, new_name, flags)
    }
    fn link(
        &self,
        req: &Request,
        node: NodeId,
        new_parent: NodeId,
        new_name: &OsStr,
    ) -> Result<Entry> {
        Ok(self.entry(
            self.inner
                .link(&self.req(req), node, new_parent, new_name)?,
        ))
    }
    fn open(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        self.inner.open(&self.req(req), node, flags)
    }
    fn create(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        let (e, o) = self
            .inner
            .create(&self.req(req), parent, name, mode, flags)?;
        Ok((self.entry(e), o))
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
        self.inner
            .read(&self.req(req), node, fh, offset, size, reply)
    }
    fn write(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        flags: OpenFlags,
    ) -> Result<u32> {
        self.inner
            .write(&self.req(req), node, fh, offset, data, flags)
    }
    fn flush(&self, req: &Request, node: NodeId, fh: FileHandle, lock_owner: u64) -> Result<()> {
        self.inner.flush(&self.req(req), node, fh, lock_owner)
    }
    fn fsync(&self, req: &Request, node: NodeId, fh: FileHandle, datasync: bool) -> Result<()> {
        self.inner.fsync(&self.req(req), node, fh, datasync)
    }
    fn release(&self, req: &Request, node: NodeId, fh: FileHandle, flags: OpenFlags) -> Result<()> {
        self.inner.release(&self.req(req), node, fh, flags)
    }
    fn opendir(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        self.inner.opendir(&self.req(req), node, flags)
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
        let mut mapped = |item: squashbox_vfs::DirItem<'_>, e: Option<&Entry>| match e {
            Some(e) => visit(item, Some(&self.entry(*e))),
            None => visit(item, None),
        };
        self.inner
            .readdir(&self.req(req), node, fh, offset, plus, &mut mapped)
    }
    fn releasedir(&self, req: &Request, node: NodeId, fh: FileHandle) -> Result<()> {
        self.inner.releasedir(&self.req(req), node, fh)
    }
    fn fsyncdir(&self, req: &Request, node: NodeId, fh: FileHandle, datasync: bool) -> Result<()> {
        self.inner.fsyncdir(&self.req(req), node, fh, datasync)
    }
    fn statfs(&self, req: &Request, node: NodeId) -> Result<StatFs> {
        self.inner.statfs(&self.req(req), node)
    }
    fn setxattr(
        &self,
        req: &Request,
        node: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.inner
            .setxattr(&self.req(req), node, name, value, flags)
    }
    fn getxattr(&self, req: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        self.inner.getxattr(&self.req(req), node, name, size)
    }
    fn listxattr(&self, req: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        self.inner.listxattr(&self.req(req), node, size)
    }
    fn removexattr(&self, req: &Request, node: NodeId, name: &OsStr) -> Result<()> {
        self.inner.removexattr(&self.req(req), node, name)
    }
    fn access(&self, req: &Request, node: NodeId, mask: i32) -> Result<()> {
        self.inner.access(&self.req(req), node, mask)
    }
    fn fallocate(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        self.inner
            .fallocate(&self.req(req), node, fh, offset, length, mode)
    }
    fn lseek(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: Whence,
    ) -> Result<u64> {
        self.inner.lseek(&self.req(req), node, fh, offset, whence)
    }
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
        self.inner.copy_file_range(
            &self.req(req),
            node_in,
            fh_in,
            offset_in,
            node_out,
            fh_out,
            offset_out,
            len,
            flags,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_goes_both_ways_and_overflows() {
        let m = IdMap::parse("0:1000:1:1:100000:65536").unwrap();
        assert_eq!(m.to_container(1000), 0);
        assert_eq!(m.to_container(100_000), 1);
        assert_eq!(m.to_container(165_535), 65536);
        assert_eq!(m.to_container(165_536), OVERFLOW_ID);
        assert_eq!(m.to_container(0), OVERFLOW_ID);
        assert_eq!(m.to_host(0), Some(1000));
        assert_eq!(m.to_host(5), Some(100_004));
        assert_eq!(m.to_host(70_000), None);
        assert!(IdMap::parse("0:1000").is_err());
        assert!(IdMap::parse("a:b:c").is_err());
        assert_eq!(IdMap::default().to_container(7), 7);
    }
}
