//! Shutdown from several threads at once, as a FUSE server does it: the signal thread
//! flushes after SIGTERM while fuser's `destroy` runs when the session ends, and then the
//! flush at `exit()`. Each caller must return only once the image is written and clean;
//! a caller that returned early let the process exit in the middle of the write-back.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use common::writer::{Writer, assert_fsck_clean};
use common::*;
use squashbox_vfs::Filesystem;

/// Byte offset of the superblock in the image.
const SB: u64 = 1024;
/// `s_state` in the superblock; bit 0 is "cleanly unmounted".
const STATE_AT: u64 = SB + 0x3A;
/// `s_feature_incompat` in the superblock; 0x4 is "needs recovery".
const INCOMPAT_AT: u64 = SB + 0x60;

/// Whether the superblock on disk says clean and needs no journal recovery.
fn clean_on_disk(img: &Path) -> bool {
    let f = fs::File::open(img).unwrap();
    let mut state = [0u8; 2];
    let mut incompat = [0u8; 4];
    f.read_exact_at(&mut state, STATE_AT).unwrap();
    f.read_exact_at(&mut incompat, INCOMPAT_AT).unwrap();
    u16::from_le_bytes(state) & 1 == 1 && u32::from_le_bytes(incompat) & 0x4 == 0
}

#[test]
fn every_concurrent_shutdown_returns_after_the_image_is_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let img = tmp.path().join("img");
    if make_image("ext3", &src, &img, "64M", &[]).is_none() {
        return;
    }
    for round in 0..5 {
        let w = Writer::open(&img);
        assert!(w.fs.journalling(), "the image has a journal");
        assert!(!clean_on_disk(&img), "mounted read-write: needs recovery");
        // Enough uncommitted work that the unmount takes a while.
        w.mkdir(&format!("r{round}"));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + round) as u8).collect();
        for i in 0..40 {
            w.create(&format!("r{round}/f{i}"), &data);
        }
        let fs = Arc::new(w.fs);
        let threads = 4;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (fs, start, img) = (Arc::clone(&fs), Arc::clone(&start), img.clone());
                std::thread::spawn(move || {
                    start.wait();
                    fs.shutdown().unwrap();
                    clean_on_disk(&img)
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert!(
                h.join().unwrap(),
                "round {round}: shutdown caller {i} returned before the image was clean"
            );
        }
        drop(fs);
        assert_fsck_clean(&img, &format!("round {round}"));
    }
}

#[test]
fn changes_after_the_shutdown_fail_and_leave_the_image_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"old\n").unwrap();
    let img = tmp.path().join("img");
    if make_image("ext3", &src, &img, "16M", &[]).is_none() {
        return;
    }
    let w = Writer::open(&img);
    let a = w.get("a").unwrap().node;
    w.write(a, 0, b"new\n");
    w.fs.shutdown().unwrap();
    let after = fs::read(&img).unwrap();
    // What a lazily detached mount may still send once the server has flushed.
    let req = Writer::req();
    let root = squashbox_vfs::ROOT_ID;
    let flags = squashbox_vfs::OpenFlags(libc::O_WRONLY);
    let fh = squashbox_vfs::FileHandle(0);
    assert_eq!(
        w.fs.write(&req, a, fh, 0, b"late", flags).unwrap_err(),
        squashbox_vfs::Errno::EIO
    );
    let name = std::ffi::OsStr::new("late");
    assert_eq!(
        w.fs.mkdir(&req, root, name, 0o755).unwrap_err(),
        squashbox_vfs::Errno::EIO
    );
    assert_eq!(
        w.fs.unlink(&req, root, std::ffi::OsStr::new("a"))
            .unwrap_err(),
        squashbox_vfs::Errno::EIO
    );
    w.fs.fsync(&req, a, fh, false).unwrap();
    w.fs.forget(a, 1);
    w.fs.destroy();
    assert!(
        fs::read(&img).unwrap() == after,
        "the image changed after the shutdown"
    );
    assert_fsck_clean(&img, "after late requests");
    assert_eq!(read_all(&open(&img), a, 4), b"new\n");
}
