//! Block and inode allocation, per group like the kernel's: each group has its own lock
//! (no global allocator lock). Directories are spread Orlov-style (top-level ones to
//! roomy groups with few directories, others near their parent); files go to their
//! parent's group, then a quadratic then linear probe; blocks go at or after a goal.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::inode::ROOT_INO;
use crate::volume::Volume;

/// Live free counts of one group (the descriptor on disk follows them).
#[derive(Debug, Clone, Copy)]
struct GroupCounts {
    free_blocks: u32,
    free_inodes: u32,
    used_dirs: u32,
}

/// The allocator's state: per-group counts under per-group locks, and the totals.
#[derive(Debug)]
pub struct Allocator {
    groups: Vec<Mutex<GroupCounts>>,
    free_blocks: AtomicU64,
    free_inodes: AtomicU64,
    generation: AtomicU32,
    /// With a journal: blocks freed in the running transaction are only released when it
    /// commits, so nothing reuses them while the committed state still points at them.
    defer_frees: std::sync::atomic::AtomicBool,
    pending: Mutex<Vec<(u32, u64, u64)>>,
    /// Blocks released by commits whose transactions are not checkpointed yet: not
    /// allocatable until then.
    quarantine: Mutex<Quarantine>,
}

/// Freed runs that may not be reused yet, by first block: (length, release batch).
#[derive(Debug, Default)]
struct Quarantine {
    runs: std::collections::BTreeMap<u64, (u64, u64)>,
    /// Blocks in `runs`.
    blocks: u64,
    /// The batch number the next [`Allocator::release_pending`] uses.
    next_batch: u64,
}

impl Quarantine {
    /// The runs that overlap blocks `from..to`, as (start, length), sorted.
    fn within(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let before = self
            .runs
            .range(..from)
            .next_back()
            .filter(|(s, (l, _))| **s + *l > from);
        before
            .into_iter()
            .chain(self.runs.range(from..to))
            .map(|(&s, &(l, _))| (s, l))
            .collect()
    }
}

/// Out of space (blocks or inodes).
fn enospc(vol: &Volume, what: &str) -> Error {
    Error::io(
        vol.name(),
        0,
        format!("no free {what}"),
        std::io::Error::from_raw_os_error(libc::ENOSPC),
    )
}

