//! The writable overlay through the trait: inode numbers across copy-up and remounts, hard
//! links to lower files, the fallbacks when the upper refuses device whiteouts, trusted
//! xattrs, owners or rename flags, and concurrent changes.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use squashbox_fixtures::prereq;
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_overlay::{Overlay, UpperLayer};
use squashbox_vfs::conformance::resolve;
use squashbox_vfs::{
    AttrOut, DirVisitor, Entry, Errno, FileHandle, FileType, Filesystem, NodeId, OpenFlags, Opened,
    ROOT_ID, ReadReply, RenameFlags, Request, Result, SetAttr, StatFs, XattrData,
};

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn req() -> Request {
    Request::root()
}

/// A lower tree `lower/` and an empty `up/{upper,work}`.
fn setup(t: &Path) -> Arc<dyn Filesystem> {
    common::put(&t.join("lower"), "f", b"lower data");
    common::put(&t.join("lower"), "d/g", b"g");
    common::put(&t.join("lower"), "d/h", b"h");
    common::dir(&t.join("up"), "upper");
    common::dir(&t.join("up"), "work");
    common::host_layer(&t.join("lower"))
}

fn overlay(t: &Path, upper: Arc<dyn Filesystem>) -> Overlay {
    let lower = common::host_layer(&t.join("lower"));
    let u = UpperLayer {
        fs: upper,
        upper: "upper".into(),
        work: "work".into(),
    };
    Overlay::new(vec![lower], Some(u)).unwrap()
}

fn host(t: &Path) -> Arc<dyn Filesystem> {
    Arc::new(HostDir::open(&t.join("up"), HostDirOptions::default()).unwrap())
}

fn read(fs: &dyn Filesystem, node: NodeId) -> Vec<u8> {
    let (reply, rx) = ReadReply::channel();
    fs.read(&req(), node, FileHandle(0), 0, 1 << 20, reply);
    rx.recv().unwrap().unwrap()
}

fn names(fs: &dyn Filesystem, node: NodeId) -> Vec<String> {
    let mut out = Vec::new();
    fs.readdir(&req(), node, FileHandle(0), 0, false, &mut |i, _| {
        if i.name != "." && i.name != ".." {
            out.push(i.name.to_string_lossy().into_owned());
        }
        true
    })
    .unwrap();
    out.sort();
    out
}

#[test]
fn inode_numbers_survive_copy_up_and_remount() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    let fs = overlay(t, host(t));
    let before = resolve(&fs, "f").attr.ino;
    let dir_before = resolve(&fs, "d").attr.ino;
    assert_eq!(before >> 48, 1, "a lower file carries the lower's tag");
    let f = resolve(&fs, "f").node;
    let set = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    let a = fs.setattr(&req(), f, &set).unwrap().attr;
    assert_eq!(
        (a.ino, a.perm),
        (before, 0o600),
        "same number after copy-up"
    );
    assert!(t.join("up/upper/f").exists() && !t.join("up/upper/d").exists());
    let d = resolve(&fs, "d").node;
    fs.create(
        &req(),
        d,
        n("new"),
        libc::S_IFREG | 0o644,
        OpenFlags(libc::O_WRONLY),
    )
    .unwrap();
    assert!(
        t.join("up/upper/d/new").exists(),
        "the parent was copied up"
    );
    assert_eq!(resolve(&fs, "d").attr.ino, dir_before);
    drop(fs);
    let again = overlay(t, host(t));
    assert_eq!(resolve(&again, "f").attr.ino, before, "after a remount");
    assert_eq!(resolve(&again, "d").attr.ino, dir_before);
    assert_eq!(read(&again, resolve(&again, "f").node), b"lower data");
    assert_eq!(names(&again, resolve(&again, "d").node), ["g", "h", "new"]);
    // Every listed d_ino is the st_ino lookup gives, copied-up objects included.
    let (tree, inos) = common::walk_fs(&again);
    assert_eq!(inos["/f"], before);
    assert_eq!(tree["/f"].perm, 0o600);
}

