//! The 128-byte global header.

use crate::consts::{Arch, GO_ZERO_TIME, HEADER_SIZE, MAGIC, VERSION};

/// The SIF global header, field for field as stored (little-endian, packed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Launch script, NUL-padded (e.g. `#!/usr/bin/env run-singularity\n`).
    pub launch_script: [u8; 32],
    /// Magic, `SIF_MAGIC\0` in a valid image.
    pub magic: [u8; 10],
    /// Spec version, `"01\0"` in a valid image.
    pub version: [u8; 3],
    /// Primary partition architecture.
    pub arch: Arch,
    /// Image UUID, raw RFC 4122 bytes; all zero for deterministic images.
    pub id: [u8; 16],
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Modification time, Unix seconds.
    pub modified_at: i64,
    /// Number of unused descriptor slots.
    pub descriptors_free: i64,
    /// Number of descriptor slots.
    pub descriptors_total: i64,
    /// File offset of the descriptor table.
    pub descriptors_offset: i64,
    /// Size of the descriptor table in bytes.
    pub descriptors_size: i64,
    /// File offset where object data starts.
    pub data_offset: i64,
    /// Bytes of object data (from `data_offset` to the end of the last object).
    pub data_size: i64,
}

fn i64_at(b: &[u8], off: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    i64::from_le_bytes(a)
}

impl Header {
    /// Decode a header from its 128 raw bytes (no validation).
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Header {
        let mut h = Header {
            launch_script: [0; 32],
            magic: [0; 10],
            version: [0; 3],
            arch: Arch([0; 3]),
            id: [0; 16],
            created_at: i64_at(b, 64),
            modified_at: i64_at(b, 72),
            descriptors_free: i64_at(b, 80),
            descriptors_total: i64_at(b, 88),
            descriptors_offset: i64_at(b, 96),
            descriptors_size: i64_at(b, 104),
            data_offset: i64_at(b, 112),
            data_size: i64_at(b, 120),
        };
        h.launch_script.copy_from_slice(&b[0..32]);
        h.magic.copy_from_slice(&b[32..42]);
        h.version.copy_from_slice(&b[42..45]);
        h.arch.0.copy_from_slice(&b[45..48]);
        h.id.copy_from_slice(&b[48..64]);
        h
    }

    /// Encode the header into its 128 raw bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..32].copy_from_slice(&self.launch_script);
        b[32..42].copy_from_slice(&self.magic);
        b[42..45].copy_from_slice(&self.version);
        b[45..48].copy_from_slice(&self.arch.0);
        b[48..64].copy_from_slice(&self.id);
        let ints = [
            self.created_at,
            self.modified_at,
            self.descriptors_free,
            self.descriptors_total,
            self.descriptors_offset,
            self.descriptors_size,
            self.data_offset,
            self.data_size,
        ];
        for (i, v) in ints.iter().enumerate() {
            b[64 + i * 8..72 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// True if magic and version are the ones this library understands.
    pub fn magic_ok(&self) -> bool {
        self.magic == MAGIC
    }

    /// True if the version is `"01\0"`.
    pub fn version_ok(&self) -> bool {
        self.version == VERSION
    }

    /// The launch script as text, without NUL padding.
    pub fn launch_script_str(&self) -> String {
        crate::util::trim_nul(&self.launch_script)
    }

    /// The version as text (e.g. `01`), without NUL padding.
    pub fn version_str(&self) -> String {
        crate::util::trim_nul(&self.version)
    }

    /// True when the ID is nil and both times are Go's zero time (deterministic image).
    pub fn is_deterministic(&self) -> bool {
        self.id == [0; 16] && self.created_at == GO_ZERO_TIME && self.modified_at == GO_ZERO_TIME
    }
}
