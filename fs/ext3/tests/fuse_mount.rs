//! The whole stack (root, /dev/fuse): an ext3 image served read-write over FUSE by
//! `squashbox-fuse`, filled by ordinary file operations through the kernel (the generated
//! tree: sizes across indirect levels, sparse files, hard links, symlinks, devices, xattrs,
//! owners, nanosecond times; then renames, truncation and removal), unmounted, and then
//! `e2fsck -fn` clean and identical to the reference tree as the kernel's ext3 driver reads it.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::tree;
use common::writer::assert_fsck_clean;
use common::*;
use squashbox_ext3::Ext3Fs;
use squashbox_fixtures::prereq;
use squashbox_fuse::{MountTarget, ServeOptions};

/// Serve `img` read-write at `mnt` on a thread; returns once mounted.
fn serve(img: &Path, mnt: &Path) -> std::thread::JoinHandle<Result<(), String>> {
    fs::create_dir_all(mnt).unwrap();
    let (tx, rx) = mpsc::channel();
    let img = img.to_path_buf();
    let target = MountTarget::Path(mnt.to_path_buf());
    let h = std::thread::spawn(move || {
        let open: squashbox_fuse::Opener<'_> = Box::new(move |_| {
            let fs = Ext3Fs::open(&img, 0, false).map_err(|e| e.to_string())?;
            Ok((
                Arc::new(fs) as Arc<dyn squashbox_vfs::Filesystem>,
                "ext3-test".to_string(),
            ))
        });
        let opts = ServeOptions {
            threads: Some(2),
            ..ServeOptions::default()
        };
        squashbox_fuse::serve(
            open,
            target,
            &opts,
            Box::new(move |r| {
                let _ = tx.send(r.map_err(str::to_string));
            }),
        )
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the FUSE session answered")
        .expect("mounted");
    h
}

fn umount(mnt: &Path, h: std::thread::JoinHandle<Result<(), String>>) {
    run(Command::new("umount").arg(mnt), &[0]);
    h.join()
        .expect("the session thread")
        .expect("the session ended cleanly");
}

#[test]
fn a_tree_written_through_fuse_is_what_the_kernel_reads() {
    if !prereq::require_root("FUSE mounts and loop mounts")
        || !prereq::require_path(Path::new("/dev/fuse"))
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let img = tmp.path().join("img");
    if make_image("ext3", &src, &img, "128M", &[]).is_none() {
        return;
    }
    let mnt = tmp.path().join("mnt");
    let h = serve(&img, &mnt);
    let reference = tmp.path().join("reference");
    tree::build(&reference);
    tree::build(&mnt.join("tree"));
    // Some churn on top: renames, truncation, removal, an overwrite.
    for root in [&reference, &mnt.join("tree")] {
        fs::rename(root.join("files/f-00001025"), root.join("links/sub/moved")).unwrap();
        fs::rename(root.join("deep/l0"), root.join("empty/l0")).unwrap();
        let f = fs::OpenOptions::new()
            .write(true)
            .open(root.join("files/f-05242880"))
            .unwrap();
        f.set_len(300 * 1024 + 5).unwrap();
        drop(f);
        fs::write(root.join("files/f-00000001"), b"rewritten with O_TRUNC").unwrap();
        for i in (0..tree::BIG_DIR_ENTRIES).step_by(5) {
            fs::remove_file(root.join("bigdir").join(tree::big_name(i))).unwrap();
        }
        fs::remove_dir_all(root.join("names")).unwrap();
    }
    let before = fs::metadata(mnt.join("tree/files/f-00001024")).unwrap();
    umount(&mnt, h);
    assert_fsck_clean(&img, "tree written through FUSE");

    // The kernel's ext3 driver reads back what was written, and agrees with the driver.
    let kmnt = Mount::new(&img, "ext3", &tmp.path().join("kmnt"));
    let mut compared = 0;
    compare_trees(
        &reference,
        &kmnt.dir.join("tree"),
        Path::new(""),
        &mut compared,
    );
    assert!(compared > 4000, "compared {compared} nodes");
    let ours = open(&img);
    let mut n = 0;
    diff_with_kernel(&ours, &kmnt.dir, Path::new(""), &mut n);
    let after = fs::metadata(kmnt.dir.join("tree/files/f-00001024")).unwrap();
    assert_eq!((after.ino(), after.size()), (before.ino(), before.size()));
}

/// The reference tree and the image's copy hold the same names, types, modes, owners,
/// sizes, contents, link targets, device numbers and xattrs (and a set mtime).
fn compare_trees(a: &Path, b: &Path, rel: &Path, n: &mut usize) {
    let (pa, pb) = (a.join(rel), b.join(rel));
    let (ma, mb) = (
        fs::symlink_metadata(&pa).unwrap(),
        fs::symlink_metadata(&pb).unwrap(),
    );
    *n += 1;
    let what = rel.display();
    assert_eq!(ma.mode(), mb.mode(), "mode of {what}");
    assert_eq!(
        (ma.uid(), ma.gid()),
        (mb.uid(), mb.gid()),
        "owner of {what}"
    );
    assert_eq!(host_xattrs(&pa), host_xattrs(&pb), "xattrs of {what}");
    if ma.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let (na, nb) = (names(&pa), names(&pb));
        assert_eq!(na, nb, "listing of {what}");
        for name in na {
            compare_trees(a, b, &rel.join(name), n);
        }
        return;
    }
    if rel == Path::new("files/f-00000000") {
        // utimensat through FUSE (the other files keep their own creation times).
        assert_eq!((mb.mtime(), mb.mtime_nsec()), (0, 0), "mtime of {what}");
    }
    assert_eq!(ma.nlink(), mb.nlink(), "nlink of {what}");
    if ma.file_type().is_symlink() {
        assert_eq!(
            fs::read_link(&pa).unwrap(),
            fs::read_link(&pb).unwrap(),
            "{what}"
        );
    } else if ma.is_file() {
        assert_eq!(ma.size(), mb.size(), "size of {what}");
        assert!(
            fs::read(&pa).unwrap() == fs::read(&pb).unwrap(),
            "content of {what}"
        );
    } else {
        assert_eq!(ma.rdev(), mb.rdev(), "rdev of {what}");
    }
}