#[test]
fn hard_links_to_a_lower_file_copy_it_up_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    let fs = overlay(t, host(t));
    let f = resolve(&fs, "f");
    let l1 = fs.link(&req(), f.node, ROOT_ID, n("l1")).unwrap();
    let l2 = fs.link(&req(), f.node, ROOT_ID, n("l2")).unwrap();
    assert_eq!((l1.node, l2.node), (f.node, f.node), "one node");
    assert_eq!(l2.attr.nlink, 3);
    assert_eq!(fs.getattr(&req(), f.node, None).unwrap().attr.nlink, 3);
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(t.join("up/upper").join(p)).unwrap().ino();
    assert_eq!((ino("f"), ino("l1")), (ino("l2"), ino("l2")));
    fs.unlink(&req(), ROOT_ID, n("f")).unwrap();
    assert!(
        fs.lookup(&req(), ROOT_ID, n("f")).unwrap().is_none(),
        "whited out"
    );
    assert_eq!(read(&fs, resolve(&fs, "l1").node), b"lower data");
}

/// An upper that refuses what an unprivileged or limited upper refuses: device nodes,
/// trusted xattrs, changing owners, and the rename flags.
struct Refusing(HostDir);

impl Filesystem for Refusing {
    fn lookup(&self, r: &Request, p: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        self.0.lookup(r, p, name)
    }
    fn forget(&self, node: NodeId, k: u64) {
        self.0.forget(node, k)
    }
    fn getattr(&self, r: &Request, node: NodeId, fh: Option<FileHandle>) -> Result<AttrOut> {
        self.0.getattr(r, node, fh)
    }
    fn setattr(&self, r: &Request, node: NodeId, set: &SetAttr) -> Result<AttrOut> {
        if set.uid.is_some() || set.gid.is_some() {
            return Err(Errno::EPERM);
        }
        self.0.setattr(r, node, set)
    }
    fn readlink(&self, r: &Request, node: NodeId) -> Result<Vec<u8>> {
        self.0.readlink(r, node)
    }
    fn mknod(&self, r: &Request, p: NodeId, name: &OsStr, mode: u32, rdev: u32) -> Result<Entry> {
        if mode & libc::S_IFMT == libc::S_IFCHR {
            return Err(Errno::EPERM);
        }
        self.0.mknod(r, p, name, mode, rdev)
    }
    fn mkdir(&self, r: &Request, p: NodeId, name: &OsStr, mode: u32) -> Result<Entry> {
        self.0.mkdir(r, p, name, mode)
    }
    fn unlink(&self, r: &Request, p: NodeId, name: &OsStr) -> Result<()> {
        self.0.unlink(r, p, name)
    }
    fn rmdir(&self, r: &Request, p: NodeId, name: &OsStr) -> Result<()> {
        self.0.rmdir(r, p, name)
    }
    fn symlink(&self, r: &Request, p: NodeId, name: &OsStr, target: &OsStr) -> Result<Entry> {
        self.0.symlink(r, p, name, target)
    }
    fn rename(
        &self,
        r: &Request,
        p: NodeId,
        name: &OsStr,
        np: NodeId,
        nn: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        if flags.0 != 0 {
            return Err(Errno::EINVAL);
        }
        self.0.rename(r, p, name, np, nn, flags)
    }
    fn link(&self, r: &Request, node: NodeId, np: NodeId, nn: &OsStr) -> Result<Entry> {
        self.0.link(r, node, np, nn)
    }
    fn open(&self, r: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        self.0.open(r, node, flags)
    }
    fn create(
        &self,
        r: &Request,
        p: NodeId,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        self.0.create(r, p, name, mode, flags)
    }
    fn read(
        &self,
        r: &Request,
        node: NodeId,
        fh: FileHandle,
        off: u64,
        size: u32,
        reply: ReadReply,
    ) {
        self.0.read(r, node, fh, off, size, reply)
    }
    fn write(
        &self,
        r: &Request,
        node: NodeId,
        fh: FileHandle,
        off: u64,
        data: &[u8],
        flags: OpenFlags,
    ) -> Result<u32> {
        self.0.write(r, node, fh, off, data, flags)
    }
    fn release(&self, r: &Request, node: NodeId, fh: FileHandle, flags: OpenFlags) -> Result<()> {
        self.0.release(r, node, fh, flags)
    }
    fn opendir(&self, r: &Request, node: NodeId, flags: OpenFlags) -> Result<Opened> {
        self.0.opendir(r, node, flags)
    }
    fn readdir(
        &self,
        r: &Request,
        node: NodeId,
        fh: FileHandle,
        off: u64,
        plus: bool,
        visit: &mut DirVisitor<'_>,
    ) -> Result<()> {
        self.0.readdir(r, node, fh, off, plus, visit)
    }
    fn releasedir(&self, r: &Request, node: NodeId, fh: FileHandle) -> Result<()> {
        self.0.releasedir(r, node, fh)
    }
    fn statfs(&self, r: &Request, node: NodeId) -> Result<StatFs> {
        self.0.statfs(r, node)
    }
    fn setxattr(&self, r: &Request, node: NodeId, name: &OsStr, v: &[u8], f: i32) -> Result<()> {
        if name.to_string_lossy().starts_with("trusted.") {
            return Err(Errno::EPERM);
        }
        self.0.setxattr(r, node, name, v, f)
    }
    fn getxattr(&self, r: &Request, node: NodeId, name: &OsStr, size: u32) -> Result<XattrData> {
        self.0.getxattr(r, node, name, size)
    }
    fn listxattr(&self, r: &Request, node: NodeId, size: u32) -> Result<XattrData> {
        self.0.listxattr(r, node, size)
    }
    fn removexattr(&self, r: &Request, node: NodeId, name: &OsStr) -> Result<()> {
        self.0.removexattr(r, node, name)
    }
}

