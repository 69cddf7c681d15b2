//! Shared test helpers: build source trees, pack them with mksquashfs, and compare what the
//! reader returns with the source tree.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use squashbox_squashfs::{Image, Inode, InodeKind, OpenOptions};

/// Whether a tool is on PATH.
pub fn have(tool: &str) -> bool {
    squashbox_fixtures::have_tool(tool)
}

/// Whether mksquashfs (and `more` tools) are installed; a missing one is counted through
/// [`squashbox_fixtures::prereq`] (a failure under `CI=true`) and the caller returns.
pub fn mksquashfs_ready(more: &[&str]) -> bool {
    let all: Vec<&str> = ["mksquashfs"].iter().chain(more).copied().collect();
    squashbox_fixtures::prereq::require_tools(&all)
}

/// Whether we run as root.
pub fn is_root() -> bool {
    squashbox_fixtures::sys::is_root()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Set a user xattr; panics if the filesystem refuses it.
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    squashbox_fixtures::sys::lsetxattr(p, name, value)
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
}

/// Read the user.* xattrs of a source path (the only ones compared with source trees).
pub fn get_xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    xattrs_of(p, true)
}

/// Read every xattr of `p` (not following symlinks), sorted; `user_only` keeps user.* only.
pub fn xattrs_of(p: &Path, user_only: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let path = cpath(p);
    let mut names = vec![0u8; 65536];
    // SAFETY: valid path and buffer.
    let n = unsafe { libc::llistxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ENOTSUP),
            "llistxattr {}: {e}",
            p.display()
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
    {
        if user_only && !name.starts_with(b"user.") {
            continue;
        }
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 65536];
        // SAFETY: valid strings and buffer.
        let m = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                cn.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        assert!(
            m >= 0,
            "lgetxattr {} on {}: {}",
            String::from_utf8_lossy(name),
            p.display(),
            std::io::Error::last_os_error()
        );
        val.truncate(m as usize);
        out.push((name.to_vec(), val));
    }
    out.sort();
    out
}

/// Panic with `what` and the OS error unless `rc` is 0.
fn check_rc(rc: libc::c_int, what: &str) {
    assert_eq!(rc, 0, "{what}: {}", std::io::Error::last_os_error());
}

fn write_random(p: &Path, len: usize, rng: &mut StdRng, compressible: bool) {
    let mut v = vec![0u8; len];
    if compressible {
        for (i, b) in v.iter_mut().enumerate() {
            *b = b"squashbox reader test data "[i % 27]
                ^ if i % 1013 == 0 { rng.random::<u8>() } else { 0 };
        }
    } else {
        rng.fill(&mut v[..]);
    }
    fs::write(p, v).unwrap();
}

