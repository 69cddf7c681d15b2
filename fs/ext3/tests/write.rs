//! Writing without the journal: every scenario runs on a `mkfs.ext3 -d` image through the
//! [`Filesystem`] trait, unmounts, and must leave `e2fsck -fn` clean (exit 0, no "Fix? no",
//! state clean) with the content the kernel then reads back.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree::{self, TRIPLE_START};
use common::writer::{Writer, assert_fsck_clean};
use common::*;
use squashbox_ext3::inode::INDEX_FL;
use squashbox_fixtures::prereq;
use squashbox_vfs::{Errno, FileType, Filesystem, RenameFlags};

/// A fresh 64 MiB ext3 image (1 KiB blocks) holding `bigdir/` with `entries` names,
/// indexed by `e2fsck -fyD`.
fn image(dir: &Path, entries: usize) -> Option<PathBuf> {
    let src = dir.join("src");
    fs::create_dir_all(src.join("bigdir")).unwrap();
    fs::write(src.join("hello"), b"hello\n").unwrap();
    for i in 0..entries {
        fs::write(src.join("bigdir").join(tree::big_name(i)), b"").unwrap();
    }
    let img = dir.join("img");
    make_image("ext3", &src, &img, "64M", &[])?;
    Some(img)
}

/// When root: loop-mount the image read-only, check `files` (path, content), and compare
/// the whole tree, every stat field included, with what the driver reads.
fn kernel_reads(img: &Path, files: &[(&str, Vec<u8>)]) {
    if !prereq::require_root("the kernel's ext3 driver as a cross-check") {
        return;
    }
    let mnt = img.with_file_name("mnt");
    let m = Mount::new(img, "ext3", &mnt);
    for (p, want) in files {
        let got = fs::read(m.dir.join(p)).unwrap_or_else(|e| panic!("kernel read of {p}: {e}"));
        assert!(&got == want, "kernel sees different content in {p}");
    }
    let ours = open(img);
    let mut n = 0;
    diff_with_kernel(&ours, &m.dir, Path::new(""), &mut n);
    assert!(n > files.len(), "compared only {n} nodes");
}

#[test]
fn files_across_every_block_map_level() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    let sizes = [0usize, 1, 1025, 12 * 1024 + 1, 268 * 1024 + 1, 3 << 20];
    let mut files = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let data = tree::bytes(i as u64 + 50, size);
        let e = w.create(&format!("f{i}"), &data);
        assert!(w.read(e.node) == data, "read back f{i}");
        files.push((format!("f{i}"), data));
    }
    // A sparse file reaching triple indirection.
    let sp = w.create("sparse", b"start");
    let far = tree::bytes(9, 3000);
    w.write(sp.node, TRIPLE_START + 777, &far);
    let mut want = vec![0u8; (TRIPLE_START + 777) as usize + far.len()];
    want[..5].copy_from_slice(b"start");
    want[(TRIPLE_START + 777) as usize..].copy_from_slice(&far);
    assert!(w.read(sp.node) == want, "sparse read back");
    let attr = w.fs.getattr(&Writer::req(), sp.node, None).unwrap().attr;
    assert!(
        attr.blocks < 64,
        "holes stay holes ({} sectors)",
        attr.blocks
    );
    let s = w.fs.statfs(&Writer::req(), 1).unwrap();
    w.finish();
    assert_fsck_clean(&img, "files across block map levels");
    let reopened = open(&img);
    let s2 = reopened.statfs(&req(), 1).unwrap();
    assert_eq!(
        (s.bfree, s.ffree),
        (s2.bfree, s2.ffree),
        "free counts survive the unmount"
    );
    let mut check: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    check.push(("sparse", want));
    kernel_reads(&img, &check);
}

#[test]
fn truncation_across_levels_frees_blocks_and_zeroes_tails() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    let free0 = w.fs.statfs(&Writer::req(), 1).unwrap().bfree;
    let data = tree::bytes(77, 3 << 20);
    let e = w.create("t", &data);
    let mut want = data.clone();
    for size in [268 * 1024 + 1, 12 * 1024 + 1, 1500, 5] {
        w.truncate(e.node, size as u64);
        want.truncate(size);
        assert!(w.read(e.node) == want, "after truncate to {size}");
    }
    // Grow again: the old tail must read as zeros, then write past a hole.
    w.truncate(e.node, 4000);
    want.resize(4000, 0);
    assert!(w.read(e.node) == want, "grown file reads zeros");
    w.write(e.node, 70_000, b"xyz");
    want.resize(70_000, 0);
    want.extend_from_slice(b"xyz");
    assert!(w.read(e.node) == want);
    w.truncate(e.node, 0);
    let free1 = w.fs.statfs(&Writer::req(), 1).unwrap().bfree;
    assert_eq!(free1, free0, "every block came back");
    w.write(e.node, 0, b"again");
    w.finish();
    assert_fsck_clean(&img, "truncation");
    kernel_reads(&img, &[("t", b"again".to_vec())]);
}

