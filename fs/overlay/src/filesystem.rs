//! [`Filesystem`] for [`Overlay`]: reads go to the layer holding the object; changes go
//! through `modify` to the upper layer (EROFS without one).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use squashbox_vfs::{
    AttrOut, DirVisitor, Entry, Errno, FileHandle, FileType, Filesystem, MountPolicy, NodeId,
    OpenFlags, Opened, ReadReply, RenameFlags, Request, Result, SetAttr, StatFs, Whence, XattrData,
};

use crate::Overlay;
use crate::handles::Handle;
use crate::layer::{is_private_xattr, no_enosys};
use crate::nodes::Part;

/// How long the kernel may remember a miss in a writable overlay.
const NEGATIVE_TTL: Duration = Duration::from_secs(3600);

impl Filesystem for Overlay {
    fn policy(&self) -> MountPolicy {
        if self.upper.is_some() {
            // The kernel keeps written pages and sends them in large writes (opens for
            // writing reach the upper read-write and without O_APPEND: `open_upper`); set-IDs
            // and capabilities are cleared where the upper clears them.
            // Misses are cached as the kernel's overlay caches them: every change to the
            // layers comes through this mount, and the kernel turns a cached miss into the
            // new entry on create, link, rename and mknod (changing a layer underneath is
            // undefined, as for the kernel's overlay). Import storms are mostly misses.
            return MountPolicy {
                writeback_cache: true,
                kills_privs: self.layers[0].fs.policy().kills_privs,
                negative_ttl: NEGATIVE_TTL,
                ..MountPolicy::writable()
            };
        }
        MountPolicy {
            read_only: true,
            // Layers that never change answer reads by node (`io_target` without a handle),
            // so the kernel may skip OPEN and RELEASE, as for the image served alone.
            no_open: self.all_immutable,
            no_opendir: false,
            writeback_cache: false,
            kills_privs: false,
            negative_ttl: if self.all_immutable {
                Duration::MAX
            } else {
                Duration::ZERO
            },
        }
    }

    fn destroy(&self) {
        for l in &self.layers {
            l.fs.destroy();
        }
        self.faults.summary();
    }

    fn lookup(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        self.do_lookup(req, parent, name)
    }

    fn forget(&self, node: NodeId, nlookup: u64) {
        self.do_forget(node, nlookup);
    }

