//! Differential tests: our FUSE mount against the kernel's SquashFS loop mount of the same
//! bytes, for every compressor mksquashfs can write and for Apptainer's busybox SIF (served
//! through our own SIF handling). Needs root, mksquashfs and the kernel squashfs driver.

#[path = "common/fuse.rs"]
mod fuse;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fuse::*;

fn assert_same(ours: &Path, kernel: &Path, what: &Compare, label: &str) -> Walked {
    let (diffs, walked) = compare_trees(ours, kernel, what);
    assert!(
        diffs.is_empty(),
        "{label}: {} differences, first: {:#?}",
        diffs.len(),
        &diffs[..diffs.len().min(15)]
    );
    assert!(walked.entries > 3, "{label}: only {walked:?} walked");
    assert_eq!(
        statfs(ours),
        statfs(kernel),
        "{label}: statfs (blocks, files, bsize, namemax)"
    );
    println!("{label}: identical: {walked:?}");
    walked
}

#[test]
fn every_compressor_matches_the_kernel() {
    if !ready(&["mount"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 7);
    let comps: &[(&str, &[&str])] = &[
        ("gzip", &["-comp", "gzip"]),
        ("lzo", &["-comp", "lzo"]),
        ("lz4", &["-comp", "lz4", "-Xhc"]),
        ("xz", &["-comp", "xz", "-Xbcj", "x86"]),
        ("zstd", &["-comp", "zstd", "-b", "64K"]),
        (
            "gzip-nofrag-4k",
            &["-comp", "gzip", "-no-fragments", "-b", "4K"],
        ),
    ];
    for (name, args) in comps {
        let img = tmp.path().join(format!("{name}.sqfs"));
        mksquashfs(&src, &img, args);
        let ours = tmp.path().join(format!("ours-{name}"));
        let kern = tmp.path().join(format!("kern-{name}"));
        let _g1 = mount_ours(&img, &ours, &[]);
        let _g2 = mount_kernel(&img, 0, &kern);
        let walked = assert_same(
            &ours,
            &kern,
            &Compare {
                owners: true,
                inodes: true,
            },
            name,
        );
        // The comparison covered owners, xattrs and hard links for real: the fixture tree
        // has all three, and the kernel shows them.
        assert!(walked.entries > 700, "{name}: {walked:?}");
        assert!(
            walked.not_root_owned >= 5,
            "{name}: owners untested: {walked:?}"
        );
        assert!(
            walked.with_xattrs >= 5,
            "{name}: xattrs untested: {walked:?}"
        );
        assert!(
            walked.hard_linked >= 5,
            "{name}: hard links untested: {walked:?}"
        );
    }
}

/// An image without an xattr table (`mksquashfs -no-xattrs`): the kernel refuses `listxattr`
/// with EOPNOTSUPP on directories, symlinks and extended inodes (hard-linked files) and
/// lists nothing on the rest; `getxattr` is ENODATA everywhere. We must answer the same.
#[test]
fn no_xattr_table_matches_the_kernel() {
    if !ready(&["mount"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 5);
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &["-no-xattrs"]);
    let ours = tmp.path().join("ours");
    let kern = tmp.path().join("kern");
    let _g1 = mount_ours(&img, &ours, &[]);
    let _g2 = mount_kernel(&img, 0, &kern);
    let walked = assert_same(
        &ours,
        &kern,
        &Compare {
            owners: true,
            inodes: true,
        },
        "-no-xattrs",
    );
    assert_eq!(walked.with_xattrs, 0, "{walked:?}");
    // Not vacuous: the kernel refused some entries and listed (nothing) for others, and
    // getxattr answered ENODATA on both kinds.
    let (mut refused, mut listed) = (0, 0);
    for p in walk(&kern) {
        match xattrs(&p) {
            Err(libc::EOPNOTSUPP) => refused += 1,
            Ok(x) if x.is_empty() => listed += 1,
            other => panic!("{}: kernel listxattr gave {other:?}", p.display()),
        }
        for root in [&kern, &ours] {
            let q = root.join(p.strip_prefix(&kern).unwrap());
            let c = std::ffi::CString::new(q.as_os_str().as_encoded_bytes()).unwrap();
            let mut buf = [0u8; 16];
            // SAFETY: plain lgetxattr with NUL-terminated strings and a buffer we own.
            let n = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    c"user.none".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            let err = std::io::Error::last_os_error().raw_os_error();
            assert_eq!((n, err), (-1, Some(libc::ENODATA)), "{}", q.display());
        }
    }
    assert!(
        refused >= 10 && listed >= 10,
        "refused {refused}, listed {listed}"
    );
}

#[test]
fn busybox_sif_matches_the_kernel() {
    if !ready(&["mount"]) {
        return;
    }
    let sif = &busybox_sif();
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let kern = tmp.path().join("kern");
    let _g1 = mount_ours(sif, &ours, &[]);
    let _g2 = mount_kernel(sif, BUSYBOX_OFFSET, &kern);
    assert_same(
        &ours,
        &kern,
        &Compare {
            owners: true,
            inodes: true,
        },
        "busybox_amd64.sif",
    );
    assert!(ours.join("bin/busybox").is_file());
    // The same partition picked explicitly by descriptor id.
    let by_id = tmp.path().join("by-id");
    let _g3 = mount_ours(sif, &by_id, &["--partition", "4"]);
    assert!(by_id.join(".singularity.d").is_dir());
}

#[test]
fn bad_partition_and_bad_image_fail_cleanly() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let junk = tmp.path().join("junk.img");
    std::fs::write(&junk, vec![0x5a; 10_000]).unwrap();
    let (ok, out) = run_timeout(
        Command::new(bin()).arg("mount").arg(&junk).arg(&mnt),
        Duration::from_secs(20),
    );
    assert!(!ok, "mounting junk succeeded");
    assert!(
        out.contains("junk.img"),
        "error does not name the image: {out}"
    );
    assert_eq!(out.trim().lines().count(), 1, "not a one-line error: {out}");
    assert!(!is_mounted(&mnt));
    let (ok, out) = run_timeout(
        Command::new(bin())
            .args(["mount", "--partition", "2"])
            .arg(busybox_sif())
            .arg(&mnt),
        Duration::from_secs(20),
    );
    // Object 2 is JSON: the SIF layer or the server must refuse it with one line.
    assert!(!ok, "JSON object mounted as a partition: {out}");
    assert_eq!(out.trim().lines().count(), 1, "not a one-line error: {out}");
    assert!(
        out.contains("busybox_amd64.sif"),
        "error does not name the image: {out}"
    );
    assert!(!is_mounted(&mnt));
}

