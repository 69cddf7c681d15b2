//! `squashbox exec` as a plain user: a test user (created with useradd if missing) runs the
//! busybox SIF. The machine's /dev/fuse is never touched: the user's commands run in a
//! private mount namespace (as root) where a fresh 0666 node is bind-mounted over
//! /dev/fuse, and then drop to the user with `setpriv`; everything runs in a PID namespace
//! tied to the test (killed with it). Needs root to set up, plus useradd, setpriv, unshare
//! and mknod.

#[path = "common/fuse.rs"]
mod fuse;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fuse::{bin, busybox_sif, ensure_named_user, run_timeout};
use squashbox_fixtures::prereq;

const USER: &str = "squashbox-test";

fn ensure_user() -> Option<(u32, u32)> {
    ensure_named_user(USER)
}

/// Run `script` with sh as `ids` in a private mount and PID namespace whose /dev/fuse is
/// a fresh 0666 node on a small tmpfs at `devdir`; the working directory is `cwd`.
fn as_user(devdir: &Path, cwd: &Path, ids: (u32, u32), script: &str) -> (bool, String) {
    std::fs::create_dir_all(devdir).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "--",
    ])
    .args(["sh", "-c"])
    .arg(
        "set -e; mount -t tmpfs -o mode=0755,size=64k squashbox-dev \"$0\"; \
             mknod -m 0666 \"$0/fuse\" c 10 229; mount --bind \"$0/fuse\" /dev/fuse; \
             u=$1; g=$2; shift 2; \
             exec setpriv --reuid=\"$u\" --regid=\"$g\" --init-groups -- \"$@\"",
    )
    .arg(devdir)
    .arg(ids.0.to_string())
    .arg(ids.1.to_string())
    .args(["sh", "-c", script])
    .current_dir(cwd)
    .env("HOME", "/nonexistent")
    .env("TMPDIR", "/tmp");
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run_timeout(&mut cmd, Duration::from_secs(90))
}

/// A directory any user can enter, holding copies of the binary and of the busybox SIF the
/// user can surely read and run (the build tree may sit under /root).
fn stage() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sb = dir.path().join("squashbox");
    std::fs::copy(bin(), &sb).unwrap();
    std::fs::set_permissions(&sb, std::fs::Permissions::from_mode(0o755)).unwrap();
    let img = dir.path().join("busybox_amd64.sif");
    std::fs::copy(busybox_sif(), &img).unwrap();
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, sb, img)
}

#[test]
fn a_plain_user_runs_the_busybox_sif() {
    if !prereq::require_root("creating the test user and a private /dev/fuse")
        || !prereq::require_path(Path::new("/dev/fuse"))
        || !prereq::require_tools(&["useradd", "setpriv", "unshare", "mknod"])
    {
        return;
    }
    let Some(ids) = ensure_user() else { return };
    let (dir, sb, img) = stage();
    let arm = dir.path().join("busybox_arm64.sif");
    std::fs::copy(
        squashbox_fixtures::upstream("apptainer-e2e/busybox_arm64.sif"),
        &arm,
    )
    .unwrap();
    std::fs::set_permissions(&arm, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A directory of the user's own for an ext3 overlay image.
    let own = dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    nix::unistd::chown(
        &own,
        Some(nix::unistd::Uid::from_raw(ids.0)),
        Some(nix::unistd::Gid::from_raw(ids.1)),
    )
    .unwrap();
    let ov = own.join("overlay.img");
    let (sb, img, arm, ov) = (sb.display(), img.display(), arm.display(), ov.display());
    let script = format!(
        "test \"$(id -u)\" = {uid} || {{ echo NOT-THE-USER; exit 1; }}; \
         {sb} exec {img} /bin/true; echo true=$?; \
         {sb} exec {img} /bin/false; echo false=$?; \
         {sb} exec {img} sh -c 'exit 7'; echo seven=$?; \
         {sb} exec {img} echo hello from busybox; \
         {sb} exec {img} id -u; \
         {sb} exec {img} sh -c 'grep \" / / \" /proc/self/mountinfo | grep -c fuse.squashbox'; \
         {sb} exec --fakeroot {img} id -u; \
         {sb} exec --writable-tmpfs {img} sh -c 'echo w > /w && cat /w'; \
         {sb} exec {arm} /bin/true 2>/dev/null; echo arm=$?; \
         {sb} overlay create --size 64 {ov} && \
         {sb} exec -o {ov} {img} sh -c 'echo p > /p'; \
         {sb} exec -o {ov} {img} cat /p; \
         {sb} overlay create --fakeroot --size 64 {ov}.f && \
         {sb} exec --fakeroot -o {ov}.f {img} sh -c 'echo f > /f && rm /bin/false'; \
         {sb} exec --fakeroot -o {ov}.f {img} sh -c 'cat /f; ls /bin/false 2>/dev/null || echo gone'",
        uid = ids.0
    );
    let (ok, out) = as_user(&dir.path().join("dev"), dir.path(), ids, &script);
    assert!(ok, "{out}");
    assert_eq!(
        out,
        format!(
            "true=0\nfalse=1\nseven=7\nhello from busybox\n{}\n1\n0\nw\narm=255\np\nf\ngone\n",
            ids.0
        )
    );
}

/// The user of the subordinate-id test, and the ranges it gets in /etc/subuid and /etc/subgid.
const SUBID_USER: &str = "squashbox-subid";
const SUBID_START: u64 = 3_100_000;
const SUBID_COUNT: u64 = 65_536;

/// Give `name` a range in `file` unless it has one already (as `usermod --add-subuids` would).
fn ensure_subid_range(file: &str, name: &str) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    if text.lines().any(|l| l.split(':').next() == Some(name)) {
        return;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    use std::io::Write;
    writeln!(f, "{name}:{SUBID_START}:{SUBID_COUNT}").unwrap();
}

#[test]
fn fakeroot_maps_the_subordinate_ranges_through_newuidmap() {
    if !prereq::require_root("creating a test user with /etc/subuid ranges")
        || !prereq::require_path(Path::new("/dev/fuse"))
        || !prereq::require_tools(&[
            "useradd",
            "setpriv",
            "unshare",
            "mknod",
            "newuidmap",
            "newgidmap",
        ])
    {
        return;
    }
    let Some(ids) = ensure_named_user(SUBID_USER) else {
        return;
    };
    ensure_subid_range("/etc/subuid", SUBID_USER);
    ensure_subid_range("/etc/subgid", SUBID_USER);
    let (dir, sb, img) = stage();
    let script = format!(
        "{sb} exec --fakeroot {img} sh -c 'id -u; cat /proc/self/uid_map /proc/self/gid_map; \
         echo $HOME'; {sb} exec --fakeroot --ignore-subuid {img} cat /proc/self/uid_map",
        sb = sb.display(),
        img = img.display()
    );
    let (ok, out) = as_user(&dir.path().join("dev"), dir.path(), ids, &script);
    assert!(ok, "{out}");
    let words: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let line = |v: &[String]| v.join(" ");
    let expect = |id: u32| {
        vec![
            format!("0 {id} 1"),
            format!("1 {SUBID_START} {SUBID_COUNT}"),
        ]
    };
    let got: Vec<String> = words.iter().map(|w| line(w)).collect();
    let mut want = vec!["0".to_string()];
    want.extend(expect(ids.0));
    want.extend(expect(ids.1));
    want.push("/root".into());
    // --ignore-subuid: root-mapped to the user alone.
    want.push(format!("0 {} 1", ids.0));
    assert_eq!(got, want, "{out}");
}
