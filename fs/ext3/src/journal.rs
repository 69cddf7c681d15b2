//! jbd2 journal replay (the log in inode `s_journal_inum`, all big-endian). Three passes
//! like the kernel's recovery: find the committed transactions from `s_start`, collect
//! revokes, then collect each logged block not revoked at its transaction or later. Every
//! count is bounded by the journal's length, so a hostile log cannot loop.
//!
//! A read-write open writes the blocks home, empties the log and clears needs_recovery; a
//! read-only open serves the replayed blocks from memory and leaves the image untouched.

use std::collections::HashMap;

use crate::bytes::be32;
use crate::error::{Error, Result};
use crate::inode::Inode;
use crate::volume::Volume;

/// Journal block magic.
pub const MAGIC: u32 = 0xC03B_3998;
const DESCRIPTOR: u32 = 1;
const COMMIT: u32 = 2;
const SUPERBLOCK_V1: u32 = 3;
const SUPERBLOCK_V2: u32 = 4;
const REVOKE: u32 = 5;

const INCOMPAT_REVOKE: u32 = 0x1;
const INCOMPAT_64BIT: u32 = 0x2;
const INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
const INCOMPAT_CSUM_V2: u32 = 0x8;
const INCOMPAT_CSUM_V3: u32 = 0x10;
const KNOWN_INCOMPAT: u32 =
    INCOMPAT_REVOKE | INCOMPAT_64BIT | INCOMPAT_ASYNC_COMMIT | INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3;

const FLAG_ESCAPE: u32 = 1;
const FLAG_SAME_UUID: u32 = 2;
const FLAG_LAST_TAG: u32 = 8;

/// The outcome of scanning the log.
#[derive(Debug, Default)]
pub struct Replay {
    /// Home block -> content, the last committed copy of each block not revoked.
    pub blocks: HashMap<u64, Vec<u8>>,
    /// Transactions found committed.
    pub transactions: u32,
    /// The sequence number the emptied log starts at.
    pub next_sequence: u32,
    /// Image block of the journal superblock.
    pub jsb_block: u64,
}

struct Log<'a> {
    vol: &'a Volume,
    inode: Inode,
    first: u32,
    maxlen: u32,
    tag_bytes: usize,
    csum: bool,
    is64: bool,
}

impl Log<'_> {
    fn err(&self, msg: String) -> Error {
        self.vol
            .corrupt(Some(self.inode.ino), None, format!("journal: {msg}"))
    }

    /// The content of log block `pos`.
    fn block(&self, pos: u32) -> Result<Vec<u8>> {
        let bs = u64::from(self.vol.block_size());
        let phys = self
            .vol
            .map(&self.inode, u64::from(pos), 1)?
            .phys
            .ok_or_else(|| self.err(format!("log block {pos} is a hole")))?;
        let mut buf = vec![0u8; bs as usize];
        self.vol.file().read_exact_at(&mut buf, phys * bs)?;
        Ok(buf)
    }

    fn next(&self, pos: u32) -> u32 {
        if pos + 1 >= self.maxlen {
            self.first
        } else {
            pos + 1
        }
    }

    /// The tags of a descriptor block: (home block, flags).
    fn tags(&self, d: &[u8]) -> Vec<(u64, u32)> {
        let end = d.len() - if self.csum { 4 } else { 0 };
        let mut pos = 12;
        let mut out = Vec::new();
        while pos + self.tag_bytes <= end {
            let (blk_lo, flags, hi) = if self.tag_bytes == 16 {
                (be32(d, pos), be32(d, pos + 4), be32(d, pos + 8))
            } else {
                let f = u32::from(u16::from_be_bytes([d[pos + 6], d[pos + 7]]));
                let hi = if self.is64 { be32(d, pos + 8) } else { 0 };
                (be32(d, pos), f, hi)
            };
            let home = u64::from(blk_lo) | if self.is64 { u64::from(hi) << 32 } else { 0 };
            out.push((home, flags));
            pos += self.tag_bytes;
            if flags & FLAG_SAME_UUID == 0 {
                pos += 16;
            }
            if flags & FLAG_LAST_TAG != 0 {
                break;
            }
        }
        out
    }
}

