//! [`Volume`]: the opened filesystem — image, superblock, group descriptors and the
//! metadata cache — with the primitives every other module builds on: metadata blocks,
//! inodes, and the mapping of file blocks to image blocks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::block_map;
use crate::cache::{Block, BlockCache};
use crate::error::{Error, Result};
use crate::extents;
use crate::group_desc::{self, GroupDesc};
use crate::image::ImageFile;
use crate::inode::{INLINE_DATA_FL, Inode, InodeFormat, ROOT_INO};
use crate::journal;
use crate::superblock::{
    INCOMPAT_64BIT, INCOMPAT_LARGEDIR, INCOMPAT_RECOVER, RO_COMPAT_HUGE_FILE, SUPERBLOCK_OFFSET,
    SUPERBLOCK_SIZE, Superblock,
};

/// Default metadata cache budget.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// A run of file blocks: `len` blocks from the asked one, at image block `phys` onwards, or
/// a hole (`None`: reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First image block, or `None` for a hole.
    pub phys: Option<u64>,
    /// Blocks in the run (at least 1).
    pub len: u64,
}

/// An opened ext2/3/4 filesystem.
#[derive(Debug)]
pub struct Volume {
    pub(crate) file: ImageFile,
    pub(crate) sb: Superblock,
    pub(crate) groups: Vec<GroupDesc>,
    pub(crate) cache: BlockCache,
    pub(crate) fmt: InodeFormat,
    /// Serialises read-modify-write of one metadata block (sharded by block number).
    pub(crate) block_locks: Box<[parking_lot::Mutex<()>]>,
    /// Blocks replayed from the journal, served instead of the image's (read-only opens of
    /// an image that needs recovery).
    pub(crate) overlay: HashMap<u64, Block>,
    /// Serialises read-modify-write of the on-disk superblock.
    pub(crate) sb_lock: parking_lot::Mutex<()>,
    /// Metadata writes go to the running transaction instead of home.
    pub(crate) journaling: std::sync::atomic::AtomicBool,
    /// The running transaction: metadata blocks changed since the last commit.
    pub(crate) dirty: parking_lot::RwLock<HashMap<u64, Block>>,
    /// The transaction being committed, until it is in the log.
    pub(crate) committing: parking_lot::RwLock<HashMap<u64, Block>>,
    /// Committed transactions in the log, not yet written home (the latest version of each
    /// block), until the checkpoint.
    pub(crate) logged: parking_lot::RwLock<HashMap<u64, Block>>,
}

impl Volume {
    /// Open the filesystem at byte `offset` of `path`, checking the superblock and group
    /// descriptors. `read_only` opens the file read-only.
    /// An image whose journal needs recovery is replayed: for real when `read_only` is
    /// false, in memory otherwise.
    pub fn open(path: &Path, offset: u64, read_only: bool) -> Result<Volume> {
        let mut vol = Volume::open_unchecked(path, offset, read_only, HashMap::new())?;
        if vol.sb.has_incompat(INCOMPAT_RECOVER) {
            let replay = journal::scan(&vol)?;
            if read_only {
                let overlay = replay
                    .blocks
                    .into_iter()
                    .map(|(k, v)| (k, Block::from(v)))
                    .collect();
                vol = Volume::open_unchecked(path, offset, true, overlay)?;
            } else {
                journal::apply(&vol, &replay)?;
                drop(vol);
                vol = Volume::open_unchecked(path, offset, false, HashMap::new())?;
                if vol.sb.has_incompat(INCOMPAT_RECOVER) {
                    return Err(vol.corrupt(
                        None,
                        None,
                        "needs_recovery is still set after replay",
                    ));
                }
            }
        }
        let root = vol.inode(ROOT_INO)?;
        if !root.is_dir() {
            return Err(vol.corrupt(
                Some(ROOT_INO),
                None,
                format!("the root inode is not a directory (mode {:o})", root.mode),
            ));
        }
        Ok(vol)
    }

    /// Give the metadata block cache a new size of about `bytes` (empty again). For right
    /// after [`Volume::open`], before the volume is shared.
    pub fn set_cache_bytes(&mut self, bytes: usize) {
        self.cache = BlockCache::new(bytes, self.sb.block_size);
    }

