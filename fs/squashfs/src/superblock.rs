//! The 96-byte superblock, checked before anything trusts it.

use crate::error::{Error, Result};

/// Size of the on-disk superblock.
pub const SUPERBLOCK_SIZE: usize = 96;
/// "hsqs" read as a little-endian u32.
pub const MAGIC: u32 = 0x7371_7368;
/// Marker for an absent optional table.
pub const INVALID_TABLE: u64 = u64::MAX;

/// Superblock flag bits.
pub mod flags {
    /// Inodes are stored uncompressed (`-noI`).
    pub const UNCOMPRESSED_INODES: u16 = 0x0001;
    /// Data blocks are stored uncompressed (`-noD`).
    pub const UNCOMPRESSED_DATA: u16 = 0x0002;
    /// Unused check flag.
    pub const CHECK: u16 = 0x0004;
    /// Fragments are stored uncompressed (`-noF`).
    pub const UNCOMPRESSED_FRAGMENTS: u16 = 0x0008;
    /// No fragments were used (`-no-fragments`).
    pub const NO_FRAGMENTS: u16 = 0x0010;
    /// Tail ends always go in fragments (`-always-use-fragments`).
    pub const ALWAYS_FRAGMENTS: u16 = 0x0020;
    /// Duplicate files were merged.
    pub const DUPLICATES: u16 = 0x0040;
    /// The export table is present.
    pub const EXPORTABLE: u16 = 0x0080;
    /// Xattrs are stored uncompressed (`-noX`).
    pub const UNCOMPRESSED_XATTRS: u16 = 0x0100;
    /// No xattrs were stored.
    pub const NO_XATTRS: u16 = 0x0200;
    /// A compressor-options block follows the superblock.
    pub const COMPRESSOR_OPTIONS: u16 = 0x0400;
    /// The id table is stored uncompressed.
    pub const UNCOMPRESSED_IDS: u16 = 0x0800;
}

/// The compressor named in the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// id 1: zlib streams.
    Gzip,
    /// id 2: legacy LZMA-alone.
    Lzma,
    /// id 3: LZO1X.
    Lzo,
    /// id 4: xz streams, optionally with BCJ filters.
    Xz,
    /// id 5: raw LZ4 blocks.
    Lz4,
    /// id 6: zstd frames.
    Zstd,
}

impl Compressor {
    /// Map the on-disk compressor id.
    pub fn from_id(id: u16) -> Option<Compressor> {
        Some(match id {
            1 => Compressor::Gzip,
            2 => Compressor::Lzma,
            3 => Compressor::Lzo,
            4 => Compressor::Xz,
            5 => Compressor::Lz4,
            6 => Compressor::Zstd,
            _ => return None,
        })
    }

    /// The on-disk compressor id.
    pub fn id(self) -> u16 {
        match self {
            Compressor::Gzip => 1,
            Compressor::Lzma => 2,
            Compressor::Lzo => 3,
            Compressor::Xz => 4,
            Compressor::Lz4 => 5,
            Compressor::Zstd => 6,
        }
    }

    /// The name mksquashfs uses (`-comp NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Gzip => "gzip",
            Compressor::Lzma => "lzma",
            Compressor::Lzo => "lzo",
            Compressor::Xz => "xz",
            Compressor::Lz4 => "lz4",
            Compressor::Zstd => "zstd",
        }
    }
}

