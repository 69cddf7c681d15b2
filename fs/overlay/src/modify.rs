//! Changes through the overlay: creating names (over whiteouts), removing them (leaving
//! whiteouts where a lower layer still has the name), rename, link, setattr, xattrs.
//!
//! Every change holds the overlay's change lock, so copy-ups and the checks before a change
//! see no other change in between.

use std::ffi::OsStr;

use squashbox_vfs::{
    AttrOut, Entry, Errno, FileType, Filesystem, NodeId, Opened, RenameFlags, Request, Result,
    SetAttr,
};

use crate::Overlay;
use crate::layer::{NameState, is_private_xattr, is_whiteout_name, no_enosys, whiteout_name};
use crate::nodes::Node;
use crate::upper::tmp_name;

/// Makes the new object: called with the upper filesystem, a directory node there and a name.
pub(crate) type Make<'a> =
    dyn FnMut(&dyn Filesystem, NodeId, &OsStr) -> Result<(Entry, Option<Opened>)> + 'a;

fn pure_upper(n: &Node) -> bool {
    n.parts.len() == 1 && n.parts[0].layer == 0
}

fn new_name(name: &OsStr) -> Result<()> {
    if name == "." || name == ".." {
        return Err(Errno::EEXIST);
    }
    Overlay::name_ok(name)
}