    fn open_unchecked(
        path: &Path,
        offset: u64,
        read_only: bool,
        overlay: HashMap<u64, Block>,
    ) -> Result<Volume> {
        let file = ImageFile::open(path, offset, read_only)?;
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        if file.len() < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64 {
            return Err(Error::corrupt(
                file.name(),
                None,
                Some(SUPERBLOCK_OFFSET),
                format!(
                    "too small for an ext2/3/4 filesystem ({} bytes, the superblock ends at 2048)",
                    file.len()
                ),
            ));
        }
        file.read_exact_at(&mut raw, SUPERBLOCK_OFFSET)?;
        // A replayed superblock: 1 KiB blocks hold it in block 1, bigger ones in block 0.
        if let Some(b) = overlay.get(&1).filter(|b| b.len() == 1024) {
            raw.copy_from_slice(b);
        } else if let Some(b) = overlay.get(&0).filter(|b| b.len() >= 2048) {
            raw.copy_from_slice(&b[1024..2048]);
        }
        let sb = Superblock::parse(file.name(), &raw, file.len())?;
        let groups = group_desc::read_table(&file, &sb, &overlay)?;
        let fmt = InodeFormat {
            inode_size: sb.inode_size,
            is64: sb.has_incompat(INCOMPAT_64BIT),
            huge_file: sb.has_ro_compat(RO_COMPAT_HUGE_FILE),
            largedir: sb.has_incompat(INCOMPAT_LARGEDIR),
            block_size: sb.block_size,
        };
        let vol = Volume {
            cache: BlockCache::new(DEFAULT_CACHE_BYTES, sb.block_size),
            file,
            sb,
            groups,
            fmt,
            block_locks: (0..64).map(|_| parking_lot::Mutex::new(())).collect(),
            overlay,
            sb_lock: parking_lot::Mutex::new(()),
            journaling: std::sync::atomic::AtomicBool::new(false),
            dirty: parking_lot::RwLock::new(HashMap::new()),
            committing: parking_lot::RwLock::new(HashMap::new()),
            logged: parking_lot::RwLock::new(HashMap::new()),
        };
        Ok(vol)
    }

    /// The image's name, as errors show it.
    pub fn name(&self) -> &Arc<str> {
        self.file.name()
    }

    /// The superblock.
    pub fn sb(&self) -> &Superblock {
        &self.sb
    }

    /// The group descriptors.
    pub fn groups(&self) -> &[GroupDesc] {
        &self.groups
    }

    /// How inodes are laid out.
    pub fn inode_format(&self) -> &InodeFormat {
        &self.fmt
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.sb.block_size
    }

    /// The image file.
    pub fn file(&self) -> &ImageFile {
        &self.file
    }

