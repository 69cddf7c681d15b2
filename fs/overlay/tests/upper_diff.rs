//! A writable overlay (host-directory upper) against the kernel's overlayfs with a fresh
//! upper each: the same script of changes runs through both mounts (ours served over FUSE),
//! every step must give the same result, both trees must then agree, and the kernel must
//! show the same tree when it mounts the upper directory we wrote.

mod common;

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{Mounted, Tree, run};
use squashbox_fixtures::prereq;
use squashbox_fuse::{MountTarget, ServeOptions, serve};
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::{Overlay, UpperLayer};
use squashbox_vfs::Filesystem;

/// Lower mtimes are set to this, so anything the script touches stands out.
const OLD: i64 = 1_000_000_000;

type Step = (&'static str, Result<(), i32>);

fn errno(r: std::io::Result<()>) -> Result<(), i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn rename2(root: &Path, from: &str, to: &str, flags: u32) -> Result<(), i32> {
    let f = CString::new(root.join(from).as_os_str().as_bytes()).unwrap();
    let t = CString::new(root.join(to).as_os_str().as_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    }
}

/// The changes, each with its result.
fn script(m: &Path) -> Vec<Step> {
    use std::fs;
    let p = |s: &str| m.join(s);
    let mut out: Vec<Step> = Vec::new();
    let mut step = |s: Step| out.push(s);
    step(("create new_file", errno(fs::write(p("new_file"), b"new"))));
    step((
        "append to lower shared",
        errno(
            fs::OpenOptions::new()
                .append(true)
                .open(p("shared"))
                .and_then(|mut f| f.write_all(b" + appended")),
        ),
    ));
    step((
        "chmod lower c_only",
        errno(fs::set_permissions(
            p("c_only"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )),
    ));
    step(("mkdir newdir", errno(fs::create_dir(p("newdir")))));
    step(("create newdir/f", errno(fs::write(p("newdir/f"), b"f"))));
    step(("unlink lower b_only", errno(fs::remove_file(p("b_only")))));
    step((
        "rmdir non-empty deep/er",
        errno(fs::remove_dir(p("deep/er"))),
    ));
    step((
        "unlink deep/er/est",
        errno(fs::remove_file(p("deep/er/est"))),
    ));
    step(("rmdir deep/er", errno(fs::remove_dir(p("deep/er")))));
    step((
        "rename lower file",
        errno(fs::rename(p("a_only"), p("a_renamed"))),
    ));
    step((
        "rename merged dir",
        errno(fs::rename(p("dir1"), p("dir1_moved"))),
    ));
    step((
        "rename lower-only dir",
        errno(fs::rename(p("deep"), p("deep_moved"))),
    ));
    step((
        "rename upper dir",
        errno(fs::rename(p("newdir"), p("newdir2"))),
    ));
    step((
        "hard link lower file",
        errno(fs::hard_link(p("hard1"), p("hard3"))),
    ));
    step((
        "symlink",
        errno(std::os::unix::fs::symlink("target", p("sym"))),
    ));
    step((
        "mkfifo",
        errno(squashbox_fixtures::sys::mknod(
            &p("newfifo"),
            libc::S_IFIFO | 0o640,
            0,
            0,
        )),
    ));
    step((
        "setxattr on lower dir1/y",
        errno(squashbox_fixtures::sys::lsetxattr(
            &p("dir1/y"),
            "user.k",
            b"v",
        )),
    ));
    step((
        "truncate lower dir1/big",
        errno(
            fs::OpenOptions::new()
                .write(true)
                .open(p("dir1/big"))
                .and_then(|f| f.set_len(1000)),
        ),
    ));
    step((
        "unlink dir1/sub/deep",
        errno(fs::remove_file(p("dir1/sub/deep"))),
    ));
    step((
        "rmdir merged dir1/sub",
        errno(fs::remove_dir(p("dir1/sub"))),
    ));
    step(("mkdir over it", errno(fs::create_dir(p("dir1/sub")))));
    step((
        "create dir1/sub/again",
        errno(fs::write(p("dir1/sub/again"), b"again")),
    ));
    step((
        "NOREPLACE onto shared",
        rename2(m, "new_file", "shared", libc::RENAME_NOREPLACE),
    ));
    step((
        "EXCHANGE new_file c_only",
        rename2(m, "new_file", "c_only", libc::RENAME_EXCHANGE),
    ));
    step((
        "EXCHANGE two lower files",
        rename2(m, "dir_over/inner", "nondir_over", libc::RENAME_EXCHANGE),
    ));
    step(("unlink whited-out gone", errno(fs::remove_file(p("gone")))));
    step((
        "rename over lower fifo",
        errno(fs::rename(p("link_c"), p("fifo"))),
    ));
    step(("rmdir non-empty merged", errno(fs::remove_dir(p("many")))));
    step(("unlink a directory", errno(fs::remove_file(p("many")))));
    step(("rmdir a file", errno(fs::remove_dir(p("shared")))));
    step(("create in opaque dir", errno(fs::write(p("opq/new"), b"n"))));
    step((
        "rename upper dir onto whiteout",
        errno(fs::rename(p("newdir2"), p("b_only"))),
    ));
    step((
        "rename lower file into dir",
        errno(fs::rename(p("many/f200"), p("b_only/f200"))),
    ));
    step((
        "unlink lower many/f000",
        errno(fs::remove_file(p("many/f000"))),
    ));
    out
}

/// Set every mtime under `dir` to [`OLD`].
fn age(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            age(&e.path());
        }
        squashbox_fixtures::sys::set_mtime(&e.path(), OLD).unwrap();
    }
    squashbox_fixtures::sys::set_mtime(dir, OLD).unwrap();
}