    fn getattr(&self, req: &Request, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut> {
        // Through an open file (which may outlive its name): ask the layer with its handle.
        if let Some(f) = fh.filter(|f| self.handles.get(*f).is_some()) {
            let n = self.node(node)?;
            let (part, lfh) = self.io_target(req, node, f)?;
            let out = self.layers[part.layer]
                .fs
                .getattr(req, part.node, (lfh.0 != 0).then_some(lfh))
                .map_err(no_enosys)?;
            return Ok(AttrOut {
                attr: self.overlay_attr(node, part.layer, out.attr, n.parts.len() > 1),
                ttl: out.ttl,
            });
        }
        self.do_getattr(req, node)
    }

    fn readlink(&self, req: &Request, node: NodeId) -> Result<Vec<u8>> {
        let top = self.node(node)?.parts[0];
        self.layers[top.layer]
            .fs
            .readlink(req, top.node)
            .map_err(no_enosys)
    }

    fn open(&self, req: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        let part = if flags.writes() || flags.has(libc::O_TRUNC) {
            self.writable_part(req, node)?
        } else {
            self.node(node)?.parts[0]
        };
        let opened = if part.layer == 0 && self.upper.is_some() {
            self.open_upper(flags, |f| self.layers[0].fs.open(req, part.node, f))
        } else {
            self.layers[part.layer].fs.open(req, part.node, flags)
        };
        let (layer_fh, opened) = match opened {
            Ok(o) => (Some(o.fh), o),
            Err(Errno::ENOSYS) => (None, Opened::default()),
            Err(e) => return Err(e),
        };
        let fh = self.handles.insert(Handle {
            part,
            layer_fh,
            listing: Default::default(),
            upgraded: Default::default(),
        });
        Ok(Opened { fh, ..opened })
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
        let (part, lfh) = match self.io_target(req, node, fh) {
            Ok(t) => t,
            Err(e) => return reply.error(e),
        };
        // The layer answers the caller directly, now or from its own threads.
        self.layers[part.layer]
            .fs
            .read(req, part.node, lfh, offset, size, no_enosys_reply(reply));
    }

    fn write(
        &self,
        req: &Request,
        _node: NodeId,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        flags: OpenFlags,
    ) -> Result<u32> {
        self.upper_layer()?;
        let h = self.handles.get(fh).ok_or(Errno::EBADF)?;
        if h.part.layer != 0 {
            return Err(Errno::EBADF);
        }
        self.layers[0]
            .fs
            .write(
                req,
                h.part.node,
                h.layer_fh.unwrap_or_default(),
                offset,
                data,
                flags,
            )
            .map_err(no_enosys)
    }

    fn flush(&self, req: &Request, _node: NodeId, fh: FileHandle, owner: u64) -> Result<()> {
        if let Some(h) = self.handles.get(fh)
            && let Some(lfh) = h.layer_fh
            && h.part.layer == 0
            && self.upper.is_some()
        {
            // ENOSYS from the upper (nothing to do on close) reaches the kernel, which then
            // stops sending FLUSH: one round trip less per close.
            return self.layers[0].fs.flush(req, h.part.node, lfh, owner);
        }
        if self.upper.is_none() {
            // Nothing is ever written back: the kernel stops sending FLUSH on close.
            return Err(Errno::ENOSYS);
        }
        Ok(())
    }

    fn fsync(&self, req: &Request, _node: NodeId, fh: FileHandle, datasync: bool) -> Result<()> {
        if let Some(h) = self.handles.get(fh)
            && let Some(lfh) = h.layer_fh
            && h.part.layer == 0
            && self.upper.is_some()
        {
            return match self.layers[0].fs.fsync(req, h.part.node, lfh, datasync) {
                Err(Errno::ENOSYS) => Ok(()),
                r => r,
            };
        }
        Ok(())
    }

    fn fallocate(
        &self,
        req: &Request,
        _node: NodeId,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        self.upper_layer()?;
        let h = self.handles.get(fh).ok_or(Errno::EBADF)?;
        if h.part.layer != 0 {
            return Err(Errno::EBADF);
        }
        match self.layers[0].fs.fallocate(
            req,
            h.part.node,
            h.layer_fh.unwrap_or_default(),
            offset,
            length,
            mode,
        ) {
            Err(Errno::ENOSYS) => Err(Errno::EOPNOTSUPP),
            r => r,
        }
    }

    fn copy_file_range(
        &self,
        req: &Request,
        _node_in: NodeId,
        fh_in: FileHandle,
        offset_in: u64,
        _node_out: NodeId,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u32> {
        self.upper_layer()?;
        let (Some(i), Some(o)) = (self.handles.get(fh_in), self.handles.get(fh_out)) else {
            return Err(Errno::EBADF);
        };
        if i.part.layer != 0 || o.part.layer != 0 {
            // Across layers: the kernel copies through the page cache instead.
            return Err(Errno::EXDEV);
        }
        match self.layers[0].fs.copy_file_range(
            req,
            i.part.node,
            i.layer_fh.unwrap_or_default(),
            offset_in,
            o.part.node,
            o.layer_fh.unwrap_or_default(),
            offset_out,
            len,
            flags,
        ) {
            Err(Errno::ENOSYS) | Err(Errno::EOPNOTSUPP) => Err(Errno::EXDEV),
            r => r,
        }
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
        if mode & libc::S_IFMT == libc::S_IFCHR && rdev == 0 {
            // A 0/0 character device is a whiteout here: it could never be seen (the
            // kernel's overlay answers EPERM too).
            return Err(Errno::EPERM);
        }
        let mut make = |fs: &dyn Filesystem, dir: NodeId, n: &OsStr| {
            fs.mknod(req, dir, n, mode, rdev).map(|e| (e, None))
        };
        Ok(self.create_with(req, parent, name, false, &mut make)?.0)
    }

    fn mkdir(&self, req: &Request, parent: NodeId, name: &OsStr, mode: u32) -> Result<Entry> {
        let mut make = |fs: &dyn Filesystem, dir: NodeId, n: &OsStr| {
            fs.mkdir(req, dir, n, mode).map(|e| (e, None))
        };
        Ok(self.create_with(req, parent, name, true, &mut make)?.0)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<Entry> {
        let mut make = |fs: &dyn Filesystem, dir: NodeId, n: &OsStr| {
            fs.symlink(req, dir, n, target).map(|e| (e, None))
        };
        Ok(self.create_with(req, parent, name, false, &mut make)?.0)
    }

    fn create(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        let mut make = |fs: &dyn Filesystem, dir: NodeId, n: &OsStr| {
            self.open_upper(flags, |f| fs.create(req, dir, n, mode, f))
                .map(|(e, o)| (e, Some(o)))
        };
        let (entry, opened) = self.create_with(req, parent, name, false, &mut make)?;
        let opened = opened.ok_or(Errno::EIO)?;
        let part = self.node(entry.node)?.parts[0];
        let fh = self.handles.insert(Handle {
            part,
            layer_fh: Some(opened.fh),
            listing: Default::default(),
            upgraded: Default::default(),
        });
        Ok((entry, Opened { fh, ..opened }))
    }

    fn unlink(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        self.do_remove(req, parent, name, false)
    }

    fn rmdir(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<()> {
        self.do_remove(req, parent, name, true)
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
        self.do_rename(req, parent, name, new_parent, new_name, flags)
    }

    fn link(
        &self,
        req: &Request,
        node: NodeId,
        new_parent: NodeId,
        new_name: &OsStr,
    ) -> Result<Entry> {
        self.do_link(req, node, new_parent, new_name)
    }

    fn setxattr(
        &self,
        req: &Request,
        node: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.do_setxattr(req, node, name, Some((value, flags)))
    }

    fn removexattr(&self, req: &Request, node: NodeId, name: &OsStr) -> Result<()> {
        self.do_setxattr(req, node, name, None)
    }

    fn release(
        &self,
        req: &Request,
        _node: NodeId,
        fh: FileHandle,
        flags: OpenFlags,
    ) -> Result<()> {
        if let Some(h) = self.handles.remove(fh) {
            if let Some((up, Some(ufh))) = h.upgraded.lock().take() {
                let ro = OpenFlags(libc::O_RDONLY);
                let _ = self.layers[0].fs.release(req, up.node, ufh, ro);
            }
            if let Some(lfh) = h.layer_fh {
                let _ = self.layers[h.part.layer]
                    .fs
                    .release(req, h.part.node, lfh, flags);
            }
        }
        Ok(())
    }

    fn opendir(&self, _req: &Request, node: NodeId, _flags: OpenFlags) -> Result<Opened> {
        let n = self.node(node)?;
        if n.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let fh = self.handles.insert(Handle {
            part: n.parts[0],
            layer_fh: None,
            listing: Default::default(),
            upgraded: Default::default(),
        });
        Ok(Opened {
            fh,
            keep_cache: self.all_immutable,
            cache_dir: self.all_immutable,
            ..Opened::default()
        })
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
        self.do_readdir(req, node, fh, offset, plus, visit)
    }

    fn releasedir(&self, _req: &Request, _node: NodeId, fh: FileHandle) -> Result<()> {
        self.handles.remove(fh);
        Ok(())
    }

    fn fsyncdir(&self, _req: &Request, _node: NodeId, _fh: FileHandle, _ds: bool) -> Result<()> {
        Ok(())
    }

    fn statfs(&self, req: &Request, _node: NodeId) -> Result<StatFs> {
        match self.layers[0].fs.statfs(req, self.layers[0].root) {
            Ok(s) => Ok(s),
            Err(Errno::ENOSYS) => Ok(StatFs {
                bsize: 4096,
                frsize: 4096,
                namelen: 255,
                ..StatFs::default()
            }),
            Err(e) => Err(e),
        }
    }

    fn getxattr(&self, req: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        if is_private_xattr(name.as_bytes()) {
            return Err(Errno::ENODATA);
        }
        let top = self.node(node)?.parts[0];
        match self.layers[top.layer]
            .fs
            .getxattr(req, top.node, name, size)
        {
            Err(Errno::ENOSYS) => Err(Errno::EOPNOTSUPP),
            r => r,
        }
    }

    fn listxattr(&self, req: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        let top = self.node(node)?.parts[0];
        let fs = &self.layers[top.layer].fs;
        let mut list = Vec::new();
        for _attempt in 0..4 {
            let want = match fs.listxattr(req, top.node, 0) {
                Ok(XattrData::Size(n)) => n,
                Ok(XattrData::Data(d)) => u32::try_from(d.len()).unwrap_or(u32::MAX),
                Err(Errno::ENOSYS) | Err(Errno::EOPNOTSUPP) => 0,
                Err(e) => return Err(e),
            };
            if want == 0 {
                break;
            }
            match fs.listxattr(req, top.node, want) {
                Ok(XattrData::Data(d)) => {
                    list = d;
                    break;
                }
                Ok(XattrData::Size(_)) => return Err(Errno::EIO),
                // Grew between the two calls: ask again.
                Err(Errno::ERANGE) => continue,
                Err(e) => return Err(no_enosys(e)),
            }
        }
        let names = list
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty() && !is_private_xattr(n));
        XattrData::names(names, size)
    }

    fn access(&self, req: &Request, node: NodeId, mask: i32) -> Result<()> {
        if mask & libc::W_OK != 0 && self.upper.is_none() {
            return Err(Errno::EROFS);
        }
        let top = self.node(node)?.parts[0];
        // A lower object is written through its upper copy: ask the lower about the rest.
        let mask = if top.layer == 0 {
            mask
        } else {
            mask & !libc::W_OK
        };
        match self.layers[top.layer].fs.access(req, top.node, mask) {
            Err(Errno::ENOSYS) => Ok(()),
            r => r,
        }
    }

    fn lseek(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: Whence,
    ) -> Result<u64> {
        let (part, lfh) = self.io_target(req, node, fh)?;
        let fs = &self.layers[part.layer].fs;
        match fs.lseek(req, part.node, lfh, offset, whence) {
            Err(Errno::ENOSYS) => {
                // The layer knows no holes: all of the file is data.
                let size = fs
                    .getattr(req, part.node, None)
                    .map_err(no_enosys)?
                    .attr
                    .size;
                match whence {
                    _ if offset >= size => Err(Errno::ENXIO),
                    Whence::Data => Ok(offset),
                    Whence::Hole => Ok(size),
                    Whence::Other(_) => Err(Errno::EINVAL),
                }
            }
            r => r,
        }
    }
}

impl Overlay {
    /// Open (or create) an upper file with `open`. Under the writeback cache
    /// ([`MountPolicy::writeback_cache`]) the kernel reads the pages around partial writes
    /// through any handle that writes, and places appends itself: a write-only open becomes
    /// read-write (kept write-only where the upper refuses reading) and `O_APPEND` is dropped.
    fn open_upper<T>(&self, flags: OpenFlags, open: impl Fn(OpenFlags) -> Result<T>) -> Result<T> {
        if !flags.writes() {
            return open(flags);
        }
        let plain = OpenFlags(flags.0 & !libc::O_APPEND);
        let rw = OpenFlags((plain.0 & !libc::O_ACCMODE) | libc::O_RDWR);
        match open(rw) {
            Err(Errno::EACCES) if rw != plain => open(plain),
            r => r,
        }
    }

    /// Where reads of `node` through `fh` go: the handle's layer object, or, once a file
    /// opened in a lower layer has been copied up, its upper copy (opened on first use), so
    /// every open sees the data written since.
    fn io_target(&self, req: &Request, node: NodeId, fh: FileHandle) -> Result<(Part, FileHandle)> {
        let Some(h) = self.handles.get(fh) else {
            return Ok((self.node(node)?.parts[0], FileHandle(0)));
        };
        if h.part.layer == 0 || self.upper.is_none() {
            return Ok((h.part, h.layer_fh.unwrap_or_default()));
        }
        let mut up = h.upgraded.lock();
        if let Some((part, ufh)) = *up {
            return Ok((part, ufh.unwrap_or_default()));
        }
        let now = self.node(node).map(|n| n.parts[0]);
        match now {
            Ok(part) if part.layer == 0 => {
                let ufh = match self.layers[0]
                    .fs
                    .open(req, part.node, OpenFlags(libc::O_RDONLY))
                {
                    Ok(o) => Some(o.fh),
                    Err(Errno::ENOSYS) => None,
                    Err(e) => return Err(e),
                };
                *up = Some((part, ufh));
                Ok((part, ufh.unwrap_or_default()))
            }
            _ => Ok((h.part, h.layer_fh.unwrap_or_default())),
        }
    }
}

/// Wrap `reply` so a layer's ENOSYS reaches the caller as EIO.
fn no_enosys_reply(reply: ReadReply) -> ReadReply {
    ReadReply::new(move |r| match r {
        Ok(data) => reply.data(data),
        Err(e) => reply.error(no_enosys(e)),
    })
}
