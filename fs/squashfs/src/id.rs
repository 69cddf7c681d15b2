//! The id table: uids and gids, read whole at open (at most 65535 entries).

use crate::error::Result;
use crate::image::Inner;

impl Inner {
    /// Load the id table (called once from open, after the lookup index is read).
    pub(crate) fn load_ids(&self) -> Result<Vec<u32>> {
        let n = self.id_table.count();
        let mut ids = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut b = [0u8; 4];
            self.id_table.entry(self, i, &mut b)?;
            ids.push(u32::from_le_bytes(b));
        }
        Ok(ids)
    }

    /// The uid/gid at index `idx`.
    pub(crate) fn id(&self, idx: u16, at: u64) -> Result<u32> {
        self.ids
            .get()
            .and_then(|v| v.get(usize::from(idx)))
            .copied()
            .ok_or_else(|| {
                self.src.corrupt(
                    at,
                    format!(
                        "id index {idx} out of range (id count {})",
                        self.sb.id_count
                    ),
                )
            })
    }
}
