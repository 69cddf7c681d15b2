//! Shared helpers for the `squashfs_*` integration tests: the squashbox binary, a fixture tree
//! generated once per test binary, and a tree comparer.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use squashbox_fixtures::TreeOptions;

/// The squashbox binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_squashbox")
}

/// Run `squashbox ARGS...`.
pub fn squashbox<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(bin())
        .args(args)
        .output()
        .expect("running squashbox")
}

/// Run `squashbox ARGS...` and require success; returns stdout.
pub fn squashbox_ok<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let out = squashbox(&args);
    assert!(
        out.status.success(),
        "squashbox {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Run a command and require success; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether we run as root.
pub fn is_root() -> bool {
    squashbox_fixtures::sys::is_root()
}

/// Whether mksquashfs and unsquashfs are both installed; a missing one is counted through
/// [`squashbox_fixtures::prereq`] (a failure under `CI=true`) and the caller returns.
pub fn squashfs_tools_ready() -> bool {
    squashbox_fixtures::prereq::require_tools(&["mksquashfs", "unsquashfs"])
}

/// Apptainer's busybox SIF from the in-repo upstream fixtures (panics if missing).
pub fn busybox_sif() -> PathBuf {
    squashbox_fixtures::upstream("apptainer-e2e/busybox_amd64.sif")
}

/// A scratch directory that lives as long as the test binary.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("sqb-cli-")
            .tempdir()
            .expect("tempdir")
    })
    .path()
}

/// The default fixture tree (seed 1; devices when root), generated once per test binary.
pub fn fixture_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let dest = scratch().join("tree");
        squashbox_fixtures::generate_tree(&dest, &TreeOptions::default()).expect("fixture tree");
        dest
    })
}

/// A fresh, not yet existing path in the scratch directory.
pub fn fresh(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    scratch().join(format!("{name}-{n}"))
}

/// `unsquashfs -d "" -lln` with our root spelling (`/`): what `squashbox squashfs ls -l` prints.
pub fn unsquashfs_lln(image: &Path, extra: &[&str]) -> Vec<u8> {
    let out = run_ok(
        Command::new("unsquashfs")
            .args(["-d", "", "-lln"])
            .args(extra)
            .arg(image),
    );
    fix_root_line(out)
}

/// unsquashfs prints the root as an empty name; we print "/".
pub fn fix_root_line(out: Vec<u8>) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = out.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    if let Some(first) = lines.first_mut()
        && first.ends_with(b" ")
    {
        first.push(b'/');
    }
    lines.join(&b'\n')
}

/// First differing line of two listings, for assertion messages.
pub fn first_diff(a: &[u8], b: &[u8]) -> String {
    let (la, lb): (Vec<&[u8]>, Vec<&[u8]>) = (
        a.split(|&x| x == b'\n').collect(),
        b.split(|&x| x == b'\n').collect(),
    );
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i), lb.get(i));
        if x != y {
            return format!(
                "line {}: ours {:?} / theirs {:?} ({} vs {} lines)",
                i + 1,
                x.map(|l| String::from_utf8_lossy(l)),
                y.map(|l| String::from_utf8_lossy(l)),
                la.len(),
                lb.len()
            );
        }
    }
    "identical".into()
}

/// What we compare about one entry.
#[derive(Debug, PartialEq, Eq)]
struct Meta {
    kind: &'static str,
    perm: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    size: u64,
    rdev: u64,
    link: Option<Vec<u8>>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn kind(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_block_device() {
        "blockdev"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    }
}

/// All xattrs of `path` (not following symlinks), except security.selinux which hosts add.
pub fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    let mut names = vec![0u8; 65536];
    // SAFETY: `c` is NUL-terminated; the buffer pointer and length describe `names`.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    if n < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ENOTSUP),
            "llistxattr {}: {e}",
            path.display()
        );
        return out;
    }
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        if name == b"security.selinux" {
            continue;
        }
        let cn = CString::new(name).expect("no NUL");
        let mut value = vec![0u8; 65536];
        // SAFETY: both strings are NUL-terminated; pointer and length describe `value`.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cn.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(
            len >= 0,
            "lgetxattr {} on {}",
            String::from_utf8_lossy(name),
            path.display()
        );
        value.truncate(len as usize);
        out.insert(name.to_vec(), value);
    }
    out
}

/// Walk `root`, returning rel path -> (metadata, inode number) for every entry ("" = root).
fn scan(root: &Path) -> BTreeMap<PathBuf, (Meta, u64, u64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let abs = root.join(&rel);
        let m = fs::symlink_metadata(&abs).unwrap_or_else(|e| panic!("{}: {e}", abs.display()));
        let ft = m.file_type();
        if ft.is_dir() {
            for e in fs::read_dir(&abs).unwrap_or_else(|e| panic!("{}: {e}", abs.display())) {
                todo.push(rel.join(e.expect("dir entry").file_name()));
            }
        }
        let meta = Meta {
            kind: kind(ft),
            perm: if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            },
            uid: m.uid(),
            gid: m.gid(),
            mtime: m.mtime(),
            size: if ft.is_file() || ft.is_symlink() {
                m.len()
            } else {
                0
            },
            rdev: if ft.is_block_device() || ft.is_char_device() {
                m.rdev()
            } else {
                0
            },
            link: ft.is_symlink().then(|| {
                fs::read_link(&abs)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            }),
            xattrs: xattrs(&abs),
        };
        out.insert(rel, (meta, m.ino(), m.nlink()));
    }
    out
}

