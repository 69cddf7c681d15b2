//! Growing and shrinking block maps: mapping a file block (allocating the data block and
//! any indirect blocks on the way), and freeing everything past a new end, indirect blocks
//! that empty included. i_blocks follows every block (data and indirect).

use crate::alloc::Allocator;
use crate::block_map::DIRECT;
use crate::bytes::le32;
use crate::error::Result;
use crate::inode::Inode;
use crate::volume::Volume;

/// File blocks addressable with `per` pointers per indirect block.
pub fn max_blocks(per: u64) -> u64 {
    DIRECT + per + per * per + per * per * per
}

fn add_blocks(vol: &Volume, inode: &mut Inode, n: u64, sign: i64) {
    let units = n * u64::from(vol.block_size() / 512);
    inode.blocks_raw = if sign > 0 {
        inode.blocks_raw + units
    } else {
        inode.blocks_raw.saturating_sub(units)
    };
}

fn alloc_one(vol: &Volume, alloc: &Allocator, inode: &mut Inode, goal: u64) -> Result<u64> {
    let (b, _) = alloc.alloc_blocks(vol, goal, 1)?;
    add_blocks(vol, inode, 1, 1);
    Ok(b)
}

/// Where the pointer to a file block lives: an i_block slot, or an entry of an indirect
/// block.
enum Leaf {
    Direct(usize),
    Indirect(u64, usize),
}

/// The leaf pointer array position for `lblk`, allocating missing indirect blocks.
fn ensure_leaf(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    lblk: u64,
    goal: u64,
) -> Result<Leaf> {
    let bs = u64::from(vol.block_size());
    let per = bs / 4;
    if lblk < DIRECT {
        return Ok(Leaf::Direct(lblk as usize));
    }
    let mut rest = lblk - DIRECT;
    let mut span = per;
    let mut level = 1usize;
    while rest >= span {
        rest -= span;
        span *= per;
        level += 1;
    }
    let slot = 11 + level;
    let mut idx = Vec::with_capacity(level);
    let mut unit = span;
    for _ in 0..level {
        unit /= per;
        idx.push((rest / unit) as usize);
        rest %= unit;
    }
    let mut ptr = u64::from(inode.block_word(slot));
    if ptr == 0 {
        ptr = alloc_one(vol, alloc, inode, goal)?;
        vol.write_new_block(ptr, vec![0u8; bs as usize])?;
        inode.block[slot * 4..slot * 4 + 4].copy_from_slice(&(ptr as u32).to_le_bytes());
    }
    for &i in &idx[..idx.len() - 1] {
        let block = vol.read_block(ptr, Some(inode.ino))?;
        let cur = u64::from(le32(&block, i * 4));
        if cur != 0 {
            ptr = cur;
            continue;
        }
        let new = alloc_one(vol, alloc, inode, goal)?;
        vol.write_new_block(new, vec![0u8; bs as usize])?;
        vol.modify_block(ptr, Some(inode.ino), |b| {
            b[i * 4..i * 4 + 4].copy_from_slice(&(new as u32).to_le_bytes());
        })?;
        ptr = new;
    }
    Ok(Leaf::Indirect(ptr, idx[idx.len() - 1]))
}