#[test]
fn owner_mapping_and_subdir() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 3);
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &[]);
    let mnt = tmp.path().join("m");
    let _g = mount_ours(&img, &mnt, &["-o", "uid=1234,gid=5678"]);
    let mut n = 0;
    for e in walk(&mnt) {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(&e).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "{}", e.display());
        n += 1;
    }
    assert!(n > 10);
    // subdir= serves one directory as the root.
    let sub = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_type().unwrap().is_dir())
        .unwrap();
    let smnt = tmp.path().join("s");
    let _g2 = mount_ours(
        &img,
        &smnt,
        &[
            "-o",
            &format!("subdir=/{}", sub.file_name().to_string_lossy()),
        ],
    );
    let mut want: Vec<_> = std::fs::read_dir(sub.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut got: Vec<_> = std::fs::read_dir(&smnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    out
}

/// Pack a one-file image (`/f` = "hello") under `dir` and serve it with `squashbox mount FLAG`
/// as a child whose stderr goes to a log file; returns once the mount answers.
fn serve_one_file_image(dir: &Path, flag: &str) -> (PathBuf, PathBuf, MountGuard) {
    let src = dir.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"hello").unwrap();
    let img = dir.join("img.sqfs");
    mksquashfs(&src, &img, &[]);
    let mnt = dir.join("m");
    std::fs::create_dir(&mnt).unwrap();
    let log = dir.join("log");
    let child = Command::new(bin())
        .args(["mount", flag])
        .arg(&img)
        .arg(&mnt)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = MountGuard::new(&mnt);
    guard.child = Some(child);
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(&mnt)),
        "not mounted"
    );
    (mnt, log, guard)
}

/// Whether `child` exits within 15 s.
fn wait_for_exit(child: &mut std::process::Child) -> bool {
    wait_for(Duration::from_secs(15), || {
        child.try_wait().unwrap().is_some()
    })
}

#[test]
fn debug_log_shows_negotiated_capabilities_and_sigterm_unmounts() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mnt, log, mut guard) = serve_one_file_image(tmp.path(), "-d");
    let pid = guard.child.as_ref().unwrap().id() as i32;
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"hello");
    let text = std::fs::read_to_string(&log).unwrap();
    for cap in [
        "PARALLEL_DIROPS",
        "DO_READDIRPLUS",
        "READDIRPLUS_AUTO",
        "CACHE_SYMLINKS",
    ] {
        assert!(
            text.contains(cap),
            "{cap} not granted; log: {}",
            &text[..text.len().min(3000)]
        );
    }
    // Keep a file open so the mount is busy: SIGTERM must still detach it and exit 0.
    let busy = std::fs::File::open(mnt.join("f")).unwrap();
    // SAFETY: plain kill(2) on our child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let child = guard.child.as_mut().unwrap();
    assert!(wait_for_exit(child), "server still running after SIGTERM");
    assert!(
        child.try_wait().unwrap().unwrap().success(),
        "non-zero exit after SIGTERM"
    );
    assert!(!is_mounted(&mnt), "still mounted after SIGTERM");
    drop(busy);
}

/// Requests a read-only filesystem cannot serve (CPython's `isatty` ioctl on every open, fsync,
/// flock, SEEK_DATA) get the kernel driver's answers, and the server logs nothing for them,
/// nor for being unmounted by `squashbox unmount`.
#[test]
fn unserved_requests_answer_quietly() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mnt, log, mut guard) = serve_one_file_image(tmp.path(), "-f");
    use std::os::fd::AsRawFd;
    for _ in 0..3 {
        let f = std::fs::File::open(mnt.join("f")).unwrap();
        let fd = f.as_raw_fd();
        // SAFETY: plain syscalls on an fd we own; the termios buffer outlives the call.
        unsafe {
            let mut tio: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(fd, &mut tio), -1, "isatty on a file");
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::ENOTTY)
            );
            assert_eq!(
                libc::fsync(fd),
                0,
                "fsync: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::flock(fd, libc::LOCK_SH), 0, "flock");
            assert_eq!(libc::lseek(fd, 0, libc::SEEK_DATA), 0, "SEEK_DATA");
        }
        drop(f);
    }
    let (ok, out) = run_timeout(
        Command::new(bin()).arg("unmount").arg(&mnt),
        Duration::from_secs(20),
    );
    assert!(ok, "squashbox unmount failed: {out}");
    let child = guard.child.as_mut().unwrap();
    assert!(wait_for_exit(child), "server still running after unmount");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.is_empty(), "server logged: {text}");
}
