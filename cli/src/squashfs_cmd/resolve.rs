//! Path lookup inside an image, with optional symlink following.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result, bail};
use squashbox_squashfs::{Image, Inode, InodeKind};

/// Most symlinks followed in one lookup (as Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Split `path` into its non-empty, non-"." components.
pub fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// `/a/b` display form of a component list (`/` for the root).
pub fn display_path(comps: &[&[u8]]) -> Vec<u8> {
    if comps.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    out
}

/// Find `path` in `image`. Intermediate symlinks are always followed (targets resolved inside
/// the image); the final one only if `follow_final`.
pub fn resolve(image: &Image, path: &[u8], follow_final: bool) -> Result<Inode> {
    let shown = OsStr::from_bytes(path).to_string_lossy().into_owned();
    let root = image
        .inode(image.root_ref())
        .context("reading the root inode")?;
    // Stack of directories from the root to the current one.
    let mut stack: Vec<Inode> = vec![root];
    // Components still to walk, in reverse order (last element is next).
    let mut todo: Vec<Vec<u8>> = components(path).iter().rev().map(|c| c.to_vec()).collect();
    let mut followed = 0;
    while let Some(name) = todo.pop() {
        if name == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let dir = stack.last().expect("stack never empty");
        if dir.kind != InodeKind::Directory {
            bail!("{shown}: not a directory");
        }
        let Some(entry) = image
            .lookup(dir, &name)
            .with_context(|| format!("looking up {shown}"))?
        else {
            bail!("{shown}: no such file or directory in the image");
        };
        let inode = image
            .inode(entry.inode_ref)
            .with_context(|| format!("reading {shown}"))?;
        if inode.kind == InodeKind::Symlink && (follow_final || !todo.is_empty()) {
            followed += 1;
            if followed > MAX_SYMLINKS {
                bail!("{shown}: too many levels of symbolic links");
            }
            let target = image
                .readlink(&inode)
                .with_context(|| format!("reading link {shown}"))?;
            if target.starts_with(b"/") {
                stack.truncate(1);
            }
            todo.extend(components(&target).iter().rev().map(|c| c.to_vec()));
            continue;
        }
        stack.push(inode);
    }
    Ok(stack.pop().expect("stack never empty"))
}

/// Find `path` without following any symlink and without `..`: the exact entries
/// `extract PATH` will walk through.
pub fn resolve_exact(image: &Image, path: &[u8]) -> Result<Inode> {
    let shown = OsStr::from_bytes(path).to_string_lossy().into_owned();
    let mut inode = image
        .inode(image.root_ref())
        .context("reading the root inode")?;
    for name in components(path) {
        if name == b".." {
            bail!("{shown}: give a path without '..'");
        }
        if inode.kind != InodeKind::Directory {
            let what = if inode.kind == InodeKind::Symlink {
                "goes through a symlink (give the real path)"
            } else {
                "not a directory"
            };
            bail!("{shown}: {what}");
        }
        let Some(entry) = image
            .lookup(&inode, name)
            .with_context(|| format!("looking up {shown}"))?
        else {
            bail!("{shown}: no such file or directory in the image");
        };
        inode = image
            .inode(entry.inode_ref)
            .with_context(|| format!("reading {shown}"))?;
    }
    Ok(inode)
}
