//! A test suite every [`Filesystem`] implementation runs against a tree it knows.
//!
//! Each check panics with a message naming what broke. The implementations' tests build a
//! filesystem holding the named nodes and call the checks; the overlay, host-directory and
//! ext3 drivers run the same checks as the SquashFS image.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};

use crate::{
    Entry, Errno, FileHandle, FileType, Filesystem, NodeId, ROOT_ID, ReadReply, Request, XattrData,
};

fn req() -> Request {
    Request::root()
}

/// Look `path` (components separated by `/`, relative to the root) up; panics when missing.
pub fn resolve(fs: &dyn Filesystem, path: &str) -> Entry {
    let mut node = ROOT_ID;
    let mut entry = None;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let e = fs
            .lookup(&req(), node, OsStr::new(part))
            .unwrap_or_else(|e| panic!("lookup {part:?} in {path:?}: {e:?}"))
            .unwrap_or_else(|| panic!("{path:?}: {part:?} does not exist"));
        node = e.node;
        entry = Some(e);
    }
    entry.unwrap_or_else(|| panic!("resolve needs a non-empty path, got {path:?}"))
}

/// Lookup counts: looking a name up twice gives the same node and attributes as `getattr`;
/// after the kernel forgets both lookups the name can be looked up again; a missing name is
/// a miss, not an error; a lookup under a non-directory is ENOTDIR.
pub fn check_lookup_counts(fs: &dyn Filesystem, dir: &str, name: &str) {
    let parent = if dir.is_empty() {
        ROOT_ID
    } else {
        resolve(fs, dir).node
    };
    let name = OsStr::new(name);
    let a = fs
        .lookup(&req(), parent, name)
        .unwrap()
        .expect("first lookup");
    let b = fs
        .lookup(&req(), parent, name)
        .unwrap()
        .expect("second lookup");
    assert_eq!(
        a.node, b.node,
        "two lookups of {name:?} gave different nodes"
    );
    assert_eq!(
        a.generation, b.generation,
        "generation changed between lookups"
    );
    let got = fs.getattr(&req(), a.node, None).unwrap();
    assert_eq!(
        got.attr, a.attr,
        "getattr disagrees with lookup for {name:?}"
    );
    fs.forget(a.node, 2);
    let c = fs
        .lookup(&req(), parent, name)
        .unwrap()
        .expect("lookup after forget");
    assert_eq!(c.attr.ino, a.attr.ino, "st_ino changed after forget");
    assert_eq!(c.attr.kind, a.attr.kind);
    assert!(
        fs.getattr(&req(), c.node, None).is_ok(),
        "a node looked up again must answer getattr"
    );
    fs.forget(c.node, 1);
    let missing = fs.lookup(&req(), parent, OsStr::new("no-such-name.conformance"));
    assert!(
        matches!(missing, Ok(None) | Err(Errno::ENOENT)),
        "a missing name must be a miss, got {missing:?}"
    );
    if a.attr.kind != FileType::Directory {
        let under = fs.lookup(&req(), a.node, OsStr::new("x"));
        assert_eq!(under, Err(Errno::ENOTDIR), "lookup under a non-directory");
    }
    let root = fs.getattr(&req(), ROOT_ID, None).unwrap();
    assert_eq!(
        root.attr.kind,
        FileType::Directory,
        "the root is a directory"
    );
}

/// One full listing of `node`, taking at most `batch` entries per readdir call.
fn list(fs: &dyn Filesystem, node: NodeId, batch: usize, plus: bool) -> Vec<(OsString, u64)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _round in 0..1_000_000 {
        let mut taken = Vec::new();
        let mut forgets = Vec::new();
        fs.readdir(
            &req(),
            node,
            FileHandle(0),
            offset,
            plus,
            &mut |item, entry| {
                if taken.len() == batch {
                    return false;
                }
                let is_dot = item.name == "." || item.name == "..";
                if plus && !is_dot {
                    let e = entry
                        .unwrap_or_else(|| panic!("readdirplus gave no entry for {:?}", item.name));
                    assert_eq!(e.attr.kind, item.kind, "type of {:?}", item.name);
                    forgets.push(e.node);
                }
                assert_ne!(
                    item.next_offset, 0,
                    "next_offset 0 would restart the listing"
                );
                taken.push((item.name.to_os_string(), item.next_offset));
                true
            },
        )
        .unwrap_or_else(|e| panic!("readdir at offset {offset}: {e:?}"));
        for n in forgets {
            fs.forget(n, 1);
        }
        let Some(last) = taken.last() else {
            return out;
        };
        offset = last.1;
        out.extend(taken);
    }
    panic!("readdir never ended");
}

/// Readdir cookies resume: listing `dir` in batches of 1, 3 and 7 entries, plain and plus,
/// gives the same names as one big listing, "." and ".." first, each once, and exactly
/// `expected` besides them.
pub fn check_readdir_resumes(fs: &dyn Filesystem, dir: &str, expected: &[&str]) {
    let node = if dir.is_empty() {
        ROOT_ID
    } else {
        resolve(fs, dir).node
    };
    let full: Vec<OsString> = list(fs, node, usize::MAX, false)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(full.len() >= 2, "a listing holds . and ..");
    assert_eq!(
        (full[0].as_os_str(), full[1].as_os_str()),
        (OsStr::new("."), OsStr::new(".."))
    );
    let names: BTreeSet<&OsStr> = full[2..].iter().map(OsString::as_os_str).collect();
    assert_eq!(
        names.len(),
        full.len() - 2,
        "a name listed twice in {dir:?}"
    );
    let want: BTreeSet<&OsStr> = expected.iter().map(OsStr::new).collect();
    assert_eq!(names, want, "names of {dir:?}");
    for batch in [1, 3, 7] {
        for plus in [false, true] {
            let got: Vec<OsString> = list(fs, node, batch, plus)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(
                got, full,
                "listing {dir:?} in batches of {batch} (plus: {plus})"
            );
        }
    }
    let file = expected.iter().find(|n| {
        fs.lookup(&req(), node, OsStr::new(n))
            .ok()
            .flatten()
            .is_some_and(|e| e.attr.kind != FileType::Directory)
    });
    if let Some(f) = file {
        let e = fs.lookup(&req(), node, OsStr::new(f)).unwrap().unwrap();
        let r = fs.readdir(&req(), e.node, FileHandle(0), 0, false, &mut |_, _| true);
        assert_eq!(r, Err(Errno::ENOTDIR), "readdir of a non-directory");
        fs.forget(e.node, 2);
    }
}

