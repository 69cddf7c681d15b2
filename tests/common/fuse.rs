//! Helpers for the FUSE integration tests (tests/fuse_*.rs): skipping, mounting with
//! always-unmount guards, kernel loop mounts as oracles, and tree comparison.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The squashbox binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_squashbox")
}

/// Whether we run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    squashbox_fixtures::have_tool(tool)
}

/// Whether a FUSE test can run: root (mounting, kernel loop mounts as oracles), /dev/fuse,
/// mksquashfs and the given extra tools. A missing one is counted through
/// [`squashbox_fixtures::prereq`] (a failure under `CI=true`); the caller returns on `false`.
pub fn ready(tools: &[&str]) -> bool {
    use squashbox_fixtures::prereq;
    if !prereq::require_root("FUSE mounts and kernel loop mounts") {
        return false;
    }
    if !prereq::require_path(Path::new("/dev/fuse")) {
        return false;
    }
    let all: Vec<&str> = ["mksquashfs"].iter().chain(tools).copied().collect();
    prereq::require_tools(&all)
}

/// Apptainer's busybox SIF from the in-repo upstream fixtures (panics if missing).
pub fn busybox_sif() -> PathBuf {
    squashbox_fixtures::upstream("apptainer-e2e/busybox_amd64.sif")
}

/// Byte offset of the SquashFS partition inside [`busybox_sif`].
pub const BUSYBOX_OFFSET: u64 = 45056;

/// Whether `path` is a mount point (per /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = fs::canonicalize(path) else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Wait up to `timeout` for `cond`.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Lazily unmount `path` (umount2 MNT_DETACH, else fusermount3 -u -z).
pub fn force_unmount(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let _ = Command::new("fusermount3")
            .args(["-u", "-q", "-z"])
            .arg(path)
            .output();
    }
}

/// A mount that is always lazily unmounted (and its server killed) when dropped.
pub struct MountGuard {
    /// The mount point.
    pub path: PathBuf,
    /// A foreground server to kill on drop, if any.
    pub child: Option<Child>,
}

impl MountGuard {
    /// Guard an existing mount.
    pub fn new(path: &Path) -> MountGuard {
        MountGuard {
            path: path.to_path_buf(),
            child: None,
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.path) {
            force_unmount(&self.path);
        }
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run `cmd` with a timeout; returns (success, stdout+stderr).
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            let _ = child.stderr.take().unwrap().read_to_string(&mut out);
            return (status.success(), out);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("timed out after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `squashbox mount ARGS... IMAGE DIR` (detaching); panics with the output if it fails.
pub fn mount_ours(image: &Path, dir: &Path, args: &[&str]) -> MountGuard {
    fs::create_dir_all(dir).unwrap();
    let guard = MountGuard::new(dir);
    let (ok, out) = run_timeout(
        Command::new(bin())
            .arg("mount")
            .args(args)
            .arg(image)
            .arg(dir),
        Duration::from_secs(30),
    );
    assert!(ok, "squashbox mount {} failed: {out}", image.display());
    assert!(
        is_mounted(dir),
        "squashbox mount returned but {} is not mounted",
        dir.display()
    );
    guard
}

/// Kernel loop mount of the SquashFS at `offset` in `image`.
pub fn mount_kernel(image: &Path, offset: u64, dir: &Path) -> MountGuard {
    fs::create_dir_all(dir).unwrap();
    let guard = MountGuard::new(dir);
    let (ok, out) = run_timeout(
        Command::new("mount")
            .args(["-t", "squashfs", "-o", &format!("loop,ro,offset={offset}")])
            .arg(image)
            .arg(dir),
        Duration::from_secs(30),
    );
    assert!(ok, "kernel mount of {} failed: {out}", image.display());
    guard
}

/// A fixture tree: the fixtures crate's generator plus a `security.capability` xattr.
pub fn make_tree(dest: &Path, seed: u64) {
    let opts = squashbox_fixtures::TreeOptions {
        seed,
        huge_sparse: false,
        big_dir_entries: 700,
        with_devices: is_root(),
    };
    squashbox_fixtures::generate_tree(dest, &opts).expect("generate tree");
    let capfile = dest.join("cap-bin");
    fs::write(&capfile, b"#!/bin/sh\necho cap\n").unwrap();
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE.
    let mut cap = Vec::new();
    for w in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        cap.extend_from_slice(&w.to_le_bytes());
    }
    if is_root() {
        squashbox_fixtures::sys::lsetxattr(&capfile, "security.capability", &cap)
            .expect("set security.capability");
    }
}

/// Pack `src` into `image` with extra mksquashfs args.
pub fn mksquashfs(src: &Path, image: &Path, args: &[&str]) {
    squashbox_fixtures::mksquashfs(src, image, args).expect("mksquashfs");
}

/// All xattrs of `path` (not following symlinks), name -> value; the errno if listing them
/// fails (the kernel answers EOPNOTSUPP for an image without an xattr table), so two mounts
/// can be compared on that too.
pub fn xattrs(path: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, i32> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: buffer pointer/length describe a live buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1));
    }
    let mut out = BTreeMap::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 65536];
        // SAFETY: as above.
        let m =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        assert!(
            m >= 0,
            "lgetxattr {} {:?}",
            path.display(),
            String::from_utf8_lossy(name)
        );
        val.truncate(m as usize);
        out.insert(name.to_vec(), val);
    }
    Ok(out)
}

