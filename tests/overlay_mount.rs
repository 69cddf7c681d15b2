//! `squashbox overlay mount` and the `fuse-overlayfs` personality, as root: layers from a
//! directory, a SquashFS image and a SIF, served by one process; writes land in the upper
//! directory, and the kernel overlay, reading that upper over the same lowers, shows the very
//! tree our mount showed (whiteouts and opaque directories included). Argv forms
//! (Apptainer's, mount.fuse3's, /dev/fd/N), owner options, and one-line errors.

mod overlay_common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use overlay_common::*;
use squashbox_fixtures::prereq;

/// Offset of the SquashFS partition in the busybox SIF.
const BUSYBOX_OFFSET: u64 = 45056;

fn ready() -> bool {
    prereq::require_root("FUSE and kernel overlay mounts, whiteouts, trusted xattrs")
        && prereq::require_path(Path::new("/dev/fuse"))
        && prereq::require_tools(&["mksquashfs", "getfattr"])
}

fn busybox() -> std::path::PathBuf {
    squashbox_fixtures::upstream("apptainer-e2e/busybox_amd64.sif")
}

/// Layers: a host directory (with a colon in its name) over an image over the busybox SIF.
struct Layers {
    tmp: tempfile::TempDir,
}

impl Layers {
    fn new() -> Layers {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        lower_tree(&t.join("lo:dir"));
        let src = t.join("imgsrc");
        std::fs::create_dir_all(src.join("keep")).unwrap();
        std::fs::write(src.join("keep/from-image"), b"image\n").unwrap();
        std::fs::write(src.join("gone.txt"), b"hidden by the dir layer\n").unwrap();
        std::fs::create_dir_all(src.join("olddir/deep")).unwrap();
        std::fs::write(src.join("olddir/deep/z"), b"z\n").unwrap();
        mksquashfs(&src, &t.join("img.sqfs"));
        for d in ["upper", "work", "mnt"] {
            std::fs::create_dir(t.join(d)).unwrap();
        }
        Layers { tmp }
    }
    fn p(&self, rel: &str) -> std::path::PathBuf {
        self.tmp.path().join(rel)
    }
    /// The kernel overlay of `upper` over the same lowers (kernel squashfs mounts).
    fn kernel_view(&self) -> (Tree, Vec<Mounted>) {
        let img = kernel_squashfs(&self.p("img.sqfs"), 0, &self.p("k-img"));
        let sif = kernel_squashfs(&busybox(), BUSYBOX_OFFSET, &self.p("k-sif"));
        let lowers = [
            self.p("upper"),
            self.p("lo:dir"),
            self.p("k-img"),
            self.p("k-sif"),
        ];
        let refs: Vec<&Path> = lowers.iter().map(|p| p.as_path()).collect();
        let k = kernel_overlay(&refs, &self.p("k-ovl"), "");
        let tree = walk(&self.p("k-ovl"));
        (tree, vec![k, img, sif])
    }
}

/// Make the changes, check the upper, and compare with the kernel overlay.
fn exercise(l: &Layers) {
    let mnt = l.p("mnt");
    assert_eq!(
        std::fs::read(mnt.join("keep/from-image")).unwrap(),
        b"image\n"
    );
    assert!(mnt.join("bin/busybox").is_file(), "the SIF layer is served");
    assert_eq!(
        std::fs::read(mnt.join("gone.txt")).unwrap(),
        b"to be removed\n"
    );
    change_through(&mnt);
    assert!(!mnt.join("gone.txt").exists());
    assert_eq!(
        std::fs::read_dir(mnt.join("olddir")).unwrap().count(),
        1,
        "the remade directory hides what the lowers held"
    );
    let ours = walk(&mnt);
    unmount(&mnt);
    check_upper(&l.p("upper"), "trusted.overlay.opaque");
    let (theirs, _mounts) = l.kernel_view();
    assert_same("overlay vs kernel overlay", &ours, &theirs);
}

#[test]
fn command_serves_dir_image_and_sif_layers_with_an_upper() {
    if !ready() {
        return;
    }
    let l = Layers::new();
    let lowers = format!(
        "{}:{}",
        l.p("lo:dir").display().to_string().replace(':', "\\:"),
        l.p("img.sqfs").display()
    );
    let _guard = Mounted::new(&l.p("mnt"));
    run_ok(
        Command::new(bin())
            .args(["overlay", "mount", "--lower", &lowers, "--lower"])
            .arg(busybox())
            .arg("--upper")
            .arg(l.p("upper"))
            .arg("--work")
            .arg(l.p("work"))
            .arg(l.p("mnt")),
    );
    assert!(is_mounted(&l.p("mnt")));
    exercise(&l);
}

