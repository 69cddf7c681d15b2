//! The container root's FUSE server: one server per run, in a process of its own (forked
//! before any thread exists), serving an already-mounted `/dev/fuse` fd.
//!
//! The root it serves is one in-process stack: the image, read-only `--overlay` layers, a
//! skeleton layer with the bind destinations the image lacks, and the writable upper if any.
//! Never FUSE on FUSE. The server's lifetime is the mount's: it ends when the last mount of
//! the root goes away (the container's mount namespace dies), so a later change can let
//! several containers share one server by changing who starts it.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use squashbox_fuse::{MountTarget, ServeOptions, Served};
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::{LowerLayer, Overlay, UpperLayer};
use squashbox_squashfs::{FsOptions, ImageOptions, SquashFs, open_image};
use squashbox_vfs::{FileType, Filesystem, NodeId, ROOT_ID, Request};

use crate::ext3_layer::Ext3Image;
use crate::image::RootFs;
use crate::mount_plan::Kind;
use crate::writable::{OverlayKind, Upper};

/// A read-only layer above the image.
#[derive(Debug, Clone)]
pub enum Lower {
    /// A host directory (`--overlay DIR:ro`; its `upper/` when it has one).
    Dir(PathBuf),
    /// A SquashFS image file.
    Squashfs(PathBuf),
    /// An ext3 overlay image or a SIF's overlay partition, read-only (its `upper/`).
    Ext3(Ext3Image),
}

/// The writable upper, as the server opens it.
#[derive(Debug, Clone)]
pub enum UpperDir {
    /// A host directory holding `upper/` and `work/` (created if missing).
    Dir(PathBuf),
    /// An ext3 image (or a SIF's overlay partition) holding `upper/` and `work/` (created
    /// if missing).
    Ext3(Ext3Image),
    /// The sandbox directory image itself (`-w` on a sandbox): served read-write as the
    /// whole root, with missing bind destinations made in it.
    Sandbox,
}

/// Everything the server needs to open the root.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The image file or sandbox directory.
    pub image: PathBuf,
    /// Where the root filesystem is in it.
    pub root: RootFs,
    /// Read-only layers above the image, top first.
    pub lowers: Vec<Lower>,
    /// The skeleton directory (on the session tmpfs).
    pub skeleton_dir: PathBuf,
    /// Destinations the container needs; the missing ones go into the skeleton.
    pub needed: Vec<(PathBuf, Kind)>,
    /// The writable upper.
    pub upper: Option<UpperDir>,
    /// Images bound in, each served on its own connection (see [`crate::bound_images`]).
    pub image_binds: Vec<crate::mount_plan::ImageBind>,
    /// Block cache size in MiB.
    pub cache_mib: usize,
}

impl ServerSpec {
    /// Whether the server opens an ext3 image (which it must flush and unlock at the end).
    pub fn holds_ext3(&self) -> bool {
        matches!(self.root, RootFs::Ext3 { .. })
            || matches!(self.upper, Some(UpperDir::Ext3(_)))
            || self.lowers.iter().any(|l| matches!(l, Lower::Ext3(_)))
    }
}

/// Translate the writable plan's lowers into server lowers, top first: the `--overlay`
/// ones, then the SIF's overlay partition (`sif_lower`, a descriptor ID of `image`).
pub fn lowers_of(
    l: &[crate::writable::Overlay],
    image: &Path,
    sif_lower: Option<u32>,
) -> Result<Vec<Lower>, String> {
    let mut out = l
        .iter()
        .map(|o| match o.kind {
            OverlayKind::Dir => {
                let up = o.path.join("upper");
                Ok(Lower::Dir(if up.is_dir() { up } else { o.path.clone() }))
            }
            OverlayKind::Squashfs => Ok(Lower::Squashfs(o.path.clone())),
            OverlayKind::Ext3 => Ok(Lower::Ext3(Ext3Image::file(&o.path)?)),
        })
        .collect::<Result<Vec<_>, String>>()?;
    if let Some(id) = sif_lower {
        out.push(Lower::Ext3(Ext3Image::sif_partition(image, id)?));
    }
    Ok(out)
}