/// Build a varied tree under `root`, sized around `block` (the image block size).
/// Returns whether it has xattrs (false only where the filesystem cannot hold them, a counted
/// prerequisite skip).
pub fn build_tree(root: &Path, block: usize, seed: u64) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    fs::create_dir_all(root.join("dir/sub/deeper/deepest")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    let sizes = [
        0,
        1,
        2,
        100,
        4095,
        4096,
        4097,
        block - 1,
        block,
        block + 1,
        2 * block,
        3 * block + 17,
        3 << 20,
    ];
    for (i, &s) in sizes.iter().enumerate() {
        write_random(&root.join(format!("f{i}_{s}")), s, &mut rng, i % 2 == 0);
        write_random(&root.join(format!("dir/c{i}")), s / 3, &mut rng, i % 3 == 0);
    }
    // Duplicates (shared blocks / shared fragments).
    fs::copy(root.join("f12_3145728"), root.join("dir/dup_big")).unwrap();
    fs::copy(root.join("f3_100"), root.join("dir/sub/dup_small")).unwrap();
    // A file with holes (sparse blocks).
    {
        let f = fs::File::create(root.join("sparse")).unwrap();
        f.set_len((8 * block) as u64 + 5).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"middle", (3 * block + 10) as u64).unwrap();
    }
    // Symlinks, short and long.
    std::os::unix::fs::symlink("f3_100", root.join("link_short")).unwrap();
    let long: String = std::iter::repeat_n("abcdefghij/", 300).collect::<String>() + "end";
    std::os::unix::fs::symlink(&long[..3000], root.join("dir/link_long")).unwrap();
    std::os::unix::fs::symlink("../../f1_1", root.join("dir/sub/link_up")).unwrap();
    // Hard links.
    fs::hard_link(root.join("f5_4096"), root.join("dir/hard1")).unwrap();
    fs::hard_link(root.join("f5_4096"), root.join("dir/sub/hard2")).unwrap();
    // Odd names.
    fs::write(root.join("dir/ünïcødé ñame"), b"unicode").unwrap();
    fs::write(root.join("dir").join("n".repeat(255)), b"long name").unwrap();
    // Modes and times.
    let p = root.join("dir/sub/mode_test");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4751)).unwrap();
    // A fifo.
    let fifo = cpath(&root.join("dir/fifo"));
    // SAFETY: valid path.
    check_rc(
        unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) },
        "mkfifo dir/fifo",
    );
    if is_root() {
        let c = cpath(&root.join("dir/chardev"));
        let b = cpath(&root.join("dir/blockdev"));
        // SAFETY: valid paths; we are root.
        unsafe {
            check_rc(
                libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)),
                "mknod dir/chardev",
            );
            check_rc(
                libc::mknod(b.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(259, 70000)),
                "mknod dir/blockdev",
            );
        }
        std::os::unix::fs::lchown(root.join("dir/c1"), Some(1234), Some(5678))
            .expect("lchown dir/c1");
    }
    // Xattrs: small, large (out-of-line values are used for repeated values), on dirs too.
    // A filesystem that cannot hold them is a counted prerequisite skip (fails under CI).
    if !squashbox_fixtures::prereq::require_user_xattrs(root) {
        return false;
    }
    set_xattr(&root.join("f3_100"), "user.small", b"value");
    set_xattr(&root.join("f3_100"), "user.other", &[7u8; 3000]);
    set_xattr(&root.join("dir"), "user.dirattr", b"on a dir");
    set_xattr(&root.join("f1_1"), "user.other", &[7u8; 3000]);
    set_xattr(&root.join("f0_0"), "user.empty", b"");
    true
}

/// Run mksquashfs SRC IMG -noappend -quiet ARGS... (packed again if mksquashfs wrote past
/// its end; see [`squashbox_fixtures::mksquashfs`]).
pub fn mksquashfs(src: &Path, img: &Path, args: &[&str]) {
    if let Err(e) = squashbox_fixtures::mksquashfs(src, img, args) {
        panic!("{e:#}");
    }
}