#[test]
fn namespace_operations_leave_a_clean_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    w.mkdir("d");
    w.mkdir("d/sub");
    w.mkdir("d/sub/deeper");
    w.create("d/sub/file", b"content");
    let r = Writer::req();
    let sub = w.node("d/sub");
    let fast =
        w.fs.symlink(&r, sub, "fast".as_ref(), "file".as_ref())
            .unwrap();
    let long = "y".repeat(300);
    let slow =
        w.fs.symlink(&r, sub, "slow".as_ref(), long.as_ref())
            .unwrap();
    assert_eq!(w.fs.readlink(&r, fast.node).unwrap(), b"file");
    assert_eq!(w.fs.readlink(&r, slow.node).unwrap(), long.as_bytes());
    let fifo =
        w.fs.mknod(&r, sub, "fifo".as_ref(), libc::S_IFIFO | 0o644, 0)
            .unwrap();
    assert_eq!(fifo.attr.kind, FileType::NamedPipe);
    let big_dev = (70000 & 0xff) | (259 << 8) | ((70000 & !0xff) << 12);
    let dev =
        w.fs.mknod(&r, sub, "dev".as_ref(), libc::S_IFCHR | 0o600, big_dev)
            .unwrap();
    assert_eq!(w.fs.getattr(&r, dev.node, None).unwrap().attr.rdev, big_dev);
    let small =
        w.fs.mknod(&r, sub, "tty".as_ref(), libc::S_IFCHR | 0o600, (4 << 8) | 1)
            .unwrap();
    assert_eq!(small.attr.rdev, (4 << 8) | 1);
    let f = w.get("d/sub/file").unwrap();
    w.fs.link(&r, f.node, w.node("d"), "hard".as_ref()).unwrap();
    assert_eq!(w.fs.getattr(&r, f.node, None).unwrap().attr.nlink, 2);
    assert_eq!(
        w.fs.mkdir(&r, sub, "file".as_ref(), 0o755).err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(w.rmdir("d/sub"), Err(Errno::ENOTEMPTY));
    assert_eq!(w.rmdir("d/sub/file"), Err(Errno::ENOTDIR));
    assert_eq!(w.unlink("d/sub/deeper"), Err(Errno::EISDIR));
    assert_eq!(w.get("d").unwrap().attr.nlink, 3, "d has . and sub's ..");
    w.unlink("d/sub/file").unwrap();
    assert_eq!(w.read(w.get("d/hard").unwrap().node), b"content");
    w.rmdir("d/sub/deeper").unwrap();
    assert_eq!(w.get("d/sub").unwrap().attr.nlink, 2);
    for i in 0..300 {
        w.create(&format!("d/many-{i:03}-{}", "z".repeat(i % 50)), &[i as u8]);
    }
    for i in (0..300).step_by(3) {
        w.unlink(&format!("d/many-{i:03}-{}", "z".repeat(i % 50)))
            .unwrap();
    }
    let listed = list(&w.fs, w.node("d"));
    assert_eq!(listed.len(), 200 + 2, "many + sub + hard");
    w.finish();
    assert_fsck_clean(&img, "namespace operations");
    let fs = open(&img);
    assert_eq!(
        fs.readlink(&req(), resolve(&fs, "d/sub/slow".as_ref()).node)
            .unwrap(),
        long.as_bytes()
    );
    kernel_reads(
        &img,
        &[("d/hard", b"content".to_vec()), ("d/many-001-z", vec![1])],
    );
}

