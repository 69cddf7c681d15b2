//! Lookup tables (id, fragment, export, xattr id): an index of u64 positions of metadata
//! blocks holding fixed-size entries. Only the small index is read at open.

use crate::error::Result;
use crate::image::Inner;
use crate::metadata::{METADATA_SIZE, MetaCursor, MetaPos};
use crate::source::Source;

/// A lookup table: `count` entries of `entry_size` bytes in metadata blocks listed by `blocks`.
pub(crate) struct LookupTable {
    name: &'static str,
    blocks: Vec<u64>,
    index_start: u64,
    count: u64,
    entry_size: usize,
}

impl LookupTable {
    /// Read and check the index at `index_start` of a table of `count` entries.
    pub(crate) fn open(
        src: &Source,
        name: &'static str,
        index_start: u64,
        count: u64,
        entry_size: usize,
    ) -> Result<LookupTable> {
        let bytes = count
            .checked_mul(entry_size as u64)
            .ok_or_else(|| src.corrupt(index_start, format!("{name}: entry count overflows")))?;
        let nblocks = bytes.div_ceil(METADATA_SIZE as u64);
        let index_bytes = nblocks * 8;
        if index_start
            .checked_add(index_bytes)
            .is_none_or(|e| e > src.len())
        {
            return Err(src.corrupt(
                index_start,
                format!(
                    "{name}: index of {nblocks} blocks for {count} entries runs past the image"
                ),
            ));
        }
        let mut raw = vec![0u8; index_bytes as usize];
        src.read_at(index_start, &mut raw, name)?;
        let mut blocks = Vec::with_capacity(nblocks as usize);
        for (i, c) in raw.chunks_exact(8).enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            let p = u64::from_le_bytes(a);
            if p >= index_start || p < crate::superblock::SUPERBLOCK_SIZE as u64 {
                return Err(src.corrupt(
                    index_start + 8 * i as u64,
                    format!("{name}: block {i} at {p} is not before its index"),
                ));
            }
            blocks.push(p);
        }
        Ok(LookupTable {
            name,
            blocks,
            index_start,
            count,
            entry_size,
        })
    }

    /// Number of entries.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Read entry `i` into `out` (`out.len()` = entry size).
    pub(crate) fn entry(&self, inner: &Inner, i: u64, out: &mut [u8]) -> Result<()> {
        if i >= self.count {
            return Err(inner.src.corrupt(
                self.index_start,
                format!(
                    "{} index {i} out of range (count {})",
                    self.name, self.count
                ),
            ));
        }
        let byte = i * self.entry_size as u64;
        let blk = (byte / METADATA_SIZE as u64) as usize;
        let offset = (byte % METADATA_SIZE as u64) as usize;
        let Some(&block) = self.blocks.get(blk) else {
            return Err(inner
                .src
                .corrupt(self.index_start, format!("{}: index short", self.name)));
        };
        let mut c = MetaCursor::new(inner, self.index_start, MetaPos { block, offset });
        c.read(out)
    }
}
