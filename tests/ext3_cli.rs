//! `squashbox ext3 mount` and the `fuse2fs` personality, driven as Apptainer drives fuse2fs:
//! `/proc/self/fd/3` sources, pre-mounted `/dev/fd/N` targets, SIGTERM (which must flush and
//! exit within 1 s), and Apptainer's LD_PRELOAD offset shim (a shim of the same shape is
//! compiled here). e2fsck, dumpe2fs and debugfs are the oracles. Needs root and e2fsprogs.

#[path = "common/ext3.rs"]
mod ext3;
#[path = "common/fuse.rs"]
mod fuse;

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ext3::*;
use fuse::*;
use squashbox_fixtures::prereq;

fn ready_ext3(extra: &[&str]) -> bool {
    if !prereq::require_root("FUSE mounts") || !prereq::require_path(Path::new("/dev/fuse")) {
        return false;
    }
    let tools: Vec<&str> = ["mkfs.ext3", "e2fsck", "debugfs", "dumpe2fs"]
        .iter()
        .chain(extra)
        .copied()
        .collect();
    prereq::require_tools(&tools)
}

fn personality(name: &str) -> Command {
    let mut c = Command::new(bin());
    c.arg0(name);
    c
}

/// Make `fd` the child's fd `target` (and clear close-on-exec on it).
fn pass_fd(cmd: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: dup2 and fcntl are async-signal-safe; fd stays open until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `e2fsck -fn` exits 0 and `dumpe2fs -h` says clean.
fn assert_clean(img: &Path) {
    assert_fsck_clean(img, "after unmount");
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Filesystem state:") && l.trim_end().ends_with("clean")),
        "not clean: {text}"
    );
}

/// The file at `path` inside the image, read by debugfs.
fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(img)
        .output()
        .unwrap();
    out.stdout
}

/// Write a small tree through the mount; returns what was written (name, content).
fn write_tree(mnt: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(mnt.join("d/e")).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..20u8)
        .map(|i| {
            let len = 1000 * usize::from(i) * usize::from(i) + 3;
            let data: Vec<u8> = (0..len).map(|j| (j as u8) ^ i.wrapping_mul(31)).collect();
            (format!("d/e/f{i}"), data)
        })
        .collect();
    for (name, data) in &files {
        std::fs::write(mnt.join(name), data).unwrap();
    }
    files
}

/// Write two files through the mount and keep them open without fsync: one created by this
/// open, one that existed and is opened again for writing. Under the writeback cache their
/// data stays in the kernel's page cache until something writes it back. Returns the open
/// files and (name, content) of each.
fn write_and_hold(mnt: &Path) -> (Vec<File>, Vec<(String, Vec<u8>)>) {
    use std::io::Write;
    let data =
        |seed: u32| -> Vec<u8> { (0..300_000u32).map(|i| ((i + seed) % 253) as u8).collect() };
    let mut created = File::create(mnt.join("held-new")).unwrap();
    created.write_all(&data(1)).unwrap();
    std::fs::write(mnt.join("held-old"), data(2)).unwrap();
    let mut reopened = std::fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("held-old"))
        .unwrap();
    reopened.write_all(&data(3)).unwrap();
    (
        vec![created, reopened],
        vec![
            ("held-new".to_string(), data(1)),
            ("held-old".to_string(), data(3)),
        ],
    )
}

fn assert_tree_in_image(img: &Path, files: &[(String, Vec<u8>)]) {
    for (name, data) in files {
        assert!(
            debugfs_cat(img, &format!("/{name}")) == *data,
            "{name} differs in {}",
            img.display()
        );
    }
}

/// SIGTERM `child`; require it to exit within 1 s. Returns how long it took.
fn sigterm_within_a_second(child: &mut Child) -> Duration {
    let start = Instant::now();
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exited = wait_for(Duration::from_secs(5), || {
        child.try_wait().unwrap().is_some()
    });
    let took = start.elapsed();
    assert!(exited, "server still running 5 s after SIGTERM");
    assert!(
        took < Duration::from_secs(1),
        "server took {took:?} to exit after SIGTERM"
    );
    eprintln!("exited {took:?} after SIGTERM");
    took
}

