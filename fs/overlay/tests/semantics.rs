//! Overlay conventions beyond the kernel's (fuse-overlayfs's `.wh.NAME` whiteouts,
//! `.wh..wh..opq`, the `user.*` opaque xattrs), hidden private xattrs, statfs, and layers
//! that implement only the minimum (no ENOSYS may leak).

mod common;

use std::ffi::OsStr;
use std::sync::Arc;

use squashbox_fixtures::prereq;
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::Overlay;
use squashbox_vfs::conformance::resolve;
use squashbox_vfs::{
    AttrOut, DirVisitor, Entry, Errno, FileHandle, Filesystem, NodeId, OpenFlags, ROOT_ID,
    ReadReply, Request, Result, Whence, XattrData,
};

fn names(fs: &dyn Filesystem, dir: &str) -> Vec<String> {
    let node = if dir.is_empty() {
        ROOT_ID
    } else {
        resolve(fs, dir).node
    };
    let mut out = Vec::new();
    fs.readdir(
        &Request::root(),
        node,
        FileHandle(0),
        0,
        false,
        &mut |i, _| {
            if i.name != "." && i.name != ".." {
                out.push(i.name.to_string_lossy().into_owned());
            }
            true
        },
    )
    .unwrap();
    out.sort();
    out
}

fn exists(fs: &dyn Filesystem, dir: &str, name: &str) -> bool {
    let node = if dir.is_empty() {
        ROOT_ID
    } else {
        resolve(fs, dir).node
    };
    fs.lookup(&Request::root(), node, OsStr::new(name))
        .unwrap()
        .is_some()
}

#[test]
fn whiteout_files_opaque_markers_and_user_xattrs_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    if !prereq::require_user_xattrs(tmp.path()) {
        return;
    }
    common::put(&c, "f1", b"1");
    common::put(&c, "f2", b"2");
    common::put(&c, "d1/old", b"old");
    common::put(&c, "d2/old", b"old");
    common::put(&c, "d3/old", b"old");
    common::put(&c, "d4/old", b"old");
    common::put(&b, ".wh.f1", b"");
    common::put(&b, "d1/.wh..wh..opq", b"");
    common::put(&b, "d1/new", b"new");
    common::put(&b, "d2/new", b"new");
    common::put(&b, "d3/new", b"new");
    common::put(&b, "d4/.wh.old", b"");
    common::put(&b, "d4/kept", b"kept");
    common::put(&a, "f2", b"top");
    common::put(&a, ".wh.d3", b"");
    common::put(&a, "d2/top", b"top");
    squashbox_fixtures::sys::lsetxattr(&b.join("d2"), "user.overlay.opaque", b"y").unwrap();
    squashbox_fixtures::sys::lsetxattr(&b.join("d4"), "user.fuseoverlayfs.opaque", b"n").unwrap();
    squashbox_fixtures::sys::lsetxattr(&a.join("f2"), "user.fuseoverlayfs.origin", b"x").unwrap();
    squashbox_fixtures::sys::lsetxattr(&a.join("f2"), "user.overlay.x", b"x").unwrap();
    squashbox_fixtures::sys::lsetxattr(&a.join("f2"), "user.visible", b"v").unwrap();
    let fs = Overlay::new(
        vec![
            common::host_layer(&a),
            common::host_layer(&b),
            common::host_layer(&c),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        names(&fs, ""),
        ["d1", "d2", "d4", "f2"],
        ".wh. files hide, and are hidden"
    );
    assert!(!exists(&fs, "", "f1") && !exists(&fs, "", "d3"));
    assert!(!exists(&fs, "", ".wh.f1"), "whiteout names are never shown");
    assert_eq!(names(&fs, "d1"), ["new"], ".wh..wh..opq makes d1 opaque");
    assert!(!exists(&fs, "d1", "old") && !exists(&fs, "d1", ".wh..wh..opq"));
    assert_eq!(names(&fs, "d2"), ["new", "top"], "user.overlay.opaque=y");
    assert_eq!(
        names(&fs, "d4"),
        ["kept"],
        "an opaque value other than y is not opaque"
    );
    let f2 = resolve(&fs, "f2").node;
    let r = Request::root();
    let XattrData::Data(list) = fs.listxattr(&r, f2, 4096).unwrap() else {
        panic!("a list");
    };
    let listed: Vec<&[u8]> = list.split(|&b| b == 0).filter(|n| !n.is_empty()).collect();
    assert_eq!(
        listed,
        [&b"user.visible"[..]],
        "private namespaces are hidden"
    );
    for hidden in [
        "user.fuseoverlayfs.origin",
        "user.overlay.x",
        "trusted.overlay.opaque",
    ] {
        assert_eq!(
            fs.getxattr(&r, f2, OsStr::new(hidden), 64),
            Err(Errno::ENODATA)
        );
    }
    assert_eq!(fs.listxattr(&r, f2, 0), Ok(XattrData::Size(13)));
    let top = HostDir::open(&a, HostDirOptions::default()).unwrap();
    assert_eq!(
        fs.statfs(&r, ROOT_ID),
        top.statfs(&r, ROOT_ID),
        "statfs is the top layer's"
    );
}