/// Xattr size probing on `path`, which holds attribute `name` = `value` and no other
/// attribute named `user.conformance.none`: size 0 gives the size, the exact size gives the
/// value, one byte less is ERANGE; the name list probes the same way and holds `name`.
pub fn check_xattr_probe(fs: &dyn Filesystem, path: &str, name: &str, value: &[u8]) {
    let node = resolve(fs, path).node;
    let n = OsStr::new(name);
    let len = u32::try_from(value.len()).unwrap();
    assert_eq!(
        fs.getxattr(&req(), node, n, 0),
        Ok(XattrData::Size(len)),
        "size probe of {name}"
    );
    assert_eq!(
        fs.getxattr(&req(), node, n, len),
        Ok(XattrData::Data(value.to_vec())),
        "value of {name}"
    );
    if len > 0 {
        assert_eq!(
            fs.getxattr(&req(), node, n, len - 1),
            Err(Errno::ERANGE),
            "short buffer"
        );
    }
    assert_eq!(
        fs.getxattr(&req(), node, OsStr::new("user.conformance.none"), 64),
        Err(Errno::ENODATA),
        "missing attribute"
    );
    let XattrData::Size(list_len) = fs.listxattr(&req(), node, 0).unwrap() else {
        panic!("listxattr with size 0 must give the size");
    };
    let XattrData::Data(list) = fs.listxattr(&req(), node, list_len).unwrap() else {
        panic!("listxattr with the probed size must give the names");
    };
    assert_eq!(list.len() as u32, list_len);
    let names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    assert!(
        names.contains(&name.as_bytes()),
        "{name} not in the name list"
    );
    assert_eq!(
        fs.listxattr(&req(), node, list_len - 1),
        Err(Errno::ERANGE),
        "short list buffer"
    );
}

/// Read `path` whole and in pieces of several sizes and offsets, through [`ReadReply`]s
/// answered on any thread; every piece equals `expected`, and reads past the end are empty.
pub fn check_read(fs: &dyn Filesystem, path: &str, expected: &[u8]) {
    let e = resolve(fs, path);
    assert_eq!(e.attr.size, expected.len() as u64, "size of {path}");
    let read = |offset: u64, size: u32| -> Vec<u8> {
        let (reply, rx) = ReadReply::channel();
        fs.read(&req(), e.node, FileHandle(0), offset, size, reply);
        rx.recv()
            .expect("the read reply was answered")
            .unwrap_or_else(|err| panic!("read {path} at {offset}+{size}: {err:?}"))
    };
    let total = expected.len();
    let whole = read(0, u32::try_from(total + 1).unwrap_or(u32::MAX));
    assert!(whole == expected, "whole read of {path} differs");
    for size in [1usize, 4095, 4096, 65536, 131072 + 17] {
        for offset in [0usize, 1, 4095, total / 3, total.saturating_sub(1)] {
            if offset > total {
                continue;
            }
            let want = &expected[offset..(offset + size).min(total)];
            assert!(
                read(offset as u64, size as u32) == want,
                "read of {path} at {offset}+{size} differs"
            );
        }
    }
    assert!(read(total as u64, 4096).is_empty(), "read at end of file");
    assert!(
        read(total as u64 + 1000, 4096).is_empty(),
        "read past end of file"
    );
}

/// A read-only filesystem refuses every change with EROFS.
pub fn check_read_only(fs: &dyn Filesystem, file: &str) {
    let node = resolve(fs, file).node;
    let r = req();
    let n = OsStr::new("conformance-new");
    assert_eq!(
        fs.mkdir(&r, ROOT_ID, n, 0o755).err(),
        Some(Errno::EROFS),
        "mkdir"
    );
    assert_eq!(
        fs.mknod(&r, ROOT_ID, n, libc::S_IFIFO | 0o644, 0).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(
        fs.symlink(&r, ROOT_ID, n, OsStr::new("x")).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(fs.unlink(&r, ROOT_ID, n), Err(Errno::EROFS), "unlink");
    assert_eq!(
        fs.link(&r, node, ROOT_ID, n).err(),
        Some(Errno::EROFS),
        "link"
    );
    let set = crate::SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(
        fs.setattr(&r, node, &set).err(),
        Some(Errno::EROFS),
        "setattr"
    );
    assert_eq!(
        fs.write(
            &r,
            node,
            FileHandle(0),
            0,
            b"x",
            crate::OpenFlags(libc::O_WRONLY)
        ),
        Err(Errno::EROFS),
        "write"
    );
    assert_eq!(
        fs.setxattr(&r, node, OsStr::new("user.x"), b"1", 0),
        Err(Errno::EROFS)
    );
    assert!(
        fs.policy().read_only,
        "a read-only filesystem says so in its policy"
    );
}
