//! The writing half of the host directory: setattr, creating and removing names, rename,
//! link, create, write, sync, fallocate, copy_file_range and xattr changes.

use std::ffi::OsStr;
use std::os::fd::AsFd;

use squashbox_vfs::{
    AttrOut, Entry, Errno, FileHandle, FileType, NodeId, OpenFlags, Opened, RenameFlags, Request,
    Result, SetAttr, TimeSet,
};

use crate::{HostDir, check_name, decode_dev, sys};

/// A name to create: like a lookup name, but "." and ".." exist already.
fn new_name(name: &OsStr) -> Result<()> {
    check_name(name).map_err(|e| if e == Errno::ENOENT { Errno::EEXIST } else { e })
}

fn utime(t: Option<TimeSet>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeSet::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeSet::At(t)) => libc::timespec {
            tv_sec: t.secs as libc::time_t,
            tv_nsec: libc::c_long::from(t.nsecs as i32),
        },
    }
}

impl HostDir {
    pub(crate) fn do_setattr(&self, node: NodeId, set: &SetAttr) -> Result<AttrOut> {
        self.writable()?;
        // An open handle of the node (never a symlink) serves every change directly, and
        // its descriptor answers the final fstat; otherwise the node's `O_PATH` descriptor,
        // whose type the node table already knows (a type never changes).
        let given = set
            .fh
            .and_then(|f| self.handles.get(f))
            .filter(|h| h.node == node);
        let truncate_with = given.clone();
        let handle = given.or_else(|| self.handles.any_for(node));
        let path_fd;
        let fd = match &handle {
            Some(h) => h.fd.as_fd(),
            None => {
                path_fd = self.fd_of(node)?;
                path_fd.as_fd()
            }
        };
        let is_link = handle.is_none() && self.kind_known(node)? == FileType::Symlink;
        if set.uid.is_some() || set.gid.is_some() {
            sys::chown_fd(fd, set.uid.unwrap_or(u32::MAX), set.gid.unwrap_or(u32::MAX))?;
        }
        if let Some(mode) = set.mode {
            if is_link {
                return Err(Errno::EOPNOTSUPP);
            }
            match &handle {
                Some(_) => sys::fchmod(fd, mode & 0o7777)?,
                None => sys::chmod_fd(fd, mode & 0o7777)?,
            }
        }
        if let Some(size) = set.size {
            // Only through the handle the kernel named (another may be read-only).
            match &truncate_with {
                Some(h) => sys::truncate_fd(h.fd.as_fd(), size)?,
                None => {
                    let io = self.io_fd(node, FileHandle(0), libc::O_WRONLY)?;
                    sys::truncate_fd(io.fd(), size)?;
                }
            }
        }
        if set.atime.is_some() || set.mtime.is_some() {
            sys::utimes_fd(fd, &[utime(set.atime), utime(set.mtime)])?;
        }
        let st = sys::fstat(fd)?;
        Ok(AttrOut {
            attr: self.attr_of(node, &st)?,
            ttl: self.opts.ttl,
        })
    }

