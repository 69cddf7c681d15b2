//! The superblock (1024 bytes at byte 1024): parsing, feature sets and the geometry checks
//! that refuse garbage before anything else is read.

use std::sync::Arc;

use crate::bytes::{le16, le32, u8_at};
use crate::error::{Error, Result};

/// Byte offset of the superblock in the filesystem.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the on-disk superblock.
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `s_magic`.
pub const EXT2_MAGIC: u16 = 0xEF53;

/// COMPAT: the filesystem has a journal.
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// COMPAT: extended attributes.
pub const COMPAT_EXT_ATTR: u32 = 0x8;
/// COMPAT: reserved GDT blocks for online growth (inode 7).
pub const COMPAT_RESIZE_INODE: u32 = 0x10;
/// COMPAT: hashed (htree) directories.
pub const COMPAT_DIR_INDEX: u32 = 0x20;
/// COMPAT: superblock backups only in the two groups named by `s_backup_bgs`.
pub const COMPAT_SPARSE_SUPER2: u32 = 0x200;

/// INCOMPAT: directory entries carry a file type.
pub const INCOMPAT_FILETYPE: u32 = 0x2;
/// INCOMPAT: the journal needs replaying.
pub const INCOMPAT_RECOVER: u32 = 0x4;
/// INCOMPAT: meta block groups.
pub const INCOMPAT_META_BG: u32 = 0x10;
/// INCOMPAT: extent-mapped files.
pub const INCOMPAT_EXTENTS: u32 = 0x40;
/// INCOMPAT: 64-bit block numbers (group descriptors of `s_desc_size`).
pub const INCOMPAT_64BIT: u32 = 0x80;
/// INCOMPAT: multi-mount protection.
pub const INCOMPAT_MMP: u32 = 0x100;
/// INCOMPAT: flexible block groups.
pub const INCOMPAT_FLEX_BG: u32 = 0x200;
/// INCOMPAT: the metadata checksum seed is in the superblock.
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
/// INCOMPAT: directories over 2 GiB and 3-level htrees.
pub const INCOMPAT_LARGEDIR: u32 = 0x4000;

/// RO_COMPAT: superblock backups in groups 0, 1 and powers of 3, 5, 7.
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
/// RO_COMPAT: files over 2 GiB.
pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
/// RO_COMPAT: i_blocks in filesystem blocks for HUGE_FILE_FL inodes, 48-bit i_blocks.
pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
/// RO_COMPAT: group descriptor checksums.
pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
/// RO_COMPAT: directories may have more than 65000 subdirectories (nlink 1).
pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
/// RO_COMPAT: clusters of blocks.
pub const RO_COMPAT_BIGALLOC: u32 = 0x200;
/// RO_COMPAT: crc32c metadata checksums.
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// INCOMPAT bits this driver can read.
const INCOMPAT_READ: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_RECOVER
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR;
/// INCOMPAT bits this driver can write (what `mkfs.ext3` makes).
const INCOMPAT_WRITE: u32 = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
/// RO_COMPAT bits this driver can write.
const RO_COMPAT_WRITE: u32 =
    RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | 0x4 /* btree_dir */;

/// The superblock fields this driver uses.
#[derive(Debug, Clone)]
pub struct Superblock {
    /// Total inodes.
    pub inodes_count: u32,
    /// Total blocks.
    pub blocks_count: u64,
    /// Blocks reserved for root.
    pub r_blocks_count: u64,
    /// Free blocks (the superblock's own total).
    pub free_blocks_count: u64,
    /// Free inodes (the superblock's own total).
    pub free_inodes_count: u32,
    /// The first data block: 1 with 1 KiB blocks, else 0.
    pub first_data_block: u32,
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks per group.
    pub blocks_per_group: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Filesystem state (1 clean, 2 errors).
    pub state: u16,
    /// Revision (0: fixed 128-byte inodes, first inode 11).
    pub rev_level: u32,
    /// First non-reserved inode.
    pub first_ino: u32,
    /// Size of an on-disk inode.
    pub inode_size: u16,
    /// COMPAT features.
    pub feature_compat: u32,
    /// INCOMPAT features.
    pub feature_incompat: u32,
    /// RO_COMPAT features.
    pub feature_ro_compat: u32,
    /// Reserved GDT blocks (resize_inode).
    pub reserved_gdt_blocks: u16,
    /// The journal's inode.
    pub journal_inum: u32,
    /// Head of the orphan list.
    pub last_orphan: u32,
    /// Directory hash seed.
    pub hash_seed: [u32; 4],
    /// Default directory hash version.
    pub def_hash_version: u8,
    /// Group descriptor size.
    pub desc_size: u16,
    /// First meta block group (meta_bg).
    pub first_meta_bg: u32,
    /// Flags (0x1 signed, 0x2 unsigned directory hash).
    pub flags: u32,
    /// Groups holding superblock backups with sparse_super2.
    pub backup_bgs: [u32; 2],
    /// Precomputed metadata overhead in clusters (0: not stored).
    pub overhead_clusters: u32,
    /// Extra inode bytes every inode has (ext4's `s_min_extra_isize`).
    pub min_extra_isize: u16,
}

