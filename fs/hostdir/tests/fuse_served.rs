//! A host directory served over FUSE (squashbox-fuse): a script of changes made through the
//! mount must give the same results, and leave the same tree, as the same script run on a
//! plain copy of the directory; and `stat` through the mount shows the host's inode numbers.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use squashbox_fixtures::prereq;
use squashbox_fuse::{MountTarget, ServeOptions, serve};
use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_vfs::Filesystem;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Desc {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    blocks_zero: bool,
    nlink: u64,
    rdev: u64,
    mtime: (i64, i64),
    /// Length and a checksum of the data or link target.
    content: (usize, u64),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn digest(b: &[u8]) -> (usize, u64) {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &x in b {
        h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
    }
    (b.len(), h)
}

fn same(what: &str, a: &BTreeMap<String, Desc>, b: &BTreeMap<String, Desc>) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("{k}: only in the first")),
            Some(w) if w != v => diffs.push(format!("{k}:\n  {v:?}\n  {w:?}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("{k}: only in the second"));
    }
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
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
            let mut v = vec![0u8; 4096];
            // SAFETY: both strings are NUL-terminated; `v` is writable for its length.
            let len =
                unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
            v.truncate(len.max(0) as usize);
            (name.to_vec(), v)
        })
        .collect();
    out.sort();
    out
}

/// path -> (description, inode number)
fn walk(root: &Path) -> BTreeMap<String, (Desc, u64)> {
    let mut out = BTreeMap::new();
    fn rec(dir: &Path, prefix: &str, out: &mut BTreeMap<String, (Desc, u64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let content = if ft.is_file() {
                std::fs::read(&p).unwrap()
            } else if ft.is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else {
                Vec::new()
            };
            let is_dir = ft.is_dir();
            let d = Desc {
                kind: md.mode() & libc::S_IFMT,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if is_dir { 0 } else { md.len() },
                blocks_zero: md.blocks() == 0,
                nlink: md.nlink(),
                rdev: md.rdev(),
                mtime: if is_dir {
                    (0, 0)
                } else {
                    (md.mtime(), md.mtime_nsec())
                },
                content: digest(&content),
                xattrs: xattrs(&p),
            };
            let path = format!("{prefix}/{}", e.file_name().to_string_lossy());
            out.insert(path.clone(), (d, md.ino()));
            if is_dir {
                rec(&p, &path, out);
            }
        }
    }
    rec(root, "", &mut out);
    out
}

fn seed(d: &Path) {
    std::fs::create_dir_all(d.join("dir/sub")).unwrap();
    std::fs::write(d.join("file"), b"file contents").unwrap();
    std::fs::write(d.join("dir/a"), b"a").unwrap();
    std::fs::write(d.join("dir/sub/b"), vec![7u8; 100_000]).unwrap();
    symlink("../file", d.join("dir/link")).unwrap();
    std::fs::hard_link(d.join("file"), d.join("hard")).unwrap();
}

fn res(r: std::io::Result<()>) -> Result<(), i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn rename2(m: &Path, a: &str, b: &str, flags: u32) -> Result<(), i32> {
    let f = CString::new(m.join(a).as_os_str().as_bytes()).unwrap();
    let t = CString::new(m.join(b).as_os_str().as_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    }
}

