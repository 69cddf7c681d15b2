//! The export table: inode number -> inode reference (NFS export support in the kernel).

use crate::error::Result;
use crate::image::Inner;
use crate::inode::InodeRef;

impl Inner {
    /// The reference of inode number `ino` (1-based), if the image has an export table.
    pub(crate) fn export_lookup(&self, ino: u32) -> Result<Option<InodeRef>> {
        let Some(t) = &self.export_table else {
            return Ok(None);
        };
        if ino == 0 || u64::from(ino) > t.count() {
            return Ok(None);
        }
        let mut b = [0u8; 8];
        t.entry(self, u64::from(ino) - 1, &mut b)?;
        Ok(Some(InodeRef(u64::from_le_bytes(b))))
    }
}