/// The upper directory for `upper` (the session's for `--writable-tmpfs`).
pub fn upper_of(upper: &Upper, session: &Path, image: &Path) -> Result<Option<UpperDir>, String> {
    match upper {
        Upper::None => Ok(None),
        Upper::Tmpfs => Ok(Some(UpperDir::Dir(session.join("tmpfs")))),
        Upper::Overlay(o) if o.kind == OverlayKind::Dir => Ok(Some(UpperDir::Dir(o.path.clone()))),
        Upper::Overlay(o) => Ok(Some(UpperDir::Ext3(Ext3Image::file(&o.path)?))),
        Upper::SifPartition(id) => Ok(Some(UpperDir::Ext3(Ext3Image::sif_partition(image, *id)?))),
        Upper::Sandbox => Ok(Some(UpperDir::Sandbox)),
    }
}

/// A SquashFS image as a filesystem: at `offset` in the file, or (with no offset) a bare
/// image or SIF partition `partition` (default: the primary), as `open_image` finds it.
pub(crate) fn open_squashfs(
    path: &Path,
    offset: Option<u64>,
    partition: Option<u32>,
    cache_mib: usize,
) -> Result<Arc<dyn Filesystem>, String> {
    let opts = ServeOptions::default();
    let iopts = ImageOptions {
        offset,
        partition,
        cache_bytes: cache_mib.max(1).saturating_mul(1 << 20),
    };
    let (img, name) = open_image(path, &iopts)?;
    let fs_opts = FsOptions {
        uid: None,
        gid: None,
        subdir: None,
        prefetch_bytes: opts.prefetch_bytes(img.superblock().block_size),
    };
    Ok(Arc::new(SquashFs::new(img, &name, fs_opts)?))
}

fn read_only_dir(path: &Path) -> Result<Arc<dyn Filesystem>, String> {
    let opts = HostDirOptions {
        read_only: true,
        ..Default::default()
    };
    Ok(Arc::new(HostDir::open(path, opts)?))
}

/// Whether `path` (absolute) resolves to something of `kind` in `fs` without following
/// symlinks; a symlink on the way counts as present (the kernel follows it).
fn present(fs: &dyn Filesystem, path: &Path, kind: Kind) -> bool {
    let req = Request::root();
    let mut node: NodeId = ROOT_ID;
    let comps: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    for (i, name) in comps.iter().enumerate() {
        let Ok(Some(e)) = fs.lookup(&req, node, name) else {
            return false;
        };
        let last = i + 1 == comps.len();
        match e.attr.kind {
            FileType::Symlink => return true,
            FileType::Directory => node = e.node,
            _ if last => return kind == Kind::File,
            _ => return false,
        }
        if last {
            return kind == Kind::Dir;
        }
    }
    true
}

/// Put what `needed` lacks in `fs` into the skeleton directory.
fn fill_skeleton(
    fs: &dyn Filesystem,
    dir: &Path,
    needed: &[(PathBuf, Kind)],
) -> Result<(), String> {
    for (p, kind) in needed {
        if present(fs, p, *kind) {
            continue;
        }
        let at = crate::mount_plan::in_root(dir, p);
        let err = |e: std::io::Error| format!("skeleton {}: {e}", at.display());
        match kind {
            Kind::Dir => std::fs::create_dir_all(&at).map_err(err)?,
            Kind::File => {
                if let Some(parent) = at.parent() {
                    std::fs::create_dir_all(parent).map_err(err)?;
                }
                std::fs::write(&at, b"").map_err(err)?;
            }
        }
    }
    Ok(())
}

