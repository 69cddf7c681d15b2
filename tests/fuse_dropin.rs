//! The `squashfuse_ll` drop-in, driven with the command lines Apptainer uses: the image as
//! `/proc/self/fd/3` with `offset=`, `uid=`/`gid=`, `notify_pipe=`, `timeout=`, and a
//! pre-mounted `/dev/fd/N` target. Needs root (mounts), mksquashfs and the busybox fixture.

#[path = "common/fuse.rs"]
mod fuse;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fuse::*;

fn dropin(name: &str) -> Command {
    let mut c = Command::new(bin());
    c.arg0(name);
    c
}

/// Make `fd` the child's fd `target` (and clear close-on-exec on it).
fn pass_fd(cmd: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: dup2 is async-signal-safe; fd stays open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it explicitly then.
            let rc = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn small_image(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("hello.txt"), b"hello from the image\n").unwrap();
    std::fs::write(src.join("sub/data"), vec![7u8; 300_000]).unwrap();
    let img = dir.join("small.sqfs");
    mksquashfs(&src, &img, &[]);
    img
}

#[test]
fn help_version_and_personalities() {
    let (ok, out) = run_timeout(
        dropin("squashfuse_ll").arg("--help"),
        Duration::from_secs(10),
    );
    assert!(
        ok && out.contains("-o uid=N") && out.contains("-o offset=N"),
        "{out}"
    );
    let (ok, out) = run_timeout(dropin("squashfuse").arg("-V"), Duration::from_secs(10));
    assert!(ok && out.contains("squashbox"), "{out}");
    // The other personalities: a command line they cannot use is a one-line error under
    // their own name (never a panic).
    for (name, words) in [("fuse2fs", "MOUNTPOINT"), ("fuse-overlayfs", "lowerdir")] {
        let (ok, out) = run_timeout(dropin(name).arg("x"), Duration::from_secs(10));
        assert!(
            !ok && out.starts_with(&format!("{name}: "))
                && out.contains(words)
                && out.trim().lines().count() == 1,
            "{name}: {out}"
        );
    }
    let (ok, out) = run_timeout(
        dropin("squashfuse_ll").arg("only-one-arg"),
        Duration::from_secs(10),
    );
    assert!(!ok && out.contains("MOUNTPOINT"), "{out}");
}

#[test]
fn apptainer_form_with_fd3_offset_uid_gid() {
    if !ready(&[]) {
        return;
    }
    let sif = busybox_sif();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let image = File::open(&sif).unwrap();
    let mut cmd = dropin("squashfuse_ll");
    cmd.args(["-f", "-o"])
        .arg(format!(
            "allow_other,ro,uid=4321,gid=8765,offset={BUSYBOX_OFFSET},frobnicate"
        ))
        .arg("/proc/self/fd/3")
        .arg(&mnt)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    pass_fd(&mut cmd, image.as_raw_fd(), 3);
    let child = cmd.spawn().unwrap();
    let mut guard = MountGuard::new(&mnt);
    guard.child = Some(child);
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(&mnt)),
        "not mounted"
    );
    let m = std::fs::metadata(mnt.join("bin/busybox")).unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 8765));
    assert!(m.len() > 100_000);
    let mut elf = [0u8; 4];
    File::open(mnt.join("bin/busybox"))
        .unwrap()
        .read_exact(&mut elf)
        .unwrap();
    assert_eq!(&elf, b"\x7fELF");
    // `squashbox unmount` ends the foreground server with status 0.
    let (ok, out) = run_timeout(
        Command::new(bin()).arg("unmount").arg(&mnt),
        Duration::from_secs(20),
    );
    assert!(ok, "unmount: {out}");
    let child = guard.child.as_mut().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "server did not exit"
    );
    assert!(child.try_wait().unwrap().unwrap().success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("frobnicate"),
        "unknown option not warned about: {err}"
    );
}

fn read_fifo(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        File::open(path).unwrap().read_to_end(&mut v).unwrap();
        v
    })
}

#[test]
fn notify_pipe_reports_success_and_failure() {
    if !ready(&["mkfifo"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(tmp.path());
    let fifo = tmp.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let _g = MountGuard::new(&mnt);
    let reader = read_fifo(&fifo);
    let (ok, out) = run_timeout(
        dropin("squashfuse_ll")
            .arg("-o")
            .arg(format!("notify_pipe={}", fifo.display()))
            .arg(&img)
            .arg(&mnt),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    assert_eq!(reader.join().unwrap(), b"s");
    assert_eq!(
        std::fs::read_to_string(mnt.join("hello.txt")).unwrap(),
        "hello from the image\n"
    );

    let bad = tmp.path().join("bad.img");
    std::fs::write(&bad, vec![0u8; 4096]).unwrap();
    let mnt2 = tmp.path().join("m2");
    std::fs::create_dir(&mnt2).unwrap();
    let _g2 = MountGuard::new(&mnt2);
    let reader = read_fifo(&fifo);
    let (ok, out) = run_timeout(
        dropin("squashfuse_ll")
            .arg("-f")
            .arg("-o")
            .arg(format!("notify_pipe={}", fifo.display()))
            .arg(&bad)
            .arg(&mnt2),
        Duration::from_secs(30),
    );
    assert!(!ok, "bad image mounted: {out}");
    assert_eq!(reader.join().unwrap(), b"f");
    assert!(!is_mounted(&mnt2));
}

#[test]
fn idle_timeout_unmounts_only_when_nothing_is_open() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(tmp.path());
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let _g = MountGuard::new(&mnt);
    let (ok, out) = run_timeout(
        dropin("squashfuse_ll")
            .args(["-o", "timeout=1"])
            .arg(&img)
            .arg(&mnt),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    let f = File::open(mnt.join("sub/data")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(is_mounted(&mnt), "unmounted while a file was open");
    drop(f);
    assert!(
        wait_for(Duration::from_secs(10), || !is_mounted(&mnt)),
        "still mounted after the idle timeout"
    );
}

#[test]
fn dev_fd_target_serves_a_premounted_fuse_fd() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(tmp.path());
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    let opts = format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd());
    nix::mount::mount(
        Some("squashbox-test"),
        &mnt,
        Some("fuse"),
        nix::mount::MsFlags::MS_RDONLY
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    )
    .expect("mount(2) of /dev/fuse");
    let mut guard = MountGuard::new(&mnt);
    let mut cmd = dropin("squashfuse_ll");
    cmd.arg("-f")
        .arg(&img)
        .arg("/dev/fd/3")
        .stdout(Stdio::null());
    pass_fd(&mut cmd, dev.as_raw_fd(), 3);
    guard.child = Some(cmd.spawn().unwrap());
    drop(dev);
    assert_eq!(
        std::fs::read_to_string(mnt.join("hello.txt")).unwrap(),
        "hello from the image\n"
    );
    assert_eq!(
        std::fs::read(mnt.join("sub/data")).unwrap(),
        vec![7u8; 300_000]
    );
    force_unmount(&mnt);
    let child = guard.child.as_mut().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "server did not exit after unmount"
    );
}
