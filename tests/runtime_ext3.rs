//! ext3 overlays in the runtime: an `--overlay IMG` made by `squashbox overlay create`, and
//! a SIF's embedded overlay partition (a read-only lower by default, the upper with `-w`);
//! image binds; and ext3 images as layers of `squashbox overlay mount`.
//! Each is served by the container's one server with our ext3 driver; e2fsck, dumpe2fs,
//! debugfs and the kernel's ext3 are the oracles for what lands in the image. Also the
//! fcntl byte-range locks Apptainer takes on the same images, and a killed run.

#[path = "common/fuse.rs"]
mod fuse;
#[path = "common/runtime.rs"]
mod runtime;

use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fuse::{bin, busybox_sif, wait_for};
use runtime::{describe, stdout};
use squashbox_fixtures::prereq;

/// What these runs need: what every run needs, and e2fsprogs as the oracle.
fn ready() -> bool {
    runtime::ready() && prereq::require_tools(&["e2fsck", "dumpe2fs", "debugfs"])
}

/// `e2fsck -fn` of the filesystem at `offset` in `path` is clean and the superblock says
/// so: what must hold the moment a run has returned.
fn assert_clean(path: &Path, offset: u64) {
    let dev = if offset == 0 {
        path.display().to_string()
    } else {
        format!("{}?offset={offset}", path.display())
    };
    let fsck = Command::new("e2fsck").args(["-fn", &dev]).output().unwrap();
    let text =
        String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(fsck.status.success(), "e2fsck -fn {dev}:\n{text}");
    let head = Command::new("dumpe2fs")
        .args(["-h", &dev])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).into_owned();
    assert!(
        head.lines()
            .any(|l| l.starts_with("Filesystem state:") && l.trim_end().ends_with(" clean")),
        "not clean after the run returned:\n{head}"
    );
    assert!(!head.contains("needs_recovery"), "{head}");
}