fn same_contents(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        fs::File::open(a).expect("open"),
        fs::File::open(b).expect("open"),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).expect("read") {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Hard-link groups: sets of paths sharing an inode (non-directories with nlink > 1).
fn link_groups(scan: &BTreeMap<PathBuf, (Meta, u64, u64)>) -> BTreeSet<Vec<PathBuf>> {
    let mut by_ino: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    for (rel, (meta, ino, nlink)) in scan {
        if meta.kind != "dir" && *nlink > 1 {
            by_ino.entry(*ino).or_default().push(rel.clone());
        }
    }
    by_ino
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect()
}

/// Options for [`compare_trees`].
#[derive(Clone, Copy, Default)]
pub struct Compare {
    /// Skip owner comparison (extracting as non-root).
    pub ignore_owner: bool,
    /// Skip xattr comparison (e.g. `-no-xattrs` images).
    pub ignore_xattrs: bool,
    /// Skip hard-link group comparison (the kernel mount shows no link groups for dirs, etc.).
    pub ignore_links: bool,
}

/// Compare two trees: same paths, types, modes, owners, mtimes, sizes, contents, xattrs, link
/// targets, rdev and hard-link groups. Returns the differences (empty = equal).
pub fn compare_trees(expected: &Path, actual: &Path, opts: Compare) -> Vec<String> {
    let (a, b) = (scan(expected), scan(actual));
    let mut diffs = Vec::new();
    for rel in a.keys().filter(|k| !b.contains_key(*k)) {
        diffs.push(format!("missing: /{}", rel.display()));
    }
    for rel in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("extra: /{}", rel.display()));
    }
    for (rel, (ma, _, _)) in &a {
        let Some((mb, _, _)) = b.get(rel) else {
            continue;
        };
        let mut ma_cmp = Meta {
            xattrs: ma.xattrs.clone(),
            link: ma.link.clone(),
            ..*ma
        };
        let mut mb_cmp = Meta {
            xattrs: mb.xattrs.clone(),
            link: mb.link.clone(),
            ..*mb
        };
        if opts.ignore_owner {
            (ma_cmp.uid, ma_cmp.gid, mb_cmp.uid, mb_cmp.gid) = (0, 0, 0, 0);
        }
        if opts.ignore_xattrs {
            ma_cmp.xattrs.clear();
            mb_cmp.xattrs.clear();
        }
        if ma_cmp != mb_cmp {
            diffs.push(format!(
                "/{}: expected {ma_cmp:?}, got {mb_cmp:?}",
                rel.display()
            ));
        } else if ma.kind == "file" && !same_contents(&expected.join(rel), &actual.join(rel)) {
            diffs.push(format!("/{}: contents differ", rel.display()));
        }
    }
    if !opts.ignore_links {
        let (ga, gb) = (link_groups(&a), link_groups(&b));
        if ga != gb {
            diffs.push(format!(
                "hard-link groups differ: expected {ga:?}, got {gb:?}"
            ));
        }
    }
    diffs
}

/// Assert two trees are equal, listing the first differences.
pub fn assert_same_tree(expected: &Path, actual: &Path, opts: Compare, what: &str) {
    let diffs = compare_trees(expected, actual, opts);
    assert!(
        diffs.is_empty(),
        "{what}: {} difference(s):\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A kernel loop mount (read-only SquashFS), unmounted on drop.
pub struct LoopMount {
    /// Mount point.
    pub dir: PathBuf,
}

impl LoopMount {
    /// Mount `image` at byte `offset`. `None` when not root (a counted prerequisite skip, a
    /// failure under `CI=true`); a failed mount as root fails the test.
    pub fn new(image: &Path, offset: u64) -> Option<LoopMount> {
        if !squashbox_fixtures::prereq::require_root("a kernel loop mount as the oracle") {
            return None;
        }
        let dir = fresh("mnt");
        fs::create_dir(&dir).expect("mkdir mount point");
        let out = Command::new("mount")
            .args(["-t", "squashfs", "-o", &format!("loop,ro,offset={offset}")])
            .arg(image)
            .arg(&dir)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "kernel loop mount of {} at offset {offset} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Some(LoopMount { dir })
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("umount {} failed; detaching it", self.dir.display());
            let _detached = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Require a failed run with exactly one line on stderr and no panic message.
pub fn assert_one_line_error(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: expected failure, got success"
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "{what}: exit code 101 (panic?): {err}"
    );
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: stderr not one line: {err:?}"
    );
}
