//! The upper layer: finding its directories, whiteouts and opaque markers written there, and
//! copy-up.
//!
//! Copy-up of a lower object builds it in the work directory under a temporary name (data,
//! then owner, mode, times and xattrs) and renames it into the upper copy of its parent, so
//! the upper never shows a half-made object; missing parents are copied up first. The owner
//! is set when the upper filesystem lets us (otherwise the upper's own owner stays). The
//! overlay inode number is kept across copy-up, and across remounts for files and
//! directories through the attribute `<ns>squashbox.ino` (`ns` = `trusted.overlay.` as
//! root, `user.overlay.` otherwise; both namespaces are hidden by overlays).

use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicU64, Ordering};

use squashbox_vfs::{
    Attr, Entry, Errno, FileHandle, FileType, Filesystem, NodeId, OpenFlags, ROOT_ID, ReadReply,
    Request, Result, SetAttr, TimeSet, Whence, XattrData,
};

use crate::Overlay;
use crate::layer::{Layer, is_private_xattr, no_enosys, whiteout_name};
use crate::nodes::{Node, Part};

/// Temporary names in the work directory start with this.
pub const TMP_PREFIX: &str = "#squashbox-";
/// Name (after the namespace) of the attribute holding a copied-up object's inode number.
pub const INO_XATTR: &str = "squashbox.ino";
/// Bytes copied per read/write during copy-up.
const COPY_CHUNK: u32 = 1 << 20;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name for the work directory.
pub fn tmp_name() -> OsString {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    OsString::from(format!("{TMP_PREFIX}{}-{n}", std::process::id()))
}

/// The directory at `path` (`/`-separated, from the root) in `fs`; its lookup is kept.
pub fn find_dir(fs: &dyn Filesystem, req: &Request, path: &str) -> Result<NodeId> {
    let mut node = ROOT_ID;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let e = fs
            .lookup(req, node, OsStr::new(part))
            .map_err(no_enosys)?
            .ok_or(Errno::ENOENT)?;
        if e.attr.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        node = e.node;
    }
    Ok(node)
}

/// `trusted.overlay.` where the upper filesystem lets us write it (root), else
/// `user.overlay.`.
pub fn xattr_namespace(fs: &dyn Filesystem, req: &Request, work: NodeId) -> &'static str {
    let probe = OsStr::new("trusted.overlay.squashbox-probe");
    if fs.setxattr(req, work, probe, b"1", 0).is_ok() {
        let _ = fs.removexattr(req, work, probe);
        "trusted.overlay."
    } else {
        "user.overlay."
    }
}

fn os(s: String) -> OsString {
    OsString::from(s)
}

impl Overlay {
    /// The upper layer, or EROFS without one.
    pub(crate) fn upper_layer(&self) -> Result<&Layer> {
        match self.upper {
            Some(_) => Ok(&self.layers[0]),
            None => Err(Errno::EROFS),
        }
    }

    fn work(&self) -> NodeId {
        self.upper.as_ref().map_or(ROOT_ID, |u| u.work)
    }

