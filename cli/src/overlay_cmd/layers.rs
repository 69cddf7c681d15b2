//! Naming the layers: lower lists (`A:B:C` with `\:` and `\\` escapes), what each entry is
//! (a directory, a SquashFS or ext3 image, or a SIF with an optional `@ID` partition), and
//! the upper: directories (both or neither, on one filesystem, neither inside the other) or
//! an ext3 image holding `upper/` and `work/`.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use squashbox_fuse::options::ServeOptions;
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::idmap::{IdMapped, IdOptions};
use squashbox_overlay::{LowerLayer, Overlay, UpperLayer};
use squashbox_runtime::ext3_layer;
use squashbox_squashfs::{FsOptions, ImageOptions, SquashFs, open_image};
use squashbox_vfs::Filesystem;

/// One lower layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lower {
    /// A host directory, served read-only.
    Dir(PathBuf),
    /// A SquashFS image or SIF file (`partition`: the SIF descriptor ID; default primary).
    Image {
        /// The file.
        path: PathBuf,
        /// The SIF partition.
        partition: Option<u32>,
    },
}

/// The upper layer: the directory the upper and work directories share, and both names
/// relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upper {
    /// The deepest directory holding both.
    pub base: PathBuf,
    /// The upper directory, relative to `base`.
    pub upper: String,
    /// The work directory, relative to `base`.
    pub work: String,
}

/// Everything the served overlay is made of.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Lower layers, top first.
    pub lowers: Vec<Lower>,
    /// The upper layer, if writable.
    pub upper: Option<Upper>,
    /// An ext3 image (or a SIF's overlay partition) holding `upper/` and `work/`, as the
    /// upper layer instead of `upper`.
    pub upper_image: Option<PathBuf>,
    /// How owners and link counts are shown.
    pub ids: IdOptions,
}

/// Split a lower list at unescaped `:`; `\:` is a colon and `\\` a backslash in a name.
/// Empty entries are errors.
pub fn split_list(spec: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (':' | '\\' | ',')) => cur.push(n),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            ':' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    if out.iter().any(String::is_empty) {
        return Err(format!("lower layer list {spec:?} has an empty entry"));
    }
    Ok(out)
}

/// What `item` names: an existing directory or file, or `FILE@ID` (a SIF partition).
pub fn classify(item: &str) -> Result<Lower, String> {
    let p = Path::new(item);
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Ok(Lower::Dir(p.to_path_buf())),
        Ok(m) if m.is_file() => {
            return Ok(Lower::Image {
                path: p.to_path_buf(),
                partition: None,
            });
        }
        Ok(_) => {
            return Err(format!(
                "lower layer {item}: not a directory or an image file"
            ));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("lower layer {item}: {e}"));
        }
        Err(_) => {}
    }
    if let Some((file, id)) = item.rsplit_once('@')
        && let Ok(id) = id.parse::<u32>()
        && Path::new(file).is_file()
    {
        return Ok(Lower::Image {
            path: PathBuf::from(file),
            partition: Some(id),
        });
    }
    Err(format!("lower layer {item}: no such file or directory"))
}

fn dir_of(what: &str, p: &Path) -> Result<(PathBuf, u64), String> {
    let m = std::fs::metadata(p).map_err(|e| format!("{what} {}: {e}", p.display()))?;
    if !m.is_dir() {
        return Err(format!("{what} {}: not a directory", p.display()));
    }
    let c = std::fs::canonicalize(p).map_err(|e| format!("{what} {}: {e}", p.display()))?;
    Ok((c, m.dev()))
}

