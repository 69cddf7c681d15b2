//! CREATE right after the kernel's LOOKUP missed: the overlay takes the miss instead of
//! asking the upper again, but only a true absence found with no change since. A whiteout
//! left in an upper-only directory is replaced, not opened; a name made after the miss
//! gives EEXIST; the node a create returns is the one a lookup finds afterwards.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

use squashbox_fixtures::prereq;
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::{Overlay, UpperLayer};
use squashbox_vfs::{Errno, FileType, Filesystem, OpenFlags, ROOT_ID, RenameFlags, Request};

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn create_after_a_miss_in_an_upper_only_directory() {
    if !prereq::require_root("mknod of a 0/0 whiteout in the upper") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    common::put(&t.join("lower"), "f", b"lower");
    common::dir(&t.join("up"), "upper");
    common::dir(&t.join("up"), "work");
    let upper: Arc<dyn Filesystem> =
        Arc::new(HostDir::open(&t.join("up"), HostDirOptions::default()).unwrap());
    let u = UpperLayer {
        fs: upper,
        upper: "upper".into(),
        work: "work".into(),
    };
    let fs = Overlay::new(vec![common::host_layer(&t.join("lower"))], Some(u)).unwrap();
    let req = Request::root();
    let dir = fs.mkdir(&req, ROOT_ID, n("new"), 0o755).unwrap().node;
    let wflags = OpenFlags(libc::O_WRONLY);

    // A whiteout left in the upper-only directory: the lookup misses, and the create must
    // replace it, not open the device.
    common::whiteout(&t.join("up/upper/new"), "w");
    assert!(fs.lookup(&req, dir, n("w")).unwrap().is_none());
    let (e, _) = fs.create(&req, dir, n("w"), 0o644, wflags).unwrap();
    assert_eq!(e.attr.kind, FileType::RegularFile);
    let host = std::fs::symlink_metadata(t.join("up/upper/new/w")).unwrap();
    assert!(host.file_type().is_file(), "the whiteout was replaced");

    // A miss followed by another change is not trusted (a rename puts the name there).
    fs.create(&req, dir, n("z"), 0o644, wflags).unwrap();
    assert!(fs.lookup(&req, dir, n("x")).unwrap().is_none());
    fs.rename(&req, dir, n("z"), dir, n("x"), RenameFlags(0))
        .unwrap();
    let err = fs.create(&req, dir, n("x"), 0o644, wflags).err();
    assert_eq!(err, Some(Errno::EEXIST));

    // The plain case: the created node is what a lookup finds after.
    assert!(fs.lookup(&req, dir, n("y")).unwrap().is_none());
    let (made, _) = fs.create(&req, dir, n("y"), 0o640, wflags).unwrap();
    let found = fs.lookup(&req, dir, n("y")).unwrap().unwrap();
    assert_eq!((found.node, found.attr.ino), (made.node, made.attr.ino));
    assert_eq!(found.attr.perm, 0o640);
    let host = std::fs::symlink_metadata(t.join("up/upper/new/y")).unwrap();
    assert!(!host.file_type().is_char_device());
}
