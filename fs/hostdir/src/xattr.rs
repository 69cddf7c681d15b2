//! Extended attributes of a node, addressed without following anything.
//!
//! A node with an open handle is addressed through that handle's real descriptor with the
//! `f*` calls (no path walk). Otherwise there is no form of the xattr calls that takes an
//! `O_PATH` descriptor on every kernel, so a node is addressed through `/proc/self/fd`:
//! - anything but a symlink: `/proc/self/fd/N` of its own descriptor, with the following
//!   calls (the magic link lands on the inode itself, which is not a symlink, so nothing more
//!   is followed);
//! - a symlink: `/proc/self/fd/P/NAME` of its parent's descriptor, with the `l*` calls, which
//!   do not follow the final component.

use std::ffi::{CString, OsStr};
use std::os::fd::RawFd;

use squashbox_vfs::{Errno, Result, XattrData};

use crate::sys::{cstr, last};

/// How to reach one node's xattrs.
pub enum XattrTarget {
    /// An open (not `O_PATH`) descriptor of the node, which the caller keeps open across
    /// the calls: the `f*` calls.
    Fd(RawFd),
    /// A `/proc/self/fd/...` path.
    Path {
        /// The path.
        path: CString,
        /// Use the following calls (`getxattr`) rather than the `l*` ones.
        follow: bool,
    },
}

fn sized(rc: isize) -> Result<usize> {
    if rc < 0 { Err(last()) } else { Ok(rc as usize) }
}

impl XattrTarget {
    /// `getxattr` under the size-probe protocol of [`XattrData`].
    pub fn get(&self, name: &OsStr, size: u32) -> Result<XattrData> {
        let n = cstr(name)?;
        let mut buf = vec![0u8; size as usize];
        let (ptr, len) = if size == 0 {
            (std::ptr::null_mut(), 0)
        } else {
            (buf.as_mut_ptr().cast(), buf.len())
        };
        // SAFETY: the strings are NUL-terminated; `ptr`/`len` describe `buf` (or are null/0
        // for a size probe).
        let got = sized(unsafe {
            match self {
                XattrTarget::Fd(fd) => libc::fgetxattr(*fd, n.as_ptr(), ptr, len),
                XattrTarget::Path { path, follow: true } => {
                    libc::getxattr(path.as_ptr(), n.as_ptr(), ptr, len)
                }
                XattrTarget::Path { path, .. } => {
                    libc::lgetxattr(path.as_ptr(), n.as_ptr(), ptr, len)
                }
            }
        })?;
        if size == 0 {
            return Ok(XattrData::Size(
                u32::try_from(got).map_err(|_| Errno::E2BIG)?,
            ));
        }
        buf.truncate(got);
        Ok(XattrData::Data(buf))
    }

    /// The whole value of `name` (`None`: no such attribute, or none supported here).
    pub fn get_value(&self, name: &OsStr) -> Result<Option<Vec<u8>>> {
        let mut size = 256u32;
        loop {
            match self.get(name, size) {
                Ok(XattrData::Data(v)) => return Ok(Some(v)),
                Ok(XattrData::Size(_)) => unreachable!("asked with a buffer"),
                Err(Errno::ENODATA) | Err(Errno::EOPNOTSUPP) => return Ok(None),
                Err(Errno::ERANGE) if size < (1 << 20) => size *= 4,
                Err(e) => return Err(e),
            }
        }
    }

    /// `listxattr` under the size-probe protocol.
    pub fn list(&self, size: u32) -> Result<XattrData> {
        let mut buf = vec![0u8; size as usize];
        let (ptr, len) = if size == 0 {
            (std::ptr::null_mut(), 0)
        } else {
            (buf.as_mut_ptr().cast(), buf.len())
        };
        // SAFETY: the path is NUL-terminated; `ptr`/`len` describe `buf` or are null/0.
        let got = sized(unsafe {
            match self {
                XattrTarget::Fd(fd) => libc::flistxattr(*fd, ptr, len),
                XattrTarget::Path { path, follow: true } => {
                    libc::listxattr(path.as_ptr(), ptr, len)
                }
                XattrTarget::Path { path, .. } => libc::llistxattr(path.as_ptr(), ptr, len),
            }
        })?;
        if size == 0 {
            return Ok(XattrData::Size(
                u32::try_from(got).map_err(|_| Errno::E2BIG)?,
            ));
        }
        buf.truncate(got);
        Ok(XattrData::Data(buf))
    }

    /// `setxattr` with `flags` (XATTR_CREATE / XATTR_REPLACE).
    pub fn set(&self, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        let n = cstr(name)?;
        // SAFETY: the strings are NUL-terminated; the value pointer and length describe a
        // live slice.
        let (v, vlen) = (value.as_ptr().cast(), value.len());
        let rc = unsafe {
            match self {
                XattrTarget::Fd(fd) => libc::fsetxattr(*fd, n.as_ptr(), v, vlen, flags),
                XattrTarget::Path { path, follow: true } => {
                    libc::setxattr(path.as_ptr(), n.as_ptr(), v, vlen, flags)
                }
                XattrTarget::Path { path, .. } => {
                    libc::lsetxattr(path.as_ptr(), n.as_ptr(), v, vlen, flags)
                }
            }
        };
        if rc < 0 { Err(last()) } else { Ok(()) }
    }

    /// `removexattr`.
    pub fn remove(&self, name: &OsStr) -> Result<()> {
        let n = cstr(name)?;
        // SAFETY: both strings are NUL-terminated and live across the call.
        let rc = unsafe {
            match self {
                XattrTarget::Fd(fd) => libc::fremovexattr(*fd, n.as_ptr()),
                XattrTarget::Path { path, follow: true } => {
                    libc::removexattr(path.as_ptr(), n.as_ptr())
                }
                XattrTarget::Path { path, .. } => libc::lremovexattr(path.as_ptr(), n.as_ptr()),
            }
        };
        if rc < 0 { Err(last()) } else { Ok(()) }
    }
}
