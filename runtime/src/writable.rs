//! Writable modes: `--writable-tmpfs`, `-o/--overlay DIR|IMG.ext3|IMG.sqfs[:ro]` (several
//! read-only, one writable at most), `-w/--writable` and a SIF's embedded overlay partition,
//! with Apptainer's rules and its error messages (the CLI exits 255 on them).

use std::path::{Path, PathBuf};

use crate::options::RunOptions;
use crate::{Result, rt_err};

/// What an overlay path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayKind {
    /// A host directory (its `upper/` and `work/` when writable).
    Dir,
    /// An ext3 image (`upper/` and `work/` inside it).
    Ext3,
    /// A SquashFS image: always read-only.
    Squashfs,
}

/// One `--overlay` as it will be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// The path given (made absolute).
    pub path: PathBuf,
    /// What it is.
    pub kind: OverlayKind,
    /// Whether it is the writable upper.
    pub writable: bool,
}

/// What the image offers for `--writable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A SIF; `overlay_partition` is the descriptor ID of its ext3 overlay, if any.
    Sif {
        /// The overlay partition Apptainer would use.
        overlay_partition: Option<u32>,
    },
    /// A bare SquashFS image.
    Squashfs,
    /// A sandbox directory.
    Sandbox,
}

/// The writable upper layer of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upper {
    /// Read-only container.
    None,
    /// The session tmpfs (`--writable-tmpfs`).
    Tmpfs,
    /// A writable `--overlay` (directory or ext3).
    Overlay(Overlay),
    /// The SIF's embedded ext3 overlay partition with `-w`.
    SifPartition(u32),
    /// A sandbox directory itself, with `-w`.
    Sandbox,
}

/// The layers of a run, beyond the image and the skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// Read-only overlays, top first (the last given is the topmost, as Apptainer stacks).
    pub lowers: Vec<Overlay>,
    /// The SIF's overlay partition as a read-only lower (below the `--overlay` ones).
    pub sif_lower: Option<u32>,
    /// The upper.
    pub upper: Upper,
    /// Warnings to print (downgrades).
    pub warnings: Vec<String>,
}

/// Recognise what `path` is: a directory, or an image by its magic numbers.
pub fn sniff(path: &Path) -> std::result::Result<OverlayKind, String> {
    use std::io::Read;
    let m = std::fs::metadata(path).map_err(|e| format!("overlay {}: {e}", path.display()))?;
    if m.is_dir() {
        return Ok(OverlayKind::Dir);
    }
    let mut head = vec![0u8; 1082];
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("overlay {}: {e}", path.display()))?;
    let n = f.read(&mut head).unwrap_or(0);
    if n >= 4 && &head[..4] == b"hsqs" {
        return Ok(OverlayKind::Squashfs);
    }
    if n >= 1082 && head[1080..1082] == [0x53, 0xef] {
        return Ok(OverlayKind::Ext3);
    }
    Err(format!(
        "overlay {}: not a directory, an ext3 image or a SquashFS image",
        path.display()
    ))
}