fn relative(base: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(base).unwrap_or(p);
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Check the upper and work directories: both or neither, existing directories on one
/// filesystem, neither inside the other.
pub fn upper_of(upper: Option<&Path>, work: Option<&Path>) -> Result<Option<Upper>, String> {
    let (u, w) = match (upper, work) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err("an upper directory needs a work directory".into()),
        (None, Some(_)) => return Err("a work directory needs an upper directory".into()),
        (Some(u), Some(w)) => (u, w),
    };
    let (uc, udev) = dir_of("upper directory", u)?;
    let (wc, wdev) = dir_of("work directory", w)?;
    if udev != wdev {
        return Err(format!(
            "work directory {} is not on the same filesystem as upper directory {}",
            w.display(),
            u.display()
        ));
    }
    if uc.starts_with(&wc) || wc.starts_with(&uc) {
        return Err(format!(
            "upper directory {} and work directory {} must be separate (neither inside the other)",
            u.display(),
            w.display()
        ));
    }
    let mut base = uc.clone();
    while !wc.starts_with(&base) {
        base = base.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    Ok(Some(Upper {
        upper: relative(&base, &uc),
        work: relative(&base, &wc),
        base,
    }))
}

fn open_lower(l: &Lower, opts: &ServeOptions) -> Result<LowerLayer, String> {
    match l {
        Lower::Dir(p) => {
            let o = HostDirOptions {
                read_only: true,
                ..Default::default()
            };
            Ok(whole(Arc::new(HostDir::open(p, o).map_err(|e| {
                format!("lower layer {}: {e}", p.display())
            })?)))
        }
        Lower::Image { path, partition } => {
            if let Some(img) = ext3_layer::detect(path, *partition, false)? {
                // An ext3 overlay image used read-only shows its upper/, as Apptainer's.
                let fs = ext3_layer::open(&img, false)?;
                let dir = ext3_layer::lower_dir(&*fs);
                return Ok(LowerLayer { fs, dir });
            }
            let io = ImageOptions {
                offset: None,
                partition: *partition,
                cache_bytes: opts.cache_mib.max(1).saturating_mul(1 << 20),
            };
            let (img, name) = open_image(path, &io)?;
            let fo = FsOptions {
                uid: None,
                gid: None,
                subdir: None,
                prefetch_bytes: opts.prefetch_bytes(img.superblock().block_size),
            };
            Ok(whole(Arc::new(SquashFs::new(img, &name, fo)?)))
        }
    }
}

fn whole(fs: Arc<dyn Filesystem>) -> LowerLayer {
    LowerLayer {
        fs,
        dir: String::new(),
    }
}

impl Stack {
    /// Make every path absolute (a detached server runs from `/`).
    pub fn absolute(mut self) -> Stack {
        let abs = |p: &mut PathBuf| {
            if let Ok(a) = std::path::absolute(&*p) {
                *p = a;
            }
        };
        for l in &mut self.lowers {
            match l {
                Lower::Dir(p) | Lower::Image { path: p, .. } => abs(p),
            }
        }
        if let Some(p) = &mut self.upper_image {
            abs(p);
        }
        self
    }

    /// A name for the mount (the fsname).
    pub fn name(&self) -> String {
        "squashbox-overlay".into()
    }

    /// Open every layer and stack them. Errors are one line naming the layer.
    pub fn open(&self, opts: &ServeOptions) -> Result<Arc<dyn Filesystem>, String> {
        let lowers = self
            .lowers
            .iter()
            .map(|l| open_lower(l, opts))
            .collect::<Result<Vec<_>, _>>()?;
        let upper = match (&self.upper, &self.upper_image) {
            (_, Some(p)) => {
                let img = ext3_layer::detect(p, None, true)?.ok_or_else(|| {
                    format!(
                        "upper image {}: not an ext3 image or a SIF with an overlay partition",
                        p.display()
                    )
                })?;
                Some(UpperLayer {
                    fs: ext3_layer::open(&img, true)?,
                    upper: "upper".into(),
                    work: "work".into(),
                })
            }
            (None, None) => None,
            (Some(u), None) => {
                let fs = HostDir::open(&u.base, HostDirOptions::default())
                    .map_err(|e| format!("upper directory: {e}"))?;
                Some(UpperLayer {
                    fs: Arc::new(fs),
                    upper: u.upper.clone(),
                    work: u.work.clone(),
                })
            }
        };
        let ovl: Arc<dyn Filesystem> = Arc::new(Overlay::with_lowers(lowers, upper)?);
        if self.ids.is_identity() {
            Ok(ovl)
        } else {
            Ok(Arc::new(IdMapped::new(ovl, self.ids.clone())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_at_unescaped_colons() {
        assert_eq!(split_list("a:b").unwrap(), ["a", "b"]);
        assert_eq!(split_list(r"a\:b:c\\d").unwrap(), ["a:b", r"c\d"]);
        assert_eq!(split_list(r"x\y").unwrap(), [r"x\y"]);
        assert!(split_list("a::b").is_err());
        assert!(split_list("").is_err());
    }

    #[test]
    fn upper_and_work_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let (u, w) = (t.path().join("u"), t.path().join("w"));
        std::fs::create_dir(&u).unwrap();
        std::fs::create_dir(&w).unwrap();
        assert!(upper_of(Some(&u), None).is_err());
        assert!(upper_of(None, Some(&w)).is_err());
        let up = upper_of(Some(&u), Some(&w)).unwrap().unwrap();
        assert_eq!((up.upper.as_str(), up.work.as_str()), ("u", "w"));
        assert_eq!(up.base, std::fs::canonicalize(t.path()).unwrap());
        let inner = u.join("w");
        std::fs::create_dir(&inner).unwrap();
        assert!(upper_of(Some(&u), Some(&inner)).is_err());
        assert!(upper_of(Some(&u), Some(&t.path().join("missing"))).is_err());
    }

    #[test]
    fn partition_suffix_names_a_sif_partition() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("img.sif");
        std::fs::write(&f, b"x").unwrap();
        let spec = format!("{}@3", f.display());
        assert_eq!(
            classify(&spec).unwrap(),
            Lower::Image {
                path: f.clone(),
                partition: Some(3)
            }
        );
        assert!(classify(&format!("{}@x", f.display())).is_err());
        assert_eq!(
            classify(&t.path().display().to_string()).unwrap(),
            Lower::Dir(t.path().to_path_buf())
        );
    }
}
