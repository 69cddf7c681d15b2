//! Setting and removing extended attributes: the whole set is rebuilt and laid out again,
//! in-inode first (as many as fit, in order), the rest in one block sorted the kernel's way
//! (index, name length, name), with entry and block hashes e2fsck checks. POSIX ACLs are
//! converted from the VFS form to ext4's compact form.

use crate::alloc::Allocator;
use crate::bytes::{le16, le32};
use crate::error::{Error, Result};
use crate::inode::{GOOD_OLD_INODE_SIZE, Inode};
use crate::volume::Volume;
use crate::xattr::{MAGIC, RawXattr, list_raw};

/// setxattr flag: fail if the attribute exists.
pub const XATTR_CREATE: i32 = 1;
/// setxattr flag: fail if the attribute does not exist.
pub const XATTR_REPLACE: i32 = 2;

/// Why a change was refused (as an errno), or an image error.
#[derive(Debug)]
pub enum SetError {
    /// Refused with this errno (EEXIST, ENODATA, ENOSPC, EOPNOTSUPP, EINVAL, ERANGE).
    Refused(i32),
    /// The image failed.
    Image(Error),
}

impl From<Error> for SetError {
    fn from(e: Error) -> SetError {
        SetError::Image(e)
    }
}

/// Split a full name into (index, suffix).
pub fn split_name(name: &[u8]) -> Option<(u8, &[u8])> {
    const PREFIXES: [(&[u8], u8); 4] = [
        (b"user.", 1),
        (b"trusted.", 4),
        (b"security.", 6),
        (b"system.", 7),
    ];
    if name == b"system.posix_acl_access" {
        return Some((2, b""));
    }
    if name == b"system.posix_acl_default" {
        return Some((3, b""));
    }
    PREFIXES
        .iter()
        .find(|(p, _)| name.starts_with(p) && name.len() > p.len())
        .map(|(p, i)| (*i, &name[p.len()..]))
}

