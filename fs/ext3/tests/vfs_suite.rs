//! The filesystem-trait suite (`squashbox_vfs::conformance`) run against [`Ext3Fs`] on an
//! image made by `mkfs.ext3 -d`, plus what only this driver does: "." and ".." d_ino from
//! the directory, statfs geometry, errors of calls on the wrong kind of node.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::tree;
use common::*;
use squashbox_vfs::conformance as suite;
use squashbox_vfs::{Errno, FileHandle, Filesystem, OpenFlags, ROOT_ID, ReadReply};

#[test]
fn the_trait_suite_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let xattrs_ok = tree::build(&src);
    let img = tmp.path().join("img");
    if make_image("ext3", &src, &img, "96M", &[]).is_none() {
        return;
    }
    let fs = open(&img);
    suite::check_lookup_counts(&fs, "", "files");
    suite::check_lookup_counts(&fs, "files", "f-00001025");
    suite::check_lookup_counts(&fs, "bigdir", &tree::big_name(4321));
    let names: Vec<String> = (0..tree::BIG_DIR_ENTRIES).map(tree::big_name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    suite::check_readdir_resumes(&fs, "bigdir", &names);
    suite::check_readdir_resumes(&fs, "links", &["one", "two", "sub"]);
    if xattrs_ok {
        suite::check_xattr_probe(
            &fs,
            "files/f-00001024",
            "user.large",
            &tree::bytes(300, 700),
        );
        suite::check_xattr_probe(&fs, "files/f-00000001", "user.small", b"in-inode");
    }
    for (i, &size) in tree::SIZES.iter().enumerate() {
        let path = format!("files/f-{size:08}");
        suite::check_read(&fs, &path, &tree::bytes(i as u64 + 1, size));
    }
    let triple = std::fs::read(src.join("sparse/triple")).unwrap();
    suite::check_read(&fs, "sparse/triple", &triple);
    suite::check_read_only(&fs, "files/f-00000001");
}

#[test]
fn dots_statfs_and_wrong_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d/e")).unwrap();
    std::fs::write(src.join("d/file"), b"x").unwrap();
    std::os::unix::fs::symlink("file", src.join("d/link")).unwrap();
    let img = tmp.path().join("img");
    if make_image("ext3", &src, &img, "8M", &[]).is_none() {
        return;
    }
    let fs = open(&img);
    let d = resolve(&fs, Path::new("d"));
    let e = resolve(&fs, Path::new("d/e"));
    let mut dots = Vec::new();
    fs.readdir(&req(), e.node, FileHandle(0), 0, false, &mut |item, _| {
        dots.push((item.name.to_os_string(), item.ino));
        true
    })
    .unwrap();
    assert_eq!(dots[0], (".".into(), e.attr.ino));
    assert_eq!(dots[1], ("..".into(), d.attr.ino));
    assert_eq!(root_attr(&fs).ino, 2, "the root is inode 2");
    assert_eq!(
        fs.lookup(&req(), ROOT_ID, OsStr::new("..")),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        fs.lookup(&req(), ROOT_ID, OsStr::new(&"n".repeat(256))),
        Err(Errno::ENAMETOOLONG)
    );
    let file = resolve(&fs, Path::new("d/file"));
    let link = resolve(&fs, Path::new("d/link"));
    assert_eq!(fs.readlink(&req(), file.node), Err(Errno::EINVAL));
    assert_eq!(fs.readlink(&req(), link.node).unwrap(), b"file");
    let (reply, rx) = ReadReply::channel();
    fs.read(&req(), d.node, FileHandle(0), 0, 10, reply);
    assert_eq!(rx.recv().unwrap(), Err(Errno::EISDIR));
    assert_eq!(
        fs.open(&req(), d.node, OpenFlags(libc::O_RDONLY)).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(
        fs.open(&req(), file.node, OpenFlags(libc::O_RDWR)).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(
        fs.getattr(&req(), 2, None).err(),
        Some(Errno::ESTALE),
        "node 2 is never handed out"
    );
    assert_eq!(fs.getattr(&req(), 1 << 40, None).err(), Some(Errno::ESTALE));
    let s = fs.statfs(&req(), ROOT_ID).unwrap();
    assert_eq!((s.bsize, s.frsize, s.namelen), (1024, 1024, 255));
    assert!(
        s.blocks < 8192
            && s.bfree < s.blocks
            && s.files == u64::from(fs.volume().sb().inodes_count)
    );
}
