//! Shared test helpers: an ext3-shaped source tree, images made from it with `mkfs.ext3 -d`
//! / `mkfs.ext4 -d` (+ `e2fsck -fyD` to index the big directory), a walk of an [`Ext3Fs`]
//! through the trait, and the kernel's loop mount as an oracle.
#![allow(dead_code)]

pub mod tree;
pub mod writer;

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use squashbox_ext3::Ext3Fs;
use squashbox_fixtures::prereq;
use squashbox_vfs::{Attr, Entry, FileHandle, FileType, Filesystem, ROOT_ID, ReadReply, Request};

/// Run `cmd`, panicking with its output when it fails (exit codes in `ok` are success).
pub fn run(cmd: &mut Command, ok: &[i32]) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let code = out.status.code().unwrap_or(-1);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ok.contains(&code), "{cmd:?} exited {code}: {text}");
    text
}

/// Make `img` of `size` (e.g. "64M") from `src` with `mkfs.<kind> -d`, then index its
/// directories with `e2fsck -fyD`. `None` after a counted skip when e2fsprogs is missing.
pub fn make_image(kind: &str, src: &Path, img: &Path, size: &str, extra: &[&str]) -> Option<()> {
    let mkfs = format!("mkfs.{kind}");
    if !prereq::require_tools(&[&mkfs, "e2fsck", "debugfs"]) {
        return None;
    }
    run(
        Command::new(&mkfs)
            .args(["-q", "-F", "-E", "root_owner=0:0"])
            .args(extra)
            .arg("-d")
            .arg(src)
            .arg(img)
            .arg(size),
        &[0],
    );
    // -D rebuilds (and indexes) directories; exit 1 = "fixed", which is what -D does.
    run(Command::new("e2fsck").arg("-fyD").arg(img), &[0, 1]);
    run(Command::new("e2fsck").arg("-fn").arg(img), &[0]);
    Some(())
}

/// Open `img` with the driver (read-only), panicking on failure.
pub fn open(img: &Path) -> Ext3Fs {
    Ext3Fs::open(img, 0, true).unwrap_or_else(|e| panic!("opening {}: {e}", img.display()))
}

/// A request from root.
pub fn req() -> Request {
    Request::root()
}

/// Look a relative path up through the trait.
pub fn resolve(fs: &dyn Filesystem, path: &Path) -> Entry {
    squashbox_vfs::conformance::resolve(fs, &path.to_string_lossy())
}

/// The whole content of `node` (of `size` bytes) read through the trait in 128 KiB pieces.
pub fn read_all(fs: &dyn Filesystem, node: u64, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size as usize);
    let mut off = 0u64;
    loop {
        let (reply, rx) = ReadReply::channel();
        fs.read(&req(), node, FileHandle(0), off, 128 << 10, reply);
        let piece = rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("read at {off}: {e:?}"));
        if piece.is_empty() {
            break;
        }
        off += piece.len() as u64;
        out.extend_from_slice(&piece);
    }
    out
}

/// One directory entry as readdir gave it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    /// Name.
    pub name: Vec<u8>,
    /// d_ino.
    pub ino: u64,
    /// d_type as an `S_IFMT` value.
    pub kind: u32,
}

/// The full listing of directory `node` (without "." and ".."), sorted by name.
pub fn list(fs: &dyn Filesystem, node: u64) -> Vec<Listed> {
    let mut out = Vec::new();
    fs.readdir(&req(), node, FileHandle(0), 0, false, &mut |item, _| {
        if item.name != "." && item.name != ".." {
            out.push(Listed {
                name: item.name.as_bytes().to_vec(),
                ino: item.ino,
                kind: item.kind.mode_bits(),
            });
        }
        true
    })
    .unwrap_or_else(|e| panic!("readdir of node {node}: {e:?}"));
    out.sort();
    out
}

/// Every xattr (name, value) of `node`, sorted by name.
pub fn xattrs(fs: &dyn Filesystem, node: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    use squashbox_vfs::XattrData;
    let Ok(XattrData::Size(n)) = fs.listxattr(&req(), node, 0) else {
        panic!("listxattr size probe of node {node}");
    };
    if n == 0 {
        return Vec::new();
    }
    let Ok(XattrData::Data(list)) = fs.listxattr(&req(), node, n) else {
        panic!("listxattr of node {node}");
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = list
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|name| {
            let v = match fs.getxattr(&req(), node, OsStr::from_bytes(name), 1 << 16) {
                Ok(XattrData::Data(v)) => v,
                other => panic!("getxattr {:?}: {other:?}", String::from_utf8_lossy(name)),
            };
            (name.to_vec(), v)
        })
        .collect();
    out.sort();
    out
}

/// The root's attributes.
pub fn root_attr(fs: &dyn Filesystem) -> Attr {
    fs.getattr(&req(), ROOT_ID, None).unwrap().attr
}

