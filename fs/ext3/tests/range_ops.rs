//! fallocate, copy_file_range and the privilege drops that come with the mount's
//! HANDLE_KILLPRIV_V2 policy, through the [`Filesystem`] trait on `mkfs.ext3 -d` images;
//! every scenario unmounts and must leave `e2fsck -fn` clean.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use common::tree;
use common::writer::{Writer, assert_fsck_clean};
use common::*;
use squashbox_vfs::{Errno, FileHandle, Filesystem, SetAttr};

/// A fresh ext3 image of `size` with one file `hello`.
fn image(dir: &Path, size: &str) -> Option<PathBuf> {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("hello"), b"hello\n").unwrap();
    let img = dir.join("img");
    make_image("ext3", &src, &img, size, &[])?;
    Some(img)
}

#[test]
fn fallocate_fills_holes_with_zeroes_and_grows_the_size() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), "64M") else {
        return;
    };
    let w = Writer::open(&img);
    let r = Writer::req();
    // A file with data at the start and far out (a hole in between, double indirect).
    let e = w.create("f", b"head");
    let far = tree::bytes(4, 2000);
    w.write(e.node, 600_000, &far);
    let before = w.fs.getattr(&r, e.node, None).unwrap().attr;
    // Fill the hole and go past the end (1 KiB blocks: 1 MiB reaches double indirection).
    w.fs.fallocate(&r, e.node, FileHandle(0), 100, 1 << 20, 0)
        .unwrap();
    let after = w.fs.getattr(&r, e.node, None).unwrap().attr;
    assert_eq!(after.size, (1 << 20) + 100);
    assert!(
        after.blocks >= 2 * ((1 << 20) / 1024),
        "blocks allocated: {} sectors (was {})",
        after.blocks,
        before.blocks
    );
    let mut want = vec![0u8; (1 << 20) + 100];
    want[..4].copy_from_slice(b"head");
    want[600_000..602_000].copy_from_slice(&far);
    assert!(w.read(e.node) == want, "data kept, the rest zeroes");
    // Modes a block map cannot do are refused, not faked.
    for mode in [libc::FALLOC_FL_KEEP_SIZE, libc::FALLOC_FL_ZERO_RANGE] {
        assert_eq!(
            w.fs.fallocate(&r, e.node, FileHandle(0), 0, 4096, mode),
            Err(Errno::EOPNOTSUPP)
        );
    }
    // More than the image holds: ENOSPC, and nothing is left allocated past the end.
    let free = w.fs.statfs(&r, 1).unwrap().bfree;
    let g = w.create("g", b"x");
    assert_eq!(
        w.fs.fallocate(&r, g.node, FileHandle(0), 0, 1 << 30, 0),
        Err(Errno::ENOSPC)
    );
    assert_eq!(w.fs.getattr(&r, g.node, None).unwrap().attr.size, 1);
    assert!(w.fs.statfs(&r, 1).unwrap().bfree + 1 >= free);
    w.finish();
    assert_fsck_clean(&img, "fallocate");
    let fs = open(&img);
    let a = resolve(&fs, "f".as_ref()).attr;
    assert_eq!(a.size, (1 << 20) + 100);
}

#[test]
fn copy_file_range_copies_between_and_within_files() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), "64M") else {
        return;
    };
    let w = Writer::open(&img);
    let r = Writer::req();
    let data = tree::bytes(7, 300_000);
    let a = w.create("a", &data);
    let b = w.create("b", b"");
    let n =
        w.fs.copy_file_range(
            &r,
            a.node,
            FileHandle(0),
            1000,
            b.node,
            FileHandle(0),
            5,
            250_000,
            0,
        )
        .unwrap();
    assert_eq!(n, 250_000);
    let mut want = vec![0u8; 5];
    want.extend_from_slice(&data[1000..251_000]);
    assert!(w.read(b.node) == want, "copied bytes");
    // Past the source's end: only what is there.
    let n =
        w.fs.copy_file_range(
            &r,
            a.node,
            FileHandle(0),
            299_000,
            a.node,
            FileHandle(0),
            400_000,
            9000,
            0,
        )
        .unwrap();
    assert_eq!(n, 1000);
    assert_eq!(w.read(a.node).len(), 401_000);
    w.finish();
    assert_fsck_clean(&img, "copy_file_range");
}