/// Times the script set are "recent" (both mounts ran it at slightly different moments).
fn normalise(mut t: Tree) -> Tree {
    for d in t.values_mut() {
        if d.mtime != OLD {
            d.mtime = 1;
        }
    }
    t
}

fn kernel_mount(lowers: &str, upper: &Path, work: &Path, mnt: &Path) -> Mounted {
    std::fs::create_dir_all(mnt).unwrap();
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={lowers},upperdir={},workdir={},redirect_dir=off,index=off,metacopy=off,xino=off",
            upper.display(),
            work.display()
        ))
        .arg(mnt));
    Mounted(mnt.to_path_buf())
}

#[test]
fn changes_match_the_kernel_overlay_and_the_kernel_reads_our_upper() {
    if !prereq::require_root("whiteouts, trusted xattrs, kernel overlay and FUSE mounts")
        || !prereq::require_path(Path::new("/dev/fuse"))
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layers = common::kernel_layers(&t.join("layers"));
    for l in &layers {
        age(l);
    }
    let lowers: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
    let lowers = lowers.join(":");
    for d in ["kupper", "kwork", "ours/upper", "ours/work", "kwork2"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }

    // The kernel's overlay.
    let (kernel_steps, theirs) = {
        let _m = kernel_mount(
            &lowers,
            &t.join("kupper"),
            &t.join("kwork"),
            &t.join("kmnt"),
        );
        let steps = script(&t.join("kmnt"));
        (steps, normalise(common::walk_path(&t.join("kmnt"))))
    };

    // Ours, over FUSE.
    let upper_fs: Arc<dyn Filesystem> =
        Arc::new(HostDir::open(&t.join("ours"), HostDirOptions::default()).unwrap());
    let lower_fs = layers.iter().map(|p| common::host_layer(p)).collect();
    let upper = UpperLayer {
        fs: upper_fs,
        upper: "upper".into(),
        work: "work".into(),
    };
    let fs: Arc<dyn Filesystem> = Arc::new(Overlay::new(lower_fs, Some(upper)).unwrap());
    let fmnt = t.join("fmnt");
    std::fs::create_dir_all(&fmnt).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let target = fmnt.clone();
    let server = std::thread::spawn(move || {
        let opts = ServeOptions {
            threads: Some(2),
            ..Default::default()
        };
        serve(
            Box::new(move |_| Ok((fs, "overlay-upper-test".to_string()))),
            MountTarget::Path(target),
            &opts,
            Box::new(move |r| {
                let _ = tx.send(r.map_err(str::to_string));
            }),
        )
    });
    rx.recv().unwrap().expect("the FUSE mount is ready");
    let mounted = Mounted(fmnt.clone());
    use std::os::unix::fs::MetadataExt;
    let kept = ["shared", "dir1", "dir1/y", "hard1", "dir1/big"];
    let ino = |p: &str| std::fs::symlink_metadata(fmnt.join(p)).unwrap().ino();
    let before: Vec<u64> = kept.iter().map(|p| ino(p)).collect();
    let our_steps = script(&fmnt);
    let after: Vec<u64> = kept.iter().map(|p| ino(p)).collect();
    assert_eq!(before, after, "st_ino of {kept:?} through copy-up");
    let ours = normalise(common::walk_path(&fmnt));
    drop(mounted);
    server
        .join()
        .unwrap()
        .expect("the server ends after unmount");

    let differing: Vec<String> = kernel_steps
        .iter()
        .zip(&our_steps)
        .filter(|(k, o)| k != o)
        .map(|(k, o)| format!("{}: kernel {:?}, ours {:?}", k.0, k.1, o.1))
        .collect();
    assert!(
        differing.is_empty(),
        "steps differ:\n{}",
        differing.join("\n")
    );
    let expect_err = [
        ("rmdir non-empty deep/er", libc::ENOTEMPTY),
        ("rename merged dir", libc::EXDEV),
        ("rename lower-only dir", libc::EXDEV),
        ("NOREPLACE onto shared", libc::EEXIST),
        ("unlink whited-out gone", libc::ENOENT),
        ("rmdir non-empty merged", libc::ENOTEMPTY),
        ("unlink a directory", libc::EISDIR),
        ("rmdir a file", libc::ENOTDIR),
    ];
    for (name, result) in &our_steps {
        match expect_err.iter().find(|e| e.0 == *name) {
            Some((_, e)) => assert_eq!(*result, Err(*e), "{name}"),
            None => assert_eq!(*result, Ok(()), "{name}"),
        }
    }
    let names = |dir: &str| -> Vec<&str> {
        let prefix = format!("{dir}/");
        ours.keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .collect()
    };
    assert_eq!(
        names("/dir1/sub"),
        ["again"],
        "the directory made over a removed one is opaque"
    );
    assert_eq!(names("/b_only"), ["f", "f200"]);
    assert_eq!(ours["/shared"].content, b"from A + appended");
    assert_eq!(ours["/c_only"].content, b"new", "exchanged");
    assert_eq!(
        ours["/new_file"].perm, 0o600,
        "exchanged with the chmodded copy"
    );
    assert_eq!((ours["/hard1"].nlink, ours["/hard2"].nlink), (2, 2));
    assert_eq!(
        ours["/dir1/y"].xattrs,
        [(b"user.k".to_vec(), b"v".to_vec())]
    );
    assert!(!ours.contains_key("/many/f000") && ours.contains_key("/many/f001"));
    common::assert_same("after the script", &ours, &theirs);

    // The kernel mounting the upper we wrote shows the same tree.
    let back = {
        let _m = kernel_mount(
            &lowers,
            &t.join("ours/upper"),
            &t.join("ours/work"),
            &t.join("kmnt2"),
        );
        normalise(common::walk_path(&t.join("kmnt2")))
    };
    common::assert_same("the kernel over our upper", &back, &theirs);
}

