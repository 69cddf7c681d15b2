//! The write path of a writable overlay served over FUSE (writeback cache, KILLPRIV_V2, see
//! docs/overlay.md) against the kernel's overlayfs: one script of writes, set-ID and
//! capability changes, appends and partial writes runs on both merged mounts, and the
//! transcripts (modes, sizes, contents, capabilities) must be the same.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{Mounted, run};
use squashbox_fixtures::prereq;
use squashbox_fuse::{MountTarget, ServeOptions, serve};
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::{Overlay, UpperLayer};
use squashbox_vfs::Filesystem;

/// Run as root in the merged directory `$1`; `setpriv` acts as uid/gid 65534.
const SCRIPT: &str = r#"
set -u
M=$1
other() { setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "$1"; }
m() { stat -c '%n %A %s' "$@" | sed "s|$M/||"; }
printf abc > $M/f; chmod 4775 $M/f; chown 1000:1000 $M/f; m $M/f
chmod 6777 $M/f; other "printf Z >> $M/f"; m $M/f; cat $M/f; echo
chmod 6777 $M/f; other "truncate -s 1 $M/f"; m $M/f
chmod 6777 $M/f; printf Q >> $M/f; m $M/f
other "printf W >> $M/low"; m $M/low; cat $M/low; echo
getcap $M/lowcap | sed "s|$M/||"; printf y >> $M/lowcap; echo "after write: $(getcap $M/lowcap)"
printf 0123456789 > $M/a; exec 3>>$M/a; printf AB >&3; exec 3>&-
exec 3<>$M/a; printf xy >&3; exec 3>&-; cat $M/a; echo
dd if=/dev/zero of=$M/big bs=1000 count=5 2>/dev/null
printf Z | dd of=$M/big bs=1 seek=4500 conv=notrunc 2>/dev/null; md5sum < $M/big
exec 4>$M/wo; head -c 5000 /dev/zero | tr '\0' a >&4; exec 4>&-
printf XYZ | dd of=$M/wo bs=1 seek=10 conv=notrunc 2>/dev/null; printf END >> $M/wo
m $M/wo; md5sum < $M/wo
"#;

fn lower(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("low"), b"lowerdata").unwrap();
    std::fs::set_permissions(dir.join("low"), std::fs::Permissions::from_mode(0o4777)).unwrap();
    std::fs::write(dir.join("lowcap"), b"x").unwrap();
    run(Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(dir.join("lowcap")));
}

fn transcript(mnt: &Path) -> String {
    std::fs::set_permissions(mnt, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("bash")
        .args(["-c", SCRIPT, "script"])
        .arg(mnt)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "script on {}: {text}{}",
        mnt.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn set_ids_appends_and_partial_writes_match_the_kernel_overlay() {
    if !prereq::require_root("set-ID bits, capabilities, kernel overlay and FUSE mounts")
        || !prereq::require_path(Path::new("/dev/fuse"))
        || !prereq::require_tools(&["setpriv", "setcap", "getcap"])
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // uid 65534 must reach the mounts.
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["k/upper", "k/work", "k/mnt", "o/upper", "o/work", "o/mnt"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    lower(&t.join("lower"));

    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            t.join("lower").display(),
            t.join("k/upper").display(),
            t.join("k/work").display()
        ))
        .arg(t.join("k/mnt")));
    let theirs = {
        let _m = Mounted(t.join("k/mnt"));
        transcript(&t.join("k/mnt"))
    };

    let upper: Arc<dyn Filesystem> =
        Arc::new(HostDir::open(&t.join("o"), HostDirOptions::default()).unwrap());
    let ovl = Overlay::new(
        vec![common::host_layer(&t.join("lower"))],
        Some(UpperLayer {
            fs: upper,
            upper: "upper".into(),
            work: "work".into(),
        }),
    )
    .unwrap();
    let fs: Arc<dyn Filesystem> = Arc::new(ovl);
    let (tx, rx) = std::sync::mpsc::channel();
    let target = t.join("o/mnt");
    let server = std::thread::spawn(move || {
        let opts = ServeOptions {
            allow_other: true,
            ..Default::default()
        };
        serve(
            Box::new(move |_| Ok((fs, "overlay-write-test".to_string()))),
            MountTarget::Path(target),
            &opts,
            Box::new(move |r| {
                let _ = tx.send(r.map_err(str::to_string));
            }),
        )
    });
    rx.recv().unwrap().expect("the FUSE mount is ready");
    let ours = {
        let _m = Mounted(t.join("o/mnt"));
        transcript(&t.join("o/mnt"))
    };
    server.join().unwrap().expect("the server ends cleanly");

    // The script did what it meant to on the kernel's side, so equality says something.
    for line in [
        "f -rwxrwxr-x 3",
        "f -rwxrwxrwx 4",
        "f -rwxrwxrwx 1",
        "f -rwsrwsrwx 2",
        "low -rwxrwxrwx 10",
        "lowcap cap_net_raw=ep",
        "after write: ",
        "xy23456789AB",
    ] {
        assert!(
            theirs.lines().any(|l| l == line),
            "kernel transcript lacks {line:?}:\n{theirs}"
        );
    }
    assert_eq!(
        ours, theirs,
        "ours (left) against the kernel overlay (right)"
    );
}
