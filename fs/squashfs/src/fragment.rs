//! The fragment table: where each fragment block is and its stored size.

use crate::error::Result;
use crate::image::Inner;
use crate::superblock::{le32, le64};

/// One fragment table entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FragmentEntry {
    pub(crate) start: u64,
    pub(crate) size_word: u32,
}

impl Inner {
    /// Look up fragment `idx`.
    pub(crate) fn fragment(&self, idx: u32) -> Result<FragmentEntry> {
        let Some(t) = &self.fragment_table else {
            return Err(self.src.corrupt(
                self.sb.fragment_table_start,
                format!("fragment {idx} used but the image has no fragment table"),
            ));
        };
        let mut b = [0u8; 16];
        t.entry(self, u64::from(idx), &mut b)?;
        let e = FragmentEntry {
            start: le64(&b, 0),
            size_word: le32(&b, 8),
        };
        let len = e.size_word & 0x00ff_ffff;
        if e.size_word & !0x01ff_ffff != 0 || len == 0 || len > self.sb.block_size {
            return Err(self.src.corrupt(
                e.start,
                format!("fragment {idx} has bad size word {:#x}", e.size_word),
            ));
        }
        Ok(e)
    }
}
