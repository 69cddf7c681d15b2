//! Opening a SquashFS image or SIF for the FUSE server: the `-o` options that belong to the
//! image (offset, partition, cache, uid/gid, subdir, prefetch) become a [`SquashFs`].

use std::path::PathBuf;
use std::sync::Arc;

use squashbox_fuse::options::ServeOptions;
use squashbox_fuse::session::{Opener, Served};
use squashbox_squashfs::{FsOptions, ImageOptions, SquashFs, open_image};
use squashbox_vfs::Filesystem;

/// Open `image` as `opts` say and wrap it as a filesystem to serve.
pub fn open_squashfs(image: &std::path::Path, opts: &ServeOptions) -> Result<Served, String> {
    let iopts = ImageOptions {
        offset: opts.offset,
        partition: opts.partition,
        cache_bytes: opts.cache_mib.max(1).saturating_mul(1 << 20),
    };
    let (img, name) = open_image(image, &iopts)?;
    let fs_opts = FsOptions {
        uid: opts.uid,
        gid: opts.gid,
        subdir: opts.subdir.clone(),
        prefetch_bytes: opts.prefetch_bytes(img.superblock().block_size),
    };
    let fs: Arc<dyn Filesystem> = Arc::new(SquashFs::new(img, &name, fs_opts)?);
    Ok((fs, name))
}

/// An opener for the session: `image` is opened once the session has set the process up.
pub fn squashfs_opener(image: PathBuf) -> Opener<'static> {
    Box::new(move |opts: &ServeOptions| open_squashfs(&image, opts))
}
