//! The filesystem-trait suite (`squashbox_vfs::conformance`) run against [`SquashFs`], plus
//! what only an image does: owner mapping, `subdir`, statfs as the kernel computes it.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use squashbox_fixtures::prereq;
use squashbox_squashfs::{FsOptions, Image, SquashFs};
use squashbox_vfs::conformance as suite;
use squashbox_vfs::{Errno, FileType, Filesystem, ROOT_ID, Request};

fn big_bytes() -> Vec<u8> {
    (0..400_000u32).map(|i| (i % 251) as u8).collect()
}

/// Pack a small tree with mksquashfs; `None` after a counted skip.
fn image(dir: &Path) -> Option<Arc<Image>> {
    if !prereq::require_tools(&["mksquashfs"]) {
        return None;
    }
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("hello"), b"hello world\n").unwrap();
    std::fs::write(src.join("sub/big"), big_bytes()).unwrap();
    for i in 0..300 {
        std::fs::write(src.join("sub/deeper").join(format!("f{i:03}")), [i as u8]).unwrap();
    }
    std::os::unix::fs::symlink("hello", src.join("link")).unwrap();
    let xattr_ok =
        squashbox_fixtures::sys::lsetxattr(&src.join("hello"), "user.test", b"value-1").is_ok();
    if !prereq::require(xattr_ok, "user xattrs on the temp directory's filesystem") {
        return None;
    }
    let img = dir.join("img.sqfs");
    squashbox_fixtures::mksquashfs(&src, &img, &["-all-root", "-xattrs"]).unwrap();
    Some(Arc::new(Image::open(&img, &Default::default()).unwrap()))
}

fn squashfs(img: &Arc<Image>, opts: FsOptions) -> SquashFs {
    SquashFs::new(Arc::clone(img), "test", opts).unwrap()
}

#[test]
fn the_trait_suite_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path()) else { return };
    let fs = squashfs(&img, FsOptions::default());
    suite::check_lookup_counts(&fs, "", "hello");
    suite::check_lookup_counts(&fs, "sub", "deeper");
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    suite::check_readdir_resumes(&fs, "sub/deeper", &names);
    suite::check_readdir_resumes(&fs, "", &["hello", "link", "sub"]);
    suite::check_xattr_probe(&fs, "hello", "user.test", b"value-1");
    suite::check_read(&fs, "hello", b"hello world\n");
    suite::check_read(&fs, "sub/big", &big_bytes());
    suite::check_read_only(&fs, "hello");
}

#[test]
fn owners_subdir_links_and_statfs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = image(tmp.path()) else { return };
    let req = Request::root();
    let opts = FsOptions {
        uid: Some(1000),
        gid: Some(100),
        ..Default::default()
    };
    let fs = squashfs(&img, opts);
    let root = fs.getattr(&req, ROOT_ID, None).unwrap().attr;
    assert_eq!(
        (root.kind, root.uid, root.gid),
        (FileType::Directory, 1000, 100)
    );
    assert_eq!(root.ino, u64::from(img.root().unwrap().inode_number));
    assert_eq!(
        fs.lookup(&req, ROOT_ID, OsStr::new("..")),
        Err(Errno::ENOENT)
    );
    let link = suite::resolve(&fs, "link");
    assert_eq!(fs.readlink(&req, link.node).unwrap(), b"hello");
    let hello = suite::resolve(&fs, "hello");
    assert_eq!(fs.readlink(&req, hello.node), Err(Errno::EINVAL));
    let s = fs.statfs(&req, ROOT_ID).unwrap();
    assert_eq!(
        (s.files, s.bsize, s.namelen, s.blocks),
        (
            u64::from(img.superblock().inode_count),
            131072,
            256,
            img.statfs().blocks
        )
    );
    assert!(fs.policy().read_only && fs.policy().no_open);

    let sub = squashfs(
        &img,
        FsOptions {
            subdir: Some("/sub/".into()),
            ..Default::default()
        },
    );
    assert!(
        sub.lookup(&req, ROOT_ID, OsStr::new("big"))
            .unwrap()
            .is_some()
    );
    assert!(
        sub.lookup(&req, ROOT_ID, OsStr::new("hello"))
            .unwrap()
            .is_none()
    );
    let bad = FsOptions {
        subdir: Some("hello".into()),
        ..Default::default()
    };
    let err = SquashFs::new(Arc::clone(&img), "test", bad).err().unwrap();
    assert!(err.contains("not a directory"), "{err}");
    let missing = FsOptions {
        subdir: Some("nope".into()),
        ..Default::default()
    };
    assert!(SquashFs::new(img, "test", missing).is_err());
}

