//! A host directory served as a [`squashbox_vfs::Filesystem`].
//!
//! Every operation goes through file descriptors: the served directory is held as an
//! `O_PATH` descriptor, each name is opened one component at a time under its parent's
//! descriptor with `O_NOFOLLOW` (and `openat2` with `RESOLVE_BENEATH` where the kernel has
//! it), and attributes come from `fstatat(AT_EMPTY_PATH)`. A symlink or `..` in the tree is
//! served as what it is and never followed, so nothing outside the directory is reached.
//!
//! - [`nodes`]: node ids (the host's inode numbers, or a stated remap) and where each node
//!   was last seen;
//! - [`fd_cache`]: a bounded LRU set of `O_PATH` descriptors; a node without one is opened
//!   again from its parent's descriptor and name, checked against its device and inode
//!   number;
//! - [`handles`]: open files and directories, each with its own descriptor, also found by
//!   node (calls without a handle use an open one's descriptor where there is one);
//! - [`fresh`]: nodes made here with no xattr set since (some xattr reads need no host call);
//! - [`sys`] and [`xattr`]: the system calls;
//! - `read_ops`, `write_ops` and `filesystem`: the [`squashbox_vfs::Filesystem`]
//!   implementation.
//!
//! Owners: as root, what a request creates gets the caller's uid and gid (the group of a
//! set-group-id parent stays); otherwise the process's own. Times, modes, xattrs, hard
//! links and holes are the host's.

#![warn(missing_docs)]

pub mod fd_cache;
mod filesystem;
pub mod fresh;
pub mod handles;
pub mod nodes;
mod read_ops;
pub mod sys;
mod write_ops;
pub mod xattr;

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use squashbox_vfs::{
    Attr, Entry, Errno, FaultLog, FileType, NodeId, ROOT_ID, Request, Result, Timespec,
};

use crate::fd_cache::FdCache;
use crate::fresh::FreshSet;
use crate::handles::HandleTable;
use crate::nodes::NodeTable;
use crate::xattr::XattrTarget;

/// How to serve the directory.
#[derive(Debug, Clone)]
pub struct HostDirOptions {
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// Most `O_PATH` descriptors kept open for nodes (open files hold their own besides).
    /// Default: a quarter of the soft `RLIMIT_NOFILE` when made (the FUSE session raises it
    /// to the hard limit first), between 1024 and 65536: a node whose descriptor was evicted
    /// costs an `openat2` and an `fstat` to find again.
    pub fd_limit: usize,
    /// How long the kernel may cache entries and attributes (others may change the
    /// directory too).
    pub ttl: Duration,
    /// Nodes kept known after the kernel forgot them (so late requests still find them).
    pub keep_forgotten: usize,
}

impl Default for HostDirOptions {
    fn default() -> Self {
        HostDirOptions {
            read_only: false,
            fd_limit: default_fd_limit(),
            ttl: Duration::from_secs(1),
            keep_forgotten: 4096,
        }
    }
}

/// A quarter of the soft `RLIMIT_NOFILE`, between 1024 and 65536.
fn default_fd_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        0
    };
    (soft / 4).clamp(1024, 65536)
}

/// A host directory served as a filesystem.
pub struct HostDir {
    name: String,
    root: Arc<OwnedFd>,
    nodes: NodeTable,
    fds: FdCache,
    handles: HandleTable,
    fresh: FreshSet,
    faults: FaultLog,
    opts: HostDirOptions,
    as_root: bool,
}

