//! Unprivileged mounting: a plain test user (created with useradd if missing) mounts (a) inside
//! `unshare --user --map-root-user --mount` with a direct mount(2), and (b) through the setuid
//! fusermount3, and reads the fixture; and (c) serves a FUSE fd that root mounted although it
//! cannot open /dev/fuse itself (Apptainer's setuid flow).
//!
//! The machine's /dev/fuse is never touched: the user's commands run in a private mount
//! namespace (`unshare --mount`, as root) where a fresh node with the mode the case needs (0666
//! as on common distros, or 0600) is bind-mounted over /dev/fuse, then drop to the user with
//! `setpriv`. Killing the test leaves nothing behind but that namespace's processes. Needs root
//! to set up, plus useradd, setpriv, unshare, mknod and fusermount3.

#[path = "common/fuse.rs"]
mod fuse;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fuse::*;

const USER: &str = "squashbox-test";

/// The test user's (uid, gid), created if missing; `None` (a counted skip) if useradd fails.
fn ensure_user() -> Option<(u32, u32)> {
    ensure_named_user(USER)
}

/// `argv` run as `uid:gid` in a private mount namespace whose /dev/fuse is a fresh node with
/// permissions `mode` (a tmpfs at `devdir` holds it). The machine's /dev/fuse is not changed.
/// `detach`, if given, is a mount the namespace must not keep alive (its copy there is lazily
/// unmounted), so that unmounting it outside ends its FUSE connection.
///
/// Everything runs in a PID namespace too, tied to this test: if the test dies, unshare gets
/// SIGKILL (parent-death signal), which kills the namespace's first process and so every
/// process in it (a daemonized server included), and the mount namespace goes with them.
fn as_user_with_dev_fuse(
    devdir: &Path,
    mode: &str,
    ids: (u32, u32),
    detach: Option<&Path>,
    argv: &[&str],
) -> Command {
    std::fs::create_dir_all(devdir).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--",
        "sh",
        "-c",
    ])
    .arg(
        "set -e; mount -t tmpfs -o mode=0755,size=64k squashbox-dev \"$0\"; \
             mknod -m \"$1\" \"$0/fuse\" c 10 229; mount --bind \"$0/fuse\" /dev/fuse; \
             if [ \"$4\" != - ]; then umount -l \"$4\"; fi; \
             u=$2; g=$3; shift 4; \
             exec setpriv --reuid=\"$u\" --regid=\"$g\" --init-groups -- \"$@\"",
    )
    .arg(devdir)
    .arg(mode)
    .arg(ids.0.to_string())
    .arg(ids.1.to_string())
    .arg(detach.map_or("-".into(), |p| p.as_os_str().to_owned()))
    .args(argv)
    .env("HOME", "/");
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
    cmd
}

/// Run `script` with sh as the test user, /dev/fuse 0666 in a private mount namespace.
fn as_user(tmp: &Path, ids: (u32, u32), script: &str) -> (bool, String) {
    run_timeout(
        &mut as_user_with_dev_fuse(&tmp.join("dev"), "0666", ids, None, &["sh", "-c", script]),
        Duration::from_secs(60),
    )
}

fn setup(tmp: &Path, uid: u32) -> (String, String) {
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("hello.txt"), b"hello unprivileged\n").unwrap();
    std::fs::write(src.join("dir/big"), vec![42u8; 500_000]).unwrap();
    let img = tmp.join("img.sqfs");
    mksquashfs(&src, &img, &["-comp", "zstd"]);
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mnt = tmp.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    nix::unistd::chown(&mnt, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
    (img.display().to_string(), mnt.display().to_string())
}

/// The machine's /dev/fuse: (mode, uid, gid, rdev).
fn dev_fuse() -> (u32, u32, u32, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/dev/fuse").unwrap();
    (m.mode(), m.uid(), m.gid(), m.rdev())
}

