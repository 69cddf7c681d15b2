//! On-disk inodes (128-byte base, optional extra part): sizes, times with nanoseconds and
//! epoch bits, owners, i_blocks, flags, device numbers, and where in-inode xattrs live.

use squashbox_vfs::{FileType, Timespec};

use crate::bytes::{le16, le32};

/// The root directory's inode number.
pub const ROOT_INO: u32 = 2;
/// Size of the base inode.
pub const GOOD_OLD_INODE_SIZE: usize = 128;
/// Number of i_block words.
pub const N_BLOCKS: usize = 15;

/// i_flags: the directory has an htree index.
pub const INDEX_FL: u32 = 0x1000;
/// i_flags: i_blocks counts filesystem blocks, not 512-byte sectors.
pub const HUGE_FILE_FL: u32 = 0x4_0000;
/// i_flags: the file is extent-mapped.
pub const EXTENTS_FL: u32 = 0x8_0000;
/// i_flags: the xattr value lives in this inode (ea_inode).
pub const EA_INODE_FL: u32 = 0x20_0000;
/// i_flags: the data lives in the inode (inline_data).
pub const INLINE_DATA_FL: u32 = 0x1000_0000;

/// A parsed inode.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Its number.
    pub ino: u32,
    /// i_mode: type and permission bits.
    pub mode: u16,
    /// Owner (low and high halves joined).
    pub uid: u32,
    /// Group (low and high halves joined).
    pub gid: u32,
    /// Size in bytes (i_size_high counts for regular files, or every file with largedir).
    pub size: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last change.
    pub ctime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Deletion time (nonzero: deleted).
    pub dtime: u32,
    /// Hard links.
    pub links: u16,
    /// i_blocks, raw (units depend on huge_file and HUGE_FILE_FL).
    pub blocks_raw: u64,
    /// i_flags.
    pub flags: u32,
    /// i_block: block map, extent tree root, fast symlink or device number.
    pub block: [u8; N_BLOCKS * 4],
    /// i_generation.
    pub generation: u32,
    /// The external xattr block (0: none).
    pub file_acl: u64,
    /// i_extra_isize (0 for 128-byte inodes).
    pub extra_isize: u16,
    /// The raw on-disk inode (fields not parsed here, and in-inode xattrs, live on in it).
    pub raw: Vec<u8>,
}

/// How inodes are laid out on this filesystem (from the superblock).
#[derive(Debug, Clone, Copy)]
pub struct InodeFormat {
    /// Bytes per on-disk inode.
    pub inode_size: u16,
    /// 64bit feature: i_file_acl_high counts.
    pub is64: bool,
    /// huge_file feature: 48-bit i_blocks, HUGE_FILE_FL honoured.
    pub huge_file: bool,
    /// largedir feature: directories use i_size_high.
    pub largedir: bool,
    /// Block size (for HUGE_FILE_FL).
    pub block_size: u32,
}

/// Seconds from an on-disk time and its `_extra` word (nanoseconds << 2 | epoch bits).
fn decode_time(secs: u32, extra: Option<u32>) -> Timespec {
    let mut s = i64::from(secs as i32);
    let mut ns = 0u32;
    if let Some(x) = extra {
        s += i64::from(x & 3) << 32;
        ns = (x >> 2).min(999_999_999);
    }
    Timespec { secs: s, nsecs: ns }
}

/// An on-disk (seconds, extra) pair for `t`: the low 32 bits of the seconds, and the
/// nanoseconds << 2 with the epoch bits (seconds >> 32, after the sign-extension the decoder
/// applies).
pub fn encode_time(t: Timespec) -> (u32, u32) {
    let lo = t.secs as u32;
    let epoch = ((t.secs - i64::from(lo as i32)) >> 32) as u32 & 3;
    (lo, (t.nsecs.min(999_999_999) << 2) | epoch)
}