#[test]
fn we_read_an_upper_that_fuse_overlayfs_wrote() {
    if !prereq::require_root("whiteouts, trusted xattrs and FUSE mounts")
        || !prereq::require_tools(&["fuse-overlayfs"])
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layers = common::kernel_layers(&t.join("layers"));
    for l in &layers {
        age(l);
    }
    let lowers: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
    for d in ["f/upper", "f/work", "mnt"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    let theirs = {
        run(Command::new("fuse-overlayfs")
            .arg("-o")
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                lowers.join(":"),
                t.join("f/upper").display(),
                t.join("f/work").display()
            ))
            .arg(t.join("mnt")));
        let _m = Mounted(t.join("mnt"));
        script(&t.join("mnt"));
        normalise(common::walk_path(&t.join("mnt")))
    };
    let upper_fs: Arc<dyn Filesystem> =
        Arc::new(HostDir::open(&t.join("f"), HostDirOptions::default()).unwrap());
    let ours = Overlay::new(
        layers.iter().map(|p| common::host_layer(p)).collect(),
        Some(UpperLayer {
            fs: upper_fs,
            upper: "upper".into(),
            work: "work".into(),
        }),
    )
    .unwrap();
    let (ours, _) = common::walk_fs(&ours);
    // fuse-overlayfs counts links its own way (directories: 2 + subdirectories it loaded;
    // files: the paths it has in memory for one (dev, ino)); ours are the kernel's.
    assert_eq!(ours["/hard1"].nlink, 2, "hard1 and hard3 in the upper");
    let no_links = |t: Tree| -> Tree {
        t.into_iter()
            .map(|(k, mut d)| {
                d.nlink = 0;
                (k, d)
            })
            .collect()
    };
    common::assert_same(
        "ours over fuse-overlayfs's upper",
        &no_links(normalise(ours)),
        &no_links(theirs),
    );
}
