//! `statfs` figures as the kernel's ext4 driver reports them: total blocks less the
//! metadata overhead, free counts summed over the group descriptors.

use squashbox_vfs::StatFs;

use crate::superblock::{COMPAT_HAS_JOURNAL, INCOMPAT_EXTENTS};
use crate::volume::Volume;

/// Longest name in a directory entry.
pub const NAME_MAX: u32 = 255;

/// Blocks used by metadata (superblock copies, GDT, reserved GDT, bitmaps, inode tables,
/// block 0 with 1 KiB blocks, and the internal journal), as the kernel computes it.
pub fn overhead_blocks(vol: &Volume, journal_blocks: u64) -> u64 {
    let sb = vol.sb();
    if sb.overhead_clusters != 0 {
        return u64::from(sb.overhead_clusters);
    }
    let groups = sb.group_count();
    let per_group = 2 + sb.inode_table_blocks();
    let mut total = u64::from(sb.first_data_block) + groups * per_group;
    for g in 0..groups {
        total += sb.base_meta_blocks(g);
    }
    if sb.has_compat(COMPAT_HAS_JOURNAL) {
        total += journal_blocks;
    }
    total
}

/// The statfs answer for `vol` with `overhead` blocks of metadata.
pub fn statfs(vol: &Volume, overhead: u64) -> StatFs {
    let sb = vol.sb();
    let free_blocks: u64 = vol.groups().iter().map(|g| u64::from(g.free_blocks)).sum();
    let free_inodes: u64 = vol.groups().iter().map(|g| u64::from(g.free_inodes)).sum();
    // ext4 keeps 2% (at most 4096 clusters) back for extent-tree growth.
    let resv = if sb.has_incompat(INCOMPAT_EXTENTS) {
        (sb.blocks_count / 50).min(4096)
    } else {
        0
    };
    let reserved = sb.r_blocks_count + resv;
    StatFs {
        blocks: sb.blocks_count.saturating_sub(overhead),
        bfree: free_blocks,
        bavail: free_blocks.saturating_sub(reserved),
        files: u64::from(sb.inodes_count),
        ffree: free_inodes,
        bsize: sb.block_size,
        namelen: NAME_MAX,
        frsize: sb.block_size,
    }
}
