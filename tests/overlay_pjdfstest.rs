//! pjdfstest (the Rust port, `cargo install pjdfstest`) on the merged mount of
//! `squashbox overlay mount` with a host-directory lower and upper, against the kernel
//! overlay over the same kind of layers as the oracle: the same tests must fail on both (on
//! this machine, only the `::char` cases, whose 0/0 character device is a whiteout in any
//! overlay and is refused with EPERM), and most must pass. The whole suite takes seconds.
//!
//! scripts/test.sh installs pjdfstest (`cargo install pjdfstest`); run this test alone with
//! `cargo test -p squashbox --test overlay_pjdfstest` (see
//! docs/overlay.md).

mod overlay_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use overlay_common::*;
use squashbox_fixtures::prereq;

fn config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/overlay_common/pjdfstest.toml")
}

/// Run pjdfstest in `dir`; (failed test names, passed count).
fn pjdfstest(dir: &Path, log: &Path) -> (BTreeSet<String>, usize) {
    // Its output is larger than a pipe holds: straight to a file.
    let file = std::fs::File::create(log).unwrap();
    let mut child = Command::new("pjdfstest")
        .arg("-c")
        .arg(config())
        .arg("-p")
        .arg(dir)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("pjdfstest");
    if !wait_for(Duration::from_secs(120), || {
        child.try_wait().unwrap().is_some()
    }) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("pjdfstest in {} ran past 120 s", dir.display());
    }
    let out = std::fs::read_to_string(log).unwrap();
    let failed = out
        .lines()
        .filter(|l| l.trim_end().ends_with("FAILED"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let passed = out
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("Summary: ")?;
            rest.split(", ")
                .find_map(|p| p.strip_suffix(" passed")?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no pjdfstest summary: {out}"));
    (failed, passed)
}

fn layers(root: &Path) {
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("l/lower-file"), b"x\n").unwrap();
}

fn open_up(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn pjdfstest_fails_only_where_the_kernel_overlay_fails() {
    if !prereq::require_root("FUSE and kernel overlay mounts; pjdfstest switches users")
        || !prereq::require_path(Path::new("/dev/fuse"))
        || !prereq::require_tools(&["pjdfstest"])
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // pjdfstest works as other users too: they must reach the mounts.
    open_up(tmp.path(), 0o755);
    let (k, o) = (tmp.path().join("kernel"), tmp.path().join("ours"));
    layers(&k);
    layers(&o);
    let p = |root: &Path, d: &str| root.join(d).display().to_string();

    run_ok(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                p(&k, "l"),
                p(&k, "u"),
                p(&k, "w")
            ))
            .arg(k.join("m")),
    );
    let kernel_mnt = Mounted::new(&k.join("m"));
    open_up(&k.join("m"), 0o777);
    let (theirs, kernel_passed) = pjdfstest(&k.join("m"), &tmp.path().join("kernel.log"));
    drop(kernel_mnt);

    let _ours_mnt = Mounted::new(&o.join("m"));
    run_ok(
        Command::new(bin())
            .args(["overlay", "mount", "-o", "allow_other", "--lower"])
            .args([p(&o, "l"), "--upper".into(), p(&o, "u"), "--work".into()])
            .arg(p(&o, "w"))
            .arg(o.join("m")),
    );
    open_up(&o.join("m"), 0o777);
    let (ours, passed) = pjdfstest(&o.join("m"), &tmp.path().join("ours.log"));
    unmount(&o.join("m"));

    assert_eq!(
        ours, theirs,
        "failing tests differ from the kernel overlay's (ours, then kernel)"
    );
    assert_eq!(passed, kernel_passed);
    assert!(passed > 250, "only {passed} pjdfstest cases passed");
}
