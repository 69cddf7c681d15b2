//! Hostile trees: symlinks pointing outside, names that try to climb, nodes that change or
//! vanish behind the server, and more nodes than descriptors.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_vfs::{
    Errno, FileHandle, FileType, Filesystem, OpenFlags, ROOT_ID, ReadReply, Request, SetAttr,
};

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn read(fs: &HostDir, node: u64) -> Result<Vec<u8>, Errno> {
    let (reply, rx) = ReadReply::channel();
    fs.read(&Request::root(), node, FileHandle(0), 0, 4096, reply);
    rx.recv().unwrap()
}

/// `outside/secret` (the sentinel) and a tree of links aiming at it and above.
fn hostile_tree(base: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let outside = base.join("outside");
    let tree = base.join("tree");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(tree.join("d")).unwrap();
    let secret = outside.join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&secret, tree.join("abs")).unwrap();
    symlink("../outside/secret", tree.join("rel")).unwrap();
    symlink("../../..", tree.join("up")).unwrap();
    symlink("../../outside", tree.join("d/esc")).unwrap();
    symlink("/etc/shadow", tree.join("shadow")).unwrap();
    (tree, secret)
}

fn assert_sentinel_intact(secret: &Path) {
    assert_eq!(std::fs::read(secret).unwrap(), b"secret");
    let md = std::fs::metadata(secret).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!(md.nlink(), 1);
}

#[test]
fn symlinks_out_of_the_tree_are_served_never_followed() {
    symlinks_are_never_followed();
}

#[test]
fn without_openat2_symlinks_are_still_never_followed() {
    // Every later open in this test binary uses plain openat with O_NOFOLLOW; both paths
    // must hold the same line.
    squashbox_hostdir::sys::disable_openat2();
    symlinks_are_never_followed();
}

fn symlinks_are_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, secret) = hostile_tree(tmp.path());
    let fs = HostDir::open(&tree, HostDirOptions::default()).unwrap();
    let r = Request::root();
    let targets = [
        ("abs", secret.to_str().unwrap().to_string()),
        ("rel", "../outside/secret".into()),
        ("up", "../../..".into()),
        ("shadow", "/etc/shadow".into()),
    ];
    for (name, target) in &targets {
        let e = fs.lookup(&r, ROOT_ID, n(name)).unwrap().unwrap();
        assert_eq!(e.attr.kind, FileType::Symlink, "{name}");
        assert_eq!(
            e.attr.size,
            target.len() as u64,
            "{name}: the link's own size"
        );
        assert_eq!(fs.readlink(&r, e.node).unwrap(), target.as_bytes());
        assert_eq!(
            fs.lookup(&r, e.node, n("secret")),
            Err(Errno::ENOTDIR),
            "{name}"
        );
        assert_eq!(
            fs.lookup(&r, e.node, n("etc")),
            Err(Errno::ENOTDIR),
            "{name}"
        );
        assert!(
            fs.open(&r, e.node, OpenFlags(libc::O_RDONLY)).is_err(),
            "{name}: open"
        );
        assert!(read(&fs, e.node).is_err(), "{name}: read");
        assert!(
            fs.open(&r, e.node, OpenFlags(libc::O_WRONLY | libc::O_TRUNC))
                .is_err()
        );
        let trunc = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        assert!(fs.setattr(&r, e.node, &trunc).is_err(), "{name}: truncate");
        let chmod = SetAttr {
            mode: Some(0o777),
            ..Default::default()
        };
        assert_eq!(
            fs.setattr(&r, e.node, &chmod).err(),
            Some(Errno::EOPNOTSUPP)
        );
        assert!(
            fs.readdir(&r, e.node, FileHandle(0), 0, false, &mut |_, _| true)
                .is_err()
        );
        assert!(fs.opendir(&r, e.node, OpenFlags(0)).is_err());
        let created = fs.create(
            &r,
            ROOT_ID,
            n(name),
            libc::S_IFREG | 0o666,
            OpenFlags(libc::O_WRONLY | libc::O_TRUNC),
        );
        assert!(
            created.is_err(),
            "{name}: create over a symlink must not open its target"
        );
        let _ = fs.setxattr(&r, e.node, n("user.x"), b"1", 0);
        let _ = fs.setxattr(&r, e.node, n("trusted.x"), b"1", 0);
        let linked = fs.link(&r, e.node, ROOT_ID, n(&format!("{name}.hard")));
        if let Ok(l) = linked {
            assert_eq!(
                l.attr.kind,
                FileType::Symlink,
                "a hard link of the link itself"
            );
        }
        assert_sentinel_intact(&secret);
    }
    let d = fs.lookup(&r, ROOT_ID, n("d")).unwrap().unwrap();
    let esc = fs.lookup(&r, d.node, n("esc")).unwrap().unwrap();
    assert_eq!(esc.attr.kind, FileType::Symlink);
    assert_eq!(
        fs.mkdir(&r, esc.node, n("x"), 0o755).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        fs.mknod(&r, esc.node, n("x"), libc::S_IFREG | 0o644, 0)
            .err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        fs.unlink(&r, esc.node, n("secret")).err(),
        Some(Errno::ENOTDIR)
    );
    assert!(
        fs.rename(
            &r,
            ROOT_ID,
            n("abs"),
            esc.node,
            n("secret"),
            Default::default()
        )
        .is_err()
    );
    assert!(!tmp.path().join("outside/x").exists());
    assert_sentinel_intact(&secret);
    for bad in ["..", "a/b", "../outside", "/etc", ""] {
        assert!(
            fs.lookup(&r, ROOT_ID, n(bad)).is_err(),
            "{bad:?} is not a name"
        );
        assert!(fs.mkdir(&r, ROOT_ID, n(bad), 0o755).is_err(), "{bad:?}");
        assert!(fs.unlink(&r, ROOT_ID, n(bad)).is_err(), "{bad:?}");
    }
    assert!(fs.lookup(&r, d.node, n("..")).is_err());
    assert_sentinel_intact(&secret);
    assert!(
        std::fs::read_dir(tmp.path().join("outside"))
            .unwrap()
            .count()
            == 1
    );
}