#[test]
fn renames_with_every_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    w.mkdir("a");
    w.mkdir("b");
    w.mkdir("a/dir");
    w.create("a/dir/inside", b"in");
    w.create("a/f", b"f");
    w.create("b/g", b"g");
    w.mkdir("b/empty");
    // Plain, across directories, a directory (its ".." and both parents' nlink follow).
    w.rename("a/dir", "b/moved", 0).unwrap();
    assert_eq!(w.get("a").unwrap().attr.nlink, 2);
    assert_eq!(w.get("b").unwrap().attr.nlink, 4);
    assert_eq!(w.read(w.get("b/moved/inside").unwrap().node), b"in");
    // Over an existing file; NOREPLACE refuses.
    assert_eq!(
        w.rename("a/f", "b/g", RenameFlags::NOREPLACE),
        Err(Errno::EEXIST)
    );
    w.rename("a/f", "b/g", 0).unwrap();
    assert_eq!(w.read(w.get("b/g").unwrap().node), b"f");
    assert!(w.get("a/f").is_none());
    // A directory over an empty one; not over a non-empty one; not into itself.
    assert_eq!(w.rename("b/empty", "b/moved", 0), Err(Errno::ENOTEMPTY));
    w.mkdir("a/victim");
    w.rename("b/empty", "a/victim", 0).unwrap();
    assert_eq!(
        w.rename("b/moved", "b/moved/inside-dir", 0),
        Err(Errno::EINVAL)
    );
    // EXCHANGE a file and a directory across parents.
    w.create("a/x", b"x");
    w.rename("a/x", "b/moved", RenameFlags::EXCHANGE).unwrap();
    assert_eq!(w.read(w.get("b/moved").unwrap().node), b"x");
    assert_eq!(w.read(w.get("a/x/inside").unwrap().node), b"in");
    assert_eq!(w.get("a").unwrap().attr.nlink, 4, "a holds victim and x");
    // WHITEOUT leaves a 0/0 character device.
    w.rename("b/g", "a/g2", RenameFlags::WHITEOUT).unwrap();
    let wo = w.get("b/g").unwrap();
    assert_eq!((wo.attr.kind, wo.attr.rdev), (FileType::CharDevice, 0));
    assert_eq!(
        w.rename(
            "a/g2",
            "b/moved",
            RenameFlags::EXCHANGE | RenameFlags::WHITEOUT
        ),
        Err(Errno::EINVAL)
    );
    w.finish();
    assert_fsck_clean(&img, "renames");
    kernel_reads(
        &img,
        &[("a/g2", b"f".to_vec()), ("a/x/inside", b"in".to_vec())],
    );
}

#[test]
fn htree_directory_takes_new_names() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 1000) else {
        return;
    };
    let w = Writer::open(&img);
    let size0 = w.get("bigdir").unwrap().attr.size;
    let new_name = |i: usize| {
        format!(
            "bigdir/a-much-longer-new-name-{i:04}-{}",
            "q".repeat(i % 20)
        )
    };
    for i in 0..600 {
        w.create(&new_name(i), b"n");
    }
    assert!(
        w.get("bigdir").unwrap().attr.size > size0,
        "full leaves were split"
    );
    for i in (0..1000).step_by(2) {
        w.unlink(&format!("bigdir/{}", tree::big_name(i))).unwrap();
    }
    for i in 0..600 {
        assert!(w.get(&new_name(i)).is_some(), "{i}");
    }
    for i in 0..1000 {
        let e = w.get(&format!("bigdir/{}", tree::big_name(i)));
        assert_eq!(e.is_some(), i % 2 == 1, "{i}");
    }
    let big = w.get("bigdir").unwrap();
    let inode = w.fs.volume().inode(big.attr.ino as u32).unwrap();
    assert_ne!(inode.flags & INDEX_FL, 0, "the index took every insertion");
    assert_eq!(
        w.fs.faults().emitted(),
        0,
        "every lookup went through a usable index"
    );
    assert_eq!(list(&w.fs, big.node).len(), 500 + 600);
    w.finish();
    assert_fsck_clean(&img, "htree directory");
    kernel_reads(
        &img,
        &[("bigdir/a-much-longer-new-name-0007-qqqqqqq", b"n".to_vec())],
    );
}