/// 2^n for the small log fields, refusing absurd ones.
fn shifted(base: u32, log: u32) -> Option<u32> {
    if log > 6 { None } else { Some(base << log) }
}

impl Superblock {
    /// Parse and check the superblock `raw` of an image of `image_len` bytes called `name`.
    pub fn parse(name: &Arc<str>, raw: &[u8], image_len: u64) -> Result<Superblock> {
        let bad = |msg: String| Error::corrupt(name, None, Some(SUPERBLOCK_OFFSET), msg);
        if raw.len() < SUPERBLOCK_SIZE {
            return Err(bad("the superblock is cut short".into()));
        }
        let magic = le16(raw, 0x38);
        if magic != EXT2_MAGIC {
            return Err(bad(format!(
                "not an ext2/ext3/ext4 filesystem (magic {magic:#06x}, want 0xef53)"
            )));
        }
        let rev_level = le32(raw, 0x4C);
        let (first_ino, inode_size) = if rev_level == 0 {
            (11, 128)
        } else {
            (le32(raw, 0x54), le16(raw, 0x58))
        };
        let log_bs = le32(raw, 0x18);
        let block_size = shifted(1024, log_bs)
            .ok_or_else(|| bad(format!("block size log {log_bs} is absurd")))?;
        let incompat = if rev_level == 0 { 0 } else { le32(raw, 0x60) };
        let is64 = incompat & INCOMPAT_64BIT != 0;
        let hi = |off: usize| {
            if is64 {
                u64::from(le32(raw, off)) << 32
            } else {
                0
            }
        };
        let sb = Superblock {
            inodes_count: le32(raw, 0x0),
            blocks_count: u64::from(le32(raw, 0x4)) | hi(0x150),
            r_blocks_count: u64::from(le32(raw, 0x8)) | hi(0x154),
            free_blocks_count: u64::from(le32(raw, 0xC)) | hi(0x158),
            free_inodes_count: le32(raw, 0x10),
            first_data_block: le32(raw, 0x14),
            block_size,
            blocks_per_group: le32(raw, 0x20),
            inodes_per_group: le32(raw, 0x28),
            state: le16(raw, 0x3A),
            rev_level,
            first_ino,
            inode_size,
            feature_compat: if rev_level == 0 { 0 } else { le32(raw, 0x5C) },
            feature_incompat: incompat,
            feature_ro_compat: if rev_level == 0 { 0 } else { le32(raw, 0x64) },
            reserved_gdt_blocks: le16(raw, 0xCE),
            journal_inum: le32(raw, 0xE0),
            last_orphan: le32(raw, 0xE8),
            hash_seed: [
                le32(raw, 0xEC),
                le32(raw, 0xF0),
                le32(raw, 0xF4),
                le32(raw, 0xF8),
            ],
            def_hash_version: u8_at(raw, 0xFC),
            desc_size: if is64 { le16(raw, 0xFE) } else { 32 },
            first_meta_bg: le32(raw, 0x104),
            flags: le32(raw, 0x160),
            backup_bgs: [le32(raw, 0x24C), le32(raw, 0x250)],
            overhead_clusters: le32(raw, 0x248),
            min_extra_isize: le16(raw, 0x15C),
        };
        sb.check(name, image_len)?;
        Ok(sb)
    }