/// Mount /dev/fuse on `mnt` read-write as Apptainer does; returns the fd to hand over.
fn premount_fuse(mnt: &Path) -> File {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    let opts = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
        dev.as_raw_fd()
    );
    nix::mount::mount(
        Some("squashbox-test"),
        mnt,
        Some("fuse"),
        nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    )
    .expect("mount(2) of /dev/fuse");
    dev
}

#[test]
fn help_and_version() {
    let (ok, out) = run_timeout(
        personality("fuse2fs").arg("--help"),
        Duration::from_secs(10),
    );
    assert!(
        ok && out.contains("offset=N") && out.contains("OFFSETPRELOAD"),
        "{out}"
    );
    let (ok, out) = run_timeout(personality("fuse2fs").arg("-V"), Duration::from_secs(10));
    assert!(ok && out.contains("squashbox"), "{out}");
    let (ok, out) = run_timeout(
        personality("fuse2fs").arg("only-one"),
        Duration::from_secs(10),
    );
    assert!(!ok && out.contains("MOUNTPOINT"), "{out}");
    let (ok, out) = run_timeout(
        Command::new(bin()).args(["ext3", "mount", "--help"]),
        Duration::from_secs(10),
    );
    assert!(
        ok && out.contains("--partition") && out.contains("-o"),
        "{out}"
    );
}

