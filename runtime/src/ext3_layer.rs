//! ext3 overlay images as layers of the container root: a file made by `overlay create` (or
//! `mkfs.ext3`), or a SIF's overlay partition. The server process opens them with the ext3
//! driver, after taking the byte-range lock Apptainer takes on the same range (a write lock
//! when writable, a read lock otherwise), so two jobs never write one overlay and Apptainer
//! and squashbox respect each other's locks.
//!
//! The locks are open-file-description locks (`F_OFD_SETLK`): they conflict with the
//! classic `F_SETLK` locks Apptainer takes, and unlike those they survive the server closing
//! some other descriptor of the same file. They are held until the server process ends, so
//! a killed run leaves no lock behind.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use squashbox_ext3::Ext3Fs;
use squashbox_vfs::{Errno, FileType, Filesystem, ROOT_ID, Request};

/// Where an ext3 filesystem is: a file, and the byte range of it that holds the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext3Image {
    /// The image file or SIF.
    pub path: PathBuf,
    /// Byte offset of the filesystem in the file.
    pub offset: u64,
    /// Bytes from `offset` that belong to the filesystem (the whole rest for a bare image).
    pub size: u64,
    /// How to name it in messages (`overlay X`, `the SIF's overlay partition`).
    pub what: String,
}

impl Ext3Image {
    /// A bare ext3 image file: the whole file.
    pub fn file(path: &Path) -> Result<Ext3Image, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("overlay {}: {e}", path.display()))?
            .len();
        Ok(Ext3Image {
            path: path.to_path_buf(),
            offset: 0,
            size,
            what: format!("overlay {}", path.display()),
        })
    }

    /// Partition `id` of the SIF at `path`.
    pub fn sif_partition(path: &Path, id: u32) -> Result<Ext3Image, String> {
        let name = path.display();
        let f = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
        let sif = squashbox_sif::Sif::load(&f).map_err(|e| format!("{name}: {e}"))?;
        let loc = sif
            .partition_by_id(id)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(Ext3Image {
            path: path.to_path_buf(),
            offset: loc.offset,
            size: loc.size,
            what: format!("the overlay partition (object {id}) of {name}"),
        })
    }
}

/// What `path` holds as ext3, if anything: a bare ext3 image (with no `id`), or SIF
/// partition `id` when it is ext3 (with no `id`: the SIF's overlay partition when
/// `overlay` asks for it, else its primary partition).
pub fn detect(path: &Path, id: Option<u32>, overlay: bool) -> Result<Option<Ext3Image>, String> {
    use std::os::unix::fs::FileExt;
    let name = path.display();
    let f = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    match squashbox_sif::Sif::load(&f) {
        Ok(sif) => {
            let loc = match (id, overlay) {
                (Some(id), _) => sif
                    .partition_by_id(id)
                    .map_err(|e| format!("{name}: {e}"))?,
                (None, true) => match sif.overlay_partitions().into_iter().next() {
                    Some(l) => l,
                    None => return Ok(None),
                },
                (None, false) => sif.primary_rootfs().map_err(|e| format!("{name}: {e}"))?,
            };
            if loc.fs_type != squashbox_sif::FsType::EXT3.0 {
                return Ok(None);
            }
            Ok(Some(Ext3Image::sif_partition(path, loc.id)?))
        }
        Err(squashbox_sif::Error::NotSif(_)) if id.is_none() => {
            let mut magic = [0u8; 2];
            let ext3 = f.read_exact_at(&mut magic, 1080).is_ok() && magic == [0x53, 0xef];
            Ok(if ext3 {
                Some(Ext3Image::file(path)?)
            } else {
                None
            })
        }
        Err(squashbox_sif::Error::NotSif(_)) => Ok(None),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// Take the lock on `img` (write lock when `writable`) on a descriptor of its own, held until
/// this process ends.
pub fn lock(img: &Ext3Image, writable: bool) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(&img.path)
        .map_err(|e| format!("{}: {e}", img.what))?;
    let fd: OwnedFd = file.into();
    // SAFETY: an all-zero `flock` is a valid value; the fields that matter are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if writable {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = i64::try_from(img.offset).map_err(|_| format!("{}: bad offset", img.what))?;
    fl.l_len = i64::try_from(img.size).map_err(|_| format!("{}: bad size", img.what))?;
    fl.l_pid = 0;
    // SAFETY: `fd` is an open descriptor and `fl` a valid, initialised flock structure.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => format!(
                "{} is in use by another container or mount{}; wait for it to end{}",
                img.what,
                if writable { "" } else { " that writes to it" },
                if writable {
                    ", or use it read-only (:ro, -o ro)"
                } else {
                    ""
                }
            ),
            _ => format!("{}: cannot lock it: {e}", img.what),
        });
    }
    // Deliberately never closed: the lock lives as long as this (server) process.
    let _ = fd.into_raw_fd();
    Ok(())
}

