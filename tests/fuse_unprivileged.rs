//! Unprivileged mounting: a plain test user (created with useradd if missing), with /dev/fuse
//! made 0666 as on common distros (restored afterwards), mounts (a) inside
//! `unshare --user --map-root-user --mount` with a direct mount(2), and (b) directly through
//! the setuid fusermount3, and reads the fixture. Needs root to set up, plus useradd, runuser,
//! unshare and fusermount3.

#[path = "common/fuse.rs"]
mod fuse;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fuse::*;

const USER: &str = "squashbox-test";

/// Both tests change /dev/fuse's mode: never at the same time.
static DEV_FUSE: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct DevFuseMode(u32);

impl Drop for DevFuseMode {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.0));
    }
}

fn ensure_user() -> Option<u32> {
    let id = |_: ()| {
        Command::new("id")
            .args(["-u", USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
    };
    if let Some(uid) = id(()) {
        return Some(uid);
    }
    let (ok, out) = run_timeout(
        Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/bin/sh", USER]),
        Duration::from_secs(30),
    );
    if !ok && !out.contains("already exists") {
        println!("skipped: useradd failed: {out}");
        return None;
    }
    id(())
}

fn as_user(script: &str) -> (bool, String) {
    run_timeout(
        Command::new("runuser").args(["-u", USER, "--", "sh", "-c", script]),
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

#[test]
fn plain_user_mounts_in_a_user_namespace_and_through_fusermount3() {
    if skip_unless(&["useradd", "runuser", "unshare", "fusermount3"]) {
        return;
    }
    let _serial = DEV_FUSE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(uid) = ensure_user() else { return };
    // A copy the test user can surely execute (the build tree may sit under /root).
    let bindir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bindir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_copy = bindir.path().join("squashbox");
    std::fs::copy(bin(), &bin_copy).unwrap();
    std::fs::set_permissions(&bin_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_copy.display().to_string();
    let (ok, out) = as_user(&format!("test -x {bin}"));
    assert!(ok, "{bin} is not executable by {USER}: {out}");
    let old = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let _restore = DevFuseMode(old);
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();

    // (a) inside an unprivileged user+mount namespace: direct mount(2) of /dev/fuse.
    let tmp = tempfile::tempdir().unwrap();
    let (img, mnt) = setup(tmp.path(), uid);
    let src = tmp.path().join("src");
    let script = format!(
        "set -e; {bin} mount {img} {mnt}; cat {mnt}/hello.txt; ls {mnt}/dir; \
         cmp {mnt}/dir/big {src}/dir/big && echo SAME-BYTES; \
         {bin} unmount {mnt}; \
         if grep -q \" {mnt} \" /proc/self/mountinfo; then echo STILL-MOUNTED; fi",
        src = src.display()
    );
    let (ok, out) = as_user(&format!(
        "unshare --user --map-root-user --mount sh -c '{script}'"
    ));
    assert!(ok, "user namespace mount failed: {out}");
    assert!(
        out.contains("hello unprivileged") && out.contains("big") && out.contains("SAME-BYTES"),
        "{out}"
    );
    assert!(!out.contains("STILL-MOUNTED"), "{out}");

    // (b) as the plain user on the host: mount(2) is refused, fuser falls back to fusermount3.
    let tmp2 = tempfile::tempdir().unwrap();
    let (img2, mnt2) = setup(tmp2.path(), uid);
    let _g = MountGuard::new(Path::new(&mnt2));
    let (ok, out) = as_user(&format!(
        "{bin} mount {img2} {mnt2} && cat {mnt2}/hello.txt && wc -c < {mnt2}/dir/big"
    ));
    assert!(ok, "fusermount3 mount failed: {out}");
    assert!(
        out.contains("hello unprivileged") && out.contains("500000"),
        "{out}"
    );
    assert!(is_mounted(Path::new(&mnt2)));
    let (ok, out) = as_user(&format!("{bin} unmount {mnt2}"));
    assert!(ok, "unmount as the user failed: {out}");
    assert!(
        wait_for(Duration::from_secs(10), || !is_mounted(Path::new(&mnt2))),
        "still mounted"
    );
}

/// Apptainer's setuid flow in miniature: root opens /dev/fuse and mounts it, and a plain user
/// who cannot open /dev/fuse (0600) serves the fd. Cloning the fd is impossible there: the
/// server must say so in libfuse's words and carry on with one fd.
#[test]
fn clone_fd_failure_falls_back_to_one_fd_with_a_warning() {
    if skip_unless(&["useradd", "runuser"]) {
        return;
    }
    let _serial = DEV_FUSE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(uid) = ensure_user() else { return };
    let old = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    let _restore = DevFuseMode(old);
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o600)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (img, mnt) = setup(tmp.path(), uid);
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
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", USER, "--"])
        .arg(&bin_copy)
        .args(["-f", "-o", "max_threads=2", &img, "/dev/fd/3"])
        .stdout(std::process::Stdio::null())
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
    assert_eq!(text.unwrap(), "hello unprivileged\n");
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
    assert!(err.contains("failed to clone device fd"), "{err}");
    assert!(err.contains("continue without -o clone_fd"), "{err}");
}
