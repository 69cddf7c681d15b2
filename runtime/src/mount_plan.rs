//! The mounts that build the container root, in Apptainer's order: dev, the bind path
//! list (`/etc/hosts`, `/etc/localtime`), kernel filesystems, home, temporary directories,
//! files (`/etc/passwd`, `/etc/group`, `/etc/resolv.conf`), user binds, then `$PWD`.
//!
//! [`build`] decides (pure: host facts come through a [`Probe`]); [`apply`] carries a plan
//! out through the [`Syscall`] seam under a root directory. The image root itself is mounted
//! by the launcher before the plan runs; destinations missing from the image are made by the
//! skeleton layer ([`Plan::skeleton`]) that the server stacks over the image.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::bind::BindSpec;
use crate::host::Host;
use crate::options::RunOptions;
use crate::syscall::Syscall;
use crate::{Result, rt_err};

/// What a host path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// Anything else (bound as a file).
    File,
}

/// How the plan learns about host paths.
pub trait Probe {
    /// The kind of `path` after following symlinks; `None` when it does not exist.
    fn kind(&self, path: &Path) -> Option<Kind>;
}

/// The real host.
pub struct HostProbe;

impl Probe for HostProbe {
    fn kind(&self, path: &Path) -> Option<Kind> {
        let m = std::fs::metadata(path).ok()?;
        Some(if m.is_dir() { Kind::Dir } else { Kind::File })
    }
}

/// Where a bind's source lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path.
    Host(PathBuf),
    /// A path inside the session directory (`files/passwd`, `home`, ...).
    Session(PathBuf),
}

/// One step of the plan. Destinations are container paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A bind mount, `MS_REC` when `recursive`, remounted read-only when `ro`.
    Bind {
        /// Source.
        src: Source,
        /// Destination.
        dst: PathBuf,
        /// Recursive.
        recursive: bool,
        /// Read-only.
        ro: bool,
        /// Skipped when the destination does not exist in the image (generated files).
        if_in_image: bool,
    },
    /// A fresh proc (only inside a new pid namespace).
    Proc,
    /// A fresh sysfs (only inside a new network namespace, whose devices it shows).
    Sysfs,
    /// A tmpfs with these options.
    Tmpfs {
        /// Destination.
        dst: PathBuf,
        /// Mount data, e.g. `mode=1777`.
        data: String,
    },
    /// A devpts instance of its own at `dst`.
    Devpts {
        /// Destination.
        dst: PathBuf,
    },
    /// An empty file to bind a device node onto (in a tmpfs the plan mounted).
    Touch(PathBuf),
    /// A symbolic link `link` -> `target` (in a tmpfs the plan mounted).
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// Where the link is.
        link: PathBuf,
    },
}

/// The plan of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Mount steps, in order.
    pub steps: Vec<Step>,
    /// Destinations the image must have, with the kind each must be: the skeleton layer
    /// provides the missing ones.
    pub skeleton: Vec<(PathBuf, Kind)>,
    /// Session directories to create before the plan runs (relative to the session).
    pub session_dirs: Vec<PathBuf>,
    /// The home directory inside the container.
    pub home: PathBuf,
    /// The working directory inside the container.
    pub cwd: PathBuf,
    /// Images bound in (`-B IMG:DST:image-src=PATH[,id=N]`); image `n` is served on a
    /// FUSE mount of its own at `session/images/n`, and bound from there.
    pub image_binds: Vec<ImageBind>,
}

/// An image bound into the container: an image file (SquashFS or ext3, bare or a SIF's
/// partition) that the server serves read-only beside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBind {
    /// The image file (absolute).
    pub image: PathBuf,
    /// `id=N`: the SIF partition (default: the SIF's primary partition).
    pub id: Option<u32>,
}

const DEV_NODES: &[&str] = &["null", "zero", "random", "urandom", "tty"];

struct Builder<'a> {
    opts: &'a RunOptions,
    probe: &'a dyn Probe,
    plan: Plan,
}

