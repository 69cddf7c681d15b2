//! Reader and writer for the Singularity Image Format (SIF), exactly as Apptainer lays it out.
//!
//! - [`Sif::load`] reads and validates the 128-byte header and the 585-byte descriptors,
//!   trusting the offsets written in the file only after checking them.
//! - [`locate_partition`] finds the primary (or a chosen) partition for the mount paths.
//! - The writer ([`create`], [`add_object`], [`delete_object`], [`set_primary`]) edits images
//!   the way the Go library does, byte for byte.
//! - Selection helpers on [`Sif`] (primary root filesystem, overlays in the primary's group,
//!   data partitions), [`check_arch`] and [`probe_filesystem`] follow Apptainer's rules.
//! - [`siftool`] renders `siftool header|list|info` output byte for byte.
#![warn(missing_docs)]

pub mod consts;
pub mod descriptor;
pub mod display;
pub mod header;
pub mod image;
pub mod probe;
pub mod select;
pub mod siftool;
pub mod util;
pub mod write;

use std::fs::File;

pub use consts::*;
pub use descriptor::{Descriptor, Link};
pub use header::Header;
pub use image::{Sif, has_sif_magic};
pub use probe::{ProbedFs, probe_filesystem};
pub use select::{check_arch, check_arch_against};
pub use write::{
    CreateOptions, DeleteOptions, EditOptions, Metadata, ObjectData, ObjectInput, add_object,
    create, delete_object, set_primary,
};

/// Errors reading or writing a SIF.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a valid SIF; the message says what and where.
    #[error("invalid SIF: {0}")]
    Invalid(String),
    /// The file is not a SIF at all (no magic); the message says why.
    #[error("not a SIF: {0}")]
    NotSif(String),
    /// A requested object or partition does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The image is valid but uses something we do not support here.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A write request was rejected before the file was touched.
    #[error("{0}")]
    Rejected(String),
    /// The image's architecture differs from the host's.
    #[error("image is {image}, host is {host}")]
    ForeignArch {
        /// Go arch name of the image.
        image: String,
        /// Go arch name of the host.
        host: String,
    },
}

/// Where a filesystem partition lives inside a SIF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLocation {
    /// Descriptor ID.
    pub id: u32,
    /// Absolute byte offset of the partition data in the file.
    pub offset: u64,
    /// Size of the partition data in bytes.
    pub size: u64,
    /// Raw filesystem type (1 SquashFS, 2 Ext3, ...).
    pub fs_type: i32,
    /// Raw partition type (2 primary system, 4 overlay, ...).
    pub part_type: i32,
    /// Partition architecture code (see [`Arch::go_name`]).
    pub arch: Arch,
    /// Group number of the partition (0 = none).
    pub group: u32,
}

/// If `file` is a SIF, find a partition: the primary system partition when `id` is `None`,
/// otherwise the partition object with that descriptor ID. `Ok(None)` if `file` is not a SIF.
///
/// The primary partition must be SquashFS or ext3. A foreign-arch partition is still
/// returned (mounting works); use [`check_arch`] before running anything from it.
pub fn locate_partition(file: &File, id: Option<u32>) -> Result<Option<PartitionLocation>, Error> {
    let sif = match Sif::load(file) {
        Ok(s) => s,
        Err(Error::NotSif(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    match id {
        None => sif.primary_rootfs().map(Some),
        Some(id) => sif.partition_by_id(id).map(Some),
    }
}