#[test]
fn plain_user_mounts_in_a_user_namespace_and_through_fusermount3() {
    if !ready(&["useradd", "setpriv", "unshare", "mknod", "fusermount3"]) {
        return;
    }
    let Some(ids) = ensure_user() else { return };
    let before = dev_fuse();
    // A copy the test user can surely execute (the build tree may sit under /root).
    let bindir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bindir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_copy = bindir.path().join("squashbox");
    std::fs::copy(bin(), &bin_copy).unwrap();
    std::fs::set_permissions(&bin_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_copy.display().to_string();

    // (a) inside an unprivileged user+mount namespace: direct mount(2) of /dev/fuse.
    let tmp = tempfile::tempdir().unwrap();
    let (img, mnt) = setup(tmp.path(), ids.0);
    let src = tmp.path().join("src");
    let script = format!(
        "set -e; test -x {bin}; test -w /dev/fuse; \
         {bin} mount {img} {mnt}; cat {mnt}/hello.txt; ls {mnt}/dir; \
         cmp {mnt}/dir/big {src}/dir/big && echo SAME-BYTES; \
         {bin} unmount {mnt}; \
         if grep -q \" {mnt} \" /proc/self/mountinfo; then echo STILL-MOUNTED; fi",
        src = src.display()
    );
    let (ok, out) = as_user(
        tmp.path(),
        ids,
        &format!(
            "test \"$(id -u)\" = {}; unshare --user --map-root-user --mount sh -c '{script}'",
            ids.0
        ),
    );
    assert!(ok, "user namespace mount failed: {out}");
    assert!(
        out.contains("hello unprivileged") && out.contains("big") && out.contains("SAME-BYTES"),
        "{out}"
    );
    assert!(!out.contains("STILL-MOUNTED"), "{out}");

    // (b) as the plain user (no namespace of its own): mount(2) is refused, so the server
    // falls back to fusermount3. Everything happens in the private mount namespace, so the
    // checks run there too.
    let tmp2 = tempfile::tempdir().unwrap();
    let (img2, mnt2) = setup(tmp2.path(), ids.0);
    let script = format!(
        "set -e; trap '{bin} unmount {mnt2} 2>/dev/null || true' EXIT; \
         {bin} mount {img2} {mnt2}; cat {mnt2}/hello.txt; wc -c < {mnt2}/dir/big; \
         grep -q \" {mnt2} .* fuse\" /proc/self/mountinfo && echo MOUNTED-BY-USER; \
         {bin} unmount {mnt2}; \
         for i in 1 2 3 4 5 6 7 8 9 10; do \
           grep -q \" {mnt2} \" /proc/self/mountinfo || break; sleep 0.5; done; \
         if grep -q \" {mnt2} \" /proc/self/mountinfo; then echo STILL-MOUNTED; fi"
    );
    let (ok, out) = as_user(tmp2.path(), ids, &script);
    assert!(ok, "fusermount3 mount failed: {out}");
    assert!(
        out.contains("hello unprivileged")
            && out.contains("500000")
            && out.contains("MOUNTED-BY-USER"),
        "{out}"
    );
    assert!(!out.contains("STILL-MOUNTED"), "{out}");
    assert!(!is_mounted(Path::new(&mnt2)), "the user's mount leaked out");
    assert_eq!(dev_fuse(), before, "the machine's /dev/fuse changed");
}

/// Apptainer's setuid flow in miniature: root opens /dev/fuse and mounts it, and a plain user
/// who cannot open /dev/fuse (0600) serves the fd. Cloning the fd is impossible there: the
/// server must say so in libfuse's words and carry on with one fd.
#[test]
fn clone_fd_failure_falls_back_to_one_fd_with_a_warning() {
    if !ready(&["useradd", "setpriv", "unshare", "mknod"]) {
        return;
    }
    let Some(ids) = ensure_user() else { return };
    let before = dev_fuse();
    let tmp = tempfile::tempdir().unwrap();
    let (img, mnt) = setup(tmp.path(), ids.0);
    let bin_copy = tmp.path().join("squashfuse_ll");
    std::fs::copy(bin(), &bin_copy).unwrap();
    std::fs::set_permissions(&bin_copy, std::fs::Permissions::from_mode(0o755)).unwrap();

    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    let opts = format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd());
    nix::mount::mount(
        Some("squashbox-test"),
        Path::new(&mnt),
        Some("fuse"),
        nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    )
    .expect("mount(2) of /dev/fuse");
    let mut guard = MountGuard::new(Path::new(&mnt));
    let fd = dev.as_raw_fd();
    let bin_copy = bin_copy.display().to_string();
    let mut cmd = as_user_with_dev_fuse(
        &tmp.path().join("dev"),
        "0600",
        ids,
        Some(Path::new(&mnt)),
        &[&bin_copy, "-f", "-o", "max_threads=2", &img, "/dev/fd/3"],
    );
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: dup2/fcntl are async-signal-safe; `fd` stays open until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    guard.child = Some(cmd.spawn().unwrap());
    drop(dev);
    let text = std::fs::read_to_string(Path::new(&mnt).join("hello.txt"));
    force_unmount(Path::new(&mnt));
    let child = guard.child.as_mut().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "server still running"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(
        text.unwrap_or_else(|e| panic!("reading through the user's server: {e}; stderr: {err}")),
        "hello unprivileged\n"
    );
    assert!(err.contains("failed to clone device fd"), "{err}");
    assert!(err.contains("continue without -o clone_fd"), "{err}");
    assert_eq!(dev_fuse(), before, "the machine's /dev/fuse changed");
}
