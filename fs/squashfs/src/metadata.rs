//! Metadata blocks: a u16 header (bit 15 = stored uncompressed, low 15 bits = stored length)
//! then at most 8 KiB once decompressed. A [`MetaCursor`] reads N bytes across block
//! boundaries; the chain of blocks only moves forward and must stay inside its table.

use std::sync::Arc;

use crate::cache::Weighted;
use crate::compress;
use crate::error::Result;
use crate::image::Inner;

/// Uncompressed size bound of a metadata block.
pub(crate) const METADATA_SIZE: usize = 8192;

/// One decompressed metadata block and where the next one starts (image-relative).
pub(crate) struct MetaBlock {
    pub(crate) data: Box<[u8]>,
    pub(crate) next: u64,
}

impl Weighted for Arc<MetaBlock> {
    fn weight(&self) -> u64 {
        self.data.len() as u64 + 64
    }
}

/// A position in a metadata stream: the block's image-relative start and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaPos {
    pub(crate) block: u64,
    pub(crate) offset: usize,
}

impl Inner {
    /// The metadata block starting at image-relative `pos`, which must end by `end`.
    pub(crate) fn meta_block(&self, pos: u64, end: u64) -> Result<Arc<MetaBlock>> {
        if pos >= end {
            return Err(self.src.corrupt(
                pos,
                format!("metadata block at {pos} is outside its table (which ends at {end})"),
            ));
        }
        let blk = self
            .meta_cache
            .get_or_load(&pos, || self.load_meta_block(pos))?;
        if blk.next > end {
            return Err(self.src.corrupt(
                pos,
                format!("metadata block at {pos} runs past its table end {end}"),
            ));
        }
        Ok(blk)
    }

    fn load_meta_block(&self, pos: u64) -> Result<Arc<MetaBlock>> {
        let mut hdr = [0u8; 2];
        self.src.read_at(pos, &mut hdr, "metadata block header")?;
        let h = u16::from_le_bytes(hdr);
        let len = usize::from(h & 0x7fff);
        let stored = h & 0x8000 != 0;
        if len == 0 || len > METADATA_SIZE {
            return Err(self
                .src
                .corrupt(pos, format!("metadata block length {len} not in 1..8192")));
        }
        let mut raw = vec![0u8; len];
        self.src.read_at(pos + 2, &mut raw, "metadata block")?;
        let data: Box<[u8]> = if stored {
            raw.into_boxed_slice()
        } else {
            let mut out = [0u8; METADATA_SIZE];
            let n = compress::decompress(self.sb.compressor, &raw, &mut out)
                .map_err(|e| self.src.corrupt(pos, format!("metadata block: {e}")))?;
            out.get(..n).unwrap_or_default().into()
        };
        Ok(Arc::new(MetaBlock {
            data,
            next: pos + 2 + len as u64,
        }))
    }
}

/// Reads a metadata stream that starts at a position and must stay below `end`.
pub(crate) struct MetaCursor<'a> {
    inner: &'a Inner,
    end: u64,
    pos: MetaPos,
    cur: Option<Arc<MetaBlock>>,
}

impl<'a> MetaCursor<'a> {
    pub(crate) fn new(inner: &'a Inner, end: u64, pos: MetaPos) -> MetaCursor<'a> {
        MetaCursor {
            inner,
            end,
            pos,
            cur: None,
        }
    }

    /// Where the next byte will be read from.
    pub(crate) fn pos(&self) -> MetaPos {
        self.pos
    }

    /// Copy the next `out.len()` bytes of the stream into `out`.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Result<()> {
        // Fast path: all bytes are in the current block.
        if let Some(b) = &self.cur
            && let Some(src) = b.data.get(self.pos.offset..self.pos.offset + out.len())
        {
            out.copy_from_slice(src);
            self.pos.offset += out.len();
            return Ok(());
        }
        self.advance(out.len(), Some(out))
    }

    /// Skip `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        self.advance(n, None)
    }

    fn advance(&mut self, n: usize, mut out: Option<&mut [u8]>) -> Result<()> {
        let mut done = 0;
        while done < n {
            if self.cur.is_none() {
                self.cur = Some(self.inner.meta_block(self.pos.block, self.end)?);
            }
            let Some(blk) = &self.cur else { continue };
            let len = blk.data.len();
            if self.pos.offset > len {
                return Err(self.inner.src.corrupt(
                    self.pos.block,
                    format!(
                        "offset {} beyond metadata block of {len} bytes",
                        self.pos.offset
                    ),
                ));
            }
            if self.pos.offset == len {
                self.pos = MetaPos {
                    block: blk.next,
                    offset: 0,
                };
                self.cur = None;
                continue;
            }
            let take = (n - done).min(len - self.pos.offset);
            if let Some(o) = out.as_deref_mut() {
                let src = blk
                    .data
                    .get(self.pos.offset..self.pos.offset + take)
                    .unwrap_or_default();
                if let Some(dst) = o.get_mut(done..done + take) {
                    dst.copy_from_slice(src);
                }
            }
            self.pos.offset += take;
            done += take;
        }
        Ok(())
    }

    /// Read `n` bytes into a new vector; callers bound `n` before calling.
    pub(crate) fn read_vec(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.read(&mut v)?;
        Ok(v)
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}