pub fn open(img: &Path) -> Image {
    Image::open(
        img,
        &OpenOptions {
            cache_bytes: 8 << 20,
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

/// Read a whole file through the API in chunks of `chunk` bytes.
pub fn read_all(img: &Image, ino: &Inode, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = img.read(ino, out.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Hard links seen by [`compare_tree`]: each source inode's image inode and names seen, and
/// the reverse map, so that names sharing a source inode share an image inode and no others do.
#[derive(Default)]
struct Links {
    /// Source inode -> (image inode ref, names seen, source nlink).
    by_source: HashMap<u64, (u64, u64, u64)>,
    /// Image inode ref -> source inode.
    by_image: HashMap<u64, u64>,
}

impl Links {
    fn saw(&mut self, p: &Path, md: &fs::Metadata, ino: &Inode) {
        let image_ref = ino.inode_ref.0;
        let e = self
            .by_source
            .entry(md.ino())
            .or_insert((image_ref, 0, md.nlink()));
        assert_eq!(
            e.0,
            image_ref,
            "{}: hard link to a different image inode than its other names",
            p.display()
        );
        e.1 += 1;
        let src = *self.by_image.entry(image_ref).or_insert(md.ino());
        assert_eq!(
            src,
            md.ino(),
            "{}: shares image inode {image_ref:#x} with an unrelated file",
            p.display()
        );
    }

    /// Every name of every hard-linked file was seen.
    fn check_complete(&self, src: &Path) {
        for (ino, &(image_ref, seen, nlink)) in &self.by_source {
            assert_eq!(
                seen,
                nlink,
                "{}: source inode {ino} (image {image_ref:#x}) has {nlink} links, the image \
                 showed {seen} names for it",
                src.display()
            );
        }
    }
}

/// Compare the whole image with the source tree; returns the number of entries checked.
pub fn compare_tree(img: &Image, src: &Path, check_xattrs: bool) -> usize {
    let root = img.root().unwrap();
    let mut links = Links::default();
    let n = compare_dir(img, &root, src, check_xattrs, &mut links);
    links.check_complete(src);
    n
}

fn compare_dir(img: &Image, dir: &Inode, src: &Path, xa: bool, links: &mut Links) -> usize {
    let mut names: Vec<Vec<u8>> = fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    let entries = img.list_dir(dir).unwrap();
    let got: Vec<Vec<u8>> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(got, names, "listing of {}", src.display());
    // Resuming from every cookie gives the rest of the listing.
    let mut cookies = Vec::new();
    img.read_dir(dir, 0, &mut |_, c| {
        cookies.push(c);
        true
    })
    .unwrap();
    for (i, &c) in cookies.iter().enumerate().step_by(7) {
        let mut rest = Vec::new();
        img.read_dir(dir, c, &mut |e, _| {
            rest.push(e.name);
            true
        })
        .unwrap();
        assert_eq!(
            rest,
            got[i + 1..],
            "resume after cookie {c} in {}",
            src.display()
        );
    }
    let mut count = 1;
    for e in &entries {
        let p = src.join(std::ffi::OsStr::from_bytes(&e.name));
        let md = fs::symlink_metadata(&p).unwrap();
        let looked = img
            .lookup(dir, &e.name)
            .unwrap()
            .expect("lookup finds listed name");
        assert_eq!(looked, *e);
        let ino = img.inode(e.inode_ref).unwrap();
        assert_eq!(ino.kind, e.kind);
        assert_eq!(ino.inode_number, e.inode_number);
        assert_eq!(ino.mode(), md.mode(), "mode of {}", p.display());
        assert_eq!(ino.uid, md.uid(), "uid of {}", p.display());
        assert_eq!(ino.gid, md.gid(), "gid of {}", p.display());
        assert_eq!(i64::from(ino.mtime), md.mtime(), "mtime of {}", p.display());
        assert_eq!(u64::from(ino.nlink), md.nlink(), "nlink of {}", p.display());
        if xa {
            let want = get_xattrs(&p);
            let mut got: Vec<(Vec<u8>, Vec<u8>)> = img
                .xattrs(&ino)
                .unwrap()
                .into_iter()
                .map(|x| (x.name, x.value))
                .collect();
            got.sort();
            assert_eq!(got, want, "xattrs of {}", p.display());
            for (n, v) in &want {
                assert_eq!(img.xattr_get(&ino, n).unwrap().as_ref(), Some(v));
            }
            assert_eq!(img.xattr_get(&ino, b"user.absent").unwrap(), None);
        }
        match ino.kind {
            InodeKind::Directory => count += compare_dir(img, &ino, &p, xa, links),
            InodeKind::File => {
                assert_eq!(ino.size, md.len(), "size of {}", p.display());
                let want = fs::read(&p).unwrap();
                for chunk in [4096usize, 65536 * 3 + 1, 1 << 20] {
                    let got = read_all(img, &ino, chunk);
                    assert!(got == want, "contents of {} (chunk {chunk})", p.display());
                }
                // Reads at odd offsets.
                for &off in &[1u64, 4095, 4097, 131071, 131073, 1 << 20] {
                    if off < md.len() {
                        let mut b = vec![0u8; 9000];
                        let n = img.read(&ino, off, &mut b).unwrap();
                        let end = (off as usize + 9000).min(want.len());
                        assert_eq!(&b[..n], &want[off as usize..end]);
                    }
                }
                let mut b = [0u8; 4];
                assert_eq!(img.read(&ino, md.len(), &mut b).unwrap(), 0);
                links.saw(&p, &md, &ino);
            }
            InodeKind::Symlink => {
                let t = fs::read_link(&p).unwrap();
                assert_eq!(img.readlink(&ino).unwrap(), t.as_os_str().as_bytes());
                assert_eq!(ino.size, t.as_os_str().len() as u64);
            }
            InodeKind::BlockDevice | InodeKind::CharDevice => {
                assert_eq!(u64::from(ino.rdev), md.rdev(), "rdev of {}", p.display());
            }
            InodeKind::Fifo | InodeKind::Socket => {}
        }
        count += 1;
    }
    assert!(img.lookup(dir, b"no such name").unwrap().is_none());
    assert!(img.lookup(dir, b"").unwrap().is_none());
    count
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sqfs-reader-")
        .tempdir()
        .unwrap()
}

pub fn path_in(d: &tempfile::TempDir, name: &str) -> PathBuf {
    d.path().join(name)
}
