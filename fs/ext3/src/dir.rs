//! Linear directories: entry blocks of `ext2_dir_entry_2` records, checked the way the
//! kernel checks them, walked from a byte position, and searched by name. Every htree
//! directory is also a valid linear directory (index blocks look like empty entries).

use crate::bytes::{le16, le32, u8_at};
use crate::error::{Error, Result};
use crate::inode::Inode;
use crate::superblock::INCOMPAT_FILETYPE;
use crate::volume::Volume;

/// Largest directory this driver walks (bounds the work a hostile size can cause).
pub const MAX_DIR_BYTES: u64 = 256 << 20;

/// One live directory entry.
#[derive(Debug, Clone, Copy)]
pub struct DirEntry<'a> {
    /// The inode it names.
    pub ino: u32,
    /// The name.
    pub name: &'a [u8],
    /// The dirent file type (0 unknown, 1 regular ... 7 symlink), 0 without `filetype`.
    pub file_type: u8,
    /// Byte position of the entry in its block.
    pub pos: usize,
    /// Its record length.
    pub rec_len: usize,
}

/// Record length needed by a name of `name_len` bytes.
pub fn rec_len_for(name_len: usize) -> usize {
    (8 + name_len + 3) & !3
}

fn decode_rec_len(raw: u16, block_size: usize) -> usize {
    if block_size >= 65536 && (raw == 65535 || raw == 0) {
        block_size
    } else {
        usize::from(raw)
    }
}