    /// The metadata cache's (hits, misses).
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }

    /// A corruption error on this image.
    pub fn corrupt(&self, ino: Option<u32>, offset: Option<u64>, msg: impl Into<String>) -> Error {
        Error::corrupt(self.name(), ino, offset, msg)
    }

    /// Whether image block `blk` may hold data or metadata (inside the filesystem, not
    /// block 0).
    pub fn block_in_range(&self, blk: u64) -> bool {
        blk != 0 && blk >= u64::from(self.sb.first_data_block) && blk < self.sb.blocks_count
    }

    /// Metadata block `blk` (through the cache); `ino` names the inode it is read for.
    pub fn read_block(&self, blk: u64, ino: Option<u32>) -> Result<Block> {
        if !self.block_in_range(blk) && blk != self.sb_block() {
            return Err(self.corrupt(
                ino,
                None,
                format!(
                    "block number {blk} is outside the filesystem (blocks {}..{})",
                    self.sb.first_data_block, self.sb.blocks_count
                ),
            ));
        }
        if let Some(b) = self.overlay.get(&blk) {
            return Ok(Arc::clone(b));
        }
        if self.journaling.load(std::sync::atomic::Ordering::Acquire) {
            if let Some(b) = self.dirty.read().get(&blk) {
                return Ok(Arc::clone(b));
            }
            if let Some(b) = self.committing.read().get(&blk) {
                return Ok(Arc::clone(b));
            }
            if let Some(b) = self.logged.read().get(&blk) {
                return Ok(Arc::clone(b));
            }
        }
        let bs = u64::from(self.sb.block_size);
        self.cache.get_or_load(blk, || {
            let mut buf = vec![0u8; bs as usize];
            self.file
                .read_exact_at(&mut buf, blk * bs)
                .map_err(|e| match ino {
                    Some(i) => e.at_inode(i),
                    None => e,
                })?;
            Ok(Arc::from(buf))
        })
    }

    /// The block holding the superblock (1 with 1 KiB blocks, else 0).
    pub fn sb_block(&self) -> u64 {
        SUPERBLOCK_OFFSET / u64::from(self.sb.block_size)
    }

    /// Whether `ino` may appear in a directory: the root, or a non-reserved inode.
    pub fn ino_is_valid(&self, ino: u32) -> bool {
        ino == ROOT_INO || (ino >= self.sb.first_ino && ino <= self.sb.inodes_count)
    }

    /// Read and parse inode `ino` (any number in 1..=inodes_count).
    pub fn inode(&self, ino: u32) -> Result<Inode> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(self.corrupt(
                Some(ino),
                None,
                format!("inode number out of range 1..={}", self.sb.inodes_count),
            ));
        }
        let idx = u64::from(ino - 1);
        let ipg = u64::from(self.sb.inodes_per_group);
        let gd = self
            .groups
            .get((idx / ipg) as usize)
            .ok_or_else(|| self.corrupt(Some(ino), None, "no group descriptor for the inode"))?;
        let isz = u64::from(self.sb.inode_size);
        let bs = u64::from(self.sb.block_size);
        let byte = (idx % ipg) * isz;
        let blk = gd.inode_table + byte / bs;
        let block = self.read_block(blk, Some(ino))?;
        let at = (byte % bs) as usize;
        let raw = block
            .get(at..at + isz as usize)
            .ok_or_else(|| self.corrupt(Some(ino), Some(blk * bs), "inode outside its block"))?;
        let inode = Inode::parse(ino, raw, &self.fmt);
        if inode.extra_isize != 0 {
            let e = usize::from(inode.extra_isize);
            if e % 4 != 0 || 128 + e > isz as usize {
                return Err(self.corrupt(
                    Some(ino),
                    Some(blk * bs + at as u64),
                    format!("i_extra_isize {e} is invalid"),
                ));
            }
        }
        if inode.flags & INLINE_DATA_FL != 0 {
            return Err(Error::unsupported(
                self.name(),
                Some(ino),
                "inline data is not supported",
            ));
        }
        Ok(inode)
    }

    /// The run of image blocks holding file block `lblk` of `inode` onwards (at most `max`
    /// blocks, at least 1).
    pub fn map(&self, inode: &Inode, lblk: u64, max: u64) -> Result<Run> {
        let max = max.max(1);
        if inode.has_extents() {
            extents::map(self, inode, lblk, max)
        } else {
            block_map::map(self, inode, lblk, max)
        }
    }

    /// Read file bytes of `inode` at `offset` into `buf` (the caller clamps to the size):
    /// holes read as zeros, data is read straight from the image in contiguous runs.
    pub fn read_data(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<()> {
        let bs = u64::from(self.sb.block_size);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let lblk = pos / bs;
            let within = pos % bs;
            let want_blocks = (within + (buf.len() - done) as u64).div_ceil(bs);
            let run = self.map(inode, lblk, want_blocks)?;
            let run_bytes = (run.len.min(want_blocks) * bs - within) as usize;
            let n = run_bytes.min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match run.phys {
                None => dst.fill(0),
                Some(p) if !self.overlay.is_empty() => self.read_overlaid(inode, p, within, dst)?,
                Some(p) => self
                    .file
                    .read_exact_at(dst, p * bs + within)
                    .map_err(|e| e.at_inode(inode.ino))?,
            }
            done += n;
        }
        Ok(())
    }

    /// Read `dst` from image block `p` at byte `within` on, block by block, taking replayed
    /// journal blocks where there are some.
    fn read_overlaid(&self, inode: &Inode, p: u64, within: u64, dst: &mut [u8]) -> Result<()> {
        let bs = u64::from(self.sb.block_size);
        let mut done = 0usize;
        let mut at = within;
        let mut blk = p;
        while done < dst.len() {
            let n = ((bs - at) as usize).min(dst.len() - done);
            match self.overlay.get(&blk) {
                Some(b) => dst[done..done + n].copy_from_slice(&b[at as usize..at as usize + n]),
                None => self
                    .file
                    .read_exact_at(&mut dst[done..done + n], blk * bs + at)
                    .map_err(|e| e.at_inode(inode.ino))?,
            }
            done += n;
            at = 0;
            blk += 1;
        }
        Ok(())
    }

    /// The directory or symlink block `lblk` of `inode` through the cache (`None`: a hole).
    pub fn file_block(&self, inode: &Inode, lblk: u64) -> Result<Option<Block>> {
        match self.map(inode, lblk, 1)?.phys {
            None => Ok(None),
            Some(p) => self.read_block(p, Some(inode.ino)).map(Some),
        }
    }
}
