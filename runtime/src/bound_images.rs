//! Images bound into the container (`-B IMG:DST:image-src=PATH[,id=N]`): each is served
//! read-only by the container's server process, on a FUSE connection of its own that the
//! runtime mounted at `session/images/N` (a bind mount then puts `PATH` of it at `DST`).
//! SquashFS and ext3, bare or as a SIF partition (`id=N`, default the primary partition).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use squashbox_fuse::{MountTarget, ServeOptions};
use squashbox_squashfs::{FsOptions, ImageOptions, SquashFs, open_image};
use squashbox_vfs::Filesystem;

use crate::ext3_layer::Ext3Image;
use crate::mount_plan::ImageBind;

/// The SquashFS magic.
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// Open bound image `b` read-only; also its name for the mount table.
pub fn open(b: &ImageBind, cache_mib: usize) -> Result<(Arc<dyn Filesystem>, String), String> {
    use std::os::unix::fs::FileExt;
    let name = b.image.display().to_string();
    let what = format!("bound image {name}");
    let file = std::fs::File::open(&b.image).map_err(|e| format!("{what}: {e}"))?;
    let len = file.metadata().map_err(|e| format!("{what}: {e}"))?.len();
    let (offset, size, fs_type) = match squashbox_sif::Sif::load(&file) {
        Ok(sif) => {
            let loc = match b.id {
                Some(id) => sif.partition_by_id(id),
                None => sif.primary_rootfs(),
            }
            .map_err(|e| format!("{what}: {e}"))?;
            (loc.offset, loc.size, Some(loc.fs_type))
        }
        Err(squashbox_sif::Error::NotSif(_)) if b.id.is_none() => (0, len, None),
        Err(squashbox_sif::Error::NotSif(_)) => {
            return Err(format!("{what}: id= needs a SIF file"));
        }
        Err(e) => return Err(format!("{what}: {e}")),
    };
    let mut head = [0u8; 4];
    let _ = file.read_exact_at(&mut head, offset);
    let mut ext3_magic = [0u8; 2];
    let _ = file.read_exact_at(&mut ext3_magic, offset + 1080);
    let is_ext3 = fs_type == Some(squashbox_sif::FsType::EXT3.0)
        || (fs_type.is_none() && ext3_magic == [0x53, 0xef]);
    if &head == SQUASHFS_MAGIC {
        let iopts = ImageOptions {
            offset: Some(offset),
            partition: None,
            cache_bytes: cache_mib.max(1).saturating_mul(1 << 20),
        };
        let (img, _) = open_image(&b.image, &iopts)?;
        let fs_opts = FsOptions {
            uid: None,
            gid: None,
            subdir: None,
            prefetch_bytes: ServeOptions::default().prefetch_bytes(img.superblock().block_size),
        };
        return Ok((Arc::new(SquashFs::new(img, &name, fs_opts)?), name));
    }
    if is_ext3 {
        let img = Ext3Image {
            path: b.image.clone(),
            offset,
            size: size.min(len.saturating_sub(offset)),
            what,
        };
        return Ok((crate::ext3_layer::open(&img, false)?, name));
    }
    Err(format!(
        "{what}: not a SquashFS or ext3 image (nor a SIF partition holding one)"
    ))
}

/// Serve `fs` on the mounted connection `fd` from threads of this process; the process's
/// first session handles signals.
pub fn spawn_server(
    fs: Arc<dyn Filesystem>,
    name: String,
    fd: OwnedFd,
    cache_mib: usize,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("squashbox-bind".into())
        .spawn(move || {
            let opts = ServeOptions {
                cache_mib,
                handle_signals: false,
                threads: Some(2),
                ..Default::default()
            };
            let opener: squashbox_fuse::Opener<'_> = Box::new(move |_| Ok((fs, name)));
            if let Err(e) =
                squashbox_fuse::serve(opener, MountTarget::Fd(fd), &opts, Box::new(|_| {}))
            {
                eprintln!("squashbox: bound image: {e}");
            }
        })
        .map(|_| ())
        .map_err(|e| format!("starting a bound image's server: {e}"))
}