#[test]
fn personality_takes_apptainers_argv_with_a_dev_fd_target() {
    if !ready() {
        return;
    }
    let l = Layers::new();
    let fo = personality(&l.p("bin"), "fuse-overlayfs");
    // Root opens /dev/fuse and mounts it, as Apptainer's starter does; the server gets fd 3.
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    let opts = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
        dev.as_raw_fd()
    );
    nix::mount::mount(
        Some("overlay"),
        &l.p("mnt"),
        Some("fuse.fuse-overlayfs"),
        nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOSUID,
        Some(opts.as_str()),
    )
    .expect("mount(2) of /dev/fuse");
    let mut guard = Mounted::new(&l.p("mnt"));
    let lowerdir = format!(
        "{}:{}:{}",
        l.p("lo:dir").display().to_string().replace(':', "\\:"),
        l.p("img.sqfs").display(),
        busybox().display()
    );
    let o = format!(
        "allow_other,lowerdir={lowerdir},upperdir={},workdir={},noacl,xino=auto,unknownopt=1",
        l.p("upper").display(),
        l.p("work").display()
    );
    let mut cmd = Command::new(&fo);
    cmd.args(["-f", "-o", &o, "/dev/fd/3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let fd = dev.as_raw_fd();
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
    assert!(
        wait_for(Duration::from_secs(10), || l.p("mnt/keep/a.txt").exists()),
        "the fd-served overlay never answered"
    );
    exercise(&l);
    let child = guard.child.as_mut().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "the server kept running after the unmount"
    );
}

#[test]
fn personality_takes_mount_fuse3_argv_and_read_only_and_owner_options() {
    if !ready() {
        return;
    }
    let l = Layers::new();
    let fo = personality(&l.p("bin"), "fuse-overlayfs");
    let mnt = l.p("mnt");
    let _guard = Mounted::new(&mnt);
    // mount.fuse3's form: SOURCE TARGET -o OPTIONS, detaching.
    let o = format!(
        "rw,lowerdir={},upperdir={},workdir={},squash_to_uid=1234,squash_to_gid=4321,static_nlink",
        l.p("img.sqfs").display(),
        l.p("upper").display(),
        l.p("work").display()
    );
    run_ok(Command::new(&fo).arg("overlay").arg(&mnt).args(["-o", &o]));
    let md = std::fs::metadata(mnt.join("keep")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.nlink()), (1234, 4321, 1));
    std::fs::write(mnt.join("made"), b"x").unwrap();
    let md = std::fs::metadata(mnt.join("made")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 4321));
    unmount(&mnt);
    assert_eq!(std::fs::metadata(l.p("upper/made")).unwrap().uid(), 0);

    // Read-only, with a uid mapping: stored root shows as 1000; others overflow.
    let o = format!(
        "ro,uidmapping=1000:0:1,lowerdir={}",
        l.p("lo:dir").display().to_string().replace(':', "\\:")
    );
    run_ok(Command::new(&fo).args(["-o", &o]).arg(&mnt));
    assert_eq!(std::fs::metadata(mnt.join("keep")).unwrap().uid(), 1000);
    let err = std::fs::write(mnt.join("nope"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    unmount(&mnt);

    let out = Command::new(&fo).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("fuse-overlayfs: version"));
    let out = Command::new(&fo).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("lowerdir="));
}

#[test]
fn bad_layers_are_one_line_errors() {
    if !ready() {
        return;
    }
    let l = Layers::new();
    let fo = personality(&l.p("bin"), "fuse-overlayfs");
    let (lo, up, wk, mnt) = (l.p("lo:dir"), l.p("upper"), l.p("work"), l.p("mnt"));
    let lo = lo.display().to_string().replace(':', "\\:");
    // A work directory on another filesystem: a small tmpfs.
    let other = l.p("other");
    std::fs::create_dir(&other).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "t"])
            .arg(&other),
    );
    let _tmpfs = Mounted::new(&other);
    let s = |p: &Path| p.display().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("missing lower", vec!["--lower".into(), s(&l.p("missing"))]),
        (
            "empty lower entry",
            vec!["--lower".into(), format!("{lo}::{lo}")],
        ),
        (
            "no lower",
            vec!["--upper".into(), s(&up), "--work".into(), s(&wk)],
        ),
        (
            "upper without work",
            vec!["--lower".into(), lo.clone(), "--upper".into(), s(&up)],
        ),
        (
            "work without upper",
            vec!["--lower".into(), lo.clone(), "--work".into(), s(&wk)],
        ),
        (
            "work on another filesystem",
            vec![
                "--lower".into(),
                lo.clone(),
                "--upper".into(),
                s(&up),
                "--work".into(),
                s(&other),
            ],
        ),
        (
            "work inside upper",
            vec![
                "--lower".into(),
                lo.clone(),
                "--upper".into(),
                s(&up),
                "--work".into(),
                s(&up.join(".")),
            ],
        ),
        (
            "bad mapping",
            vec![
                "--lower".into(),
                lo.clone(),
                "-o".into(),
                "uidmapping=0:1".into(),
            ],
        ),
        (
            "not an image",
            vec!["--lower".into(), s(&l.p("lo:dir/change.txt"))],
        ),
    ];
    for (what, args) in cases {
        let out = Command::new(bin())
            .args(["overlay", "mount"])
            .args(&args)
            .arg(&mnt)
            .output()
            .unwrap();
        assert_one_line_error(&out, what);
        assert!(!is_mounted(&mnt), "{what}: mounted anyway");
    }
    let fo_cases: Vec<(&str, String)> = vec![
        ("personality: no lowerdir", format!("upperdir={}", s(&up))),
        (
            "personality: upperdir without workdir",
            format!("lowerdir={lo},upperdir={}", s(&up)),
        ),
        (
            "personality: missing lower",
            format!("lowerdir={}", s(&l.p("missing"))),
        ),
    ];
    for (what, o) in fo_cases {
        let out = Command::new(&fo)
            .args(["-o", &o])
            .arg(&mnt)
            .output()
            .unwrap();
        assert_one_line_error(&out, what);
        assert!(!is_mounted(&mnt), "{what}: mounted anyway");
    }
}