/// Call `f` on every live entry (inode != 0) of one directory block, in order, until it
/// returns `false`. A malformed record ends the walk with the record's position and why.
pub fn parse_block(
    block: &[u8],
    filetype: bool,
    inodes_count: u32,
    mut f: impl FnMut(DirEntry<'_>) -> bool,
) -> std::result::Result<(), (usize, String)> {
    let bs = block.len();
    let mut pos = 0usize;
    while pos < bs {
        if pos + 8 > bs {
            return Err((pos, "directory entry header runs past the block".into()));
        }
        let ino = le32(block, pos);
        let rec_len = decode_rec_len(le16(block, pos + 4), bs);
        let name_len = usize::from(u8_at(block, pos + 6));
        let file_type = if filetype { u8_at(block, pos + 7) } else { 0 };
        let why = if rec_len < 12 {
            Some(format!("rec_len {rec_len} is smaller than 12"))
        } else if !rec_len.is_multiple_of(4) {
            Some(format!("rec_len {rec_len} is not a multiple of 4"))
        } else if rec_len < rec_len_for(name_len) {
            Some(format!(
                "rec_len {rec_len} is too small for a {name_len}-byte name"
            ))
        } else if pos + rec_len > bs {
            Some(format!("rec_len {rec_len} runs past the block"))
        } else if ino > inodes_count {
            Some(format!(
                "entry names inode {ino}, past the inode count {inodes_count}"
            ))
        } else {
            None
        };
        if let Some(w) = why {
            return Err((pos, w));
        }
        if ino != 0 && name_len > 0 {
            let e = DirEntry {
                ino,
                name: &block[pos + 8..pos + 8 + name_len],
                file_type,
                pos,
                rec_len,
            };
            if !f(e) {
                return Ok(());
            }
        }
        pos += rec_len;
    }
    Ok(())
}

/// Blocks a directory of this size spans, refusing absurd sizes.
pub fn dir_blocks(vol: &Volume, dir: &Inode) -> Result<u64> {
    if dir.size > MAX_DIR_BYTES {
        return Err(vol.corrupt(
            Some(dir.ino),
            None,
            format!(
                "directory size {} is over the {MAX_DIR_BYTES}-byte limit",
                dir.size
            ),
        ));
    }
    Ok(dir.size.div_ceil(u64::from(vol.block_size())))
}

/// What a walk does with a malformed block: skip its rest (and report) or fail.
pub type OnBad<'a> = dyn FnMut(Error) -> Result<()> + 'a;

/// Walk the live entries of `dir` from byte position `start`, calling `f(entry, next_pos)`
/// (`next_pos`: where the walk resumes after this entry) until it returns `false`. Holes
/// are skipped; a malformed block goes to `on_bad`, which skips it (`Ok`) or fails.
pub fn walk(
    vol: &Volume,
    dir: &Inode,
    start: u64,
    on_bad: &mut OnBad<'_>,
    f: &mut dyn FnMut(DirEntry<'_>, u64) -> bool,
) -> Result<()> {
    let bs = u64::from(vol.block_size());
    let nblocks = dir_blocks(vol, dir)?;
    let filetype = vol.sb().has_incompat(INCOMPAT_FILETYPE);
    let inodes = vol.sb().inodes_count;
    let mut lblk = start / bs;
    while lblk < nblocks {
        let run = vol.map(dir, lblk, nblocks - lblk)?;
        let Some(phys) = run.phys else {
            lblk += run.len;
            continue;
        };
        for k in 0..run.len {
            let b = lblk + k;
            let block = vol.read_block(phys + k, Some(dir.ino))?;
            let base = b * bs;
            let mut stopped = false;
            let r = parse_block(&block, filetype, inodes, |e| {
                if base + (e.pos as u64) < start {
                    return true;
                }
                let next = base + (e.pos + e.rec_len) as u64;
                if f(e, next) {
                    true
                } else {
                    stopped = true;
                    false
                }
            });
            if stopped {
                return Ok(());
            }
            if let Err((pos, why)) = r {
                on_bad(vol.corrupt(
                    Some(dir.ino),
                    Some((phys + k) * bs + pos as u64),
                    format!("directory block {b}: {why}"),
                ))?;
            }
        }
        lblk += run.len;
    }
    Ok(())
}

/// The entry named `name` in `dir` by a linear scan: its inode and dirent file type.
pub fn find_linear(vol: &Volume, dir: &Inode, name: &[u8]) -> Result<Option<(u32, u8)>> {
    let mut hit = None;
    walk(vol, dir, 0, &mut |e| Err(e), &mut |e, _| {
        if e.name == name {
            hit = Some((e.ino, e.file_type));
            false
        } else {
            true
        }
    })?;
    Ok(hit)
}

/// The inode ".." names in `dir` (0 if the block holds none).
pub fn parent_of(vol: &Volume, dir: &Inode) -> Result<u32> {
    let mut parent = 0;
    walk(vol, dir, 0, &mut |_| Ok(()), &mut |e, next| {
        if e.name == b".." {
            parent = e.ino;
            return false;
        }
        next < u64::from(vol.block_size())
    })?;
    Ok(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(buf: &mut [u8], pos: usize, ino: u32, rec_len: u16, name: &[u8], ft: u8) {
        buf[pos..pos + 4].copy_from_slice(&ino.to_le_bytes());
        buf[pos + 4..pos + 6].copy_from_slice(&rec_len.to_le_bytes());
        buf[pos + 6] = name.len() as u8;
        buf[pos + 7] = ft;
        buf[pos + 8..pos + 8 + name.len()].copy_from_slice(name);
    }

    #[test]
    fn parses_and_rejects_bad_records() {
        let mut b = vec![0u8; 1024];
        entry(&mut b, 0, 2, 12, b".", 2);
        entry(&mut b, 12, 2, 12, b"..", 2);
        entry(&mut b, 24, 0, 20, b"gone", 1);
        entry(&mut b, 44, 12, 1024 - 44, b"file", 1);
        let mut names = Vec::new();
        parse_block(&b, true, 100, |e| {
            names.push((e.name.to_vec(), e.ino));
            true
        })
        .unwrap();
        assert_eq!(
            names,
            vec![
                (b".".to_vec(), 2),
                (b"..".to_vec(), 2),
                (b"file".to_vec(), 12)
            ]
        );
        entry(&mut b, 44, 12, 8, b"file", 1);
        assert!(parse_block(&b, true, 100, |_| true).is_err());
        entry(&mut b, 44, 12, 2000, b"file", 1);
        assert!(parse_block(&b, true, 100, |_| true).is_err());
        entry(&mut b, 44, 500, 1024 - 44, b"file", 1);
        assert!(parse_block(&b, true, 100, |_| true).is_err());
    }
}
