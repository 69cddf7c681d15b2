//! The filesystem-trait suite (`squashbox_vfs::conformance`) run against an [`Overlay`] of
//! a host-directory layer over a SquashFS layer.

mod common;

use std::sync::Arc;

use squashbox_fixtures::prereq;
use squashbox_overlay::Overlay;
use squashbox_vfs::Filesystem;
use squashbox_vfs::conformance as suite;

#[test]
fn the_trait_suite_passes_on_a_merged_stack() {
    if !prereq::require_tools(&["mksquashfs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (top, bottom) = (tmp.path().join("top"), tmp.path().join("bottom"));
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    common::put(&top, "hello", b"hello world\n");
    std::os::unix::fs::symlink("hello", top.join("link")).unwrap();
    common::put(&bottom, "hello", b"shadowed\n");
    common::put(&bottom, "sub/big", &big);
    for i in 0..300 {
        let layer = if i % 2 == 0 { &top } else { &bottom };
        common::put(layer, &format!("sub/deeper/f{i:03}"), &[i as u8]);
    }
    common::put(&bottom, "sub/deeper/f000", b"shadowed");
    common::put(&top, ".wh.gone", b"");
    common::put(&bottom, "gone", b"whited out");
    let xattrs = prereq::require_user_xattrs(&top);
    if xattrs {
        squashbox_fixtures::sys::lsetxattr(&top.join("hello"), "user.test", b"value-1").unwrap();
    }
    let lowers = vec![
        common::host_layer(&top),
        common::squash_layer(&bottom, &tmp.path().join("bottom.sqfs")),
    ];
    let fs = Overlay::new(lowers, None).unwrap();
    suite::check_lookup_counts(&fs, "", "hello");
    suite::check_lookup_counts(&fs, "sub", "deeper");
    suite::check_lookup_counts(&fs, "", "sub");
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    suite::check_readdir_resumes(&fs, "sub/deeper", &names);
    suite::check_readdir_resumes(&fs, "", &["hello", "link", "sub"]);
    if xattrs {
        suite::check_xattr_probe(&fs, "hello", "user.test", b"value-1");
    }
    suite::check_read(&fs, "hello", b"hello world\n");
    suite::check_read(&fs, "sub/big", &big);
    suite::check_read(&fs, "sub/deeper/f000", &[0]);
    suite::check_read_only(&fs, "hello");
    let fs: Arc<dyn Filesystem> = Arc::new(fs);
    assert!(fs.policy().read_only);

    // The same stack under an empty upper layer: writable, and the suite still holds.
    common::dir(&tmp.path().join("up"), "upper");
    common::dir(&tmp.path().join("up"), "work");
    let upper_fs: Arc<dyn squashbox_vfs::Filesystem> = Arc::new(
        squashbox_hostdir::HostDir::open(&tmp.path().join("up"), Default::default()).unwrap(),
    );
    let lowers = vec![
        common::host_layer(&top),
        common::squash_layer(&bottom, &tmp.path().join("bottom2.sqfs")),
    ];
    let upper = |u: &str, w: &str| squashbox_overlay::UpperLayer {
        fs: Arc::clone(&upper_fs),
        upper: u.into(),
        work: w.into(),
    };
    let missing = Overlay::new(lowers.clone(), Some(upper("nope", "work")));
    assert!(missing.err().unwrap().contains("upper directory"));
    let same = Overlay::new(lowers.clone(), Some(upper("upper", "upper")));
    assert!(same.err().unwrap().contains("work directory is the upper"));
    let fs = Overlay::new(lowers, Some(upper("upper", "work"))).unwrap();
    assert!(!fs.policy().read_only && fs.writable());
    suite::check_lookup_counts(&fs, "", "hello");
    suite::check_lookup_counts(&fs, "sub", "deeper");
    suite::check_readdir_resumes(&fs, "sub/deeper", &names);
    suite::check_readdir_resumes(&fs, "", &["hello", "link", "sub"]);
    if xattrs {
        suite::check_xattr_probe(&fs, "hello", "user.test", b"value-1");
    }
    suite::check_read(&fs, "sub/big", &big);
}