#[test]
fn a_limited_upper_gets_whiteout_files_and_user_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    if !prereq::require_user_xattrs(t) {
        return;
    }
    let limited = Arc::new(Refusing(
        HostDir::open(&t.join("up"), HostDirOptions::default()).unwrap(),
    ));
    let fs = overlay(t, limited);
    fs.unlink(&req(), ROOT_ID, n("f")).unwrap();
    assert!(t.join("up/upper/.wh.f").is_file(), "the fallback whiteout");
    assert!(fs.lookup(&req(), ROOT_ID, n("f")).unwrap().is_none());
    assert!(fs.lookup(&req(), ROOT_ID, n(".wh.f")).unwrap().is_none());
    let d = resolve(&fs, "d").node;
    fs.unlink(&req(), d, n("g")).unwrap();
    fs.unlink(&req(), d, n("h")).unwrap();
    assert_eq!(names(&fs, d), Vec::<String>::new());
    fs.rmdir(&req(), ROOT_ID, n("d")).unwrap();
    assert!(t.join("up/upper/.wh.d").is_file());
    let nd = fs.mkdir(&req(), ROOT_ID, n("d"), 0o755).unwrap();
    assert_eq!(
        names(&fs, nd.node),
        Vec::<String>::new(),
        "opaque over the old d"
    );
    let opaque = xattr(&t.join("up/upper/d"), "user.overlay.opaque");
    assert_eq!(
        opaque.as_deref(),
        Some(&b"y"[..]),
        "written as user.overlay.opaque"
    );
    assert!(!t.join("up/upper/.wh.d").exists(), "the whiteout file went");
    // Creating over a whiteout file, renaming a copied-up file away from a lower name.
    let (e, o) = fs
        .create(
            &req(),
            ROOT_ID,
            n("f"),
            libc::S_IFREG | 0o644,
            OpenFlags(libc::O_RDWR),
        )
        .unwrap();
    fs.write(&req(), e.node, o.fh, 0, b"again", OpenFlags(libc::O_RDWR))
        .unwrap();
    fs.release(&req(), e.node, o.fh, OpenFlags(0)).unwrap();
    assert!(!t.join("up/upper/.wh.f").exists());
    fs.rename(&req(), ROOT_ID, n("f"), nd.node, n("moved"), RenameFlags(0))
        .unwrap();
    assert!(
        fs.lookup(&req(), ROOT_ID, n("f")).unwrap().is_none(),
        "the lower f stays hidden"
    );
    assert!(t.join("up/upper/.wh.f").is_file());
    assert_eq!(read(&fs, resolve(&fs, "d/moved").node), b"again");
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let nm = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: the strings are NUL-terminated; `buf` is writable for its length.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), nm.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

#[test]
fn an_owner_the_upper_cannot_set_stays_the_uppers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    if prereq::require_root("a lower file owned by another user") {
        squashbox_fixtures::sys::lchown(&t.join("lower/f"), 4321, 4321).unwrap();
    } else {
        return;
    }
    let limited = Arc::new(Refusing(
        HostDir::open(&t.join("up"), HostDirOptions::default()).unwrap(),
    ));
    let fs = overlay(t, limited);
    let f = resolve(&fs, "f").node;
    let set = SetAttr {
        mode: Some(0o640),
        ..Default::default()
    };
    let a = fs.setattr(&req(), f, &set).unwrap().attr;
    assert_eq!(a.perm, 0o640);
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(t.join("up/upper/f")).unwrap();
    assert_eq!(
        md.uid(),
        a.uid,
        "what the overlay shows is the upper's owner"
    );
    assert_eq!(read(&fs, f), b"lower data");
}

