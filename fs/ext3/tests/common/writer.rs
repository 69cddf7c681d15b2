//! Path-based helpers for write tests, and the `e2fsck -fn` oracle.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use squashbox_ext3::Ext3Fs;
use squashbox_vfs::{Entry, FileHandle, Filesystem, NodeId, OpenFlags, ROOT_ID, Request, SetAttr};

use super::run;

/// A writable [`Ext3Fs`] with path-based helpers.
pub struct Writer {
    /// The filesystem.
    pub fs: Ext3Fs,
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    }
}

impl Writer {
    /// Open `img` read-write.
    pub fn open(img: &Path) -> Writer {
        let fs = Ext3Fs::open(img, 0, false).unwrap_or_else(|e| panic!("open rw: {e}"));
        assert!(
            fs.writable(),
            "served read-write: {:?}",
            fs.read_only_reason()
        );
        Writer { fs }
    }

    /// Request from root with umask 022.
    pub fn req() -> Request {
        Request {
            umask: 0o022,
            ..Request::root()
        }
    }

    /// The node of directory path `dir` ("" is the root).
    pub fn node(&self, path: &str) -> NodeId {
        if path.is_empty() {
            ROOT_ID
        } else {
            squashbox_vfs::conformance::resolve(&self.fs, path).node
        }
    }

    /// Look `path` up (None when missing).
    pub fn get(&self, path: &str) -> Option<Entry> {
        let (d, n) = split(path);
        self.fs
            .lookup(&Self::req(), self.node(d), OsStr::new(n))
            .unwrap()
    }

    /// mkdir.
    pub fn mkdir(&self, path: &str) -> Entry {
        let (d, n) = split(path);
        self.fs
            .mkdir(&Self::req(), self.node(d), OsStr::new(n), 0o755)
            .unwrap_or_else(|e| panic!("mkdir {path}: {e:?}"))
    }

    /// Create `path` holding `data`.
    pub fn create(&self, path: &str, data: &[u8]) -> Entry {
        let (d, n) = split(path);
        let (e, _) = self
            .fs
            .create(
                &Self::req(),
                self.node(d),
                OsStr::new(n),
                0o644,
                OpenFlags(libc::O_WRONLY),
            )
            .unwrap_or_else(|e| panic!("create {path}: {e:?}"));
        self.write(e.node, 0, data);
        e
    }

    /// Write `data` at `off` of `node` in 64 KiB pieces.
    pub fn write(&self, node: NodeId, off: u64, data: &[u8]) {
        for (i, chunk) in data.chunks(64 << 10).enumerate() {
            let at = off + (i * (64 << 10)) as u64;
            let n = self
                .fs
                .write(
                    &Self::req(),
                    node,
                    FileHandle(0),
                    at,
                    chunk,
                    OpenFlags(libc::O_WRONLY),
                )
                .unwrap_or_else(|e| panic!("write at {at}: {e:?}"));
            assert_eq!(n as usize, chunk.len());
        }
    }

    /// Truncate `node` to `size`.
    pub fn truncate(&self, node: NodeId, size: u64) {
        let set = SetAttr {
            size: Some(size),
            ..Default::default()
        };
        self.fs
            .setattr(&Self::req(), node, &set)
            .unwrap_or_else(|e| panic!("truncate to {size}: {e:?}"));
    }

    /// The content of `node`.
    pub fn read(&self, node: NodeId) -> Vec<u8> {
        let size = self.fs.getattr(&Self::req(), node, None).unwrap().attr.size;
        super::read_all(&self.fs, node, size)
    }

    /// unlink.
    pub fn unlink(&self, path: &str) -> squashbox_vfs::Result<()> {
        let (d, n) = split(path);
        self.fs.unlink(&Self::req(), self.node(d), OsStr::new(n))
    }

    /// rmdir.
    pub fn rmdir(&self, path: &str) -> squashbox_vfs::Result<()> {
        let (d, n) = split(path);
        self.fs.rmdir(&Self::req(), self.node(d), OsStr::new(n))
    }

    /// rename with `flags`.
    pub fn rename(&self, from: &str, to: &str, flags: u32) -> squashbox_vfs::Result<()> {
        let (d1, n1) = split(from);
        let (d2, n2) = split(to);
        self.fs.rename(
            &Self::req(),
            self.node(d1),
            OsStr::new(n1),
            self.node(d2),
            OsStr::new(n2),
            squashbox_vfs::RenameFlags(flags),
        )
    }

    /// Unmount (flush, mark clean) and drop.
    pub fn finish(self) {
        self.fs.destroy();
    }
}

/// `e2fsck -fn` must exit 0 with no "Fix? no" (a wrong superblock count exits 0 too), and
/// `dumpe2fs -h` must say the state is clean.
pub fn assert_fsck_clean(img: &Path, scenario: &str) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(img)
        .output()
        .expect("running e2fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.code() == Some(0) && !text.contains("Fix? no") && !text.contains("? no"),
        "{scenario}: e2fsck -fn exited {:?}:\n{text}",
        out.status.code()
    );
    let h = run(Command::new("dumpe2fs").arg("-h").arg(img), &[0]);
    assert!(
        h.lines()
            .any(|l| l.starts_with("Filesystem state:") && l.trim_end().ends_with("clean")),
        "{scenario}: not clean after unmount:\n{h}"
    );
}
