//! Regular file data: the block size list (bit 24 = stored uncompressed, size 0 = sparse
//! hole), shared blocks, and the tail in a fragment block. Blocks a request spans are
//! decompressed in parallel when more than one misses the cache. Big files keep a small
//! index of checkpoints into their block list, so a seek costs O(1) amortized.

use std::cell::RefCell;
use std::sync::Arc;

use parking_lot::Mutex;
use rayon::prelude::*;

use crate::cache::Weighted;
use crate::compress;
use crate::error::Result;
use crate::image::Inner;
use crate::inode::{FileLayout, Inode, InodeRef, Layout};
use crate::metadata::{MetaCursor, MetaPos};

/// Blocks between block-list checkpoints.
const CHECKPOINT_EVERY: u64 = 1024;
const UNCOMPRESSED_BIT: u32 = 1 << 24;

/// Checkpoints into one file's block list: for block `k * CHECKPOINT_EVERY`, where its size
/// word is and where its data starts.
pub(crate) struct BlockIndex {
    points: Mutex<Vec<(MetaPos, u64)>>,
    /// Fixed at creation from the block count (a cache entry's weight must not change).
    weight: u64,
}

impl Weighted for Arc<BlockIndex> {
    fn weight(&self) -> u64 {
        self.weight
    }
}

