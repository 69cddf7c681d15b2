//! Writing the jbd2 journal (ordered mode).
//!
//! Metadata changes collect in the running transaction (the volume's dirty map) while
//! operations run; each operation holds the commit gate shared, so a commit (which takes it
//! exclusively for a moment) only ever captures whole operations. A commit:
//! 1. releases the blocks freed in the transaction (quarantined: not reusable yet) and
//!    takes its blocks;
//! 2. writes a descriptor and the block copies to the log after the transactions already
//!    there (and, into an empty log, points the journal superblock at them);
//! 3. flushes once: the file data written so far (ordered mode: data reaches home before the
//!    metadata naming it), the log blocks and the journal superblock;
//! 4. writes the commit block and flushes again: from here the transaction survives a crash
//!    (the next mount, ours, the kernel's or e2fsck's, replays it).
//!
//! An fsync costs those two flushes. The checkpoint (write the logged blocks home, flush,
//! mark the log empty, flush) comes later: when the log is half full, when the committed
//! blocks held in memory pass [`LOGGED_BYTES`], when the periodic committer finds nothing
//! new, at low space and at unmount. Until their checkpoint the blocks are read from memory
//! (`Volume::logged`).
//!
//! No revoke records are written. Instead, blocks freed by a transaction stay quarantined
//! (unallocatable) until the log holding it is checkpointed and marked empty, so a replay
//! can never write an old metadata block over a block reused since.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::alloc::Allocator;
use crate::bytes::be32;
use crate::cache::Block;
use crate::error::{Error, Result};
use crate::journal::MAGIC;
use crate::volume::Volume;

const DESCRIPTOR: u32 = 1;
const COMMIT: u32 = 2;
const FLAG_ESCAPE: u16 = 1;
const FLAG_SAME_UUID: u16 = 2;
const FLAG_LAST_TAG: u16 = 8;

/// The journal of a read-write mount.
pub struct JournalWriter {
    /// Image block of each log position `0..maxlen`.
    log: Vec<u64>,
    first: u32,
    jsb_block: u64,
    uuid: [u8; 16],
    sequence: Mutex<u32>,
    log_state: Mutex<LogState>,
    commit_lock: Mutex<()>,
    gate: RwLock<()>,
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JournalWriter {{ blocks: {}, first: {} }}",
            self.log.len(),
            self.first
        )
    }
}

fn header(b: &mut [u8], kind: u32, seq: u32) {
    b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&kind.to_be_bytes());
    b[8..12].copy_from_slice(&seq.to_be_bytes());
}

