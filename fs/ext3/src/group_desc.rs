//! Block group descriptors: reading the table (plain or meta_bg) and checking every
//! descriptor's bitmaps and inode table against the filesystem's size.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::Block;

use crate::bytes::{le16, le32};
use crate::error::{Error, Result};
use crate::image::ImageFile;
use crate::superblock::{INCOMPAT_64BIT, INCOMPAT_FLEX_BG, Superblock};

/// One group's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDesc {
    /// Block bitmap block.
    pub block_bitmap: u64,
    /// Inode bitmap block.
    pub inode_bitmap: u64,
    /// First block of the inode table.
    pub inode_table: u64,
    /// Free blocks in the group.
    pub free_blocks: u32,
    /// Free inodes in the group.
    pub free_inodes: u32,
    /// Directories in the group.
    pub used_dirs: u32,
    /// bg_flags (INODE_UNINIT 1, BLOCK_UNINIT 2, ITABLE_ZEROED 4).
    pub flags: u16,
}

impl GroupDesc {
    fn parse(raw: &[u8], is64: bool) -> GroupDesc {
        let hi32 = |off: usize| {
            if is64 {
                u64::from(le32(raw, off)) << 32
            } else {
                0
            }
        };
        let hi16 = |off: usize| {
            if is64 {
                u32::from(le16(raw, off)) << 16
            } else {
                0
            }
        };
        GroupDesc {
            block_bitmap: u64::from(le32(raw, 0x0)) | hi32(0x20),
            inode_bitmap: u64::from(le32(raw, 0x4)) | hi32(0x24),
            inode_table: u64::from(le32(raw, 0x8)) | hi32(0x28),
            free_blocks: u32::from(le16(raw, 0xC)) | hi16(0x2C),
            free_inodes: u32::from(le16(raw, 0xE)) | hi16(0x2E),
            used_dirs: u32::from(le16(raw, 0x10)) | hi16(0x30),
            flags: le16(raw, 0x12),
        }
    }
}

/// Read and check the whole descriptor table of `sb` from `file`, taking blocks from
/// `overlay` (a replayed journal) where it has them.
pub fn read_table(
    file: &ImageFile,
    sb: &Superblock,
    overlay: &HashMap<u64, Block>,
) -> Result<Vec<GroupDesc>> {
    let name: &Arc<str> = file.name();
    let groups = sb.group_count();
    let dpb = sb.descs_per_block();
    let bs = u64::from(sb.block_size);
    let dsz = usize::from(sb.desc_size);
    let is64 = sb.has_incompat(INCOMPAT_64BIT);
    // The table is bounded by the image: every descriptor block must lie inside it.
    let nblocks = groups.div_ceil(dpb);
    let mut out = Vec::with_capacity(usize::try_from(groups).unwrap_or(0).min(1 << 20));
    let mut buf = vec![0u8; sb.block_size as usize];
    for nr in 0..nblocks {
        let blk = sb.descriptor_block(nr);
        if blk >= sb.blocks_count {
            return Err(Error::corrupt(
                name,
                None,
                None,
                format!("group descriptor block {nr} would be block {blk}, past the end"),
            ));
        }
        match overlay.get(&blk) {
            Some(b) => buf.copy_from_slice(b),
            None => file.read_exact_at(&mut buf, blk * bs)?,
        }
        for i in 0..dpb {
            let g = nr * dpb + i;
            if g >= groups {
                break;
            }
            let at = i as usize * dsz;
            let gd = GroupDesc::parse(&buf[at..at + dsz], is64);
            check(name, sb, g, &gd, blk * bs + at as u64)?;
            out.push(gd);
        }
    }
    Ok(out)
}

fn check(name: &Arc<str>, sb: &Superblock, g: u64, gd: &GroupDesc, offset: u64) -> Result<()> {
    let flex = sb.has_incompat(INCOMPAT_FLEX_BG);
    let first = u64::from(sb.first_data_block);
    let (lo, hi) = if flex {
        (first, sb.blocks_count)
    } else {
        let start = first + g * u64::from(sb.blocks_per_group);
        (
            start,
            (start + u64::from(sb.blocks_per_group)).min(sb.blocks_count),
        )
    };
    let bad = |what: &str, blk: u64| {
        Err(Error::corrupt(
            name,
            None,
            Some(offset),
            format!("group {g}: {what} at block {blk} is outside blocks {lo}..{hi}"),
        ))
    };
    if gd.block_bitmap < lo || gd.block_bitmap >= hi {
        return bad("block bitmap", gd.block_bitmap);
    }
    if gd.inode_bitmap < lo || gd.inode_bitmap >= hi {
        return bad("inode bitmap", gd.inode_bitmap);
    }
    let itb = sb.inode_table_blocks();
    if gd.inode_table < lo || gd.inode_table.saturating_add(itb) > hi {
        return bad("inode table", gd.inode_table);
    }
    if gd.free_inodes > sb.inodes_per_group || gd.free_blocks > sb.blocks_per_group {
        return Err(Error::corrupt(
            name,
            None,
            Some(offset),
            format!(
                "group {g}: free counts ({} blocks, {} inodes) exceed the group's size",
                gd.free_blocks, gd.free_inodes
            ),
        ));
    }
    Ok(())
}