/// Not a test by itself: the server process the crash test starts (and kills).
#[test]
#[ignore = "started by a_killed_server_leaves_a_consistent_image"]
fn serve_helper() {
    let (Some(img), Some(mnt)) = (
        std::env::var_os("EXT3_TEST_IMG"),
        std::env::var_os("EXT3_TEST_MNT"),
    ) else {
        panic!("serve_helper runs only as the child of the crash test");
    };
    let h = serve(Path::new(&img), Path::new(&mnt));
    let _ = h.join();
}

#[test]
fn a_killed_server_leaves_a_consistent_image() {
    if !prereq::require_root("FUSE mounts and loop mounts")
        || !prereq::require_path(Path::new("/dev/fuse"))
    {
        return;
    }
    for (round, kill_after_ms) in [300u64, 900, 1700, 2600].into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("before"), b"committed long ago").unwrap();
        let img = tmp.path().join("img");
        if make_image("ext3", &src, &img, "64M", &[]).is_none() {
            return;
        }
        let mnt = tmp.path().join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "serve_helper", "--nocapture"])
            .env("EXT3_TEST_IMG", &img)
            .env("EXT3_TEST_MNT", &mnt)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut mounted = false;
        for _ in 0..100 {
            if fs::read(mnt.join("before")).is_ok() {
                mounted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(mounted, "round {round}: the server mounted");
        // A busy writer, killed at a random-ish point.
        let root = mnt.clone();
        let last_synced = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let synced_out = Arc::clone(&last_synced);
        let writer = std::thread::spawn(move || -> u64 {
            for i in 0..100_000 {
                let d = root.join(format!("d{}", i % 17));
                let _ = fs::create_dir(&d);
                if fs::write(
                    d.join(format!("f{i}")),
                    tree::bytes(i, (i as usize * 977) % 20_000),
                )
                .is_err()
                {
                    return i;
                }
                if i % 25 == 0 {
                    // fsync commits the journal: kills then land in and between commits.
                    let synced = fs::File::open(d.join(format!("f{i}"))).and_then(|f| f.sync_all());
                    if synced.is_err() {
                        return i;
                    }
                    synced_out.store(i, std::sync::atomic::Ordering::SeqCst);
                }
                if i % 3 == 0 && i > 3 {
                    // It may be gone already (renamed away): only the attempt matters.
                    let _ = fs::remove_file(d.join(format!("f{}", i - 3)));
                }
                if i % 7 == 0
                    && fs::rename(d.join(format!("f{i}")), root.join(format!("r{i}"))).is_err()
                {
                    return i;
                }
            }
            100_000
        });
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        child.kill().unwrap();
        let _ = child.wait();
        let _ = Command::new("umount").arg("-l").arg(&mnt).status();
        let written = writer.join().unwrap();
        assert!(
            written > 10,
            "round {round}: only {written} files before the kill"
        );
        let h = run(Command::new("dumpe2fs").arg("-h").arg(&img), &[0]);
        assert!(
            h.contains("needs_recovery"),
            "round {round}: killed while journalling:\n{h}"
        );
        // The kernel replays our journal and finds a consistent filesystem.
        let kcopy = tmp.path().join("kernel-copy");
        fs::copy(&img, &kcopy).unwrap();
        let m = Mount::with_options(&kcopy, "ext3", &tmp.path().join("kmnt"), "loop");
        assert_eq!(
            fs::read(m.dir.join("before")).unwrap(),
            b"committed long ago"
        );
        drop(m);
        assert_fsck_clean(&kcopy, &format!("round {round}: after the kernel's replay"));
        // So does our own open (replay, then the orphan list).
        let fs = Ext3Fs::open(&img, 0, false).unwrap();
        // What fsync returned for is there (unless a later step removed it).
        let j = last_synced.load(std::sync::atomic::Ordering::SeqCst);
        eprintln!("round {round}: {written} files written, the last fsynced was {j}");
        if j != u64::MAX && !j.is_multiple_of(3) {
            let want = tree::bytes(j, (j as usize * 977) % 20_000);
            let found =
                find(&fs, &format!("d{}/f{j}", j % 17)).or_else(|| find(&fs, &format!("r{j}")));
            let e = found.unwrap_or_else(|| panic!("round {round}: fsynced file {j} is gone"));
            assert!(
                read_all(&fs, e.node, e.attr.size) == want,
                "round {round}: fsynced file {j} differs"
            );
        }
        squashbox_vfs::Filesystem::destroy(&fs);
        drop(fs);
        assert_fsck_clean(&img, &format!("round {round}: after our replay"));
    }
}

/// Look a relative path up, `None` when any part is missing.
fn find(fs: &dyn squashbox_vfs::Filesystem, path: &str) -> Option<squashbox_vfs::Entry> {
    let mut node = squashbox_vfs::ROOT_ID;
    let mut entry = None;
    for part in path.split('/') {
        let e = fs.lookup(&req(), node, part.as_ref()).ok().flatten()?;
        node = e.node;
        entry = Some(e);
    }
    entry
}
