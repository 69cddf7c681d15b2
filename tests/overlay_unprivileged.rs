//! A plain user, in a user namespace with a usable /dev/fuse, stacks the `fuse-overlayfs`
//! personality over a `squashfuse_ll`-personality mount of Apptainer's busybox SIF, with an
//! upper directory: writes land in the upper (owned by the user), a removed file leaves a
//! 0/0 whiteout and a remade directory is opaque (`user.overlay.opaque`), and the kernel
//! overlay (`userxattr`) reading that upper over a kernel mount of the same SIF shows the
//! very listing the user saw.
//!
//! The machine's /dev/fuse is never touched: the user's commands run in a private mount
//! namespace (made as root) where a fresh 0666 node is bind-mounted over /dev/fuse, then drop
//! to the test user with `setpriv`.

mod overlay_common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use overlay_common::*;
use squashbox_fixtures::prereq;

const BUSYBOX_OFFSET: u64 = 45056;

#[test]
fn plain_user_stacks_fuse_overlayfs_over_squashfuse_ll() {
    if !prereq::require_root("a private mount namespace with its own /dev/fuse, useradd")
        || !prereq::require_path(Path::new("/dev/fuse"))
        || !prereq::require_tools(&["useradd", "setpriv", "unshare", "mknod", "getfattr"])
    {
        return;
    }
    let Some(ids) = ensure_user() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sq = personality_copy(&t.join("bin"), "squashfuse_ll");
    let fo = personality_copy(&t.join("bin"), "fuse-overlayfs");
    let sif = t.join("busybox.sif");
    std::fs::copy(
        squashbox_fixtures::upstream("apptainer-e2e/busybox_amd64.sif"),
        &sif,
    )
    .unwrap();
    for d in ["lower", "upper", "work", "mnt"] {
        std::fs::create_dir(t.join(d)).unwrap();
        nix::unistd::chown(
            &t.join(d),
            Some(nix::unistd::Uid::from_raw(ids.0)),
            Some(nix::unistd::Gid::from_raw(ids.1)),
        )
        .unwrap();
    }
    let p = |rel: &str| t.join(rel).display().to_string();
    let inner = format!(
        "set -e; {sq} -o uid=0,gid=0 {sif} {lower}; \
         {fo} -o lowerdir={lower},upperdir={upper},workdir={work},noacl {mnt}; \
         cd {mnt}; echo made > new.txt; echo extra >> etc/passwd; rm etc/group; \
         rm -rf var/spool; mkdir var/spool; echo fresh > var/spool/fresh; \
         test ! -e etc/group; echo LISTING-START; {LISTING}; echo LISTING-END; cd /; \
         umount {mnt}",
        sq = sq.display(),
        fo = fo.display(),
        sif = sif.display(),
        lower = p("lower"),
        upper = p("upper"),
        work = p("work"),
        mnt = p("mnt"),
    );
    let inner_sh = t.join("inner.sh");
    std::fs::write(&inner_sh, inner).unwrap();
    let script = format!(
        "test \"$(id -u)\" = {}; test -w /dev/fuse; \
         unshare --user --map-root-user --mount sh {}",
        ids.0,
        inner_sh.display()
    );
    let (ok, out) = as_user(&t.join("dev"), ids, &script, Duration::from_secs(60));
    assert!(ok, "the user's stack failed: {out}");
    let ours = out
        .split("LISTING-START\n")
        .nth(1)
        .and_then(|s| s.split("LISTING-END").next())
        .unwrap_or_else(|| panic!("no listing: {out}"))
        .to_string();

    let upper = t.join("upper");
    let new = std::fs::symlink_metadata(upper.join("new.txt")).unwrap();
    assert_eq!((new.uid(), new.gid()), ids, "the upper file is the user's");
    assert_eq!(std::fs::read(upper.join("new.txt")).unwrap(), b"made\n");
    assert!(
        std::fs::read_to_string(upper.join("etc/passwd"))
            .unwrap()
            .ends_with("extra\n"),
        "copied up and appended"
    );
    let wh = std::fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "0/0 whiteout"
    );
    let opq = Command::new("getfattr")
        .args([
            "--absolute-names",
            "--only-values",
            "-n",
            "user.overlay.opaque",
        ])
        .arg(upper.join("var/spool"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&opq.stdout),
        "y",
        "opaque var/spool"
    );

    let _sif = kernel_squashfs(&sif, BUSYBOX_OFFSET, &t.join("k-sif"));
    let _ovl = kernel_overlay(&[&upper, &t.join("k-sif")], &t.join("k-ovl"), "userxattr");
    let (ok, theirs) = run_timeout(
        Command::new("sh")
            .arg("-c")
            .arg(LISTING)
            .current_dir(t.join("k-ovl")),
        Duration::from_secs(30),
    );
    assert!(ok, "{theirs}");
    assert!(ours.contains("new.txt f"), "{ours}");
    assert!(!ours.contains("etc/group "), "{ours}");
    if ours != theirs {
        let a: Vec<&str> = ours.lines().collect();
        let b: Vec<&str> = theirs.lines().collect();
        let only_ours: Vec<_> = a.iter().filter(|l| !b.contains(l)).take(10).collect();
        let only_theirs: Vec<_> = b.iter().filter(|l| !a.contains(l)).take(10).collect();
        panic!("listings differ: ours only {only_ours:?}; kernel only {only_theirs:?}");
    }
}
