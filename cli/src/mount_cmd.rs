//! `squashbox mount` and `squashbox unmount`.

#[path = "fuse_cmd/daemon.rs"]
mod daemon;
#[path = "fuse_cmd/image_server.rs"]
mod image_server;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use squashbox_fuse::options::ServeOptions;
use squashbox_fuse::session::MountTarget;

/// Arguments of `squashbox mount`.
#[derive(clap::Args)]
pub struct MountArgs {
    /// SquashFS image or SIF file (the primary system partition is served).
    pub image: PathBuf,
    /// Directory to mount on (or /dev/fd/N: an already-mounted /dev/fuse fd).
    pub mountpoint: PathBuf,
    /// Serve the SIF partition with this descriptor ID instead of the primary one.
    #[arg(long, value_name = "ID")]
    pub partition: Option<u32>,
    /// Stay in the foreground (default: detach once the mount is ready).
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Print debug output (every request); implies --foreground.
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Mount options, comma separated, as for squashfuse_ll: allow_other, uid=N, gid=N,
    /// offset=N, subdir=PATH, timeout=SECS, notify_pipe=PATH, threads=N, cache=MiB,
    /// prefetch=BLOCKS, max_background=N, clone_fd/noclone_fd, suid, dev, exec, noexec.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Request loop threads (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Decompressed block cache size in MiB (default 64).
    #[arg(long, value_name = "MIB")]
    pub cache_mib: Option<usize>,
}

/// Arguments of `squashbox unmount`.
#[derive(clap::Args)]
pub struct UnmountArgs {
    /// The mount point to unmount.
    pub mountpoint: PathBuf,
    /// Detach lazily right away, even if the mount is not busy.
    #[arg(short = 'z', long)]
    pub lazy: bool,
}

/// Run `squashbox mount`.
pub fn run_mount(args: MountArgs) -> anyhow::Result<ExitCode> {
    let mut opts = ServeOptions::default();
    let mut ignored = Vec::new();
    for o in &args.options {
        opts.apply_o(o, &mut ignored).map_err(anyhow::Error::msg)?;
    }
    for o in ignored {
        eprintln!("squashbox: warning: ignoring unknown option -o {o}");
    }
    opts.partition = args.partition;
    if let Some(t) = args.threads {
        opts.threads = Some(t.max(1));
    }
    if let Some(c) = args.cache_mib {
        opts.cache_mib = c;
    }
    opts.debug |= args.debug;
    let foreground = args.foreground || opts.debug;
    Ok(run_server(
        &args.image,
        &args.mountpoint,
        opts,
        foreground,
        "squashbox",
    ))
}

/// Serve `image` at `target` in the foreground or as a daemon that detaches once the mount is
/// ready. Shared by `squashbox mount` and the drop-in personalities; `prog` prefixes errors.
pub fn run_server(
    image: &std::path::Path,
    target: &std::path::Path,
    opts: ServeOptions,
    foreground: bool,
    prog: &str,
) -> ExitCode {
    squashbox_fuse::logger::init_for(opts.debug);
    // A detached server runs from "/", so it pins no directory: resolve the path first.
    let image = std::path::absolute(image).unwrap_or_else(|_| image.to_path_buf());
    let open = image_server::squashfs_opener(image);
    crate::mount_cmd::serve_opener(open, target, &opts, foreground, prog)
}

/// Serve what `open` opens at `target`: in the foreground, or as a daemon that detaches once
/// the mount is ready. Shared by every command and drop-in that serves a filesystem (image,
/// overlay, ext3); `prog` prefixes errors.
pub fn serve_opener(
    open: squashbox_fuse::Opener<'static>,
    target: &std::path::Path,
    opts: &ServeOptions,
    foreground: bool,
    prog: &str,
) -> ExitCode {
    if foreground {
        let target = match MountTarget::parse(target) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{prog}: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match squashbox_fuse::serve(open, target, opts, Box::new(|_| {})) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{prog}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    daemon::serve_detached(open, target, opts, prog)
}

/// Run `squashbox unmount`.
pub fn run_unmount(args: UnmountArgs) -> anyhow::Result<ExitCode> {
    let path = std::path::absolute(&args.mountpoint)?;
    if args.lazy {
        // Straight to a lazy detach: umount2(MNT_DETACH), or fusermount3 -u -z.
        match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => return Ok(ExitCode::SUCCESS),
            Err(nix::errno::Errno::EPERM) => {}
            Err(e) => anyhow::bail!("{}: unmount failed: {e}", path.display()),
        }
    }
    let source = mounted_source(&path);
    squashbox_fuse::unmount::unmount(&path, true).map_err(anyhow::Error::msg)?;
    if let Some(image) = source {
        wait_for_write_back(&image);
    }
    Ok(ExitCode::SUCCESS)
}

/// The source of the FUSE mount at `path` when it is an absolute path (an ext3 server shows
/// its image's there), from the mount table.
fn mounted_source(path: &Path) -> Option<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_str()?;
    table.lines().rev().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mnt = left.split(' ').nth(4)?;
        let mut r = right.split(' ');
        let (fstype, source) = (r.next()?, r.next()?);
        // Mounted without fusermount, the type shows as plain `fuse`.
        let fuse = fstype == "fuse" || fstype == "fuse.squashbox";
        (mnt == want && fuse && source.starts_with('/')).then(|| PathBuf::from(source))
    })
}

/// After unmounting an ext3 server, wait (at most 30 s) until it has written the image back
/// and exited: its open-file-description lock on the image goes with it. Locks of other
/// kinds (Apptainer's classic ones) are not waited for.
fn wait_for_write_back(image: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(image) else {
        return;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        // SAFETY: an all-zero flock is valid; F_OFD_GETLK only fills it in.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: a valid descriptor and flock structure.
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        // An OFD lock reports l_pid -1; anything else is not our server's.
        if rc != 0 || fl.l_type == libc::F_UNLCK as libc::c_short || fl.l_pid != -1 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    eprintln!(
        "squashbox: {}: the server is still writing it back 30 s after the unmount",
        image.display()
    );
}
