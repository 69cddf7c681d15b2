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
    let out = Command::new("mksquashfs")
        .arg(&src)
        .arg(&img)
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-all-root",
            "-xattrs",
        ])
        .output()
        .expect("running mksquashfs");
    assert!(
        out.status.success(),
        "mksquashfs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
