//! Changing linear directories: add an entry in the first gap big enough (or a new block),
//! remove one (merging it into the entry before it), repoint one, and check emptiness.
//! Adding to an htree directory drops its index (the index blocks stay valid linear
//! blocks); index insertion comes later.

use crate::alloc::Allocator;
use crate::block_map_write;
use crate::bytes::{le16, le32, u8_at};
use crate::dir::{self, dir_blocks, rec_len_for};
use crate::error::Result;
use crate::inode::{INDEX_FL, Inode};
use crate::superblock::INCOMPAT_FILETYPE;
use crate::volume::Volume;

/// The dirent file type of an `st_mode`.
pub fn file_type_of(mode: u16) -> u8 {
    match u32::from(mode) & libc::S_IFMT {
        libc::S_IFREG => 1,
        libc::S_IFDIR => 2,
        libc::S_IFCHR => 3,
        libc::S_IFBLK => 4,
        libc::S_IFIFO => 5,
        libc::S_IFSOCK => 6,
        libc::S_IFLNK => 7,
        _ => 0,
    }
}

pub(crate) fn put_entry(b: &mut [u8], pos: usize, ino: u32, rec_len: usize, name: &[u8], ft: u8) {
    b[pos..pos + 4].copy_from_slice(&ino.to_le_bytes());
    b[pos + 4..pos + 6].copy_from_slice(&(rec_len as u16).to_le_bytes());
    b[pos + 6] = name.len() as u8;
    b[pos + 7] = ft;
    b[pos + 8..pos + 8 + name.len()].copy_from_slice(name);
}

/// A fresh directory block holding "." and ".." (for mkdir).
pub fn first_block(bs: usize, ino: u32, parent: u32, filetype: bool) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let ft = if filetype { 2 } else { 0 };
    put_entry(&mut b, 0, ino, 12, b".", ft);
    put_entry(&mut b, 12, parent, bs - 12, b"..", ft);
    b
}

/// Put `name` -> `ino` into the first gap of directory block `b` big enough for it.
pub(crate) fn place_in_block(b: &mut [u8], name: &[u8], ino: u32, ft: u8) -> bool {
    let bs = b.len();
    let need = rec_len_for(name.len());
    let mut pos = 0usize;
    while pos + 8 <= bs {
        let e_ino = le32(b, pos);
        let rec_len = usize::from(le16(b, pos + 4));
        let name_len = usize::from(u8_at(b, pos + 6));
        if rec_len < 12 || pos + rec_len > bs {
            return false;
        }
        let used = if e_ino != 0 { rec_len_for(name_len) } else { 0 };
        if rec_len >= used + need {
            if e_ino != 0 {
                b[pos + 4..pos + 6].copy_from_slice(&(used as u16).to_le_bytes());
                put_entry(b, pos + used, ino, rec_len - used, name, ft);
            } else {
                put_entry(b, pos, ino, rec_len, name, ft);
            }
            return true;
        }
        pos += rec_len;
    }
    false
}

/// Add `name` -> `ino` to `dir` (the caller made sure the name is free). The caller writes
/// `dir` back (its size or flags may change).
pub fn add(
    vol: &Volume,
    alloc: &Allocator,
    dir: &mut Inode,
    name: &[u8],
    ino: u32,
    mode: u16,
) -> Result<()> {
    let bs = vol.block_size() as usize;
    let ft = if vol.sb().has_incompat(INCOMPAT_FILETYPE) {
        file_type_of(mode)
    } else {
        0
    };
    if dir.flags & INDEX_FL != 0 {
        if crate::htree_write::insert(vol, alloc, dir, name, ino, ft)? {
            return Ok(());
        }
        // The index cannot take it (yet): drop the index; its blocks stay valid linear blocks.
        dir.flags &= !INDEX_FL;
    }
    let nblocks = dir_blocks(vol, dir)?;
    for lblk in 0..nblocks {
        let Some(phys) = vol.map(dir, lblk, 1)?.phys else {
            continue;
        };
        let placed = vol.modify_block(phys, Some(dir.ino), |b| place_in_block(b, name, ino, ft))?;
        if placed {
            return Ok(());
        }
    }
    // No room: a new block at the end.
    let goal = match nblocks.checked_sub(1).map(|l| vol.map(dir, l, 1)) {
        Some(Ok(r)) => r.phys.map_or(0, |p| p + 1),
        _ => 0,
    };
    let (phys, _) = block_map_write::map_alloc(vol, alloc, dir, nblocks, goal)?;
    let mut b = vec![0u8; bs];
    put_entry(&mut b, 0, ino, bs, name, ft);
    vol.write_new_block(phys, b)?;
    dir.size = (nblocks + 1) * bs as u64;
    Ok(())
}

/// Where `name` is in `dir`: (image block, byte position, inode, file type).
fn locate(vol: &Volume, dir: &Inode, name: &[u8]) -> Result<Option<(u64, usize, u32, u8)>> {
    let bs = u64::from(vol.block_size());
    let mut hit = None;
    dir::walk(vol, dir, 0, &mut Err, &mut |e, next| {
        if e.name == name {
            hit = Some(((next - 1) / bs, e.pos, e.ino, e.file_type));
            false
        } else {
            true
        }
    })?;
    match hit {
        None => Ok(None),
        Some((lblk, pos, ino, ft)) => {
            let phys = vol
                .map(dir, lblk, 1)?
                .phys
                .ok_or_else(|| vol.corrupt(Some(dir.ino), None, "directory entry in a hole"))?;
            Ok(Some((phys, pos, ino, ft)))
        }
    }
}

/// Remove `name` from `dir`; returns the inode it named.
pub fn remove(vol: &Volume, dir: &Inode, name: &[u8]) -> Result<Option<u32>> {
    let Some((phys, pos, ino, _)) = locate(vol, dir, name)? else {
        return Ok(None);
    };
    vol.modify_block(phys, Some(dir.ino), |b| {
        // Find the entry before `pos` in this block.
        let mut prev: Option<usize> = None;
        let mut p = 0usize;
        while p < pos {
            let rl = usize::from(le16(b, p + 4));
            if rl == 0 {
                break;
            }
            prev = Some(p);
            p += rl;
        }
        let rec_len = le16(b, pos + 4);
        match prev {
            Some(pp) if p == pos => {
                let merged = le16(b, pp + 4).saturating_add(rec_len);
                b[pp + 4..pp + 6].copy_from_slice(&merged.to_le_bytes());
            }
            _ => b[pos..pos + 4].fill(0),
        }
    })?;
    Ok(Some(ino))
}

/// Point the existing entry `name` of `dir` at `ino` (file type from `mode`).
pub fn repoint(vol: &Volume, dir: &Inode, name: &[u8], ino: u32, mode: u16) -> Result<()> {
    let Some((phys, pos, _, _)) = locate(vol, dir, name)? else {
        return Err(vol.corrupt(Some(dir.ino), None, "entry vanished while repointing it"));
    };
    let ft = if vol.sb().has_incompat(INCOMPAT_FILETYPE) {
        file_type_of(mode)
    } else {
        0
    };
    vol.modify_block(phys, Some(dir.ino), |b| {
        b[pos..pos + 4].copy_from_slice(&ino.to_le_bytes());
        b[pos + 7] = ft;
    })
}

/// Whether `dir` holds nothing but "." and "..".
pub fn is_empty(vol: &Volume, dir: &Inode) -> Result<bool> {
    let mut empty = true;
    dir::walk(vol, dir, 0, &mut Err, &mut |e, _| {
        if e.name != b"." && e.name != b".." {
            empty = false;
            return false;
        }
        true
    })?;
    Ok(empty)
}
