//! Every operation of [`HostDir`] against what the host directory then holds.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use squashbox_fixtures::prereq;
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_vfs::{
    Errno, FileHandle, FileType, Filesystem, OpenFlags, ROOT_ID, ReadReply, RenameFlags, Request,
    SetAttr, TimeSet, Timespec, Whence, XattrData,
};

fn fs_at(dir: &Path) -> HostDir {
    HostDir::open(dir, HostDirOptions::default()).unwrap()
}

fn req() -> Request {
    Request {
        umask: 0o022,
        ..Request::root()
    }
}

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn read(fs: &HostDir, node: u64, fh: FileHandle, off: u64, size: u32) -> Vec<u8> {
    let (reply, rx) = ReadReply::channel();
    fs.read(&req(), node, fh, off, size, reply);
    rx.recv().unwrap().unwrap()
}

#[test]
fn create_write_read_truncate_and_times() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = fs_at(tmp.path());
    let (e, o) = fs
        .create(
            &req(),
            ROOT_ID,
            n("f"),
            libc::S_IFREG | 0o666,
            OpenFlags(libc::O_RDWR | libc::O_CREAT),
        )
        .unwrap();
    assert_eq!(e.attr.kind, FileType::RegularFile);
    assert_eq!(e.attr.perm, 0o644, "umask applied");
    let md = std::fs::metadata(tmp.path().join("f")).unwrap();
    assert_eq!(e.attr.ino, md.ino(), "st_ino is the host's");
    assert_eq!(
        fs.write(
            &req(),
            e.node,
            o.fh,
            0,
            b"hello world",
            OpenFlags(libc::O_RDWR)
        ),
        Ok(11)
    );
    assert_eq!(
        fs.write(&req(), e.node, o.fh, 100, b"!", OpenFlags(libc::O_RDWR)),
        Ok(1)
    );
    assert_eq!(read(&fs, e.node, o.fh, 6, 5), b"world");
    // Nothing to do on close: ENOSYS lets the kernel stop sending FLUSH.
    assert_eq!(fs.flush(&req(), e.node, o.fh, 0), Err(Errno::ENOSYS));
    assert_eq!(fs.fsync(&req(), e.node, o.fh, true), Ok(()));
    let a = fs.getattr(&req(), e.node, Some(o.fh)).unwrap().attr;
    assert_eq!(a.size, 101);
    fs.release(&req(), e.node, o.fh, OpenFlags(0)).unwrap();
    assert_eq!(fs.open_handles(), 0);
    let data = std::fs::read(tmp.path().join("f")).unwrap();
    assert_eq!((&data[..11], data.len()), (&b"hello world"[..], 101));

    let t = Timespec {
        secs: 1_000_000_000,
        nsecs: 123_456_789,
    };
    let set = SetAttr {
        size: Some(5),
        mode: Some(0o4750),
        mtime: Some(TimeSet::At(t)),
        atime: Some(TimeSet::At(Timespec::from_secs(7))),
        ..Default::default()
    };
    let a = fs.setattr(&req(), e.node, &set).unwrap().attr;
    assert_eq!(
        (a.size, a.perm, a.mtime, a.atime),
        (5, 0o4750, t, Timespec::from_secs(7))
    );
    let md = std::fs::metadata(tmp.path().join("f")).unwrap();
    assert_eq!(
        (md.len(), md.mode() & 0o7777, md.mtime(), md.mtime_nsec()),
        (5, 0o4750, 1_000_000_000, 123_456_789)
    );
    let now = fs
        .setattr(
            &req(),
            e.node,
            &SetAttr {
                mtime: Some(TimeSet::Now),
                ..Default::default()
            },
        )
        .unwrap()
        .attr;
    assert!(now.mtime.secs > 1_700_000_000, "UTIME_NOW");

    let o = fs.open(&req(), e.node, OpenFlags(libc::O_RDONLY)).unwrap();
    assert_eq!(read(&fs, e.node, o.fh, 0, 100), b"hello");
    fs.release(&req(), e.node, o.fh, OpenFlags(0)).unwrap();
    let o = fs
        .open(&req(), e.node, OpenFlags(libc::O_WRONLY | libc::O_TRUNC))
        .unwrap();
    fs.release(&req(), e.node, o.fh, OpenFlags(0)).unwrap();
    assert_eq!(
        std::fs::metadata(tmp.path().join("f")).unwrap().len(),
        0,
        "O_TRUNC"
    );
    let ex = fs.create(
        &req(),
        ROOT_ID,
        n("f"),
        libc::S_IFREG | 0o644,
        OpenFlags(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL),
    );
    assert_eq!(ex.err(), Some(Errno::EEXIST));
    let dir = fs.lookup(&req(), ROOT_ID, n(".")).err();
    assert_eq!(dir, Some(Errno::ENOENT));
}