/// Scan the journal of `vol` and collect what replay writes.
pub fn scan(vol: &Volume) -> Result<Replay> {
    let sb = vol.sb();
    let jino = sb.journal_inum;
    if jino == 0 {
        return Err(Error::unsupported(
            vol.name(),
            None,
            "needs_recovery with an external journal",
        ));
    }
    let inode = vol.inode(jino)?;
    let bs = vol.block_size();
    let jsb_block = vol
        .map(&inode, 0, 1)?
        .phys
        .ok_or_else(|| vol.corrupt(Some(jino), None, "journal superblock is a hole"))?;
    let mut jsb = vec![0u8; bs as usize];
    vol.file()
        .read_exact_at(&mut jsb, jsb_block * u64::from(bs))?;
    let bad = |msg: String| {
        vol.corrupt(
            Some(jino),
            Some(jsb_block * u64::from(bs)),
            format!("journal: {msg}"),
        )
    };
    let btype = be32(&jsb, 4);
    if be32(&jsb, 0) != MAGIC || !(btype == SUPERBLOCK_V1 || btype == SUPERBLOCK_V2) {
        return Err(bad("bad journal superblock magic".into()));
    }
    let (jbs, maxlen, first, seq, start) = (
        be32(&jsb, 0xC),
        be32(&jsb, 0x10),
        be32(&jsb, 0x14),
        be32(&jsb, 0x18),
        be32(&jsb, 0x1C),
    );
    let incompat = if btype == SUPERBLOCK_V2 {
        be32(&jsb, 0x28)
    } else {
        0
    };
    if incompat & !KNOWN_INCOMPAT != 0 {
        return Err(Error::unsupported(
            vol.name(),
            Some(jino),
            format!("journal features {incompat:#x}"),
        ));
    }
    let inode_blocks = inode.size / u64::from(bs);
    if jbs != bs || maxlen < 2 || u64::from(maxlen) > inode_blocks || first == 0 || first >= maxlen
    {
        return Err(bad(format!(
            "bad geometry (block size {jbs}, length {maxlen}, first {first})"
        )));
    }
    let mut replay = Replay {
        jsb_block,
        next_sequence: seq,
        ..Replay::default()
    };
    if start == 0 {
        return Ok(replay);
    }
    if start < first || start >= maxlen {
        return Err(bad(format!("log start {start} outside {first}..{maxlen}")));
    }
    let csum = incompat & (INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3) != 0;
    let is64 = incompat & INCOMPAT_64BIT != 0;
    let tag_bytes = if incompat & INCOMPAT_CSUM_V3 != 0 {
        16
    } else if is64 {
        12
    } else {
        8
    };
    let log = Log {
        vol,
        inode,
        first,
        maxlen,
        tag_bytes,
        csum,
        is64,
    };
    // Pass 1: how far the committed transactions go.
    let end_seq = walk(&log, start, seq, &mut |_, _, _| Ok(()))?;
    // Pass 2: revokes (block -> latest revoking transaction).
    let mut revoked: HashMap<u64, u32> = HashMap::new();
    walk_upto(&log, start, seq, end_seq, &mut |kind, tseq, b| {
        if let Item::Revoke = kind {
            let used = (be32(b, 12) as usize).min(b.len());
            let rec = if is64 { 8 } else { 4 };
            let mut p = 16;
            while p + rec <= used {
                let blk = if is64 {
                    (u64::from(be32(b, p)) << 32) | u64::from(be32(b, p + 4))
                } else {
                    u64::from(be32(b, p))
                };
                let e = revoked.entry(blk).or_insert(tseq);
                *e = (*e).max(tseq);
                p += rec;
            }
        }
        Ok(())
    })?;
    // Pass 3: the blocks to write home.
    walk_upto(&log, start, seq, end_seq, &mut |kind, tseq, b| {
        if let Item::Data(home, flags) = kind {
            if revoked.get(&home).is_some_and(|&r| r >= tseq) {
                return Ok(());
            }
            if !vol.block_in_range(home) && home != vol.sb_block() {
                return Err(log.err(format!("logged block {home} is outside the filesystem")));
            }
            let mut data = b.to_vec();
            if flags & FLAG_ESCAPE != 0 {
                data[0..4].copy_from_slice(&MAGIC.to_be_bytes());
            }
            replay.blocks.insert(home, data);
        }
        Ok(())
    })?;
    replay.transactions = end_seq.wrapping_sub(seq);
    replay.next_sequence = end_seq;
    Ok(replay)
}

