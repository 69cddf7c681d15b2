//! The overlay against the kernel's overlayfs over the same layers: as host directories and
//! as SquashFS images (loop-mounted for the kernel), every path's type, mode, owner, size,
//! link count, device, mtime, content, link target and user xattrs must agree.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{Mounted, Tree, run};
use squashbox_fixtures::prereq;
use squashbox_overlay::Overlay;

fn kernel_overlay(lowers: &[&Path], mnt: &Path) -> Mounted {
    std::fs::create_dir_all(mnt).unwrap();
    let spec: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={}", spec.join(":")))
        .arg(mnt));
    Mounted(mnt.to_path_buf())
}

/// Distinct objects have distinct numbers; paths sharing one are hard links of one file.
fn check_inos(tree: &Tree, inos: &BTreeMap<String, u64>) {
    let mut by_ino: BTreeMap<u64, Vec<&String>> = BTreeMap::new();
    for (p, i) in inos {
        by_ino.entry(*i).or_default().push(p);
    }
    for (ino, paths) in by_ino {
        if paths.len() > 1 {
            let d = &tree[paths[0]];
            assert!(
                d.kind == "file" && d.nlink as usize >= paths.len(),
                "inode {ino:#x} shared by {paths:?}, which are not hard links"
            );
        }
    }
    assert_eq!(inos["/hard1"], inos["/hard2"], "hard links share a number");
}

/// What the merge of `kernel_layers` holds, whoever serves it.
fn expected_shape(t: &Tree) {
    let names = |dir: &str| -> Vec<&str> {
        let prefix = format!("{dir}/");
        t.keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .collect()
    };
    assert_eq!(names("/opq"), ["mine"], "opaque directory");
    assert_eq!(
        names("/dir1"),
        ["big", "sub", "w", "y", "z"],
        "merged, x whited out"
    );
    assert_eq!(names("/dir1/sub"), ["deep"], "merged below");
    assert_eq!(names("/dir_over"), ["inner"], "a directory over a file");
    assert_eq!(t["/nondir_over"].kind, "file", "a file over a directory");
    assert!(!t.contains_key("/nondir_over/child") && !t.contains_key("/gone"));
    assert_eq!(t["/shared"].content, b"from A");
    assert_eq!(t["/dir1/y"].content, b"y from B");
    assert_eq!(t["/many/f000"].content, [0u8]);
    assert_eq!(names("/many").len(), 300);
    assert_eq!(t["/dir1"].nlink, 1, "merged directories report one link");
    assert_eq!(
        t["/c_only"].xattrs,
        [(b"user.color".to_vec(), b"blue".to_vec())]
    );
    assert_eq!(t["/null"].rdev, 0x103);
}

#[test]
fn host_directory_layers_match_the_kernel_overlay() {
    if !prereq::require_root("mknod of whiteouts, trusted xattrs and kernel overlay mounts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = common::kernel_layers(&tmp.path().join("layers"));
    let theirs = {
        let refs: Vec<&Path> = layers.iter().map(|p| p.as_path()).collect();
        let _m = kernel_overlay(&refs, &tmp.path().join("mnt"));
        common::walk_path(&tmp.path().join("mnt"))
    };
    expected_shape(&theirs);
    let ovl = || Overlay::new(layers.iter().map(|p| common::host_layer(p)).collect(), None);
    let (ours, inos) = common::walk_fs(&ovl().unwrap());
    expected_shape(&ours);
    common::assert_same("host-directory layers", &ours, &theirs);
    check_inos(&ours, &inos);
    let (_, again) = common::walk_fs(&ovl().unwrap());
    assert_eq!(inos, again, "inode numbers are the same on a second mount");
    let top_tag = inos["/a_only"] >> 48;
    assert_eq!(
        (top_tag, inos["/c_only"] >> 48),
        (1, 3),
        "the layer is in the high bits"
    );
}

#[test]
fn squashfs_layers_match_the_kernel_overlay_of_loop_mounts() {
    if !prereq::require_root("mknod of whiteouts, trusted xattrs, loop and overlay mounts")
        || !prereq::require_tools(&["mksquashfs"])
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = common::kernel_layers(&tmp.path().join("layers"));
    let mut ours_layers = Vec::new();
    let mut mounts = Vec::new();
    let mut points = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let img = tmp.path().join(format!("l{i}.sqfs"));
        ours_layers.push(common::squash_layer(l, &img));
        let point = tmp.path().join(format!("m{i}"));
        std::fs::create_dir_all(&point).unwrap();
        run(Command::new("mount")
            .args(["-t", "squashfs", "-o", "loop,ro"])
            .arg(&img)
            .arg(&point));
        mounts.push(Mounted(point.clone()));
        points.push(point);
    }
    let theirs = {
        let refs: Vec<&Path> = points.iter().map(|p| p.as_path()).collect();
        let _m = kernel_overlay(&refs, &tmp.path().join("mnt"));
        common::walk_path(&tmp.path().join("mnt"))
    };
    drop(mounts);
    let fs = Overlay::new(ours_layers, None).unwrap();
    let (ours, inos) = common::walk_fs(&fs);
    expected_shape(&theirs);
    common::assert_same("SquashFS layers", &ours, &theirs);
    check_inos(&ours, &inos);
}