impl JournalWriter {
    /// The journal of `vol` (its log must be empty: replay happened at open), or `None`
    /// with the reason when this driver cannot write it.
    pub fn open(vol: &Volume) -> Result<std::result::Result<JournalWriter, String>> {
        let sb = vol.sb();
        if sb.journal_inum == 0 {
            return Ok(Err("external journal".into()));
        }
        let inode = vol.inode(sb.journal_inum)?;
        let bs = vol.block_size();
        let jsb_block = vol
            .map(&inode, 0, 1)?
            .phys
            .ok_or_else(|| vol.corrupt(Some(inode.ino), None, "journal superblock is a hole"))?;
        let mut jsb = vec![0u8; bs as usize];
        vol.file()
            .read_exact_at(&mut jsb, jsb_block * u64::from(bs))?;
        let (maxlen, first, seq, start) = (
            be32(&jsb, 0x10),
            be32(&jsb, 0x14),
            be32(&jsb, 0x18),
            be32(&jsb, 0x1C),
        );
        let btype = be32(&jsb, 4);
        let incompat = if btype == 4 { be32(&jsb, 0x28) } else { 0 };
        if be32(&jsb, 0) != MAGIC || be32(&jsb, 0xC) != bs || start != 0 {
            return Ok(Err("unexpected journal superblock".into()));
        }
        if incompat & !0x1 != 0 {
            return Ok(Err(format!("journal features {incompat:#x}")));
        }
        if maxlen < 64
            || u64::from(maxlen) > inode.size / u64::from(bs)
            || first == 0
            || first >= maxlen
        {
            return Ok(Err(format!(
                "journal geometry (length {maxlen}, first {first})"
            )));
        }
        let mut log = Vec::with_capacity(maxlen as usize);
        let mut lblk = 0u64;
        while lblk < u64::from(maxlen) {
            let run = vol.map(&inode, lblk, u64::from(maxlen) - lblk)?;
            let Some(p) = run.phys else {
                return Ok(Err(format!("journal block {lblk} is a hole")));
            };
            log.extend(p..p + run.len);
            lblk += run.len;
        }
        log.truncate(maxlen as usize);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&jsb[0x30..0x40]);
        Ok(Ok(JournalWriter {
            log,
            first,
            jsb_block,
            uuid,
            sequence: Mutex::new(seq),
            log_state: Mutex::new(LogState {
                next: first as usize,
                first_seq: None,
            }),
            commit_lock: Mutex::new(()),
            gate: RwLock::new(()),
        }))
    }

    /// Held (shared) by every changing operation for its whole length.
    pub fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read()
    }

    /// Blocks a transaction may hold and still fit in the log.
    pub fn capacity(&self, bs: u32) -> usize {
        let per_desc = (bs as usize - 12 - 16) / 8;
        let room = self.log.len() - self.first as usize - 2;
        room * per_desc / (per_desc + 1)
    }

    fn write_jsb(&self, vol: &Volume, start: u32, seq: u32) -> Result<()> {
        let bs = u64::from(vol.block_size());
        let mut jsb = vec![0u8; bs as usize];
        vol.file().read_exact_at(&mut jsb, self.jsb_block * bs)?;
        jsb[0x18..0x1C].copy_from_slice(&seq.to_be_bytes());
        jsb[0x1C..0x20].copy_from_slice(&start.to_be_bytes());
        vol.file().write_all_at(&jsb, self.jsb_block * bs)
    }

    /// Commit the running transaction (see the module docs); `mode` says whether to
    /// checkpoint now, when the log or memory asks for it, or never (crash tests). Returns
    /// the blocks committed.
    pub fn commit(&self, vol: &Volume, alloc: &Allocator, mode: Checkpoint) -> Result<usize> {
        let _one = self.commit_lock.lock();
        let batch = {
            let _all = self.gate.write();
            let batch = alloc.release_pending(vol)?;
            // Readers look in `dirty`, then `committing`: hold `committing` while moving.
            let mut c = vol.committing.write();
            *c = std::mem::take(&mut *vol.dirty.write());
            batch
        };
        let blocks: Vec<(u64, Block)> = {
            let c = vol.committing.read();
            let mut v: Vec<(u64, Block)> = c.iter().map(|(k, b)| (*k, b.clone())).collect();
            v.sort_unstable_by_key(|e| e.0);
            v
        };
        if blocks.is_empty() {
            if mode == Checkpoint::Now {
                self.checkpoint(vol, alloc, batch)?;
            } else if mode == Checkpoint::Lazy && vol.logged.read().is_empty() {
                alloc.end_quarantine_upto(batch);
            }
            return Ok(0);
        }
        let bs = vol.block_size() as usize;
        if blocks.len() > self.capacity(vol.block_size()) {
            // Too big for the log: write it home unjournalled (not atomic) rather than fail,
            // after everything committed before it.
            log::warn!(
                "{}: a transaction of {} blocks does not fit the journal; written unjournalled",
                vol.name(),
                blocks.len()
            );
            self.checkpoint(vol, alloc, batch - 1)?;
            vol.file().sync()?;
            for (home, data) in &blocks {
                vol.file().write_all_at(data, home * bs as u64)?;
            }
            vol.file().sync()?;
            vol.committing.write().clear();
            alloc.end_quarantine_upto(batch);
            return Ok(blocks.len());
        }
        let per_desc = (bs - 12 - 16) / 8;
        let need = blocks.len().div_ceil(per_desc) + blocks.len() + 1;
        if self.log_state.lock().next + need > self.log.len() {
            // No room after the transactions already in the log: write those home first.
            self.checkpoint(vol, alloc, batch - 1)?;
        }
        let seq = *self.sequence.lock();
        let (mut pos, log_was_empty) = {
            let st = self.log_state.lock();
            (st.next, st.first_seq.is_none())
        };
        for chunk in blocks.chunks(per_desc) {
            let mut d = vec![0u8; bs];
            header(&mut d, DESCRIPTOR, seq);
            let mut off = 12;
            for (k, (home, data)) in chunk.iter().enumerate() {
                let mut flags = if k > 0 { FLAG_SAME_UUID } else { 0 };
                if k + 1 == chunk.len() {
                    flags |= FLAG_LAST_TAG;
                }
                if be32(data, 0) == MAGIC {
                    flags |= FLAG_ESCAPE;
                }
                d[off..off + 4].copy_from_slice(&(*home as u32).to_be_bytes());
                d[off + 6..off + 8].copy_from_slice(&flags.to_be_bytes());
                off += 8;
                if k == 0 {
                    d[off..off + 16].copy_from_slice(&self.uuid);
                    off += 16;
                }
            }
            vol.file().write_all_at(&d, self.log[pos] * bs as u64)?;
            pos += 1;
            for (_, data) in chunk {
                if be32(data, 0) == MAGIC {
                    let mut esc = data.to_vec();
                    esc[0..4].fill(0);
                    vol.file().write_all_at(&esc, self.log[pos] * bs as u64)?;
                } else {
                    vol.file().write_all_at(data, self.log[pos] * bs as u64)?;
                }
                pos += 1;
            }
        }
        if log_was_empty {
            self.write_jsb(vol, self.first, seq)?;
        }
        // One flush for the file data (ordered mode), the log blocks and the journal
        // superblock: all of them are on disk before the commit block.
        vol.file().sync()?;
        let mut c = vec![0u8; bs];
        header(&mut c, COMMIT, seq);
        vol.file().write_all_at(&c, self.log[pos] * bs as u64)?;
        vol.file().sync()?;
        {
            let mut st = self.log_state.lock();
            st.next = pos + 1;
            st.first_seq.get_or_insert(seq);
        }
        *self.sequence.lock() = seq.wrapping_add(1);
        // Into the committed set before leaving `committing`, so readers always find it.
        {
            let mut logged = vol.logged.write();
            let mut c = vol.committing.write();
            logged.extend(c.drain());
        }
        let full = {
            let st = self.log_state.lock();
            st.next - self.first as usize > (self.log.len() - self.first as usize) / 2
                || vol.logged.read().len() * bs > LOGGED_BYTES
        };
        match mode {
            Checkpoint::Never => {}
            Checkpoint::Now => self.checkpoint(vol, alloc, batch)?,
            Checkpoint::Lazy if full => self.checkpoint(vol, alloc, batch)?,
            Checkpoint::Lazy => {}
        }
        Ok(blocks.len())
    }

    /// Whether committed transactions wait in the log for their checkpoint.
    pub fn has_logged(&self) -> bool {
        self.log_state.lock().first_seq.is_some()
    }

    /// Write every committed block home, flush, mark the log empty (flushed too: until then
    /// a replay may still write old blocks), and let the blocks freed by release batches up
    /// to `batch` be reused. The caller holds the commit lock.
    fn checkpoint(&self, vol: &Volume, alloc: &Allocator, batch: u64) -> Result<()> {
        let blocks: Vec<(u64, Block)> = {
            let l = vol.logged.read();
            let mut v: Vec<(u64, Block)> = l.iter().map(|(k, b)| (*k, b.clone())).collect();
            v.sort_unstable_by_key(|e| e.0);
            v
        };
        let bs = u64::from(vol.block_size());
        for (home, data) in &blocks {
            vol.file().write_all_at(data, home * bs)?;
        }
        if self.has_logged() {
            vol.file().sync()?;
            self.write_jsb(vol, 0, *self.sequence.lock())?;
            vol.file().sync()?;
            let mut st = self.log_state.lock();
            st.next = self.first as usize;
            st.first_seq = None;
        }
        {
            // Only the versions written above: a block logged again since stays.
            let mut l = vol.logged.write();
            for (home, data) in &blocks {
                if l.get(home).is_some_and(|b| std::sync::Arc::ptr_eq(b, data)) {
                    l.remove(home);
                }
            }
        }
        alloc.end_quarantine_upto(batch);
        Ok(())
    }
}

