//! The write half of [`Ext3Fs`]: creating, linking, unlinking and renaming entries, file
//! writes and truncation, setattr, lookup counting and freeing of unlinked inodes, and the
//! clean unmount. Every operation locks the inodes it changes (sharded per-inode locks,
//! taken together in one order); allocation has its own per-group locks.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use squashbox_vfs::{
    AttrOut, Entry, Errno, FileType, NodeId, RenameFlags, Request, Result, SetAttr, Timespec,
};

use super::{Ext3Fs, privs};
use crate::alloc::Allocator;
use crate::dir_write;
use crate::error::Error;
use crate::file_write;
use crate::inode::{GOOD_OLD_INODE_SIZE, Inode, InodeFormat, ROOT_INO};
use crate::statfs::NAME_MAX;
use crate::superblock::INCOMPAT_FILETYPE;
use crate::symlink;

/// Most hard links an inode may have (EXT2_LINK_MAX).
pub const LINK_MAX: u16 = 65000;

/// A fresh, zeroed inode record for `ino`.
fn blank_inode(ino: u32, fmt: &InodeFormat) -> Inode {
    let mut raw = vec![0u8; usize::from(fmt.inode_size)];
    if raw.len() > GOOD_OLD_INODE_SIZE {
        let extra = 32u16.min(fmt.inode_size - GOOD_OLD_INODE_SIZE as u16);
        raw[0x80..0x82].copy_from_slice(&extra.to_le_bytes());
    }
    Inode::parse(ino, &raw, fmt)
}

/// Record the creation time when i_extra_isize covers i_crtime.
fn set_crtime(inode: &mut Inode, t: Timespec) {
    if usize::from(inode.extra_isize) + GOOD_OLD_INODE_SIZE >= 0x98 && inode.raw.len() >= 0x98 {
        let (secs, extra) = crate::inode::encode_time(t);
        inode.raw[0x90..0x94].copy_from_slice(&secs.to_le_bytes());
        inode.raw[0x94..0x98].copy_from_slice(&extra.to_le_bytes());
    }
}

fn now() -> Timespec {
    Timespec::now()
}

impl Ext3Fs {
    pub(super) fn alloc(&self) -> Result<&Allocator> {
        if self.is_shut_down() {
            return Err(Errno::EIO);
        }
        self.alloc.as_deref().ok_or(Errno::EROFS)
    }

    pub(super) fn err(&self, what: &'static str, node: NodeId, e: Error) -> Errno {
        let errno = e.errno();
        if errno != libc::ENOSPC && errno != libc::EFBIG {
            self.faults.warn(what, node, &e);
        }
        Errno(errno)
    }

    /// Note that the kernel holds one more reference to `ino` (writable mounts only).
    pub(super) fn note_lookup(&self, ino: u32) {
        if self.writable() && ino != ROOT_INO {
            self.lookups.add(ino);
        }
    }

    /// The entry for `inode`, counted as a lookup.
    pub(super) fn handed_out(&self, inode: &Inode) -> Entry {
        self.note_lookup(inode.ino);
        self.entry_of(inode)
    }

    pub(super) fn forget_node(&self, node: NodeId, n: u64) {
        if !self.writable() || node == squashbox_vfs::ROOT_ID {
            return;
        }
        let Ok(ino) = u32::try_from(node) else { return };
        if self.lookups.drop_refs(ino, n) && self.orphans.lock().contains(&ino) {
            // After the shutdown the orphan stays listed: the next mount frees it.
            let Ok(_op) = self.begin() else { return };
            let _held = self.locks.lock(&[ino]);
            let r = self.orphan_remove(ino).and_then(|()| self.free_inode(ino));
            self.orphans.lock().remove(&ino);
            if let Err(e) = r {
                self.faults.warn("freeing an unlinked inode", node, &e);
            }
        }
    }

    /// Take `ino` off the on-disk orphan list (its i_dtime holds the next one).
    pub(super) fn orphan_remove(&self, ino: u32) -> std::result::Result<(), Error> {
        let mut head = self.orphan_head.lock();
        let next = self.vol.inode(ino)?.dtime;
        if *head == ino {
            self.vol.write_last_orphan(next)?;
            *head = next;
            return Ok(());
        }
        let mut cur = *head;
        for _ in 0..self.vol.sb().inodes_count {
            if cur == 0 || !self.vol.ino_is_valid(cur) {
                break;
            }
            let mut i = self.vol.inode(cur)?;
            if i.dtime == ino {
                i.dtime = next;
                return self.vol.write_inode(&i);
            }
            cur = i.dtime;
        }
        Err(self
            .vol
            .corrupt(Some(ino), None, "inode missing from the orphan list"))
    }