/// Open the root the container sees. Runs in the server process before its threads start.
pub fn open_root(spec: &ServerSpec) -> Result<Served, String> {
    if let (Some(UpperDir::Sandbox), RootFs::Dir) = (&spec.upper, spec.root) {
        return open_writable_sandbox(spec);
    }
    let image: Arc<dyn Filesystem> = match spec.root {
        RootFs::Squashfs { offset } => {
            open_squashfs(&spec.image, Some(offset), None, spec.cache_mib)?
        }
        RootFs::Dir => read_only_dir(&spec.image)?,
        RootFs::Ext3 { offset } => {
            let len = std::fs::metadata(&spec.image)
                .map_err(|e| format!("{}: {e}", spec.image.display()))?
                .len();
            let img = Ext3Image {
                path: spec.image.clone(),
                offset,
                size: len.saturating_sub(offset),
                what: format!("image {}", spec.image.display()),
            };
            crate::ext3_layer::open(&img, false)?
        }
    };
    fill_skeleton(&*image, &spec.skeleton_dir, &spec.needed)?;
    let whole = |fs: Arc<dyn Filesystem>| LowerLayer {
        fs,
        dir: String::new(),
    };
    let mut layers: Vec<LowerLayer> = Vec::new();
    for l in &spec.lowers {
        layers.push(match l {
            Lower::Dir(d) => whole(read_only_dir(d)?),
            Lower::Squashfs(p) => whole(open_squashfs(p, Some(0), None, spec.cache_mib)?),
            Lower::Ext3(img) => {
                let fs = crate::ext3_layer::open(img, false)?;
                let dir = crate::ext3_layer::lower_dir(&*fs);
                LowerLayer { fs, dir }
            }
        });
    }
    // Filled above and never changed again: declared immutable, so a read-only root
    // stays as cacheable as the image itself.
    let skeleton = HostDir::open(
        &spec.skeleton_dir,
        HostDirOptions {
            read_only: true,
            ttl: std::time::Duration::from_secs(365 * 86400),
            ..Default::default()
        },
    )?;
    layers.push(whole(Arc::new(crate::frozen::Frozen(Arc::new(skeleton)))));
    layers.push(whole(image));
    let upper = match &spec.upper {
        None => None,
        Some(UpperDir::Sandbox) => {
            return Err(format!(
                "{}: only a sandbox directory can be writable with --writable",
                spec.image.display()
            ));
        }
        Some(UpperDir::Dir(d)) => {
            for sub in ["upper", "work"] {
                std::fs::create_dir_all(d.join(sub))
                    .map_err(|e| format!("{}: {e}", d.join(sub).display()))?;
            }
            Some(UpperLayer {
                fs: Arc::new(HostDir::open(d, HostDirOptions::default())?),
                upper: "upper".into(),
                work: "work".into(),
            })
        }
        Some(UpperDir::Ext3(img)) => Some(UpperLayer {
            fs: crate::ext3_layer::open(img, true)?,
            upper: "upper".into(),
            work: "work".into(),
        }),
    };
    let name = spec
        .image
        .file_name()
        .map_or("image".into(), |n| n.to_string_lossy().into_owned());
    let overlay = Overlay::with_lowers(layers, upper)?;
    Ok((Arc::new(overlay), name))
}

/// A sandbox directory served read-write as the whole root: no overlay, no skeleton layer;
/// bind destinations it lacks are made in it (as Apptainer does for a writable sandbox).
fn open_writable_sandbox(spec: &ServerSpec) -> Result<Served, String> {
    let fs = HostDir::open(&spec.image, HostDirOptions::default())?;
    for (p, kind) in &spec.needed {
        if present(&fs, p, *kind) {
            continue;
        }
        let at = crate::mount_plan::in_root(&spec.image, p);
        // Best effort: a destination that cannot be made fails its bind later, with a
        // message naming it.
        let _ = match kind {
            Kind::Dir => std::fs::create_dir_all(&at),
            Kind::File => at
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&at, b"")),
        };
    }
    let name = spec
        .image
        .file_name()
        .map_or("sandbox".into(), |n| n.to_string_lossy().into_owned());
    Ok((Arc::new(fs), name))
}

/// Serve `spec` on the mounted FUSE connection `fd` until the mount goes away, and each
/// bound image on its fd of `bind_fds`. `ready` is called once with the outcome of opening
/// them all. Call in a process with no other thread.
pub fn serve(
    spec: &ServerSpec,
    fd: OwnedFd,
    bind_fds: Vec<OwnedFd>,
    ready: squashbox_fuse::Readiness<'_>,
) -> Result<(), String> {
    let opts = ServeOptions {
        cache_mib: spec.cache_mib,
        ..Default::default()
    };
    let opener: squashbox_fuse::Opener<'_> = Box::new(move |_o: &ServeOptions| {
        let root = open_root(spec)?;
        let mut bound = Vec::new();
        for b in &spec.image_binds {
            bound.push(crate::bound_images::open(b, spec.cache_mib)?);
        }
        for ((fs, name), fd) in bound.into_iter().zip(bind_fds) {
            crate::bound_images::spawn_server(fs, name, fd, spec.cache_mib)?;
        }
        Ok(root)
    });
    squashbox_fuse::serve(opener, MountTarget::Fd(fd), &opts, ready)
}
