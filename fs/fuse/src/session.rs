//! Serving one mount: open the image (bare SquashFS or SIF), mount (direct `mount(2)` as root
//! or in a user+mount namespace, `fusermount3` for plain users, or a pre-mounted `/dev/fd/N`),
//! report readiness, run the request loops, and stop on unmount, SIGTERM/SIGINT or idle timeout.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{Config, MountOption, Notifier, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};
use squashbox_vfs::Filesystem;

use crate::fuse_adapter::{Activity, FuseAdapter};
use crate::options::ServeOptions;
use crate::stats::RequestStats;
use crate::unmount::unmount;
use crate::write_back::{WriteOpens, write_back};

/// A filesystem ready to serve, and the name it is shown under (`fsname`, log lines).
pub type Served = (Arc<dyn Filesystem>, String);

/// Opens the filesystem to serve, after the session has set the process up (signals
/// blocked, standard fds reserved) and before any thread starts; `Err` is a one-line message.
pub type Opener<'a> = Box<dyn FnOnce(&ServeOptions) -> Result<Served, String> + 'a>;

/// Where to serve it.
#[derive(Debug)]
pub enum MountTarget {
    /// Mount on this directory.
    Path(PathBuf),
    /// Serve an already-mounted `/dev/fuse` fd (a `/dev/fd/N` target).
    Fd(OwnedFd),
}