/// Where the bytes of one block come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Piece {
    /// A data block at `pos` with size word `word`.
    Data { pos: u64, word: u32 },
    /// A sparse block (all zeros).
    Hole,
    /// The file's tail at `offset` in fragment block `index` (at `pos`, size word `word`).
    Fragment {
        pos: u64,
        word: u32,
        index: u32,
        offset: u32,
    },
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUT_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Inner {
    /// Read and decompress (or fetch from cache) the data block at `pos` with `word`.
    pub(crate) fn data_block(&self, pos: u64, word: u32) -> Result<Arc<[u8]>> {
        self.data_cache
            .get_or_load(&(pos, word), || self.load_data_block(pos, word))
    }

    fn load_data_block(&self, pos: u64, word: u32) -> Result<Arc<[u8]>> {
        let len = (word & 0x00ff_ffff) as usize;
        if word & !0x01ff_ffff != 0 || len == 0 || len > self.sb.block_size as usize {
            return Err(self
                .src
                .corrupt(pos, format!("data block size word {word:#x} is invalid")));
        }
        READ_BUF.with(|rb| {
            let mut raw = rb.borrow_mut();
            raw.resize(len, 0);
            self.src.read_at(pos, &mut raw, "data block")?;
            if word & UNCOMPRESSED_BIT != 0 {
                return Ok(Arc::from(&raw[..]));
            }
            OUT_BUF.with(|ob| {
                let mut out = ob.borrow_mut();
                out.resize(self.sb.block_size as usize, 0);
                let n = compress::decompress(self.sb.compressor, &raw, &mut out).map_err(|e| {
                    self.src
                        .corrupt(pos, format!("{len}-byte compressed block: {e}"))
                })?;
                Ok(Arc::from(out.get(..n).unwrap_or_default()))
            })
        })
    }

    /// Start position and size words of blocks `first .. first + n` of file `f`.
    fn block_words(
        &self,
        r: InodeRef,
        f: &FileLayout,
        first: u64,
        n: u64,
    ) -> Result<(u64, Vec<u32>)> {
        let end = self.sb.directory_table_start;
        let (pos, mut data, skip) = if first < CHECKPOINT_EVERY {
            (f.block_list, f.blocks_start, first)
        } else {
            let k = first / CHECKPOINT_EVERY;
            let (p, d) = self.checkpoint(r, f, k)?;
            (p, d, first - k * CHECKPOINT_EVERY)
        };
        let mut c = MetaCursor::new(self, end, pos);
        let overflow = || {
            self.src.corrupt(
                f.blocks_start,
                format!("inode {:#x}: block positions overflow", r.0),
            )
        };
        let mut chunk = [0u8; 4096];
        let mut left = skip as usize * 4;
        while left > 0 {
            let take = left.min(chunk.len());
            let part = &mut chunk[..take];
            c.read(part)?;
            for w in part.chunks_exact(4) {
                let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                data = data
                    .checked_add(u64::from(w & 0x00ff_ffff))
                    .ok_or_else(overflow)?;
            }
            left -= take;
        }
        let mut words = Vec::with_capacity(n as usize);
        for _ in 0..n {
            words.push(c.u32()?);
        }
        Ok((data, words))
    }

    /// Checkpoint `k` (block `k * CHECKPOINT_EVERY`) of file `r`, building missing ones.
    fn checkpoint(&self, r: InodeRef, f: &FileLayout, k: u64) -> Result<(MetaPos, u64)> {
        let idx = self.block_index_cache.get_or_load(&r.0, || {
            Ok::<_, crate::Error>(Arc::new(BlockIndex {
                points: Mutex::new(vec![(f.block_list, f.blocks_start)]),
                weight: (f.block_count / CHECKPOINT_EVERY + 1).saturating_mul(32) + 64,
            }))
        })?;
        let mut pts = idx.points.lock();
        while (pts.len() as u64) <= k {
            let Some(&(pos, mut data)) = pts.last() else {
                break;
            };
            let mut c = MetaCursor::new(self, self.sb.directory_table_start, pos);
            let mut buf = [0u8; 4096];
            for _ in 0..(CHECKPOINT_EVERY * 4 / 4096) {
                c.read(&mut buf)?;
                for w in buf.chunks_exact(4) {
                    let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    data = data
                        .checked_add(u64::from(w & 0x00ff_ffff))
                        .ok_or_else(|| {
                            self.src.corrupt(
                                f.blocks_start,
                                format!("inode {:#x}: block positions overflow", r.0),
                            )
                        })?;
                }
            }
            pts.push((c.pos(), data));
        }
        pts.get(k as usize)
            .copied()
            .ok_or_else(|| self.src.corrupt(f.blocks_start, "block index"))
    }

    /// The pieces covering file blocks `first..=last`.
    pub(crate) fn pieces(
        &self,
        file: &Inode,
        f: &FileLayout,
        first: u64,
        last: u64,
    ) -> Result<Vec<Piece>> {
        let r = file.inode_ref;
        let mut out = Vec::new();
        let data_last = last.min(f.block_count.saturating_sub(1));
        if first < f.block_count {
            let n = data_last - first + 1;
            let (mut pos, words) = self.block_words(r, f, first, n)?;
            for w in words {
                let len = w & 0x00ff_ffff;
                if len == 0 {
                    out.push(Piece::Hole);
                } else {
                    out.push(Piece::Data { pos, word: w });
                    pos = pos.checked_add(u64::from(len)).ok_or_else(|| {
                        self.src.corrupt(
                            f.blocks_start,
                            format!("inode {:#x}: block positions overflow", r.0),
                        )
                    })?;
                }
            }
        }
        if last >= f.block_count {
            let Some((idx, offset)) = f.fragment else {
                return Err(self.src.corrupt(
                    f.blocks_start,
                    format!(
                        "inode {:#x}: read past its blocks and it has no fragment",
                        r.0
                    ),
                ));
            };
            let e = self.fragment(idx)?;
            out.push(Piece::Fragment {
                pos: e.start,
                word: e.size_word,
                index: idx,
                offset,
            });
        }
        Ok(out)
    }

    /// Read file bytes `offset..offset + buf.len()` (clamped to the size) into `buf`.
    pub(crate) fn read_file(&self, file: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let Layout::File(f) = &file.layout else {
            return Err(crate::Error::WrongType {
                inode: file.inode_ref.0,
                what: "not a regular file",
            });
        };
        if offset >= file.size || buf.is_empty() {
            return Ok(0);
        }
        let end = file.size.min(offset.saturating_add(buf.len() as u64));
        let bs = u64::from(self.sb.block_size);
        let first = offset / bs;
        let last = (end - 1) / bs;
        let pieces = self.pieces(file, f, first, last)?;
        let misses = if pieces.len() < 2 {
            0
        } else {
            pieces
                .iter()
                .filter(|p| match p {
                    Piece::Data { pos, word } | Piece::Fragment { pos, word, .. } => {
                        !self.data_cache.contains(&(*pos, *word))
                    }
                    Piece::Hole => false,
                })
                .count()
        };
        let fetch = |(i, p): (usize, &Piece)| -> Result<Option<Arc<[u8]>>> {
            let ino = || format!("inode {} ({:#x})", file.inode_number, file.inode_ref.0);
            match p {
                Piece::Data { pos, word } => self
                    .data_block(*pos, *word)
                    .map(Some)
                    .map_err(|e| e.within(|| format!("{}, block {}", ino(), first + i as u64))),
                Piece::Fragment {
                    pos, word, index, ..
                } => self
                    .data_block(*pos, *word)
                    .map(Some)
                    .map_err(|e| e.within(|| format!("{}, tail in fragment {index}", ino()))),
                Piece::Hole => Ok(None),
            }
        };
        let blocks: Vec<Option<Arc<[u8]>>> = if misses > 1 {
            pieces
                .par_iter()
                .enumerate()
                .map(fetch)
                .collect::<Result<_>>()?
        } else {
            pieces
                .iter()
                .enumerate()
                .map(fetch)
                .collect::<Result<_>>()?
        };
        let mut done = 0usize;
        for (i, (piece, block)) in pieces.iter().zip(blocks).enumerate() {
            let bi = first + i as u64;
            let block_start = bi * bs;
            let from = offset.max(block_start);
            let to = end.min(block_start.saturating_add(bs));
            let n = (to - from) as usize;
            let within = (from - block_start) as usize;
            let dst = buf
                .get_mut(done..done + n)
                .ok_or_else(|| self.src.corrupt(0, "read bounds"))?;
            match (piece, block) {
                (Piece::Hole, _) | (_, None) => dst.fill(0),
                (Piece::Data { pos, .. }, Some(b)) => {
                    let src = b.get(within..within + n).ok_or_else(|| {
                        self.src.corrupt(
                            *pos,
                            format!(
                                "inode {:#x}: block {bi} decompressed to only {} bytes",
                                file.inode_ref.0,
                                b.len()
                            ),
                        )
                    })?;
                    dst.copy_from_slice(src);
                }
                (Piece::Fragment { pos, offset, .. }, Some(b)) => {
                    let at = (*offset as usize).checked_add(within);
                    let src = at.and_then(|a| b.get(a..a + n)).ok_or_else(|| {
                        self.src.corrupt(
                            *pos,
                            format!(
                                "inode {:#x}: tail at fragment offset {offset} (+{n}) beyond the {}-byte fragment block",
                                file.inode_ref.0,
                                b.len()
                            ),
                        )
                    })?;
                    dst.copy_from_slice(src);
                }
            }
            done += n;
        }
        Ok(done)
    }
}