/// What a walk shows its visitor.
enum Item {
    /// A logged copy of this home block, with its tag flags.
    Data(u64, u32),
    /// A revoke block.
    Revoke,
}

type Visit<'v> = dyn FnMut(Item, u32, &[u8]) -> Result<()> + 'v;

/// Walk transactions from `start` with sequence `seq` while they are complete (a commit
/// closes them); returns the sequence after the last committed one.
fn walk(log: &Log<'_>, start: u32, seq: u32, visit: &mut Visit<'_>) -> Result<u32> {
    walk_upto(log, start, seq, u32::MAX, visit)
}

fn walk_upto(
    log: &Log<'_>,
    start: u32,
    mut seq: u32,
    end: u32,
    visit: &mut Visit<'_>,
) -> Result<u32> {
    let mut pos = start;
    let mut steps = 0u32;
    // Items of the open transaction, handed out only once its commit is seen.
    let mut pending: Vec<(Item, Vec<u8>)> = Vec::new();
    while seq != end && steps <= log.maxlen {
        let b = log.block(pos)?;
        steps += 1;
        if be32(&b, 0) != MAGIC || be32(&b, 8) != seq {
            break;
        }
        match be32(&b, 4) {
            DESCRIPTOR => {
                let tags = log.tags(&b);
                for (home, flags) in tags {
                    pos = log.next(pos);
                    steps += 1;
                    if steps > log.maxlen {
                        return Err(log.err("a descriptor runs past the whole log".into()));
                    }
                    pending.push((Item::Data(home, flags), log.block(pos)?));
                }
            }
            REVOKE => pending.push((Item::Revoke, b)),
            COMMIT => {
                for (item, data) in pending.drain(..) {
                    visit(item, seq, &data)?;
                }
                seq = seq.wrapping_add(1);
            }
            _ => break,
        }
        pos = log.next(pos);
    }
    Ok(seq)
}

/// Write the replayed blocks home, empty the log and clear needs_recovery (read-write).
pub fn apply(vol: &Volume, replay: &Replay) -> Result<()> {
    let bs = u64::from(vol.block_size());
    let mut homes: Vec<&u64> = replay.blocks.keys().collect();
    homes.sort_unstable();
    for home in homes {
        vol.file().write_all_at(&replay.blocks[home], home * bs)?;
    }
    vol.file().sync()?;
    let mut jsb = vec![0u8; bs as usize];
    vol.file().read_exact_at(&mut jsb, replay.jsb_block * bs)?;
    jsb[0x18..0x1C].copy_from_slice(&replay.next_sequence.to_be_bytes());
    jsb[0x1C..0x20].copy_from_slice(&0u32.to_be_bytes());
    vol.file().write_all_at(&jsb, replay.jsb_block * bs)?;
    // needs_recovery off, in the (now replayed) superblock on disk.
    let mut raw = [0u8; 4];
    vol.file().read_exact_at(&mut raw, 1024 + 0x60)?;
    let incompat = u32::from_le_bytes(raw) & !crate::superblock::INCOMPAT_RECOVER;
    vol.file()
        .write_all_at(&incompat.to_le_bytes(), 1024 + 0x60)?;
    vol.file().sync()
}
