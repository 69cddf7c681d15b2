//! Check the filesystem a partition really holds, the way Apptainer does before mounting:
//! SquashFS magic `hsqs` with a known compressor, or an ext3 superblock with only the
//! features Apptainer accepts.

use crate::util::ReadAt;
use crate::{Error, PartitionLocation};

/// What a partition's bytes turned out to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbedFs {
    /// SquashFS with this compression ID (1 gzip, 2 lzma, 3 lzo, 4 xz, 5 lz4, 6 zstd).
    Squashfs {
        /// Compression ID from the superblock.
        compression: u16,
    },
    /// ext3 that passes Apptainer's strict feature check.
    Ext3,
}

const EXT_SB: u64 = 1024;
const EXT_MAGIC: u16 = 0xEF53;
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_ALLOWED: u32 = 0x2 | 0x4 | 0x10;
const RO_COMPAT_ALLOWED: u32 = 0x1 | 0x2 | 0x4;

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Read the start of partition `loc` in `src` and identify its filesystem.
pub fn probe_filesystem<R: ReadAt + ?Sized>(
    src: &R,
    loc: &PartitionLocation,
) -> Result<ProbedFs, Error> {
    let what = format!("partition {} at offset {}", loc.id, loc.offset);
    if loc.size >= 96 {
        let mut sq = [0u8; 24];
        src.read_exact_at(&mut sq, loc.offset)?;
        if &sq[0..4] == b"hsqs" {
            let compression = u16::from_le_bytes([sq[20], sq[21]]);
            if !(1..=6).contains(&compression) {
                return Err(Error::Unsupported(format!(
                    "{what}: SquashFS with unknown compression id {compression}"
                )));
            }
            return Ok(ProbedFs::Squashfs { compression });
        }
    }
    if loc.size >= EXT_SB + 1024 {
        let mut sb = [0u8; 104];
        src.read_exact_at(&mut sb, loc.offset + EXT_SB)?;
        if u16::from_le_bytes([sb[56], sb[57]]) == EXT_MAGIC {
            let (compat, incompat, ro) = (u32_at(&sb, 92), u32_at(&sb, 96), u32_at(&sb, 100));
            if compat & COMPAT_HAS_JOURNAL == 0 {
                return Err(Error::Unsupported(format!(
                    "{what}: ext filesystem without a journal is not ext3"
                )));
            }
            if incompat & !INCOMPAT_ALLOWED != 0 || ro & !RO_COMPAT_ALLOWED != 0 {
                return Err(Error::Unsupported(format!(
                    "{what}: ext filesystem uses features beyond ext3 (incompat {incompat:#x}, ro_compat {ro:#x})"
                )));
            }
            return Ok(ProbedFs::Ext3);
        }
    }
    Err(Error::Unsupported(format!(
        "{what}: neither SquashFS nor ext3"
    )))
}