/// First clear bit in `bits` within `from..limit`.
fn find_zero(bits: &[u8], from: usize, limit: usize) -> Option<usize> {
    let mut i = from;
    while i < limit {
        let byte = bits[i / 8];
        if byte == 0xff && i.is_multiple_of(8) {
            i += 8;
            continue;
        }
        if byte & (1 << (i % 8)) == 0 {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Subtract without wrapping below zero (counts from a hostile image may be too small).
fn sub_saturating(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

fn set_bit(bits: &mut [u8], i: usize, on: bool) -> bool {
    let was = bits[i / 8] & (1 << (i % 8)) != 0;
    if on {
        bits[i / 8] |= 1 << (i % 8);
    } else {
        bits[i / 8] &= !(1 << (i % 8));
    }
    was
}

impl Allocator {
    /// The allocator for `vol`, from its group descriptors.
    pub fn new(vol: &Volume) -> Allocator {
        let groups: Vec<Mutex<GroupCounts>> = vol
            .groups()
            .iter()
            .map(|g| {
                Mutex::new(GroupCounts {
                    free_blocks: g.free_blocks,
                    free_inodes: g.free_inodes,
                    used_dirs: g.used_dirs,
                })
            })
            .collect();
        let fb = vol.groups().iter().map(|g| u64::from(g.free_blocks)).sum();
        let fi = vol.groups().iter().map(|g| u64::from(g.free_inodes)).sum();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        Allocator {
            groups,
            free_blocks: AtomicU64::new(fb),
            free_inodes: AtomicU64::new(fi),
            generation: AtomicU32::new(seed),
            defer_frees: std::sync::atomic::AtomicBool::new(false),
            pending: Mutex::new(Vec::new()),
            quarantine: Mutex::new(Quarantine::default()),
        }
    }

    /// Free blocks now (blocks waiting for a commit to be released count as free, as
    /// the kernel counts them).
    pub fn free_blocks(&self) -> u64 {
        let pending: u64 = self.pending.lock().iter().map(|r| r.2).sum();
        self.free_blocks.load(Ordering::Relaxed) + pending
    }

    /// Free blocks that can be allocated now (those waiting for a commit not counted).
    pub fn allocatable_blocks(&self) -> u64 {
        self.free_blocks
            .load(Ordering::Relaxed)
            .saturating_sub(self.quarantine.lock().blocks)
    }

    /// Free inodes now.
    pub fn free_inodes(&self) -> u64 {
        self.free_inodes.load(Ordering::Relaxed)
    }

    /// A fresh i_generation.
    pub fn next_generation(&self) -> u32 {
        self.generation.fetch_add(0x9E37_79B9, Ordering::Relaxed)
    }

    fn write_desc(vol: &Volume, g: usize, c: &GroupCounts) -> Result<()> {
        let sb = vol.sb();
        let dpb = sb.descs_per_block();
        let blk = sb.descriptor_block(g as u64 / dpb);
        let at = (g as u64 % dpb) as usize * usize::from(sb.desc_size);
        vol.modify_block(blk, None, |b| {
            b[at + 0xC..at + 0xE].copy_from_slice(&(c.free_blocks as u16).to_le_bytes());
            b[at + 0xE..at + 0x10].copy_from_slice(&(c.free_inodes as u16).to_le_bytes());
            b[at + 0x10..at + 0x12].copy_from_slice(&(c.used_dirs as u16).to_le_bytes());
        })
    }

    /// The group a new inode goes to (see the module docs).
    fn pick_inode_group(&self, vol: &Volume, parent: u32, dir: bool) -> Vec<usize> {
        let n = self.groups.len();
        let ipg = vol.sb().inodes_per_group;
        let pg = ((parent.max(1) - 1) / ipg) as usize % n;
        let counts: Vec<GroupCounts> = self.groups.iter().map(|g| *g.lock()).collect();
        let avg_inodes = self.free_inodes() / n as u64;
        let avg_blocks = self.free_blocks() / n as u64;
        let mut order: Vec<usize> = Vec::with_capacity(n + 8);
        if dir && parent == ROOT_INO {
            // Top-level directories: a roomy group with the fewest directories.
            let mut best: Option<usize> = None;
            let start = self.next_generation() as usize % n;
            for k in 0..n {
                let g = (start + k) % n;
                let c = counts[g];
                if u64::from(c.free_inodes) < avg_inodes || u64::from(c.free_blocks) < avg_blocks {
                    continue;
                }
                if best.is_none_or(|b| c.used_dirs < counts[b].used_dirs) {
                    best = Some(g);
                }
            }
            order.extend(best);
        } else if dir {
            for k in 0..n {
                let g = (pg + k) % n;
                let c = counts[g];
                if c.free_inodes > 0 && u64::from(c.free_blocks) >= avg_blocks / 2 {
                    order.push(g);
                    break;
                }
            }
        } else {
            order.push(pg);
            let mut step = 1;
            while step < n {
                order.push((pg + step) % n);
                step *= 2;
            }
        }
        order.extend((0..n).map(|k| (pg + k) % n));
        order
    }

    /// Allocate an inode for a child of `parent` (a directory when `dir`).
    pub fn alloc_inode(&self, vol: &Volume, parent: u32, dir: bool) -> Result<u32> {
        let sb = vol.sb();
        let ipg = sb.inodes_per_group as usize;
        for g in self.pick_inode_group(vol, parent, dir) {
            let mut c = self.groups[g].lock();
            if c.free_inodes == 0 {
                continue;
            }
            let bitmap = vol.groups()[g].inode_bitmap;
            let first = if g == 0 { sb.first_ino as usize - 1 } else { 0 };
            let got = vol.modify_block(bitmap, None, |b| {
                let i = find_zero(b, first, ipg)?;
                set_bit(b, i, true);
                Some(i)
            })?;
            let Some(i) = got else {
                // The count said free but the bitmap is full: trust the bitmap.
                continue;
            };
            c.free_inodes = c.free_inodes.saturating_sub(1);
            if dir {
                c.used_dirs = c.used_dirs.saturating_add(1);
            }
            Self::write_desc(vol, g, &c)?;
            sub_saturating(&self.free_inodes, 1);
            return Ok((g * ipg + i + 1) as u32);
        }
        Err(enospc(vol, "inodes"))
    }

    /// Free inode `ino` (a directory when `dir`).
    pub fn free_inode(&self, vol: &Volume, ino: u32, dir: bool) -> Result<()> {
        let ipg = vol.sb().inodes_per_group;
        let g = ((ino - 1) / ipg) as usize;
        let i = ((ino - 1) % ipg) as usize;
        let mut c = self.groups[g].lock();
        let was = vol.modify_block(vol.groups()[g].inode_bitmap, Some(ino), |b| {
            set_bit(b, i, false)
        })?;
        if !was {
            return Err(vol.corrupt(Some(ino), None, "freeing an inode that is not in use"));
        }
        c.free_inodes = c.free_inodes.saturating_add(1);
        if dir {
            c.used_dirs = c.used_dirs.saturating_sub(1);
        }
        Self::write_desc(vol, g, &c)?;
        self.free_inodes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Allocate up to `max` contiguous blocks at or after `goal` (at least one).
    pub fn alloc_blocks(&self, vol: &Volume, goal: u64, max: u64) -> Result<(u64, u64)> {
        let sb = vol.sb();
        let first = u64::from(sb.first_data_block);
        let bpg = u64::from(sb.blocks_per_group);
        let n = self.groups.len();
        let goal = goal.clamp(first, sb.blocks_count - 1);
        let g0 = ((goal - first) / bpg) as usize;
        for k in 0..=n {
            let g = (g0 + k) % n;
            let mut c = self.groups[g].lock();
            if c.free_blocks == 0 {
                continue;
            }
            let gstart = first + g as u64 * bpg;
            let limit = (sb.blocks_count - gstart).min(bpg) as usize;
            let from = if k == 0 { (goal - gstart) as usize } else { 0 };
            // This group's quarantined runs, sorted by start.
            let held = self.quarantine.lock().within(gstart, gstart + limit as u64);
            let blocked = |i: usize| {
                let blk = gstart + i as u64;
                let k = held.partition_point(|&(s, _)| s <= blk);
                k > 0 && blk < held[k - 1].0 + held[k - 1].1
            };
            let got = vol.modify_block(vol.groups()[g].block_bitmap, None, |b| {
                let mut i =
                    find_zero(b, from, limit).or_else(|| find_zero(b, 0, from.min(limit)))?;
                // Skip blocks freed by a transaction not yet on disk.
                let mut tries = 0usize;
                while blocked(i) {
                    tries += 1;
                    if tries > limit {
                        return None;
                    }
                    i = find_zero(b, i + 1, limit).or_else(|| find_zero(b, 0, i.min(limit)))?;
                }
                let mut len = 0usize;
                while (len as u64) < max
                    && i + len < limit
                    && !blocked(i + len)
                    && !set_bit(b, i + len, true)
                {
                    len += 1;
                }
                Some((i, len))
            })?;
            let Some((i, len)) = got else { continue };
            if len == 0 {
                continue;
            }
            c.free_blocks = c.free_blocks.saturating_sub(len as u32);
            Self::write_desc(vol, g, &c)?;
            sub_saturating(&self.free_blocks, len as u64);
            return Ok((gstart + i as u64, len as u64));
        }
        Err(enospc(vol, "blocks"))
    }

    /// Hold freed blocks back until [`Allocator::release_pending`] (journalling on).
    pub fn set_defer_frees(&self, on: bool) {
        self.defer_frees.store(on, Ordering::Release);
    }

    /// Whether freed blocks wait for a commit.
    pub fn has_pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    /// Whether freed blocks wait for a checkpoint.
    pub fn has_quarantined(&self) -> bool {
        self.quarantine.lock().blocks > 0
    }

    /// Free the blocks held back since the last call (at a commit). Returns the batch
    /// number of this release, for [`Allocator::end_quarantine_upto`].
    ///
    /// The blocks are marked free in this transaction's bitmaps but stay unallocatable
    /// until the transaction is on disk and checkpointed: until then the committed state may
    /// still point at them, and a replay or checkpoint may still write their old content.
    pub fn release_pending(&self, vol: &Volume) -> Result<u64> {
        let runs: Vec<(u32, u64, u64)> = std::mem::take(&mut *self.pending.lock());
        let batch = {
            let mut q = self.quarantine.lock();
            q.next_batch += 1;
            q.next_batch
        };
        for (ino, start, len) in runs {
            {
                let mut q = self.quarantine.lock();
                q.runs.insert(start, (len, batch));
                q.blocks += len;
            }
            self.free_blocks_now(vol, ino, start, len)?;
        }
        Ok(batch)
    }

    /// Every transaction that freed quarantined blocks is on disk and checkpointed: they
    /// may all be reused.
    pub fn end_quarantine(&self) {
        let mut q = self.quarantine.lock();
        q.runs.clear();
        q.blocks = 0;
    }

    /// The transactions of release batches up to `batch` are checkpointed: their blocks
    /// may be reused.
    pub fn end_quarantine_upto(&self, batch: u64) {
        let mut q = self.quarantine.lock();
        let mut freed = 0;
        q.runs.retain(|_, &mut (len, b)| {
            let keep = b > batch;
            if !keep {
                freed += len;
            }
            keep
        });
        q.blocks -= freed;
    }

    /// Free `len` blocks from `start` (held back until the commit when journalling).
    pub fn free_blocks_run(&self, vol: &Volume, ino: u32, start: u64, len: u64) -> Result<()> {
        if self.defer_frees.load(Ordering::Acquire) {
            if !vol.block_in_range(start) || !vol.block_in_range(start + len.max(1) - 1) {
                return Err(vol.corrupt(
                    Some(ino),
                    None,
                    format!("freeing blocks {start}+{len}, outside the filesystem"),
                ));
            }
            self.pending.lock().push((ino, start, len));
            return Ok(());
        }
        self.free_blocks_now(vol, ino, start, len)
    }

    fn free_blocks_now(&self, vol: &Volume, ino: u32, start: u64, len: u64) -> Result<()> {
        let sb = vol.sb();
        let first = u64::from(sb.first_data_block);
        let bpg = u64::from(sb.blocks_per_group);
        let mut blk = start;
        let end = start + len;
        while blk < end {
            if !vol.block_in_range(blk) {
                return Err(vol.corrupt(
                    Some(ino),
                    None,
                    format!("freeing block {blk}, outside the filesystem"),
                ));
            }
            let g = ((blk - first) / bpg) as usize;
            let gstart = first + g as u64 * bpg;
            let stop = end.min(gstart + bpg);
            let mut c = self.groups[g].lock();
            let freed = vol.modify_block(vol.groups()[g].block_bitmap, Some(ino), |b| {
                let mut freed = 0u32;
                for x in blk..stop {
                    if set_bit(b, (x - gstart) as usize, false) {
                        freed += 1;
                    }
                }
                freed
            })?;
            for x in blk..stop {
                vol.forget_block(x);
            }
            c.free_blocks = c.free_blocks.saturating_add(freed);
            Self::write_desc(vol, g, &c)?;
            self.free_blocks
                .fetch_add(u64::from(freed), Ordering::Relaxed);
            if freed as u64 != stop - blk {
                return Err(vol.corrupt(
                    Some(ino),
                    None,
                    format!("freeing blocks {blk}..{stop}: some were not in use"),
                ));
            }
            blk = stop;
        }
        Ok(())
    }
}
