//! Journal replay against fixtures made by debugfs (`jo` / `jw` / `jc` write real jbd2
//! transactions and set needs_recovery): a read-only open serves the replayed blocks and
//! leaves the image untouched, a read-write open replays for real (e2fsck clean after),
//! revokes and uncommitted transactions are honoured, and the kernel agrees. A damaged log
//! never panics.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::writer::assert_fsck_clean;
use common::*;
use squashbox_ext3::{Ext3Fs, Volume};
use squashbox_vfs::Filesystem;

const NEW: &[u8; 4] = b"new!";

/// An image with file `a` ("old\n") whose data block gets `script` of journal commands
/// (`{B}` is the block, `{F}` a file holding a block of "new!"). Returns (image, block).
fn fixture(dir: &Path, script: &str) -> Option<(PathBuf, u64)> {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"old\n").unwrap();
    let img = dir.join("img");
    make_image("ext3", &src, &img, "8M", &[])?;
    let out = run(
        Command::new("debugfs").arg("-R").arg("bmap /a 0").arg(&img),
        &[0],
    );
    let blk: u64 = out.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
    let newblk = dir.join("newblk");
    fs::write(&newblk, NEW.repeat(256)).unwrap();
    let cmds = dir.join("cmds");
    let script = script
        .replace("{B}", &blk.to_string())
        .replace("{F}", &newblk.display().to_string());
    fs::write(&cmds, script).unwrap();
    run(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&cmds)
            .arg(&img),
        &[0],
    );
    let h = run(Command::new("dumpe2fs").arg("-h").arg(&img), &[0]);
    assert!(
        h.contains("needs_recovery"),
        "debugfs left a journal to recover:\n{h}"
    );
    Some((img, blk))
}

fn content_of_a(fs: &Ext3Fs) -> Vec<u8> {
    let e = resolve(fs, Path::new("a"));
    read_all(fs, e.node, e.attr.size)
}

#[test]
fn read_only_open_replays_in_memory_and_read_write_for_real() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((img, _)) = fixture(tmp.path(), "jo\njw -b {B} {F}\njc\n") else {
        return;
    };
    let before = fs::read(&img).unwrap();
    let ro = open(&img);
    assert_eq!(content_of_a(&ro), NEW, "the logged block is served");
    drop(ro);
    assert!(
        fs::read(&img).unwrap() == before,
        "a read-only open writes nothing"
    );
    if squashbox_fixtures::prereq::require_root("the kernel's ext3 driver as a cross-check") {
        let copy = tmp.path().join("kernel-copy");
        fs::copy(&img, &copy).unwrap();
        // A read-only loop device cannot be replayed: mount the copy read-write.
        let m = Mount::with_options(&copy, "ext3", &tmp.path().join("mnt"), "loop");
        assert_eq!(
            fs::read(m.dir.join("a")).unwrap(),
            NEW,
            "the kernel replays the same"
        );
    }
    let rw = Ext3Fs::open(&img, 0, false).unwrap();
    assert!(rw.writable());
    assert_eq!(content_of_a(&rw), NEW);
    rw.destroy();
    drop(rw);
    assert_fsck_clean(&img, "after replay");
    let h = run(Command::new("dumpe2fs").arg("-h").arg(&img), &[0]);
    assert!(
        !h.contains("needs_recovery") && h.contains("Journal start:            0"),
        "{h}"
    );
    assert_eq!(content_of_a(&open(&img)), NEW);
}

#[test]
fn revoked_blocks_are_not_replayed_unless_the_revoke_never_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((img, _)) = fixture(tmp.path(), "jo\njw -b {B} {F}\njc\njo\njw -r {B} {F}\njc\n")
    else {
        return;
    };
    assert_eq!(
        content_of_a(&open(&img)),
        b"old\n",
        "revoked by a later transaction"
    );
    if squashbox_fixtures::prereq::require_root("the kernel's ext3 driver as a cross-check") {
        let copy = tmp.path().join("kernel-copy");
        fs::copy(&img, &copy).unwrap();
        // A read-only loop device cannot be replayed: mount the copy read-write.
        let m = Mount::with_options(&copy, "ext3", &tmp.path().join("mnt"), "loop");
        assert_eq!(fs::read(m.dir.join("a")).unwrap(), b"old\n");
    }
    // Break the second transaction's commit block: the revoke no longer counts.
    let vol = Volume::open(&img, 0, true).unwrap();
    let j = vol.inode(vol.sb().journal_inum).unwrap();
    let bs = u64::from(vol.block_size());
    let commit2 = vol.map(&j, 5, 1).unwrap().phys.unwrap();
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0u8; 4], commit2 * bs).unwrap();
    assert_eq!(
        content_of_a(&open(&img)),
        NEW,
        "an uncommitted revoke is ignored"
    );
}