#[test]
fn concurrent_changes_in_one_merged_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    for i in 0..40 {
        common::put(
            &t.join("lower"),
            &format!("m/l{i}"),
            format!("l{i}").as_bytes(),
        );
    }
    let fs = Arc::new(overlay(t, host(t)));
    let m = resolve(&*fs, "m").node;
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let fs = Arc::clone(&fs);
            std::thread::spawn(move || {
                for i in (k..40).step_by(4) {
                    let lower = format!("l{i}");
                    let e = fs.lookup(&req(), m, OsStr::new(&lower)).unwrap().unwrap();
                    let set = SetAttr {
                        mode: Some(0o600),
                        ..Default::default()
                    };
                    fs.setattr(&req(), e.node, &set).unwrap();
                    let new = format!("n{i}");
                    fs.create(
                        &req(),
                        m,
                        OsStr::new(&new),
                        libc::S_IFREG | 0o644,
                        OpenFlags(libc::O_WRONLY),
                    )
                    .unwrap();
                    if i % 2 == 0 {
                        fs.unlink(&req(), m, OsStr::new(&lower)).unwrap();
                    }
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let listed = names(&*fs, m);
    assert_eq!(listed.len(), 40 + 20);
    for i in 0..40 {
        assert!(listed.contains(&format!("n{i}")));
        assert_eq!(listed.contains(&format!("l{i}")), i % 2 == 1);
    }
    let e = resolve(&*fs, "m/l1");
    assert_eq!((e.attr.kind, e.attr.perm), (FileType::RegularFile, 0o600));
}

#[test]
fn leftovers_in_the_work_directory_are_cleared_at_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    common::put(&t.join("up/work"), "#squashbox-1-1", b"half a copy-up");
    common::put(
        &t.join("up/work"),
        "#squashbox-1-2/inner",
        b"half a directory",
    );
    common::put(&t.join("up/work"), "not-ours", b"kept");
    let fs = overlay(t, host(t));
    let mut left: Vec<String> = std::fs::read_dir(t.join("up/work"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["#squashbox-1-2", "not-ours"],
        "a non-empty leftover directory stays"
    );
    assert!(fs.faults().emitted() >= 1, "and is reported");
}

#[test]
fn a_removed_lower_file_is_not_brought_back_by_a_late_copy_up() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    let fs = overlay(t, host(t));
    let f = resolve(&fs, "f").node;
    fs.unlink(&req(), ROOT_ID, n("f")).unwrap();
    let late = fs.open(&req(), f, OpenFlags(libc::O_WRONLY));
    assert_eq!(late.err(), Some(Errno::ESTALE));
    let chmod = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(fs.setattr(&req(), f, &chmod).err(), Some(Errno::ESTALE));
    assert!(
        fs.lookup(&req(), ROOT_ID, n("f")).unwrap().is_none(),
        "still removed"
    );
    assert_eq!(names(&fs, ROOT_ID), ["d"]);
}

#[test]
fn an_open_made_before_copy_up_reads_the_new_data() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    let fs = overlay(t, host(t));
    let f = resolve(&fs, "f").node;
    let ro = fs.open(&req(), f, OpenFlags(libc::O_RDONLY)).unwrap();
    let get = |fh: FileHandle| {
        let (reply, rx) = ReadReply::channel();
        fs.read(&req(), f, fh, 0, 64, reply);
        rx.recv().unwrap().unwrap()
    };
    assert_eq!(get(ro.fh), b"lower data");
    let wo = fs.open(&req(), f, OpenFlags(libc::O_WRONLY)).unwrap();
    fs.write(&req(), f, wo.fh, 0, b"UPPER", OpenFlags(libc::O_WRONLY))
        .unwrap();
    assert_eq!(
        get(ro.fh),
        b"UPPER data",
        "the earlier open follows the copy-up"
    );
    fs.write(&req(), f, wo.fh, 10, b"+more", OpenFlags(libc::O_WRONLY))
        .unwrap();
    let a = fs.getattr(&req(), f, Some(ro.fh)).unwrap().attr;
    assert_eq!((a.size, a.ino), (15, resolve(&fs, "f").attr.ino));
    fs.release(&req(), f, wo.fh, OpenFlags(libc::O_WRONLY))
        .unwrap();
    fs.release(&req(), f, ro.fh, OpenFlags(libc::O_RDONLY))
        .unwrap();
    assert_eq!(
        std::fs::read(t.join("lower/f")).unwrap(),
        b"lower data",
        "the lower is untouched"
    );
}