    fn check(&self, name: &Arc<str>, image_len: u64) -> Result<()> {
        let bad = |msg: String| Err(Error::corrupt(name, None, Some(SUPERBLOCK_OFFSET), msg));
        let unknown = self.feature_incompat & !INCOMPAT_READ;
        if unknown != 0 {
            return Err(Error::unsupported(
                name,
                None,
                format!(
                    "incompatible features {unknown:#x} ({}) are not supported",
                    incompat_names(unknown)
                ),
            ));
        }
        if self.feature_ro_compat & RO_COMPAT_BIGALLOC != 0 {
            return Err(Error::unsupported(name, None, "bigalloc is not supported"));
        }
        let bs = u64::from(self.block_size);
        let bits = bs * 8;
        if self.blocks_per_group == 0
            || u64::from(self.blocks_per_group) > bits
            || !self.blocks_per_group.is_multiple_of(8)
        {
            return bad(format!(
                "{} blocks per group is invalid",
                self.blocks_per_group
            ));
        }
        if self.inodes_per_group == 0 || u64::from(self.inodes_per_group) > bits {
            return bad(format!(
                "{} inodes per group is invalid",
                self.inodes_per_group
            ));
        }
        let isz = self.inode_size;
        if isz < 128 || !isz.is_power_of_two() || u64::from(isz) > bs {
            return bad(format!("inode size {isz} is invalid"));
        }
        let want_first = u32::from(self.block_size == 1024);
        if self.first_data_block != want_first {
            return bad(format!(
                "first data block {} is wrong for {}-byte blocks",
                self.first_data_block, self.block_size
            ));
        }
        if self.blocks_count <= u64::from(self.first_data_block) {
            return bad(format!("block count {} is too small", self.blocks_count));
        }
        let need = self.blocks_count.saturating_mul(bs);
        if need > image_len {
            return bad(format!(
                "the filesystem needs {need} bytes ({} blocks of {bs}) but the image has only {image_len}",
                self.blocks_count
            ));
        }
        let groups = self.group_count();
        if u64::from(self.inodes_per_group) * groups != u64::from(self.inodes_count) {
            return bad(format!(
                "inode count {} is not {} groups of {} inodes",
                self.inodes_count, groups, self.inodes_per_group
            ));
        }
        if self.first_ino < 11 || self.first_ino >= self.inodes_count {
            return bad(format!("first inode {} is invalid", self.first_ino));
        }
        if self.feature_incompat & INCOMPAT_64BIT != 0 {
            let d = self.desc_size;
            if d < 64 || !d.is_power_of_two() || u64::from(d) > bs {
                return bad(format!("group descriptor size {d} is invalid"));
            }
        }
        if self.feature_compat & COMPAT_HAS_JOURNAL != 0
            && self.journal_inum != 0
            && (self.journal_inum > self.inodes_count || self.journal_inum == 2)
        {
            return bad(format!("journal inode {} is invalid", self.journal_inum));
        }
        Ok(())
    }

    /// Number of block groups.
    pub fn group_count(&self) -> u64 {
        (self.blocks_count - u64::from(self.first_data_block))
            .div_ceil(u64::from(self.blocks_per_group))
    }

    /// Group descriptors per descriptor block.
    pub fn descs_per_block(&self) -> u64 {
        u64::from(self.block_size) / u64::from(self.desc_size)
    }

    /// Whether INCOMPAT feature `bit` is set.
    pub fn has_incompat(&self, bit: u32) -> bool {
        self.feature_incompat & bit != 0
    }

    /// Whether RO_COMPAT feature `bit` is set.
    pub fn has_ro_compat(&self, bit: u32) -> bool {
        self.feature_ro_compat & bit != 0
    }

    /// Whether COMPAT feature `bit` is set.
    pub fn has_compat(&self, bit: u32) -> bool {
        self.feature_compat & bit != 0
    }

