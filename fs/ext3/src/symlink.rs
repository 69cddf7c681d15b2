//! Symlink targets: fast symlinks keep the target in i_block; slow ones in a data block.

use crate::error::Result;
use crate::inode::Inode;
use crate::volume::Volume;

/// Longest target accepted (PATH_MAX).
pub const MAX_TARGET: u64 = 4096;

/// Whether `inode` keeps its target in i_block (no data blocks besides an xattr block).
pub fn is_fast(vol: &Volume, inode: &Inode) -> bool {
    let ea_blocks = if inode.file_acl != 0 {
        u64::from(vol.block_size() / 512)
    } else {
        0
    };
    inode.blocks_raw.saturating_sub(ea_blocks) == 0
}

/// The target of symlink `inode`.
pub fn target(vol: &Volume, inode: &Inode) -> Result<Vec<u8>> {
    let size = inode.size;
    if size == 0 || size > MAX_TARGET {
        return Err(vol.corrupt(
            Some(inode.ino),
            None,
            format!("symlink size {size} is invalid"),
        ));
    }
    if is_fast(vol, inode) {
        if size as usize >= inode.block.len() {
            return Err(vol.corrupt(
                Some(inode.ino),
                None,
                format!("fast symlink of {size} bytes does not fit in i_block"),
            ));
        }
        return Ok(inode.block[..size as usize].to_vec());
    }
    let mut buf = vec![0u8; size as usize];
    vol.read_data(inode, 0, &mut buf)?;
    Ok(buf)
}
