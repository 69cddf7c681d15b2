//! Opening an ext3 image for the FUSE server: where the filesystem starts (a SIF's overlay
//! partition, `-o offset=`, Apptainer's offset shim) and a flush when the process exits.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use squashbox_ext3::Ext3Fs;
use squashbox_fuse::session::{Opener, Served};
use squashbox_sif::{Sif, has_sif_magic};
use squashbox_vfs::Filesystem;

/// What to open: the image, read-only or not, and which SIF partition.
#[derive(Clone, Debug)]
pub struct Ext3Source {
    /// The image path exactly as given (Apptainer's shim matches the string passed to open64).
    pub path: PathBuf,
    /// Serve read-only.
    pub read_only: bool,
    /// The SIF partition to serve (default: the overlay partition, else an ext3 primary).
    pub partition: Option<u32>,
    /// Bytes to skip at the start of the file (`-o offset=N`), added to any partition offset.
    pub offset: u64,
    /// Take the byte-range lock Apptainer takes (write lock unless read-only) for as long as
    /// the server runs: `squashbox ext3 mount` does, so two servers never write one image and
    /// `squashbox unmount` can wait for the write-back. The fuse2fs personality does not:
    /// there Apptainer holds the lock itself.
    pub lock: bool,
}

/// The filesystem flushed by [`flush_at_exit`].
static SERVED: OnceLock<Arc<Ext3Fs>> = OnceLock::new();

/// Runs from `exit()`: the session's signal thread exits the process on SIGTERM for a
/// `/dev/fd/N` target without unmounting (so fuser never calls `destroy`); flush here.
extern "C" fn flush_at_exit() {
    if let Some(fs) = SERVED.get()
        && let Err(e) = fs.shutdown()
    {
        eprintln!("squashbox: flushing at exit: {e}");
    }
}

/// An opener for the session: the image is opened once the session has set the process up.
pub fn ext3_opener(src: Ext3Source) -> Opener<'static> {
    Box::new(move |opts| open_ext3(&src, opts.cache_mib))
}

/// Open `src` as an [`Ext3Fs`] and arrange for it to be flushed when the process exits.
pub fn open_ext3(src: &Ext3Source, cache_mib: usize) -> Result<Served, String> {
    let name = src.path.display().to_string();
    // A file the offset shim was asked to shift is a bare image at that offset: never look
    // for a SIF partition in it as well (that would apply an offset twice).
    let shim = preload_offset(&src.path);
    let (part_offset, part_size) = match shim {
        Some(_) => (0, None),
        None => partition_of(src)?,
    };
    let shim = shim.unwrap_or(0);
    let offset = part_offset
        .checked_add(src.offset)
        .and_then(|o| o.checked_add(shim))
        .ok_or_else(|| format!("{name}: offset overflows"))?;
    if src.lock {
        let len = std::fs::metadata(&src.path)
            .map_err(|e| format!("{name}: {e}"))?
            .len();
        let img = squashbox_runtime::ext3_layer::Ext3Image {
            path: src.path.clone(),
            offset,
            size: part_size.unwrap_or(len.saturating_sub(offset)),
            what: format!("image {name}"),
        };
        squashbox_runtime::ext3_layer::lock(&img, !src.read_only)?;
    }
    let cache = cache_mib.max(1).saturating_mul(1 << 20);
    let fs = Ext3Fs::open_with_cache(&src.path, offset, src.read_only, cache)
        .map_err(|e| e.to_string())?;
    if let Some(size) = part_size {
        let sb = fs.volume().sb();
        let need = sb
            .blocks_count
            .saturating_mul(u64::from(fs.volume().block_size()));
        if need > size {
            return Err(format!(
                "{name}: the ext3 filesystem ({need} bytes) is larger than its SIF partition \
                 ({size} bytes)"
            ));
        }
    }
    if let Some(r) = fs.read_only_reason() {
        eprintln!("squashbox: {name}: {r}");
    }
    let fs = Arc::new(fs);
    if fs.writable() && SERVED.set(Arc::clone(&fs)).is_ok() {
        // SAFETY: `flush_at_exit` is a plain extern "C" function with no arguments that
        // never unwinds (it only logs errors); registering it has no other precondition.
        unsafe { libc::atexit(flush_at_exit) };
    }
    Ok((fs as Arc<dyn Filesystem>, name))
}

/// The partition's offset and size when `src` is a SIF; `(0, None)` for a bare image.
fn partition_of(src: &Ext3Source) -> Result<(u64, Option<u64>), String> {
    let name = src.path.display();
    let mut head = [0u8; 64];
    let is_sif = {
        let f = File::open(&src.path).map_err(|e| format!("{name}: {e}"))?;
        std::os::unix::fs::FileExt::read_at(&f, &mut head, src.offset).is_ok_and(|n| n == 64)
            && has_sif_magic(&head)
    };
    if !is_sif {
        if src.partition.is_some() {
            return Err(format!("{name}: --partition needs a SIF file"));
        }
        return Ok((0, None));
    }
    let f = File::open(&src.path).map_err(|e| format!("{name}: {e}"))?;
    let sif = Sif::load(&f).map_err(|e| format!("{name}: {e}"))?;
    let loc = match src.partition {
        Some(id) => sif
            .partition_by_id(id)
            .map_err(|e| format!("{name}: {e}"))?,
        None => match sif.overlay_partitions().into_iter().next() {
            Some(l) => l,
            None => sif
                .primary_rootfs()
                .ok()
                .filter(|l| l.fs_type == squashbox_sif::consts::FsType::EXT3.0)
                .ok_or_else(|| {
                    format!("{name}: the SIF has no overlay partition and no ext3 primary")
                })?,
        },
    };
    if loc.fs_type != squashbox_sif::consts::FsType::EXT3.0 {
        return Err(format!("{name}: partition {} is not ext3", loc.id));
    }
    Ok((loc.offset, Some(loc.size)))
}

/// What Apptainer's offset shim asks for `source`: `None` when `OFFSETPRELOAD_FILE` and
/// `OFFSETPRELOAD_OFFSET` do not name it; else the offset we must apply ourselves: the value
/// of `OFFSETPRELOAD_OFFSET` when the shim is not loaded in this process (a static binary, or
/// one started without the `LD_PRELOAD`), and 0 when the loaded shim shifts every pread64 and
/// pwrite64 itself, so the offset is never applied twice.
pub fn preload_offset(source: &Path) -> Option<u64> {
    let file = std::env::var_os("OFFSETPRELOAD_FILE")?;
    let off = std::env::var("OFFSETPRELOAD_OFFSET").ok()?;
    if file != source.as_os_str() {
        return None;
    }
    let Ok(off) = off.trim().parse::<u64>() else {
        eprintln!("squashbox: warning: ignoring OFFSETPRELOAD_OFFSET={off:?} (not a number)");
        return None;
    };
    Some(if preload_is_loaded() { 0 } else { off })
}

/// Whether a library named in `LD_PRELOAD` is mapped into this process.
fn preload_is_loaded() -> bool {
    let Some(list) = std::env::var_os("LD_PRELOAD") else {
        return false;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let mapped: Vec<&Path> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .map(Path::new)
        .collect();
    let list = list.to_string_lossy().into_owned();
    list.split([':', ' '])
        .filter(|e| !e.is_empty())
        .any(|entry| {
            let e = Path::new(entry);
            let canon = std::fs::canonicalize(e).ok();
            mapped.iter().any(|m| {
                Some(*m) == canon.as_deref()
                    || *m == e
                    || (!entry.contains('/') && m.file_name() == e.file_name())
            })
        })
}