impl Builder<'_> {
    fn skipped(&self, dst: &Path) -> bool {
        self.opts.no_mount(&dst.display().to_string())
    }

    fn need(&mut self, dst: &Path, kind: Kind) {
        if dst != Path::new("/") && !self.plan.skeleton.iter().any(|(p, _)| p == dst) {
            self.plan.skeleton.push((dst.to_path_buf(), kind));
        }
    }

    fn bind_host(&mut self, src: &Path, dst: &Path, ro: bool, optional: bool) -> Result<()> {
        if self.skipped(dst) {
            return Ok(());
        }
        let Some(kind) = self.probe.kind(src) else {
            if optional {
                return Ok(());
            }
            return Err(rt_err!(
                "bind source {} does not exist: create it or fix the -B/--mount argument",
                src.display()
            ));
        };
        self.need(dst, kind);
        self.plan.steps.push(Step::Bind {
            src: Source::Host(src.to_path_buf()),
            dst: dst.to_path_buf(),
            recursive: kind == Kind::Dir,
            ro,
            if_in_image: false,
        });
        Ok(())
    }

    fn bind_session(&mut self, rel: &str, dst: &Path, kind: Kind, if_in_image: bool) {
        if self.skipped(dst) {
            return;
        }
        if kind == Kind::Dir {
            self.plan.session_dirs.push(rel.into());
        }
        if !if_in_image {
            self.need(dst, kind);
        }
        self.plan.steps.push(Step::Bind {
            src: Source::Session(rel.into()),
            dst: dst.to_path_buf(),
            recursive: false,
            ro: false,
            if_in_image,
        });
    }

    fn dev(&mut self) {
        if self.opts.no_mount("dev") || self.skipped(Path::new("/dev")) {
            return;
        }
        if !self.opts.contained() {
            self.need(Path::new("/dev"), Kind::Dir);
            self.plan.steps.push(Step::Bind {
                src: Source::Host("/dev".into()),
                dst: "/dev".into(),
                recursive: true,
                ro: false,
                if_in_image: false,
            });
            return;
        }
        // The minimal /dev: a tmpfs with the safe nodes bound in, links, shm and pts.
        self.need(Path::new("/dev"), Kind::Dir);
        let s = &mut self.plan.steps;
        s.push(Step::Tmpfs {
            dst: "/dev".into(),
            data: "mode=755,size=1m".into(),
        });
        for n in DEV_NODES {
            let p = Path::new("/dev").join(n);
            s.push(Step::Touch(p.clone()));
            s.push(Step::Bind {
                src: Source::Host(p.clone()),
                dst: p,
                recursive: false,
                ro: false,
                if_in_image: false,
            });
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            s.push(Step::Symlink {
                target: target.into(),
                link: Path::new("/dev").join(link),
            });
        }
        s.push(Step::Tmpfs {
            dst: "/dev/shm".into(),
            data: "mode=1777".into(),
        });
        if !self.opts.no_mount("devpts") {
            s.push(Step::Devpts {
                dst: "/dev/pts".into(),
            });
        }
    }

    fn kernel(&mut self, new_pid_ns: bool, new_net_ns: bool) {
        if !self.opts.no_mount("proc") && !self.skipped(Path::new("/proc")) {
            self.need(Path::new("/proc"), Kind::Dir);
            if new_pid_ns {
                self.plan.steps.push(Step::Proc);
            } else {
                self.plan.steps.push(Step::Bind {
                    src: Source::Host("/proc".into()),
                    dst: "/proc".into(),
                    recursive: true,
                    ro: false,
                    if_in_image: false,
                });
            }
        }
        if !self.opts.no_mount("sys") && !self.skipped(Path::new("/sys")) {
            self.need(Path::new("/sys"), Kind::Dir);
            if new_net_ns {
                self.plan.steps.push(Step::Sysfs);
                return;
            }
            self.plan.steps.push(Step::Bind {
                src: Source::Host("/sys".into()),
                dst: "/sys".into(),
                recursive: true,
                ro: false,
                if_in_image: false,
            });
        }
    }
}

/// Whether `p` is `base` or below it.
fn under(p: &Path, base: &Path) -> bool {
    p.starts_with(base)
}