impl Overlay {
    /// Take the change lock (see [`crate::misses`]).
    pub(crate) fn lock_change(&self) -> crate::misses::ChangeGuard<'_> {
        self.misses.lock(&self.change)
    }

    fn dir_node(&self, id: NodeId) -> Result<Node> {
        let n = self.node(id)?;
        if n.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(n)
    }

    /// Create `name` in `parent` with `make`, replacing a whiteout the upper holds there (a
    /// directory made over one is opaque). Returns the overlay entry and what `make` opened.
    pub(crate) fn create_with(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        is_dir: bool,
        make: &mut Make<'_>,
    ) -> Result<(Entry, Option<Opened>)> {
        let upper = self.upper_layer()?;
        new_name(name)?;
        let _g = self.lock_change();
        let p = self.dir_node(parent)?;
        // Where the parent is in the upper already, one probe of the upper name answers
        // both "does it show?" (with the lowers asked only when the upper has neither the
        // name nor a whiteout) and "is there a whiteout to replace?".
        let known = if pure_upper(&p) && self.misses.take(parent, name) {
            // The kernel's lookup just missed here, and nothing changed since.
            Some(None)
        } else if p.parts[0].layer == 0 {
            match upper.probe(req, p.parts[0].node, name)? {
                NameState::Present => return Err(Errno::EEXIST),
                NameState::Device => Some(Some(true)),
                NameState::WhiteoutFile => Some(Some(false)),
                NameState::Absent => {
                    if self.lower_has(req, &p, name)? {
                        return Err(Errno::EEXIST);
                    }
                    Some(None)
                }
            }
        } else {
            if self.resolve_visible(req, &p, name)? {
                return Err(Errno::EEXIST);
            }
            None
        };
        let p = self.copy_up(req, parent)?;
        let up = p.parts[0].node;
        let fs = &*upper.fs;
        let whiteout = match known {
            Some(w) => w,
            None => self.upper_whiteout(req, up, name)?,
        };
        let Some(device) = whiteout else {
            let made = make(fs, up, name).map_err(no_enosys)?;
            let entry = match self.bind_made(req, parent, name, made.0)? {
                Some(entry) => entry,
                None => self.do_lookup(req, parent, name)?.ok_or(Errno::EIO)?,
            };
            return Ok((entry, made.1));
        };
        let made = match device {
            false => {
                let made = make(fs, up, name).map_err(no_enosys)?;
                if is_dir {
                    self.set_opaque(req, made.0.node)?;
                }
                fs.unlink(req, up, &whiteout_name(name))
                    .map_err(no_enosys)?;
                made
            }
            true => {
                let work = self.upper.as_ref().map(|u| u.work).ok_or(Errno::EROFS)?;
                let tmp = tmp_name();
                let made = make(fs, work, &tmp).map_err(no_enosys)?;
                let placed = (|| {
                    if is_dir {
                        self.set_opaque(req, made.0.node)?;
                    }
                    let xchg = RenameFlags(RenameFlags::EXCHANGE);
                    match fs.rename(req, work, &tmp, up, name, xchg) {
                        // The whiteout is now the temporary: drop it.
                        Ok(()) => fs.unlink(req, work, &tmp).map_err(no_enosys),
                        Err(Errno::EINVAL) | Err(Errno::EOPNOTSUPP) | Err(Errno::ENOSYS) => {
                            fs.unlink(req, up, name).map_err(no_enosys)?;
                            fs.rename(req, work, &tmp, up, name, RenameFlags(0))
                                .map_err(no_enosys)
                        }
                        Err(e) => Err(e),
                    }
                })();
                if let Err(e) = placed {
                    let _ = if is_dir {
                        fs.rmdir(req, work, &tmp)
                    } else {
                        fs.unlink(req, work, &tmp)
                    };
                    upper.forget(made.0.node);
                    return Err(e);
                }
                made
            }
        };
        let entry = self.do_lookup(req, parent, name);
        upper.forget(made.0.node);
        Ok((entry?.ok_or(Errno::EIO)?, made.1))
    }

    /// Remove upper `name` in upper directory `dir` and leave a whiteout there, atomically
    /// where the upper allows it (a 0/0 device made in the work directory and exchanged in).
    fn remove_leaving_whiteout(
        &self,
        req: &Request,
        dir: NodeId,
        name: &OsStr,
        is_dir: bool,
    ) -> Result<()> {
        let upper = self.upper_layer()?;
        let fs = &*upper.fs;
        let work = self.upper.as_ref().map(|u| u.work).ok_or(Errno::EROFS)?;
        let tmp = tmp_name();
        let remove = |d: NodeId, n: &OsStr| -> Result<()> {
            if is_dir {
                self.clear_dir(req, d, n)?;
                fs.rmdir(req, d, n).map_err(no_enosys)
            } else {
                fs.unlink(req, d, n).map_err(no_enosys)
            }
        };
        if let Ok(wh) = fs.mknod(req, work, &tmp, libc::S_IFCHR, 0) {
            upper.forget(wh.node);
            let xchg = RenameFlags(RenameFlags::EXCHANGE);
            if fs.rename(req, work, &tmp, dir, name, xchg).is_ok() {
                return remove(work, &tmp);
            }
            let _ = fs.unlink(req, work, &tmp);
        }
        remove(dir, name)?;
        self.make_whiteout(req, dir, name)
    }

    /// unlink (`is_dir` false) and rmdir.
    pub(crate) fn do_remove(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        is_dir: bool,
    ) -> Result<()> {
        self.upper_layer()?;
        if is_whiteout_name(name) {
            return Err(Errno::ENOENT);
        }
        let _g = self.lock_change();
        let child = self.do_lookup(req, parent, name)?.ok_or(Errno::ENOENT)?;
        let result = (|| {
            let c = self.node(child.node)?;
            match (is_dir, c.kind == FileType::Directory) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if !self.merged(req, &c)?.is_empty() => {
                    return Err(Errno::ENOTEMPTY);
                }
                _ => {}
            }
            let p = self.copy_up(req, parent)?;
            let up = p.parts[0].node;
            let lower = self.lower_has(req, &p, name)?;
            let fs = &self.layers[0].fs;
            match (c.parts[0].layer == 0, lower) {
                (true, true) => self.remove_leaving_whiteout(req, up, name, is_dir),
                (true, false) if is_dir => {
                    self.clear_dir(req, up, name)?;
                    fs.rmdir(req, up, name).map_err(no_enosys)
                }
                (true, false) => fs.unlink(req, up, name).map_err(no_enosys),
                (false, _) => self.make_whiteout(req, up, name),
            }
        })();
        self.do_forget(child.node, 1);
        result
    }

    pub(crate) fn do_rename(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name_: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        self.upper_layer()?;
        let exchange = flags.has(RenameFlags::EXCHANGE);
        let noreplace = flags.has(RenameFlags::NOREPLACE);
        if flags.has_unknown() || flags.has(RenameFlags::WHITEOUT) || (exchange && noreplace) {
            return Err(Errno::EINVAL);
        }
        new_name(new_name_)?;
        if is_whiteout_name(name) {
            return Err(Errno::ENOENT);
        }
        let _g = self.lock_change();
        let src = self.do_lookup(req, parent, name)?.ok_or(Errno::ENOENT)?;
        let dst = match self.do_lookup(req, new_parent, new_name_) {
            Ok(d) => d,
            Err(e) => {
                self.do_forget(src.node, 1);
                return Err(e);
            }
        };
        let result = self.rename_nodes(
            req,
            parent,
            name,
            new_parent,
            new_name_,
            &src,
            dst.as_ref(),
            exchange,
            noreplace,
        );
        self.do_forget(src.node, 1);
        if let Some(d) = dst {
            self.do_forget(d.node, 1);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_nodes(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name_: &OsStr,
        src: &Entry,
        dst: Option<&Entry>,
        exchange: bool,
        noreplace: bool,
    ) -> Result<()> {
        if parent == new_parent && name == new_name_ {
            return Ok(());
        }
        let s = self.node(src.node)?;
        let s_dir = s.kind == FileType::Directory;
        if s_dir && !pure_upper(&s) {
            // redirect_dir=off: a merged or lower directory cannot be renamed.
            return Err(Errno::EXDEV);
        }
        match dst {
            Some(d) => {
                if noreplace {
                    return Err(Errno::EEXIST);
                }
                let dn = self.node(d.node)?;
                if dn.kind == FileType::Directory {
                    if !pure_upper(&dn) {
                        return Err(Errno::EXDEV);
                    }
                    if !exchange {
                        if !s_dir {
                            return Err(Errno::EISDIR);
                        }
                        if !self.merged(req, &dn)?.is_empty() {
                            return Err(Errno::ENOTEMPTY);
                        }
                        let np = self.node(new_parent)?;
                        self.clear_dir(req, np.parts[0].node, new_name_)?;
                    }
                } else if s_dir && !exchange {
                    return Err(Errno::ENOTDIR);
                }
                if exchange {
                    self.copy_up(req, d.node)?;
                }
            }
            None if exchange => return Err(Errno::ENOENT),
            None => {}
        }
        let s = self.copy_up(req, src.node)?;
        let op = self.copy_up(req, parent)?;
        let np = self.copy_up(req, new_parent)?;
        let (uo, un) = (op.parts[0].node, np.parts[0].node);
        let fs = &self.layers[0].fs;
        let mut need_opaque = false;
        let mut wh_file = false;
        if dst.is_none() {
            match self.upper_whiteout(req, un, new_name_)? {
                Some(true) => {
                    need_opaque = s_dir;
                    if s_dir {
                        fs.unlink(req, un, new_name_).map_err(no_enosys)?;
                    }
                }
                Some(false) => {
                    need_opaque = s_dir;
                    wh_file = true;
                }
                None => {}
            }
        }
        let lower_old = !exchange && self.lower_has(req, &op, name)?;
        let rflags = if exchange {
            RenameFlags::EXCHANGE
        } else if lower_old {
            RenameFlags::WHITEOUT
        } else {
            0
        };
        match fs.rename(req, uo, name, un, new_name_, RenameFlags(rflags)) {
            Ok(()) => {}
            Err(Errno::EINVAL) | Err(Errno::EPERM) | Err(Errno::EOPNOTSUPP) if lower_old => {
                fs.rename(req, uo, name, un, new_name_, RenameFlags(0))
                    .map_err(no_enosys)?;
                self.make_whiteout(req, uo, name)?;
            }
            Err(e) => return Err(no_enosys(e)),
        }
        if wh_file {
            let _ = fs.unlink(req, un, &whiteout_name(new_name_));
        }
        if need_opaque {
            self.set_opaque(req, s.parts[0].node)?;
        }
        let released = self.nodes.moved(src.node, new_parent, new_name_);
        self.give_back(released);
        if exchange && let Some(d) = dst {
            let released = self.nodes.moved(d.node, parent, name);
            self.give_back(released);
        }
        Ok(())
    }

    pub(crate) fn do_link(
        &self,
        req: &Request,
        node: NodeId,
        new_parent: NodeId,
        name: &OsStr,
    ) -> Result<Entry> {
        let upper = self.upper_layer()?;
        new_name(name)?;
        let _g = self.lock_change();
        if self.node(node)?.kind == FileType::Directory {
            return Err(Errno::EPERM);
        }
        let p = self.dir_node(new_parent)?;
        if self.resolve_visible(req, &p, name)? {
            return Err(Errno::EEXIST);
        }
        let n = self.copy_up(req, node)?;
        let p = self.copy_up(req, new_parent)?;
        let up = p.parts[0].node;
        let fs = &*upper.fs;
        let wh = self.upper_whiteout(req, up, name)?;
        if wh == Some(true) {
            fs.unlink(req, up, name).map_err(no_enosys)?;
        }
        let made = fs.link(req, n.parts[0].node, up, name).map_err(no_enosys)?;
        if wh == Some(false) {
            let _ = fs.unlink(req, up, &whiteout_name(name));
        }
        let entry = self.do_lookup(req, new_parent, name);
        upper.forget(made.node);
        entry?.ok_or(Errno::EIO)
    }

    pub(crate) fn do_setattr(&self, req: &Request, node: NodeId, set: &SetAttr) -> Result<AttrOut> {
        let upper = self.upper_layer()?;
        let _g = self.lock_change();
        let n = self.copy_up(req, node)?;
        let up = n.parts[0];
        let mut s = *set;
        s.fh = set
            .fh
            .and_then(|f| self.handles.get(f))
            .filter(|h| h.part == up)
            .and_then(|h| h.layer_fh);
        let out = upper.fs.setattr(req, up.node, &s).map_err(no_enosys)?;
        Ok(AttrOut {
            attr: self.overlay_attr(node, 0, out.attr, n.parts.len() > 1),
            ttl: out.ttl,
        })
    }

    pub(crate) fn do_setxattr(
        &self,
        req: &Request,
        node: NodeId,
        name: &OsStr,
        value: Option<(&[u8], i32)>,
    ) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let upper = self.upper_layer()?;
        if is_private_xattr(name.as_bytes()) {
            return Err(Errno::EPERM);
        }
        let _g = self.lock_change();
        let n = self.copy_up(req, node)?;
        let up = n.parts[0].node;
        match value {
            Some((v, flags)) => upper.fs.setxattr(req, up, name, v, flags),
            None => upper.fs.removexattr(req, up, name),
        }
        .map_err(|e| {
            if e == Errno::ENOSYS {
                Errno::EOPNOTSUPP
            } else {
                e
            }
        })
    }

    /// Open for writing: copy up first; returns the upper node opened.
    pub(crate) fn writable_part(&self, req: &Request, node: NodeId) -> Result<crate::nodes::Part> {
        self.upper_layer()?;
        let _g = self.lock_change();
        Ok(self.copy_up(req, node)?.parts[0])
    }
}
