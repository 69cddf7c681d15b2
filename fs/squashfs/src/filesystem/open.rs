//! Opening an image to serve: a bare SquashFS file, one at an offset, or a SIF's SquashFS
//! partition (the primary system partition, or one chosen by id).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::{Image, OpenOptions};

/// Where the SquashFS lies in the file, and how much to cache.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// The SquashFS starts this many bytes into the file (skips SIF detection).
    pub offset: Option<u64>,
    /// Serve this SIF partition instead of the primary system partition.
    pub partition: Option<u32>,
    /// Bytes of decompressed blocks to cache, metadata included (at least 1 MiB is used).
    pub cache_bytes: usize,
}

/// Open the image at `path` (may be `/proc/self/fd/N`): find the SquashFS partition of a SIF
/// (or take `offset`), and open the reader. Returns the image and its display name; errors
/// are one line naming the file.
pub fn open_image(path: &Path, opts: &ImageOptions) -> Result<(Arc<Image>, String), String> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let offset = match opts.offset {
        Some(off) => off,
        None => match squashbox_sif::locate_partition(&file, opts.partition) {
            Ok(Some(loc)) => {
                if loc.fs_type != 1 {
                    return Err(format!(
                        "{name}: partition {} is not SquashFS (fs type {})",
                        loc.id, loc.fs_type
                    ));
                }
                loc.offset
            }
            Ok(None) if opts.partition.is_some() => {
                return Err(format!(
                    "{name}: --partition given but the file is not a SIF"
                ));
            }
            Ok(None) => 0,
            Err(e) => return Err(format!("{name}: {e}")),
        },
    };
    let cache = opts.cache_bytes.max(1 << 20);
    let metadata = (cache / 4).min(8 << 20);
    let ropts = OpenOptions {
        offset,
        cache_bytes: cache - metadata,
        metadata_cache_bytes: metadata,
    };
    let image = Image::from_file(file, &name, &ropts).map_err(|e| e.to_string())?;
    Ok((Arc::new(image), name))
}
