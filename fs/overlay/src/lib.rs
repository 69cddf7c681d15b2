//! An overlay of squashbox filesystems, stacked in-process.
//!
//! Lowers are any read-only [`Filesystem`]s (SquashFS images, host directories, later ext3),
//! top first. The semantics are those of the kernel's overlayfs with `redirect_dir=off`,
//! `index=off`, `metacopy=off`, plus the conventions of fuse-overlayfs:
//! - lookup goes top-down and stops at a whiteout, a non-directory or an opaque directory;
//! - whiteouts are character devices 0/0 or `.wh.NAME` files; a directory is opaque when
//!   `trusted.overlay.opaque`, `user.overlay.opaque` or `user.fuseoverlayfs.opaque` is `y`
//!   or it holds `.wh..wh..opq`; both forms are honoured in every layer, and names starting
//!   with `.wh.` are never shown;
//! - a merged directory lists every layer's entries once, the topmost winning, whiteouts
//!   and what they hide left out; it reports `st_nlink` 1 (as the kernel does);
//! - inode numbers carry the layer in their high bits ([`ids`]);
//! - reads go straight to the owning layer, answered by its [`squashbox_vfs::ReadReply`];
//! - the overlay's own xattr namespaces are hidden;
//! - statfs reports the topmost layer (the upper, once there is one).
//!
//! A layer's ENOSYS never reaches the caller as the overlay's answer (the kernel would
//! remember it for the whole mount).
//!
//! With an upper layer ([`UpperLayer`]) the overlay is writable ([`upper`], `modify`):
//! changes go to the upper directory, copying a lower object up first (data, mode, owner
//! where it may be set, times, xattrs and missing parents, built in the work directory and
//! renamed into place); removing a lower name leaves a whiteout (a 0/0 device, or a
//! `.wh.NAME` file where mknod is refused); a directory made over a whiteout is opaque
//! (`trusted.overlay.opaque` as root, `user.overlay.opaque` otherwise); renaming a merged or
//! lower directory is EXDEV. Without one it is read-only.
//!
//! [`idmap::IdMapped`] shows any filesystem (the overlay) with owners mapped or squashed and
//! directories' link counts fixed, as fuse-overlayfs's options of those names do.
//!
//! Limits, as they stand: changes are serialised by one lock (lookups, reads and writes of
//! data are not); copy-up streams data through the layers' read and write (no
//! `copy_file_range` across two filesystems); a lower file removed while open can no longer
//! be changed (ESTALE: copying it up would bring its name back); names starting with `.wh.`
//! cannot be created (EINVAL); symlinks and special files keep their inode number across
//! copy-up within a mount but not across remounts (the attribute that records it is written
//! on files and directories only: `user.*` attributes cannot go on symlinks).

#![warn(missing_docs)]

mod dir;
mod filesystem;
mod handles;
pub mod idmap;
pub mod ids;
pub mod layer;
mod lookup;
pub mod misses;
mod modify;
pub mod nodes;
pub mod upper;

use std::sync::Arc;

use std::ffi::OsStr;

use parking_lot::Mutex;
use squashbox_vfs::{Errno, FaultLog, Filesystem, NodeId, ROOT_ID, Request};

use crate::handles::HandleTable;
use crate::ids::{Ids, MAX_LAYERS};
use crate::layer::Layer;
use crate::nodes::{Node, NodeTable, Part};

/// A writable upper layer: directories `upper` and `work` (paths from the root, `/`
/// separated) inside a writable filesystem.
pub struct UpperLayer {
    /// The filesystem holding both directories.
    pub fs: Arc<dyn Filesystem>,
    /// The upper directory.
    pub upper: String,
    /// The work directory (same filesystem).
    pub work: String,
}

/// A read-only layer: a filesystem and the directory in it that the layer shows (`""` for
/// its root; `"upper"` for an overlay image's upper directory used read-only).
pub struct LowerLayer {
    /// The filesystem.
    pub fs: Arc<dyn Filesystem>,
    /// The directory shown as the layer's root (`/` separated, from the root).
    pub dir: String,
}

/// Nodes the kernel forgot that stay known (so late requests still find them).
const KEEP_FORGOTTEN: usize = 4096;

/// What the overlay knows about its upper layer (always `layers[0]`).
struct UpperInfo {
    /// The work directory's node in the upper filesystem.
    work: NodeId,
    /// `trusted.overlay.` as root, `user.overlay.` otherwise: where the opaque marker and
    /// the overlay's own attributes are written.
    xattr_ns: &'static str,
}