/// Lock and open `img`; a writable one gets `upper/` and `work/` when it lacks them, as
/// Apptainer creates them on first writable use.
pub fn open(img: &Ext3Image, writable: bool) -> Result<Arc<Ext3Fs>, String> {
    lock(img, writable)?;
    let fs =
        Ext3Fs::open(&img.path, img.offset, !writable).map_err(|e| format!("{}: {e}", img.what))?;
    let need = fs
        .volume()
        .sb()
        .blocks_count
        .saturating_mul(u64::from(fs.volume().block_size()));
    if need > img.size {
        return Err(format!(
            "{}: the ext3 filesystem ({need} bytes) is larger than its {} bytes",
            img.what, img.size
        ));
    }
    if writable {
        if let Some(why) = fs.read_only_reason() {
            return Err(format!("{} cannot be written: {why}", img.what));
        }
        let req = Request {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            pid: 0,
            umask: 0o022,
        };
        for dir in ["upper", "work"] {
            ensure_dir(&fs, &req, dir).map_err(|e| format!("{}: {dir}/: {e}", img.what))?;
        }
    }
    Ok(Arc::new(fs))
}

/// The directory a read-only use shows: `upper` when the image has one, else its root.
pub fn lower_dir(fs: &dyn Filesystem) -> String {
    match fs.lookup(&Request::root(), ROOT_ID, OsStr::new("upper")) {
        Ok(Some(e)) if e.attr.kind == FileType::Directory => {
            fs.forget(e.node, 1);
            "upper".into()
        }
        Ok(Some(e)) => {
            fs.forget(e.node, 1);
            String::new()
        }
        _ => String::new(),
    }
}

/// Make directory `name` in the root of `fs` (mode 0755) unless it is there.
fn ensure_dir(fs: &dyn Filesystem, req: &Request, name: &str) -> Result<(), Errno> {
    match fs.lookup(req, ROOT_ID, OsStr::new(name))? {
        Some(e) => {
            fs.forget(e.node, 1);
            if e.attr.kind == FileType::Directory {
                Ok(())
            } else {
                Err(Errno::ENOTDIR)
            }
        }
        None => {
            let e = fs.mkdir(req, ROOT_ID, OsStr::new(name), 0o755)?;
            fs.forget(e.node, 1);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(dir: &Path) -> Ext3Image {
        let p = dir.join("o.img");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(1 << 20).unwrap();
        Ext3Image::file(&p).unwrap()
    }

    #[test]
    fn writers_exclude_everyone_and_readers_share() {
        let d = tempfile::tempdir().unwrap();
        let img = image(d.path());
        // Each lock below is on a description of its own, as two processes would hold them.
        lock(&img, false).unwrap();
        lock(&img, false).unwrap();
        let e = lock(&img, true).unwrap_err();
        assert!(e.contains("in use by another container"), "{e}");
        assert!(e.contains(":ro"), "{e}");
    }

    #[test]
    fn disjoint_ranges_do_not_conflict() {
        let d = tempfile::tempdir().unwrap();
        let mut a = image(d.path());
        a.size = 4096;
        let mut b = a.clone();
        b.offset = 4096;
        lock(&a, true).unwrap();
        lock(&b, true).unwrap();
        let e = lock(&a, false).unwrap_err();
        assert!(e.contains("that writes to it"), "{e}");
    }
}