#[test]
fn more_nodes_than_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in 0..4 {
        let dir = root.join(format!("d{d}/e{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    let limit = 4;
    let fs = HostDir::open(
        root,
        HostDirOptions {
            fd_limit: limit,
            ..Default::default()
        },
    )
    .unwrap();
    let r = Request::root();
    let mut files = Vec::new();
    for d in 0..4 {
        let dn = fs
            .lookup(&r, ROOT_ID, n(&format!("d{d}")))
            .unwrap()
            .unwrap();
        let en = fs
            .lookup(&r, dn.node, n(&format!("e{d}")))
            .unwrap()
            .unwrap();
        for f in 0..100 {
            let e = fs
                .lookup(&r, en.node, n(&format!("f{f}")))
                .unwrap()
                .unwrap();
            files.push((e.node, format!("{d}/{f}")));
        }
        assert!(fs.cached_fds() <= limit);
    }
    for (node, want) in files.iter().rev().chain(files.iter()) {
        assert_eq!(read(&fs, *node).unwrap(), want.as_bytes());
        assert!(fs.getattr(&r, *node, None).is_ok());
        assert!(fs.cached_fds() <= limit, "{} descriptors", fs.cached_fds());
    }
    assert!(fs.known_nodes() >= 400);
    for (node, _) in &files {
        fs.forget(*node, 1);
    }
}

#[test]
fn a_name_replaced_behind_the_server_is_stale_not_the_new_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("f"), b"old").unwrap();
    std::fs::write(tree.join("g"), b"g").unwrap();
    let fs = HostDir::open(
        &tree,
        HostDirOptions {
            fd_limit: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let r = Request::root();
    let f = fs.lookup(&r, ROOT_ID, n("f")).unwrap().unwrap();
    fs.lookup(&r, ROOT_ID, n("g")).unwrap().unwrap(); // evicts f's descriptor
    // Keep the old inode alive elsewhere so its number cannot be reused, then replace the name.
    std::fs::rename(tree.join("f"), tmp.path().join("kept")).unwrap();
    std::fs::write(tree.join("f"), b"new").unwrap();
    assert_eq!(fs.getattr(&r, f.node, None).err(), Some(Errno::ESTALE));
    assert_eq!(read(&fs, f.node).err(), Some(Errno::ESTALE));
    let again = fs.lookup(&r, ROOT_ID, n("f")).unwrap().unwrap();
    assert_ne!(again.node, f.node);
    assert_eq!(read(&fs, again.node).unwrap(), b"new");
}

#[test]
fn the_directory_deleted_under_us_gives_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(victim.join("sub")).unwrap();
    std::fs::write(victim.join("sub/f"), b"x").unwrap();
    let fs = HostDir::open(
        &victim,
        HostDirOptions {
            fd_limit: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let r = Request::root();
    let sub = fs.lookup(&r, ROOT_ID, n("sub")).unwrap().unwrap();
    let f = fs.lookup(&r, sub.node, n("f")).unwrap().unwrap();
    fs.lookup(&r, ROOT_ID, n("sub")).unwrap().unwrap();
    std::fs::remove_dir_all(&victim).unwrap();
    assert!(matches!(
        fs.lookup(&r, ROOT_ID, n("sub")),
        Ok(None) | Err(_)
    ));
    assert!(
        fs.getattr(&r, f.node, None).is_err(),
        "f's descriptor was evicted and its path is gone"
    );
    let mut names = Vec::new();
    let listed = fs.readdir(&r, ROOT_ID, FileHandle(0), 0, false, &mut |i, _| {
        names.push(i.name.to_os_string());
        true
    });
    assert!(
        listed.is_err() || names.len() == 2,
        "only . and .. at most: {names:?}"
    );
    assert!(fs.mkdir(&r, ROOT_ID, n("new"), 0o755).is_err());
    assert!(
        fs.create(
            &r,
            ROOT_ID,
            n("new"),
            libc::S_IFREG | 0o644,
            OpenFlags(libc::O_WRONLY)
        )
        .is_err()
    );
    assert!(
        fs.mknod(&r, sub.node, n("x"), libc::S_IFIFO | 0o644, 0)
            .is_err()
    );
    let root = fs.getattr(&r, ROOT_ID, None);
    assert!(root.is_err() || root.unwrap().attr.nlink == 0);
    let _ = fs.statfs(&r, ROOT_ID);
    assert!(!victim.exists(), "nothing was recreated");
}