/// The new_encode_dev form of a host `dev_t` (what FUSE carries).
pub fn encode_dev(dev: libc::dev_t) -> u32 {
    let major = libc::major(dev);
    let minor = libc::minor(dev);
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// A host `dev_t` from the new_encode_dev form.
pub fn decode_dev(dev: u32) -> libc::dev_t {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    libc::makedev(major, minor)
}

fn timespec(secs: i64, nsecs: i64) -> Timespec {
    Timespec {
        secs,
        nsecs: nsecs.clamp(0, 999_999_999) as u32,
    }
}

/// The type of a host `st_mode`.
pub fn kind_of(mode: u32) -> Result<FileType> {
    FileType::from_mode(mode).ok_or(Errno::EIO)
}

/// A name that may be looked up or created: one non-empty component, not "." or "..".
fn check_name(name: &OsStr) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.contains(&b'/') || b.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if b == b"." || b == b".." {
        return Err(Errno::ENOENT);
    }
    if b.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl HostDir {
    /// Serve the directory at `path` (resolved once, here; symlinks in `path` itself are
    /// followed, nothing inside it ever is).
    pub fn open(path: &Path, opts: HostDirOptions) -> std::result::Result<HostDir, String> {
        let name = path.display().to_string();
        let c = sys::cstr(path.as_os_str()).map_err(|_| format!("{name}: path holds a NUL"))?;
        // SAFETY: `c` is NUL-terminated and lives across the call.
        let rc = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if rc < 0 {
            return Err(format!("{name}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let root = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(rc) };
        let st = sys::fstat(root.as_fd()).map_err(|e| format!("{name}: stat: {e}"))?;
        Ok(HostDir {
            nodes: NodeTable::new(st.st_dev, st.st_ino, opts.keep_forgotten),
            fds: FdCache::new(opts.fd_limit),
            handles: HandleTable::default(),
            fresh: FreshSet::default(),
            faults: FaultLog::new(&name),
            root: Arc::new(root),
            opts,
            as_root: sys::is_root(),
            name,
        })
    }

    /// The directory served (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fault log.
    pub fn faults(&self) -> &FaultLog {
        &self.faults
    }

    /// `O_PATH` descriptors held for nodes now (never above the limit).
    pub fn cached_fds(&self) -> usize {
        self.fds.len()
    }

    /// Nodes known now (the root included).
    pub fn known_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Open file and directory handles.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    fn unknown(&self, node: NodeId) -> Errno {
        self.faults.warn(
            "request for a node never handed out or forgotten",
            node,
            &node,
        );
        Errno::ESTALE
    }

    fn writable(&self) -> Result<()> {
        if self.opts.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    fn drop_fds(&self, dropped: Vec<NodeId>) {
        for n in dropped {
            self.fds.remove(n);
            self.fresh.clear(n);
        }
    }

    /// The `O_PATH` descriptor of `node`: from the cache, or opened again from the nearest
    /// ancestor that has one, each step checked against the recorded device and inode.
    fn fd_of(&self, node: NodeId) -> Result<Arc<OwnedFd>> {
        if node == ROOT_ID {
            return Ok(Arc::clone(&self.root));
        }
        if let Some(fd) = self.fds.get(node) {
            return Ok(fd);
        }
        let mut chain = Vec::new();
        let mut cur = node;
        let base = loop {
            let loc = self.nodes.location(cur).ok_or_else(|| self.unknown(node))?;
            let parent = loc.parent;
            chain.push((cur, loc));
            if parent == ROOT_ID {
                break Arc::clone(&self.root);
            }
            if let Some(fd) = self.fds.get(parent) {
                break fd;
            }
            if chain.len() > 65536 {
                self.faults.warn("node parents form a loop", node, &node);
                return Err(Errno::ELOOP);
            }
            cur = parent;
        };
        let mut dir = base;
        for (id, loc) in chain.into_iter().rev() {
            let fd = sys::open_beneath(dir.as_fd(), &loc.name, libc::O_PATH, 0)?;
            let st = sys::fstat(fd.as_fd())?;
            if (st.st_dev, st.st_ino) != (loc.dev, loc.ino) {
                self.faults.warn(
                    "a name now leads to another inode (changed behind the server)",
                    id,
                    &loc.name.to_string_lossy(),
                );
                return Err(Errno::ESTALE);
            }
            let fd = Arc::new(fd);
            self.fds.insert(id, Arc::clone(&fd));
            dir = fd;
        }
        Ok(dir)
    }

    /// The type of `node` as the node table knows it (no system call).
    fn kind_known(&self, node: NodeId) -> Result<FileType> {
        if node == ROOT_ID {
            return Ok(FileType::Directory);
        }
        self.nodes.kind(node).ok_or_else(|| self.unknown(node))
    }

    fn attr_of(&self, node: NodeId, st: &libc::stat) -> Result<Attr> {
        Ok(Attr {
            ino: self.nodes.st_ino(node),
            kind: kind_of(st.st_mode)?,
            perm: (st.st_mode & 0o7777) as u16,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            nlink: u32::try_from(st.st_nlink).unwrap_or(u32::MAX),
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: encode_dev(st.st_rdev),
            atime: timespec(st.st_atime, st.st_atime_nsec),
            mtime: timespec(st.st_mtime, st.st_mtime_nsec),
            ctime: timespec(st.st_ctime, st.st_ctime_nsec),
            blksize: u32::try_from(st.st_blksize).unwrap_or(4096),
        })
    }

    fn entry_of(&self, node: NodeId, st: &libc::stat) -> Result<Entry> {
        Ok(Entry {
            node,
            generation: 0,
            attr: self.attr_of(node, st)?,
            entry_ttl: self.opts.ttl,
            attr_ttl: self.opts.ttl,
        })
    }

    /// Look `name` up in `parent` (whose descriptor is `dir`), counting one lookup.
    fn lookup_in(
        &self,
        parent: NodeId,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<Option<Entry>> {
        check_name(name)?;
        let fd = match sys::open_beneath(dir, name, libc::O_PATH, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let st = sys::fstat(fd.as_fd())?;
        self.remember(parent, name, &st, Some(fd)).map(Some)
    }

    /// Record one lookup of the inode `st` describes as `name` in `parent`, keeping its
    /// `O_PATH` descriptor if given (without one, the node is opened again from its parent
    /// when first needed).
    fn remember(
        &self,
        parent: NodeId,
        name: &OsStr,
        st: &libc::stat,
        fd: Option<OwnedFd>,
    ) -> Result<Entry> {
        let kind = kind_of(st.st_mode)?;
        let (id, dropped) = self
            .nodes
            .remember(parent, name, st.st_dev, st.st_ino, kind);
        self.drop_fds(dropped);
        if let (Some(fd), false) = (fd, id == ROOT_ID) {
            self.fds.insert(id, Arc::new(fd));
        }
        self.entry_of(id, st)
    }

    /// Record a node this server has just made (`st` its attributes): counted as one
    /// lookup, and fresh (see [`fresh`]).
    fn remember_new(&self, parent: NodeId, name: &OsStr, st: &libc::stat) -> Result<Entry> {
        let entry = self.remember(parent, name, st, None)?;
        self.fresh.mark(entry.node);
        Ok(entry)
    }

    /// After creating `name` in `parent`: give it the caller's owner (as root) and the
    /// asked-for mode, and record it (keeping the `O_PATH` descriptor opened here).
    fn finish_create(
        &self,
        req: &Request,
        parent: NodeId,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        mode: u32,
    ) -> Result<Entry> {
        let fd = sys::open_beneath(dir, name, libc::O_PATH, 0)?;
        let st = self.settle_new(req, dir, fd.as_fd(), mode)?;
        let entry = self.remember(parent, name, &st, Some(fd))?;
        self.fresh.mark(entry.node);
        Ok(entry)
    }

    /// Owner and mode of a node this server just made (`fd` any descriptor of it); returns
    /// its attributes after that.
    fn settle_new(
        &self,
        req: &Request,
        dir: BorrowedFd<'_>,
        fd: BorrowedFd<'_>,
        mode: u32,
    ) -> Result<libc::stat> {
        let mut st = sys::fstat(fd)?;
        if self.as_root && (st.st_uid != req.uid || st.st_gid != req.gid) {
            let parent = sys::fstat(dir)?;
            let gid = if parent.st_mode & libc::S_ISGID != 0 {
                u32::MAX
            } else {
                req.gid
            };
            sys::chown_fd(fd, req.uid, gid)?;
            st = sys::fstat(fd)?;
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            let mut want = mode & 0o7777 & !req.umask;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                want |= st.st_mode & libc::S_ISGID;
            }
            if st.st_mode & 0o7777 != want {
                sys::chmod_fd(fd, want)?;
                st = sys::fstat(fd)?;
            }
        }
        Ok(st)
    }

    /// Whether `name` is certainly absent from `node` without asking the host (see
    /// [`fresh`]).
    fn xattr_absent(&self, node: NodeId, name: &OsStr) -> bool {
        fresh::absent_when_fresh(name.as_bytes()) && self.fresh.contains(node)
    }

    /// How to reach the xattrs of `node` without following it; the second value keeps the
    /// descriptor the target uses open.
    fn xattr_target(&self, node: NodeId) -> Result<(XattrTarget, XattrKeep)> {
        use std::os::fd::AsRawFd;
        if let Some(h) = self.handles.any_for(node) {
            return Ok((XattrTarget::Fd(h.fd.as_raw_fd()), XattrKeep::Handle(h)));
        }
        let fd = self.fd_of(node)?;
        if self.kind_known(node)? != FileType::Symlink {
            let path = sys::proc_path(fd.as_raw_fd());
            return Ok((XattrTarget::Path { path, follow: true }, XattrKeep::Fd(fd)));
        }
        let st = sys::fstat(fd.as_fd())?;
        let loc = self
            .nodes
            .location(node)
            .ok_or_else(|| self.unknown(node))?;
        let dir = self.fd_of(loc.parent)?;
        let here = sys::stat_at(dir.as_fd(), &loc.name)?;
        if (here.st_dev, here.st_ino) != (st.st_dev, st.st_ino) {
            return Err(Errno::ESTALE);
        }
        let path = sys::proc_child(dir.as_raw_fd(), &loc.name)?;
        Ok((
            XattrTarget::Path {
                path,
                follow: false,
            },
            XattrKeep::Fd(dir),
        ))
    }
}

/// What keeps an [`XattrTarget`]'s descriptor open while it is used.
#[allow(dead_code)] // held only to be dropped after the calls
enum XattrKeep {
    Fd(Arc<OwnedFd>),
    Handle(Arc<handles::Handle>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        for (maj, min) in [(0, 0), (1, 3), (8, 17), (259, 70000), (4095, 1 << 19)] {
            let d = libc::makedev(maj, min);
            assert_eq!(decode_dev(encode_dev(d)), d, "{maj}:{min}");
        }
        assert_eq!(encode_dev(libc::makedev(1, 3)), 0x103);
    }

    #[test]
    fn names_are_single_components() {
        assert_eq!(check_name(OsStr::new("a/b")), Err(Errno::EINVAL));
        assert_eq!(check_name(OsStr::new("..")), Err(Errno::ENOENT));
        assert_eq!(check_name(OsStr::new("")), Err(Errno::EINVAL));
        assert_eq!(check_name(OsStr::new("ok")), Ok(()));
    }
}
