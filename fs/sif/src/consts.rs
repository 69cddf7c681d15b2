//! Numeric constants of the SIF format and their siftool display names.

/// Size of the global header in bytes.
pub const HEADER_SIZE: usize = 128;
/// Size of one object descriptor in bytes.
pub const DESCRIPTOR_SIZE: usize = 585;
/// The header magic, `SIF_MAGIC` followed by a NUL.
pub const MAGIC: [u8; 10] = *b"SIF_MAGIC\0";
/// The only spec version the format knows, `"01\0"`.
pub const VERSION: [u8; 3] = *b"01\0";
/// Go's zero time `time.Time{}.Unix()`, stored by deterministic images.
pub const GO_ZERO_TIME: i64 = -62_135_596_800;
/// Mask set on every raw group ID, and on a link that points to a group.
pub const GROUP_MASK: u32 = 0xF000_0000;
/// Default descriptor capacity of a new image.
pub const DEFAULT_DESCRIPTORS: i64 = 48;
/// Default offset of the descriptor table in a new image.
pub const DEFAULT_DESCRIPTORS_OFFSET: i64 = 4096;
/// Default alignment of data partitions.
pub const PARTITION_ALIGNMENT: u64 = 4096;

/// Kind of a data object (descriptor field DataType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataType(pub i32);

impl DataType {
    /// Definition file.
    pub const DEFFILE: DataType = DataType(0x4001);
    /// Environment variables.
    pub const ENV_VAR: DataType = DataType(0x4002);
    /// JSON labels.
    pub const LABELS: DataType = DataType(0x4003);
    /// Filesystem partition.
    pub const PARTITION: DataType = DataType(0x4004);
    /// Signature.
    pub const SIGNATURE: DataType = DataType(0x4005);
    /// Generic JSON.
    pub const GENERIC_JSON: DataType = DataType(0x4006);
    /// Generic raw data.
    pub const GENERIC: DataType = DataType(0x4007);
    /// Cryptographic message.
    pub const CRYPTO_MESSAGE: DataType = DataType(0x4008);
    /// Software bill of materials.
    pub const SBOM: DataType = DataType(0x4009);
    /// OCI root index.
    pub const OCI_ROOT_INDEX: DataType = DataType(0x400a);
    /// OCI blob.
    pub const OCI_BLOB: DataType = DataType(0x400b);

    /// siftool's display string, or `None` for an unknown value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x4001 => "Def.FILE",
            0x4002 => "Env.Vars",
            0x4003 => "JSON.Labels",
            0x4004 => "FS",
            0x4005 => "Signature",
            0x4006 => "JSON.Generic",
            0x4007 => "Generic/Raw",
            0x4008 => "Cryptographic Message",
            0x4009 => "SBOM",
            0x400a => "OCI.RootIndex",
            0x400b => "OCI.Blob",
            _ => return None,
        })
    }
}

/// Filesystem type of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FsType(pub i32);

impl FsType {
    /// SquashFS.
    pub const SQUASH: FsType = FsType(1);
    /// ext3.
    pub const EXT3: FsType = FsType(2);
    /// Immutable object archive.
    pub const IMMU_OBJ: FsType = FsType(3);
    /// Raw data.
    pub const RAW: FsType = FsType(4);
    /// dm-crypt encrypted SquashFS.
    pub const ENCRYPTED_SQUASHFS: FsType = FsType(5);
    /// gocryptfs encrypted SquashFS.
    pub const GOCRYPTFS_SQUASHFS: FsType = FsType(6);

    /// siftool's display string, or `None` for an unknown value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "Squashfs",
            2 => "Ext3",
            3 => "Archive",
            4 => "Raw",
            5 => "Encrypted squashfs",
            6 => "Gocryptfs squashfs",
            _ => return None,
        })
    }
}

/// Partition type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartType(pub i32);

impl PartType {
    /// A system partition.
    pub const SYSTEM: PartType = PartType(1);
    /// The primary system partition (the container root filesystem).
    pub const PRIM_SYS: PartType = PartType(2);
    /// A data partition.
    pub const DATA: PartType = PartType(3);
    /// An overlay partition.
    pub const OVERLAY: PartType = PartType(4);

    /// siftool's display string, or `None` for an unknown value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "System",
            2 => "*System",
            3 => "Data",
            4 => "Overlay",
            _ => return None,
        })
    }
}

/// Hash type of a signature object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashType(pub i32);

