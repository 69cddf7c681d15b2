//! The image argument: a SIF (its primary partition), a bare SquashFS file or a sandbox
//! directory. The architecture is checked here, before anything is mounted.

use std::path::{Path, PathBuf};

use squashbox_sif::{FsType, Sif};

use crate::writable::ImageKind;
use crate::{Result, rt_err};

/// Where the container's root filesystem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootFs {
    /// A SquashFS image starting at this byte offset of the file.
    Squashfs {
        /// Byte offset in the file.
        offset: u64,
    },
    /// An ext3 image at this offset (needs the ext3 driver).
    Ext3 {
        /// Byte offset in the file.
        offset: u64,
    },
    /// A sandbox directory.
    Dir,
}

/// An image ready to run.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// Absolute path.
    pub path: PathBuf,
    /// What it offers for the writable rules.
    pub kind: ImageKind,
    /// Where its root filesystem is.
    pub root: RootFs,
}

/// Open and check `path`: a foreign architecture is an error.
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    open(path, true)
}

/// Open `path` whatever its architecture (for reading metadata).
pub fn inspect_any_arch(path: &Path) -> Result<ImageInfo> {
    open(path, false)
}

fn open(path: &Path, check_arch: bool) -> Result<ImageInfo> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let name = abs.display().to_string();
    let meta = std::fs::metadata(&abs).map_err(|e| rt_err!("could not open image {name}: {e}"))?;
    if meta.is_dir() {
        return Ok(ImageInfo {
            path: abs,
            kind: ImageKind::Sandbox,
            root: RootFs::Dir,
        });
    }
    let file =
        std::fs::File::open(&abs).map_err(|e| rt_err!("could not open image {name}: {e}"))?;
    match Sif::load(&file) {
        Ok(sif) => {
            let loc = sif
                .primary_rootfs()
                .map_err(|e| rt_err!("could not open image {name}: {e}"))?;
            if let (true, Err(squashbox_sif::Error::ForeignArch { image, host })) =
                (check_arch, squashbox_sif::check_arch(&loc))
            {
                return Err(rt_err!(
                    "could not run image {name}: the image's architecture ({image}) cannot run \
                     on this host ({host}); use an image built for {host}"
                ));
            }
            let root = if loc.fs_type == FsType::EXT3.0 {
                RootFs::Ext3 { offset: loc.offset }
            } else {
                RootFs::Squashfs { offset: loc.offset }
            };
            let overlay_partition = sif
                .overlay_partitions()
                .into_iter()
                .find(|p| p.fs_type == FsType::EXT3.0)
                .map(|p| p.id);
            Ok(ImageInfo {
                path: abs,
                kind: ImageKind::Sif { overlay_partition },
                root,
            })
        }
        Err(squashbox_sif::Error::NotSif(_)) => {
            let mut magic = [0u8; 4];
            use std::os::unix::fs::FileExt;
            let _ = file.read_exact_at(&mut magic, 0);
            if &magic == b"hsqs" {
                return Ok(ImageInfo {
                    path: abs,
                    kind: ImageKind::Squashfs,
                    root: RootFs::Squashfs { offset: 0 },
                });
            }
            Err(rt_err!(
                "could not open image {name}: not a SIF, SquashFS image or directory"
            ))
        }
        Err(e) => Err(rt_err!("could not open image {name}: {e}")),
    }
}
