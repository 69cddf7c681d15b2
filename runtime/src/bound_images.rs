//! Images bound into the container (`-B IMG:DST:image-src=PATH[,id=N]`): each is served
//! read-only by the container's server process, on a FUSE connection of its own that the
//! runtime mounted at `session/images/N` (a bind mount then puts `PATH` of it at `DST`).
//! SquashFS and ext3, bare or as a SIF partition (`id=N`, default the primary partition).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use squashbox_fuse::{MountTarget, ServeOptions};
use squashbox_vfs::Filesystem;

use crate::ext3_layer;
use crate::mount_plan::ImageBind;

/// Open bound image `b` read-only; also its name for the mount table.
pub fn open(b: &ImageBind, cache_mib: usize) -> Result<(Arc<dyn Filesystem>, String), String> {
    let name = b.image.display().to_string();
    let what = format!("bound image {name}");
    if let Some(mut img) =
        ext3_layer::detect(&b.image, b.id, false).map_err(|e| format!("{what}: {e}"))?
    {
        img.what = what;
        return Ok((ext3_layer::open(&img, false)?, name));
    }
    let fs = crate::server::open_squashfs(&b.image, None, b.id, cache_mib).map_err(|e| {
        format!("{what}: not a SquashFS or ext3 image (nor a SIF partition holding one): {e}")
    })?;
    Ok((fs, name))
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