/// Build the plan for `opts`, run as `host` (with `fakeroot` meaning uid 0 inside, and
/// `new_pid_ns` a fresh /proc).
pub fn build(opts: &RunOptions, host: &Host, new_pid_ns: bool, probe: &dyn Probe) -> Result<Plan> {
    let mut b = Builder {
        opts,
        probe,
        plan: Plan {
            steps: Vec::new(),
            skeleton: Vec::new(),
            session_dirs: Vec::new(),
            home: host.home.clone(),
            cwd: host.cwd.clone(),
            image_binds: Vec::new(),
        },
    };
    b.dev();
    if !opts.no_mount("bind-paths") {
        for f in ["/etc/localtime", "/etc/hosts"] {
            b.bind_host(Path::new(f), Path::new(f), false, true)?;
        }
    }
    b.kernel(new_pid_ns, opts.net);

    // Home: -H src[:dst], /root under fakeroot, an empty one with --contain.
    let (home_src, home_dst) = match &opts.home {
        Some(h) => {
            let (s, d) = h.split_once(':').unwrap_or((h, h));
            if !d.starts_with('/') {
                return Err(rt_err!("-H {h}: the home destination must be absolute"));
            }
            (Some(PathBuf::from(s)), PathBuf::from(d))
        }
        None if opts.fakeroot => (Some(host.home.clone()), PathBuf::from("/root")),
        None => (Some(host.home.clone()), host.home.clone()),
    };
    b.plan.home = home_dst.clone();
    let home_mounted = !opts.no_home && !opts.no_mount("home") && home_dst != Path::new("/");
    if home_mounted {
        if opts.contained() && opts.home.is_none() {
            b.bind_session("home", &home_dst, Kind::Dir, false);
        } else if let Some(src) = home_src {
            b.bind_host(&src, &home_dst, false, opts.home.is_none())?;
        }
    }

    // /tmp and /var/tmp: the host's, or the session's / workdir's with --contain.
    if !opts.no_mount("tmp") {
        if opts.contained() {
            match &opts.workdir {
                Some(w) => {
                    b.bind_host(&w.join("tmp"), Path::new("/tmp"), false, false)?;
                    b.bind_host(&w.join("var_tmp"), Path::new("/var/tmp"), false, false)?;
                }
                None => {
                    b.bind_session("tmp", Path::new("/tmp"), Kind::Dir, false);
                    b.bind_session("var_tmp", Path::new("/var/tmp"), Kind::Dir, false);
                }
            }
        } else {
            b.bind_host(Path::new("/tmp"), Path::new("/tmp"), false, true)?;
            b.bind_host(Path::new("/var/tmp"), Path::new("/var/tmp"), false, true)?;
        }
    }

    // Files: generated passwd and group (if the image has them), the host's resolv.conf.
    if !(opts.fakeroot && opts.writable) {
        b.bind_session("files/passwd", Path::new("/etc/passwd"), Kind::File, true);
        b.bind_session("files/group", Path::new("/etc/group"), Kind::File, true);
    }
    b.bind_host(
        Path::new("/etc/resolv.conf"),
        Path::new("/etc/resolv.conf"),
        false,
        true,
    )?;

    // User binds.
    for bind in &opts.binds {
        add_user_bind(&mut b, bind)?;
    }

    // $PWD, unless contained, already visible through another mount, or "/".
    let mounted: Vec<PathBuf> = b
        .plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Bind { dst, .. } | Step::Tmpfs { dst, .. } => Some(dst.clone()),
            _ => None,
        })
        .collect();
    let cwd = host.cwd.clone();
    if !opts.contained()
        && !opts.no_mount("cwd")
        && cwd != Path::new("/")
        && !mounted.iter().any(|m| under(&cwd, m))
    {
        b.bind_host(&cwd, &cwd, false, true)?;
    }
    b.plan.cwd = match &opts.pwd {
        Some(p) => PathBuf::from(p),
        None if opts.contained() => home_dst,
        None => cwd,
    };
    if opts.contained() {
        b.plan.session_dirs.sort();
        b.plan.session_dirs.dedup();
    }
    Ok(b.plan)
}

fn add_user_bind(b: &mut Builder<'_>, bind: &BindSpec) -> Result<()> {
    let src = std::path::absolute(&bind.src).unwrap_or_else(|_| PathBuf::from(&bind.src));
    if bind.image_src.is_none() && bind.id.is_none() {
        return b.bind_host(&src, Path::new(&bind.dst), bind.ro, false);
    }
    // An image bind: always read-only (the image's own filesystem is not written).
    let dst = Path::new(&bind.dst);
    if b.skipped(dst) {
        return Ok(());
    }
    if b.probe.kind(&src) != Some(Kind::File) {
        return Err(rt_err!(
            "bind {}: image-src= and id= need an image file (SquashFS, ext3 or SIF)",
            bind.src
        ));
    }
    let mount = format!("images/{}", b.plan.image_binds.len());
    b.plan.image_binds.push(ImageBind {
        image: src,
        id: bind.id,
    });
    b.plan.session_dirs.push(mount.clone().into());
    let inner = bind
        .image_src
        .as_deref()
        .unwrap_or("/")
        .trim_start_matches('/');
    let rel = if inner.is_empty() {
        mount
    } else {
        format!("{mount}/{inner}")
    };
    b.need(dst, Kind::Dir);
    b.plan.steps.push(Step::Bind {
        src: Source::Session(rel.into()),
        dst: dst.to_path_buf(),
        recursive: false,
        ro: true,
        if_in_image: false,
    });
    Ok(())
}

