//! Selection helpers: the primary system partition, overlays, data partitions, arch check.

use crate::consts::{Arch, DataType, FsType, PartType};
use crate::descriptor::Descriptor;
use crate::image::Sif;
use crate::{Error, PartitionLocation};

impl PartitionLocation {
    /// Location of partition descriptor `d` (which must be a partition).
    pub fn of(d: &Descriptor) -> Option<PartitionLocation> {
        let (fs, part, arch) = d.partition()?;
        Some(PartitionLocation {
            id: d.id,
            offset: d.offset as u64,
            size: d.size as u64,
            fs_type: fs.0,
            part_type: part.0,
            arch,
            group: d.group_id(),
        })
    }
}

impl Sif {
    /// The primary system partition descriptor (PartType PrimSys). An error if there are
    /// none or several.
    pub fn primary_partition(&self) -> Result<&Descriptor, Error> {
        let mut prims = self.objects().filter(|d| {
            d.partition()
                .is_some_and(|(_, p, _)| p == PartType::PRIM_SYS)
        });
        let first = prims
            .next()
            .ok_or_else(|| Error::NotFound("no primary system partition".into()))?;
        if let Some(second) = prims.next() {
            return Err(Error::Invalid(format!(
                "several primary system partitions (objects {} and {})",
                first.id, second.id
            )));
        }
        Ok(first)
    }

    /// The primary system partition, required to be SquashFS or ext3 as Apptainer requires.
    pub fn primary_rootfs(&self) -> Result<PartitionLocation, Error> {
        let d = self.primary_partition()?;
        let (fs, _, _) = d.partition().expect("primary is a partition");
        if fs != FsType::SQUASH && fs != FsType::EXT3 {
            return Err(Error::Unsupported(format!(
                "primary partition (object {}) is {}, not Squashfs or Ext3",
                d.id,
                fs.name().unwrap_or("an unknown filesystem type")
            )));
        }
        Ok(PartitionLocation::of(d).expect("partition"))
    }

    /// Overlay partitions Apptainer would use: an overlay outside the primary partition's
    /// group is ignored when the primary has a group.
    pub fn overlay_partitions(&self) -> Vec<PartitionLocation> {
        let prim_group = self.primary_partition().map(|d| d.group_id()).unwrap_or(0);
        self.objects()
            .filter(|d| {
                d.partition()
                    .is_some_and(|(_, p, _)| p == PartType::OVERLAY)
            })
            .filter(|d| prim_group == 0 || d.group_id() == prim_group)
            .filter_map(PartitionLocation::of)
            .collect()
    }

    /// Data partitions (PartType Data).
    pub fn data_partitions(&self) -> Vec<PartitionLocation> {
        self.objects()
            .filter(|d| d.partition().is_some_and(|(_, p, _)| p == PartType::DATA))
            .filter_map(PartitionLocation::of)
            .collect()
    }

    /// The partition object with ID `id`; an error if it does not exist or is not a partition.
    pub fn partition_by_id(&self, id: u32) -> Result<PartitionLocation, Error> {
        let d = self.object_or_err(id)?;
        PartitionLocation::of(d).ok_or_else(|| {
            Error::NotFound(format!(
                "object {id} is {}, not a partition",
                d.data_type.name().unwrap_or("of unknown type")
            ))
        })
    }

    /// Objects of one data type, in table order.
    pub fn objects_of_type(&self, t: DataType) -> impl Iterator<Item = &Descriptor> {
        self.objects().filter(move |d| d.data_type == t)
    }
}

/// Check that an image arch can run on `host`. Unknown image arch is accepted (as Apptainer
/// does for images without one); otherwise the message reads e.g. `image is arm64, host is amd64`.
pub fn check_arch_against(image: Arch, host: Arch) -> Result<(), Error> {
    if image.is_unknown() || image.go_name() == host.go_name() {
        return Ok(());
    }
    Err(Error::ForeignArch {
        image: image.go_name().to_string(),
        host: host.go_name().to_string(),
    })
}

/// Check the arch of `loc` (a partition) against this machine.
pub fn check_arch(loc: &PartitionLocation) -> Result<(), Error> {
    check_arch_against(loc.arch, Arch::host())
}