impl Inode {
    /// Parse inode `ino` from its `raw` bytes (`fmt.inode_size` of them, or 128).
    pub fn parse(ino: u32, raw: &[u8], fmt: &InodeFormat) -> Inode {
        let mode = le16(raw, 0x0);
        let is_reg = mode & 0o170000 == 0o100000;
        let size_hi = if is_reg || fmt.largedir {
            u64::from(le32(raw, 0x6C)) << 32
        } else {
            0
        };
        let extra_isize = if raw.len() > GOOD_OLD_INODE_SIZE {
            le16(raw, 0x80)
        } else {
            0
        };
        // An extra field counts only when i_extra_isize covers it.
        let covered = |off: usize| {
            raw.len() > GOOD_OLD_INODE_SIZE
                && off + 4 <= GOOD_OLD_INODE_SIZE + usize::from(extra_isize)
                && off + 4 <= raw.len()
        };
        let extra_at = |off: usize| covered(off).then(|| le32(raw, off));
        let mut blocks_raw = u64::from(le32(raw, 0x1C));
        if fmt.huge_file {
            blocks_raw |= u64::from(le16(raw, 0x74)) << 32;
        }
        let mut file_acl = u64::from(le32(raw, 0x68));
        if fmt.is64 {
            file_acl |= u64::from(le16(raw, 0x76)) << 32;
        }
        let mut block = [0u8; N_BLOCKS * 4];
        if let Some(s) = raw.get(0x28..0x28 + N_BLOCKS * 4) {
            block.copy_from_slice(s);
        }
        Inode {
            ino,
            mode,
            uid: u32::from(le16(raw, 0x2)) | (u32::from(le16(raw, 0x78)) << 16),
            gid: u32::from(le16(raw, 0x18)) | (u32::from(le16(raw, 0x7A)) << 16),
            size: u64::from(le32(raw, 0x4)) | size_hi,
            atime: decode_time(le32(raw, 0x8), extra_at(0x8C)),
            ctime: decode_time(le32(raw, 0xC), extra_at(0x84)),
            mtime: decode_time(le32(raw, 0x10), extra_at(0x88)),
            dtime: le32(raw, 0x14),
            links: le16(raw, 0x1A),
            blocks_raw,
            flags: le32(raw, 0x20),
            block,
            generation: le32(raw, 0x64),
            file_acl,
            extra_isize,
            raw: raw.to_vec(),
        }
    }

    /// The file type, if the mode names a valid one.
    pub fn kind(&self) -> Option<FileType> {
        FileType::from_mode(u32::from(self.mode))
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == Some(FileType::Directory)
    }

    /// Whether the file is extent-mapped.
    pub fn has_extents(&self) -> bool {
        self.flags & EXTENTS_FL != 0
    }

    /// i_block word `i`.
    pub fn block_word(&self, i: usize) -> u32 {
        le32(&self.block, i * 4)
    }

    /// `st_blocks` (512-byte units).
    pub fn blocks_512(&self, fmt: &InodeFormat) -> u64 {
        if fmt.huge_file && self.flags & HUGE_FILE_FL != 0 {
            self.blocks_raw
                .saturating_mul(u64::from(fmt.block_size / 512))
        } else {
            self.blocks_raw
        }
    }