#[test]
fn a_damaged_log_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((img, _)) = fixture(tmp.path(), "jo\njw -b {B} {F}\njc\njo\njw -r {B} {F}\njc\n")
    else {
        return;
    };
    let vol = Volume::open(&img, 0, true).unwrap();
    let j = vol.inode(vol.sb().journal_inum).unwrap();
    let bs = u64::from(vol.block_size());
    let log: Vec<u64> = (0..6)
        .map(|l| vol.map(&j, l, 1).unwrap().phys.unwrap())
        .collect();
    let good = fs::read(&img).unwrap();
    let case = tmp.path().join("case");
    let mut x = 0x1234_5678_9abc_def0u64;
    for i in 0..200 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let blk = log[(x % log.len() as u64) as usize];
            // Mostly the headers and tags, where the interesting fields are.
            let at = blk * bs + (x >> 8) % 64;
            bytes[at as usize] = (x >> 32) as u8;
        }
        fs::write(&case, &bytes).unwrap();
        let path = case.clone();
        let h = std::thread::spawn(move || {
            if let Ok(fs) = Ext3Fs::open(&path, 0, true) {
                let _ = fs.lookup(&req(), 1, "a".as_ref());
            }
            match Ext3Fs::open(&path, 0, false) {
                Ok(fs) => fs.destroy(),
                Err(e) => assert!(e.to_string().contains("case"), "{e}"),
            }
        });
        assert!(h.join().is_ok(), "case {i} panicked");
    }
}

/// A fresh 32 MiB ext3 image with `keep` (holding "kept"), made with `extra` mkfs options.
fn plain_image(dir: &Path, extra: &[&str]) -> Option<PathBuf> {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("keep"), b"kept").unwrap();
    let img = dir.join("img");
    make_image("ext3", &src, &img, "32M", extra)?;
    Some(img)
}

/// The changes both crash tests make: a tree of files and directories, a rename, an unlink.
fn changes(w: &common::writer::Writer, tag: &str) {
    w.mkdir(&format!("d-{tag}"));
    for i in 0..40 {
        w.create(
            &format!("d-{tag}/f{i}"),
            &common::tree::bytes(i, 3000 + i as usize * 511),
        );
    }
    w.create(&format!("big-{tag}"), &common::tree::bytes(99, 400_000));
    w.rename(&format!("d-{tag}/f0"), &format!("moved-{tag}"), 0)
        .unwrap();
    w.unlink(&format!("d-{tag}/f1")).unwrap();
}

fn check_changes(fs: &dyn Filesystem, tag: &str) {
    let f = resolve(fs, Path::new(&format!("d-{tag}/f7")));
    assert!(read_all(fs, f.node, f.attr.size) == common::tree::bytes(7, 3000 + 7 * 511));
    let b = resolve(fs, Path::new(&format!("big-{tag}")));
    assert_eq!(b.attr.size, 400_000);
    resolve(fs, Path::new(&format!("moved-{tag}")));
    let d = resolve(fs, Path::new(&format!("d-{tag}")));
    assert_eq!(list(fs, d.node).len(), 38);
}

#[test]
fn committed_transactions_survive_a_crash_before_checkpoint() {
    crash_before_checkpoint(&[]);
}

#[test]
fn committed_transactions_survive_a_crash_with_4k_blocks() {
    // The superblock shares block 0 with the boot sector here, and is journalled too.
    crash_before_checkpoint(&["-b", "4096"]);
}

fn crash_before_checkpoint(extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = plain_image(tmp.path(), extra) else {
        return;
    };
    let w = common::writer::Writer::open(&img);
    assert!(w.fs.journalling());
    changes(&w, "a");
    let n = w.fs.simulate_crash_after_commit().unwrap();
    assert!(n > 5, "the transaction holds {n} blocks");
    drop(w);
    let h = run(Command::new("dumpe2fs").arg("-h").arg(&img), &[0]);
    assert!(
        h.contains("needs_recovery") && !h.contains("Journal start:            0"),
        "{h}"
    );
    // e2fsck replays our log and then finds nothing to fix.
    let copy = tmp.path().join("e2fsck-copy");
    fs::copy(&img, &copy).unwrap();
    run(Command::new("e2fsck").arg("-fy").arg(&copy), &[0, 1]);
    assert_fsck_clean(&copy, "after e2fsck replayed our journal");
    check_changes(&open(&copy), "a");
    if squashbox_fixtures::prereq::require_root("the kernel's ext3 driver as a cross-check") {
        let kcopy = tmp.path().join("kernel-copy");
        fs::copy(&img, &kcopy).unwrap();
        let m = Mount::with_options(&kcopy, "ext3", &tmp.path().join("kmnt"), "loop");
        let got = fs::read(m.dir.join("d-a/f7")).unwrap();
        assert!(
            got == common::tree::bytes(7, 3000 + 7 * 511),
            "the kernel replays our journal"
        );
        drop(m);
        assert_fsck_clean(&kcopy, "after the kernel replayed our journal");
    }
    // Our own read-only open serves the replayed state; the read-write open replays it.
    check_changes(&open(&img), "a");
    let w = common::writer::Writer::open(&img);
    check_changes(&w.fs, "a");
    w.finish();
    assert_fsck_clean(&img, "after our replay");
}

#[test]
fn a_crash_loses_only_the_uncommitted_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = plain_image(tmp.path(), &[]) else {
        return;
    };
    let w = common::writer::Writer::open(&img);
    w.fs.stop_background_commits();
    changes(&w, "a");
    w.fs.commit().unwrap();
    changes(&w, "b");
    drop(w); // no commit: the second set of changes never reached the log
    let fs = open(&img);
    check_changes(&fs, "a");
    assert!(
        fs.lookup(&req(), 1, "d-b".as_ref()).unwrap().is_none(),
        "uncommitted mkdir is gone"
    );
    drop(fs);
    let w = common::writer::Writer::open(&img);
    w.finish();
    assert_fsck_clean(&img, "after a crash with an uncommitted transaction");
}