#[test]
fn setattr_and_unlinked_but_held_files() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    let r = Writer::req();
    let e = w.create("f", b"data");
    let set = squashbox_vfs::SetAttr {
        mode: Some(0o4711),
        uid: Some(100_000),
        gid: Some(200_000),
        mtime: Some(squashbox_vfs::TimeSet::At(squashbox_vfs::Timespec {
            secs: 5_000_000_000,
            nsecs: 42,
        })),
        ..Default::default()
    };
    let a = w.fs.setattr(&r, e.node, &set).unwrap().attr;
    assert_eq!(
        (a.perm, a.uid, a.gid, a.mtime.secs, a.mtime.nsecs),
        (0o4711, 100_000, 200_000, 5_000_000_000, 42)
    );
    // Unlinked while the kernel still holds it: readable until the last forget.
    let held = w.create("held", &tree::bytes(3, 50_000));
    let free_before = w.fs.statfs(&r, 1).unwrap().bfree;
    w.unlink("held").unwrap();
    assert_eq!(w.read(held.node).len(), 50_000, "still readable while held");
    w.fs.forget(held.node, 1);
    assert!(
        w.fs.statfs(&r, 1).unwrap().bfree > free_before,
        "blocks freed at the last forget"
    );
    // And one still held at unmount is freed then.
    let late = w.create("late", b"late");
    w.unlink("late").unwrap();
    let _ = late;
    w.finish();
    assert_fsck_clean(&img, "setattr and orphans");
    kernel_reads(&img, &[("f", b"data".to_vec())]);
    let fs = open(&img);
    let a2 = resolve(&fs, "f".as_ref()).attr;
    assert_eq!(
        (a2.perm, a2.uid, a2.mtime.secs, a2.mtime.nsecs),
        (0o4711, 100_000, 5_000_000_000, 42)
    );
}

#[test]
fn running_out_of_space_is_enospc_and_recoverable() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let img = tmp.path().join("img");
    if make_image("ext3", &src, &img, "4M", &[]).is_none() {
        return;
    }
    let w = Writer::open(&img);
    let r = Writer::req();
    let e = w.create("fill", b"");
    let chunk = vec![0xabu8; 64 << 10];
    let mut off = 0u64;
    let err = loop {
        match w.fs.write(
            &r,
            e.node,
            squashbox_vfs::FileHandle(0),
            off,
            &chunk,
            squashbox_vfs::OpenFlags(1),
        ) {
            Ok(n) => off += u64::from(n),
            Err(e) => break e,
        }
        assert!(off < 8 << 20, "a 4 MiB image never filled");
    };
    assert_eq!(err, Errno::ENOSPC);
    assert_eq!(w.fs.statfs(&r, 1).unwrap().bfree, 0);
    w.finish();
    assert_fsck_clean(&img, "full filesystem");
    let w = Writer::open(&img);
    w.unlink("fill").unwrap();
    w.create("after", b"room again");
    w.finish();
    assert_fsck_clean(&img, "after freeing");
}

#[test]
fn concurrent_writers_in_many_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    for t in 0..4 {
        w.mkdir(&format!("t{t}"));
    }
    std::thread::scope(|s| {
        for t in 0..4 {
            let w = &w;
            s.spawn(move || {
                for i in 0..40 {
                    let data = tree::bytes((t * 100 + i) as u64, 1000 + i * 997);
                    let e = w.create(&format!("t{t}/f{i}"), &data);
                    assert!(w.read(e.node) == data);
                    if i % 4 == 0 {
                        w.unlink(&format!("t{t}/f{i}")).unwrap();
                    }
                }
            });
        }
    });
    w.finish();
    assert_fsck_clean(&img, "concurrent writers");
    kernel_reads(&img, &[("t0/f1", tree::bytes(1, 1997))]);
}

#[test]
fn xattrs_in_the_inode_and_in_a_block() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    let r = Writer::req();
    let e = w.create("x", b"x");
    let set = |n: &str, v: &[u8], f: i32| w.fs.setxattr(&r, e.node, n.as_ref(), v, f);
    set("user.small", b"in-inode", 0).unwrap();
    set("user.large", &tree::bytes(5, 700), 0).unwrap();
    for i in 0..6 {
        set(&format!("user.k{i}"), format!("value {i}").as_bytes(), 0).unwrap();
    }
    set("trusted.t", b"t", 0).unwrap();
    // A POSIX ACL with a named user, in the VFS form (stored in ext4's compact form).
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 1000),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    set("system.posix_acl_access", &acl, 0).unwrap();
    assert_eq!(
        set("user.small", b"again", 1),
        Err(Errno::EEXIST),
        "XATTR_CREATE"
    );
    assert_eq!(
        set("user.none", b"v", 2),
        Err(Errno::ENODATA),
        "XATTR_REPLACE"
    );
    assert_eq!(set("bogus.x", b"v", 0), Err(Errno::EOPNOTSUPP));
    assert_eq!(set("user.huge", &vec![1u8; 2000], 0), Err(Errno::ENOSPC));
    set("user.small", b"replaced", 2).unwrap();
    w.fs.removexattr(&r, e.node, "user.k3".as_ref()).unwrap();
    assert_eq!(
        w.fs.removexattr(&r, e.node, "user.k3".as_ref()),
        Err(Errno::ENODATA)
    );
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"user.small".to_vec(), b"replaced".to_vec()),
        (b"user.large".to_vec(), tree::bytes(5, 700)),
        (b"trusted.t".to_vec(), b"t".to_vec()),
        (b"system.posix_acl_access".to_vec(), acl.clone()),
    ];
    for i in (0..6).filter(|&i| i != 3) {
        want.push((
            format!("user.k{i}").into_bytes(),
            format!("value {i}").into_bytes(),
        ));
    }
    want.sort();
    assert_eq!(xattrs(&w.fs, e.node), want);
    // Everything on a second file, then all removed again: its block goes back.
    let e2 = w.create("y", b"y");
    let free0 = w.fs.statfs(&r, 1).unwrap().bfree;
    w.fs.setxattr(&r, e2.node, "user.big".as_ref(), &[9u8; 900], 0)
        .unwrap();
    assert_eq!(w.fs.statfs(&r, 1).unwrap().bfree, free0 - 1);
    w.fs.removexattr(&r, e2.node, "user.big".as_ref()).unwrap();
    assert_eq!(w.fs.statfs(&r, 1).unwrap().bfree, free0);
    w.finish();
    assert_fsck_clean(&img, "xattrs");
    if prereq::require_root("the kernel's ext3 driver as a cross-check") {
        let m = Mount::new(&img, "ext3", &tmp.path().join("mnt"));
        assert_eq!(
            host_xattrs(&m.dir.join("x")),
            want,
            "the kernel reads our xattrs"
        );
    }
}