    /// The device number in the kernel's `new_encode_dev` form (old 16-bit form in `i_block[0]`,
    /// new form in `i_block[1]`).
    pub fn rdev(&self) -> u32 {
        let old = self.block_word(0);
        if old != 0 {
            let major = (old >> 8) & 0xff;
            let minor = old & 0xff;
            (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
        } else {
            self.block_word(1)
        }
    }

    /// The in-inode xattr area: bytes after 128 + i_extra_isize, with its byte position in the
    /// raw inode. Empty when the inode has no room or a bad i_extra_isize.
    pub fn inline_xattr_area(&self) -> (&[u8], usize) {
        let start = GOOD_OLD_INODE_SIZE + usize::from(self.extra_isize);
        if self.raw.len() <= GOOD_OLD_INODE_SIZE
            || !self.extra_isize.is_multiple_of(4)
            || start + 4 > self.raw.len()
        {
            return (&[], 0);
        }
        (&self.raw[start..], start)
    }

    /// The raw inode with every parsed field written back (times keep their nanoseconds
    /// when i_extra_isize covers the extra words).
    pub fn to_raw(&self, fmt: &InodeFormat) -> Vec<u8> {
        let mut r = self.raw.clone();
        r.resize(usize::from(fmt.inode_size).max(GOOD_OLD_INODE_SIZE), 0);
        let put16 =
            |r: &mut Vec<u8>, off: usize, v: u16| r[off..off + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |r: &mut Vec<u8>, off: usize, v: u32| r[off..off + 4].copy_from_slice(&v.to_le_bytes());
        let is_reg = self.mode & 0o170000 == 0o100000;
        put16(&mut r, 0x0, self.mode);
        put16(&mut r, 0x2, self.uid as u16);
        put32(&mut r, 0x4, self.size as u32);
        put32(&mut r, 0x14, self.dtime);
        put16(&mut r, 0x18, self.gid as u16);
        put16(&mut r, 0x1A, self.links);
        put32(&mut r, 0x1C, self.blocks_raw as u32);
        put32(&mut r, 0x20, self.flags);
        r[0x28..0x28 + N_BLOCKS * 4].copy_from_slice(&self.block);
        put32(&mut r, 0x64, self.generation);
        put32(&mut r, 0x68, self.file_acl as u32);
        put32(
            &mut r,
            0x6C,
            if is_reg || fmt.largedir {
                (self.size >> 32) as u32
            } else {
                0
            },
        );
        if fmt.huge_file {
            put16(&mut r, 0x74, (self.blocks_raw >> 32) as u16);
        }
        if fmt.is64 {
            put16(&mut r, 0x76, (self.file_acl >> 32) as u16);
        }
        put16(&mut r, 0x78, (self.uid >> 16) as u16);
        put16(&mut r, 0x7A, (self.gid >> 16) as u16);
        let times = [
            (0x8, 0x8C, self.atime),
            (0xC, 0x84, self.ctime),
            (0x10, 0x88, self.mtime),
        ];
        let has_extra = r.len() > GOOD_OLD_INODE_SIZE;
        if has_extra {
            put16(&mut r, 0x80, self.extra_isize);
        }
        for (lo, hi, t) in times {
            let (secs, extra) = encode_time(t);
            put32(&mut r, lo, secs);
            if has_extra && hi + 4 <= GOOD_OLD_INODE_SIZE + usize::from(self.extra_isize) {
                put32(&mut r, hi, extra);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt() -> InodeFormat {
        InodeFormat {
            inode_size: 256,
            is64: false,
            huge_file: false,
            largedir: false,
            block_size: 1024,
        }
    }

    #[test]
    fn times_with_nanoseconds_and_epoch() {
        let mut raw = vec![0u8; 256];
        raw[0..2].copy_from_slice(&0o100644u16.to_le_bytes());
        raw[0x10..0x14].copy_from_slice(&(-1i32).to_le_bytes());
        raw[0x80..0x82].copy_from_slice(&32u16.to_le_bytes());
        raw[0x88..0x8C].copy_from_slice(&((5u32 << 2) | 1).to_le_bytes());
        raw[0x6C..0x70].copy_from_slice(&1u32.to_le_bytes());
        let i = Inode::parse(12, &raw, &fmt());
        assert_eq!(
            i.mtime,
            Timespec {
                secs: (1 << 32) - 1,
                nsecs: 5
            }
        );
        assert_eq!(i.size, 1 << 32);
        assert_eq!(i.kind(), Some(FileType::RegularFile));
        // A directory ignores i_size_high (it was i_dir_acl in ext2).
        raw[0..2].copy_from_slice(&0o40755u16.to_le_bytes());
        assert_eq!(Inode::parse(12, &raw, &fmt()).size, 0);
        // A 128-byte inode has no extra times.
        let i = Inode::parse(12, &raw[..128], &fmt());
        assert_eq!(i.mtime.nsecs, 0);
    }

    #[test]
    fn times_and_fields_round_trip() {
        let mut raw = vec![0u8; 256];
        raw[0x80..0x82].copy_from_slice(&32u16.to_le_bytes());
        raw[0x90] = 0x55; // crtime: kept as it was
        let mut i = Inode::parse(12, &raw, &fmt());
        i.mode = 0o100640;
        i.uid = 100_000;
        i.size = (5 << 32) + 7;
        i.mtime = Timespec {
            secs: (1 << 32) + 5,
            nsecs: 999_999_999,
        };
        i.atime = Timespec { secs: -3, nsecs: 1 };
        let back = Inode::parse(12, &i.to_raw(&fmt()), &fmt());
        assert_eq!((back.mode, back.uid, back.size), (i.mode, i.uid, i.size));
        assert_eq!((back.mtime, back.atime), (i.mtime, i.atime));
        assert_eq!(back.raw[0x90], 0x55);
    }

    #[test]
    fn device_numbers() {
        let mut raw = vec![0u8; 128];
        raw[0x28..0x2C].copy_from_slice(&0x0803u32.to_le_bytes());
        assert_eq!(Inode::parse(12, &raw, &fmt()).rdev(), 0x0803);
        raw[0x28..0x2C].copy_from_slice(&0u32.to_le_bytes());
        let new: u32 = (70000 & 0xff) | (259 << 8) | ((70000 & !0xff) << 12);
        raw[0x2C..0x30].copy_from_slice(&new.to_le_bytes());
        assert_eq!(Inode::parse(12, &raw, &fmt()).rdev(), new);
    }
}