/// The run of image blocks for file blocks `lblk..lblk + count` (at least one): the
/// existing contiguous run when `lblk` is mapped, else a run of newly allocated blocks
/// (preferably at `goal`) filling the hole. Returns (first block, blocks, newly allocated).
/// The caller writes the inode back.
pub fn map_alloc_run(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    lblk: u64,
    count: u64,
    goal: u64,
) -> Result<(u64, u64, bool)> {
    let bs = u64::from(vol.block_size());
    let per = bs / 4;
    if lblk >= max_blocks(per) {
        return Err(crate::error::Error::io(
            vol.name(),
            0,
            format!(
                "inode {}: file block {lblk} is past what a block map addresses",
                inode.ino
            ),
            std::io::Error::from_raw_os_error(libc::EFBIG),
        ));
    }
    let leaf = ensure_leaf(vol, alloc, inode, lblk, goal)?;
    let (words, i): (Vec<u32>, usize) = match leaf {
        Leaf::Direct(slot) => (
            (0..DIRECT as usize).map(|k| inode.block_word(k)).collect(),
            slot,
        ),
        Leaf::Indirect(blk, i) => {
            let b = vol.read_block(blk, Some(inode.ino))?;
            ((0..per as usize).map(|k| le32(&b, k * 4)).collect(), i)
        }
    };
    let room = (words.len() - i) as u64;
    let max = count.clamp(1, room);
    let first = u64::from(words[i]);
    let run = |pred: &dyn Fn(u64, u64) -> bool| {
        (1..max)
            .take_while(|&k| pred(u64::from(words[i + k as usize]), k))
            .count() as u64
            + 1
    };
    if first != 0 {
        let len = run(&|w, k| w == first + k);
        if !vol.block_in_range(first) || !vol.block_in_range(first + len - 1) {
            return Err(vol.corrupt(
                Some(inode.ino),
                None,
                format!("data block {first} is outside the filesystem"),
            ));
        }
        return Ok((first, len, false));
    }
    let holes = run(&|w, _| w == 0);
    let (start, got) = alloc.alloc_blocks(vol, goal, holes)?;
    add_blocks(vol, inode, got, 1);
    match leaf {
        Leaf::Direct(slot) => {
            for k in 0..got as usize {
                let v = (start + k as u64) as u32;
                inode.block[(slot + k) * 4..(slot + k) * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        Leaf::Indirect(blk, i) => {
            vol.modify_block(blk, Some(inode.ino), |b| {
                for k in 0..got as usize {
                    let v = (start + k as u64) as u32;
                    b[(i + k) * 4..(i + k) * 4 + 4].copy_from_slice(&v.to_le_bytes());
                }
            })?;
        }
    }
    Ok((start, got, true))
}

/// The image block of file block `lblk`, allocating it (and indirect blocks) when it is a
/// hole; `goal` is where a new block should preferably go. Returns (block, newly
/// allocated). The caller writes the inode back.
pub fn map_alloc(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    lblk: u64,
    goal: u64,
) -> Result<(u64, bool)> {
    let (b, _, fresh) = map_alloc_run(vol, alloc, inode, lblk, 1, goal)?;
    Ok((b, fresh))
}

/// Free every data block from file block `keep` on, and the indirect blocks left empty.
/// The caller writes the inode back.
pub fn truncate(vol: &Volume, alloc: &Allocator, inode: &mut Inode, keep: u64) -> Result<()> {
    free_range(vol, alloc, inode, keep, u64::MAX)
}

/// Free the data blocks of file blocks `from..to` and the indirect blocks left empty (a
/// hole punched in the middle of a file). The caller writes the inode back.
pub fn free_range(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    from: u64,
    to: u64,
) -> Result<()> {
    let per = u64::from(vol.block_size()) / 4;
    if to <= from {
        return Ok(());
    }
    let mut freed: Vec<u64> = Vec::new();
    for slot in (from.min(DIRECT) as usize)..(to.min(DIRECT) as usize) {
        let b = u64::from(inode.block_word(slot));
        if b != 0 {
            freed.push(b);
            inode.block[slot * 4..slot * 4 + 4].fill(0);
        }
    }
    let mut base = DIRECT;
    let mut span = per;
    for level in 1..=3u32 {
        let slot = 11 + level as usize;
        let ptr = u64::from(inode.block_word(slot));
        if ptr != 0 && from < base + span && to > base {
            let (lo, hi) = (from.saturating_sub(base), (to - base).min(span));
            let range = Range { lo, hi, span };
            if prune_range(vol, inode.ino, ptr, level, range, &mut freed)? {
                freed.push(ptr);
                inode.block[slot * 4..slot * 4 + 4].fill(0);
            }
        }
        base += span;
        span = span.saturating_mul(per);
    }
    release(vol, alloc, inode, freed)
}

/// Free `freed` (any order) and take them off i_blocks.
fn release(vol: &Volume, alloc: &Allocator, inode: &mut Inode, mut freed: Vec<u64>) -> Result<()> {
    freed.sort_unstable();
    let n = freed.len() as u64;
    let mut i = 0;
    while i < freed.len() {
        let mut j = i + 1;
        while j < freed.len() && freed[j] == freed[j - 1] + 1 {
            j += 1;
        }
        alloc.free_blocks_run(vol, inode.ino, freed[i], (j - i) as u64)?;
        i = j;
    }
    add_blocks(vol, inode, n, -1);
    Ok(())
}

/// Relative file blocks `lo..hi` of a subtree covering `span` blocks.
#[derive(Clone, Copy)]
struct Range {
    lo: u64,
    hi: u64,
    span: u64,
}

/// Free the entries of indirect block `ptr` (a `level`-level subtree) that lie in `r`.
/// Returns whether the whole block is now unused (the caller frees it).
fn prune_range(
    vol: &Volume,
    ino: u32,
    ptr: u64,
    level: u32,
    r: Range,
    freed: &mut Vec<u64>,
) -> Result<bool> {
    let per = u64::from(vol.block_size()) / 4;
    let unit = r.span / per;
    let block = vol.read_block(ptr, Some(ino))?;
    let mut keep_any = false;
    let mut zero: Vec<usize> = Vec::new();
    for i in 0..per as usize {
        let e = u64::from(le32(&block, i * 4));
        if e == 0 {
            continue;
        }
        if !vol.block_in_range(e) {
            return Err(vol.corrupt(
                Some(ino),
                None,
                format!("indirect block {ptr} points at block {e}, outside the filesystem"),
            ));
        }
        let (s, t) = (i as u64 * unit, (i as u64 + 1) * unit);
        if t <= r.lo || s >= r.hi {
            keep_any = true;
            continue;
        }
        let child = Range {
            lo: r.lo.saturating_sub(s),
            hi: (r.hi - s).min(unit),
            span: unit,
        };
        let whole = child.lo == 0 && child.hi == unit;
        let emptied = if level > 1 {
            prune_range(vol, ino, e, level - 1, child, freed)?
        } else {
            whole
        };
        if emptied {
            freed.push(e);
            zero.push(i);
        } else {
            keep_any = true;
        }
    }
    if keep_any && !zero.is_empty() {
        vol.modify_block(ptr, Some(ino), |b| {
            for i in &zero {
                b[i * 4..i * 4 + 4].fill(0);
            }
        })?;
    }
    Ok(!keep_any)
}
