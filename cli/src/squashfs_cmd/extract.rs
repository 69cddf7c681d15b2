//! `squashbox squashfs extract`: a parallel unsquashfs.
//!
//! 1. Walk the directory tree in parallel, creating directories (owner-only modes for now) and
//!    collecting every other entry.
//! 2. Create files, symlinks, devices, fifos and sockets in parallel (large files are split
//!    into pieces written in parallel; all-zero blocks become holes), then their hard links
//!    (entries sharing an inode number).
//! 3. Apply directory owners, xattrs, modes and mtimes, deepest first, so adding children
//!    never disturbs a parent's final mtime or a read-only mode.
//!
//! DEST must not exist or be an empty directory (unsquashfs refuses to overwrite without -f;
//! we always refuse). The image root's mode, owner and mtime are applied to DEST itself.

mod write;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use squashbox_squashfs::{Image, Inode, InodeKind, InodeRef, OpenOptions};

use super::ls::read_all;
use super::resolve::{components, resolve_exact};
use super::sys;
use crate::image_arg::ImageArgs;

/// Arguments of `squashbox squashfs extract`.
#[derive(clap::Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Directory to extract into; must not exist or be empty.
    #[arg(value_name = "DEST")]
    dest: PathBuf,
    /// Extract only this path (with its parent directories), like `unsquashfs -d DEST IMG PATH`.
    #[arg(value_name = "PATH")]
    path: Option<String>,
    /// Worker threads (default: all CPUs).
    #[arg(short = 'j', long = "threads", value_name = "N")]
    threads: Option<usize>,
}

/// One entry to create, relative to DEST.
pub(crate) struct Node {
    /// Path relative to DEST ("" for DEST itself).
    pub rel: PathBuf,
    /// The decoded inode.
    pub inode: Inode,
}

/// State shared by all workers.
pub(crate) struct Ctx<'a> {
    pub image: &'a Image,
    pub dest: &'a Path,
    /// Running as root: restore owners.
    pub as_root: bool,
    /// (euid, egid), the owner new entries get, so chown can be skipped when it matches;
    /// `None` when DEST is setgid (new entries would take its group).
    pub creator: Option<(u32, u32)>,
    /// Non-fatal problems (devices we may not create, xattrs the filesystem refuses).
    pub warnings: Mutex<Vec<String>>,
    /// Set once a worker fails, so the others stop early.
    pub abort: AtomicBool,
}

impl Ctx<'_> {
    pub fn warn(&self, msg: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
    }
}

/// Run `extract`.
pub fn run(args: ExtractArgs) -> Result<ExitCode> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        builder = builder.num_threads(n);
    }
    let pool = builder.build().context("starting worker threads")?;
    let threads = pool.current_num_threads();
    let opts = OpenOptions {
        cache_bytes: (32 << 20) * threads.max(2),
        ..OpenOptions::default()
    };
    let opened = args.image.open_with(&opts)?;
    prepare_dest(&args.dest)?;
    let ctx = Ctx {
        image: &opened.image,
        dest: &args.dest,
        as_root: sys::is_root(),
        creator: creator_in(&args.dest),
        warnings: Mutex::new(Vec::new()),
        abort: AtomicBool::new(false),
    };
    let filter: Vec<Vec<u8>> = match &args.path {
        Some(p) => {
            resolve_exact(ctx.image, p.as_bytes())?;
            components(p.as_bytes())
                .iter()
                .map(|c| c.to_vec())
                .collect()
        }
        None => Vec::new(),
    };
    pool.install(|| extract(&ctx, &filter))?;
    let warnings = ctx.warnings.into_inner().unwrap_or_else(|e| e.into_inner());
    if warnings.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for w in warnings.iter().take(10) {
        eprintln!("squashbox: warning: {w}");
    }
    if warnings.len() > 10 {
        eprintln!("squashbox: warning: ... and {} more", warnings.len() - 10);
    }
    eprintln!("squashbox: extracted with {} warning(s)", warnings.len());
    Ok(ExitCode::from(2))
}

/// Who owns what we create in `dest`: `None` if a setgid `dest` hands its group down.
fn creator_in(dest: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let setgid = fs::metadata(dest).map(|m| m.permissions().mode() & 0o2000 != 0);
    if setgid.unwrap_or(true) {
        None
    } else {
        Some(sys::creator())
    }
}

/// DEST must be missing (it is created) or an empty directory.
fn prepare_dest(dest: &Path) -> Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => {
            let mut it = fs::read_dir(dest).with_context(|| format!("{}", dest.display()))?;
            if it.next().is_some() {
                bail!("{}: destination exists and is not empty", dest.display());
            }
            Ok(())
        }
        Ok(_) => bail!(
            "{}: destination exists and is not a directory",
            dest.display()
        ),
        Err(_) => fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display())),
    }
}

