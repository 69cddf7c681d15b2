//! Writing metadata through the cache: read-modify-write of one block under its shard lock,
//! fresh blocks, inodes, and the superblock's counters and state.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cache::Block;
use crate::error::Result;
use crate::inode::Inode;
use crate::superblock::SUPERBLOCK_OFFSET;
use crate::volume::Volume;

/// s_state: cleanly unmounted.
pub const STATE_VALID: u16 = 0x1;

impl Volume {
    /// Change metadata block `blk` with `f` and write it back (serialised per block).
    pub fn modify_block<T>(
        &self,
        blk: u64,
        ino: Option<u32>,
        f: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<T> {
        let shard = &self.block_locks[(blk % self.block_locks.len() as u64) as usize];
        let _g = shard.lock();
        let old = self.read_block(blk, ino)?;
        let mut new = old.to_vec();
        let out = f(&mut new);
        if new[..] != old[..] {
            self.write_block_now(blk, new)?;
        }
        Ok(out)
    }

    /// Write a whole new metadata block `blk` (a block just allocated).
    pub fn write_new_block(&self, blk: u64, data: Vec<u8>) -> Result<()> {
        let shard = &self.block_locks[(blk % self.block_locks.len() as u64) as usize];
        let _g = shard.lock();
        self.write_block_now(blk, data)
    }

    fn write_block_now(&self, blk: u64, data: Vec<u8>) -> Result<()> {
        if !self.block_in_range(blk) && blk != self.sb_block() {
            return Err(self.corrupt(
                None,
                None,
                format!("write to block {blk}, outside the filesystem"),
            ));
        }
        let b: Block = Arc::from(data);
        if self.journaling.load(Ordering::Acquire) {
            // Into the running transaction; home at the commit's checkpoint.
            self.dirty.write().insert(blk, Arc::clone(&b));
        } else {
            let bs = u64::from(self.block_size());
            self.file.write_all_at(&b, blk * bs)?;
        }
        self.cache.insert(blk, b);
        Ok(())
    }

    /// Forget cached content of `blk` (it was freed; it may come back as file data).
    pub fn forget_block(&self, blk: u64) {
        self.cache.remove(blk);
    }

    /// Write `inode` back to its slot in the inode table.
    pub fn write_inode(&self, inode: &Inode) -> Result<()> {
        let (blk, at) = self.inode_location(inode.ino)?;
        let raw = inode.to_raw(&self.fmt);
        self.modify_block(blk, Some(inode.ino), |b| {
            b[at..at + raw.len()].copy_from_slice(&raw);
        })
    }

    /// Block and byte offset in it of inode `ino`'s record.
    pub fn inode_location(&self, ino: u32) -> Result<(u64, usize)> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(self.corrupt(Some(ino), None, "inode number out of range"));
        }
        let idx = u64::from(ino - 1);
        let ipg = u64::from(self.sb.inodes_per_group);
        let gd = &self.groups[(idx / ipg) as usize];
        let isz = u64::from(self.sb.inode_size);
        let bs = u64::from(self.sb.block_size);
        let byte = (idx % ipg) * isz;
        Ok((gd.inode_table + byte / bs, (byte % bs) as usize))
    }

    /// Change the superblock's raw 1024 bytes with `f` (through the block path, so it is
    /// journalled with everything else when journalling).
    pub fn modify_super<T>(&self, f: impl FnOnce(&mut [u8]) -> T) -> Result<T> {
        let _g = self.sb_lock.lock();
        let at = (SUPERBLOCK_OFFSET % u64::from(self.block_size())) as usize;
        self.modify_block(self.sb_block(), None, |b| f(&mut b[at..at + 1024]))
    }

    /// Write the superblock's free counts and state (and the write time).
    pub fn write_super(&self, free_blocks: u64, free_inodes: u32, state: u16) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        self.modify_super(|raw| {
            raw[0xC..0x10].copy_from_slice(&(free_blocks as u32).to_le_bytes());
            raw[0x10..0x14].copy_from_slice(&free_inodes.to_le_bytes());
            raw[0x3A..0x3C].copy_from_slice(&state.to_le_bytes());
            raw[0x30..0x34].copy_from_slice(&now.to_le_bytes());
        })
    }

    /// Set or clear INCOMPAT feature `bit` in the superblock.
    pub fn set_incompat(&self, bit: u32, on: bool) -> Result<()> {
        self.modify_super(|raw| {
            let mut v = u32::from_le_bytes([raw[0x60], raw[0x61], raw[0x62], raw[0x63]]);
            if on {
                v |= bit;
            } else {
                v &= !bit;
            }
            raw[0x60..0x64].copy_from_slice(&v.to_le_bytes());
        })
    }

    /// Bump the mount count and set the mount time (a read-write mount starts).
    pub fn note_mount(&self) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        self.modify_super(|raw| {
            let n = u16::from_le_bytes([raw[0x34], raw[0x35]]).wrapping_add(1);
            raw[0x2C..0x30].copy_from_slice(&now.to_le_bytes());
            raw[0x34..0x36].copy_from_slice(&n.to_le_bytes());
        })
    }

    /// Set the head of the on-disk orphan list (`s_last_orphan`).
    pub fn write_last_orphan(&self, ino: u32) -> Result<()> {
        self.modify_super(|raw| raw[0xE8..0xEC].copy_from_slice(&ino.to_le_bytes()))
    }

    /// The head of the on-disk orphan list.
    pub fn read_last_orphan(&self) -> Result<u32> {
        self.modify_super(|raw| u32::from_le_bytes([raw[0xE8], raw[0xE9], raw[0xEA], raw[0xEB]]))
    }
}