/// Hash of a file's contents (FNV-1a 64), reading in odd-sized chunks.
pub fn file_hash(path: &Path) -> std::io::Result<u64> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 100_000];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h);
        }
        for &b in &buf[..n] {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn kind(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "blockdev"
    } else if ft.is_char_device() {
        "chardev"
    } else {
        "?"
    }
}

/// What to compare in [`compare_trees`].
pub struct Compare {
    /// Compare st_uid/st_gid (off when an owner mapping is in force).
    pub owners: bool,
    /// Compare st_ino.
    pub inodes: bool,
}

/// What [`compare_trees`] saw in the oracle's tree, so a caller can prove the comparison
/// was not vacuous (the tree really had owners, xattrs, hard links...).
#[derive(Debug, Default)]
pub struct Walked {
    /// Entries compared.
    pub entries: usize,
    /// Entries with at least one xattr.
    pub with_xattrs: usize,
    /// Entries whose uid or gid is not 0.
    pub not_root_owned: usize,
    /// Non-directories with more than one link.
    pub hard_linked: usize,
}

/// Walk `ours` and `theirs` in parallel; return every difference (empty = identical).
/// Compares every stat field but st_dev, contents, readdir names and types (in order),
/// readlink and xattrs, and that names sharing an inode in one tree share one in the other.
pub fn compare_trees(ours: &Path, theirs: &Path, what: &Compare) -> (Vec<String>, Walked) {
    let mut diffs = Vec::new();
    let mut walked = Walked::default();
    // Hard-link groups: kernel inode -> our inode, and ours -> the kernel's.
    let mut links = (BTreeMap::new(), BTreeMap::new());
    compare_at(
        ours,
        theirs,
        Path::new(""),
        what,
        &mut diffs,
        &mut walked,
        &mut links,
    );
    (diffs, walked)
}

/// Inode maps for hard-link checks: theirs -> ours and ours -> theirs.
type LinkMaps = (BTreeMap<u64, u64>, BTreeMap<u64, u64>);

