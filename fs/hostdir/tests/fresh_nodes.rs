//! Nodes this server made: xattr reads answered without the host only until an xattr is
//! set; changes and xattr calls that come without a handle go through an open handle of the
//! node (so they work on an open file whose name is gone, as `fchmod` and `fsetxattr` do).

use std::ffi::OsStr;

use squashbox_hostdir::{HostDir, HostDirOptions};
use squashbox_vfs::{Errno, Filesystem, OpenFlags, ROOT_ID, Request, SetAttr, XattrData};

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn value(fs: &HostDir, node: u64, name: &str) -> Result<Vec<u8>, Errno> {
    match fs.getxattr(&Request::root(), node, n(name), 256)? {
        XattrData::Data(v) => Ok(v),
        XattrData::Size(_) => panic!("asked with a buffer"),
    }
}

#[test]
fn xattrs_of_new_nodes_and_calls_through_open_handles() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = HostDir::open(tmp.path(), HostDirOptions::default()).unwrap();
    let req = Request::root();
    let rw = OpenFlags(libc::O_RDWR);
    let (f, o) = fs.create(&req, ROOT_ID, n("f"), 0o644, rw).unwrap();
    assert_eq!(
        value(&fs, f.node, "security.capability"),
        Err(Errno::ENODATA)
    );
    match fs.setxattr(&req, f.node, n("user.a"), b"1", 0) {
        Err(Errno::EOPNOTSUPP) => {
            squashbox_fixtures::prereq::skip("the temporary directory has no user xattrs");
            return;
        }
        r => r.unwrap(),
    }
    assert_eq!(
        value(&fs, f.node, "user.a").unwrap(),
        b"1",
        "set, so asked again"
    );
    fs.release(&req, f.node, o.fh, rw).unwrap();
    assert_eq!(
        value(&fs, f.node, "user.a").unwrap(),
        b"1",
        "through the node"
    );
    let host = xattr_on_host(&tmp.path().join("f"), "user.a");
    assert_eq!(host.as_deref(), Some(&b"1"[..]));

    // An open file whose name went away behind the server: chmod and xattrs still reach it
    // through the handle.
    let (g, o) = fs.create(&req, ROOT_ID, n("g"), 0o644, rw).unwrap();
    std::fs::remove_file(tmp.path().join("g")).unwrap();
    let set = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    assert_eq!(fs.setattr(&req, g.node, &set).unwrap().attr.perm, 0o600);
    assert_eq!(value(&fs, g.node, "user.b"), Err(Errno::ENODATA));
    fs.setxattr(&req, g.node, n("user.b"), b"2", 0).unwrap();
    assert_eq!(value(&fs, g.node, "user.b").unwrap(), b"2");
    fs.release(&req, g.node, o.fh, rw).unwrap();
}

fn xattr_on_host(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let c = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated; `buf` is writable for its length.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return None;
    }
    buf.truncate(rc as usize);
    Some(buf)
}