/// Layers stacked into one filesystem.
pub struct Overlay {
    layers: Vec<Layer>,
    upper: Option<UpperInfo>,
    /// Held by every operation that changes names or copies up.
    change: Mutex<()>,
    /// Recent lookup misses in upper-only directories, and the change generation.
    misses: misses::MissCache,
    nodes: NodeTable,
    ids: Ids,
    handles: HandleTable,
    faults: FaultLog,
    all_immutable: bool,
}

impl Overlay {
    /// Stack `lowers` (top first) under `upper`. Fails with a message when there is no
    /// layer or too many, or the upper or work directory cannot be found.
    pub fn new(
        lowers: Vec<Arc<dyn Filesystem>>,
        upper: Option<UpperLayer>,
    ) -> std::result::Result<Overlay, String> {
        let lowers = lowers
            .into_iter()
            .map(|fs| LowerLayer {
                fs,
                dir: String::new(),
            })
            .collect();
        Overlay::with_lowers(lowers, upper)
    }

    /// [`Overlay::new`] with lowers whose root is a directory inside their filesystem.
    /// Fails with a message when such a directory cannot be found.
    pub fn with_lowers(
        lowers: Vec<LowerLayer>,
        upper: Option<UpperLayer>,
    ) -> std::result::Result<Overlay, String> {
        if lowers.is_empty() && upper.is_none() {
            return Err("overlay: no layers".into());
        }
        if lowers.len() + 1 >= MAX_LAYERS {
            return Err(format!(
                "overlay: {} layers, at most {} are supported",
                lowers.len(),
                MAX_LAYERS - 2
            ));
        }
        let all_immutable = upper.is_none()
            && lowers.iter().all(|l| {
                let p = l.fs.policy();
                p.read_only && p.negative_ttl == std::time::Duration::MAX
            });
        let mut layers = Vec::new();
        let mut info = None;
        if let Some(u) = upper {
            let req = Request::root();
            let root = upper::find_dir(&*u.fs, &req, &u.upper)
                .map_err(|e| format!("overlay: upper directory {:?}: {e}", u.upper))?;
            let work = upper::find_dir(&*u.fs, &req, &u.work)
                .map_err(|e| format!("overlay: work directory {:?}: {e}", u.work))?;
            if work == root {
                return Err("overlay: the work directory is the upper directory".into());
            }
            let xattr_ns = upper::xattr_namespace(&*u.fs, &req, work);
            layers.push(Layer {
                fs: u.fs,
                tag: 0,
                root,
            });
            info = Some(UpperInfo { work, xattr_ns });
        }
        for (i, l) in lowers.into_iter().enumerate() {
            let root = if l.dir.is_empty() {
                ROOT_ID
            } else {
                upper::find_dir(&*l.fs, &Request::root(), &l.dir)
                    .map_err(|e| format!("overlay: lower directory {:?}: {e}", l.dir))?
            };
            layers.push(Layer {
                fs: l.fs,
                tag: i as u64 + 1,
                root,
            });
        }
        let root_parts = layers
            .iter()
            .enumerate()
            .map(|(layer, l)| Part {
                layer,
                node: l.root,
            })
            .collect();
        let ovl = Overlay {
            layers,
            upper: info,
            change: Mutex::new(()),
            misses: misses::MissCache::default(),
            nodes: NodeTable::new(root_parts, KEEP_FORGOTTEN),
            ids: Ids::default(),
            handles: HandleTable::default(),
            faults: FaultLog::new("overlay"),
            all_immutable,
        };
        ovl.clean_work();
        Ok(ovl)
    }

    /// Whether there is an upper layer (the overlay is writable).
    pub fn writable(&self) -> bool {
        self.upper.is_some()
    }

    /// The fault log.
    pub fn faults(&self) -> &FaultLog {
        &self.faults
    }

    /// Nodes known now (the root included).
    pub fn known_nodes(&self) -> usize {
        self.nodes.len()
    }

    fn node(&self, id: NodeId) -> squashbox_vfs::Result<Node> {
        self.nodes.get(id).ok_or_else(|| {
            self.faults
                .warn("request for a node never handed out or forgotten", id, &id);
            Errno::ESTALE
        })
    }

    fn name_ok(name: &OsStr) -> squashbox_vfs::Result<()> {
        if crate::layer::is_whiteout_name(name) {
            // Such names are whiteouts in every layer: they cannot be made visible.
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn give_back(&self, parts: Vec<Part>) {
        for p in parts {
            self.layers[p.layer].forget(p.node);
        }
    }
}
