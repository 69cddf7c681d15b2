//! The reading half of the host directory: attributes, links, opens, reads, listings,
//! statfs, xattrs, access and lseek.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use squashbox_vfs::{
    AttrOut, DirItem, DirVisitor, Entry, Errno, FileHandle, FileType, NodeId, OpenFlags, Opened,
    ROOT_ID, ReadReply, Result, StatFs, Whence, XattrData,
};

use crate::{HostDir, kind_of, sys};

/// Bytes asked of `getdents64` per call.
const DIRENT_BUF: usize = 32 * 1024;

/// A descriptor to do I/O with: the handle's, or a fresh one for handle-less calls.
pub(crate) enum IoFd {
    Handle(Arc<crate::handles::Handle>),
    Fresh(OwnedFd),
}

impl IoFd {
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            IoFd::Handle(h) => h.fd.as_fd(),
            IoFd::Fresh(f) => f.as_fd(),
        }
    }
}

fn dtype_kind(dtype: u8) -> Option<FileType> {
    Some(match dtype {
        libc::DT_DIR => FileType::Directory,
        libc::DT_REG => FileType::RegularFile,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_BLK => FileType::BlockDevice,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        _ => return None,
    })
}

impl HostDir {
    /// The handle `fh` if given and open, else a fresh descriptor of `node` opened with
    /// `flags` (regular files only, unless `flags` asks for a directory).
    pub(crate) fn io_fd(&self, node: NodeId, fh: FileHandle, flags: i32) -> Result<IoFd> {
        if let Some(h) = self.handles.get(fh) {
            return Ok(IoFd::Handle(h));
        }
        let fd = self.fd_of(node)?;
        let st = sys::fstat(fd.as_fd())?;
        let want_dir = flags & libc::O_DIRECTORY != 0;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG if !want_dir => {}
            libc::S_IFDIR if want_dir => {}
            libc::S_IFDIR => return Err(Errno::EISDIR),
            _ if want_dir => return Err(Errno::ENOTDIR),
            _ => return Err(Errno::EINVAL),
        }
        Ok(IoFd::Fresh(sys::reopen(fd.as_fd(), flags)?))
    }

    pub(crate) fn do_lookup(&self, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        let dir = self.fd_of(parent)?;
        self.lookup_in(parent, dir.as_fd(), name)
    }

    pub(crate) fn do_forget(&self, node: NodeId, n: u64) {
        let dropped = self.nodes.forget(node, n);
        self.drop_fds(dropped);
    }

    pub(crate) fn do_getattr(&self, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut> {
        let st = match fh.and_then(|f| self.handles.get(f)) {
            Some(h) => sys::fstat(h.fd.as_fd())?,
            None => sys::fstat(self.fd_of(node)?.as_fd())?,
        };
        Ok(AttrOut {
            attr: self.attr_of(node, &st)?,
            ttl: self.opts.ttl,
        })
    }

    pub(crate) fn do_readlink(&self, node: NodeId) -> Result<Vec<u8>> {
        let fd = self.fd_of(node)?;
        let st = sys::fstat(fd.as_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        sys::readlink_fd(fd.as_fd())
    }

    pub(crate) fn do_open(&self, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        if flags.writes() || flags.has(libc::O_TRUNC) {
            self.writable()?;
        }
        // Direct I/O would need aligned buffers the kernel does not promise us.
        let host_flags = flags.0 & !(libc::O_DIRECT | libc::O_DIRECTORY);
        let IoFd::Fresh(fd) = self.io_fd(node, FileHandle(0), host_flags)? else {
            unreachable!("no handle was given");
        };
        Ok(Opened {
            fh: self.handles.insert(node, fd),
            ..Opened::default()
        })
    }

    pub(crate) fn do_read(
        &self,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>> {
        let io = self.io_fd(node, fh, libc::O_RDONLY)?;
        let mut buf = vec![0u8; size as usize];
        let n = sys::pread_full(io.fd(), &mut buf, offset)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub(crate) fn answer_read(
        &self,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        size: u32,
        reply: ReadReply,
    ) {
        reply.result(self.do_read(node, fh, offset, size));
    }

    pub(crate) fn do_opendir(&self, node: NodeId) -> Result<Opened> {
        let IoFd::Fresh(fd) =
            self.io_fd(node, FileHandle(0), libc::O_RDONLY | libc::O_DIRECTORY)?
        else {
            unreachable!("no handle was given");
        };
        Ok(Opened {
            fh: self.handles.insert(node, fd),
            ..Opened::default()
        })
    }

    pub(crate) fn do_release(&self, fh: FileHandle) {
        self.handles.remove(fh);
    }

    /// Listing offsets: 1 after ".", 2 after "..", and the host's `d_off` + 2 after a real
    /// entry, so a listing resumes where the host's directory position says (also for
    /// handle-less calls, which open the directory afresh).
    pub(crate) fn do_readdir(
        &self,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        let io = self.io_fd(node, fh, libc::O_RDONLY | libc::O_DIRECTORY)?;
        let _guard = match &io {
            IoFd::Handle(h) => Some(h.dir_lock.lock()),
            IoFd::Fresh(_) => None,
        };
        let dir = io.fd();
        let dir_st = sys::fstat(dir)?;
        if dir_st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        if offset == 0 {
            let item = DirItem {
                name: OsStr::new("."),
                ino: self.nodes.st_ino(node),
                kind: FileType::Directory,
                next_offset: 1,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        if offset <= 1 {
            let parent = match node {
                ROOT_ID => ROOT_ID,
                n => self.nodes.location(n).map_or(n, |l| l.parent),
            };
            let item = DirItem {
                name: OsStr::new(".."),
                ino: self.nodes.st_ino(parent),
                kind: FileType::Directory,
                next_offset: 2,
            };
            if !visit(item, None) {
                return Ok(());
            }
        }
        let start = offset.saturating_sub(2);
        sys::lseek(dir, start, libc::SEEK_SET)?;
        let mut buf = vec![0u8; DIRENT_BUF];
        loop {
            let batch = sys::getdents(dir, &mut buf)?;
            if batch.is_empty() {
                return Ok(());
            }
            for d in batch {
                if d.name == b"." || d.name == b".." {
                    continue;
                }
                if d.off <= 0 {
                    self.faults
                        .warn("host directory gave a d_off <= 0", node, &d.off);
                    return Err(Errno::EIO);
                }
                let next_offset = (d.off as u64) + 2;
                let name = OsStr::from_bytes(&d.name);
                if plus {
                    let Some(e) = self.lookup_in(node, dir, name)? else {
                        continue; // gone since getdents
                    };
                    let item = DirItem {
                        name,
                        ino: e.attr.ino,
                        kind: e.attr.kind,
                        next_offset,
                    };
                    if !visit(item, Some(&e)) {
                        self.do_forget(e.node, 1);
                        return Ok(());
                    }
                } else {
                    let kind = match dtype_kind(d.dtype) {
                        Some(k) => k,
                        None => match sys::stat_at(dir, name) {
                            Ok(st) => kind_of(st.st_mode)?,
                            Err(Errno::ENOENT) => continue,
                            Err(e) => return Err(e),
                        },
                    };
                    let id = self.nodes.id_for(dir_st.st_dev, d.ino);
                    let item = DirItem {
                        name,
                        ino: self.nodes.st_ino(id),
                        kind,
                        next_offset,
                    };
                    if !visit(item, None) {
                        return Ok(());
                    }
                }
            }
        }
    }

    pub(crate) fn do_statfs(&self) -> Result<StatFs> {
        let s = sys::statfs_fd(self.root.as_fd())?;
        Ok(StatFs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: u32::try_from(s.f_bsize).unwrap_or(4096),
            namelen: u32::try_from(s.f_namelen).unwrap_or(255),
            frsize: u32::try_from(s.f_frsize).unwrap_or(4096),
        })
    }

    pub(crate) fn do_getxattr(&self, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        if self.xattr_absent(node, name) {
            return Err(Errno::ENODATA);
        }
        let (t, _fd) = self.xattr_target(node)?;
        t.get(name, size)
    }

    pub(crate) fn do_listxattr(&self, node: NodeId, size: u32) -> Result<XattrData> {
        let (t, _fd) = self.xattr_target(node)?;
        t.list(size)
    }

    pub(crate) fn do_access(&self, node: NodeId, mask: i32) -> Result<()> {
        let fd = self.fd_of(node)?;
        if mask & libc::W_OK != 0 {
            self.writable()?;
        }
        let st = sys::fstat(fd.as_fd())?;
        if mask == libc::F_OK || st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            // A symlink's own permissions are always rwx; never look through it.
            return Ok(());
        }
        sys::access_fd(fd.as_fd(), mask)
    }

    pub(crate) fn do_lseek(
        &self,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        whence: Whence,
    ) -> Result<u64> {
        let w = match whence {
            Whence::Data => libc::SEEK_DATA,
            Whence::Hole => libc::SEEK_HOLE,
            Whence::Other(_) => return Err(Errno::EINVAL),
        };
        let io = self.io_fd(node, fh, libc::O_RDONLY)?;
        sys::lseek(io.fd(), offset, w)
    }
}