/// When a commit checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// Right after the commit (unmount, the periodic commit, low space).
    Now,
    /// When the log is half full or the committed blocks held in memory pass
    /// [`LOGGED_BYTES`] (fsync: two flushes, the checkpoint's come later).
    Lazy,
    /// Never: leave the transaction in the log (crash tests).
    Never,
}

/// Most bytes of committed blocks kept in memory waiting for a checkpoint.
pub const LOGGED_BYTES: usize = 8 << 20;

/// Where the next transaction goes in the log, and whether the log holds any.
#[derive(Debug)]
struct LogState {
    /// Log position of the next descriptor block.
    next: usize,
    /// Sequence of the oldest transaction in the log; `None` when it is empty.
    first_seq: Option<u32>,
}

/// Turn journalling on for `vol`: needs_recovery is set on disk first, so a crash from
/// here on is replayed.
pub fn start(vol: &Volume, alloc: &Allocator) -> Result<()> {
    vol.set_incompat(crate::superblock::INCOMPAT_RECOVER, true)?;
    vol.file().sync()?;
    alloc.set_defer_frees(true);
    vol.journaling.store(true, Ordering::Release);
    Ok(())
}

/// Turn journalling off after the last commit and clear needs_recovery (clean unmount).
pub fn stop(vol: &Volume, alloc: &Allocator) -> Result<()> {
    vol.journaling.store(false, Ordering::Release);
    alloc.set_defer_frees(false);
    alloc.release_pending(vol)?;
    alloc.end_quarantine();
    if !vol.dirty.read().is_empty() {
        return Err(Error::corrupt(
            vol.name(),
            None,
            None,
            "journal stopped with uncommitted blocks",
        ));
    }
    vol.set_incompat(crate::superblock::INCOMPAT_RECOVER, false)?;
    vol.file().sync()
}

/// Blocks in the running transaction.
pub fn running_blocks(vol: &Volume) -> usize {
    vol.dirty.read().len()
}

/// For tests and debugging: the blocks of the running transaction.
pub fn running_snapshot(vol: &Volume) -> HashMap<u64, Block> {
    vol.dirty.read().clone()
}
