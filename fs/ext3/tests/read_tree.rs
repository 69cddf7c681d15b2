//! Images made by `mkfs.ext3 -d` / `mkfs.ext4 -d` from a generated tree, read back through
//! the [`Filesystem`] trait and compared with the source tree: names, types, modes, owners,
//! sizes, contents (every block-map level, holes), symlinks, hard links, devices, xattrs,
//! mtimes; the big directory is an htree found through its index; name hashes match
//! `debugfs dx_hash`.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::tree::{self, BIG_DIR_ENTRIES};
use common::*;
use squashbox_ext3::dx_hash;
use squashbox_ext3::inode::{EXTENTS_FL, INDEX_FL};
use squashbox_fixtures::prereq;
use squashbox_vfs::{FileType, Filesystem, ROOT_ID};

/// Compare `rel` (and everything under it) in the source tree with the image.
fn compare(fs: &dyn Filesystem, src: &Path, rel: &Path, xattrs_ok: bool, seen: &mut usize) {
    let host = src.join(rel);
    let meta = fs::symlink_metadata(&host).unwrap();
    let (node, attr) = if rel.as_os_str().is_empty() {
        (ROOT_ID, root_attr(fs))
    } else {
        let e = resolve(fs, rel);
        (e.node, e.attr)
    };
    *seen += 1;
    let what = rel.display();
    assert_eq!(attr.mode(), meta.mode(), "mode of {what}");
    assert_eq!(
        (attr.uid, attr.gid),
        (meta.uid(), meta.gid()),
        "owner of {what}"
    );
    if !rel.as_os_str().is_empty() {
        // mkfs -d stamps the root with its own time.
        assert_eq!(attr.mtime.secs, meta.mtime(), "mtime of {what}");
    }
    // mkfs -d keeps whole seconds only; nanoseconds are checked against the kernel.
    if !meta.is_dir() {
        assert_eq!(u64::from(attr.nlink), meta.nlink(), "nlink of {what}");
        assert_eq!(attr.size, meta.size(), "size of {what}");
    }
    if xattrs_ok {
        assert_eq!(xattrs(fs, node), host_xattrs(&host), "xattrs of {what}");
    }
    match attr.kind {
        FileType::RegularFile => {
            let want = fs::read(&host).unwrap();
            assert!(read_all(fs, node, attr.size) == want, "content of {what}");
        }
        FileType::Symlink => {
            let want = fs::read_link(&host).unwrap();
            let got = fs.readlink(&req(), node).unwrap();
            assert_eq!(
                OsStr::new(std::str::from_utf8(&got).unwrap()),
                want.as_os_str(),
                "{what}"
            );
        }
        FileType::CharDevice | FileType::BlockDevice => {
            assert_eq!(u64::from(attr.rdev), meta.rdev(), "rdev of {what}");
        }
        FileType::Directory => {
            let mut want: Vec<Vec<u8>> = fs::read_dir(&host)
                .unwrap()
                .map(|e| {
                    use std::os::unix::ffi::OsStrExt;
                    e.unwrap().file_name().as_bytes().to_vec()
                })
                .collect();
            want.sort();
            let got: Vec<Vec<u8>> = list(fs, node).into_iter().map(|l| l.name).collect();
            let mut got_sorted = got.clone();
            got_sorted.sort();
            // lost+found exists only in the image.
            got_sorted.retain(|n| !(rel.as_os_str().is_empty() && n == b"lost+found"));
            assert_eq!(got_sorted, want, "listing of {what}");
            for name in want {
                use std::os::unix::ffi::OsStrExt;
                compare(
                    fs,
                    src,
                    &rel.join(OsStr::from_bytes(&name)),
                    xattrs_ok,
                    seen,
                );
            }
        }
        _ => {}
    }
}