fn script(m: &Path) -> Vec<(&'static str, Result<(), i32>)> {
    use std::fs;
    let p = |s: &str| m.join(s);
    let mut out = Vec::new();
    let mut step = |name, r| out.push((name, r));
    step("create", res(fs::write(p("new"), b"new file")));
    step(
        "append",
        res(fs::OpenOptions::new()
            .append(true)
            .open(p("file"))
            .and_then(|mut f| f.write_all(b"+more"))),
    );
    step(
        "chmod",
        res(fs::set_permissions(
            p("dir/a"),
            fs::Permissions::from_mode(0o4751),
        )),
    );
    step(
        "chown",
        res(std::os::unix::fs::lchown(
            p("dir/link"),
            Some(1234),
            Some(5678),
        )),
    );
    step("mkdir", res(fs::create_dir(p("newdir"))));
    step("mkdir exists", res(fs::create_dir(p("newdir"))));
    step("rmdir non-empty", res(fs::remove_dir(p("dir"))));
    step("unlink", res(fs::remove_file(p("dir/a"))));
    step("rename", res(fs::rename(p("new"), p("newdir/moved"))));
    step(
        "rename NOREPLACE",
        rename2(m, "file", "hard", libc::RENAME_NOREPLACE),
    );
    step(
        "rename EXCHANGE",
        rename2(m, "newdir", "dir", libc::RENAME_EXCHANGE),
    );
    step("hard link", res(fs::hard_link(p("file"), p("hard2"))));
    step("symlink", res(symlink("/etc/shadow", p("abs"))));
    step(
        "mkfifo",
        res(squashbox_fixtures::sys::mknod(
            &p("fifo"),
            libc::S_IFIFO | 0o600,
            0,
            0,
        )),
    );
    step(
        "mknod",
        res(squashbox_fixtures::sys::mknod(
            &p("null"),
            libc::S_IFCHR | 0o600,
            1,
            3,
        )),
    );
    step(
        "setxattr",
        res(squashbox_fixtures::sys::lsetxattr(
            &p("file"),
            "user.k",
            b"v",
        )),
    );
    step(
        "truncate",
        res(fs::OpenOptions::new()
            .write(true)
            .open(p("newdir/sub/b"))
            .and_then(|f| f.set_len(5000))),
    );
    step(
        "sparse write",
        res(fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(p("sparse"))
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(1 << 20))?;
                f.write_all(b"tail")
            })),
    );
    step(
        "punch",
        res(fs::OpenOptions::new()
            .write(true)
            .open(p("file"))
            .and_then(|f| {
                // SAFETY: plain fallocate on a descriptor we own.
                let rc = unsafe {
                    libc::fallocate(
                        f.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        0,
                        4,
                    )
                };
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            })),
    );
    step(
        "copy",
        res(fs::copy(p("newdir/sub/b"), p("copied")).map(|_| ())),
    );
    step(
        "utimes",
        res(squashbox_fixtures::sys::set_mtime(
            &p("copied"),
            1_234_567_890,
        )),
    );
    step(
        "rmdir",
        res(fs::remove_dir(p("dir/sub")).or_else(|_| fs::remove_dir(p("newdir")))),
    );
    step("unlink missing", res(fs::remove_file(p("missing"))));
    out
}

#[test]
fn changes_through_the_mount_match_a_plain_directory() {
    if !prereq::require_root("FUSE mounts, chown and mknod")
        || !prereq::require_path(Path::new("/dev/fuse"))
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (served, plain, mnt) = (
        tmp.path().join("served"),
        tmp.path().join("plain"),
        tmp.path().join("mnt"),
    );
    seed(&served);
    seed(&plain);
    std::fs::create_dir_all(&mnt).unwrap();
    let fs: Arc<dyn Filesystem> = Arc::new(
        HostDir::open(
            &served,
            HostDirOptions {
                fd_limit: 8,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let target = mnt.clone();
    let server = std::thread::spawn(move || {
        let opts = ServeOptions {
            threads: Some(2),
            ..Default::default()
        };
        serve(
            Box::new(move |_| Ok((fs, "hostdir-test".to_string()))),
            MountTarget::Path(target),
            &opts,
            Box::new(move |r| {
                let _ = tx.send(r.map_err(str::to_string));
            }),
        )
    });
    rx.recv().unwrap().expect("the FUSE mount is ready");
    let through = script(&mnt);
    let direct = script(&plain);
    let seen = walk(&mnt);
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success());
    server
        .join()
        .unwrap()
        .expect("the server ends after unmount");
    assert_eq!(through, direct, "step results");
    assert!(
        direct.iter().filter(|s| s.1.is_err()).count() >= 4,
        "the script has failing steps too"
    );
    let host = walk(&served);
    let descs = |t: &BTreeMap<String, (Desc, u64)>| -> BTreeMap<String, Desc> {
        t.iter().map(|(k, (d, _))| (k.clone(), d.clone())).collect()
    };
    same(
        "through the mount vs the host",
        &descs(&seen),
        &descs(&host),
    );
    for (path, (_, ino)) in &host {
        assert_eq!(
            seen[path].1, *ino,
            "{path}: st_ino through the mount is the host's"
        );
    }
    let plain_tree = walk(&plain);
    let strip = |t: &BTreeMap<String, (Desc, u64)>| -> BTreeMap<String, Desc> {
        t.iter()
            .map(|(k, (d, _))| {
                let mut d = d.clone();
                if k != "/copied" {
                    d.mtime = (0, 0); // set by the clock at different moments
                }
                (k.clone(), d)
            })
            .collect()
    };
    same(
        "the served directory vs the plain one",
        &strip(&host),
        &strip(&plain_tree),
    );
    assert!(host["/sparse"].0.size == (1 << 20) + 4);
}