fn extract(ctx: &Ctx, filter: &[Vec<u8>]) -> Result<()> {
    let root = ctx
        .image
        .inode(ctx.image.root_ref())
        .context("reading the root inode")?;
    let dirs = Mutex::new(vec![Node {
        rel: PathBuf::new(),
        inode: root.clone(),
    }]);
    let others = Mutex::new(Vec::new());
    let seen = Mutex::new(HashSet::from([root.inode_ref]));
    let first_err: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let walk = Walk {
        ctx,
        filter,
        dirs: &dirs,
        others: &others,
        seen: &seen,
        err: &first_err,
    };
    rayon::scope(|s| walk.dir(s, root, PathBuf::new(), 0));
    if let Some(e) = first_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut others = others.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut dirs = dirs.into_inner().unwrap_or_else(|e| e.into_inner());

    // Hard links: the first path (in sorted order) of each inode number is created, the rest
    // are linked to it.
    others.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut primary_of: HashMap<u32, usize> = HashMap::new();
    let mut primaries = Vec::new();
    let mut links = Vec::new();
    for (i, n) in others.iter().enumerate() {
        match primary_of.get(&n.inode.inode_number) {
            Some(&p) => links.push((i, p)),
            None => {
                primary_of.insert(n.inode.inode_number, i);
                primaries.push(i);
            }
        }
    }
    let skipped: Mutex<HashSet<usize>> = Mutex::new(HashSet::new());
    primaries.par_iter().try_for_each(|&i| -> Result<()> {
        if ctx.abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        let created = write::create(ctx, &others[i]).inspect_err(|_| {
            ctx.abort.store(true, Ordering::Relaxed);
        })?;
        if !created {
            skipped.lock().unwrap_or_else(|e| e.into_inner()).insert(i);
        }
        Ok(())
    })?;
    let skipped = skipped.into_inner().unwrap_or_else(|e| e.into_inner());
    links.par_iter().try_for_each(|&(i, p)| -> Result<()> {
        if skipped.contains(&p) {
            return Ok(());
        }
        let (from, to) = (ctx.dest.join(&others[p].rel), ctx.dest.join(&others[i].rel));
        fs::hard_link(&from, &to)
            .with_context(|| format!("linking {} to {}", to.display(), from.display()))
    })?;

    // Directories, deepest first; one depth at a time in parallel.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
    for level in dirs.chunk_by(|a, b| a.rel.components().count() == b.rel.components().count()) {
        level
            .par_iter()
            .try_for_each(|d| write::apply_meta(ctx, &ctx.dest.join(&d.rel), &d.inode, None))?;
    }
    Ok(())
}

/// The parallel directory walk.
struct Walk<'a> {
    ctx: &'a Ctx<'a>,
    /// Components of PATH: at depth d only the entry named filter[d] is followed.
    filter: &'a [Vec<u8>],
    dirs: &'a Mutex<Vec<Node>>,
    others: &'a Mutex<Vec<Node>>,
    seen: &'a Mutex<HashSet<InodeRef>>,
    err: &'a Mutex<Option<anyhow::Error>>,
}

impl<'a> Walk<'a> {
    fn dir<'s>(&'s self, s: &rayon::Scope<'s>, dir: Inode, rel: PathBuf, depth: usize) {
        if self.ctx.abort.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.dir_inner(s, dir, &rel, depth) {
            self.ctx.abort.store(true, Ordering::Relaxed);
            let mut slot = self.err.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(e);
        }
    }

    fn dir_inner<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        dir: Inode,
        rel: &Path,
        depth: usize,
    ) -> Result<()> {
        let shown = format!("/{}", rel.display());
        let entries = read_all(self.ctx.image, &dir, &shown)?;
        for e in entries {
            if let Some(want) = self.filter.get(depth)
                && e.name != *want
            {
                continue;
            }
            check_name(&e.name, &shown)?;
            let child_rel = rel.join(OsStr::from_bytes(&e.name));
            let inode = self
                .ctx
                .image
                .inode(e.inode_ref)
                .with_context(|| format!("reading inode of /{}", child_rel.display()))?;
            if inode.kind == InodeKind::Directory {
                if !self
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(e.inode_ref)
                {
                    bail!("/{}: directory loop in the image", child_rel.display());
                }
                let abs = self.ctx.dest.join(&child_rel);
                write::mkdir_private(&abs)?;
                self.dirs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Node {
                        rel: child_rel.clone(),
                        inode: inode.clone(),
                    });
                s.spawn(move |s| self.dir(s, inode, child_rel, depth + 1));
            } else {
                self.others
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Node {
                        rel: child_rel,
                        inode,
                    });
            }
        }
        Ok(())
    }
}

/// Refuse names that could escape DEST or are not valid file names.
fn check_name(name: &[u8], dir: &str) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(anyhow!(
            "{dir}: unsafe entry name {:?} in the image",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}
