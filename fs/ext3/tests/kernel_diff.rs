//! The kernel as the oracle (root): the same image loop-mounted read-only by the kernel's
//! ext3/ext4 driver and read through [`Ext3Fs`] must agree on every `lstat` field (inode
//! numbers, link counts, i_blocks, nanosecond times with epoch bits), every listing (names,
//! d_ino, d_type), every byte, symlink target and xattr, and on statfs.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use common::tree;
use common::*;
use squashbox_fixtures::prereq;
use squashbox_vfs::{Filesystem, ROOT_ID};

/// Put nanoseconds (and epoch bits) into a few inodes, as mkfs -d leaves them zero.
fn set_nanoseconds(img: &Path) {
    for (path, field, value) in [
        ("/files/f-00000001", "mtime_extra", "0x1d6f3455"),
        ("/files/f-00000001", "atime_extra", "0x00000004"),
        ("/files/f-00001024", "ctime_extra", "0xee6b27fc"),
        ("/names", "mtime_extra", "0x00000008"),
    ] {
        run(
            Command::new("debugfs")
                .arg("-w")
                .arg("-R")
                .arg(format!("sif {path} {field} {value}"))
                .arg(img),
            &[0],
        );
    }
}

fn against_kernel(kind: &str, extra: &[&str]) {
    if !prereq::require_root("loop-mounting the image with the kernel's driver as the oracle") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree::build(&src);
    let img = tmp.path().join("img");
    if make_image(kind, &src, &img, "96M", extra).is_none() {
        return;
    }
    if !extra.contains(&"128") {
        set_nanoseconds(&img);
    }
    let fs = open(&img);
    let mnt = Mount::new(&img, kind, &tmp.path().join("mnt"));
    let mut count = 0;
    diff_with_kernel(&fs, &mnt.dir, Path::new(""), &mut count);
    assert!(count > tree::BIG_DIR_ENTRIES, "compared only {count} nodes");

    let ours = fs.statfs(&req(), ROOT_ID).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-buffer; the path is NUL-terminated.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    let c = std::ffi::CString::new(mnt.dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is NUL-terminated and `sv` is a live statvfs the call fills.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut sv) }, 0);
    assert_eq!(
        (ours.blocks, ours.bfree, ours.bavail, ours.files, ours.ffree),
        (sv.f_blocks, sv.f_bfree, sv.f_bavail, sv.f_files, sv.f_ffree),
        "statfs (blocks, bfree, bavail, files, ffree)"
    );
    assert_eq!(
        (u64::from(ours.bsize), u64::from(ours.namelen)),
        (sv.f_bsize, sv.f_namemax)
    );
    assert_eq!(fs.faults().emitted(), 0, "no fault on a valid image");
}

#[test]
fn ext3_1k_blocks_agrees_with_the_kernel() {
    against_kernel("ext3", &[]);
}

#[test]
fn ext3_4k_blocks_agrees_with_the_kernel() {
    against_kernel("ext3", &["-b", "4096"]);
}

#[test]
fn ext4_agrees_with_the_kernel() {
    against_kernel("ext4", &[]);
}

#[test]
fn ext3_128_byte_inodes_agrees_with_the_kernel() {
    against_kernel("ext3", &["-I", "128"]);
}