fn compare_at(
    ours: &Path,
    theirs: &Path,
    rel: &Path,
    what: &Compare,
    diffs: &mut Vec<String>,
    walked: &mut Walked,
    links: &mut LinkMaps,
) {
    let (a, b) = (ours.join(rel), theirs.join(rel));
    walked.entries += 1;
    let (ma, mb) = match (fs::symlink_metadata(&a), fs::symlink_metadata(&b)) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => {
            diffs.push(format!(
                "{}: lstat ours {:?} kernel {:?}",
                rel.display(),
                x.err(),
                y.err()
            ));
            return;
        }
    };
    if mb.uid() != 0 || mb.gid() != 0 {
        walked.not_root_owned += 1;
    }
    let fields = |m: &fs::Metadata| {
        vec![
            ("mode", u64::from(m.mode())),
            ("nlink", m.nlink()),
            ("uid", if what.owners { u64::from(m.uid()) } else { 0 }),
            ("gid", if what.owners { u64::from(m.gid()) } else { 0 }),
            ("rdev", m.rdev()),
            ("size", m.size()),
            ("blocks", m.blocks()),
            ("blksize", m.blksize()),
            ("atime", m.atime() as u64),
            ("atime_nsec", m.atime_nsec() as u64),
            ("mtime", m.mtime() as u64),
            ("mtime_nsec", m.mtime_nsec() as u64),
            ("ctime", m.ctime() as u64),
            ("ctime_nsec", m.ctime_nsec() as u64),
            ("ino", if what.inodes { m.ino() } else { 0 }),
        ]
    };
    for ((name, x), (_, y)) in fields(&ma).into_iter().zip(fields(&mb)) {
        if x != y {
            diffs.push(format!("{}: st_{name} ours {x} kernel {y}", rel.display()));
        }
    }
    let ft = mb.file_type();
    if !ft.is_dir() && mb.nlink() > 1 {
        walked.hard_linked += 1;
        let (theirs_to_ours, ours_to_theirs) = links;
        let want_ours = *theirs_to_ours.entry(mb.ino()).or_insert(ma.ino());
        let want_theirs = *ours_to_theirs.entry(ma.ino()).or_insert(mb.ino());
        if want_ours != ma.ino() || want_theirs != mb.ino() {
            diffs.push(format!(
                "{}: hard links differ: kernel inode {} is ours {want_ours}, ours {} is \
                 kernel {want_theirs}",
                rel.display(),
                mb.ino(),
                ma.ino()
            ));
        }
    }
    let (xa, xb) = (xattrs(&a), xattrs(&b));
    if xb.as_ref().is_ok_and(|x| !x.is_empty()) {
        walked.with_xattrs += 1;
    }
    if xa != xb {
        diffs.push(format!(
            "{}: xattrs ours {xa:?} kernel {xb:?}",
            rel.display()
        ));
    }
    if ft.is_symlink() {
        let (la, lb) = (fs::read_link(&a), fs::read_link(&b));
        match (&la, &lb) {
            (Ok(x), Ok(y)) if x == y => {}
            _ => diffs.push(format!(
                "{}: readlink ours {la:?} kernel {lb:?}",
                rel.display()
            )),
        }
    } else if ft.is_file() {
        match (file_hash(&a), file_hash(&b)) {
            (Ok(x), Ok(y)) if x == y => {}
            (ha, hb) => diffs.push(format!(
                "{}: contents differ ({ha:?} vs {hb:?})",
                rel.display()
            )),
        }
    } else if ft.is_dir() {
        let list = |p: &Path| -> std::io::Result<Vec<(std::ffi::OsString, &'static str)>> {
            fs::read_dir(p)?
                .map(|e| {
                    let e = e?;
                    Ok((e.file_name(), kind(e.file_type()?)))
                })
                .collect()
        };
        let (da, db) = match (list(&a), list(&b)) {
            (Ok(x), Ok(y)) => (x, y),
            (x, y) => {
                diffs.push(format!(
                    "{}: readdir ours {:?} kernel {:?}",
                    rel.display(),
                    x.err(),
                    y.err()
                ));
                return;
            }
        };
        if da != db {
            diffs.push(format!(
                "{}: readdir differs: {} vs {} entries",
                rel.display(),
                da.len(),
                db.len()
            ));
        }
        for (name, _) in db {
            compare_at(ours, theirs, &rel.join(name), what, diffs, walked, links);
        }
    }
}