    /// Finish what a crash left on the orphan list: free unlinked inodes, cut truncated
    /// ones to their size (as the kernel does at mount).
    pub(super) fn process_orphans(&self) -> std::result::Result<usize, Error> {
        let a = self.alloc.as_deref().expect("writable");
        let mut cur = self.vol.read_last_orphan()?;
        let mut seen = std::collections::HashSet::new();
        let mut done = 0;
        while cur != 0 {
            if !self.vol.ino_is_valid(cur) || !seen.insert(cur) {
                let e = self
                    .vol
                    .corrupt(Some(cur), None, "bad orphan list entry; list dropped");
                self.faults.warn("orphan list", u64::from(cur), &e);
                break;
            }
            let mut inode = self.vol.inode(cur)?;
            let next = inode.dtime;
            inode.dtime = 0;
            if inode.links == 0 {
                self.vol.write_inode(&inode)?;
                self.free_inode(cur)?;
            } else {
                if inode.kind() == Some(FileType::RegularFile) && !inode.has_extents() {
                    let size = inode.size;
                    inode.size = u64::MAX;
                    file_write::set_size(&self.vol, a, &mut inode, size)?;
                }
                self.vol.write_inode(&inode)?;
            }
            done += 1;
            cur = next;
        }
        self.vol.write_last_orphan(0)?;
        *self.orphan_head.lock() = 0;
        Ok(done)
    }

    /// Release every block and the inode itself (its links are 0).
    pub(super) fn free_inode(&self, ino: u32) -> std::result::Result<(), Error> {
        let a = self.alloc.as_deref().expect("writable");
        let mut inode = self.vol.inode(ino)?;
        let is_dir = inode.is_dir();
        let has_map = match inode.kind() {
            Some(FileType::RegularFile | FileType::Directory) => true,
            Some(FileType::Symlink) => !symlink::is_fast(&self.vol, &inode),
            _ => false,
        };
        if has_map && !inode.has_extents() {
            file_write::set_size(&self.vol, a, &mut inode, 0)?;
        }
        if inode.file_acl != 0 {
            crate::xattr_write::release_block(&self.vol, a, &mut inode)?;
        }
        inode.links = 0;
        inode.size = 0;
        inode.dtime = now().secs as u32;
        self.vol.write_inode(&inode)?;
        a.free_inode(&self.vol, ino, is_dir)
    }

    /// One link fewer for `inode` (already written by the caller after this returns false),
    /// or its end: freed now, or at its last forget when the kernel still holds it.
    fn drop_link(&self, inode: &mut Inode) -> std::result::Result<(), Error> {
        inode.links = inode.links.saturating_sub(1);
        if inode.is_dir() && inode.links <= 1 {
            inode.links = 0;
        }
        inode.ctime = now();
        self.vol.write_inode(inode)?;
        if inode.links == 0 {
            if self.lookups.held(inode.ino) {
                // On the on-disk orphan list until freed, so a crash frees it at next mount.
                let mut head = self.orphan_head.lock();
                inode.dtime = *head;
                self.vol.write_inode(inode)?;
                self.vol.write_last_orphan(inode.ino)?;
                *head = inode.ino;
                self.orphans.lock().insert(inode.ino);
            } else {
                self.free_inode(inode.ino)?;
            }
        }
        Ok(())
    }

    fn check_name(name: &OsStr) -> Result<&[u8]> {
        let n = name.as_bytes();
        if n.is_empty() || n.contains(&b'/') || n.contains(&0) {
            return Err(Errno::EINVAL);
        }
        if n.len() > NAME_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(n)
    }

