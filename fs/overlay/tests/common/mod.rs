//! Shared test helpers: building layer trees, packing them, and walking a tree through the
//! trait or through the kernel into one comparable description.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_squashfs::{FsOptions, Image, SquashFs};
use squashbox_vfs::{
    FileHandle, FileType, Filesystem, NodeId, ROOT_ID, ReadReply, Request, XattrData,
};

/// What one path looks like, as compared between implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    pub kind: &'static str,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    pub rdev: u64,
    pub mtime: i64,
    pub content: Vec<u8>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A tree: path -> description, plus each path's inode number (kept apart: the kernel's
/// numbers are not ours).
pub type Tree = BTreeMap<String, Desc>;

fn kind_name(k: FileType) -> &'static str {
    match k {
        FileType::Directory => "dir",
        FileType::RegularFile => "file",
        FileType::Symlink => "symlink",
        FileType::BlockDevice => "blockdev",
        FileType::CharDevice => "chardev",
        FileType::NamedPipe => "fifo",
        FileType::Socket => "socket",
    }
}

fn read_all(fs: &dyn Filesystem, node: NodeId, size: u64) -> Vec<u8> {
    let (reply, rx) = ReadReply::channel();
    fs.read(
        &Request::root(),
        node,
        FileHandle(0),
        0,
        size as u32 + 1,
        reply,
    );
    rx.recv().unwrap().unwrap()
}

fn xattrs_of(fs: &dyn Filesystem, node: NodeId) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = Request::root();
    let list = match fs.listxattr(&r, node, 65536) {
        Ok(XattrData::Data(d)) => d,
        _ => return Vec::new(),
    };
    let mut out: Vec<_> = list
        .split(|&b| b == 0)
        .filter(|n| n.starts_with(b"user."))
        .map(|n| {
            let v = match fs.getxattr(&r, node, OsStr::from_bytes(n), 65536) {
                Ok(XattrData::Data(v)) => v,
                other => panic!("getxattr {:?}: {other:?}", String::from_utf8_lossy(n)),
            };
            (n.to_vec(), v)
        })
        .collect();
    out.sort();
    out
}

/// Walk `fs` from the root; also returns each path's `st_ino`.
pub fn walk_fs(fs: &dyn Filesystem) -> (Tree, BTreeMap<String, u64>) {
    let mut tree = Tree::new();
    let mut inos = BTreeMap::new();
    let root = fs.getattr(&Request::root(), ROOT_ID, None).unwrap().attr;
    tree.insert("/".into(), desc_attr(fs, ROOT_ID, &root));
    walk_dir(fs, ROOT_ID, "", &mut tree, &mut inos);
    (tree, inos)
}

fn desc_attr(fs: &dyn Filesystem, node: NodeId, a: &squashbox_vfs::Attr) -> Desc {
    let r = Request::root();
    let content = match a.kind {
        FileType::RegularFile => read_all(fs, node, a.size),
        FileType::Symlink => fs.readlink(&r, node).unwrap(),
        _ => Vec::new(),
    };
    Desc {
        kind: kind_name(a.kind),
        perm: u32::from(a.perm),
        uid: a.uid,
        gid: a.gid,
        size: if a.kind == FileType::Directory {
            0
        } else {
            a.size
        },
        nlink: a.nlink,
        rdev: u64::from(a.rdev),
        mtime: a.mtime.secs,
        content,
        xattrs: xattrs_of(fs, node),
    }
}

fn walk_dir(
    fs: &dyn Filesystem,
    node: NodeId,
    prefix: &str,
    tree: &mut Tree,
    inos: &mut BTreeMap<String, u64>,
) {
    let r = Request::root();
    let mut names = Vec::new();
    fs.readdir(&r, node, FileHandle(0), 0, false, &mut |item, _| {
        if item.name != "." && item.name != ".." {
            names.push((item.name.to_os_string(), item.ino));
        }
        true
    })
    .unwrap();
    for (name, d_ino) in names {
        let path = format!("{prefix}/{}", name.to_string_lossy());
        let e = fs
            .lookup(&r, node, &name)
            .unwrap()
            .unwrap_or_else(|| panic!("{path} listed but not found"));
        assert_eq!(e.attr.ino, d_ino, "{path}: d_ino and st_ino differ");
        let a = fs.getattr(&r, e.node, None).unwrap().attr;
        assert_eq!(a, e.attr, "{path}: getattr differs from lookup");
        tree.insert(path.clone(), desc_attr(fs, e.node, &a));
        inos.insert(path.clone(), a.ino);
        if a.kind == FileType::Directory {
            walk_dir(fs, e.node, &path, tree, inos);
        }
    }
}

fn lxattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: `c` is NUL-terminated; `buf` is writable for its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf.truncate(n as usize);
    let mut out: Vec<_> = buf
        .split(|&b| b == 0)
        .filter(|n| n.starts_with(b"user."))
        .map(|name| {
            let cn = CString::new(name).unwrap();
            let mut v = vec![0u8; 65536];
            // SAFETY: both strings are NUL-terminated; `v` is writable for its length.
            let len =
                unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
            assert!(len >= 0, "lgetxattr {}", path.display());
            v.truncate(len as usize);
            (name.to_vec(), v)
        })
        .collect();
    out.sort();
    out
}

