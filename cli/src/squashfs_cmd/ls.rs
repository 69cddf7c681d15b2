//! `squashbox squashfs ls [-l]`: the tree in `unsquashfs -ls` / `-lln` format.
//!
//! Paths are shown from the image root (`/`, `/bin`, `/bin/sh`); apart from that prefix, each
//! line is byte for byte what `unsquashfs -d "" -lln` (with `-l`) or `-ls` prints, in the same
//! order: a directory, then its entries in on-disk order, depth first.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use squashbox_squashfs::{DirEntry, Image, InodeKind, InodeRef};

use super::format::long_prefix;
use super::resolve::{components, display_path, resolve};
use crate::image_arg::ImageArgs;

/// Arguments of `squashbox squashfs ls`.
#[derive(clap::Args)]
pub struct LsArgs {
    /// Long format: mode, numeric uid/gid, size (or major,minor), mtime, name, link target.
    #[arg(short = 'l', long = "long")]
    long: bool,
    #[command(flatten)]
    image: ImageArgs,
    /// List only this path (and everything under it, if it is a directory).
    #[arg(value_name = "PATH")]
    path: Option<String>,
}

/// Run `ls`.
pub fn run(args: LsArgs) -> Result<ExitCode> {
    let opened = args.image.open()?;
    let image = &opened.image;
    let path = args.path.unwrap_or_default();
    let start = resolve(image, path.as_bytes(), false)?;
    let shown = display_path(&components(path.as_bytes()));
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    list(
        image,
        start.inode_ref,
        start.kind,
        shown,
        args.long,
        &mut out,
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Print `start` (at `shown`) and, for a directory, everything below it, pre-order.
pub fn list(
    image: &Image,
    start: InodeRef,
    kind: InodeKind,
    shown: Vec<u8>,
    long: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut stack: Vec<(InodeRef, InodeKind, Vec<u8>)> = vec![(start, kind, shown)];
    let mut seen_dirs: HashSet<InodeRef> = HashSet::new();
    while let Some((r, kind, path)) = stack.pop() {
        let shown = String::from_utf8_lossy(&path).into_owned();
        let need_inode = long || kind == InodeKind::Directory;
        let inode = if need_inode {
            Some(
                image
                    .inode(r)
                    .with_context(|| format!("reading inode of {shown}"))?,
            )
        } else {
            None
        };
        if let Some(inode) = inode.as_ref().filter(|_| long) {
            out.write_all(long_prefix(inode).as_bytes())?;
            out.write_all(&path)?;
            if inode.kind == InodeKind::Symlink {
                let target = image
                    .readlink(inode)
                    .with_context(|| format!("reading link {shown}"))?;
                out.write_all(b" -> ")?;
                out.write_all(&target)?;
            }
        } else {
            out.write_all(&path)?;
        }
        out.write_all(b"\n")?;
        let Some(dir) = inode.filter(|i| i.kind == InodeKind::Directory) else {
            continue;
        };
        if !seen_dirs.insert(r) {
            bail!("{shown}: directory loop in the image (inode {:#x})", r.0);
        }
        let entries = read_all(image, &dir, &shown)?;
        for e in entries.into_iter().rev() {
            let mut child = if path == b"/" {
                Vec::new()
            } else {
                path.clone()
            };
            child.push(b'/');
            child.extend_from_slice(&e.name);
            stack.push((e.inode_ref, e.kind, child));
        }
    }
    Ok(())
}

/// All entries of directory `dir`, in on-disk order.
pub fn read_all(
    image: &Image,
    dir: &squashbox_squashfs::Inode,
    shown: &str,
) -> Result<Vec<DirEntry>> {
    let mut entries = Vec::new();
    image
        .read_dir(dir, 0, &mut |e, _| {
            entries.push(e);
            true
        })
        .with_context(|| format!("listing {shown}"))?;
    Ok(entries)
}
