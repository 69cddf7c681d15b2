//! Extended attributes, read side: the in-inode area (after i_extra_isize) and the external
//! block (i_file_acl), each a list of entries with values inside the same area. POSIX ACLs
//! are stored in ext4's compact form and handed out in the VFS xattr form.

use crate::bytes::{le16, le32, u8_at};
use crate::error::Result;
use crate::inode::Inode;
use crate::volume::Volume;

/// Magic at the start of the in-inode area and of an xattr block.
pub const MAGIC: u32 = 0xEA02_0000;
/// Size of an xattr block's header.
const BLOCK_HEADER: usize = 32;
/// Size of an entry before its name.
const ENTRY_HEADER: usize = 16;

/// One attribute: full name (with its prefix) and value (ACLs already in VFS form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Full name, e.g. `user.comment`.
    pub name: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// The prefix of name index `idx`, if this driver knows it.
pub fn prefix(idx: u8) -> Option<&'static [u8]> {
    Some(match idx {
        1 => b"user.",
        2 => b"system.posix_acl_access",
        3 => b"system.posix_acl_default",
        4 => b"trusted.",
        6 => b"security.",
        7 => b"system.",
        8 => b"system.richacl",
        _ => return None,
    })
}

/// One attribute as stored: name index, name suffix, raw value, and whether it lives in
/// the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawXattr {
    /// e_name_index.
    pub index: u8,
    /// The name after its prefix.
    pub name: Vec<u8>,
    /// The stored value (ACLs in ext4's compact form).
    pub value: Vec<u8>,
    /// Whether it is stored in the inode (else in the block).
    pub in_inode: bool,
}

/// Every attribute of `inode`: in-inode ones first, then the block's.
pub fn list(vol: &Volume, inode: &Inode) -> Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for r in list_raw(vol, inode)? {
        let Some(p) = prefix(r.index) else { continue };
        let acl = r.index == 2 || r.index == 3;
        let value = if acl {
            acl_to_vfs(&r.value)
                .ok_or_else(|| vol.corrupt(Some(inode.ino), None, "malformed POSIX ACL"))?
        } else {
            r.value
        };
        let name = if acl {
            p.to_vec()
        } else {
            [p, &r.name[..]].concat()
        };
        out.push(Xattr { name, value });
    }
    Ok(out)
}

/// Every stored attribute of `inode`, as stored (unknown name indexes included).
pub fn list_raw(vol: &Volume, inode: &Inode) -> Result<Vec<RawXattr>> {
    let mut out = Vec::new();
    let (area, at) = inode.inline_xattr_area();
    if area.len() >= 4 && le32(area, 0) == MAGIC {
        let entries = &area[4..];
        parse_entries(vol, inode.ino, entries, 0, entries, &mut out, at + 4, true)?;
    }
    if inode.file_acl != 0 {
        let block = vol.read_block(inode.file_acl, Some(inode.ino))?;
        let off = inode.file_acl * u64::from(vol.block_size());
        if le32(&block, 0) != MAGIC || le32(&block, 8) != 1 {
            return Err(vol.corrupt(
                Some(inode.ino),
                Some(off),
                format!(
                    "xattr block {} has a bad header (magic {:#x}, blocks {})",
                    inode.file_acl,
                    le32(&block, 0),
                    le32(&block, 8)
                ),
            ));
        }
        parse_entries(
            vol,
            inode.ino,
            &block,
            BLOCK_HEADER,
            &block,
            &mut out,
            off as usize,
            false,
        )?;
    }
    Ok(out)
}

/// Walk entries of `area` from `start`; values are at offsets into `values`.
#[allow(clippy::too_many_arguments)]
fn parse_entries(
    vol: &Volume,
    ino: u32,
    area: &[u8],
    start: usize,
    values: &[u8],
    out: &mut Vec<RawXattr>,
    base_off: usize,
    in_inode: bool,
) -> Result<()> {
    let mut pos = start;
    while pos + 4 <= area.len() && le32(area, pos) != 0 {
        let bad = |what: String| vol.corrupt(Some(ino), Some((base_off + pos) as u64), what);
        if pos + ENTRY_HEADER > area.len() {
            return Err(bad("xattr entry runs past its area".into()));
        }
        let name_len = usize::from(u8_at(area, pos));
        let index = u8_at(area, pos + 1);
        let value_offs = usize::from(le16(area, pos + 2));
        let value_inum = le32(area, pos + 4);
        let value_size = le32(area, pos + 8) as usize;
        let name_end = pos + ENTRY_HEADER + name_len;
        if name_end > area.len() {
            return Err(bad("xattr name runs past its area".into()));
        }
        if value_inum != 0 {
            return Err(bad(
                "xattr value in an inode (ea_inode) is not supported".into()
            ));
        }
        let value = values
            .get(value_offs..value_offs.saturating_add(value_size))
            .ok_or_else(|| {
                bad(format!(
                    "xattr value {value_offs}+{value_size} is outside its area"
                ))
            })?;
        out.push(RawXattr {
            index,
            name: area[pos + ENTRY_HEADER..name_end].to_vec(),
            value: value.to_vec(),
            in_inode,
        });
        pos = (name_end + 3) & !3;
    }
    Ok(())
}

/// ext4's compact ACL (version 1; short entries for the owner, group, mask and other) as the
/// VFS `system.posix_acl_*` value (version 2, every entry with an id).
pub fn acl_to_vfs(raw: &[u8]) -> Option<Vec<u8>> {
    const USER: u16 = 0x02;
    const GROUP: u16 = 0x08;
    if raw.len() < 4 || le32(raw, 0) != 1 {
        return None;
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    let mut pos = 4;
    while pos < raw.len() {
        if pos + 4 > raw.len() {
            return None;
        }
        let tag = le16(raw, pos);
        let perm = le16(raw, pos + 2);
        let id = if tag == USER || tag == GROUP {
            if pos + 8 > raw.len() {
                return None;
            }
            let id = le32(raw, pos + 4);
            pos += 8;
            id
        } else {
            pos += 4;
            u32::MAX
        };
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_conversion() {
        let mut raw = 1u32.to_le_bytes().to_vec();
        raw.extend_from_slice(&[1, 0, 6, 0]); // USER_OBJ rw-
        raw.extend_from_slice(&[2, 0, 4, 0, 0xe8, 3, 0, 0]); // USER 1000 r--
        raw.extend_from_slice(&[0x20, 0, 4, 0]); // OTHER r--
        let v = acl_to_vfs(&raw).unwrap();
        assert_eq!(v.len(), 4 + 3 * 8);
        assert_eq!(&v[0..4], &2u32.to_le_bytes());
        assert_eq!(&v[8..12], &u32::MAX.to_le_bytes());
        assert_eq!(&v[16..20], &1000u32.to_le_bytes());
        assert_eq!(acl_to_vfs(&raw[..raw.len() - 2]), None);
        assert_eq!(acl_to_vfs(&[2, 0, 0, 0]), None);
    }
}