fn desc_path(path: &Path) -> Desc {
    let md = std::fs::symlink_metadata(path).unwrap();
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_block_device() {
        "blockdev"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let content = match kind {
        "file" => std::fs::read(path).unwrap(),
        "symlink" => std::fs::read_link(path)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec(),
        _ => Vec::new(),
    };
    let rdev = if kind == "chardev" || kind == "blockdev" {
        let (maj, min) = (libc::major(md.rdev()), libc::minor(md.rdev()));
        u64::from((min & 0xff) | (maj << 8) | ((min & !0xff) << 12))
    } else {
        0
    };
    Desc {
        kind,
        perm: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if kind == "dir" { 0 } else { md.len() },
        nlink: md.nlink() as u32,
        rdev,
        mtime: md.mtime(),
        content,
        xattrs: lxattrs(path),
    }
}

/// Walk a mounted tree through the kernel.
pub fn walk_path(root: &Path) -> Tree {
    let mut tree = Tree::new();
    tree.insert("/".into(), desc_path(root));
    fn rec(dir: &Path, prefix: &str, tree: &mut Tree) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = format!("{prefix}/{}", e.file_name().to_string_lossy());
            let d = desc_path(&e.path());
            let is_dir = d.kind == "dir";
            tree.insert(path.clone(), d);
            if is_dir {
                rec(&e.path(), &path, tree);
            }
        }
    }
    rec(root, "", &mut tree);
    tree
}

/// Panic with the first differences between two trees.
pub fn assert_same(what: &str, ours: &Tree, theirs: &Tree) {
    let mut diffs = Vec::new();
    for (p, d) in theirs {
        match ours.get(p) {
            None => diffs.push(format!("missing in ours: {p}")),
            Some(o) if o != d => diffs.push(format!("{p}:\n  ours   {o:?}\n  theirs {d:?}")),
            _ => {}
        }
    }
    for p in ours.keys() {
        if !theirs.contains_key(p) {
            diffs.push(format!("extra in ours: {p}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(15)].join("\n")
    );
}

/// A host directory as a lower layer.
pub fn host_layer(dir: &Path) -> Arc<dyn Filesystem> {
    Arc::new(
        HostDir::open(
            dir,
            HostDirOptions {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

/// Pack `dir` with mksquashfs (xattrs kept) and serve it as a lower layer.
pub fn squash_layer(dir: &Path, img: &Path) -> Arc<dyn Filesystem> {
    let out = Command::new("mksquashfs")
        .arg(dir)
        .arg(img)
        .args(["-noappend", "-quiet", "-no-progress", "-xattrs"])
        .output()
        .expect("running mksquashfs");
    assert!(
        out.status.success(),
        "mksquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = Arc::new(Image::open(img, &Default::default()).unwrap());
    Arc::new(SquashFs::new(image, &img.display().to_string(), FsOptions::default()).unwrap())
}

/// Run a command, panicking with its output on failure.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mount that is undone when dropped.
pub struct Mounted(pub std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Write `data` at `root/rel`, making parents.
pub fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Make directory `root/rel` and parents.
pub fn dir(root: &Path, rel: &str) {
    std::fs::create_dir_all(root.join(rel)).unwrap();
}

/// A whiteout (character device 0/0) at `root/rel`.
pub fn whiteout(root: &Path, rel: &str) {
    squashbox_fixtures::sys::mknod(&root.join(rel), libc::S_IFCHR, 0, 0).unwrap();
}

/// Three layers (top first) using only what the kernel's overlay also honours: 0/0
/// whiteouts and `trusted.overlay.opaque` (root only), merged and shadowing directories,
/// files, symlinks, hard links, a FIFO, a device and user xattrs.
pub fn kernel_layers(base: &Path) -> [std::path::PathBuf; 3] {
    let [a, b, c] = ["a", "b", "c"].map(|n| base.join(n));
    // bottom
    put(&c, "c_only", b"c");
    put(&c, "shared", b"from C");
    put(&c, "dir1/x", b"x from C");
    put(&c, "dir1/y", b"y from C");
    put(&c, "dir1/sub/deep", b"deep");
    put(&c, "gone", b"whited out by A");
    put(&c, "opq/hidden1", b"h1");
    put(&c, "opq/sub/hidden2", b"h2");
    put(&c, "nondir_over/child", b"under a file");
    put(&c, "dir_over", b"a file under a dir");
    put(&c, "hard1", b"linked");
    std::fs::hard_link(c.join("hard1"), c.join("hard2")).unwrap();
    std::os::unix::fs::symlink("c_only", c.join("link_c")).unwrap();
    squashbox_fixtures::sys::mknod(&c.join("fifo"), libc::S_IFIFO | 0o644, 0, 0).unwrap();
    squashbox_fixtures::sys::mknod(&c.join("null"), libc::S_IFCHR | 0o666, 1, 3).unwrap();
    squashbox_fixtures::sys::lsetxattr(&c.join("c_only"), "user.color", b"blue").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    put(&c, "dir1/big", &big);
    // middle
    put(&b, "shared", b"from B");
    put(&b, "dir1/y", b"y from B");
    put(&b, "dir1/z", b"z from B");
    put(&b, "b_only", b"b");
    whiteout(&b, "dir1/x");
    dir(&b, "dir1/sub");
    squashbox_fixtures::sys::lsetxattr(&b.join("b_only"), "user.layer", b"B").unwrap();
    // top
    put(&a, "shared", b"from A");
    put(&a, "opq/mine", b"mine");
    squashbox_fixtures::sys::lsetxattr(&a.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
    whiteout(&a, "gone");
    put(&a, "nondir_over", b"a file over a dir");
    put(&a, "dir_over/inner", b"a dir over a file");
    put(&a, "a_only", b"a");
    put(&a, "dir1/w", b"w from A");
    put(&a, "deep/er/est", b"only in A");
    for i in 0..150 {
        put(&a, &format!("many/f{i:03}"), &[i as u8]);
        put(&c, &format!("many/f{:03}", i + 150), &[i as u8]);
    }
    put(&b, "many/f000", b"shadowed by A");
    [a, b, c]
}
