//! Creating one extracted entry and restoring its metadata.

use std::fs::{self, File, FileTimes};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use squashbox_squashfs::{Inode, InodeKind};

use super::{Ctx, Node};
use crate::squashfs_cmd::sys;

/// Files larger than this are written as parallel pieces of this size.
const PIECE: u64 = 8 << 20;
/// Bytes read per request.
const CHUNK: usize = 1 << 20;
/// Granularity of hole detection.
const HOLE: usize = 4096;

/// Create a directory only we can use for now; its real mode comes last.
pub fn mkdir_private(abs: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(abs)
        .with_context(|| format!("mkdir {}", abs.display()))
}

/// Create a non-directory entry with its metadata. `Ok(false)`: skipped with a warning (e.g. a
/// device while not root).
pub fn create(ctx: &Ctx, node: &Node) -> Result<bool> {
    let abs = ctx.dest.join(&node.rel);
    let inode = &node.inode;
    match inode.kind {
        InodeKind::File => {
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&abs)
                .with_context(|| format!("creating {}", abs.display()))?;
            write_contents(ctx, inode, &file, &abs)?;
            apply_meta(ctx, &abs, inode, Some(&file))?;
            return Ok(true);
        }
        InodeKind::Symlink => {
            let target = ctx
                .image
                .readlink(inode)
                .with_context(|| format!("reading link target of /{}", node.rel.display()))?;
            symlink(std::ffi::OsStr::from_bytes(&target), &abs)
                .with_context(|| format!("symlink {}", abs.display()))?;
        }
        InodeKind::BlockDevice | InodeKind::CharDevice | InodeKind::Fifo | InodeKind::Socket => {
            let (kind, dev) = match inode.kind {
                InodeKind::BlockDevice => (libc::S_IFBLK, decode_dev(inode.rdev)),
                InodeKind::CharDevice => (libc::S_IFCHR, decode_dev(inode.rdev)),
                InodeKind::Fifo => (libc::S_IFIFO, 0),
                _ => (libc::S_IFSOCK, 0),
            };
            match sys::mknod(&abs, kind | 0o600, dev) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    ctx.warn(format!("{}: cannot create device: {e}", abs.display()));
                    return Ok(false);
                }
                Err(e) => return Err(e).with_context(|| format!("mknod {}", abs.display())),
            }
        }
        InodeKind::Directory => bail!("{}: directory passed to create", abs.display()),
    }
    apply_meta(ctx, &abs, inode, None)?;
    Ok(true)
}

/// The kernel's `new_decode_dev` of SquashFS's on-disk device number.
fn decode_dev(rdev: u32) -> libc::dev_t {
    let major = (rdev & 0xfff00) >> 8;
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    libc::makedev(major, minor)
}

/// Copy a regular file's bytes; big files in parallel pieces. All-zero runs become holes.
fn write_contents(ctx: &Ctx, inode: &Inode, file: &File, abs: &Path) -> Result<()> {
    let size = inode.size;
    if size == 0 {
        return Ok(());
    }
    // End of the last byte written: if it falls short of `size`, the file ends in a hole.
    let written_end = AtomicU64::new(0);
    if size > PIECE {
        (0..size.div_ceil(PIECE))
            .into_par_iter()
            .try_for_each(|p| -> Result<()> {
                if ctx.abort.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let start = p * PIECE;
                let end = copy_range(ctx, inode, file, abs, start, PIECE.min(size - start))?;
                written_end.fetch_max(end, Ordering::Relaxed);
                Ok(())
            })?;
    } else {
        written_end.store(
            copy_range(ctx, inode, file, abs, 0, size)?,
            Ordering::Relaxed,
        );
    }
    if written_end.into_inner() != size {
        file.set_len(size)
            .with_context(|| format!("extending {} to {size} bytes", abs.display()))?;
    }
    Ok(())
}

/// Copy bytes `start..start + len`; returns the end offset of the last byte written (0 if
/// everything was zeros).
fn copy_range(
    ctx: &Ctx,
    inode: &Inode,
    file: &File,
    abs: &Path,
    start: u64,
    len: u64,
) -> Result<u64> {
    let mut last_end = 0;
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let end = start + len;
    let mut off = start;
    while off < end {
        let want = buf.len().min((end - off) as usize);
        let n = ctx
            .image
            .read(inode, off, &mut buf[..want])
            .with_context(|| format!("reading {} at offset {off}", abs.display()))?;
        if n == 0 {
            bail!(
                "{}: file data ends at {off}, before its size {}",
                abs.display(),
                inode.size
            );
        }
        let mut pos = 0;
        while pos < n {
            let piece = HOLE.min(n - pos);
            // Write maximal runs of non-zero pieces at once.
            if is_zero(&buf[pos..pos + piece]) {
                pos += piece;
                continue;
            }
            let run_start = pos;
            while pos < n {
                let piece = HOLE.min(n - pos);
                if is_zero(&buf[pos..pos + piece]) {
                    break;
                }
                pos += piece;
            }
            file.write_all_at(&buf[run_start..pos], off + run_start as u64)
                .with_context(|| format!("writing {}", abs.display()))?;
            last_end = off + pos as u64;
        }
        off += n as u64;
    }
    Ok(last_end)
}

fn is_zero(b: &[u8]) -> bool {
    b.chunks(64).all(|c| c.iter().fold(0u8, |a, &x| a | x) == 0)
}

/// Restore owner (as root), xattrs, mode (not for symlinks) and mtime, in that order (chown
/// clears setuid bits and capabilities, so it goes first). `file`: use the open descriptor.
pub fn apply_meta(ctx: &Ctx, abs: &Path, inode: &Inode, file: Option<&File>) -> Result<()> {
    let shown = abs.display();
    if ctx.as_root && Some((inode.uid, inode.gid)) != ctx.creator {
        match file {
            Some(f) => std::os::unix::fs::fchown(f, Some(inode.uid), Some(inode.gid)),
            None => sys::lchown(abs, inode.uid, inode.gid),
        }
        .with_context(|| format!("chown {shown}"))?;
    }
    if inode.xattr_index.is_some() {
        let xattrs = ctx
            .image
            .xattrs(inode)
            .with_context(|| format!("reading xattrs for {shown}"))?;
        for x in xattrs {
            if let Err(e) = sys::lsetxattr(abs, &x.name, &x.value) {
                ctx.warn(format!(
                    "{shown}: cannot set xattr {}: {e}",
                    String::from_utf8_lossy(&x.name)
                ));
            }
        }
    }
    let mtime = i64::from(inode.mtime);
    if inode.kind != InodeKind::Symlink {
        let perms = fs::Permissions::from_mode(u32::from(inode.permissions & 0o7777));
        match file {
            Some(f) => f.set_permissions(perms),
            None => fs::set_permissions(abs, perms),
        }
        .with_context(|| format!("chmod {shown}"))?;
    }
    match file {
        Some(f) => {
            let t = UNIX_EPOCH + Duration::from_secs(u64::from(inode.mtime));
            f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
        }
        None => sys::set_times(abs, mtime),
    }
    .map_err(|e: io::Error| e)
    .with_context(|| format!("setting mtime of {shown}"))
}
