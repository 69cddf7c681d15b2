//! Journalling for [`Ext3Fs`]: starting the journal at a read-write mount, the operation
//! gate, commits (on size, every few seconds from a background thread, on fsync and at
//! unmount), and the clean unmount.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLockReadGuard;

use squashbox_vfs::Errno;

use super::Ext3Fs;
use crate::alloc::Allocator;
use crate::error::Error;
use crate::journal_write::{self, Checkpoint, JournalWriter};
use crate::superblock::COMPAT_HAS_JOURNAL;
use crate::volume::Volume;
use crate::volume_write::STATE_VALID;

/// How often the background thread commits (the kernel's default commit interval).
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

impl Ext3Fs {
    /// Start journalling if the image has a journal this driver can write.
    pub(super) fn start_journal(&mut self) -> std::result::Result<(), Error> {
        let Some(a) = self.alloc.clone() else {
            return Ok(());
        };
        if !self.vol.sb().has_compat(COMPAT_HAS_JOURNAL) {
            return Ok(());
        }
        let j = match JournalWriter::open(&self.vol)? {
            Ok(j) => Arc::new(j),
            Err(why) => {
                log::warn!(
                    "{}: not journalling ({why}): crash safety is ext2-grade",
                    self.vol.name()
                );
                return Ok(());
            }
        };
        journal_write::start(&self.vol, &a)?;
        spawn_committer(
            Arc::downgrade(&self.vol),
            Arc::clone(&j),
            a,
            Arc::clone(&self.stop_committer),
        );
        self.journal = Some(j);
        Ok(())
    }

    /// Enter a changing operation: commit first when the running transaction is large (or
    /// freed blocks are needed back), then hold the commit gate until the guard drops.
    pub(super) fn enter(&self) -> Option<RwLockReadGuard<'_, ()>> {
        let j = self.journal.as_ref()?;
        let a = self.alloc.as_deref()?;
        let running = journal_write::running_blocks(&self.vol);
        let low_space = (a.has_pending() || a.has_quarantined())
            && a.allocatable_blocks() < self.vol.sb().blocks_count / 32;
        let mode = if low_space {
            // Blocks freed by logged transactions come back at the checkpoint.
            Checkpoint::Now
        } else {
            Checkpoint::Lazy
        };
        if (running > j.capacity(self.vol.block_size()) / 2 || low_space)
            && let Err(e) = j.commit(&self.vol, a, mode)
        {
            self.faults.warn("journal commit", 0, &e);
        }
        Some(j.enter())
    }

    /// Enter a changing operation through [`Self::enter`]; EIO once the shutdown has begun.
    /// Checked while holding the gate: an operation either entered before the shutdown's
    /// commit (which waits for it) or sees the flag.
    pub(super) fn begin(&self) -> Result<Option<RwLockReadGuard<'_, ()>>, Errno> {
        if self.is_shut_down() {
            return Err(Errno::EIO);
        }
        let gate = self.enter();
        if self.is_shut_down() {
            return Err(Errno::EIO);
        }
        Ok(gate)
    }

    /// Whether the shutdown has begun.
    pub(super) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// Commit the running transaction now and checkpoint the log.
    pub fn commit(&self) -> std::result::Result<usize, Error> {
        self.commit_with(Checkpoint::Now)
    }

    fn commit_with(&self, mode: Checkpoint) -> std::result::Result<usize, Error> {
        match (&self.journal, self.alloc.as_deref()) {
            (Some(j), Some(a)) => j.commit(&self.vol, a, mode),
            _ => Ok(0),
        }
    }

    /// Flush everything written so far and record the current free counts (fsync: the
    /// transaction is committed; its checkpoint comes later).
    pub fn sync(&self) -> std::result::Result<(), Error> {
        let Some(a) = self.alloc.as_deref() else {
            return Ok(());
        };
        if self.is_shut_down() {
            // Everything was written and the journal stopped at the shutdown.
            return Ok(());
        }
        {
            let _op = self.enter();
            self.vol.write_super(
                a.free_blocks(),
                a.free_inodes() as u32,
                self.vol.sb().state & !STATE_VALID,
            )?;
        }
        self.commit_with(Checkpoint::Lazy)?;
        self.vol.file().sync()
    }

    /// Free unlinked inodes still held, mark the filesystem clean, commit, stop the journal
    /// and flush (unmount).
    pub(super) fn unmount(&self) -> std::result::Result<(), Error> {
        let Some(a) = self.alloc.as_deref() else {
            return Ok(());
        };
        self.stop_committer.store(true, Ordering::Release);
        {
            let _op = self.enter();
            let orphans: Vec<u32> = self.orphans.lock().drain().collect();
            for ino in orphans {
                self.orphan_remove(ino)?;
                self.free_inode(ino)?;
            }
        }
        if self.journal.is_some() {
            self.commit()?;
            {
                let _op = self.enter();
                self.vol.write_super(
                    a.free_blocks(),
                    a.free_inodes() as u32,
                    self.vol.sb().state | STATE_VALID,
                )?;
            }
            self.commit()?;
            journal_write::stop(&self.vol, a)?;
        } else {
            self.vol.write_super(
                a.free_blocks(),
                a.free_inodes() as u32,
                self.vol.sb().state | STATE_VALID,
            )?;
        }
        self.vol.file().sync()
    }

    /// For crash tests: commit the running transaction to the log but write nothing home,
    /// as if the machine stopped right after the commit block reached the disk.
    #[doc(hidden)]
    pub fn simulate_crash_after_commit(&self) -> std::result::Result<usize, Error> {
        self.stop_committer.store(true, Ordering::Release);
        match (&self.journal, self.alloc.as_deref()) {
            (Some(j), Some(a)) => j.commit(&self.vol, a, Checkpoint::Never),
            _ => Ok(0),
        }
    }

    /// For tests: no more background commits (commits happen on fsync, size and unmount).
    #[doc(hidden)]
    pub fn stop_background_commits(&self) {
        self.stop_committer.store(true, Ordering::Release);
    }

    /// Whether changes go through the journal.
    pub fn journalling(&self) -> bool {
        self.journal.is_some()
    }
}

fn spawn_committer(
    vol: Weak<Volume>,
    j: Arc<JournalWriter>,
    a: Arc<Allocator>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let spawned = std::thread::Builder::new()
        .name("ext3-commit".into())
        .spawn(move || {
            let tick = Duration::from_millis(200);
            let mut waited = Duration::ZERO;
            loop {
                std::thread::sleep(tick);
                if stop.load(Ordering::Acquire) {
                    return;
                }
                waited += tick;
                if waited < COMMIT_INTERVAL {
                    continue;
                }
                waited = Duration::ZERO;
                let Some(vol) = vol.upgrade() else { return };
                // Commit what changed; once nothing does, checkpoint what is in the log.
                let r = if journal_write::running_blocks(&vol) > 0 || a.has_pending() {
                    j.commit(&vol, &a, Checkpoint::Lazy)
                } else if j.has_logged() {
                    j.commit(&vol, &a, Checkpoint::Now)
                } else {
                    Ok(0)
                };
                if let Err(e) = r {
                    log::error!("{e}");
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the journal commit thread: {e}");
    }
}
