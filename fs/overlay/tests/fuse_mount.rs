//! The overlay served over FUSE (squashbox-fuse) against the kernel's overlayfs over the
//! same host-directory layers: what `stat`, `readdir`, `read`, `readlink` and `getxattr` show
//! through both mounts must agree, and `st_ino` must stay what the overlay reports.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{Mounted, run};
use squashbox_fixtures::prereq;
use squashbox_fuse::{MountTarget, ServeOptions, serve};
use squashbox_overlay::Overlay;
use squashbox_vfs::Filesystem;

#[test]
fn served_over_fuse_it_matches_the_kernel_overlay() {
    if !prereq::require_root("whiteouts, trusted xattrs, kernel overlay and FUSE mounts")
        || !prereq::require_path(Path::new("/dev/fuse"))
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = common::kernel_layers(&tmp.path().join("layers"));
    let kmnt = tmp.path().join("kernel");
    std::fs::create_dir_all(&kmnt).unwrap();
    let spec: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={}", spec.join(":")))
        .arg(&kmnt));
    let _kernel = Mounted(kmnt.clone());
    let theirs = common::walk_path(&kmnt);

    let fmnt = tmp.path().join("fuse");
    std::fs::create_dir_all(&fmnt).unwrap();
    let lowers = layers.iter().map(|p| common::host_layer(p)).collect();
    let ovl = Arc::new(Overlay::new(lowers, None).unwrap());
    let (_, inos) = common::walk_fs(&*ovl);
    let fs: Arc<dyn Filesystem> = ovl;
    let (tx, rx) = std::sync::mpsc::channel();
    let target = fmnt.clone();
    let server = std::thread::spawn(move || {
        let opts = ServeOptions {
            threads: Some(2),
            ..Default::default()
        };
        serve(
            Box::new(move |_| Ok((fs, "overlay-test".to_string()))),
            MountTarget::Path(target),
            &opts,
            Box::new(move |r| {
                let _ = tx.send(r.map_err(str::to_string));
            }),
        )
    });
    rx.recv().unwrap().expect("the FUSE mount is ready");
    let mounted = Mounted(fmnt.clone());
    let ours = common::walk_path(&fmnt);
    for (path, ino) in &inos {
        let md = std::fs::symlink_metadata(fmnt.join(path.trim_start_matches('/'))).unwrap();
        assert_eq!(md.ino(), *ino, "{path}: st_ino through FUSE");
    }
    drop(mounted);
    server
        .join()
        .unwrap()
        .expect("the server ends cleanly after unmount");
    common::assert_same("FUSE-served overlay", &ours, &theirs);
}
