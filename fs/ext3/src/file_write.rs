//! File data writes and size changes on block-mapped files: holes are filled with freshly
//! allocated blocks near the previous one, partial new blocks are zero-filled, and a
//! shrink frees what lies past the end and zeroes the tail of the last block. `allocate`
//! (fallocate mode 0) fills the holes of a range with zeroed blocks.

use crate::alloc::Allocator;
use crate::block_map_write;
use crate::error::Result;
use crate::inode::Inode;
use crate::volume::Volume;

/// A goal for the block after file block `lblk`: right after the block before it, else the
/// start of the inode's group.
fn goal_for(vol: &Volume, inode: &Inode, lblk: u64) -> u64 {
    if lblk > 0
        && let Ok(run) = vol.map(inode, lblk - 1, 1)
        && let Some(p) = run.phys
    {
        return p + 1;
    }
    let sb = vol.sb();
    let g = u64::from((inode.ino - 1) / sb.inodes_per_group);
    let gd = &vol.groups()[g as usize];
    gd.inode_table + sb.inode_table_blocks()
}

/// Write `data` at `offset` of `inode` (its size grows to cover what was written). Returns
/// how many bytes were written and, when it stopped early, why. The caller writes the inode
/// back (also after an error: blocks already mapped must be counted) and sets the times.
pub fn write(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    offset: u64,
    data: &[u8],
) -> (usize, Result<()>) {
    let mut done = 0usize;
    let r = write_inner(vol, alloc, inode, offset, data, &mut done);
    (done, r)
}

fn write_inner(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    offset: u64,
    data: &[u8],
    done_out: &mut usize,
) -> Result<()> {
    let bs = u64::from(vol.block_size());
    let mut done = 0usize;
    while done < data.len() {
        let pos = offset + done as u64;
        let lblk = pos / bs;
        let within = pos % bs;
        let want = (within + (data.len() - done) as u64).div_ceil(bs);
        let goal = goal_for(vol, inode, lblk);
        let (phys, len, fresh) =
            block_map_write::map_alloc_run(vol, alloc, inode, lblk, want, goal)?;
        let n = ((len * bs - within) as usize).min(data.len() - done);
        let piece = &data[done..done + n];
        if fresh && (within != 0 || !(n as u64).is_multiple_of(bs)) {
            // New blocks: zero what the write does not cover.
            let mut full = vec![0u8; (within + n as u64).div_ceil(bs) as usize * bs as usize];
            full[within as usize..within as usize + n].copy_from_slice(piece);
            vol.file.write_all_at(&full, phys * bs)?;
        } else {
            vol.file.write_all_at(piece, phys * bs + within)?;
        }
        if fresh {
            for b in phys..phys + len {
                vol.forget_block(b);
            }
        }
        done += n;
        *done_out = done;
        inode.size = inode.size.max(offset + done as u64);
    }
    Ok(())
}

/// Set the size of `inode` to `size`: shrinking frees the blocks past it and zeroes the
/// rest of the last block; growing leaves a hole. The caller writes the inode back.
pub fn set_size(vol: &Volume, alloc: &Allocator, inode: &mut Inode, size: u64) -> Result<()> {
    let bs = u64::from(vol.block_size());
    if size < inode.size {
        let keep = size.div_ceil(bs);
        block_map_write::truncate(vol, alloc, inode, keep)?;
        if !size.is_multiple_of(bs)
            && let Some(p) = vol.map(inode, size / bs, 1)?.phys
        {
            let tail = vec![0u8; (bs - size % bs) as usize];
            vol.file.write_all_at(&tail, p * bs + size % bs)?;
        }
    }
    inode.size = size;
    Ok(())
}

/// Zeroes written per `pwrite` when filling freshly allocated blocks.
const ZERO_CHUNK: u64 = 1 << 20;

/// Fill every hole of `offset..offset + len` with zeroed blocks and grow the size to cover
/// the range (fallocate mode 0). On failure (ENOSPC, EFBIG), the blocks allocated past the
/// old size are freed again, so no block lies past the end; holes filled inside the old
/// size stay filled (they read as zeros either way). The caller writes the inode back.
pub fn allocate(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    offset: u64,
    len: u64,
) -> Result<()> {
    let old_size = inode.size;
    let r = allocate_inner(vol, alloc, inode, offset, len);
    if r.is_err() {
        let bs = u64::from(vol.block_size());
        block_map_write::truncate(vol, alloc, inode, old_size.div_ceil(bs))?;
        inode.size = old_size;
    }
    r
}

fn allocate_inner(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    offset: u64,
    len: u64,
) -> Result<()> {
    let bs = u64::from(vol.block_size());
    let end = offset.checked_add(len).ok_or_else(|| efbig(vol, inode))?;
    let (first, last) = (offset / bs, end.div_ceil(bs));
    if last > block_map_write::max_blocks(bs / 4) {
        return Err(efbig(vol, inode));
    }
    // Fail early rather than fill the disk and give it all back.
    let mapped = inode.blocks_raw / (bs / 512);
    if last - first > alloc.free_blocks().saturating_add(mapped) {
        return Err(crate::error::Error::io(
            vol.name(),
            0,
            format!("inode {}: fallocate of {len} bytes", inode.ino),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        ));
    }
    let mut lblk = first;
    while lblk < last {
        let goal = goal_for(vol, inode, lblk);
        let (phys, n, fresh) =
            block_map_write::map_alloc_run(vol, alloc, inode, lblk, last - lblk, goal)?;
        if fresh {
            for b in phys..phys + n {
                vol.forget_block(b);
            }
            let zeros = vec![0u8; (ZERO_CHUNK.min(n * bs)) as usize];
            let mut at = phys * bs;
            let stop = (phys + n) * bs;
            while at < stop {
                let piece = (stop - at).min(zeros.len() as u64) as usize;
                vol.file.write_all_at(&zeros[..piece], at)?;
                at += piece as u64;
            }
        }
        lblk += n;
    }
    inode.size = inode.size.max(end);
    Ok(())
}

fn efbig(vol: &Volume, inode: &Inode) -> crate::error::Error {
    crate::error::Error::io(
        vol.name(),
        0,
        format!(
            "inode {}: fallocate range past the largest offset",
            inode.ino
        ),
        std::io::Error::from_raw_os_error(libc::EFBIG),
    )
}

/// Punch a hole over `offset..offset + len` (clamped to the size, which does not change):
/// whole blocks inside it are freed, the partial blocks at its edges zeroed where mapped.
/// The caller writes the inode back.
pub fn punch(
    vol: &Volume,
    alloc: &Allocator,
    inode: &mut Inode,
    offset: u64,
    len: u64,
) -> Result<()> {
    let bs = u64::from(vol.block_size());
    let end = offset.saturating_add(len).min(inode.size);
    if offset >= end {
        return Ok(());
    }
    let zero = |from: u64, to: u64| -> Result<()> {
        if let Some(p) = vol.map(inode, from / bs, 1)?.phys {
            let z = vec![0u8; (to - from) as usize];
            vol.file.write_all_at(&z, p * bs + from % bs)?;
        }
        Ok(())
    };
    let (first_full, end_full) = (offset.div_ceil(bs), end / bs);
    if first_full > end_full {
        // Inside one block.
        return zero(offset, end);
    }
    if !offset.is_multiple_of(bs) {
        zero(offset, first_full * bs)?;
    }
    if !end.is_multiple_of(bs) {
        zero(end_full * bs, end)?;
    }
    block_map_write::free_range(vol, alloc, inode, first_full, end_full)
}