impl HashType {
    /// SHA-256.
    pub const SHA256: HashType = HashType(1);
    /// SHA-384.
    pub const SHA384: HashType = HashType(2);
    /// SHA-512.
    pub const SHA512: HashType = HashType(3);
    /// BLAKE2s-256.
    pub const BLAKE2S_256: HashType = HashType(4);
    /// BLAKE2b-256.
    pub const BLAKE2B_256: HashType = HashType(5);

    /// siftool's display string, or `None` for an unknown value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "SHA-256",
            2 => "SHA-384",
            3 => "SHA-512",
            4 => "BLAKE2s-256",
            5 => "BLAKE2b-256",
            _ => return None,
        })
    }
}

/// Format of a cryptographic message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormatType(pub i32);

impl FormatType {
    /// OpenPGP.
    pub const OPENPGP: FormatType = FormatType(1);
    /// PEM.
    pub const PEM: FormatType = FormatType(2);

    /// siftool's display string, or `None` for an unknown value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "OpenPGP",
            2 => "PEM",
            _ => return None,
        })
    }
}

/// Type of a cryptographic message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType(pub i32);

impl MessageType {
    /// Clear signature.
    pub const CLEAR_SIGNATURE: MessageType = MessageType(0x100);
    /// RSA-OAEP.
    pub const RSA_OAEP: MessageType = MessageType(0x200);

    /// siftool's display string, or `None` for an unknown value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x100 => "Clear Signature",
            0x200 => "RSA-OAEP",
            _ => return None,
        })
    }
}

/// Format of an SBOM object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SbomFormat(pub i32);

impl SbomFormat {
    /// All known formats with their names, in value order.
    pub const ALL: [(i32, &'static str); 8] = [
        (1, "cyclonedx-json"),
        (2, "cyclonedx-xml"),
        (3, "github-json"),
        (4, "spdx-json"),
        (5, "spdx-rdf"),
        (6, "spdx-tag-value"),
        (7, "spdx-yaml"),
        (8, "syft-json"),
    ];

    /// The format's name, or `None` for an unknown value.
    pub fn name(self) -> Option<&'static str> {
        Self::ALL
            .iter()
            .find(|(v, _)| *v == self.0)
            .map(|(_, n)| *n)
    }

    /// Parse a format name such as `cyclonedx-json`.
    pub fn from_name(name: &str) -> Option<SbomFormat> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(v, _)| SbomFormat(*v))
    }
}

/// Architecture code as stored in the header and partition descriptors (`"NN\0"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch(pub [u8; 3]);

/// Known arch codes and their Go names, in code order (index = numeric code).
const ARCHES: [&str; 14] = [
    "unknown", "386", "amd64", "arm", "arm64", "ppc64", "ppc64le", "mips", "mipsle", "mips64",
    "mips64le", "s390x", "riscv64", "loong64",
];

impl Arch {
    /// Unknown / no primary partition.
    pub const UNKNOWN: Arch = Arch(*b"00\0");

    /// The arch with numeric code `code` (e.g. 2 for amd64), if it is known.
    pub fn from_code(code: u32) -> Option<Arch> {
        if (code as usize) < ARCHES.len() {
            let s = format!("{code:02}");
            let b = s.as_bytes();
            Some(Arch([b[0], b[1], 0]))
        } else {
            None
        }
    }

    /// The arch named like Go's GOARCH (`amd64`, `arm64`, ...).
    pub fn from_go_name(name: &str) -> Option<Arch> {
        ARCHES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| Arch::from_code(i as u32))
    }

    /// Numeric code, if the three bytes are two ASCII digits and a NUL.
    pub fn code(self) -> Option<u32> {
        let [a, b, c] = self.0;
        if c == 0 && a.is_ascii_digit() && b.is_ascii_digit() {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        } else {
            None
        }
    }

    /// Go arch name (`amd64`), or `unknown` for code 00 and any unrecognised code.
    pub fn go_name(self) -> &'static str {
        self.code()
            .and_then(|c| ARCHES.get(c as usize).copied())
            .unwrap_or("unknown")
    }

    /// True for code 00 or an unrecognised code.
    pub fn is_unknown(self) -> bool {
        self.go_name() == "unknown"
    }

    /// The arch of the machine this program was compiled for.
    pub fn host() -> Arch {
        let go = match std::env::consts::ARCH {
            "x86" => "386",
            "x86_64" => "amd64",
            "arm" => "arm",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "mips" => "mips",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "mips64" => "mips64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "loongarch64" => "loong64",
            _ => "unknown",
        };
        Arch::from_go_name(go).unwrap_or(Arch::UNKNOWN)
    }
}