    /// Create a node of `mode` (type bits included) named `name` in `parent`, with `init`
    /// filling in what the type needs. Returns the new inode.
    fn create_node(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        init: &dyn Fn(&Ext3Fs, &mut Inode) -> std::result::Result<(), Error>,
    ) -> Result<Inode> {
        let a = self.alloc()?;
        let n = Self::check_name(name)?;
        let pino = self.ino_of(parent)?;
        let _op = self.begin()?;
        let _held = self.locks.lock(&[pino]);
        let mut dir = self.dir_inode(parent)?;
        if self.find(parent, &dir, n)?.is_some() {
            return Err(Errno::EEXIST);
        }
        let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && dir.links >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        let ino = a
            .alloc_inode(&self.vol, pino, is_dir)
            .map_err(|e| self.err("allocating an inode", parent, e))?;
        let mut inode = blank_inode(ino, self.vol.inode_format());
        let t = now();
        let mut perm = (mode & 0o7777 & !req.umask) as u16;
        let mut gid = req.gid;
        if dir.mode & 0o2000 != 0 {
            gid = dir.gid;
            if is_dir {
                perm |= 0o2000;
            }
        }
        inode.mode = (mode & libc::S_IFMT) as u16 | perm;
        inode.uid = req.uid;
        inode.gid = gid;
        inode.links = if is_dir { 2 } else { 1 };
        inode.atime = t;
        inode.mtime = t;
        inode.ctime = t;
        inode.generation = a.next_generation();
        set_crtime(&mut inode, t);
        let made = (|| -> std::result::Result<(), Error> {
            init(self, &mut inode)?;
            self.vol.write_inode(&inode)?;
            dir_write::add(&self.vol, a, &mut dir, n, ino, inode.mode)?;
            if is_dir {
                dir.links += 1;
            }
            dir.mtime = t;
            dir.ctime = t;
            self.vol.write_inode(&dir)
        })();
        if let Err(e) = made {
            let errno = self.err("creating", parent, e);
            inode.links = 0;
            let _ = self.vol.write_inode(&inode);
            let _ = self.free_inode(ino);
            return Err(errno);
        }
        Ok(inode)
    }

