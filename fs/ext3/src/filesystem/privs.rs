//! Dropping privileges on change, as the kernel does for local filesystems: a write,
//! truncation or chown removes `security.capability`, and a chown of a non-directory clears
//! set-user-ID (and set-group-ID when group-execute is set). The mount asks the kernel to
//! leave this to us (`MountPolicy::kills_privs`, FUSE_HANDLE_KILLPRIV_V2), which spares a
//! `getxattr(security.capability)` round trip before every write. The FUSE adapter clears
//! set-IDs on writes and truncation by unprivileged callers.

use crate::alloc::Allocator;
use crate::bytes::le32;
use crate::error::Error;
use crate::inode::{GOOD_OLD_INODE_SIZE, Inode};
use crate::volume::Volume;
use crate::xattr::{self, MAGIC};
use crate::xattr_write::{self, SetError};

/// e_name_index of `security.`.
const SECURITY: u8 = 6;

/// Whether `inode` may carry any xattr (an xattr block, or the in-inode area's magic).
fn may_have_xattrs(inode: &Inode) -> bool {
    if inode.file_acl != 0 {
        return true;
    }
    let at = GOOD_OLD_INODE_SIZE + usize::from(inode.extra_isize);
    inode.extra_isize != 0 && inode.raw.len() >= at + 4 && le32(&inode.raw, at) == MAGIC
}

/// Remove `security.capability` from `inode` if it has one. The caller writes the inode
/// back.
pub fn kill_capability(vol: &Volume, alloc: &Allocator, inode: &mut Inode) -> Result<(), Error> {
    if !may_have_xattrs(inode) {
        return Ok(());
    }
    let has = xattr::list_raw(vol, inode)?
        .iter()
        .any(|x| x.index == SECURITY && x.name == b"capability");
    if !has {
        return Ok(());
    }
    match xattr_write::set(vol, alloc, inode, b"security.capability", None, 0) {
        Ok(()) | Err(SetError::Refused(_)) => Ok(()),
        Err(SetError::Image(e)) => Err(e),
    }
}

/// The mode after a chown of `mode`: set-user-ID cleared, and set-group-ID when
/// group-execute is set (a set-group-ID bit without it marks mandatory locking), for
/// non-directories.
pub fn mode_after_chown(mode: u16) -> u16 {
    if mode & 0o170000 == 0o040000 {
        return mode;
    }
    let mut m = mode & !0o4000;
    if m & 0o010 != 0 {
        m &= !0o2000;
    }
    m
}