/// On an image without an xattr table (`mksquashfs -no-xattrs`) the kernel driver answers
/// `listxattr` with EOPNOTSUPP for directories, symlinks and extended inodes (here a
/// hard-linked file), and with an empty list for basic files and fifos (a hard-linked fifo
/// stays basic); `getxattr` is ENODATA everywhere. With a table, nothing is refused.
#[test]
fn listxattr_without_an_xattr_table_answers_as_the_kernel() {
    if !prereq::require_tools(&["mksquashfs", "mkfifo"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("file"), b"plain\n").unwrap();
    std::fs::write(src.join("linked"), b"two names\n").unwrap();
    std::fs::hard_link(src.join("linked"), src.join("linked-too")).unwrap();
    std::os::unix::fs::symlink("file", src.join("link")).unwrap();
    for fifo in ["fifo", "linked-fifo"] {
        let ok = Command::new("mkfifo")
            .arg(src.join(fifo))
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {fifo}");
    }
    std::fs::hard_link(src.join("linked-fifo"), src.join("linked-fifo-too")).unwrap();
    // One xattr elsewhere, so that `-xattrs` writes a table.
    std::fs::write(src.join("tagged"), b"tagged\n").unwrap();
    let xattr_ok =
        squashbox_fixtures::sys::lsetxattr(&src.join("tagged"), "user.tag", b"1").is_ok();
    if !prereq::require(xattr_ok, "user xattrs on the temp directory's filesystem") {
        return;
    }
    let req = Request::root();
    for (flag, table) in [("-no-xattrs", false), ("-xattrs", true)] {
        let img = tmp.path().join(format!("img{flag}.sqfs"));
        squashbox_fixtures::mksquashfs(&src, &img, &[flag]).unwrap();
        let image = Arc::new(Image::open(&img, &Default::default()).unwrap());
        assert_eq!(image.superblock().has_xattrs(), table, "{flag}");
        let fs = squashfs(&image, FsOptions::default());
        for (path, extended, refused) in [
            ("", false, true),
            ("dir", false, true),
            ("link", false, true),
            ("linked", true, true),
            ("linked-fifo", false, false),
            ("file", false, false),
            ("fifo", false, false),
        ] {
            let node = if path.is_empty() {
                ROOT_ID
            } else {
                suite::resolve(&fs, path).node
            };
            if !path.is_empty() {
                let inode = image.lookup_path(path.as_bytes()).unwrap().unwrap();
                assert_eq!(inode.extended, extended, "{flag} {path:?}: inode form");
            }
            let want = if refused && !table {
                Err(Errno::EOPNOTSUPP)
            } else {
                Ok(squashbox_vfs::XattrData::Size(0))
            };
            assert_eq!(
                fs.listxattr(&req, node, 0),
                want,
                "{flag} {path:?}: size probe"
            );
            let got = fs.listxattr(&req, node, 64);
            if refused && !table {
                assert_eq!(got, Err(Errno::EOPNOTSUPP), "{flag} {path:?}: listxattr");
            } else {
                assert!(
                    matches!(&got, Ok(squashbox_vfs::XattrData::Data(d)) if d.is_empty()),
                    "{flag} {path:?}: listxattr gave {got:?}"
                );
            }
            assert_eq!(
                fs.getxattr(&req, node, OsStr::new("user.any"), 64),
                Err(Errno::ENODATA),
                "{flag} {path:?}: getxattr"
            );
        }
    }
}
