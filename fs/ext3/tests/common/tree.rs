//! The ext3-shaped source tree: file sizes around the 1 KiB block map's boundaries (12
//! direct blocks, single/double/triple indirect), sparse files, a 5,000-entry directory,
//! fast and slow symlinks, hard links, special files, user.* xattrs in the inode and in a
//! block, nanosecond mtimes, and owners and devices when run as root.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::path::Path;

use squashbox_fixtures::sys;

/// Entries of the big directory.
pub const BIG_DIR_ENTRIES: usize = 5000;
/// End of the double-indirect range with 1 KiB blocks (12 + 256 + 65536 blocks).
pub const TRIPLE_START: u64 = (12 + 256 + 65536) * 1024;

/// Deterministic bytes for file `seed` of `len` bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Sizes of the files under `files/`.
pub const SIZES: [usize; 14] = [
    0,
    1,
    1023,
    1024,
    1025,
    12 * 1024,
    12 * 1024 + 1,
    268 * 1024,
    268 * 1024 + 1,
    300 * 1024 + 7,
    2 * 1024 * 1024 + 3,
    5 * 1024 * 1024,
    4096 * 3 + 5,
    65536 + 13,
];

/// Name of big-directory entry `i`.
pub fn big_name(i: usize) -> String {
    format!("entry-{i:05}-{}", "p".repeat(i % 37))
}

fn set_times(path: &Path, secs: i64, nsecs: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: nsecs,
    };
    let times = [ts, ts];
    // SAFETY: `c` is NUL-terminated and `times` holds the two timespecs utimensat reads.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

/// Build the tree under `root` (created). Returns whether user xattrs were set.
pub fn build(root: &Path) -> bool {
    let w = |rel: &str, data: &[u8]| fs::write(root.join(rel), data).unwrap();
    for d in [
        "files",
        "sparse",
        "bigdir",
        "symlinks",
        "links/sub",
        "special",
        "empty",
        "names",
        "modes",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (i, &size) in SIZES.iter().enumerate() {
        w(&format!("files/f-{size:08}"), &bytes(i as u64 + 1, size));
    }
    // Sparse: data, hole, data; a file that is all hole; one reaching triple indirection.
    let f = fs::File::create(root.join("sparse/holes")).unwrap();
    f.set_len(3 << 20).unwrap();
    f.write_all_at(&bytes(100, 5000), 0).unwrap();
    f.write_all_at(&bytes(101, 3000), 3 << 19).unwrap();
    f.write_all_at(b"tail", (3 << 20) - 4).unwrap();
    fs::File::create(root.join("sparse/all-hole"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let t = fs::File::create(root.join("sparse/triple")).unwrap();
    t.write_all_at(&bytes(102, 2000), 0).unwrap();
    t.write_all_at(&bytes(103, 3000), 40 << 20).unwrap();
    t.write_all_at(&bytes(104, 5000), TRIPLE_START + 12345)
        .unwrap();
    t.set_len(TRIPLE_START + (8 << 20) + 1).unwrap();
    for i in 0..BIG_DIR_ENTRIES {
        let data = if i % 7 == 0 {
            format!("{i}\n").into_bytes()
        } else {
            Vec::new()
        };
        w(&format!("bigdir/{}", big_name(i)), &data);
    }
    symlink("a", root.join("symlinks/short")).unwrap();
    symlink("f".repeat(59), root.join("symlinks/fast-59")).unwrap();
    symlink("s".repeat(60), root.join("symlinks/slow-60")).unwrap();
    symlink("x/".repeat(500), root.join("symlinks/slow-1000")).unwrap();
    symlink("../files/f-00000001", root.join("symlinks/to-file")).unwrap();
    symlink("nowhere", root.join("symlinks/dangling")).unwrap();
    w("links/one", &bytes(200, 4000));
    fs::hard_link(root.join("links/one"), root.join("links/two")).unwrap();
    fs::hard_link(root.join("links/one"), root.join("links/sub/three")).unwrap();
    sys::mknod(&root.join("special/fifo"), libc::S_IFIFO | 0o644, 0, 0).unwrap();
    if sys::is_root() {
        for (name, kind, ma, mi) in [
            ("chr-1-3", libc::S_IFCHR, 1, 3),
            ("blk-8-1", libc::S_IFBLK, 8, 1),
            ("whiteout", libc::S_IFCHR, 0, 0),
            ("chr-259-70000", libc::S_IFCHR, 259, 70000),
        ] {
            sys::mknod(&root.join("special").join(name), kind | 0o600, ma, mi).unwrap();
        }
        for (name, uid, gid) in [("u1000", 1000, 1000), ("big-ids", 100_000, 200_000)] {
            w(&format!("modes/{name}"), name.as_bytes());
            sys::lchown(&root.join("modes").join(name), uid, gid).unwrap();
        }
    }
    for (name, mode) in [("setuid", 0o4755), ("setgid", 0o2711), ("ro", 0o444)] {
        w(&format!("modes/{name}"), name.as_bytes());
        fs::set_permissions(
            root.join("modes").join(name),
            fs::Permissions::from_mode(mode),
        )
        .unwrap();
    }
    fs::create_dir(root.join("modes/sticky")).unwrap();
    fs::set_permissions(
        root.join("modes/sticky"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    for name in ["héllo wörld", "日本語", &"n".repeat(255)] {
        w(&format!("names/{name}"), name.as_bytes());
    }
    let mut deep = root.join("deep");
    for l in 0..12 {
        deep = deep.join(format!("l{l}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("leaf"), b"bottom\n").unwrap();
    let xattrs_ok =
        sys::lsetxattr(&root.join("files/f-00000001"), "user.small", b"in-inode").is_ok();
    if xattrs_ok {
        let x = |rel: &str, name: &str, v: &[u8]| sys::lsetxattr(&root.join(rel), name, v).unwrap();
        x("files/f-00000001", "user.empty", b"");
        x("files/f-00001024", "user.large", &bytes(300, 700));
        x("files/f-00001024", "user.second", b"two");
        x("bigdir", "user.dir", b"big");
        x("links/one", "user.linked", b"three names");
    }
    set_times(&root.join("files/f-00000001"), 1_700_000_000, 123_456_789);
    set_times(&root.join("files/f-00000000"), 0, 0);
    set_times(&root.join("names"), 2_000_000_000, 999_999_999);
    xattrs_ok
}