#[test]
fn names_nodes_links_and_renames() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let fs = fs_at(root);
    let r = req();
    let d = fs.mkdir(&r, ROOT_ID, n("d"), 0o777).unwrap();
    assert_eq!((d.attr.kind, d.attr.perm), (FileType::Directory, 0o755));
    let fifo = fs
        .mknod(&r, d.node, n("fifo"), libc::S_IFIFO | 0o666, 0)
        .unwrap();
    assert_eq!(fifo.attr.kind, FileType::NamedPipe);
    let s = fs.symlink(&r, d.node, n("s"), n("../nowhere")).unwrap();
    assert_eq!(s.attr.kind, FileType::Symlink);
    assert_eq!(fs.readlink(&r, s.node).unwrap(), b"../nowhere");
    assert_eq!(
        std::fs::read_link(root.join("d/s")).unwrap(),
        Path::new("../nowhere")
    );
    assert_eq!(fs.readlink(&r, d.node), Err(Errno::EINVAL));
    if prereq::require_root("mknod of a device") {
        let dev = fs
            .mknod(&r, d.node, n("null"), libc::S_IFCHR | 0o600, 0x103)
            .unwrap();
        assert_eq!(
            (dev.attr.kind, dev.attr.rdev),
            (FileType::CharDevice, 0x103)
        );
        let md = std::fs::symlink_metadata(root.join("d/null")).unwrap();
        assert_eq!(md.rdev(), libc::makedev(1, 3));
        let wh = fs.mknod(&r, d.node, n("wh"), libc::S_IFCHR, 0).unwrap();
        assert_eq!((wh.attr.kind, wh.attr.rdev), (FileType::CharDevice, 0));
    }
    let (f, o) = fs
        .create(
            &r,
            d.node,
            n("f"),
            libc::S_IFREG | 0o644,
            OpenFlags(libc::O_WRONLY),
        )
        .unwrap();
    fs.release(&r, f.node, o.fh, OpenFlags(0)).unwrap();
    let l = fs.link(&r, f.node, ROOT_ID, n("hard")).unwrap();
    assert_eq!(l.node, f.node, "a hard link is the same node");
    assert_eq!(l.attr.nlink, 2);
    assert_eq!(
        std::fs::metadata(root.join("hard")).unwrap().ino(),
        std::fs::metadata(root.join("d/f")).unwrap().ino()
    );
    // rename, NOREPLACE, EXCHANGE
    fs.rename(&r, d.node, n("f"), ROOT_ID, n("g"), RenameFlags(0))
        .unwrap();
    assert!(root.join("g").exists() && !root.join("d/f").exists());
    assert_eq!(
        fs.rename(
            &r,
            ROOT_ID,
            n("g"),
            ROOT_ID,
            n("hard"),
            RenameFlags(RenameFlags::NOREPLACE)
        ),
        Err(Errno::EEXIST)
    );
    std::fs::write(root.join("other"), b"other").unwrap();
    fs.rename(
        &r,
        ROOT_ID,
        n("g"),
        ROOT_ID,
        n("other"),
        RenameFlags(RenameFlags::EXCHANGE),
    )
    .unwrap();
    assert_eq!(std::fs::read(root.join("g")).unwrap(), b"other");
    assert_eq!(
        fs.rename(&r, ROOT_ID, n("g"), ROOT_ID, n("x"), RenameFlags(1 << 10)),
        Err(Errno::EINVAL),
        "unknown rename flags"
    );
    // The moved node is found again at its new place once its descriptor is gone.
    let small = HostDir::open(
        root,
        HostDirOptions {
            fd_limit: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let d2 = small.lookup(&r, ROOT_ID, n("d")).unwrap().unwrap();
    let fifo2 = small.lookup(&r, d2.node, n("fifo")).unwrap().unwrap();
    let e = small.mkdir(&r, ROOT_ID, n("e"), 0o755).unwrap();
    small
        .rename(&r, d2.node, n("fifo"), e.node, n("fifo2"), RenameFlags(0))
        .unwrap();
    small.lookup(&r, ROOT_ID, n("hard")).unwrap().unwrap();
    assert_eq!(
        small.getattr(&r, fifo2.node, None).unwrap().attr.kind,
        FileType::NamedPipe
    );
    // unlink / rmdir
    assert_eq!(fs.rmdir(&r, ROOT_ID, n("d")), Err(Errno::ENOTEMPTY));
    assert_eq!(fs.unlink(&r, ROOT_ID, n("d")), Err(Errno::EISDIR));
    fs.unlink(&r, ROOT_ID, n("hard")).unwrap();
    assert!(!root.join("hard").exists());
    fs.rmdir(&r, ROOT_ID, n("e")).err().unwrap();
    let e1 = fs.lookup(&r, ROOT_ID, n("e")).unwrap().unwrap();
    assert_eq!(
        e1.node, e.node,
        "node ids are host numbers, the same in every instance"
    );
    fs.unlink(&r, e1.node, n("fifo2")).unwrap();
    fs.rmdir(&r, ROOT_ID, n("e")).unwrap();
    assert!(!root.join("e").exists());
    assert_eq!(fs.unlink(&r, ROOT_ID, n("missing")), Err(Errno::ENOENT));
    assert!(fs.lookup(&r, ROOT_ID, n("missing")).unwrap().is_none());
}

#[test]
fn xattrs_statfs_access_holes_and_copy_file_range() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let fs = fs_at(root);
    let r = req();
    let (f, o) = fs
        .create(
            &r,
            ROOT_ID,
            n("f"),
            libc::S_IFREG | 0o644,
            OpenFlags(libc::O_RDWR),
        )
        .unwrap();
    if prereq::require_user_xattrs(root) {
        fs.setxattr(&r, f.node, n("user.a"), b"1", 0).unwrap();
        assert_eq!(
            fs.setxattr(&r, f.node, n("user.a"), b"2", libc::XATTR_CREATE),
            Err(Errno::EEXIST)
        );
        assert_eq!(
            fs.getxattr(&r, f.node, n("user.a"), 0),
            Ok(XattrData::Size(1))
        );
        assert_eq!(
            fs.getxattr(&r, f.node, n("user.a"), 10),
            Ok(XattrData::Data(b"1".to_vec()))
        );
        let XattrData::Data(list) = fs.listxattr(&r, f.node, 100).unwrap() else {
            panic!()
        };
        assert!(list.split(|&b| b == 0).any(|x| x == b"user.a"));
        fs.removexattr(&r, f.node, n("user.a")).unwrap();
        assert_eq!(
            fs.getxattr(&r, f.node, n("user.a"), 10),
            Err(Errno::ENODATA)
        );
    }
    if prereq::require_root("trusted.* xattrs and owners") {
        fs.setxattr(&r, ROOT_ID, n("trusted.overlay.opaque"), b"y", 0)
            .unwrap();
        assert_eq!(
            fs.getxattr(&r, ROOT_ID, n("trusted.overlay.opaque"), 10),
            Ok(XattrData::Data(b"y".to_vec()))
        );
        let s = fs.symlink(&r, ROOT_ID, n("s"), n("f")).unwrap();
        fs.setxattr(&r, s.node, n("trusted.sym"), b"on-link", 0)
            .unwrap();
        assert_eq!(
            fs.getxattr(&r, s.node, n("trusted.sym"), 64),
            Ok(XattrData::Data(b"on-link".to_vec()))
        );
        assert_eq!(
            fs.getxattr(&r, f.node, n("trusted.sym"), 64),
            Err(Errno::ENODATA),
            "the link was not followed"
        );
        let user = Request {
            uid: 1234,
            gid: 5678,
            umask: 0o022,
            pid: 0,
        };
        let d = fs.mkdir(&user, ROOT_ID, n("owned"), 0o755).unwrap();
        assert_eq!((d.attr.uid, d.attr.gid), (1234, 5678));
        let l = fs.symlink(&user, d.node, n("l"), n("x")).unwrap();
        assert_eq!((l.attr.uid, l.attr.gid), (1234, 5678));
        let a = fs
            .setattr(
                &r,
                l.node,
                &SetAttr {
                    uid: Some(42),
                    gid: Some(43),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((a.attr.uid, a.attr.gid), (42, 43));
        assert_eq!(
            std::fs::symlink_metadata(root.join("owned/l"))
                .unwrap()
                .uid(),
            42
        );
        std::fs::set_permissions(root.join("owned"), std::fs::Permissions::from_mode(0o2775))
            .unwrap();
        let sub = fs.mkdir(&user, d.node, n("sub"), 0o755).unwrap();
        assert_eq!(
            sub.attr.perm & 0o2000,
            0o2000,
            "setgid directories pass it on"
        );
    }
    let s = fs.statfs(&r, ROOT_ID).unwrap();
    assert!(s.blocks > 0 && s.bsize > 0 && s.namelen >= 255);
    assert_eq!(fs.access(&r, f.node, libc::R_OK | libc::W_OK), Ok(()));
    assert_eq!(fs.access(&r, f.node, libc::F_OK), Ok(()));

    // Holes: data at 0 and at 1 MiB, a hole between.
    fs.write(&r, f.node, o.fh, 0, &[1u8; 4096], OpenFlags(libc::O_RDWR))
        .unwrap();
    fs.write(
        &r,
        f.node,
        o.fh,
        1 << 20,
        &[2u8; 4096],
        OpenFlags(libc::O_RDWR),
    )
    .unwrap();
    let hole = fs.lseek(&r, f.node, o.fh, 0, Whence::Hole).unwrap();
    let data = fs.lseek(&r, f.node, o.fh, hole, Whence::Data).unwrap();
    assert!((4096..1 << 20).contains(&hole), "hole at {hole}");
    assert_eq!(data, 1 << 20);
    assert_eq!(
        fs.lseek(&r, f.node, o.fh, (1 << 20) + 8192, Whence::Data),
        Err(Errno::ENXIO)
    );
    fs.fallocate(
        &r,
        f.node,
        o.fh,
        0,
        4096,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
    )
    .unwrap();
    assert_eq!(read(&fs, f.node, o.fh, 0, 8), [0u8; 8], "punched");
    fs.fallocate(&r, f.node, o.fh, 0, 3 << 20, 0).unwrap();
    assert_eq!(std::fs::metadata(root.join("f")).unwrap().len(), 3 << 20);
    // copy_file_range between two open files
    let (g, og) = fs
        .create(
            &r,
            ROOT_ID,
            n("g"),
            libc::S_IFREG | 0o644,
            OpenFlags(libc::O_RDWR),
        )
        .unwrap();
    let copied = fs
        .copy_file_range(&r, f.node, o.fh, 1 << 20, g.node, og.fh, 10, 4096, 0)
        .unwrap();
    assert_eq!(copied, 4096);
    let gd = std::fs::read(root.join("g")).unwrap();
    assert_eq!((gd.len(), &gd[10..20]), (4106, &[2u8; 10][..]));
    fs.release(&r, f.node, o.fh, OpenFlags(0)).unwrap();
    fs.release(&r, g.node, og.fh, OpenFlags(0)).unwrap();
    let od = fs.opendir(&r, ROOT_ID, OpenFlags(libc::O_RDONLY)).unwrap();
    let mut names = Vec::new();
    fs.readdir(&r, ROOT_ID, od.fh, 0, false, &mut |i, _| {
        names.push(i.name.to_string_lossy().into_owned());
        true
    })
    .unwrap();
    assert!(names.contains(&"f".to_string()) && names.contains(&"g".to_string()));
    assert_eq!(fs.fsyncdir(&r, ROOT_ID, od.fh, false), Ok(()));
    fs.releasedir(&r, ROOT_ID, od.fh).unwrap();
}

#[test]
fn an_open_file_outlives_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = fs_at(tmp.path());
    let r = req();
    let (f, o) = fs
        .create(
            &r,
            ROOT_ID,
            n("f"),
            libc::S_IFREG | 0o644,
            OpenFlags(libc::O_RDWR),
        )
        .unwrap();
    fs.unlink(&r, ROOT_ID, n("f")).unwrap();
    fs.write(&r, f.node, o.fh, 0, b"still here", OpenFlags(libc::O_RDWR))
        .unwrap();
    assert_eq!(read(&fs, f.node, o.fh, 0, 64), b"still here");
    let a = fs.getattr(&r, f.node, Some(o.fh)).unwrap().attr;
    assert_eq!((a.size, a.nlink), (10, 0));
    fs.release(&r, f.node, o.fh, OpenFlags(0)).unwrap();
}

#[test]
fn many_threads_create_and_read_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = std::sync::Arc::new(
        HostDir::open(
            tmp.path(),
            HostDirOptions {
                fd_limit: 8,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let fs = std::sync::Arc::clone(&fs);
            std::thread::spawn(move || {
                let r = req();
                let d = fs
                    .mkdir(&r, ROOT_ID, OsStr::new(&format!("t{t}")), 0o755)
                    .unwrap();
                for i in 0..50 {
                    let name = format!("f{i}");
                    let (e, o) = fs
                        .create(
                            &r,
                            d.node,
                            OsStr::new(&name),
                            libc::S_IFREG | 0o644,
                            OpenFlags(libc::O_RDWR),
                        )
                        .unwrap();
                    fs.write(
                        &r,
                        e.node,
                        o.fh,
                        0,
                        name.as_bytes(),
                        OpenFlags(libc::O_RDWR),
                    )
                    .unwrap();
                    fs.release(&r, e.node, o.fh, OpenFlags(0)).unwrap();
                }
                for i in 0..50 {
                    let name = format!("f{i}");
                    let e = fs.lookup(&r, d.node, OsStr::new(&name)).unwrap().unwrap();
                    assert_eq!(read(&fs, e.node, FileHandle(0), 0, 64), name.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(fs.cached_fds() <= 8);
}