#[test]
fn chown_and_writes_drop_privileges() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), "64M") else {
        return;
    };
    let w = Writer::open(&img);
    let r = Writer::req();
    let policy = w.fs.policy();
    assert!(policy.kills_privs && policy.writeback_cache && policy.no_open);
    let e = w.create("prog", b"#!/bin/sh\n");
    let mode = |m: u32| SetAttr {
        mode: Some(m),
        ..Default::default()
    };
    w.fs.setattr(&r, e.node, &mode(0o6755)).unwrap();
    let chown = SetAttr {
        uid: Some(1000),
        ..Default::default()
    };
    // set-user-ID always goes; set-group-ID too when group-execute is set.
    let a = w.fs.setattr(&r, e.node, &chown).unwrap().attr;
    assert_eq!(a.perm, 0o755);
    w.fs.setattr(&r, e.node, &mode(0o6745)).unwrap();
    let a = w.fs.setattr(&r, e.node, &chown).unwrap().attr;
    assert_eq!(a.perm, 0o2745, "set-group-ID without group-execute stays");
    // A directory keeps its set-group-ID.
    let d = w.mkdir("d");
    w.fs.setattr(&r, d.node, &mode(0o2755)).unwrap();
    assert_eq!(w.fs.setattr(&r, d.node, &chown).unwrap().attr.perm, 0o2755);

    // security.capability goes at the next write (and at truncation), other xattrs stay.
    let cap = [1u8, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let name = OsStr::new("security.capability");
    w.fs.setxattr(&r, e.node, name, &cap, 0).unwrap();
    w.fs.setxattr(&r, e.node, OsStr::new("user.keep"), b"v", 0)
        .unwrap();
    assert!(w.fs.getxattr(&r, e.node, name, 0).is_ok());
    w.write(e.node, 0, b"#");
    assert_eq!(
        w.fs.getxattr(&r, e.node, name, 0).err(),
        Some(Errno::ENODATA)
    );
    assert!(
        w.fs.getxattr(&r, e.node, OsStr::new("user.keep"), 0)
            .is_ok()
    );
    w.fs.setxattr(&r, e.node, name, &cap, 0).unwrap();
    w.truncate(e.node, 1);
    assert_eq!(
        w.fs.getxattr(&r, e.node, name, 0).err(),
        Some(Errno::ENODATA)
    );
    w.finish();
    assert_fsck_clean(&img, "privilege drops");
}

#[test]
fn punched_holes_free_blocks_at_every_level_and_read_as_zeroes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), "128M") else {
        return;
    };
    let w = Writer::open(&img);
    let r = Writer::req();
    // 1 KiB blocks: direct up to 12 KiB, single indirect to 268 KiB, double beyond; the
    // triple-indirect range starts past 64 MiB.
    let size = 70 << 20;
    let e = w.create("f", b"");
    let mut want = tree::bytes(21, 3 << 20);
    w.write(e.node, 0, &want);
    let far = tree::bytes(22, 5000);
    w.write(e.node, size - 5000, &far);
    want.resize(size as usize - 5000, 0);
    want.extend_from_slice(&far);
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    let blocks = |w: &Writer| w.fs.getattr(&r, e.node, None).unwrap().attr.blocks;
    let before = blocks(&w);
    // Partial edges, a whole single-indirect range, part of the double-indirect one.
    for (off, len) in [(5u64, 100u64), (7000, 2_000_000), (size - 4000, 1000)] {
        w.fs.fallocate(&r, e.node, FileHandle(0), off, len, punch)
            .unwrap();
        let end = (off + len).min(size) as usize;
        want[off as usize..end].fill(0);
    }
    // Past the end: nothing changes, the size stays.
    w.fs.fallocate(&r, e.node, FileHandle(0), size + 10, 4096, punch)
        .unwrap();
    assert_eq!(w.fs.getattr(&r, e.node, None).unwrap().attr.size, size);
    assert!(
        w.read(e.node) == want,
        "punched ranges read as zeroes, the rest kept"
    );
    let after = blocks(&w);
    assert!(
        after + 2 * 1_990_000 / 1024 <= before,
        "blocks freed: {before} -> {after} sectors"
    );
    // Punch everything: only the blocks at the partial edges' ends stay.
    w.fs.fallocate(&r, e.node, FileHandle(0), 0, size, punch)
        .unwrap();
    assert_eq!(blocks(&w), 0, "every block freed");
    assert!(w.read(e.node).iter().all(|&b| b == 0));
    w.finish();
    assert_fsck_clean(&img, "punched holes");
}
