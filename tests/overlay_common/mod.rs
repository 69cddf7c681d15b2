//! Helpers for the overlay CLI tests (tests/overlay_*.rs): building layers, walking a mounted
//! tree into a comparable description, the kernel overlay as the oracle, and running a
//! command as a plain test user with a usable /dev/fuse in a private mount namespace.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

#[path = "../common/fuse.rs"]
mod fuse_common;
pub use fuse_common::{bin, ensure_named_user, is_mounted, run_timeout, wait_for};

/// A symlink named `name` (a personality) to the binary, in `dir`.
pub fn personality(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::os::unix::fs::symlink(bin(), &p).unwrap();
    p
}

/// A copy of the binary named `name` in `dir`, executable by everyone (for a test user who
/// may not reach the build tree). Copy before starting other processes from this test
/// binary: a write descriptor inherited by a concurrent fork makes exec fail (ETXTBSY).
pub fn personality_copy(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.join(name);
    std::fs::copy(bin(), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Run `cmd` (30 s at most) and require success.
pub fn run_ok(cmd: &mut Command) -> String {
    let (ok, out) = run_timeout(cmd, Duration::from_secs(30));
    assert!(ok, "{cmd:?} failed: {out}");
    out
}

/// A mount lazily detached when dropped (and a foreground server killed).
pub struct Mounted {
    /// The mount point.
    pub path: PathBuf,
    /// A foreground server, if any.
    pub child: Option<std::process::Child>,
}

impl Mounted {
    /// Guard an existing mount.
    pub fn new(path: &Path) -> Mounted {
        Mounted {
            path: path.to_path_buf(),
            child: None,
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.path) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Unmount `path` (plain umount: the mount must not be busy) and require it gone.
pub fn unmount(path: &Path) {
    run_ok(Command::new("umount").arg(path));
    assert!(
        wait_for(Duration::from_secs(5), || !is_mounted(path)),
        "{} still mounted",
        path.display()
    );
}

/// Kernel overlay, read-only, of `lowers` (top first) at `dir`.
pub fn kernel_overlay(lowers: &[&Path], dir: &Path, extra: &str) -> Mounted {
    std::fs::create_dir_all(dir).unwrap();
    let spec: Vec<String> = lowers
        .iter()
        .map(|p| p.display().to_string().replace(':', "\\:"))
        .collect();
    let mut opts = format!("lowerdir={}", spec.join(":"));
    if !extra.is_empty() {
        opts = format!("{opts},{extra}");
    }
    run_ok(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(dir),
    );
    Mounted::new(dir)
}

/// Kernel loop mount of the SquashFS at `offset` in `image`.
pub fn kernel_squashfs(image: &Path, offset: u64, dir: &Path) -> Mounted {
    std::fs::create_dir_all(dir).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "squashfs", "-o", &format!("loop,ro,offset={offset}")])
            .arg(image)
            .arg(dir),
    );
    Mounted::new(dir)
}

/// `mksquashfs SRC IMG -noappend -quiet`.
pub fn mksquashfs(src: &Path, img: &Path) {
    squashbox_fixtures::mksquashfs(src, img, &[]).expect("mksquashfs");
}

/// One path of a walked tree: type, permission bits, owner, size, and content (file bytes'
/// FNV hash, or a link target).
pub type Tree = BTreeMap<String, String>;

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Walk `root` (not following symlinks) into a [`Tree`].
pub fn walk(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = md.file_type();
        let what = if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                stack.push(rel.join(n));
            }
            "dir".to_string()
        } else if ft.is_file() {
            format!("file {:x}", fnv(&std::fs::read(&p).unwrap()))
        } else if ft.is_symlink() {
            format!("link {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("dev {}", md.rdev())
        } else {
            "other".to_string()
        };
        let size = if ft.is_dir() { 0 } else { md.size() };
        out.insert(
            format!("/{}", rel.display()),
            format!(
                "{what} mode={:o} {}:{} size={size}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid()
            ),
        );
    }
    out
}

/// Require two trees to be the same, naming the first differences.
pub fn assert_same(what: &str, ours: &Tree, theirs: &Tree) {
    if ours == theirs {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in ours {
        match theirs.get(k) {
            None => diffs.push(format!("{k}: only ours ({v})")),
            Some(t) if t != v => diffs.push(format!("{k}: ours {v}, theirs {t}")),
            _ => {}
        }
    }
    for (k, v) in theirs {
        if !ours.contains_key(k) {
            diffs.push(format!("{k}: only theirs ({v})"));
        }
    }
    diffs.truncate(20);
    panic!("{what}: {} differences:\n{}", diffs.len(), diffs.join("\n"));
}

/// Require a failed run with exactly one line on stderr and no panic.
pub fn assert_one_line_error(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: expected failure");
    assert_ne!(out.status.code(), Some(101), "{what}: panicked? {err}");
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: stderr not one line: {err:?}"
    );
}

