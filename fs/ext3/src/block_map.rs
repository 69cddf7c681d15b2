//! Block-mapped files (ext2/ext3): `i_block[0..12]` direct, `[12]` single, `[13]` double and
//! `[14]` triple indirect. A zero pointer at any level is a hole covering everything below it.

use crate::bytes::le32;
use crate::error::Result;
use crate::inode::Inode;
use crate::volume::{Run, Volume};

/// Direct pointers in i_block.
pub const DIRECT: u64 = 12;

/// Where file block `lblk` sits in the tree: the i_block slot, then the index in each
/// indirect level, and how many file blocks one entry of the last level covers.
fn path(lblk: u64, per: u64) -> Option<(usize, Vec<u64>)> {
    if lblk < DIRECT {
        return Some((lblk as usize, Vec::new()));
    }
    let mut rest = lblk - DIRECT;
    let mut span = per;
    for level in 1..=3u32 {
        if rest < span {
            let mut idx = Vec::with_capacity(level as usize);
            let mut unit = span;
            for _ in 0..level {
                unit /= per;
                idx.push(rest / unit);
                rest %= unit;
            }
            return Some((11 + level as usize, idx));
        }
        rest -= span;
        span = span.saturating_mul(per);
    }
    None
}

/// How many file blocks lie under one entry at `depth` (0: leaf entries) of a tree with
/// `levels` indirect levels.
fn entry_span(per: u64, levels: usize, depth: usize) -> u64 {
    per.saturating_pow((levels - 1 - depth) as u32)
}

/// The run starting at `lblk` (see [`Volume::map`]).
pub fn map(vol: &Volume, inode: &Inode, lblk: u64, max: u64) -> Result<Run> {
    let bs = u64::from(vol.block_size());
    let per = bs / 4;
    let Some((slot, idx)) = path(lblk, per) else {
        // Past what a block map can address: a hole to the end.
        return Ok(Run {
            phys: None,
            len: max,
        });
    };
    if idx.is_empty() {
        let words: Vec<u32> = (0..DIRECT as usize).map(|i| inode.block_word(i)).collect();
        return leaf_run(vol, inode, &words, slot, max);
    }
    let mut ptr = u64::from(inode.block_word(slot));
    let levels = idx.len();
    for (depth, &i) in idx.iter().enumerate() {
        if ptr == 0 {
            // A hole under this pointer: skip what it covers from here on.
            let below: u64 = idx[depth..]
                .iter()
                .enumerate()
                .map(|(d, &j)| j.saturating_mul(entry_span(per, levels, depth + d)))
                .sum();
            let covered = entry_span(per, levels, depth).saturating_mul(per) - below;
            return Ok(Run {
                phys: None,
                len: covered.min(max).max(1),
            });
        }
        let block = vol.read_block(ptr, Some(inode.ino))?;
        if depth + 1 == levels {
            let words: Vec<u32> = (0..per as usize).map(|k| le32(&block, k * 4)).collect();
            return leaf_run(vol, inode, &words, i as usize, max);
        }
        ptr = u64::from(le32(&block, i as usize * 4));
    }
    Ok(Run { phys: None, len: 1 })
}

/// The run in one array of block pointers from index `i`: contiguous blocks, or zeros.
fn leaf_run(vol: &Volume, inode: &Inode, words: &[u32], i: usize, max: u64) -> Result<Run> {
    let first = u64::from(words[i]);
    let mut len = 1u64;
    while len < max {
        let Some(&w) = words.get(i + len as usize) else {
            break;
        };
        let next = u64::from(w);
        let contiguous = if first == 0 {
            next == 0
        } else {
            next == first + len
        };
        if !contiguous {
            break;
        }
        len += 1;
    }
    if first == 0 {
        return Ok(Run { phys: None, len });
    }
    if !vol.block_in_range(first) || !vol.block_in_range(first + len - 1) {
        return Err(vol.corrupt(
            Some(inode.ino),
            None,
            format!("data block {first} is outside the filesystem"),
        ));
    }
    Ok(Run {
        phys: Some(first),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_for_each_level() {
        let per = 256;
        assert_eq!(path(0, per), Some((0, vec![])));
        assert_eq!(path(11, per), Some((11, vec![])));
        assert_eq!(path(12, per), Some((12, vec![0])));
        assert_eq!(path(12 + 255, per), Some((12, vec![255])));
        assert_eq!(path(12 + 256, per), Some((13, vec![0, 0])));
        assert_eq!(path(12 + 256 + 257, per), Some((13, vec![1, 1])));
        let t = 12 + 256 + 256 * 256;
        assert_eq!(path(t, per), Some((14, vec![0, 0, 0])));
        assert_eq!(path(t + 256 * 256 + 3, per), Some((14, vec![1, 0, 3])));
        assert_eq!(path(t + 256 * 256 * 256, per), None);
    }

    #[test]
    fn hole_spans() {
        let per = 256;
        // Double-indirect level with 2 levels: a top-level entry covers 256 blocks.
        assert_eq!(entry_span(per, 2, 0), 256);
        assert_eq!(entry_span(per, 2, 1), 1);
        assert_eq!(entry_span(per, 3, 0), 65536);
    }
}