#[test]
fn ext3_mount_read_write_then_sigterm_leaves_a_clean_image() {
    if !ready_ext3(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    mkfs_ext3(&img, 64);
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let child = Command::new(bin())
        .args(["ext3", "mount", "-f"])
        .arg(&img)
        .arg(&mnt)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = MountGuard::new(&mnt);
    guard.child = Some(child);
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(&mnt)),
        "not mounted"
    );
    let mut files = write_tree(&mnt);
    let (held, written) = write_and_hold(&mnt);
    files.extend(written);
    // The open file keeps the mount busy: the server detaches it lazily and exits.
    sigterm_within_a_second(guard.child.as_mut().unwrap());
    drop(held);
    assert!(!is_mounted(&mnt));
    assert_clean(&img);
    assert_tree_in_image(&img, &files);

    // Read-only: the tree is there, writes are refused, the image is not touched.
    let before = std::fs::read(&img).unwrap();
    let child = Command::new(bin())
        .args(["ext3", "mount", "-f", "-o", "ro"])
        .arg(&img)
        .arg(&mnt)
        .spawn()
        .unwrap();
    guard.child = Some(child);
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(&mnt)),
        "not mounted ro"
    );
    assert_eq!(std::fs::read(mnt.join(&files[5].0)).unwrap(), files[5].1);
    let err = std::fs::write(mnt.join("new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    sigterm_within_a_second(guard.child.as_mut().unwrap());
    assert!(
        std::fs::read(&img).unwrap() == before,
        "a read-only mount changed the image"
    );
}

#[test]
fn fuse2fs_apptainer_form_with_fd_source_and_target() {
    if !ready_ext3(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    mkfs_ext3(&img, 64);
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let dev = premount_fuse(&mnt);
    let mut guard = MountGuard::new(&mnt);
    let mut cmd = personality("fuse2fs");
    cmd.args([
        "-f",
        "-o",
        "allow_other,fakeroot,frobnicate",
        "/proc/self/fd/3",
        "/dev/fd/4",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    pass_fd(&mut cmd, image.as_raw_fd(), 3);
    pass_fd(&mut cmd, dev.as_raw_fd(), 4);
    guard.child = Some(cmd.spawn().unwrap());
    drop(dev);
    drop(image);
    // The first request waits for the server's INIT answer.
    let mut files = write_tree(&mnt);
    std::fs::create_dir(mnt.join("upper")).unwrap();
    let (held, written) = write_and_hold(&mnt);
    files.extend(written);
    // SIGTERM with the fd target: the server exits without unmounting (the mount belongs
    // to the caller); it must have flushed everything, the pages of a file still open
    // included, and marked the image clean.
    let child = guard.child.as_mut().unwrap();
    sigterm_within_a_second(child);
    drop(held);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("ignoring unknown option frobnicate"),
        "{stderr}"
    );
    force_unmount(&mnt);
    assert_clean(&img);
    assert_tree_in_image(&img, &files);
}

/// A shim of the same shape as Apptainer's offsetpreload.so: hooks open64, pread64 and
/// pwrite64, and shifts I/O on the file named by OFFSETPRELOAD_FILE.
const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
static int shifted_fd = -1;
static off64_t shift;
int open64(const char *path, int flags, ...) {
    int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, "open64");
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    int fd = real(path, flags, mode);
    const char *f = getenv("OFFSETPRELOAD_FILE"), *o = getenv("OFFSETPRELOAD_OFFSET");
    if (fd >= 0 && f && o && strcmp(f, path) == 0) { shifted_fd = fd; shift = strtoll(o, 0, 10); }
    return fd;
}
ssize_t pread64(int fd, void *buf, size_t n, off64_t off) {
    ssize_t (*real)(int, void *, size_t, off64_t) = dlsym(RTLD_NEXT, "pread64");
    return real(fd, buf, n, fd == shifted_fd ? off + shift : off);
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    ssize_t (*real)(int, const void *, size_t, off64_t) = dlsym(RTLD_NEXT, "pwrite64");
    return real(fd, buf, n, fd == shifted_fd ? off + shift : off);
}
"#;

fn build_shim(dir: &Path) -> PathBuf {
    let c = dir.join("shim.c");
    std::fs::write(&c, SHIM).unwrap();
    let so = dir.join("offsetpreload.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&c)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(out.status.success(), "cc: {out:?}");
    so
}

/// Serve `outer` (an ext3 image at OFFSET inside it) with the fuse2fs personality and the
/// offset environment Apptainer sets, with or without the shim preloaded; run `work` on the
/// mount, then SIGTERM.
fn serve_with_offset_env(
    outer: &Path,
    offset: u64,
    shim: Option<&Path>,
    mnt: &Path,
    work: impl FnOnce(&Path),
) {
    let image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(outer)
        .unwrap();
    let mut cmd = personality("fuse2fs");
    cmd.args(["-f", "-o", "allow_other", "/proc/self/fd/3"])
        .arg(mnt)
        .env("OFFSETPRELOAD_FILE", "/proc/self/fd/3")
        .env("OFFSETPRELOAD_OFFSET", offset.to_string())
        .stdout(Stdio::null());
    match shim {
        Some(so) => cmd.env("LD_PRELOAD", so),
        None => cmd.env_remove("LD_PRELOAD"),
    };
    pass_fd(&mut cmd, image.as_raw_fd(), 3);
    let mut guard = MountGuard::new(mnt);
    guard.child = Some(cmd.spawn().unwrap());
    drop(image);
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(mnt)),
        "not mounted"
    );
    work(mnt);
    sigterm_within_a_second(guard.child.as_mut().unwrap());
}

#[test]
fn offset_shim_is_honoured_once_whether_loaded_or_not() {
    if !ready_ext3(&["cc"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let so = build_shim(tmp.path());
    let inner = tmp.path().join("inner");
    mkfs_ext3(&inner, 64);
    const OFFSET: u64 = 3 << 20;
    let junk_head: Vec<u8> = (0..OFFSET).map(|i| (i % 251) as u8).collect();
    let junk_tail = vec![0xA5u8; 1 << 20];
    let outer = tmp.path().join("outer");
    let mut bytes = junk_head.clone();
    bytes.extend(std::fs::read(&inner).unwrap());
    bytes.extend(&junk_tail);
    std::fs::write(&outer, &bytes).unwrap();
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();

    // Dynamic binary with the shim loaded: the shim shifts, we must not shift again.
    let mut files = Vec::new();
    serve_with_offset_env(&outer, OFFSET, Some(&so), &mnt, |m| files = write_tree(m));
    // Without the shim (as a static binary runs): we apply the offset ourselves.
    serve_with_offset_env(&outer, OFFSET, None, &mnt, |m| {
        for (name, data) in &files {
            assert!(
                std::fs::read(m.join(name)).unwrap() == *data,
                "{name} read back differs"
            );
        }
        std::fs::write(m.join("second"), b"written without the shim\n").unwrap();
    });

    let after = std::fs::read(&outer).unwrap();
    assert_eq!(after.len(), bytes.len(), "the file changed size");
    assert!(
        after[..OFFSET as usize] == junk_head[..],
        "bytes before the offset changed"
    );
    let inner_len = after.len() - OFFSET as usize - junk_tail.len();
    assert!(
        after[OFFSET as usize + inner_len..] == junk_tail[..],
        "bytes after the image changed"
    );
    std::fs::write(&inner, &after[OFFSET as usize..OFFSET as usize + inner_len]).unwrap();
    assert_clean(&inner);
    assert_tree_in_image(&inner, &files);
    assert_eq!(
        debugfs_cat(&inner, "/second"),
        b"written without the shim\n"
    );
}

/// Serve `img` read-only with `-o cache=MiB`, stat every file below `dirs` directories of
/// `per_dir` files, and return the server's resident set afterwards (KiB).
fn rss_after_walk(img: &Path, mnt: &Path, cache_mib: u32, dirs: usize, per_dir: usize) -> u64 {
    let child = Command::new(bin())
        .args(["ext3", "mount", "-f", "-o"])
        .arg(format!("ro,cache={cache_mib}"))
        .arg(img)
        .arg(mnt)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = MountGuard::new(mnt);
    guard.child = Some(child);
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(mnt)),
        "not mounted"
    );
    let mut seen = 0;
    for d in 0..dirs {
        for f in 0..per_dir {
            let m = std::fs::symlink_metadata(mnt.join(format!("d{d}/f{f}"))).unwrap();
            seen += usize::from(m.is_file());
        }
    }
    assert_eq!(seen, dirs * per_dir);
    let rss = rss_kib(guard.child.as_ref().unwrap().id());
    sigterm_within_a_second(guard.child.as_mut().unwrap());
    rss
}

#[test]
fn cache_option_bounds_the_metadata_cache() {
    if !ready_ext3(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (dirs, per_dir) = (16, 1500);
    for d in 0..dirs {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            File::create(dir.join(format!("f{f}"))).unwrap();
        }
    }
    // 24,000 inodes of 256 bytes: about 6 MiB of inode tables to read.
    let img = tmp.path().join("img");
    let out = Command::new("mkfs.ext3")
        .args(["-q", "-F", "-N", "30000", "-I", "256", "-d"])
        .arg(&src)
        .arg(&img)
        .arg("256M")
        .output()
        .unwrap();
    assert!(out.status.success(), "mkfs.ext3 -d: {out:?}");
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let small = rss_after_walk(&img, &mnt, 1, dirs, per_dir);
    let large = rss_after_walk(&img, &mnt, 64, dirs, per_dir);
    eprintln!("resident after the walk: cache=1 {small} KiB, cache=64 {large} KiB");
    // The issue's bound: the cache plus 32 MiB.
    assert!(small <= (1 + 32) << 10, "cache=1: {small} KiB resident");
    assert!(large <= (64 + 32) << 10, "cache=64: {large} KiB resident");
    // And the option is what bounds it: the big cache keeps the inode tables.
    assert!(
        large >= small + (3 << 10),
        "cache=1: {small} KiB, cache=64: {large} KiB resident"
    );
}