    pub(crate) fn do_mknod(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<Entry> {
        self.writable()?;
        new_name(name)?;
        let dir = self.fd_of(parent)?;
        let m = (mode & libc::S_IFMT) | (mode & 0o7777 & !req.umask);
        sys::mknod_at(dir.as_fd(), name, m, decode_dev(rdev))?;
        self.finish_create(req, parent, dir.as_fd(), name, mode)
    }

    pub(crate) fn do_mkdir(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
    ) -> Result<Entry> {
        self.writable()?;
        new_name(name)?;
        let dir = self.fd_of(parent)?;
        sys::mkdir_at(dir.as_fd(), name, mode & 0o7777 & !req.umask)?;
        self.finish_create(req, parent, dir.as_fd(), name, mode)
    }

    pub(crate) fn do_symlink(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<Entry> {
        self.writable()?;
        new_name(name)?;
        let dir = self.fd_of(parent)?;
        sys::symlink_at(target, dir.as_fd(), name)?;
        self.finish_create(req, parent, dir.as_fd(), name, 0o777)
    }

    pub(crate) fn do_remove(&self, parent: NodeId, name: &OsStr, dir_flag: i32) -> Result<()> {
        self.writable()?;
        check_name(name).map_err(|e| {
            if e == Errno::ENOENT && dir_flag != 0 {
                Errno::EINVAL
            } else {
                e
            }
        })?;
        let dir = self.fd_of(parent)?;
        sys::unlink_at(dir.as_fd(), name, dir_flag)
    }

    pub(crate) fn do_rename(
        &self,
        parent: NodeId,
        name: &OsStr,
        new_parent: NodeId,
        new_name_: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        self.writable()?;
        if flags.has_unknown() {
            return Err(Errno::EINVAL);
        }
        check_name(name)?;
        new_name(new_name_)?;
        let odir = self.fd_of(parent)?;
        let ndir = self.fd_of(new_parent)?;
        let src = sys::stat_at(odir.as_fd(), name)?;
        let dst = if flags.has(RenameFlags::EXCHANGE) {
            Some(sys::stat_at(ndir.as_fd(), new_name_)?)
        } else {
            None
        };
        sys::rename_at(odir.as_fd(), name, ndir.as_fd(), new_name_, flags.0)?;
        let mut dropped = Vec::new();
        let id = self.nodes.id_for(src.st_dev, src.st_ino);
        if self.nodes.contains(id) {
            dropped.extend(self.nodes.moved(id, new_parent, new_name_));
        }
        if let Some(d) = dst {
            let id = self.nodes.id_for(d.st_dev, d.st_ino);
            if self.nodes.contains(id) {
                dropped.extend(self.nodes.moved(id, parent, name));
            }
        }
        self.drop_fds(dropped);
        Ok(())
    }

    pub(crate) fn do_link(&self, node: NodeId, new_parent: NodeId, name: &OsStr) -> Result<Entry> {
        self.writable()?;
        new_name(name)?;
        let fd = self.fd_of(node)?;
        let st = sys::fstat(fd.as_fd())?;
        let loc = self
            .nodes
            .location(node)
            .ok_or_else(|| self.unknown(node))?;
        let odir = self.fd_of(loc.parent)?;
        let here = sys::stat_at(odir.as_fd(), &loc.name)?;
        if (here.st_dev, here.st_ino) != (st.st_dev, st.st_ino) {
            return Err(Errno::ESTALE);
        }
        let ndir = self.fd_of(new_parent)?;
        sys::link_at(odir.as_fd(), &loc.name, ndir.as_fd(), name)?;
        self.lookup_in(new_parent, ndir.as_fd(), name)?
            .ok_or(Errno::ENOENT)
    }

    pub(crate) fn do_create(
        &self,
        req: &Request,
        parent: NodeId,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        self.writable()?;
        new_name(name)?;
        let dir = self.fd_of(parent)?;
        let base = flags.0 & !(libc::O_DIRECT | libc::O_CREAT | libc::O_EXCL | libc::O_DIRECTORY);
        let perm = mode & 0o7777 & !req.umask;
        // The kernel only sends CREATE after a lookup that missed, so the name is created
        // with O_EXCL straight away, and the descriptor it returns gives the attributes: no
        // lookup before or after. The node's `O_PATH` descriptor is opened when first needed
        // (calls on it while this handle is open use the handle's descriptor).
        let (fd, entry) =
            match sys::open_beneath(dir.as_fd(), name, base | libc::O_CREAT | libc::O_EXCL, perm) {
                Ok(fd) => {
                    let st = self.settle_new(req, dir.as_fd(), fd.as_fd(), mode)?;
                    let entry = self.remember_new(parent, name, &st)?;
                    (fd, entry)
                }
                // Created by someone else since the kernel's lookup: open what is there.
                Err(Errno::EEXIST) if !flags.has(libc::O_EXCL) => {
                    let fd = sys::open_beneath(dir.as_fd(), name, base, 0)?;
                    let entry = self
                        .lookup_in(parent, dir.as_fd(), name)?
                        .ok_or(Errno::ENOENT)?;
                    (fd, entry)
                }
                Err(e) => return Err(e),
            };
        let fh = self.handles.insert(entry.node, fd);
        Ok((
            entry,
            Opened {
                fh,
                ..Opened::default()
            },
        ))
    }

    pub(crate) fn do_write(
        &self,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
    ) -> Result<u32> {
        self.writable()?;
        let io = self.io_fd(node, fh, libc::O_WRONLY)?;
        let n = sys::pwrite_full(io.fd(), data, offset)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub(crate) fn do_fsync(
        &self,
        node: NodeId,
        fh: FileHandle,
        datasync: bool,
        dir: bool,
    ) -> Result<()> {
        let flags = if dir {
            libc::O_RDONLY | libc::O_DIRECTORY
        } else {
            libc::O_RDONLY
        };
        let io = self.io_fd(node, fh, flags)?;
        sys::sync_fd(io.fd(), datasync)
    }

    pub(crate) fn do_fallocate(
        &self,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        self.writable()?;
        let io = self.io_fd(node, fh, libc::O_WRONLY)?;
        sys::fallocate(io.fd(), mode, offset, length)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn do_copy_file_range(
        &self,
        node_in: NodeId,
        fh_in: FileHandle,
        offset_in: u64,
        node_out: NodeId,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: u32,
    ) -> Result<u32> {
        self.writable()?;
        let i = self.io_fd(node_in, fh_in, libc::O_RDONLY)?;
        let o = self.io_fd(node_out, fh_out, libc::O_WRONLY)?;
        let len = len.min(u64::from(u32::MAX));
        let n = sys::copy_range(i.fd(), offset_in, o.fd(), offset_out, len, flags)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub(crate) fn do_setxattr(
        &self,
        node: NodeId,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.writable()?;
        self.fresh.clear(node);
        let (t, _fd) = self.xattr_target(node)?;
        t.set(name, value, flags)
    }

    pub(crate) fn do_removexattr(&self, node: NodeId, name: &OsStr) -> Result<()> {
        self.writable()?;
        self.fresh.clear(node);
        let (t, _fd) = self.xattr_target(node)?;
        t.remove(name)
    }
}