/// The decoded, validated superblock.
#[derive(Debug, Clone)]
pub struct Superblock {
    /// Number of inodes.
    pub inode_count: u32,
    /// Image modification time (Unix seconds).
    pub mod_time: u32,
    /// Data block size in bytes.
    pub block_size: u32,
    /// Number of fragment entries.
    pub fragment_count: u32,
    /// Compressor.
    pub compressor: Compressor,
    /// log2(block_size).
    pub block_log: u16,
    /// Superblock flags.
    pub flags: u16,
    /// Number of entries in the id table.
    pub id_count: u16,
    /// Major version (4).
    pub version_major: u16,
    /// Minor version (0).
    pub version_minor: u16,
    /// Root inode reference.
    pub root_inode: u64,
    /// Bytes used by the image.
    pub bytes_used: u64,
    /// Start of the id table lookup.
    pub id_table_start: u64,
    /// Start of the xattr id table, or u64::MAX.
    pub xattr_id_table_start: u64,
    /// Start of the inode table.
    pub inode_table_start: u64,
    /// Start of the directory table.
    pub directory_table_start: u64,
    /// Start of the fragment table lookup, or u64::MAX.
    pub fragment_table_start: u64,
    /// Start of the export table lookup, or u64::MAX.
    pub export_table_start: u64,
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

impl Superblock {
    /// Decode and validate the superblock. `available` is the number of bytes in the file
    /// from the image start (file length minus the image offset); `image` names it in errors.
    pub fn parse(raw: &[u8], available: u64, image: &str) -> Result<Superblock> {
        let bad = |offset: u64, what: String| Err(Error::corrupt(image, offset, what));
        if raw.len() < SUPERBLOCK_SIZE || available < SUPERBLOCK_SIZE as u64 {
            return bad(
                0,
                format!("file too short for a superblock ({available} bytes)"),
            );
        }
        let magic = le32(raw, 0);
        if magic != MAGIC {
            return bad(0, format!("bad magic {magic:#010x}, not a SquashFS image"));
        }
        let version_major = le16(raw, 28);
        let version_minor = le16(raw, 30);
        if (version_major, version_minor) != (4, 0) {
            return Err(Error::Unsupported {
                image: image.to_string(),
                what: format!("SquashFS version {version_major}.{version_minor} (only 4.0)"),
            });
        }
        let comp_id = le16(raw, 20);
        let Some(compressor) = Compressor::from_id(comp_id) else {
            return Err(Error::Unsupported {
                image: image.to_string(),
                what: format!("compressor id {comp_id}"),
            });
        };
        let sb = Superblock {
            inode_count: le32(raw, 4),
            mod_time: le32(raw, 8),
            block_size: le32(raw, 12),
            fragment_count: le32(raw, 16),
            compressor,
            block_log: le16(raw, 22),
            flags: le16(raw, 24),
            id_count: le16(raw, 26),
            version_major,
            version_minor,
            root_inode: le64(raw, 32),
            bytes_used: le64(raw, 40),
            id_table_start: le64(raw, 48),
            xattr_id_table_start: le64(raw, 56),
            inode_table_start: le64(raw, 64),
            directory_table_start: le64(raw, 72),
            fragment_table_start: le64(raw, 80),
            export_table_start: le64(raw, 88),
        };
        let bs = sb.block_size;
        if !(4096..=1 << 20).contains(&bs) || !bs.is_power_of_two() {
            return bad(
                12,
                format!("block size {bs} is not a power of two in 4K..1M"),
            );
        }
        if u32::from(sb.block_log) != bs.trailing_zeros() {
            return bad(
                22,
                format!("block_log {} does not match block size {bs}", sb.block_log),
            );
        }
        if sb.bytes_used < SUPERBLOCK_SIZE as u64 || sb.bytes_used > available {
            return bad(
                40,
                format!(
                    "bytes_used {} outside the file ({available} bytes available)",
                    sb.bytes_used
                ),
            );
        }
        let end = sb.bytes_used;
        let check = |field: &str, at: u64, v: u64, optional: bool| -> Result<()> {
            if optional && v == INVALID_TABLE {
                return Ok(());
            }
            if v < SUPERBLOCK_SIZE as u64 || v > end {
                return Err(Error::corrupt(
                    image,
                    at,
                    format!("{field} {v} outside the image (bytes_used {end})"),
                ));
            }
            Ok(())
        };
        check("inode_table_start", 64, sb.inode_table_start, false)?;
        check("directory_table_start", 72, sb.directory_table_start, false)?;
        check("id_table_start", 48, sb.id_table_start, false)?;
        check("xattr_id_table_start", 56, sb.xattr_id_table_start, true)?;
        check("fragment_table_start", 80, sb.fragment_table_start, true)?;
        check("export_table_start", 88, sb.export_table_start, true)?;
        if sb.inode_table_start >= sb.directory_table_start {
            return bad(
                64,
                "inode table does not precede the directory table".to_string(),
            );
        }
        if sb.id_count == 0 {
            return bad(26, "id table is empty".to_string());
        }
        if sb.fragment_count > 0 && sb.fragment_table_start == INVALID_TABLE {
            return bad(
                80,
                format!("{} fragments but no fragment table", sb.fragment_count),
            );
        }
        if sb.inode_count == 0 {
            return bad(4, "inode count is zero".to_string());
        }
        if (sb.root_inode & 0xffff) >= 8192 || (sb.root_inode >> 48) != 0 {
            return bad(
                32,
                format!("root inode reference {:#x} is malformed", sb.root_inode),
            );
        }
        Ok(sb)
    }

