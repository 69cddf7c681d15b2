//! Opening an image argument: bare SquashFS or a SIF (primary partition, or one picked by ID).

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use squashbox_squashfs::{Image, OpenOptions};

/// SquashFS fs type code in a SIF partition descriptor.
const SIF_FS_SQUASHFS: i32 = 1;

/// The image arguments every `squashbox squashfs` subcommand takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ImageArgs {
    /// SquashFS image, or SIF file (its primary system partition is used).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Byte offset of the SquashFS image inside IMAGE (skips SIF detection).
    #[arg(long, value_name = "N", conflicts_with = "partition")]
    pub offset: Option<u64>,
    /// For a SIF: use the partition with this descriptor ID instead of the primary one.
    #[arg(long, value_name = "ID")]
    pub partition: Option<u32>,
}

/// An opened image and where it was found.
pub struct Opened {
    /// The reader.
    pub image: Image,
    /// The file name, for messages.
    pub name: String,
    /// Byte offset of the SquashFS image inside the file.
    pub offset: u64,
}

impl ImageArgs {
    /// The SquashFS offset inside the file: `--offset`, the SIF partition, or 0.
    pub fn locate(&self, file: &File) -> Result<u64> {
        let name = self.image.display();
        if let Some(off) = self.offset {
            return Ok(off);
        }
        let loc = squashbox_sif::locate_partition(file, self.partition)
            .with_context(|| format!("{name}: locating the SquashFS partition"))?;
        match (loc, self.partition) {
            (Some(loc), _) => {
                if loc.fs_type != SIF_FS_SQUASHFS {
                    bail!(
                        "{name}: SIF partition {} is not SquashFS (fs type {})",
                        loc.id,
                        loc.fs_type
                    );
                }
                Ok(loc.offset)
            }
            (None, Some(id)) => bail!("{name}: --partition {id}: not a SIF file"),
            (None, None) => Ok(0),
        }
    }

    /// Open the image with `opts` (its `offset` is replaced by the located one).
    pub fn open_with(&self, opts: &OpenOptions) -> Result<Opened> {
        let name = self.image.display().to_string();
        let file = File::open(&self.image).with_context(|| format!("{name}: cannot open"))?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            bail!("{name}: is a directory, not an image");
        }
        let offset = self.locate(&file)?;
        let opts = OpenOptions {
            offset,
            ..opts.clone()
        };
        let image = Image::from_file(file, &name, &opts)?;
        Ok(Opened {
            image,
            name,
            offset,
        })
    }

    /// Open the image with default cache sizes.
    pub fn open(&self) -> Result<Opened> {
        self.open_with(&OpenOptions::default())
    }
}
