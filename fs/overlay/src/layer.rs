//! [`Layer`]: one filesystem of the stack, and the overlay conventions read from it
//! (whiteouts, opaque directories, the overlay's own xattr namespaces).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;

use squashbox_vfs::{
    Attr, Entry, Errno, FileHandle, FileType, Filesystem, NodeId, OpenFlags, Request, Result,
    XattrData,
};

/// Xattrs that mark a directory opaque (value `y`), in the order they are read.
pub const OPAQUE_XATTRS: [&str; 3] = [
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];
/// Names starting with this are whiteout files (`.wh.NAME` hides NAME) and never shown.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// A file of this name makes its directory opaque.
pub const OPAQUE_FILE: &str = ".wh..wh..opq";
/// Xattr namespaces that belong to the overlay: hidden from getxattr and listxattr.
pub const PRIVATE_XATTR_PREFIXES: [&[u8]; 3] = [
    b"trusted.overlay.",
    b"user.overlay.",
    b"user.fuseoverlayfs.",
];

/// Whether an xattr name is one of the overlay's own.
pub fn is_private_xattr(name: &[u8]) -> bool {
    PRIVATE_XATTR_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether these attributes are a whiteout: a character device 0/0.
pub fn is_whiteout(attr: &Attr) -> bool {
    attr.kind == FileType::CharDevice && attr.rdev == 0
}

/// Whether `name` is a whiteout file name (or the opaque marker).
pub fn is_whiteout_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(WHITEOUT_PREFIX)
}

/// `.wh.NAME`.
pub fn whiteout_name(name: &OsStr) -> OsString {
    let mut v = WHITEOUT_PREFIX.to_vec();
    v.extend_from_slice(name.as_bytes());
    OsString::from_vec(v)
}

/// A layer's ENOSYS must never reach the kernel as the overlay's own answer (it would be
/// remembered for the whole mount): it becomes EIO.
pub fn no_enosys(e: Errno) -> Errno {
    if e == Errno::ENOSYS { Errno::EIO } else { e }
}

/// One entry of a layer directory.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Name.
    pub name: OsString,
    /// Type.
    pub kind: FileType,
    /// The layer's `d_ino`.
    pub ino: u64,
}

/// What a name is in one layer directory ([`Layer::probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameState {
    /// An object that is not a whiteout.
    Present,
    /// A 0/0 character device: a whiteout.
    Device,
    /// Absent, with a `.wh.NAME` file beside it: a whiteout.
    WhiteoutFile,
    /// Neither the name nor its `.wh.` form.
    Absent,
}

/// One filesystem of the stack.
pub struct Layer {
    /// The filesystem.
    pub fs: Arc<dyn Filesystem>,
    /// Its tag in inode numbers (0: upper; 1 + i: lower i).
    pub tag: u64,
    /// The node of the layer's root directory (the upper directory for the upper layer).
    pub root: NodeId,
}

impl Layer {
    /// Look `name` up in `dir`; a miss (however the layer says it) is `None`.
    pub fn lookup(&self, req: &Request, dir: NodeId, name: &OsStr) -> Result<Option<Entry>> {
        match self.fs.lookup(req, dir, name) {
            Ok(e) => Ok(e),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(no_enosys(e)),
        }
    }

    /// Give back one lookup of `node`.
    pub fn forget(&self, node: NodeId) {
        self.fs.forget(node, 1);
    }

    /// Whether `name` exists in `dir` (no lookup is kept). A name too long for the layer
    /// (the `.wh.` form of a 252..255-byte name) does not.
    pub fn exists(&self, req: &Request, dir: NodeId, name: &OsStr) -> Result<bool> {
        let found = match self.lookup(req, dir, name) {
            Err(Errno::ENAMETOOLONG) => return Ok(false),
            r => r?,
        };
        Ok(match found {
            Some(e) => {
                self.forget(e.node);
                true
            }
            None => false,
        })
    }

    /// Whether directory `dir` is opaque: one of [`OPAQUE_XATTRS`] is `y`, or it holds
    /// [`OPAQUE_FILE`].
    pub fn is_opaque(&self, req: &Request, dir: NodeId) -> Result<bool> {
        for name in OPAQUE_XATTRS {
            if let Ok(XattrData::Data(v)) = self.fs.getxattr(req, dir, OsStr::new(name), 16)
                && v == b"y"
            {
                return Ok(true);
            }
        }
        self.exists(req, dir, OsStr::new(OPAQUE_FILE))
    }

    /// Whether `name` in `dir` is a whiteout here: `Some(true)` a 0/0 device, `Some(false)`
    /// a `.wh.NAME` file, `None` neither.
    pub fn whiteout_at(&self, req: &Request, dir: NodeId, name: &OsStr) -> Result<Option<bool>> {
        Ok(match self.probe(req, dir, name)? {
            NameState::Device => Some(true),
            NameState::WhiteoutFile => Some(false),
            NameState::Present | NameState::Absent => None,
        })
    }

    /// What `name` is in `dir` here (no lookup is kept): at most two lookups, of `name` and
    /// of its `.wh.` form.
    pub fn probe(&self, req: &Request, dir: NodeId, name: &OsStr) -> Result<NameState> {
        if let Some(e) = self.lookup(req, dir, name)? {
            self.forget(e.node);
            return Ok(if is_whiteout(&e.attr) {
                NameState::Device
            } else {
                NameState::Present
            });
        }
        Ok(if self.exists(req, dir, &whiteout_name(name))? {
            NameState::WhiteoutFile
        } else {
            NameState::Absent
        })
    }

    /// Every entry of directory `dir` but "." and "..".
    pub fn list(&self, req: &Request, dir: NodeId) -> Result<Vec<Listed>> {
        let fh = match self.fs.opendir(req, dir, OpenFlags(libc::O_RDONLY)) {
            Ok(o) => Some(o.fh),
            Err(Errno::ENOSYS) => None,
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let mut offset = 0;
        let result = loop {
            let mut last = None;
            let r = self.fs.readdir(
                req,
                dir,
                fh.unwrap_or(FileHandle(0)),
                offset,
                false,
                &mut |item, _| {
                    last = Some(item.next_offset);
                    if item.name != "." && item.name != ".." {
                        out.push(Listed {
                            name: item.name.to_os_string(),
                            kind: item.kind,
                            ino: item.ino,
                        });
                    }
                    true
                },
            );
            match (r, last) {
                (Err(e), _) => break Err(no_enosys(e)),
                (Ok(()), None) => break Ok(()),
                // A layer may end a call early; go on from where it stopped.
                (Ok(()), Some(next)) => offset = next,
            }
        };
        if let Some(fh) = fh {
            let _ = self.fs.releasedir(req, dir, fh);
        }
        result.map(|()| out)
    }
}