fn check_image(kind: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let xattrs_ok = tree::build(&src);
    prereq::require(xattrs_ok, "user xattrs in the temp directory");
    let img = tmp.path().join("img");
    if make_image(kind, &src, &img, "96M", extra).is_none() {
        return;
    }
    let fs = open(&img);
    let mut seen = 0;
    compare(&fs, &src, Path::new(""), xattrs_ok, &mut seen);
    assert!(seen > BIG_DIR_ENTRIES + 50, "walked only {seen} nodes");

    // Hard links share the inode.
    let one = resolve(&fs, Path::new("links/one")).attr.ino;
    assert_eq!(resolve(&fs, Path::new("links/sub/three")).attr.ino, one);

    // The big directory is indexed and every name is found through the index.
    let big = resolve(&fs, Path::new("bigdir"));
    let inode = fs.volume().inode(big.attr.ino as u32).unwrap();
    assert_ne!(inode.flags & INDEX_FL, 0, "e2fsck -fD indexed bigdir");
    for i in (0..BIG_DIR_ENTRIES).step_by(7) {
        let name = tree::big_name(i);
        assert!(
            fs.lookup(&req(), big.node, OsStr::new(&name))
                .unwrap()
                .is_some(),
            "{name}"
        );
        let miss = format!("{name}-missing");
        assert!(
            fs.lookup(&req(), big.node, OsStr::new(&miss))
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        fs.faults().emitted(),
        0,
        "no fault (no unusable index) on a valid image"
    );

    let f = resolve(&fs, Path::new("files/f-05242880"));
    let f_inode = fs.volume().inode(f.attr.ino as u32).unwrap();
    assert_eq!(
        f_inode.flags & EXTENTS_FL != 0,
        kind == "ext4",
        "mapping of a {kind} file"
    );
}

#[test]
fn ext3_image_matches_its_source_tree() {
    check_image("ext3", &[]);
}

#[test]
fn ext3_image_with_4k_blocks_matches_its_source_tree() {
    check_image("ext3", &["-b", "4096"]);
}

#[test]
fn ext4_image_matches_its_source_tree() {
    check_image("ext4", &[]);
}

#[test]
fn ext4_image_is_served_read_only_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    let img = tmp.path().join("img");
    if make_image("ext4", &src, &img, "8M", &[]).is_none() {
        return;
    }
    let fs = squashbox_ext3::Ext3Fs::open(&img, 0, false).unwrap();
    let reason = fs.read_only_reason().expect("a reason");
    assert!(
        reason.contains("extent") && !reason.contains('\n'),
        "{reason}"
    );
    assert!(fs.policy().read_only);
}

#[test]
fn name_hashes_match_debugfs() {
    if !prereq::require_tools(&["debugfs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    run(
        Command::new("mkfs.ext3")
            .args(["-q", "-F"])
            .arg(&img)
            .arg("4M"),
        &[0],
    );
    let seed_words = [0x0403_0201u32, 0x0807_0605, 0x0c0b_0a09, 0x100f_0e0d];
    let seed = "01020304-0506-0708-090a-0b0c0d0e0f10";
    let names: Vec<Vec<u8>> = vec![
        b"a".to_vec(),
        b"hello".to_vec(),
        b"entry-00042-ppppp".to_vec(),
        "héllo-wörld".as_bytes().to_vec(),
        vec![b'n'; 255],
        b"exactly-32-bytes-long-name-12345".to_vec(),
    ];
    // debugfs takes the unsigned variants only by number (3..=5).
    for version in 0..6u8 {
        let alg = version.to_string();
        for name in &names {
            let n = String::from_utf8(name.clone()).unwrap();
            let cmd = format!("dx_hash -h {alg} -s {seed} {n}");
            let out = run(Command::new("debugfs").arg("-R").arg(&cmd).arg(&img), &[0]);
            let line = out
                .lines()
                .find(|l| l.contains("Hash of"))
                .unwrap_or_else(|| panic!("{out}"));
            let hex = line
                .split("is 0x")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            let want = u32::from_str_radix(hex, 16).unwrap();
            let (got, _) = dx_hash::hash(name, version, &seed_words).unwrap();
            assert_eq!(
                got, want,
                "{alg} of {n:?}: ours {got:#x}, debugfs {want:#x}"
            );
        }
    }
}

#[test]
fn modes_survive() {
    // A cheap sanity check of the tree itself: the special modes were applied.
    let tmp = tempfile::tempdir().unwrap();
    tree::build(tmp.path());
    let m = fs::metadata(tmp.path().join("modes/setuid")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
}

#[test]
fn files_over_4_gib_use_i_size_high() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let size: u64 = (5 << 30) + 3;
    let f = fs::File::create(src.join("huge")).unwrap();
    f.set_len(size).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"head", 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"end", size - 3).unwrap();
    drop(f);
    let img = tmp.path().join("img");
    if make_image("ext3", &src, &img, "16M", &[]).is_none() {
        return;
    }
    let fs = open(&img);
    let e = resolve(&fs, Path::new("huge"));
    assert_eq!(e.attr.size, size);
    let read = |off: u64, len: u32| {
        let (reply, rx) = squashbox_vfs::ReadReply::channel();
        fs.read(
            &req(),
            e.node,
            squashbox_vfs::FileHandle(0),
            off,
            len,
            reply,
        );
        rx.recv().unwrap().unwrap()
    };
    assert_eq!(read(0, 4), b"head");
    assert_eq!(read(size - 3, 100), b"end");
    assert_eq!(read(4 << 30, 8), vec![0u8; 8]);
    if squashbox_fixtures::prereq::require_root("the kernel's ext3 driver as a cross-check") {
        let m = Mount::new(&img, "ext3", &tmp.path().join("mnt"));
        let meta = fs::metadata(m.dir.join("huge")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.size(), meta.blocks()), (e.attr.size, e.attr.blocks));
    }
}