/// Whether `kind` is a regular file.
pub fn is_file(kind: FileType) -> bool {
    kind == FileType::RegularFile
}

/// Host-side `llistxattr` + `lgetxattr`: every xattr of `path`, sorted by name.
pub fn host_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: `c` is NUL-terminated; the buffer pointer and length describe a live Vec.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(
        n >= 0,
        "llistxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    let names: Vec<Vec<u8>> = buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut out = Vec::new();
    for name in names {
        let cn = CString::new(name.clone()).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: both strings are NUL-terminated; the value buffer is a live Vec.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        assert!(
            m >= 0,
            "lgetxattr {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        v.truncate(m as usize);
        out.push((name, v));
    }
    out.sort();
    out
}

/// A read-only loop mount of an image, unmounted on drop.
pub struct Mount {
    /// The mountpoint.
    pub dir: PathBuf,
}

impl Mount {
    /// Mount `img` read-only as `fstype` at `dir`; panics when the kernel refuses (root).
    pub fn new(img: &Path, fstype: &str, dir: &Path) -> Mount {
        Mount::with_options(img, fstype, dir, "ro,loop")
    }

    /// Mount `img` as `fstype` at `dir` with mount options `opts`.
    pub fn with_options(img: &Path, fstype: &str, dir: &Path, opts: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        run(
            Command::new("mount")
                .args(["-t", fstype, "-o", opts])
                .arg(img)
                .arg(dir),
            &[0],
        );
        Mount {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn dtype(ft: fs::FileType) -> u32 {
    if ft.is_dir() {
        libc::S_IFDIR
    } else if ft.is_symlink() {
        libc::S_IFLNK
    } else if ft.is_file() {
        libc::S_IFREG
    } else if ft.is_char_device() {
        libc::S_IFCHR
    } else if ft.is_block_device() {
        libc::S_IFBLK
    } else if ft.is_fifo() {
        libc::S_IFIFO
    } else {
        libc::S_IFSOCK
    }
}

/// Compare `rel` and everything under it in the kernel's mount `mnt` with `fs`: every
/// lstat field, listing (names, d_ino, d_type), byte, symlink target and xattr.
pub fn diff_with_kernel(fs: &dyn Filesystem, mnt: &Path, rel: &Path, count: &mut usize) {
    let host = mnt.join(rel);
    let m = fs::symlink_metadata(&host).unwrap();
    let (node, a) = if rel.as_os_str().is_empty() {
        (ROOT_ID, root_attr(fs))
    } else {
        let e = resolve(fs, rel);
        (e.node, e.attr)
    };
    *count += 1;
    let what = rel.display();
    assert_eq!(a.ino, m.ino(), "st_ino of {what}");
    assert_eq!(a.mode(), m.mode(), "st_mode of {what}");
    assert_eq!(u64::from(a.nlink), m.nlink(), "st_nlink of {what}");
    assert_eq!((a.uid, a.gid), (m.uid(), m.gid()), "owner of {what}");
    assert_eq!(a.size, m.size(), "st_size of {what}");
    assert_eq!(a.blocks, m.blocks(), "st_blocks of {what}");
    assert_eq!(u64::from(a.rdev), m.rdev(), "st_rdev of {what}");
    assert_eq!(u64::from(a.blksize), m.blksize(), "st_blksize of {what}");
    assert_eq!(
        (a.mtime.secs, i64::from(a.mtime.nsecs)),
        (m.mtime(), m.mtime_nsec()),
        "mtime of {what}"
    );
    assert_eq!(
        (a.ctime.secs, i64::from(a.ctime.nsecs)),
        (m.ctime(), m.ctime_nsec()),
        "ctime of {what}"
    );
    assert_eq!(
        (a.atime.secs, i64::from(a.atime.nsecs)),
        (m.atime(), m.atime_nsec()),
        "atime of {what}"
    );
    assert_eq!(xattrs(fs, node), host_xattrs(&host), "xattrs of {what}");
    match a.kind {
        FileType::RegularFile => {
            assert!(
                read_all(fs, node, a.size) == fs::read(&host).unwrap(),
                "content of {what}"
            );
        }
        FileType::Symlink => {
            let want = fs::read_link(&host).unwrap();
            assert_eq!(
                fs.readlink(&req(), node).unwrap(),
                want.as_os_str().as_bytes(),
                "{what}"
            );
        }
        FileType::Directory => {
            let mut want: Vec<Listed> = fs::read_dir(&host)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    Listed {
                        name: e.file_name().as_bytes().to_vec(),
                        ino: e.ino(),
                        kind: dtype(e.file_type().unwrap()),
                    }
                })
                .collect();
            want.sort();
            assert_eq!(list(fs, node), want, "listing of {what}");
            for l in want {
                diff_with_kernel(fs, mnt, &rel.join(OsStr::from_bytes(&l.name)), count);
            }
        }
        _ => {}
    }
}