#[test]
fn a_crash_with_open_unlinked_files_is_cleaned_up_from_the_orphan_list() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let w = Writer::open(&img);
    let free0 = w.fs.statfs(&Writer::req(), 1).unwrap().bfree;
    let a = w.create("a", &tree::bytes(1, 50_000));
    let b = w.create("b", &tree::bytes(2, 300_000));
    let c = w.create("c", &tree::bytes(3, 1000));
    for n in ["a", "b", "c"] {
        w.unlink(n).unwrap();
    }
    // The list is c -> b -> a; take b out of the middle, then let the "crash" happen.
    w.fs.forget(b.node, 1);
    let _ = (a, c);
    // The crash comes after a commit: what was committed must survive, orphans included.
    w.fs.commit().unwrap();
    drop(w);
    let h = run(Command::new("dumpe2fs").arg("-h").arg(&img), &[0]);
    assert!(
        h.lines()
            .any(|l| l.starts_with("First orphan inode:") && !l.ends_with(" 0")),
        "{h}"
    );
    if prereq::require_root("the kernel's ext3 driver as a cross-check") {
        // The kernel walks the same list at mount.
        let copy = tmp.path().join("kernel-copy");
        fs::copy(&img, &copy).unwrap();
        let m = Mount::with_options(&copy, "ext3", &tmp.path().join("kmnt"), "loop");
        drop(m);
        assert_fsck_clean(&copy, "orphans cleaned by the kernel");
    }
    let w = Writer::open(&img);
    assert_eq!(
        w.fs.statfs(&Writer::req(), 1).unwrap().bfree,
        free0,
        "orphans freed at open"
    );
    w.finish();
    assert_fsck_clean(&img, "orphans cleaned at open");
}

#[test]
fn htree_directory_grows_a_level_and_splits_index_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path(), 1000) else {
        return;
    };
    let w = Writer::open(&img);
    let name = |i: usize| format!("bigdir/grown-{i:05}-{}", "x".repeat(20 + i % 30));
    for i in 0..4000 {
        w.create(&name(i), b"");
    }
    let big = w.get("bigdir").unwrap();
    let vol = w.fs.volume();
    let inode = vol.inode(big.attr.ino as u32).unwrap();
    assert_ne!(inode.flags & INDEX_FL, 0, "still indexed");
    let root = vol.file_block(&inode, 0).unwrap().unwrap();
    assert_eq!(root[0x1E], 1, "the tree grew a level");
    let root_count = u16::from_le_bytes([root[0x22], root[0x23]]);
    assert!(
        root_count > 1,
        "level-1 nodes were split ({root_count} under the root)"
    );
    for i in (0..4000).step_by(3) {
        assert!(w.get(&name(i)).is_some(), "{i}");
    }
    for i in 0..1000 {
        assert!(
            w.get(&format!("bigdir/{}", tree::big_name(i))).is_some(),
            "{i}"
        );
    }
    assert_eq!(
        w.fs.faults().emitted(),
        0,
        "every lookup went through a usable index"
    );
    w.finish();
    assert_fsck_clean(&img, "a grown htree");
    kernel_reads(&img, &[]);
}
