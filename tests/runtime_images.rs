//! Images of other kinds in the runtime: an OCI-derived SIF (its entrypoint and command,
//! also with no shell in the image) and sandbox directories (read-only, and written in
//! place with `-w`).

#[path = "common/fuse.rs"]
mod fuse;
#[path = "common/runtime.rs"]
mod runtime;

use std::process::Command;

use fuse::{bin, busybox_sif};
use runtime::{describe, ready, sb, stdout};
use squashbox_fixtures::prereq;

#[test]
fn run_starts_an_oci_entrypoint_in_an_image_without_a_shell() {
    if !ready() || !prereq::require_tools(&["mksquashfs"]) {
        return;
    }
    // A distroless-like image: one static busybox, no /bin/sh, no runscript; the SIF holds
    // the image config `apptainer build` stores for OCI-derived images.
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree/bin");
    std::fs::create_dir_all(&tree).unwrap();
    let bb = Command::new(bin())
        .args([
            "squashfs",
            "cat",
            busybox_sif().to_str().unwrap(),
            "/bin/busybox",
        ])
        .output()
        .unwrap();
    assert!(bb.status.success(), "{}", describe(&bb));
    std::fs::write(tree.join("busybox"), &bb.stdout).unwrap();
    std::fs::set_permissions(
        tree.join("busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sq = t.path().join("root.sqfs");
    squashbox_fixtures::mksquashfs(&t.path().join("tree"), &sq, &[]).unwrap();
    let conf = t.path().join("oci-config.json");
    std::fs::write(
        &conf,
        r#"{"config":{"Entrypoint":["/bin/busybox","echo"],"Cmd":["the","command"]}}"#,
    )
    .unwrap();
    let sif = t.path().join("oci.sif");
    let s = sif.to_str().unwrap();
    for args in [
        vec!["sif", "new", s],
        vec![
            "sif",
            "add",
            "--datatype",
            "6",
            "--filename",
            "oci-config.json",
            "--groupid",
            "1",
            s,
            conf.to_str().unwrap(),
        ],
        vec![
            "sif",
            "add",
            "--datatype",
            "4",
            "--parttype",
            "2",
            "--partfs",
            "1",
            "--partarch",
            "2",
            "--groupid",
            "1",
            s,
            sq.to_str().unwrap(),
        ],
    ] {
        let o = sb(&args);
        assert!(o.status.success(), "{args:?}: {}", describe(&o));
    }
    let o = sb(&["run", s]);
    assert_eq!(stdout(&o), "the command\n", "{}", describe(&o));
    // Arguments replace the command, not the entrypoint.
    let o = sb(&["run", s, "given"]);
    assert_eq!(stdout(&o), "given\n", "{}", describe(&o));
    // Without a shell, only run (with an entrypoint) and exec can start anything.
    let o = sb(&["shell", s]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no /bin/sh"),
        "{}",
        describe(&o)
    );
}

#[test]
fn a_sandbox_directory_runs_and_with_w_is_written_in_place() {
    if !ready() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("sandbox");
    let o = Command::new(bin())
        .args(["squashfs", "extract", busybox_sif().to_str().unwrap()])
        .arg(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let r = root.to_str().unwrap();
    // Read-only by default.
    let o = sb(&[
        "exec",
        r,
        "sh",
        "-c",
        "cat /etc/hostname >/dev/null 2>&1; touch /x 2>&1",
    ]);
    assert_eq!(
        stdout(&o),
        "touch: /x: Read-only file system\n",
        "{}",
        describe(&o)
    );
    // -w: changes land in the directory itself, deletions included.
    let o = sb(&[
        "exec",
        "-w",
        r,
        "sh",
        "-c",
        "echo made > /made && mkdir /newdir && rm /bin/false && echo ok",
    ]);
    assert_eq!(stdout(&o), "ok\n", "{}", describe(&o));
    assert_eq!(
        std::fs::read_to_string(root.join("made")).unwrap(),
        "made\n"
    );
    assert!(root.join("newdir").is_dir());
    assert!(!root.join("bin/false").exists());
    assert!(root.join("bin/true").exists());
}