    pub(super) fn do_mknod(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        let kind = mode & libc::S_IFMT;
        if !matches!(
            kind,
            libc::S_IFREG | libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK
        ) {
            return Err(Errno::EINVAL);
        }
        let inode = self.create_node(req, parent, name, mode, &|_, i| {
            if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
                let major = (rdev & 0xfff00) >> 8;
                let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
                if major < 256 && minor < 256 {
                    i.block[0..4].copy_from_slice(&((major << 8) | minor).to_le_bytes());
                } else {
                    i.block[4..8].copy_from_slice(&rdev.to_le_bytes());
                }
            }
            Ok(())
        })?;
        Ok(self.handed_out(&inode))
    }

    pub(super) fn do_mkdir(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
    ) -> Result<Entry> {
        let pino = self.ino_of(parent)?;
        let filetype = self.vol.sb().has_incompat(INCOMPAT_FILETYPE);
        let inode = self.create_node(
            req,
            parent,
            name,
            libc::S_IFDIR | (mode & 0o7777),
            &|fs, i| {
                let a = fs.alloc.as_deref().expect("writable");
                let sb = fs.vol.sb();
                let g = u64::from((i.ino - 1) / sb.inodes_per_group);
                let goal = fs.vol.groups()[g as usize].inode_table + sb.inode_table_blocks();
                let (blk, _) = crate::block_map_write::map_alloc(&fs.vol, a, i, 0, goal)?;
                let bs = fs.vol.block_size() as usize;
                fs.vol
                    .write_new_block(blk, dir_write::first_block(bs, i.ino, pino, filetype))?;
                i.size = bs as u64;
                Ok(())
            },
        )?;
        Ok(self.handed_out(&inode))
    }

    pub(super) fn do_symlink(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<Entry> {
        let t = target.as_bytes();
        if t.is_empty() {
            return Err(Errno::ENOENT);
        }
        if t.len() >= self.vol.block_size() as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        let inode = self.create_node(req, parent, name, libc::S_IFLNK | 0o777, &|fs, i| {
            if t.len() < i.block.len() {
                i.block[..t.len()].copy_from_slice(t);
                i.size = t.len() as u64;
                Ok(())
            } else {
                let a = fs.alloc.as_deref().expect("writable");
                file_write::write(&fs.vol, a, i, 0, t).1
            }
        })?;
        Ok(self.handed_out(&inode))
    }

    pub(super) fn do_link(
        &self,
        node: NodeId,
        new_parent: NodeId,
        new_name: &OsStr,
    ) -> Result<Entry> {
        let a = self.alloc()?;
        let n = Self::check_name(new_name)?;
        let ino = self.ino_of(node)?;
        let pino = self.ino_of(new_parent)?;
        let _op = self.begin()?;
        let _held = self.locks.lock(&[ino, pino]);
        let mut dir = self.dir_inode(new_parent)?;
        let mut inode = self.inode(node)?;
        if inode.is_dir() {
            return Err(Errno::EPERM);
        }
        if inode.links >= LINK_MAX {
            return Err(Errno::EMLINK);
        }
        if self.find(new_parent, &dir, n)?.is_some() {
            return Err(Errno::EEXIST);
        }
        let t = now();
        dir_write::add(&self.vol, a, &mut dir, n, ino, inode.mode)
            .map_err(|e| self.err("link", new_parent, e))?;
        dir.mtime = t;
        dir.ctime = t;
        inode.links += 1;
        inode.ctime = t;
        self.vol
            .write_inode(&dir)
            .map_err(|e| self.err("link", new_parent, e))?;
        self.vol
            .write_inode(&inode)
            .map_err(|e| self.err("link", node, e))?;
        Ok(self.handed_out(&inode))
    }

    /// unlink (`dir` false) or rmdir (`dir` true).
    pub(super) fn do_remove(&self, parent: NodeId, name: &OsStr, want_dir: bool) -> Result<()> {
        self.alloc()?;
        let n = name.as_bytes();
        if n == b"." || n == b".." {
            return Err(if want_dir {
                Errno::EINVAL
            } else {
                Errno::EISDIR
            });
        }
        let pino = self.ino_of(parent)?;
        loop {
            let dir0 = self.dir_inode(parent)?;
            let Some(cino) = self.find(parent, &dir0, n)? else {
                return Err(Errno::ENOENT);
            };
            let _op = self.begin()?;
            let _held = self.locks.lock(&[pino, cino]);
            let mut dir = self.dir_inode(parent)?;
            if self.find(parent, &dir, n)? != Some(cino) {
                continue; // changed under us: retry with the new target
            }
            let mut child = self.child("unlink", parent, cino)?;
            match (child.is_dir(), want_dir) {
                (true, false) => return Err(Errno::EISDIR),
                (false, true) => return Err(Errno::ENOTDIR),
                _ => {}
            }
            if want_dir
                && !dir_write::is_empty(&self.vol, &child)
                    .map_err(|e| self.err("rmdir", parent, e))?
            {
                return Err(Errno::ENOTEMPTY);
            }
            let r = (|| -> std::result::Result<(), Error> {
                dir_write::remove(&self.vol, &dir, n)?;
                let t = now();
                dir.mtime = t;
                dir.ctime = t;
                if want_dir {
                    dir.links = dir.links.saturating_sub(1).max(2);
                }
                self.vol.write_inode(&dir)?;
                self.drop_link(&mut child)
            })();
            return r.map_err(|e| self.err("remove", parent, e));
        }
    }

    /// Whether directory `ancestor` is `ino` or one of its ancestors (walking "..").
    fn is_ancestor(&self, ancestor: u32, mut ino: u32) -> Result<bool> {
        for _ in 0..4096 {
            if ino == ancestor {
                return Ok(true);
            }
            if ino == ROOT_INO {
                return Ok(false);
            }
            let d = self
                .vol
                .inode(ino)
                .map_err(|e| self.err("rename", u64::from(ino), e))?;
            ino = crate::dir::parent_of(&self.vol, &d)
                .map_err(|e| self.err("rename", u64::from(ino), e))?;
        }
        Err(Errno::ELOOP)
    }

    pub(super) fn do_rename(
        &self,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        let a = self.alloc()?;
        if flags.has_unknown()
            || (flags.has(RenameFlags::EXCHANGE)
                && (flags.has(RenameFlags::NOREPLACE) || flags.has(RenameFlags::WHITEOUT)))
        {
            return Err(Errno::EINVAL);
        }
        let n = name.as_bytes();
        let nn = Self::check_name(new_name)?;
        if n == b"." || n == b".." {
            return Err(Errno::EINVAL);
        }
        let (p1, p2) = (self.ino_of(parent)?, self.ino_of(new_parent)?);
        loop {
            let d1 = self.dir_inode(parent)?;
            let d2 = self.dir_inode(new_parent)?;
            let Some(src) = self.find(parent, &d1, n)? else {
                return Err(Errno::ENOENT);
            };
            let dst = self.find(new_parent, &d2, nn)?;
            let _op = self.begin()?;
            let _held = self.locks.lock(&[p1, p2, src, dst.unwrap_or(0)]);
            let d1 = self.dir_inode(parent)?;
            let d2 = self.dir_inode(new_parent)?;
            if self.find(parent, &d1, n)? != Some(src) || self.find(new_parent, &d2, nn)? != dst {
                continue;
            }
            return self.rename_locked(a, (parent, p1, n), (new_parent, p2, nn), src, dst, flags);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_locked(
        &self,
        a: &Allocator,
        (parent, p1, n): (NodeId, u32, &[u8]),
        (new_parent, p2, nn): (NodeId, u32, &[u8]),
        src: u32,
        dst: Option<u32>,
        flags: RenameFlags,
    ) -> Result<()> {
        let sinode = self.child("rename", parent, src)?;
        let exchange = flags.has(RenameFlags::EXCHANGE);
        if exchange && dst.is_none() {
            return Err(Errno::ENOENT);
        }
        if flags.has(RenameFlags::NOREPLACE) && dst.is_some() {
            return Err(Errno::EEXIST);
        }
        if dst == Some(src) {
            return Ok(());
        }
        if sinode.is_dir() && p1 != p2 && self.is_ancestor(src, p2)? {
            return Err(Errno::EINVAL);
        }
        let dinode = match dst {
            Some(d) => Some(self.child("rename", new_parent, d)?),
            None => None,
        };
        if let Some(di) = &dinode {
            if exchange {
                if di.is_dir() && p1 != p2 && self.is_ancestor(di.ino, p1)? {
                    return Err(Errno::EINVAL);
                }
            } else if sinode.is_dir() {
                if !di.is_dir() {
                    return Err(Errno::ENOTDIR);
                }
                if !dir_write::is_empty(&self.vol, di)
                    .map_err(|e| self.err("rename", new_parent, e))?
                {
                    return Err(Errno::ENOTEMPTY);
                }
            } else if di.is_dir() {
                return Err(Errno::EISDIR);
            }
        }
        let t = now();
        let vol = &self.vol;
        let r = (|| -> std::result::Result<(), Error> {
            // Parents' link counts change when a directory changes parent.
            let mut link_delta: [i32; 2] = [0, 0];
            match &dinode {
                Some(di) if exchange => {
                    dir_write::repoint(vol, &vol.inode(p2)?, nn, src, sinode.mode)?;
                    dir_write::repoint(vol, &vol.inode(p1)?, n, di.ino, di.mode)?;
                    if p1 != p2 {
                        if sinode.is_dir() {
                            self.set_dotdot(&sinode, p2)?;
                            link_delta[0] -= 1;
                            link_delta[1] += 1;
                        }
                        if di.is_dir() {
                            self.set_dotdot(di, p1)?;
                            link_delta[0] += 1;
                            link_delta[1] -= 1;
                        }
                    }
                    let mut di = vol.inode(di.ino)?;
                    di.ctime = t;
                    vol.write_inode(&di)?;
                }
                Some(di) => {
                    dir_write::repoint(vol, &vol.inode(p2)?, nn, src, sinode.mode)?;
                    if di.is_dir() {
                        link_delta[1] -= 1;
                    }
                    let mut di = vol.inode(di.ino)?;
                    self.drop_link(&mut di)?;
                }
                None => {
                    let mut d2 = vol.inode(p2)?;
                    dir_write::add(vol, a, &mut d2, nn, src, sinode.mode)?;
                    vol.write_inode(&d2)?;
                }
            }
            if !exchange {
                if flags.has(RenameFlags::WHITEOUT) {
                    let wo = self.make_whiteout(a, p1)?;
                    dir_write::repoint(vol, &vol.inode(p1)?, n, wo, (libc::S_IFCHR) as u16)?;
                } else {
                    dir_write::remove(vol, &vol.inode(p1)?, n)?;
                }
                if sinode.is_dir() && p1 != p2 {
                    self.set_dotdot(&sinode, p2)?;
                    link_delta[0] -= 1;
                    link_delta[1] += 1;
                }
            }
            let mut s = vol.inode(src)?;
            s.ctime = t;
            vol.write_inode(&s)?;
            for (i, p) in [p1, p2].into_iter().enumerate() {
                if i == 1 && p1 == p2 {
                    break;
                }
                let delta = if p1 == p2 {
                    link_delta[0] + link_delta[1]
                } else {
                    link_delta[i]
                };
                let mut d = vol.inode(p)?;
                d.links = (i32::from(d.links) + delta).clamp(2, i32::from(u16::MAX)) as u16;
                d.mtime = t;
                d.ctime = t;
                vol.write_inode(&d)?;
            }
            Ok(())
        })();
        r.map_err(|e| self.err("rename", parent, e))
    }

    /// Point directory `dir`'s ".." at `parent`.
    fn set_dotdot(&self, dir: &Inode, parent: u32) -> std::result::Result<(), Error> {
        let d = self.vol.inode(dir.ino)?;
        dir_write::repoint(&self.vol, &d, b"..", parent, libc::S_IFDIR as u16)
    }

    /// A 0/0 character device (an overlay whiteout) for a rename's old name.
    fn make_whiteout(&self, a: &Allocator, parent: u32) -> std::result::Result<u32, Error> {
        let ino = a.alloc_inode(&self.vol, parent, false)?;
        let mut i = blank_inode(ino, self.vol.inode_format());
        let t = now();
        i.mode = libc::S_IFCHR as u16; // WHITEOUT_MODE: no permission bits
        i.links = 1;
        i.atime = t;
        i.mtime = t;
        i.ctime = t;
        i.generation = a.next_generation();
        set_crtime(&mut i, t);
        self.vol.write_inode(&i)?;
        Ok(ino)
    }

    pub(super) fn do_setattr(
        &self,
        _req: &Request,
        node: NodeId,
        set: &SetAttr,
    ) -> Result<AttrOut> {
        let a = self.alloc()?;
        let ino = self.ino_of(node)?;
        let _op = self.begin()?;
        let _held = self.locks.lock(&[ino]);
        let mut inode = self.inode(node)?;
        let t = now();
        if let Some(m) = set.mode {
            inode.mode = (inode.mode & 0o170000) | (m & 0o7777) as u16;
        }
        if let Some(u) = set.uid {
            inode.uid = u;
        }
        if let Some(g) = set.gid {
            inode.gid = g;
        }
        if set.uid.is_some() || set.gid.is_some() || set.size.is_some() {
            if set.mode.is_none() && set.size.is_none() {
                inode.mode = privs::mode_after_chown(inode.mode);
            }
            privs::kill_capability(&self.vol, a, &mut inode)
                .map_err(|e| self.err("setattr", node, e))?;
        }
        if let Some(size) = set.size {
            match inode.kind() {
                Some(FileType::RegularFile) => {}
                Some(FileType::Directory) => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
            if inode.has_extents() {
                return Err(Errno::EROFS);
            }
            file_write::set_size(&self.vol, a, &mut inode, size)
                .map_err(|e| self.err("truncate", node, e))?;
            inode.mtime = t;
        }
        if let Some(at) = set.atime {
            inode.atime = at.resolve(t);
        }
        if let Some(mt) = set.mtime {
            inode.mtime = mt.resolve(t);
        }
        inode.ctime = set.ctime.unwrap_or(t);
        self.vol
            .write_inode(&inode)
            .map_err(|e| self.err("setattr", node, e))?;
        Ok(AttrOut {
            attr: self.attr_of(&inode),
            ttl: self.ttl(),
        })
    }

    pub(super) fn do_write(&self, node: NodeId, offset: u64, data: &[u8]) -> Result<u32> {
        let a = self.alloc()?;
        let ino = self.ino_of(node)?;
        let _op = self.begin()?;
        let _held = self.locks.lock(&[ino]);
        let mut inode = self.inode(node)?;
        match inode.kind() {
            Some(FileType::RegularFile) => {}
            Some(FileType::Directory) => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        if inode.has_extents() {
            return Err(Errno::EROFS);
        }
        privs::kill_capability(&self.vol, a, &mut inode).map_err(|e| self.err("write", node, e))?;
        let (done, r) = file_write::write(&self.vol, a, &mut inode, offset, data);
        let t = now();
        inode.mtime = t;
        inode.ctime = t;
        // Write the inode even after a partial failure: blocks already mapped must be counted.
        self.vol
            .write_inode(&inode)
            .map_err(|e| self.err("write", node, e))?;
        match r {
            Err(e) if done == 0 => Err(self.err("write", node, e)),
            _ => u32::try_from(done).map_err(|_| Errno::EINVAL),
        }
    }

    pub(super) fn do_setxattr(
        &self,
        node: NodeId,
        name: &OsStr,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result<()> {
        let a = self.alloc()?;
        let ino = self.ino_of(node)?;
        let _op = self.begin()?;
        let _held = self.locks.lock(&[ino]);
        let mut inode = self.inode(node)?;
        match crate::xattr_write::set(&self.vol, a, &mut inode, name.as_bytes(), value, flags) {
            Ok(()) => {
                inode.ctime = now();
                self.vol
                    .write_inode(&inode)
                    .map_err(|e| self.err("setxattr", node, e))
            }
            Err(crate::xattr_write::SetError::Refused(errno)) => Err(Errno(errno)),
            Err(crate::xattr_write::SetError::Image(e)) => Err(self.err("setxattr", node, e)),
        }
    }
}
