//! `-o` options of an overlay mount: fuse-overlayfs's own (`lowerdir=`, `upperdir=`,
//! `workdir=`, `squash_to_root`, `squash_to_uid=`, `squash_to_gid=`, `uidmapping=`,
//! `gidmapping=`, `static_nlink`, `noacl`, `xino=`, `ro`) and the server's
//! ([`ServeOptions::apply_o`]: `allow_other`, `notify_pipe=`, `threads=`, ...).
//!
//! Option lists split at commas not escaped by `\`; a name keeps its escapes until its own
//! parser (the lower list's) reads them.

use std::path::PathBuf;

use fuser::MountOption;
use squashbox_fuse::options::ServeOptions;
use squashbox_overlay::idmap::{IdMap, IdOptions};

/// Options collected from every `-o`.
#[derive(Debug, Clone, Default)]
pub struct OverlayOptions {
    /// `lowerdir=` entries (escapes kept), top first, in the order given.
    pub lowerdirs: Vec<String>,
    /// `upperdir=`.
    pub upperdir: Option<PathBuf>,
    /// `workdir=`.
    pub workdir: Option<PathBuf>,
    /// Owner display options.
    pub ids: IdOptions,
    /// The server's options.
    pub serve: ServeOptions,
    /// Options nobody here knows (fuse-overlayfs ignores them too).
    pub ignored: Vec<String>,
}

/// Split at commas not escaped by a backslash; escapes stay in the pieces.
fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push('\\');
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|o| !o.is_empty());
    out
}

/// A path option's value with `\X` read as `X`.
fn unescape(s: &str) -> PathBuf {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    PathBuf::from(out)
}

fn id(key: &str, v: &str) -> Result<u32, String> {
    v.parse()
        .map_err(|_| format!("invalid value for -o {key}: {v:?}"))
}

impl OverlayOptions {
    /// Apply one `-o` argument. `fuse_overlayfs`: read `timeout=` as fuse-overlayfs does (a
    /// cache timeout, ignored here) rather than as the server's idle timeout.
    pub fn apply(&mut self, opts: &str, fuse_overlayfs: bool) -> Result<(), String> {
        for opt in split_options(opts) {
            let (key, val) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            };
            let need = || val.ok_or_else(|| format!("-o {key} needs a value"));
            match key {
                "lowerdir" => self.lowerdirs.push(need()?.to_string()),
                "upperdir" => self.upperdir = Some(unescape(need()?)),
                "workdir" => self.workdir = Some(unescape(need()?)),
                "squash_to_root" => {
                    self.ids.squash_uid = Some(0);
                    self.ids.squash_gid = Some(0);
                }
                "squash_to_uid" => self.ids.squash_uid = Some(id(key, need()?)?),
                "squash_to_gid" => self.ids.squash_gid = Some(id(key, need()?)?),
                "uidmapping" => self.ids.uid_map = IdMap::parse(need()?)?,
                "gidmapping" => self.ids.gid_map = IdMap::parse(need()?)?,
                "static_nlink" => self.ids.static_nlink = true,
                // No POSIX ACLs are served: nothing to turn off.
                "noacl" => {}
                // Inode numbers always carry the layer in their high bits.
                "xino" => match need()? {
                    "on" | "off" | "auto" => {}
                    v => return Err(format!("invalid value for -o xino: {v:?}")),
                },
                "ro" => self.serve.mount_options.push(MountOption::RO),
                "rw" => {}
                // fuse-overlayfs tuning knobs with no meaning here.
                "fsync" | "threaded" | "fast_ino" | "writeback" | "noxattrs" | "plugins"
                | "redirect_dir" | "volatile" | "context" | "index" | "metacopy" | "userxattr" => {}
                "timeout" if fuse_overlayfs => {}
                _ => self.serve.apply_o(&opt, &mut self.ignored)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apptainer_options() {
        let mut o = OverlayOptions::default();
        o.apply(
            r"allow_other,lowerdir=/a\:b:/c,upperdir=/u\,x,workdir=/w,noacl,xino=off,bogus=1",
            true,
        )
        .unwrap();
        assert_eq!(o.lowerdirs, [r"/a\:b:/c"]);
        assert_eq!(o.upperdir, Some(PathBuf::from("/u,x")));
        assert_eq!(o.workdir, Some(PathBuf::from("/w")));
        assert!(o.serve.allow_other);
        assert_eq!(o.ignored, ["bogus=1"]);
    }

    #[test]
    fn owner_options() {
        let mut o = OverlayOptions::default();
        o.apply("squash_to_uid=7,squash_to_gid=8,static_nlink", true)
            .unwrap();
        o.apply("uidmapping=0:1000:1,gidmapping=0:100:2,timeout=5", true)
            .unwrap();
        assert_eq!((o.ids.squash_uid, o.ids.squash_gid), (Some(7), Some(8)));
        assert!(o.ids.static_nlink);
        assert_eq!(o.ids.uid_map.to_container(1000), 0);
        assert_eq!(o.ids.gid_map.to_host(1), Some(101));
        assert!(o.serve.idle_timeout.is_none());
        assert!(o.apply("uidmapping=0:1", true).is_err());
        assert!(o.apply("xino=maybe", true).is_err());
        let mut r = OverlayOptions::default();
        r.apply("squash_to_root", false).unwrap();
        assert_eq!((r.ids.squash_uid, r.ids.squash_gid), (Some(0), Some(0)));
    }
}