    /// Whether a flag bit (see [`flags`]) is set.
    pub fn has_flag(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// Whether the export table is present.
    pub fn exportable(&self) -> bool {
        self.export_table_start != INVALID_TABLE
    }

    /// Whether the image has an xattr table.
    pub fn has_xattrs(&self) -> bool {
        self.xattr_id_table_start != INVALID_TABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_SIZE];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&5u32.to_le_bytes()); // inodes
        b[12..16].copy_from_slice(&131072u32.to_le_bytes());
        b[20..22].copy_from_slice(&1u16.to_le_bytes()); // gzip
        b[22..24].copy_from_slice(&17u16.to_le_bytes());
        b[26..28].copy_from_slice(&1u16.to_le_bytes()); // ids
        b[28..30].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&4096u64.to_le_bytes()); // bytes_used
        b[48..56].copy_from_slice(&4000u64.to_le_bytes()); // id table
        b[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
        b[64..72].copy_from_slice(&1000u64.to_le_bytes()); // inodes
        b[72..80].copy_from_slice(&2000u64.to_le_bytes()); // dirs
        b[80..88].copy_from_slice(&u64::MAX.to_le_bytes());
        b[88..96].copy_from_slice(&u64::MAX.to_le_bytes());
        b
    }

    fn set(b: &mut [u8], at: usize, v: &[u8]) -> String {
        b[at..at + v.len()].copy_from_slice(v);
        Superblock::parse(b, 8192, "t.sqfs")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn accepts_a_valid_superblock() {
        let sb = Superblock::parse(&valid(), 8192, "t.sqfs").unwrap();
        assert_eq!(sb.compressor, Compressor::Gzip);
        assert_eq!(sb.block_size, 131072);
        assert!(!sb.has_xattrs() && !sb.exportable());
    }

    #[test]
    fn rejects_each_bad_field_with_a_named_error() {
        assert!(set(&mut valid(), 0, b"sqsh").contains("bad magic"));
        assert!(set(&mut valid(), 28, &3u16.to_le_bytes()).contains("version 3.0"));
        assert!(set(&mut valid(), 20, &9u16.to_le_bytes()).contains("compressor id 9"));
        assert!(set(&mut valid(), 12, &131073u32.to_le_bytes()).contains("block size"));
        assert!(set(&mut valid(), 12, &(2u32 << 20).to_le_bytes()).contains("block size"));
        assert!(set(&mut valid(), 22, &16u16.to_le_bytes()).contains("block_log"));
        assert!(set(&mut valid(), 40, &9000u64.to_le_bytes()).contains("bytes_used"));
        assert!(set(&mut valid(), 48, &5000u64.to_le_bytes()).contains("id_table_start"));
        assert!(set(&mut valid(), 64, &3000u64.to_le_bytes()).contains("inode table"));
        assert!(set(&mut valid(), 80, &10u64.to_le_bytes()).contains("fragment_table_start"));
        assert!(set(&mut valid(), 16, &3u32.to_le_bytes()).contains("no fragment table"));
        assert!(set(&mut valid(), 26, &0u16.to_le_bytes()).contains("id table is empty"));
        assert!(set(&mut valid(), 32, &0x2000u64.to_le_bytes()).contains("root inode"));
        let e = Superblock::parse(&valid(), 50, "t.sqfs")
            .unwrap_err()
            .to_string();
        assert!(e.contains("too short") && e.starts_with("t.sqfs"), "{e}");
    }
}