/// A VFS `system.posix_acl_*` value (version 2) in ext4's compact form (version 1).
pub fn acl_from_vfs(v: &[u8]) -> Option<Vec<u8>> {
    if v.len() < 4 || le32(v, 0) != 2 || !(v.len() - 4).is_multiple_of(8) {
        return None;
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in v[4..].chunks(8) {
        let tag = le16(e, 0);
        out.extend_from_slice(&e[0..4]);
        match tag {
            0x02 | 0x08 => out.extend_from_slice(&e[4..8]),
            0x01 | 0x04 | 0x10 | 0x20 => {}
            _ => return None,
        }
    }
    Some(out)
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn entry_size(x: &RawXattr) -> usize {
    pad4(16 + x.name.len())
}

/// e_hash of an entry (name chars, then the padded value's 32-bit words).
pub fn entry_hash(x: &RawXattr) -> u32 {
    let mut h = 0u32;
    for &c in &x.name {
        h = (h << 5) ^ (h >> 27) ^ (c as i8 as i32 as u32);
    }
    let mut v = x.value.clone();
    v.resize(pad4(v.len()), 0);
    for w in v.chunks(4) {
        h = (h << 16) ^ (h >> 16) ^ le32(w, 0);
    }
    h
}

/// Lay `xs` out in `area` (entries from `entries_at`, values from the end down, value
/// offsets relative to `value_base`). The caller checked that they fit.
fn lay_out(area: &mut [u8], entries_at: usize, value_base: usize, xs: &[RawXattr]) -> Vec<u32> {
    let mut hashes = Vec::new();
    let mut pos = entries_at;
    let mut vend = area.len();
    for x in xs {
        let vlen = pad4(x.value.len());
        vend -= vlen;
        area[vend..vend + x.value.len()].copy_from_slice(&x.value);
        let h = entry_hash(x);
        hashes.push(h);
        area[pos] = x.name.len() as u8;
        area[pos + 1] = x.index;
        let offs = if x.value.is_empty() {
            0
        } else {
            vend - value_base
        };
        area[pos + 2..pos + 4].copy_from_slice(&(offs as u16).to_le_bytes());
        area[pos + 4..pos + 8].fill(0);
        area[pos + 8..pos + 12].copy_from_slice(&(x.value.len() as u32).to_le_bytes());
        area[pos + 12..pos + 16].copy_from_slice(&h.to_le_bytes());
        area[pos + 16..pos + 16 + x.name.len()].copy_from_slice(&x.name);
        pos += entry_size(x);
    }
    hashes
}

/// Set (`value` Some) or remove (None) attribute `name` of `inode` under `flags`. The
/// caller writes the inode back on success.
pub fn set(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    name: &[u8],
    value: Option<&[u8]>,
    flags: i32,
) -> std::result::Result<(), SetError> {
    let (index, suffix) = split_name(name).ok_or(SetError::Refused(libc::EOPNOTSUPP))?;
    if index == 7 || suffix.len() > 255 {
        return Err(SetError::Refused(if index == 7 {
            libc::EOPNOTSUPP
        } else {
            libc::ERANGE
        }));
    }
    let mut all = list_raw(vol, inode)?;
    let found = all
        .iter()
        .position(|x| x.index == index && x.name == suffix);
    match (found, value) {
        (Some(_), Some(_)) if flags & XATTR_CREATE != 0 => {
            return Err(SetError::Refused(libc::EEXIST));
        }
        (None, Some(_)) if flags & XATTR_REPLACE != 0 => {
            return Err(SetError::Refused(libc::ENODATA));
        }
        (None, None) => return Err(SetError::Refused(libc::ENODATA)),
        _ => {}
    }
    let stored = match value {
        Some(v) if index == 2 || index == 3 => {
            Some(acl_from_vfs(v).ok_or(SetError::Refused(libc::EINVAL))?)
        }
        Some(v) => Some(v.to_vec()),
        None => None,
    };
    match (found, stored) {
        (Some(i), Some(v)) => all[i].value = v,
        (Some(i), None) => {
            all.remove(i);
        }
        (None, Some(v)) => all.push(RawXattr {
            index,
            name: suffix.to_vec(),
            value: v,
            in_inode: true,
        }),
        (None, None) => unreachable!("handled above"),
    }
    store(vol, alloc, inode, all)
}

fn store(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    all: Vec<RawXattr>,
) -> std::result::Result<(), SetError> {
    let bs = vol.block_size() as usize;
    // In-inode room: after 128 + i_extra_isize, less the magic and the end marker.
    let ibase = GOOD_OLD_INODE_SIZE + usize::from(inode.extra_isize);
    let iroom = inode.raw.len().saturating_sub(ibase + 8);
    let mut used = 0usize;
    let (mut inside, mut block): (Vec<RawXattr>, Vec<RawXattr>) = (Vec::new(), Vec::new());
    for x in all {
        let need = entry_size(&x) + pad4(x.value.len());
        if inode.raw.len() > ibase + 8 && used + need <= iroom && block.is_empty() {
            used += need;
            inside.push(x);
        } else {
            block.push(x);
        }
    }
    block.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
    let bneed: usize = block
        .iter()
        .map(|x| entry_size(x) + pad4(x.value.len()))
        .sum();
    if bneed > bs - 32 - 4 {
        return Err(SetError::Refused(libc::ENOSPC));
    }
    // In-inode area.
    if inode.raw.len() > ibase + 4 {
        let area = &mut inode.raw[ibase..];
        area.fill(0);
        if !inside.is_empty() {
            area[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            lay_out(area, 4, 4, &inside);
        }
    }
    // The block.
    if block.is_empty() {
        if inode.file_acl != 0 {
            release_block(vol, alloc, inode)?;
        }
        return Ok(());
    }
    let shared =
        inode.file_acl != 0 && le32(&vol.read_block(inode.file_acl, Some(inode.ino))?, 4) > 1;
    if inode.file_acl == 0 || shared {
        if shared {
            release_block(vol, alloc, inode)?;
        }
        let goal = vol.inode_location(inode.ino)?.0;
        let (b, _) = alloc.alloc_blocks(vol, goal, 1)?;
        inode.file_acl = b;
        inode.blocks_raw += u64::from(vol.block_size() / 512);
    }
    let mut b = vec![0u8; bs];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    let hashes = lay_out(&mut b, 32, 0, &block);
    let mut h = 0u32;
    for eh in hashes {
        if eh == 0 {
            h = 0;
            break;
        }
        h = (h << 16) ^ (h >> 16) ^ eh;
    }
    b[12..16].copy_from_slice(&h.to_le_bytes());
    vol.write_new_block(inode.file_acl, b)?;
    Ok(())
}

/// Drop `inode`'s reference to its xattr block, freeing it with the last reference.
pub fn release_block(vol: &Volume, alloc: &Allocator, inode: &mut Inode) -> Result<()> {
    let blk = inode.file_acl;
    let refs = vol.modify_block(blk, Some(inode.ino), |b| {
        let r = le32(b, 4);
        if r > 1 {
            b[4..8].copy_from_slice(&(r - 1).to_le_bytes());
        }
        r
    })?;
    if refs <= 1 {
        alloc.free_blocks_run(vol, inode.ino, blk, 1)?;
    }
    inode.file_acl = 0;
    inode.blocks_raw = inode
        .blocks_raw
        .saturating_sub(u64::from(vol.block_size() / 512));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_acls() {
        assert_eq!(split_name(b"user.x"), Some((1, &b"x"[..])));
        assert_eq!(split_name(b"user."), None);
        assert_eq!(split_name(b"system.posix_acl_default"), Some((3, &b""[..])));
        assert_eq!(split_name(b"other.x"), None);
        let mut vfs = 2u32.to_le_bytes().to_vec();
        vfs.extend_from_slice(&[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff]);
        vfs.extend_from_slice(&[2, 0, 4, 0, 0xe8, 3, 0, 0]);
        vfs.extend_from_slice(&[0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff]);
        let disk = acl_from_vfs(&vfs).unwrap();
        assert_eq!(crate::xattr::acl_to_vfs(&disk).unwrap(), vfs);
    }
}
