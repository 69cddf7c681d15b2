//! ext3 image helpers for the ext3 integration tests (tests/ext3_*.rs): a fresh image from
//! mkfs.ext3, and e2fsck as the oracle.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// A fresh ext3 image of `mib` MiB at `path` (`mkfs.ext3 -q -F`).
pub fn mkfs_ext3(path: &Path, mib: u64) {
    let out = Command::new("mkfs.ext3")
        .args(["-q", "-F"])
        .arg(path)
        .arg(format!("{mib}M"))
        .output()
        .unwrap();
    assert!(out.status.success(), "mkfs.ext3: {out:?}");
}

/// `e2fsck FLAG IMG`: its exit code (-1 when killed) and its output, stdout then stderr.
pub fn e2fsck(img: &Path, flag: &str) -> (i32, String) {
    let out = Command::new("e2fsck").arg(flag).arg(img).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// `e2fsck -fn` exits 0 and asks no "Fix?" question; `what` names the case on failure.
pub fn assert_fsck_clean(img: &Path, what: &str) {
    let (rc, text) = e2fsck(img, "-fn");
    assert!(
        rc == 0 && !text.contains("Fix?"),
        "{what}: e2fsck -fn {} exited {rc}: {text}",
        img.display()
    );
}