/// Join a container path onto `root`.
pub fn in_root(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Carry out `plan` under `root` (the container root, already mounted), with session
/// files under `session`. `exists_in_root` answers for `if_in_image` binds.
pub fn apply(
    plan: &Plan,
    sys: &dyn Syscall,
    root: &Path,
    session: &Path,
    exists_in_root: &dyn Fn(&Path) -> bool,
) -> Result<()> {
    let err = |e: String| rt_err!("building the container root: {e}");
    for step in &plan.steps {
        match step {
            Step::Bind {
                src,
                dst,
                recursive,
                ro,
                if_in_image,
            } => {
                if *if_in_image && !exists_in_root(&in_root(root, dst)) {
                    continue;
                }
                let target = sys.in_root(root, dst);
                let src = match src {
                    Source::Host(p) => p.clone(),
                    Source::Session(p) => session.join(p),
                };
                let mut flags = MsFlags::MS_BIND;
                if *recursive {
                    flags |= MsFlags::MS_REC;
                }
                sys.mount(Some(&src), &target, None, flags, None)
                    .map_err(err)?;
                if *ro {
                    // Resolved again: now the path names the bind mount.
                    sys.mount(
                        None,
                        &sys.in_root(root, dst),
                        None,
                        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                        None,
                    )
                    .map_err(err)?;
                }
            }
            Step::Proc => sys
                .mount(
                    Some(Path::new("proc")),
                    &in_root(root, Path::new("/proc")),
                    Some("proc"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    None,
                )
                .map_err(err)?,
            Step::Tmpfs { dst, data } => {
                let t = in_root(root, dst);
                sys.mkdir_all(&t, 0o755).map_err(err)?;
                sys.mount(
                    Some(Path::new("tmpfs")),
                    &t,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID,
                    Some(data),
                )
                .map_err(err)?
            }
            Step::Sysfs => sys
                .mount(
                    Some(Path::new("sysfs")),
                    &in_root(root, Path::new("/sys")),
                    Some("sysfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    None,
                )
                .map_err(err)?,
            Step::Devpts { dst } => {
                let t = in_root(root, dst);
                sys.mkdir_all(&t, 0o755).map_err(err)?;
                sys.mount(
                    Some(Path::new("devpts")),
                    &t,
                    Some("devpts"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                    Some("newinstance,ptmxmode=0666,mode=0620"),
                )
                .map_err(err)?
            }
            Step::Touch(p) => sys
                .create_file(&in_root(root, p), b"", 0o644)
                .map_err(err)?,
            Step::Symlink { target, link } => {
                sys.symlink(target, &in_root(root, link)).map_err(err)?
            }
        }
    }
    Ok(())
}

/// One line per step, for golden comparisons and `--debug` output.
pub fn render(plan: &Plan) -> Vec<String> {
    let src = |s: &Source| match s {
        Source::Host(p) => p.display().to_string(),
        Source::Session(p) => format!("session:{}", p.display()),
    };
    let mut out: Vec<String> = plan
        .steps
        .iter()
        .map(|s| match s {
            Step::Bind {
                src: s,
                dst,
                recursive,
                ro,
                if_in_image,
            } => format!(
                "bind {} -> {}{}{}{}",
                src(s),
                dst.display(),
                if *recursive { " rec" } else { "" },
                if *ro { " ro" } else { "" },
                if *if_in_image { " if-in-image" } else { "" }
            ),
            Step::Proc => "proc -> /proc".into(),
            Step::Sysfs => "sysfs -> /sys".into(),
            Step::Tmpfs { dst, data } => format!("tmpfs -> {} {data}", dst.display()),
            Step::Devpts { dst } => format!("devpts -> {}", dst.display()),
            Step::Touch(p) => format!("touch {}", p.display()),
            Step::Symlink { target, link } => {
                format!("symlink {} -> {}", link.display(), target.display())
            }
        })
        .collect();
    out.push(format!("home {}", plan.home.display()));
    out.push(format!("cwd {}", plan.cwd.display()));
    out
}

#[cfg(test)]
#[path = "mount_plan_tests.rs"]
mod tests;