impl MountTarget {
    /// Interpret a command-line target: `/dev/fd/N` is a pre-mounted FUSE fd.
    pub fn parse(target: &Path) -> Result<MountTarget, String> {
        if let Some(n) = target.to_str().and_then(|s| s.strip_prefix("/dev/fd/")) {
            let fd: i32 = n
                .parse()
                .map_err(|_| format!("{}: bad fd target", target.display()))?;
            // The fd must be open; fstat tells.
            nix::sys::stat::fstat(
                // SAFETY: only used for the duration of this fstat call.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            )
            .map_err(|e| format!("{}: {e}", target.display()))?;
            // SAFETY: the caller passed us this fd to own (libfuse semantics of /dev/fd/N).
            return Ok(MountTarget::Fd(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        Ok(MountTarget::Path(target.to_path_buf()))
    }
}

/// Called once: `Ok` when the mount is ready to serve, `Err(message)` when it failed.
pub type Readiness<'a> = Box<dyn FnOnce(Result<(), &str>) + 'a>;

fn notify(pipe: &Path, byte: u8) {
    match OpenOptions::new().write(true).open(pipe) {
        Ok(mut f) => {
            if let Err(e) = f.write_all(&[byte]) {
                log::warn!("notify_pipe {}: {e}", pipe.display());
            }
        }
        Err(e) => log::warn!("notify_pipe {}: {e}", pipe.display()),
    }
}

/// Whether cloned `/dev/fuse` fds can work: cloning opens `/dev/fuse` again, and for an fd
/// target (or a user that can open the device) issues FUSE_DEV_IOC_CLONE on it.
fn clone_fd_works(existing: Option<&OwnedFd>) -> bool {
    let Ok(dev) = OpenOptions::new().read(true).write(true).open("/dev/fuse") else {
        return false;
    };
    let Some(fd) = existing else { return true };
    nix::ioctl_read!(fuse_dev_ioc_clone, 229, 0, u32);
    let mut src = fd.as_raw_fd() as u32;
    // SAFETY: FUSE_DEV_IOC_CLONE reads one u32 (the source fd) from the pointer we pass; the
    // probe fd is closed right after, which detaches it from the connection again.
    unsafe { fuse_dev_ioc_clone(dev.as_raw_fd(), &mut src) }.is_ok()
}

fn fd_acl(acl: SessionACL) -> SessionACL {
    match acl {
        SessionACL::RootAndOwner => SessionACL::RootAndOwner,
        _ => SessionACL::All,
    }
}

fn reserve_std_fds() {
    use std::os::fd::IntoRawFd;
    for _ in 0..3 {
        match OpenOptions::new().read(true).write(true).open("/dev/null") {
            // A low number means a standard stream was closed: keep /dev/null there.
            Ok(f) if f.as_raw_fd() <= 2 => {
                let _ = f.into_raw_fd();
            }
            _ => return,
        }
    }
}

/// Bound glibc malloc's per-thread arenas. Every loop and pool thread otherwise gets its own
/// arena, and decompressed blocks allocated in one thread and freed in another leave each
/// arena holding freed memory: tens of MiB of RSS beyond the block cache under load.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before this function starts
    // any thread, and M_ARENA_MAX takes a plain count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard one: servers of host directories keep a
/// descriptor per recently used node (a quarter of the limit; see `squashbox_hostdir`), and
/// finding an evicted node again costs syscalls on every request that touches it.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit struct that we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::debug!("raising RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serve what `open` opens at `target` until it is unmounted (or a signal / the idle timeout
/// stops it). `ready` is called exactly once. Call this before the process starts any other
/// thread: it blocks SIGTERM, SIGINT and SIGHUP so that a dedicated thread handles them.
pub fn serve(
    open: Opener<'_>,
    target: MountTarget,
    opts: &ServeOptions,
    ready: Readiness<'_>,
) -> Result<(), String> {
    let mut ready = Some(ready);
    let mut report = |r: Result<(), &str>| {
        if let Some(pipe) = &opts.notify_pipe {
            notify(pipe, if r.is_ok() { b's' } else { b'f' });
        }
        if let Some(f) = ready.take() {
            f(r);
        }
    };
    let fail = |report: &mut dyn FnMut(Result<(), &str>), msg: String| {
        report(Err(&msg));
        Err(msg)
    };

    // fuser refuses a /dev/fuse fd below 3: make sure 0, 1 and 2 are taken (as libfuse does
    // for helpers started with closed standard streams).
    reserve_std_fds();
    limit_malloc_arenas();
    raise_nofile_limit();

    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        return fail(&mut report, format!("blocking signals: {e}"));
    }

    let threads = opts.thread_count();
    let (fs, name) = match open(opts) {
        Ok(x) => x,
        Err(e) => return fail(&mut report, e),
    };
    // Workers for what filesystems hand off (decompression, big reads): one per core (or
    // per requested thread).
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("squashbox-io-{i}"))
        .build_global();
    let read_only = fs.policy().read_only;
    let activity = opts.idle_timeout.map(|_| {
        let a = Arc::new(Activity::default());
        a.last_request.store(unix_now(), Ordering::Relaxed);
        a
    });
    let stats = opts.print_stats.then(|| Arc::new(RequestStats::default()));
    let write_opens = fs
        .policy()
        .writeback_cache
        .then(|| Arc::new(WriteOpens::default()));
    let mut adapter = FuseAdapter::new(
        Arc::clone(&fs),
        activity.clone(),
        stats.clone(),
        opts.max_background,
    );
    if let Some(w) = &write_opens {
        adapter = adapter.track_write_opens(Arc::clone(w));
    }

    let acl = if opts.allow_other {
        SessionACL::All
    } else if opts.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    let mut config = Config::default();
    config.acl = acl;
    config.n_threads = Some(threads);
    config.mount_options = vec![
        MountOption::DefaultPermissions,
        MountOption::FSName(name.clone()),
        MountOption::Subtype("squashbox".into()),
    ];
    if read_only {
        config.mount_options.push(MountOption::RO);
    }
    config
        .mount_options
        .extend(opts.mount_options.iter().cloned());
    let fd_target = match &target {
        MountTarget::Fd(fd) => Some(fd),
        MountTarget::Path(_) => None,
    };
    config.clone_fd = threads > 1 && opts.clone_fd && {
        let ok = clone_fd_works(fd_target);
        if !ok {
            eprintln!("squashbox: failed to clone device fd");
            eprintln!("squashbox: continue without -o clone_fd");
        }
        ok
    };

    let (session, mountpoint) = match target {
        MountTarget::Path(p) => match Session::new(adapter, &p, &config) {
            Ok(s) => (s, Some(p)),
            Err(e) => return fail(&mut report, format!("mounting on {}: {e}", p.display())),
        },
        // Whoever mounted the fd chose user_id= and allow_other, and the kernel enforces them;
        // filtering again by our own uid would lock out the mount's owner.
        MountTarget::Fd(fd) => match Session::from_fd(adapter, fd, fd_acl(acl), config) {
            Ok(s) => (s, None),
            Err(e) => return fail(&mut report, format!("serving the FUSE fd: {e}")),
        },
    };
    log::info!("{name}: serving with {threads} threads");
    report(Ok(()));

    let stopping = Arc::new(AtomicBool::new(false));
    if opts.handle_signals {
        let dirty = write_opens.map(|w| (session.notifier(), w));
        spawn_signal_thread(
            signals,
            mountpoint.clone(),
            Arc::clone(&stopping),
            Arc::clone(&fs),
            dirty,
        );
    }
    if let (Some(timeout), Some(activity)) = (opts.idle_timeout, activity) {
        spawn_idle_thread(
            timeout,
            activity,
            mountpoint.clone(),
            Arc::clone(&stopping),
            fs,
        );
    }
    let result = session.run().map_err(|e| format!("FUSE session: {e}"));
    stopping.store(true, Ordering::SeqCst);
    if let Some(s) = stats {
        crate::logger::write_now(&format!("squashbox: {}", s.summary()));
    }
    result
}

/// Stop serving: unmount the path, or for an fd target (whose mount belongs to the caller)
/// write back what the filesystem holds and exit, which closes the fd and ends the
/// connection.
fn stop(mountpoint: Option<&Path>, lazy_if_busy: bool, fs: &dyn Filesystem) -> Result<(), String> {
    match mountpoint {
        Some(p) => unmount(p, lazy_if_busy),
        None => {
            fs.destroy();
            std::process::exit(0)
        }
    }
}

/// On SIGTERM, SIGINT or SIGHUP: have the kernel send the dirty pages of files still open
/// (`dirty`, under the writeback cache), unmount, write back at once (Apptainer sends SIGKILL
/// one second after SIGTERM, and a lazily detached mount may keep the session alive), then
/// give the request loops a moment to end before exiting.
fn spawn_signal_thread(
    signals: SigSet,
    mountpoint: Option<PathBuf>,
    stopping: Arc<AtomicBool>,
    fs: Arc<dyn Filesystem>,
    dirty: Option<(Notifier, Arc<WriteOpens>)>,
) {
    let spawned = std::thread::Builder::new()
        .name("squashbox-signals".into())
        .spawn(move || {
            loop {
                let Ok(sig) = signals.wait() else { continue };
                log::info!("received {sig}, unmounting");
                stopping.store(true, Ordering::SeqCst);
                if let Some((notifier, opens)) = &dirty {
                    let n = write_back(notifier, opens);
                    log::info!("asked the kernel to write back {n} files open for writing");
                }
                match stop(mountpoint.as_deref(), true, fs.as_ref()) {
                    Ok(()) => {
                        fs.destroy();
                        // The loops see ENODEV and `serve` returns. A lazily detached mount
                        // (a file still open in it) keeps them running: everything is
                        // written, so exit within Apptainer's one second regardless.
                        std::thread::sleep(Duration::from_millis(100));
                        std::process::exit(0);
                    }
                    Err(e) => {
                        eprintln!("squashbox: {e}");
                        std::process::exit(1);
                    }
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the signal thread: {e}");
    }
}

fn spawn_idle_thread(
    timeout: Duration,
    activity: Arc<Activity>,
    mountpoint: Option<PathBuf>,
    stopping: Arc<AtomicBool>,
    fs: Arc<dyn Filesystem>,
) {
    let spawned = std::thread::Builder::new()
        .name("squashbox-idle".into())
        .spawn(move || {
            let tick = timeout
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(100));
            let mut last_seen = activity.last_request.load(Ordering::Relaxed);
            let mut idle_since = Instant::now();
            while !stopping.load(Ordering::SeqCst) {
                std::thread::sleep(tick);
                let last = activity.last_request.load(Ordering::Relaxed);
                if last != last_seen || activity.open_handles.load(Ordering::Relaxed) > 0 {
                    last_seen = last;
                    idle_since = Instant::now();
                    continue;
                }
                if idle_since.elapsed() >= timeout {
                    log::info!("idle for {timeout:?}, unmounting");
                    match stop(mountpoint.as_deref(), false, fs.as_ref()) {
                        Ok(()) => return,
                        // Busy (a cwd or mapping inside): try again after another idle period.
                        Err(e) => {
                            log::info!("idle unmount: {e}");
                            idle_since = Instant::now();
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the idle-timeout thread: {e}");
    }
}