/// Decide the layers for `opts` on an image of `image` kind; `sniff` tells what each
/// overlay path is.
pub fn plan(
    opts: &RunOptions,
    image: ImageKind,
    sniff: &dyn Fn(&Path) -> std::result::Result<OverlayKind, String>,
) -> Result<Layers> {
    let mut l = Layers {
        lowers: Vec::new(),
        sif_lower: None,
        upper: Upper::None,
        warnings: Vec::new(),
    };
    if opts.writable && !opts.overlays.is_empty() {
        return Err(rt_err!(
            "cannot use --overlay in conjunction with --writable"
        ));
    }
    let mut writable_tmpfs = opts.writable_tmpfs;
    if opts.writable && writable_tmpfs {
        l.warnings
            .push("Disabling --writable-tmpfs flag, mutually exclusive with --writable".into());
        writable_tmpfs = false;
    }
    let mut upper: Option<Overlay> = None;
    for arg in &opts.overlays {
        let (path, ro) = match arg.strip_suffix(":ro") {
            Some(p) => (p, true),
            None => (arg.as_str(), false),
        };
        let path = std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path));
        let kind = sniff(&path).map_err(crate::RuntimeError)?;
        let mut writable = !ro;
        if writable && kind == OverlayKind::Squashfs {
            l.warnings.push(format!(
                "{} is a SquashFS image: it is used read-only",
                path.display()
            ));
            writable = false;
        }
        let o = Overlay {
            path,
            kind,
            writable,
        };
        if writable {
            if upper.is_some() {
                return Err(rt_err!(
                    "you can't specify more than one writable overlay image"
                ));
            }
            if writable_tmpfs {
                return Err(rt_err!(
                    "you can't specify --writable-tmpfs with another writable overlay image"
                ));
            }
            upper = Some(o);
        } else {
            l.lowers.push(o);
        }
    }
    l.lowers.reverse();
    let sif_overlay = match image {
        ImageKind::Sif { overlay_partition } => overlay_partition,
        _ => None,
    };
    l.upper = if let Some(o) = upper {
        Upper::Overlay(o)
    } else if opts.writable {
        match image {
            ImageKind::Sif { .. } => match sif_overlay {
                Some(id) => Upper::SifPartition(id),
                None => return Err(rt_err!("no SIF writable overlay partition found")),
            },
            ImageKind::Squashfs => {
                return Err(rt_err!(
                    "a SquashFS image cannot be writable: use --writable-tmpfs or --overlay"
                ));
            }
            ImageKind::Sandbox => Upper::Sandbox,
        }
    } else if writable_tmpfs {
        Upper::Tmpfs
    } else {
        Upper::None
    };
    if !matches!(l.upper, Upper::SifPartition(_)) {
        l.sif_lower = sif_overlay;
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(p: &Path) -> std::result::Result<OverlayKind, String> {
        let s = p.to_string_lossy();
        if s.ends_with(".ext3") {
            Ok(OverlayKind::Ext3)
        } else if s.ends_with(".sqfs") {
            Ok(OverlayKind::Squashfs)
        } else if s.contains("missing") {
            Err(format!(
                "overlay {s}: No such file or directory (os error 2)"
            ))
        } else {
            Ok(OverlayKind::Dir)
        }
    }

    fn opts(overlays: &[&str], writable: bool, tmpfs: bool) -> RunOptions {
        RunOptions {
            overlays: overlays.iter().map(|s| s.to_string()).collect(),
            writable,
            writable_tmpfs: tmpfs,
            ..Default::default()
        }
    }

    const SIF: ImageKind = ImageKind::Sif {
        overlay_partition: None,
    };
    const SIF_OV: ImageKind = ImageKind::Sif {
        overlay_partition: Some(4),
    };

    fn err(o: RunOptions, image: ImageKind) -> String {
        plan(&o, image, &fake).unwrap_err().0
    }

    #[test]
    fn apptainer_errors() {
        assert_eq!(
            err(opts(&["/o"], true, false), SIF_OV),
            "cannot use --overlay in conjunction with --writable"
        );
        assert_eq!(
            err(opts(&["/a", "/b.ext3"], false, false), SIF),
            "you can't specify more than one writable overlay image"
        );
        assert_eq!(
            err(opts(&["/a"], false, true), SIF),
            "you can't specify --writable-tmpfs with another writable overlay image"
        );
        assert_eq!(
            err(opts(&[], true, false), SIF),
            "no SIF writable overlay partition found"
        );
        assert!(err(opts(&["/missing"], false, false), SIF).contains("No such file"));
    }

    #[test]
    fn read_only_overlays_stack_last_given_on_top_and_squashfs_is_downgraded() {
        let l = plan(
            &opts(&["/a:ro", "/b.sqfs", "/c.ext3"], false, false),
            SIF_OV,
            &fake,
        )
        .unwrap();
        let lowers: Vec<_> = l
            .lowers
            .iter()
            .map(|o| o.path.display().to_string())
            .collect();
        assert_eq!(lowers, vec!["/b.sqfs", "/a"]);
        assert!(matches!(&l.upper, Upper::Overlay(o) if o.kind == OverlayKind::Ext3));
        assert_eq!(l.sif_lower, Some(4));
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        // A dir:ro with --writable-tmpfs is fine.
        let l = plan(&opts(&["/a:ro"], false, true), SIF, &fake).unwrap();
        assert_eq!(l.upper, Upper::Tmpfs);
    }

    #[test]
    fn embedded_overlay_is_a_lower_by_default_and_the_upper_with_writable() {
        let l = plan(&opts(&[], false, false), SIF_OV, &fake).unwrap();
        assert_eq!((l.sif_lower, l.upper), (Some(4), Upper::None));
        let l = plan(&opts(&[], true, true), SIF_OV, &fake).unwrap();
        assert_eq!((l.sif_lower, l.upper), (None, Upper::SifPartition(4)));
        assert_eq!(l.warnings.len(), 1);
        let l = plan(&opts(&[], true, false), ImageKind::Sandbox, &fake).unwrap();
        assert_eq!(l.upper, Upper::Sandbox);
    }
}