/// A lower tree: files to keep, change and remove, a directory to remove and make again,
/// a symlink, and a name holding a colon.
pub fn lower_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("keep/sub")).unwrap();
    std::fs::create_dir_all(dir.join("olddir/inner")).unwrap();
    std::fs::write(dir.join("keep/a.txt"), b"lower a\n").unwrap();
    std::fs::write(dir.join("keep/sub/b.txt"), b"lower b\n").unwrap();
    std::fs::write(dir.join("change.txt"), b"before\n").unwrap();
    std::fs::write(dir.join("gone.txt"), b"to be removed\n").unwrap();
    std::fs::write(dir.join("olddir/inner/x"), b"x\n").unwrap();
    std::fs::write(dir.join("olddir/y"), b"y\n").unwrap();
    std::os::unix::fs::symlink("keep/a.txt", dir.join("link")).unwrap();
}

/// The changes every writable-mount test makes through `mnt` (over [`lower_tree`]).
pub fn change_through(mnt: &Path) {
    std::fs::write(mnt.join("new.txt"), b"made in the overlay\n").unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("change.txt"))
        .unwrap()
        .write_all_ok(b"after\n");
    std::fs::remove_file(mnt.join("gone.txt")).unwrap();
    std::fs::remove_dir_all(mnt.join("olddir")).unwrap();
    std::fs::create_dir(mnt.join("olddir")).unwrap();
    std::fs::write(mnt.join("olddir/fresh"), b"fresh\n").unwrap();
    std::fs::create_dir(mnt.join("keep/newdir")).unwrap();
    std::fs::set_permissions(
        mnt.join("keep/a.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

trait WriteAllOk {
    fn write_all_ok(self, b: &[u8]);
}

impl WriteAllOk for std::fs::File {
    fn write_all_ok(mut self, b: &[u8]) {
        std::io::Write::write_all(&mut self, b).unwrap();
    }
}

/// Check what [`change_through`] left in `upper`: the new and changed files, a whiteout
/// (0/0 character device) for the removed file, and the remade directory opaque under
/// `opaque_xattr`.
pub fn check_upper(upper: &Path, opaque_xattr: &str) {
    assert_eq!(
        std::fs::read(upper.join("new.txt")).unwrap(),
        b"made in the overlay\n"
    );
    assert_eq!(
        std::fs::read(upper.join("change.txt")).unwrap(),
        b"before\nafter\n"
    );
    let wh = std::fs::symlink_metadata(upper.join("gone.txt")).expect("whiteout for gone.txt");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "gone.txt in the upper is not a 0/0 whiteout"
    );
    let out = Command::new("getfattr")
        .args(["--absolute-names", "--only-values", "-n", opaque_xattr])
        .arg(upper.join("olddir"))
        .output()
        .expect("getfattr");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "y",
        "olddir in the upper is not opaque ({opaque_xattr}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::symlink_metadata(upper.join("keep/a.txt"))
            .unwrap()
            .mode()
            & 0o7777,
        0o600
    );
}

/// The plain test user's name (shared with the other unprivileged tests).
pub const TEST_USER: &str = "squashbox-test";

/// The test user's (uid, gid), created with useradd if missing; `None` (a counted skip)
/// when that fails.
pub fn ensure_user() -> Option<(u32, u32)> {
    ensure_named_user(TEST_USER)
}

/// `sh -c script` as `uid:gid`, in a private mount and PID namespace (tied to this test by
/// a parent-death signal) whose /dev/fuse is a fresh 0666 node on a tmpfs at `devdir`. The
/// machine's /dev/fuse is not changed.
pub fn as_user(devdir: &Path, ids: (u32, u32), script: &str, timeout: Duration) -> (bool, String) {
    std::fs::create_dir_all(devdir).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--",
        "sh",
        "-c",
        "set -e; mount -t tmpfs -o mode=0755,size=64k squashbox-dev \"$0\"; \
         mknod -m 0666 \"$0/fuse\" c 10 229; mount --bind \"$0/fuse\" /dev/fuse; \
         u=$1; g=$2; shift 2; \
         exec setpriv --reuid=\"$u\" --regid=\"$g\" --init-groups -- sh -c \"$1\"",
    ])
    .arg(devdir)
    .arg(ids.0.to_string())
    .arg(ids.1.to_string())
    .arg(script)
    .env("HOME", "/");
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_timeout(&mut cmd, timeout)
}

/// The shell listing both sides of an unprivileged test compare: path, type, mode, size and
/// link target of everything under the current directory, sorted.
pub const LISTING: &str = "find . -printf '%P %y %m %s %l\\n' | LC_ALL=C sort";
