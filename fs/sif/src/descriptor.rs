//! The 585-byte object descriptor.

use crate::consts::{
    Arch, DESCRIPTOR_SIZE, DataType, FormatType, FsType, GROUP_MASK, HashType, MessageType,
    PartType, SbomFormat,
};

/// One object descriptor, field for field as stored (little-endian, packed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Kind of object.
    pub data_type: DataType,
    /// Whether the slot holds an object.
    pub used: bool,
    /// Object ID (1-based).
    pub id: u32,
    /// Raw group ID: group number | 0xF0000000 (0xF0000000 = no group).
    pub group_raw: u32,
    /// Raw link: 0 = none; with the 0xF0000000 mask a group, otherwise an object ID.
    pub link_raw: u32,
    /// Absolute file offset of the object data.
    pub offset: i64,
    /// Size of the object data.
    pub size: i64,
    /// Size plus the alignment padding in front of the data.
    pub size_with_padding: i64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Modification time, Unix seconds.
    pub modified_at: i64,
    /// Deprecated owner UID.
    pub uid: i64,
    /// Deprecated owner GID.
    pub gid: i64,
    /// Name, NUL-padded.
    pub name: [u8; 128],
    /// Type-specific extra data, NUL-padded.
    pub extra: [u8; 384],
}

/// What a descriptor's link points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// No link.
    None,
    /// Linked to the object with this ID.
    Object(u32),
    /// Linked to the group with this number.
    Group(u32),
}

fn i64_at(b: &[u8], off: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    i64::from_le_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

impl Default for Descriptor {
    fn default() -> Self {
        Descriptor {
            data_type: DataType(0),
            used: false,
            id: 0,
            group_raw: 0,
            link_raw: 0,
            offset: 0,
            size: 0,
            size_with_padding: 0,
            created_at: 0,
            modified_at: 0,
            uid: 0,
            gid: 0,
            name: [0; 128],
            extra: [0; 384],
        }
    }
}

impl Descriptor {
    /// Decode a descriptor from its 585 raw bytes (no validation).
    pub fn decode(b: &[u8; DESCRIPTOR_SIZE]) -> Descriptor {
        let mut d = Descriptor {
            data_type: DataType(u32_at(b, 0) as i32),
            used: b[4] != 0,
            id: u32_at(b, 5),
            group_raw: u32_at(b, 9),
            link_raw: u32_at(b, 13),
            offset: i64_at(b, 17),
            size: i64_at(b, 25),
            size_with_padding: i64_at(b, 33),
            created_at: i64_at(b, 41),
            modified_at: i64_at(b, 49),
            uid: i64_at(b, 57),
            gid: i64_at(b, 65),
            name: [0; 128],
            extra: [0; 384],
        };
        d.name.copy_from_slice(&b[73..201]);
        d.extra.copy_from_slice(&b[201..585]);
        d
    }

    /// Encode the descriptor into its 585 raw bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut b = [0u8; DESCRIPTOR_SIZE];
        b[0..4].copy_from_slice(&self.data_type.0.to_le_bytes());
        b[4] = u8::from(self.used);
        b[5..9].copy_from_slice(&self.id.to_le_bytes());
        b[9..13].copy_from_slice(&self.group_raw.to_le_bytes());
        b[13..17].copy_from_slice(&self.link_raw.to_le_bytes());
        let ints = [
            self.offset,
            self.size,
            self.size_with_padding,
            self.created_at,
            self.modified_at,
            self.uid,
            self.gid,
        ];
        for (i, v) in ints.iter().enumerate() {
            b[17 + i * 8..25 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b[73..201].copy_from_slice(&self.name);
        b[201..585].copy_from_slice(&self.extra);
        b
    }

    /// Group number (raw value without the mask); 0 means no group.
    pub fn group_id(&self) -> u32 {
        self.group_raw & !GROUP_MASK
    }

    /// What the link points to.
    pub fn link(&self) -> Link {
        if self.link_raw == 0 {
            Link::None
        } else if self.link_raw & GROUP_MASK == GROUP_MASK {
            Link::Group(self.link_raw & !GROUP_MASK)
        } else {
            Link::Object(self.link_raw)
        }
    }

    /// The name without NUL padding (lossy UTF-8).
    pub fn name_str(&self) -> String {
        crate::util::trim_nul(&self.name)
    }

    fn extra_i32(&self, off: usize) -> i32 {
        u32_at(&self.extra, off) as i32
    }

    /// Partition fields (fs type, partition type, arch) if this is a partition.
    pub fn partition(&self) -> Option<(FsType, PartType, Arch)> {
        if self.data_type != DataType::PARTITION {
            return None;
        }
        let mut arch = [0u8; 3];
        arch.copy_from_slice(&self.extra[8..11]);
        Some((
            FsType(self.extra_i32(0)),
            PartType(self.extra_i32(4)),
            Arch(arch),
        ))
    }

    /// Set the partition fields in Extra (the rest of Extra is zeroed, as Go's setExtra does).
    pub fn set_partition(&mut self, fs: FsType, part: PartType, arch: Arch) {
        self.extra = [0; 384];
        self.extra[0..4].copy_from_slice(&fs.0.to_le_bytes());
        self.extra[4..8].copy_from_slice(&part.0.to_le_bytes());
        self.extra[8..11].copy_from_slice(&arch.0);
    }

    /// Signature fields (hash type, 20-byte entity fingerprint) if this is a signature.
    pub fn signature(&self) -> Option<(HashType, [u8; 20])> {
        if self.data_type != DataType::SIGNATURE {
            return None;
        }
        let mut e = [0u8; 20];
        e.copy_from_slice(&self.extra[4..24]);
        Some((HashType(self.extra_i32(0)), e))
    }

    /// Crypto message fields (format, message type) if this is a crypto message.
    pub fn crypto_message(&self) -> Option<(FormatType, MessageType)> {
        if self.data_type != DataType::CRYPTO_MESSAGE {
            return None;
        }
        Some((
            FormatType(self.extra_i32(0)),
            MessageType(self.extra_i32(4)),
        ))
    }

    /// SBOM format if this is an SBOM.
    pub fn sbom_format(&self) -> Option<SbomFormat> {
        if self.data_type != DataType::SBOM {
            return None;
        }
        Some(SbomFormat(self.extra_i32(0)))
    }

    /// OCI digest (`sha256:...`) if this is an OCI root index or blob.
    pub fn oci_digest(&self) -> Option<String> {
        if self.data_type != DataType::OCI_ROOT_INDEX && self.data_type != DataType::OCI_BLOB {
            return None;
        }
        Some(crate::util::trim_nul(&self.extra))
    }

    /// Offset one past the last data byte, if offset + size does not overflow.
    pub fn end(&self) -> Option<i64> {
        self.offset.checked_add(self.size)
    }
}
