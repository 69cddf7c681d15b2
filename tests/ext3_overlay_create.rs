//! `squashbox ext3 create` (= `overlay create`): the image must be what `mkfs.ext3` makes at
//! Apptainer's sizes (block size, inode count, journal size), pass `e2fsck -fn`, satisfy
//! Apptainer's ext3 detector rules, mount with the kernel's ext3, and, for a SIF, become an
//! overlay partition in the primary's group that `squashbox ext3 mount` serves.

#[path = "common/ext3.rs"]
mod ext3;
#[path = "common/fuse.rs"]
mod fuse;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ext3::*;
use fuse::*;
use squashbox_fixtures::prereq;

fn create(args: &[&str], path: &Path) -> (bool, String) {
    run_timeout(
        Command::new(bin())
            .args(["ext3", "create"])
            .args(args)
            .arg(path),
        Duration::from_secs(60),
    )
}

/// `dumpe2fs -h` fields that define the geometry.
fn geometry(img: &Path) -> Vec<String> {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .unwrap();
    let keys = [
        "Block size:",
        "Inode count:",
        "Inode size:",
        "Inodes per group:",
        "Blocks per group:",
        "Total journal size:",
        "Filesystem state:",
    ];
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| keys.iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Apptainer's detector (CheckExt3Header): has_journal; INCOMPAT within filetype, recover,
/// meta_bg; RO_COMPAT within sparse_super, large_file, btree_dir.
fn assert_apptainer_accepts(img: &Path) {
    let raw = std::fs::read(img).unwrap();
    let sb = &raw[1024..2048];
    let le32 = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().unwrap());
    assert_eq!(u16::from_le_bytes([sb[0x38], sb[0x39]]), 0xEF53);
    assert!(le32(0x5C) & 0x4 != 0, "no has_journal");
    assert_eq!(
        le32(0x60) & !(0x2 | 0x4 | 0x10),
        0,
        "INCOMPAT {:#x}",
        le32(0x60)
    );
    assert_eq!(
        le32(0x64) & !(0x1 | 0x2 | 0x4),
        0,
        "RO_COMPAT {:#x}",
        le32(0x64)
    );
}

fn kernel_sees_upper_and_work(img: &Path, mnt: &Path) {
    let out = Command::new("mount")
        .args(["-o", "loop", "-t", "ext3"])
        .arg(img)
        .arg(mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "kernel mount: {out:?}");
    let ok = mnt.join("upper").is_dir() && mnt.join("work").is_dir();
    let wrote = std::fs::write(mnt.join("upper/probe"), b"kernel").is_ok();
    let _ = Command::new("umount").arg(mnt).status();
    assert!(ok && wrote, "upper/ and work/ not usable under the kernel");
    assert_fsck_clean(img, "overlay create");
}

#[test]
fn images_match_mkfs_ext3_geometry_and_pass_every_check() {
    if !prereq::require_root("loop mounts")
        || !prereq::require_tools(&["mkfs.ext3", "e2fsck", "dumpe2fs"])
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    for (mib, extra) in [(64u64, vec![]), (1024, vec!["--sparse"])] {
        let ours = tmp.path().join(format!("ours{mib}"));
        let size = mib.to_string();
        let mut args = vec!["--size", size.as_str(), "--create-dir", "/opt/data"];
        args.extend(extra.iter().copied());
        let (ok, out) = create(&args, &ours);
        assert!(ok, "create {mib}: {out}");
        assert_eq!(std::fs::metadata(&ours).unwrap().len(), mib << 20);
        let theirs = tmp.path().join(format!("mkfs{mib}"));
        let st = Command::new("mkfs.ext3")
            .args(["-q", "-F"])
            .arg(&theirs)
            .arg(format!("{mib}M"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(geometry(&ours), geometry(&theirs), "{mib} MiB geometry");
        assert_fsck_clean(&ours, "overlay create");
        assert_apptainer_accepts(&ours);
        let out = Command::new("debugfs")
            .args(["-R", "ls -p /upper/opt"])
            .arg(&ours)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("/data/"),
            "{out:?}"
        );
        kernel_sees_upper_and_work(&ours, &mnt);
    }
    // A sparse image takes (almost) no space; a plain one is allocated.
    let sparse = tmp.path().join("ours1024");
    assert!(std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&sparse).unwrap()) < 8 << 11);
    let (ok, out) = create(&[], &sparse);
    assert!(!ok && out.contains("not a SIF"), "{out}");
    let (ok, out) = create(&["--size", "10"], &tmp.path().join("small"));
    assert!(!ok && out.contains("64 MiB"), "{out}");
}

#[test]
fn sif_gets_an_overlay_partition_that_mounts_read_write() {
    if !prereq::require_root("FUSE mounts") || !prereq::require_tools(&["e2fsck"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sif = tmp.path().join("bb.sif");
    std::fs::copy(busybox_sif(), &sif).unwrap();
    let (ok, out) = create(&["--size", "64"], &sif);
    assert!(ok, "{out}");
    let (ok, list) = run_timeout(
        Command::new(bin()).args(["sif", "list"]).arg(&sif),
        Duration::from_secs(10),
    );
    let line = list
        .lines()
        .find(|l| l.contains("Ext3/Overlay"))
        .unwrap_or_default()
        .to_string();
    let prim = list
        .lines()
        .find(|l| l.contains("Squashfs/*System"))
        .unwrap_or_default()
        .to_string();
    let group = |l: &str| l.split('|').nth(1).map(|s| s.trim().to_string());
    assert!(
        ok && !line.is_empty() && group(&line) == group(&prim),
        "{list}"
    );
    let (ok, out) = create(&["--size", "64"], &sif);
    assert!(!ok && out.contains("already has an overlay"), "{out}");

    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let mut guard = MountGuard::new(&mnt);
    guard.child = Some(
        Command::new(bin())
            .args(["ext3", "mount", "-f"])
            .arg(&sif)
            .arg(&mnt)
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(&mnt)),
        "not mounted"
    );
    assert!(mnt.join("upper").is_dir() && mnt.join("work").is_dir());
    std::fs::write(mnt.join("upper/f"), b"in the sif\n").unwrap();
    let (ok, out) = run_timeout(
        Command::new(bin()).arg("unmount").arg(&mnt),
        Duration::from_secs(20),
    );
    assert!(ok, "{out}");
    let child = guard.child.as_mut().unwrap();
    assert!(wait_for(Duration::from_secs(10), || child
        .try_wait()
        .unwrap()
        .is_some()));
    // The squashfs partition and the SIF still check out; the overlay reads back read-only.
    guard.child = Some(
        Command::new(bin())
            .args(["ext3", "mount", "-f", "-o", "ro"])
            .arg(&sif)
            .arg(&mnt)
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(&mnt)),
        "not mounted ro"
    );
    assert_eq!(std::fs::read(mnt.join("upper/f")).unwrap(), b"in the sif\n");
}