/// A layer that implements only lookup, getattr, readdir and read: every other call is the
/// trait's ENOSYS default.
struct Minimal(HostDir);

impl Filesystem for Minimal {
    fn lookup(&self, req: &Request, parent: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        self.0.lookup(req, parent, name)
    }
    fn forget(&self, node: NodeId, n: u64) {
        self.0.forget(node, n)
    }
    fn getattr(&self, req: &Request, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut> {
        self.0.getattr(req, node, fh)
    }
    fn readdir(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        self.0.readdir(req, node, fh, offset, plus, visit)
    }
    fn read(
        &self,
        req: &Request,
        node: NodeId,
        fh: FileHandle,
        off: u64,
        size: u32,
        reply: ReadReply,
    ) {
        self.0.read(req, node, fh, off, size, reply)
    }
}

#[test]
fn a_layers_enosys_never_reaches_the_caller() {
    let tmp = tempfile::tempdir().unwrap();
    common::put(tmp.path(), "f", b"data");
    let layer = Minimal(HostDir::open(tmp.path(), HostDirOptions::default()).unwrap());
    let fs = Overlay::new(vec![Arc::new(layer)], None).unwrap();
    let r = Request::root();
    let f = resolve(&fs, "f").node;
    let o = fs.open(&r, f, OpenFlags(libc::O_RDONLY)).unwrap();
    let (reply, rx) = ReadReply::channel();
    fs.read(&r, f, o.fh, 0, 100, reply);
    assert_eq!(rx.recv().unwrap().unwrap(), b"data");
    let od = fs.opendir(&r, ROOT_ID, OpenFlags(0)).unwrap();
    let checks: Vec<(&str, Option<Errno>)> = vec![
        (
            "getxattr",
            fs.getxattr(&r, f, OsStr::new("user.x"), 10).err(),
        ),
        ("listxattr", fs.listxattr(&r, f, 0).err()),
        ("statfs", fs.statfs(&r, ROOT_ID).err()),
        ("access", fs.access(&r, f, libc::R_OK).err()),
        ("readlink", fs.readlink(&r, f).err()),
        ("lseek", fs.lseek(&r, f, o.fh, 0, Whence::Hole).err()),
        ("fsync", fs.fsync(&r, f, o.fh, false).err()),
        ("fsyncdir", fs.fsyncdir(&r, ROOT_ID, od.fh, false).err()),
        ("release", fs.release(&r, f, o.fh, OpenFlags(0)).err()),
        ("releasedir", fs.releasedir(&r, ROOT_ID, od.fh).err()),
    ];
    for (op, e) in checks {
        assert_ne!(e, Some(Errno::ENOSYS), "{op} passed the layer's ENOSYS up");
    }
    // A read-only overlay declines FLUSH itself (nothing is ever written back), so that the
    // kernel stops sending it for the mount: its own answer, not the layer's.
    assert_eq!(fs.flush(&r, f, o.fh, 0), Err(Errno::ENOSYS));
    assert_eq!(fs.lseek(&r, f, FileHandle(0), 1, Whence::Data), Ok(1));
    assert_eq!(fs.lseek(&r, f, FileHandle(0), 0, Whence::Hole), Ok(4));
    assert_eq!(
        fs.getxattr(&r, f, OsStr::new("user.x"), 10),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(fs.listxattr(&r, f, 0), Ok(XattrData::Size(0)));
}

#[test]
fn many_threads_look_up_list_and_read_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for i in 0..40 {
        common::put(&a, &format!("d/a{i}"), format!("a{i}").as_bytes());
        common::put(&b, &format!("d/b{i}"), format!("b{i}").as_bytes());
    }
    let fs =
        Arc::new(Overlay::new(vec![common::host_layer(&a), common::host_layer(&b)], None).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let fs = Arc::clone(&fs);
            std::thread::spawn(move || {
                for _ in 0..5 {
                    assert_eq!(names(&*fs, "d").len(), 80);
                    let d = resolve(&*fs, "d").node;
                    for i in 0..40 {
                        for name in [format!("a{i}"), format!("b{i}")] {
                            let e = fs
                                .lookup(&Request::root(), d, OsStr::new(&name))
                                .unwrap()
                                .unwrap();
                            let (reply, rx) = ReadReply::channel();
                            fs.read(&Request::root(), e.node, FileHandle(0), 0, 64, reply);
                            assert_eq!(rx.recv().unwrap().unwrap(), name.as_bytes());
                            fs.forget(e.node, 1);
                        }
                    }
                    fs.forget(d, 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
