//! Edge cases pjdfstest found: a name of NAME_MAX bytes (whose `.wh.` form is longer than a
//! layer accepts) can be made and found, and a 0/0 character device (a whiteout) cannot be
//! made (EPERM, as the kernel overlay answers); plus the owner view of [`IdMapped`].

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::idmap::{IdMap, IdMapped, IdOptions};
use squashbox_overlay::{Overlay, UpperLayer};
use squashbox_vfs::{Errno, FileType, Filesystem, ROOT_ID, Request};

fn writable(t: &Path) -> Arc<dyn Filesystem> {
    common::put(&t.join("lower"), "f", b"lower data");
    common::dir(&t.join("lower"), "d");
    common::dir(&t.join("up"), "upper");
    common::dir(&t.join("up"), "work");
    let upper = UpperLayer {
        fs: Arc::new(HostDir::open(&t.join("up"), HostDirOptions::default()).unwrap()),
        upper: "upper".into(),
        work: "work".into(),
    };
    let lower = common::host_layer(&t.join("lower"));
    Arc::new(Overlay::new(vec![lower], Some(upper)).unwrap())
}

#[test]
fn a_name_of_name_max_bytes_is_made_and_found() {
    let t = tempfile::tempdir().unwrap();
    let fs = writable(t.path());
    let r = Request::root();
    let long = "n".repeat(255);
    let made = fs.mkdir(&r, ROOT_ID, OsStr::new(&long), 0o755).unwrap();
    assert_eq!(made.attr.kind, FileType::Directory);
    let found = fs.lookup(&r, ROOT_ID, OsStr::new(&long)).unwrap();
    assert_eq!(found.map(|e| e.node), Some(made.node));
    // Inside a lower directory too (its `.wh.` probe goes to the lower layer).
    let d = fs.lookup(&r, ROOT_ID, OsStr::new("d")).unwrap().unwrap();
    fs.mkdir(&r, d.node, OsStr::new(&long), 0o755).unwrap();
    assert!(t.path().join("up/upper/d").join(&long).is_dir());
    let too_long = "n".repeat(256);
    assert!(fs.mkdir(&r, ROOT_ID, OsStr::new(&too_long), 0o755).is_err());
}

#[test]
fn a_zero_zero_character_device_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let fs = writable(t.path());
    let r = Request::root();
    let e = fs
        .mknod(&r, ROOT_ID, OsStr::new("c"), libc::S_IFCHR | 0o644, 0)
        .unwrap_err();
    assert_eq!(e, Errno::EPERM);
    assert!(fs.lookup(&r, ROOT_ID, OsStr::new("c")).unwrap().is_none());
}

#[test]
fn owners_are_mapped_squashed_and_directories_keep_one_link() {
    let t = tempfile::tempdir().unwrap();
    let inner = writable(t.path());
    let r = Request::root();
    let ids = IdOptions {
        uid_map: IdMap::parse("1000:0:1").unwrap(),
        squash_gid: Some(77),
        static_nlink: true,
        ..Default::default()
    };
    let fs = IdMapped::new(inner, ids);
    let d = fs.lookup(&r, ROOT_ID, OsStr::new("d")).unwrap().unwrap();
    assert_eq!((d.attr.uid, d.attr.gid, d.attr.nlink), (1000, 77, 1));
    let f = fs.lookup(&r, ROOT_ID, OsStr::new("f")).unwrap().unwrap();
    assert_eq!(f.attr.uid, 1000);
    // A caller shown as 1000 is root in the layers: chown to 1000 stores 0.
    let shown = Request { uid: 1000, ..r };
    let set = squashbox_vfs::SetAttr {
        uid: Some(1000),
        ..Default::default()
    };
    let out = fs.setattr(&shown, f.node, &set).unwrap();
    assert_eq!(out.attr.uid, 1000);
    let unmapped = squashbox_vfs::SetAttr {
        uid: Some(5),
        ..Default::default()
    };
    assert_eq!(
        fs.setattr(&r, f.node, &unmapped).unwrap_err(),
        Errno::EINVAL
    );
}
