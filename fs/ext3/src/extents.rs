//! Extent-mapped files (ext4, read-only): a tree of 12-byte headers, index entries and leaf
//! extents rooted in i_block. Depth, counts and child headers are all checked, so a hostile
//! tree can neither loop nor index out of its block.

use crate::bytes::{le16, le32};
use crate::error::Result;
use crate::inode::Inode;
use crate::volume::{Run, Volume};

/// Extent header magic.
pub const MAGIC: u16 = 0xF30A;
/// Deepest tree accepted (the kernel's limit is 5).
pub const MAX_DEPTH: u16 = 5;
/// ee_len above this marks an unwritten (preallocated) extent.
const INIT_MAX_LEN: u32 = 32768;

struct Header {
    entries: usize,
    depth: u16,
}

fn header(vol: &Volume, ino: u32, node: &[u8]) -> Result<Header> {
    let magic = le16(node, 0);
    let entries = usize::from(le16(node, 2));
    let max = usize::from(le16(node, 4));
    let depth = le16(node, 6);
    let room = (node.len() - 12) / 12;
    if magic != MAGIC || entries > max || max > room || depth > MAX_DEPTH {
        return Err(vol.corrupt(
            Some(ino),
            None,
            format!(
                "bad extent header (magic {magic:#x}, entries {entries}, max {max}, depth {depth})"
            ),
        ));
    }
    Ok(Header { entries, depth })
}

/// Index of the last entry whose first block is <= `lblk` (entries are sorted), if any.
fn last_at_or_before(node: &[u8], entries: usize, lblk: u64) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, entries);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if u64::from(le32(node, 12 + mid * 12)) <= lblk {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

/// The run starting at `lblk` (see [`Volume::map`]).
pub fn map(vol: &Volume, inode: &Inode, lblk: u64, max: u64) -> Result<Run> {
    let ino = inode.ino;
    let mut owned;
    let mut node: &[u8] = &inode.block;
    let mut h = header(vol, ino, node)?;
    // The first block of whatever follows this subtree (bounds a hole).
    let mut next_start = u64::MAX;
    loop {
        let found = last_at_or_before(node, h.entries, lblk);
        let next_of = |i: usize| {
            if i < h.entries {
                u64::from(le32(node, 12 + i * 12))
            } else {
                u64::MAX
            }
        };
        if h.depth == 0 {
            let hole_to = |end: u64| Run {
                phys: None,
                len: end.saturating_sub(lblk).clamp(1, max),
            };
            let Some(i) = found else {
                return Ok(hole_to(next_of(0).min(next_start)));
            };
            let e = 12 + i * 12;
            let first = u64::from(le32(node, e));
            let raw_len = u32::from(le16(node, e + 4));
            let (len, unwritten) = if raw_len > INIT_MAX_LEN {
                (u64::from(raw_len - INIT_MAX_LEN), true)
            } else {
                (u64::from(raw_len), false)
            };
            let start = (u64::from(le16(node, e + 6)) << 32) | u64::from(le32(node, e + 8));
            if lblk >= first + len {
                return Ok(hole_to(next_of(i + 1).min(next_start)));
            }
            let skip = lblk - first;
            let run_len = (len - skip).min(max);
            if unwritten {
                return Ok(Run {
                    phys: None,
                    len: run_len,
                });
            }
            if len == 0 || !vol.block_in_range(start) || !vol.block_in_range(start + len - 1) {
                return Err(vol.corrupt(
                    Some(ino),
                    None,
                    format!("extent at file block {first} maps to blocks {start}+{len}, outside the filesystem"),
                ));
            }
            return Ok(Run {
                phys: Some(start + skip),
                len: run_len,
            });
        }
        let Some(i) = found else {
            // Before the first index entry: a hole up to it.
            let end = next_of(0).min(next_start);
            return Ok(Run {
                phys: None,
                len: end.saturating_sub(lblk).clamp(1, max),
            });
        };
        next_start = next_of(i + 1).min(next_start);
        let e = 12 + i * 12;
        let child = u64::from(le32(node, e + 4)) | (u64::from(le16(node, e + 8)) << 32);
        owned = vol.read_block(child, Some(ino))?;
        let ch = header(vol, ino, &owned)?;
        if ch.depth + 1 != h.depth {
            return Err(vol.corrupt(
                Some(ino),
                Some(child * u64::from(vol.block_size())),
                format!(
                    "extent node depth {} under a node of depth {}",
                    ch.depth, h.depth
                ),
            ));
        }
        node = &owned;
        h = ch;
    }
}