/// statvfs (blocks, files, bsize, namemax).
pub fn statfs(path: &Path) -> (u64, u64, u64, u64) {
    let s = nix::sys::statvfs::statvfs(path).expect("statvfs");
    (s.blocks(), s.files(), s.block_size(), s.name_max())
}

/// Start `squashbox mount -f ARGS... IMAGE DIR` as a child with its stderr on a pipe (read it
/// with [`stop_server`]); returns once the mount answers. Panics, with the server's stderr,
/// if it exits or does not mount within 20 s.
pub fn serve_foreground(image: &Path, dir: &Path, args: &[&str]) -> MountGuard {
    let mut argv = vec!["mount", "-f"];
    argv.extend_from_slice(args);
    argv.push(image.to_str().expect("a UTF-8 image path"));
    serve_command_foreground(&argv, dir)
}

/// Start `squashbox ARGV... DIR` (a server in the foreground: `mount -f`, `overlay mount -f`,
/// `ext3 mount -f`) as a child, as [`serve_foreground`] does.
pub fn serve_command_foreground(argv: &[&str], dir: &Path) -> MountGuard {
    fs::create_dir_all(dir).unwrap();
    let child = Command::new(bin())
        .args(argv)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a squashbox server");
    let mut guard = MountGuard::new(dir);
    guard.child = Some(child);
    let child = guard.child.as_mut().unwrap();
    let up = wait_for(Duration::from_secs(20), || {
        is_mounted(dir) || child.try_wait().unwrap().is_some()
    });
    if !is_mounted(dir) {
        let _ = child.kill();
        let _ = child.wait();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!(
            "squashbox {argv:?} {} did not mount (up={up}): {err}",
            dir.display()
        );
    }
    guard
}

/// Unmount a [`serve_foreground`] server with `squashbox unmount`, require it to exit 0 within
/// 15 s, and return everything it wrote to stderr.
pub fn stop_server(guard: &mut MountGuard) -> String {
    let (ok, out) = run_timeout(
        Command::new(bin()).arg("unmount").arg(&guard.path),
        Duration::from_secs(20),
    );
    assert!(ok, "squashbox unmount {}: {out}", guard.path.display());
    let child = guard.child.as_mut().expect("a foreground server");
    assert!(
        wait_for(Duration::from_secs(15), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "server still running 15 s after unmount"
    );
    let status = child.try_wait().unwrap().unwrap();
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut err).unwrap();
    }
    assert!(status.success(), "server exited with {status}: {err}");
    err
}

/// The counters of the server's `-o print_stats` exit line
/// (`squashbox: requests served: total=N lookup=N ...`), by name; `None` if the line is absent.
pub fn requests_served(stderr: &str) -> Option<BTreeMap<String, u64>> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("squashbox: requests served:"))?;
    let counts = line
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("bad counter {kv:?} in {line:?}"));
            let n = v
                .parse()
                .unwrap_or_else(|e| panic!("bad count {kv:?} in {line:?}: {e}"));
            (k.to_string(), n)
        })
        .collect();
    Some(counts)
}

/// VmRSS (KiB) of process `pid`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The (uid, gid) of system user `name`, created with useradd if missing; `None` (a counted
/// skip) when that fails.
pub fn ensure_named_user(name: &str) -> Option<(u32, u32)> {
    // Tests of one binary may get here at once: one useradd at a time.
    static USERADD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = USERADD.lock().unwrap_or_else(|e| e.into_inner());
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    };
    if id("-u").is_none() {
        let (ok, out) = run_timeout(
            Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/sh",
                name,
            ]),
            Duration::from_secs(30),
        );
        if !ok && !out.contains("already exists") {
            squashbox_fixtures::prereq::skip(&format!(
                "needs a test user: useradd {name} failed: {out}"
            ));
            return None;
        }
    }
    Some((
        id("-u").expect("test user's uid"),
        id("-g").expect("test user's gid"),
    ))
}