    /// Why this driver must serve the image read-only even when asked to write, if it must.
    pub fn read_only_reason(&self) -> Option<String> {
        let inc = self.feature_incompat & !(INCOMPAT_WRITE | INCOMPAT_RECOVER);
        let ro = self.feature_ro_compat & !RO_COMPAT_WRITE;
        if inc != 0 || ro != 0 {
            return Some(format!(
                "ext4 features (incompat {inc:#x}: {}; ro_compat {ro:#x}) are served read-only",
                incompat_names(inc)
            ));
        }
        None
    }

    /// Whether group `g` holds a superblock backup (and, without meta_bg, a GDT copy).
    pub fn group_has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.has_compat(COMPAT_SPARSE_SUPER2) {
            return g == u64::from(self.backup_bgs[0]) || g == u64::from(self.backup_bgs[1]);
        }
        if g <= 1 || !self.has_ro_compat(RO_COMPAT_SPARSE_SUPER) {
            return true;
        }
        if g.is_multiple_of(2) {
            return false;
        }
        [3u64, 5, 7].iter().any(|&b| is_power_of(g, b))
    }

    /// The block holding descriptor block `nr` of the group descriptor table.
    pub fn descriptor_block(&self, nr: u64) -> u64 {
        let sb_block = u64::from(self.first_data_block);
        if !self.has_incompat(INCOMPAT_META_BG) || nr < u64::from(self.first_meta_bg) {
            return sb_block + nr + 1;
        }
        let bg = self.descs_per_block() * nr;
        let first = bg * u64::from(self.blocks_per_group) + u64::from(self.first_data_block);
        first + u64::from(self.group_has_super(bg))
    }

    /// Metadata blocks of group `g` besides bitmaps and the inode table: superblock backup,
    /// GDT copies and reserved GDT blocks.
    pub fn base_meta_blocks(&self, g: u64) -> u64 {
        let sup = u64::from(self.group_has_super(g));
        let dpb = self.descs_per_block();
        let meta = self.has_incompat(INCOMPAT_META_BG);
        if !meta || g < u64::from(self.first_meta_bg) * dpb {
            if sup == 0 {
                return 0;
            }
            let gdb = if meta {
                u64::from(self.first_meta_bg)
            } else {
                self.group_count().div_ceil(dpb)
            };
            sup + gdb + u64::from(self.reserved_gdt_blocks)
        } else {
            let first = g / dpb * dpb;
            let gdt = u64::from(g == first || g == first + 1 || g == first + dpb - 1);
            sup + gdt
        }
    }

    /// Blocks of one group's inode table.
    pub fn inode_table_blocks(&self) -> u64 {
        (u64::from(self.inodes_per_group) * u64::from(self.inode_size))
            .div_ceil(u64::from(self.block_size))
    }
}

fn is_power_of(mut n: u64, base: u64) -> bool {
    while n > 1 && n.is_multiple_of(base) {
        n /= base;
    }
    n == 1
}

/// Names of INCOMPAT bits, for messages.
pub fn incompat_names(bits: u32) -> String {
    const NAMES: [(u32, &str); 16] = [
        (0x1, "compression"),
        (0x2, "filetype"),
        (0x4, "needs_recovery"),
        (0x8, "journal_dev"),
        (0x10, "meta_bg"),
        (0x40, "extent"),
        (0x80, "64bit"),
        (0x100, "mmp"),
        (0x200, "flex_bg"),
        (0x400, "ea_inode"),
        (0x1000, "dirdata"),
        (0x2000, "metadata_csum_seed"),
        (0x4000, "largedir"),
        (0x8000, "inline_data"),
        (0x10000, "encrypt"),
        (0x20000, "casefold"),
    ];
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| (*n).to_string())
        .collect();
    let rest = NAMES.iter().fold(bits, |acc, (b, _)| acc & !b);
    if rest != 0 {
        out.push(format!("unknown {rest:#x}"));
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_backups() {
        let groups: Vec<u64> = (0..100).filter(|&g| is_backup(g)).collect();
        assert_eq!(groups, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }

    fn is_backup(g: u64) -> bool {
        g <= 1 || [3u64, 5, 7].iter().any(|&b| is_power_of(g, b))
    }

    #[test]
    fn names_of_features() {
        assert_eq!(incompat_names(0x2 | 0x40), "filetype, extent");
        assert_eq!(incompat_names(0x8000_0000), "unknown 0x80000000");
    }
}