/// `debugfs -R 'cat PATH'` of the image: what the image holds, read by e2fsprogs.
fn debugfs_cat(path: &Path, offset: u64, file: &str) -> String {
    let dev = if offset == 0 {
        path.display().to_string()
    } else {
        format!("{}?offset={offset}", path.display())
    };
    let o = Command::new("debugfs")
        .args(["-R", &format!("cat {file}"), &dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch directory with a fresh overlay image in it, and the busybox SIF.
fn with_overlay_image() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let img = overlay_image(tmp.path());
    (tmp, img, busybox_sif())
}

/// A fresh overlay image made as `apptainer overlay create` makes one.
fn overlay_image(dir: &Path) -> PathBuf {
    let img = dir.join("overlay.img");
    let o = runtime::sb_in(
        dir,
        &["overlay", "create", "--size", "64", img.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", describe(&o));
    img
}

#[test]
fn an_ext3_overlay_keeps_changes_and_whiteouts_and_is_clean_when_the_run_returns() {
    if !ready() {
        return;
    }
    let (tmp, img, sif) = with_overlay_image();
    let (i, s) = (img.to_str().unwrap(), sif.to_str().unwrap());
    let o = runtime::sb_in(
        tmp.path(),
        &[
            "exec",
            "--fakeroot",
            "-o",
            i,
            s,
            "sh",
            "-c",
            "echo kept > /kept && mkdir -p /opt/d && echo deep > /opt/d/f && rm /bin/false \
             && echo done",
        ],
    );
    assert_eq!(stdout(&o), "done\n", "{}", describe(&o));
    // Flushed and clean the moment the command returned, with the writes in `upper/`.
    assert_clean(&img, 0);
    // The runtime waits for the server here: exit statuses and signals still pass through.
    let o = runtime::sb_in(tmp.path(), &["exec", "-o", i, s, "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", describe(&o));
    let o = runtime::sb_in(
        tmp.path(),
        &["exec", "-o", i, s, "sh", "-c", "kill -TERM $$"],
    );
    assert_eq!(o.status.signal(), Some(15), "{}", describe(&o));
    assert_eq!(debugfs_cat(&img, 0, "/upper/kept"), "kept\n");
    assert_eq!(debugfs_cat(&img, 0, "/upper/opt/d/f"), "deep\n");
    // The whiteout is a 0/0 character device, as the kernel's overlay writes it.
    let stat = Command::new("debugfs")
        .args(["-R", "stat /upper/bin/false", i])
        .output()
        .unwrap();
    let stat = String::from_utf8_lossy(&stat.stdout).into_owned();
    assert!(stat.contains("Type: character special"), "{stat}");
    // A second run sees both; a read-only use sees them and cannot write.
    let o = runtime::sb_in(
        tmp.path(),
        &[
            "exec",
            "-o",
            i,
            s,
            "sh",
            "-c",
            "cat /kept /opt/d/f; ls /bin/false 2>/dev/null || echo WHITED-OUT",
        ],
    );
    assert_eq!(stdout(&o), "kept\ndeep\nWHITED-OUT\n", "{}", describe(&o));
    let ro = format!("{i}:ro");
    let o = runtime::sb_in(
        tmp.path(),
        &["exec", "-o", &ro, s, "sh", "-c", "cat /kept; touch /x 2>&1"],
    );
    assert_eq!(
        stdout(&o),
        "kept\ntouch: /x: Read-only file system\n",
        "{}",
        describe(&o)
    );
    assert_clean(&img, 0);
}

/// The offset of the SIF's ext3 overlay partition: the first 4096-aligned offset with the
/// ext3 superblock magic (SIF partitions are 4096-aligned).
fn ext3_offset_in(sif: &Path) -> u64 {
    let data = std::fs::read(sif).unwrap();
    // The superblock magic sits 1024 + 56 bytes into the filesystem.
    (0..data.len() / 4096)
        .map(|b| b as u64 * 4096)
        .find(|&off| {
            let m = off as usize + 1080;
            m + 2 <= data.len() && data[m..m + 2] == [0x53, 0xef]
        })
        .expect("an ext3 partition in the SIF")
}

#[test]
fn a_sif_overlay_partition_is_the_upper_with_w_and_a_read_only_lower_without() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sif = tmp.path().join("c.sif");
    std::fs::copy(busybox_sif(), &sif).unwrap();
    let s = sif.to_str().unwrap();
    let o = runtime::sb_in(tmp.path(), &["overlay", "create", "--size", "64", s]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = runtime::sb_in(
        tmp.path(),
        &[
            "exec",
            "--fakeroot",
            "-w",
            s,
            "sh",
            "-c",
            "echo w > /w && echo ok",
        ],
    );
    assert_eq!(stdout(&o), "ok\n", "{}", describe(&o));
    let off = ext3_offset_in(&sif);
    assert_clean(&sif, off);
    assert_eq!(debugfs_cat(&sif, off, "/upper/w"), "w\n");
    // Without -w the partition is a read-only lower.
    let o = runtime::sb_in(
        tmp.path(),
        &[
            "exec",
            s,
            "sh",
            "-c",
            "cat /w; echo x > /w 2>&1 || echo refused",
        ],
    );
    assert!(stdout(&o).starts_with("w\n"), "{}", describe(&o));
    assert!(stdout(&o).ends_with("refused\n"), "{}", describe(&o));
    // --writable-tmpfs on top of it: writes go to the tmpfs, the partition is untouched.
    let o = runtime::sb_in(
        tmp.path(),
        &[
            "exec",
            "--writable-tmpfs",
            s,
            "sh",
            "-c",
            "cat /w; echo t > /w; cat /w",
        ],
    );
    assert_eq!(stdout(&o), "w\nt\n", "{}", describe(&o));
    assert_eq!(debugfs_cat(&sif, off, "/upper/w"), "w\n");
}

/// Whether a classic fcntl lock of `kind` on `path` (whole file) would be refused.
fn classic_lock_refused(path: &Path, write: bool) -> bool {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .unwrap();
    // SAFETY: an all-zero flock is valid; F_GETLK only fills it in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if write { libc::F_WRLCK } else { libc::F_RDLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: a valid descriptor and flock.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) };
    assert_eq!(rc, 0);
    fl.l_type != libc::F_UNLCK as libc::c_short
}

/// Start a container that holds `img` (writable unless `ro`) until killed.
fn holder(tmp: &Path, img: &str) -> Child {
    let sif = busybox_sif();
    let c = runtime::command_in(
        tmp,
        &["exec", "-o", img, sif.to_str().unwrap(), "sleep", "60"],
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let pid = c.id();
    let up = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|k| {
                std::fs::read_to_string(format!("/proc/{k}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
    });
    assert!(up, "the holding container did not start");
    c
}

#[test]
fn ext3_overlays_are_locked_as_apptainer_locks_them() {
    if !ready() {
        return;
    }
    let (tmp, img, sif) = with_overlay_image();
    let (i, s) = (img.to_str().unwrap(), sif.to_str().unwrap());
    // A writable run holds a write lock that Apptainer's own F_SETLK/F_GETLK sees.
    let mut h = holder(tmp.path(), i);
    assert!(classic_lock_refused(&img, false));
    for arg in [i.to_string(), format!("{i}:ro")] {
        let o = runtime::sb_in(tmp.path(), &["exec", "-o", &arg, s, "true"]);
        assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.contains("is in use by another container"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    h.kill().unwrap();
    h.wait().unwrap();
    // The lock goes with the run.
    assert!(wait_for(Duration::from_secs(10), || !classic_lock_refused(
        &img, true
    )));
    // Readers share: a read-only run holds a read lock, and another read-only run starts.
    let ro = format!("{i}:ro");
    let mut h = holder(tmp.path(), &ro);
    assert!(classic_lock_refused(&img, true));
    assert!(!classic_lock_refused(&img, false));
    let o = runtime::sb_in(tmp.path(), &["exec", "-o", &ro, s, "true"]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = runtime::sb_in(tmp.path(), &["exec", "-o", i, s, "true"]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    h.kill().unwrap();
    h.wait().unwrap();
    assert!(wait_for(Duration::from_secs(10), || !classic_lock_refused(
        &img, true
    )));
    // A lock Apptainer holds (a classic write lock of another process) keeps us out.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    // SAFETY: an all-zero flock is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: a valid descriptor and flock; the lock is this test process's.
    assert_eq!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) }, 0);
    let o = runtime::sb_in(tmp.path(), &["exec", "-o", &ro, s, "true"]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    drop(f);
    let o = runtime::sb_in(tmp.path(), &["exec", "-o", i, s, "true"]);
    assert!(o.status.success(), "{}", describe(&o));
}

/// The pid of the runtime's server (`squashbox-srv`), a child of `runtime`.
fn server_of(runtime: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{runtime}/task/{runtime}/children"))
        .ok()?
        .split_whitespace()
        .filter_map(|k| k.parse().ok())
        .find(|k: &u32| {
            std::fs::read_to_string(format!("/proc/{k}/comm"))
                .is_ok_and(|c| c.trim() == "squashbox-srv")
        })
}

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn a_killed_run_leaves_no_lock_or_server_and_the_next_run_recovers_the_overlay() {
    if !ready() {
        return;
    }
    let (tmp, img, sif) = with_overlay_image();
    let (i, s) = (img.to_str().unwrap(), sif.to_str().unwrap());
    // A writer that makes one file durable, then keeps writing.
    let script = "echo durable | dd of=/durable conv=fsync 2>/dev/null && \
                  echo started | dd of=/started conv=fsync 2>/dev/null && \
                  n=0; while true; do n=$((n+1)); echo $n > /f$((n % 40)); done";
    for kill_server_too in [false, true] {
        let mut run = runtime::command_in(
            tmp.path(),
            &["exec", "--fakeroot", "-o", i, s, "sh", "-c", script],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let pid = run.id();
        let server = {
            let mut found = None;
            assert!(wait_for(Duration::from_secs(10), || {
                found = server_of(pid);
                found.is_some()
            }));
            found.unwrap()
        };
        // Let the writer get going.
        std::thread::sleep(Duration::from_millis(700));
        let sigkill = nix::sys::signal::Signal::SIGKILL;
        if kill_server_too {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(server as i32), sigkill).unwrap();
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sigkill).unwrap();
        assert_eq!(run.wait().unwrap().signal(), Some(9));
        // The container dies with its runtime, so its mounts go and the server ends.
        assert!(
            wait_for(Duration::from_secs(10), || gone(server)),
            "the server outlived a killed run (server killed too: {kill_server_too})"
        );
        assert!(wait_for(Duration::from_secs(5), || !classic_lock_refused(
            &img, true
        )));
        if !kill_server_too {
            // The server flushed as the container went: nothing to recover.
            assert_clean(&img, 0);
        }
        // The next run recovers the image and sees what was made durable.
        let o = runtime::sb_in(
            tmp.path(),
            &["exec", "-o", i, s, "sh", "-c", "cat /durable /started"],
        );
        assert_eq!(stdout(&o), "durable\nstarted\n", "{}", describe(&o));
        assert_clean(&img, 0);
    }
}

#[test]
fn image_binds_serve_squashfs_files_ext3_images_and_sif_partitions() {
    if !ready() || !prereq::require_tools(&["mksquashfs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("data/sub")).unwrap();
    std::fs::write(t.join("data/sub/h.txt"), "from the squashfs\n").unwrap();
    let sq = t.join("d.sqfs");
    squashbox_fixtures::mksquashfs(&t.join("data"), &sq, &[]).unwrap();
    // A SIF with an overlay partition holding a file, and a bare overlay image.
    let sif = t.join("c.sif");
    std::fs::copy(busybox_sif(), &sif).unwrap();
    let s = sif.to_str().unwrap();
    let o = runtime::sb_in(t, &["overlay", "create", "--size", "64", s]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = runtime::sb_in(
        t,
        &[
            "exec",
            "--fakeroot",
            "-w",
            s,
            "sh",
            "-c",
            "echo in-sif > /w",
        ],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let img = overlay_image(t);
    let o = runtime::sb_in(
        t,
        &[
            "exec",
            "--fakeroot",
            "-o",
            img.to_str().unwrap(),
            s,
            "sh",
            "-c",
            "echo in-img > /v",
        ],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let list = runtime::sb_in(t, &["sif", "list", s]);
    let overlay_id = String::from_utf8_lossy(&list.stdout)
        .lines()
        .find(|l| l.contains("Ext3/Overlay"))
        .and_then(|l| l.split('|').next())
        .map(|id| id.trim().to_string())
        .expect("the overlay partition in `sif list`");
    let busybox = busybox_sif();
    let binds = [
        format!("{}:/mnt/a:image-src=/sub", sq.display()),
        format!("{s}:/mnt/b:id={overlay_id},image-src=/upper"),
        format!("{}:/mnt/c:image-src=/upper", img.display()),
    ];
    let mut args = vec!["exec"];
    for b in &binds {
        args.extend(["-B", b.as_str()]);
    }
    let script = "cat /mnt/a/h.txt /mnt/b/w /mnt/c/v; touch /mnt/a/x 2>&1";
    args.extend([busybox.to_str().unwrap(), "sh", "-c", script]);
    let o = runtime::sb_in(t, &args);
    assert_eq!(
        stdout(&o),
        "from the squashfs\nin-sif\nin-img\ntouch: /mnt/a/x: Read-only file system\n",
        "{}",
        describe(&o)
    );
    // Not an image: one line, exit 255, before the container starts.
    let bad = format!("{}:/mnt:image-src=/", t.join("data/sub/h.txt").display());
    let o = runtime::sb_in(t, &["exec", "-B", &bad, busybox.to_str().unwrap(), "true"]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("not a SquashFS or ext3 image"), "{err}");
}

#[test]
fn the_overlay_command_takes_an_ext3_image_as_upper_and_as_lower() {
    if !prereq::require_root("FUSE mounts on the host")
        || !prereq::require_tools(&["e2fsck", "dumpe2fs", "debugfs"])
    {
        return;
    }
    let (tmp, img, sif) = with_overlay_image();
    let (i, s) = (img.to_str().unwrap(), sif.to_str().unwrap());
    let mnt = tmp.path().join("mnt");
    let mut g = fuse::serve_command_foreground(
        &["overlay", "mount", "-f", "--lower", s, "--upper-image", i],
        &mnt,
    );
    std::fs::write(mnt.join("new.txt"), "new\n").unwrap();
    std::fs::remove_file(mnt.join("bin/false")).unwrap();
    fuse::stop_server(&mut g);
    drop(g);
    assert_clean(&img, 0);
    assert_eq!(debugfs_cat(&img, 0, "/upper/new.txt"), "new\n");
    // The image as a read-only lower over the SIF shows its upper/ with the whiteout.
    let lowers = format!("{i}:{s}");
    let mut g =
        fuse::serve_command_foreground(&["overlay", "mount", "-f", "--lower", &lowers], &mnt);
    assert_eq!(
        std::fs::read_to_string(mnt.join("new.txt")).unwrap(),
        "new\n"
    );
    assert!(!mnt.join("bin/false").exists());
    assert!(mnt.join("bin/true").exists());
    fuse::stop_server(&mut g);
    // Not an ext3 image: one line, failure.
    let o = Command::new(bin())
        .args(["overlay", "mount", "-f", "--lower", s, "--upper-image", s])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not an ext3 image"),
        "{}",
        describe(&o)
    );
}

#[test]
fn ext3_mount_locks_its_image_and_unmount_returns_once_it_is_written_back() {
    if !prereq::require_root("FUSE mounts on the host")
        || !prereq::require_tools(&["e2fsck", "dumpe2fs"])
    {
        return;
    }
    let (tmp, img, _) = with_overlay_image();
    let i = img.to_str().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let o = runtime::sb_in(tmp.path(), &["ext3", "mount", i, a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe(&o));
    let _guard = fuse::MountGuard::new(&a);
    // A second writer is refused, in one line, before it touches the image.
    let o = runtime::sb_in(tmp.path(), &["ext3", "mount", i, b.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("is in use"), "{err}");
    for n in 0..300 {
        std::fs::write(a.join(format!("upper/f{n}")), format!("{n}\n")).unwrap();
    }
    let o = runtime::sb_in(tmp.path(), &["unmount", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe(&o));
    // No wait here: the unmount returned after the server wrote everything back.
    assert_clean(&img, 0);
    assert_eq!(debugfs_cat(&img, 0, "/upper/f299"), "299\n");
}
