//! The filesystem-trait suite (`squashbox_vfs::conformance`) run against [`HostDir`].

use std::path::Path;

use squashbox_fixtures::prereq;
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_vfs::conformance as suite;

fn big_bytes() -> Vec<u8> {
    (0..400_000u32).map(|i| (i % 251) as u8).collect()
}

fn tree(src: &Path) {
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("hello"), b"hello world\n").unwrap();
    std::fs::write(src.join("sub/big"), big_bytes()).unwrap();
    for i in 0..300 {
        std::fs::write(src.join("sub/deeper").join(format!("f{i:03}")), [i as u8]).unwrap();
    }
    std::os::unix::fs::symlink("hello", src.join("link")).unwrap();
}

fn run_suite(fs: &HostDir, xattrs: bool) {
    suite::check_lookup_counts(fs, "", "hello");
    suite::check_lookup_counts(fs, "sub", "deeper");
    suite::check_lookup_counts(fs, "", "link");
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    suite::check_readdir_resumes(fs, "sub/deeper", &names);
    suite::check_readdir_resumes(fs, "", &["hello", "link", "sub"]);
    if xattrs {
        suite::check_xattr_probe(fs, "hello", "user.test", b"value-1");
    }
    suite::check_read(fs, "hello", b"hello world\n");
    suite::check_read(fs, "sub/big", &big_bytes());
}

#[test]
fn the_trait_suite_passes_read_write_and_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let xattrs = prereq::require_user_xattrs(&src);
    if xattrs {
        squashbox_fixtures::sys::lsetxattr(&src.join("hello"), "user.test", b"value-1").unwrap();
    }
    let fs = HostDir::open(&src, HostDirOptions::default()).unwrap();
    run_suite(&fs, xattrs);
    let ro = HostDir::open(
        &src,
        HostDirOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    run_suite(&ro, xattrs);
    suite::check_read_only(&ro, "hello");
}

#[test]
fn the_suite_passes_with_a_tiny_descriptor_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let fs = HostDir::open(
        &src,
        HostDirOptions {
            fd_limit: 2,
            ..Default::default()
        },
    )
    .unwrap();
    run_suite(&fs, false);
    assert!(
        fs.cached_fds() <= 2,
        "{} descriptors cached",
        fs.cached_fds()
    );
}