    fn ns(&self) -> &'static str {
        self.upper.as_ref().map_or("user.overlay.", |u| u.xattr_ns)
    }

    /// Remove what an earlier run left in the work directory.
    pub(crate) fn clean_work(&self) {
        let Ok(upper) = self.upper_layer() else {
            return;
        };
        let req = Request::root();
        let Ok(list) = upper.list(&req, self.work()) else {
            return;
        };
        for l in list {
            if !l.name.to_string_lossy().starts_with(TMP_PREFIX) {
                continue;
            }
            let r = if l.kind == FileType::Directory {
                self.clear_dir(&req, self.work(), &l.name)
                    .and_then(|()| upper.fs.rmdir(&req, self.work(), &l.name))
            } else {
                upper.fs.unlink(&req, self.work(), &l.name)
            };
            if let Err(e) = r {
                self.faults.warn(
                    "leftover in the work directory",
                    0,
                    &format!("{:?}: {e}", l.name),
                );
            }
        }
    }

    /// Remove the whiteouts in upper directory `name` of `dir` (a directory that looks empty
    /// may still hold them); anything else is ENOTEMPTY.
    pub(crate) fn clear_dir(&self, req: &Request, dir: NodeId, name: &OsStr) -> Result<()> {
        let upper = self.upper_layer()?;
        let Some(e) = upper.lookup(req, dir, name)? else {
            return Ok(());
        };
        let result = (|| {
            for l in upper.list(req, e.node)? {
                let removable = crate::layer::is_whiteout_name(&l.name)
                    || (l.kind == FileType::CharDevice
                        && upper.whiteout_at(req, e.node, &l.name)? == Some(true));
                if !removable {
                    return Err(Errno::ENOTEMPTY);
                }
                upper.fs.unlink(req, e.node, &l.name).map_err(no_enosys)?;
            }
            Ok(())
        })();
        upper.forget(e.node);
        result
    }

    /// Write a whiteout for `name` in upper directory `dir`: a 0/0 device, or a `.wh.NAME`
    /// file where mknod is refused.
    pub(crate) fn make_whiteout(&self, req: &Request, dir: NodeId, name: &OsStr) -> Result<()> {
        let upper = self.upper_layer()?;
        match upper.fs.mknod(req, dir, name, libc::S_IFCHR, 0) {
            Ok(e) => {
                upper.forget(e.node);
                Ok(())
            }
            Err(Errno::EPERM) | Err(Errno::EOPNOTSUPP) | Err(Errno::EINVAL) => {
                let e = upper
                    .fs
                    .mknod(req, dir, &whiteout_name(name), libc::S_IFREG, 0)
                    .map_err(no_enosys)?;
                upper.forget(e.node);
                Ok(())
            }
            Err(e) => Err(no_enosys(e)),
        }
    }

    /// Mark upper directory `node` opaque.
    pub(crate) fn set_opaque(&self, req: &Request, node: NodeId) -> Result<()> {
        let name = os(format!("{}opaque", self.ns()));
        self.upper_layer()?
            .fs
            .setxattr(req, node, &name, b"y", 0)
            .map_err(no_enosys)
    }

    /// The inode number recorded on upper object `node`, if any.
    pub(crate) fn recorded_ino(&self, req: &Request, node: NodeId) -> Option<u64> {
        let name = os(format!("{}{INO_XATTR}", self.ns()));
        match self.layers[0].fs.getxattr(req, node, &name, 32) {
            Ok(XattrData::Data(v)) => u64::from_str_radix(std::str::from_utf8(&v).ok()?, 16).ok(),
            _ => None,
        }
    }

    /// Whether a layer below the upper shows `name` in directory node `dir`.
    pub(crate) fn lower_has(&self, req: &Request, dir: &Node, name: &OsStr) -> Result<bool> {
        let mut lower = dir.clone();
        lower.parts.retain(|p| p.layer != 0);
        if lower.parts.is_empty() {
            return Ok(false);
        }
        self.resolve_visible(req, &lower, name)
    }

    /// Make sure node `id` (and its parents) exist in the upper layer; returns the node.
    pub(crate) fn copy_up(&self, req: &Request, id: NodeId) -> Result<Node> {
        self.upper_layer()?;
        let mut chain = Vec::new();
        let mut cur = id;
        loop {
            let n = self.node(cur)?;
            if n.parts[0].layer == 0 {
                break;
            }
            chain.push(cur);
            if chain.len() > 65536 {
                return Err(Errno::ELOOP);
            }
            cur = n.parent;
        }
        for &node in chain.iter().rev() {
            self.copy_up_one(req, node)?;
        }
        self.node(id)
    }

    /// Copy up one node whose parent is in the upper layer.
    fn copy_up_one(&self, req: &Request, id: NodeId) -> Result<()> {
        let n = self.node(id)?;
        let parent = self.node(n.parent)?;
        let up_parent = parent.parts[0];
        debug_assert_eq!(up_parent.layer, 0);
        let src = n.parts[0];
        // The node must still be what its name shows (not, say, a file unlinked while open,
        // whose copy would bring the name back).
        let shown = match self.resolve_top(req, &parent, &n.name)? {
            Some(top) => top == src,
            None => false,
        };
        if !shown {
            return Err(Errno::ESTALE);
        }
        let lower = &self.layers[src.layer];
        let attr = lower
            .fs
            .getattr(req, src.node, None)
            .map_err(no_enosys)?
            .attr;
        let upper = self.upper_layer()?;
        let tmp = tmp_name();
        let owner = Request {
            uid: attr.uid,
            gid: attr.gid,
            pid: req.pid,
            umask: 0,
        };
        let made = self.make_copy(&owner, lower, src.node, &attr, &tmp)?;
        let finish = (|| {
            self.copy_meta(req, lower, src.node, &attr, made.node, id)?;
            upper
                .fs
                .rename(
                    req,
                    self.work(),
                    &tmp,
                    up_parent.node,
                    &n.name,
                    Default::default(),
                )
                .map_err(no_enosys)
        })();
        if let Err(e) = finish {
            let _ = if attr.kind == FileType::Directory {
                upper.fs.rmdir(req, self.work(), &tmp)
            } else {
                upper.fs.unlink(req, self.work(), &tmp)
            };
            upper.forget(made.node);
            self.faults
                .warn("copy-up", id, &format!("{:?}: {e}", n.name));
            return Err(e);
        }
        let mut parts = vec![Part {
            layer: 0,
            node: made.node,
        }];
        if attr.kind == FileType::Directory {
            parts.extend(n.parts.iter().copied());
        }
        let old = self.nodes.set_parts(id, parts);
        self.give_back(old);
        Ok(())
    }

    /// Create the copy of lower object `src` as `tmp` in the work directory, with its data.
    fn make_copy(
        &self,
        owner: &Request,
        lower: &Layer,
        src: NodeId,
        attr: &Attr,
        tmp: &OsStr,
    ) -> Result<Entry> {
        let upper = self.upper_layer()?;
        let work = self.work();
        let perm = u32::from(attr.perm);
        let fs = &upper.fs;
        let e = match attr.kind {
            FileType::Directory => fs.mkdir(owner, work, tmp, perm | 0o700),
            FileType::Symlink => {
                use std::os::unix::ffi::OsStrExt;
                let target = lower.fs.readlink(owner, src).map_err(no_enosys)?;
                fs.symlink(owner, work, tmp, OsStr::from_bytes(&target))
            }
            FileType::RegularFile => {
                let (e, o) = fs
                    .create(
                        owner,
                        work,
                        tmp,
                        libc::S_IFREG | 0o600,
                        OpenFlags(libc::O_WRONLY),
                    )
                    .map_err(no_enosys)?;
                let copied = self.copy_data(owner, lower, src, attr.size, e.node, o.fh);
                let _ = fs.release(owner, e.node, o.fh, OpenFlags(libc::O_WRONLY));
                if let Err(err) = copied {
                    let _ = fs.unlink(owner, work, tmp);
                    upper.forget(e.node);
                    return Err(err);
                }
                Ok(e)
            }
            k => fs.mknod(owner, work, tmp, k.mode_bits() | perm, attr.rdev),
        };
        e.map_err(no_enosys)
    }

    /// Stream `size` bytes of lower file `src` into upper file `dst` (open as `fh`), skipping
    /// holes where the lower layer reports them.
    fn copy_data(
        &self,
        req: &Request,
        lower: &Layer,
        src: NodeId,
        size: u64,
        dst: NodeId,
        fh: FileHandle,
    ) -> Result<()> {
        let upper = self.upper_layer()?;
        let lfh = match lower.fs.open(req, src, OpenFlags(libc::O_RDONLY)) {
            Ok(o) => Some(o.fh),
            Err(Errno::ENOSYS) => None,
            Err(e) => return Err(e),
        };
        let lh = lfh.unwrap_or_default();
        let result = (|| {
            let mut off = 0u64;
            // Where the data written so far ends: the copy's size unless set below.
            let mut end = 0u64;
            while off < size {
                // Skip a hole when the layer can tell.
                match lower.fs.lseek(req, src, lh, off, Whence::Data) {
                    Ok(d) if d > off => {
                        off = d.min(size);
                        continue;
                    }
                    Err(Errno::ENXIO) => break,
                    _ => {}
                }
                let want =
                    u32::try_from((size - off).min(u64::from(COPY_CHUNK))).unwrap_or(COPY_CHUNK);
                let (reply, rx) = ReadReply::channel();
                lower.fs.read(req, src, lh, off, want, reply);
                let data = rx.recv().map_err(|_| Errno::EIO)?.map_err(no_enosys)?;
                if data.is_empty() {
                    break;
                }
                let mut done = 0;
                while done < data.len() {
                    let n = upper
                        .fs
                        .write(
                            req,
                            dst,
                            fh,
                            off + done as u64,
                            &data[done..],
                            OpenFlags(libc::O_WRONLY),
                        )
                        .map_err(no_enosys)?;
                    if n == 0 {
                        return Err(Errno::EIO);
                    }
                    done += n as usize;
                }
                off += data.len() as u64;
                end = off;
            }
            // A hole at the end (or a file that shrank while copied) leaves the copy short.
            if end != size {
                let set = SetAttr {
                    size: Some(size),
                    fh: Some(fh),
                    ..Default::default()
                };
                upper.fs.setattr(req, dst, &set).map_err(no_enosys)?;
            }
            Ok(())
        })();
        if let Some(lfh) = lfh {
            let _ = lower.fs.release(req, src, lfh, OpenFlags(libc::O_RDONLY));
        }
        result
    }

    /// Owner (where allowed), mode, xattrs, the inode-number attribute, then times.
    fn copy_meta(
        &self,
        req: &Request,
        lower: &Layer,
        src: NodeId,
        attr: &Attr,
        dst: NodeId,
        id: NodeId,
    ) -> Result<()> {
        let fs = &self.upper_layer()?.fs;
        let chown = SetAttr {
            uid: Some(attr.uid),
            gid: Some(attr.gid),
            ..Default::default()
        };
        let chmod = SetAttr {
            mode: (attr.kind != FileType::Symlink).then_some(u32::from(attr.perm)),
            ..Default::default()
        };
        // Owner and mode in one call (the upper changes the owner first, which clears
        // set-IDs, then the mode); where that fails, an owner that cannot be set keeps the
        // upper's. Times come last, after the xattrs.
        let both = SetAttr {
            mode: chmod.mode,
            ..chown
        };
        if fs.setattr(req, dst, &both).is_err() {
            let _ = fs.setattr(req, dst, &chown);
            if chmod.mode.is_some() {
                fs.setattr(req, dst, &chmod).map_err(no_enosys)?;
            }
        }
        if let Ok(XattrData::Data(list)) = lower.fs.listxattr(req, src, 65536) {
            for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                use std::os::unix::ffi::OsStrExt;
                if is_private_xattr(name) {
                    continue;
                }
                let name = OsStr::from_bytes(name);
                if let Ok(XattrData::Data(v)) = lower.fs.getxattr(req, src, name, 65536)
                    && let Err(e) = fs.setxattr(req, dst, name, &v, 0)
                {
                    self.faults.warn(
                        "copy-up: an xattr could not be kept",
                        id,
                        &format!("{name:?}: {e}"),
                    );
                }
            }
        }
        if matches!(attr.kind, FileType::RegularFile | FileType::Directory) {
            let name = os(format!("{}{INO_XATTR}", self.ns()));
            let _ = fs.setxattr(req, dst, &name, format!("{id:x}").as_bytes(), 0);
        }
        let times = SetAttr {
            atime: Some(TimeSet::At(attr.atime)),
            mtime: Some(TimeSet::At(attr.mtime)),
            ..Default::default()
        };
        fs.setattr(req, dst, &times).map_err(no_enosys)?;
        Ok(())
    }

    /// Whether `name` is a whiteout in upper directory `dir` (see [`Layer::whiteout_at`]).
    pub(crate) fn upper_whiteout(
        &self,
        req: &Request,
        dir: NodeId,
        name: &OsStr,
    ) -> Result<Option<bool>> {
        self.upper_layer()?.whiteout_at(req, dir, name)
    }
}
