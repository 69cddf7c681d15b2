//! Running a container, for real, as a plain user.
//!
//! One process (P) does everything in order, single-threaded until the server is forked:
//! 1. check the image (its architecture, before anything is mounted), and plan: layers,
//!    ID maps, namespaces, mounts, environment;
//! 2. unshare the user and mount namespaces (and ipc, uts, net on request) and map ids;
//! 3. mount the session tmpfs on a fresh directory, and the FUSE root at `session/root`
//!    with a `/dev/fuse` fd it opened itself;
//! 4. fork the server (S, its own process group so a ^C goes to the container only), which
//!    opens the image and the layers, fills the skeleton and serves the fd with its threads;
//! 5. once S says it is ready: generate passwd/group, mount the plan under the root;
//! 6. unshare a child mount namespace (so the pivot does not move S's root), pivot_root,
//!    chdir, tell S (which then detaches the session in its namespace and removes the
//!    host directory), and exec the action through the container's `/bin/sh`.
//!
//! The payload replaces P, so its exit status and signals pass through unchanged. With
//! `-p`, P forks an init (pid 1 in the new pid namespace) that forwards signals, reaps
//! zombies and exits as the payload did. Teardown is the kernel's: when the container's
//! mount namespace dies, the root's last mount goes, the FUSE connection ends and S exits.
//! When S holds an ext3 image (an overlay, the SIF's overlay partition, an ext3 root), P
//! instead forks the container (which dies with P) and waits for it and then for S, so the
//! image is flushed, clean and unlocked when the command returns, with the payload's exit
//! status or signal.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::MntFlags;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

use crate::host::Host;
use crate::image::ImageInfo;
use crate::mount_plan::{HostProbe, Plan};
use crate::namespaces::Namespaces;
use crate::options::{Action, RunOptions};
use crate::process::{pipe, receive, receive_one, send, supervise, supervise_then_wait};
use crate::server::ServerSpec;
use crate::syscall::{LinuxSyscall, Syscall};
use crate::user_ns::{IdMaps, MapWriter, SubidSource};
use crate::{Result, RuntimeError, rt_err};

/// Everything decided before the first system call.
pub struct Prepared {
    /// The image.
    pub image: ImageInfo,
    /// The mount plan.
    pub plan: Plan,
    /// The ID maps.
    pub maps: IdMaps,
    /// The namespaces.
    pub ns: Namespaces,
    /// The environment.
    pub env: crate::env::ContainerEnv,
    /// The writable layers.
    pub layers: crate::writable::Layers,
    /// The action and its arguments.
    pub action: Action,
    /// The action's arguments.
    pub args: Vec<String>,
    /// `--no-eval`.
    pub no_eval: bool,
    /// An OCI-derived image's entrypoint and command (used by `run` without a runscript).
    pub oci: Option<crate::actions::OciProcess>,
}

/// Check and plan a run; nothing is changed on the system.
pub fn prepare(opts: &RunOptions, action: Action, args: &[String]) -> Result<Prepared> {
    let image = crate::image::inspect(&opts.image)?;
    let layers = crate::writable::plan(opts, image.kind, &crate::writable::sniff)?;
    let host = Host::current();
    let maps = crate::user_ns::plan(
        &host,
        opts.fakeroot,
        opts.ignore_subuid,
        &SubidSource::system(),
    );
    let ns = Namespaces::from_options(opts);
    let plan = crate::mount_plan::build(opts, &host, ns.pid, &HostProbe)?;
    let mut files = Vec::new();
    for f in &opts.env_files {
        let text =
            std::fs::read_to_string(f).map_err(|e| rt_err!("--env-file {}: {e}", f.display()))?;
        files.push((f.display().to_string(), text));
    }
    let binds: Vec<String> = opts.binds.iter().map(|b| b.dst.clone()).collect();
    let env = crate::env::build(
        opts,
        &host.env,
        &files,
        &image.path,
        &plan.home,
        action,
        &binds,
    )?;
    if action == Action::Exec && args.is_empty() {
        return Err(rt_err!("exec needs a command to run in the container"));
    }
    let oci = match image.kind {
        crate::writable::ImageKind::Sif { .. } if action == Action::Run => {
            crate::oci::from_sif(&image.path)
        }
        _ => None,
    };
    Ok(Prepared {
        image,
        plan,
        maps,
        ns,
        env,
        layers,
        action,
        args: args.to_vec(),
        no_eval: opts.no_eval,
        oci,
    })
}

/// Unshare the first namespaces and write the ID maps (through newuidmap/newgidmap when the
/// maps need them: a helper forked before the unshare runs them on this process).
fn enter_user_ns(sys: &dyn Syscall, ns: &Namespaces, maps: &IdMaps) -> Result<()> {
    let fail = |e: String| {
        rt_err!("{e}: unprivileged user namespaces look unavailable; run `squashbox doctor`")
    };
    if maps.writer == MapWriter::Direct {
        sys.unshare(ns.first_unshare()).map_err(fail)?;
        return crate::user_ns::write_own_maps(sys, maps)
            .map_err(|e| rt_err!("writing the ID maps: {e}"));
    }
    let (r, w) = pipe().map_err(RuntimeError)?;
    let me = nix::unistd::getpid().as_raw() as u32;
    // SAFETY: this process has a single thread here, so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(|e| rt_err!("fork: {e}"))? {
        ForkResult::Child => {
            drop(w);
            if receive_one(&r) != b"go" {
                std::process::exit(1);
            }
            for argv in crate::user_ns::helper_argv(maps, me) {
                let ok = std::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    eprintln!("squashbox: {} failed", argv.join(" "));
                    std::process::exit(1);
                }
            }
            std::process::exit(0);
        }
        ForkResult::Parent { child } => {
            drop(r);
            let res = sys.unshare(ns.first_unshare()).map_err(fail);
            if res.is_ok() {
                send(&w, b"go");
            }
            drop(w);
            let status = nix::sys::wait::waitpid(child, None);
            res?;
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ => Err(rt_err!(
                    "newuidmap/newgidmap could not map the /etc/subuid and /etc/subgid ranges; \
                     check them, or use --ignore-subuid"
                )),
            }
        }
    }
}

/// A fresh, empty session directory on the host (under `$TMPDIR`).
fn make_session_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir().join("squashbox-session.XXXXXX");
    nix::unistd::mkdtemp(&base).map_err(|e| {
        rt_err!(
            "cannot create a session directory in {}: {e}; set TMPDIR to a writable directory",
            std::env::temp_dir().display()
        )
    })
}

/// Detach the session in this namespace and remove its directory (best effort).
fn drop_session(session: &Path) {
    let _ = nix::mount::umount2(session, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(session);
}

/// Open `/dev/fuse` for one mount.
fn open_fuse() -> Result<OwnedFd> {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| {
            rt_err!(
                "cannot open /dev/fuse: {e}; FUSE is needed to run images, see `squashbox doctor`"
            )
        })?;
    Ok(dev.into())
}

/// Mount the session tmpfs, the FUSE root and the bound images; returns the `/dev/fuse`
/// fds of the root and of each bound image.
fn mount_session(
    sys: &dyn Syscall,
    p: &Prepared,
    session: &Path,
) -> Result<(OwnedFd, Vec<OwnedFd>)> {
    crate::session::setup(sys, session, &p.plan.session_dirs)?;
    let fd = open_fuse()?;
    let writable = !matches!(p.layers.upper, crate::writable::Upper::None);
    crate::session::mount_root(sys, session, crate::process::raw(&fd), writable, &p.maps)?;
    let mut binds = Vec::new();
    for n in 0..p.plan.image_binds.len() {
        let b = open_fuse()?;
        crate::session::mount_image_bind(sys, session, n, crate::process::raw(&b), &p.maps)?;
        binds.push(b);
    }
    Ok((fd, binds))
}

/// Fork the server. Returns once it serves, or with its one-line error.
fn start_server(
    spec: ServerSpec,
    fd: OwnedFd,
    bind_fds: Vec<OwnedFd>,
    session: &Path,
) -> Result<(Pid, OwnedFd)> {
    let (ready_r, ready_w) = pipe().map_err(RuntimeError)?;
    let (pivot_r, pivot_w) = pipe().map_err(RuntimeError)?;
    // SAFETY: this process has a single thread here, so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(|e| rt_err!("fork: {e}"))? {
        ForkResult::Child => {
            drop(ready_r);
            drop(pivot_w);
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
            unsafe {
                libc::prctl(libc::PR_SET_NAME, c"squashbox-srv".as_ptr());
            }
            let session = session.to_path_buf();
            let session_at_end = session.clone();
            let ready: squashbox_fuse::Readiness<'_> = Box::new(move |r| match r {
                Ok(()) => {
                    // Once the container has pivoted (or is gone), the session has no
                    // business in this namespace: detach it, remove the host directory.
                    let _ = std::thread::Builder::new()
                        .name("squashbox-session".into())
                        .spawn(move || {
                            let _ = receive(&pivot_r);
                            drop_session(&session);
                        });
                    send(&ready_w, b"r");
                }
                Err(e) => send(&ready_w, format!("f{e}").as_bytes()),
            });
            let code = match crate::server::serve(&spec, fd, bind_fds, ready) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            // The session thread may not have run yet (a container that ended at once):
            // whatever happened, leave nothing on the host.
            drop_session(&session_at_end);
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(fd);
            drop(bind_fds);
            drop(ready_w);
            drop(pivot_r);
            let msg = receive_one(&ready_r);
            match msg.first() {
                Some(b'r') => Ok((child, pivot_w)),
                Some(_) => Err(rt_err!(
                    "serving the image: {}",
                    String::from_utf8_lossy(&msg[1..])
                )),
                None => Err(rt_err!("the image server ended before it was ready")),
            }
        }
    }
}

/// Write the generated passwd and group into the session from the image's files.
fn generate_files(p: &Prepared, session: &Path) -> Result<()> {
    let root = session.join("root");
    let host = Host::current();
    if let Ok(t) = std::fs::read_to_string(root.join("etc/passwd")) {
        let text = crate::passwd::passwd(
            &t,
            &host,
            p.maps.inside_uid,
            p.maps.inside_gid,
            &p.plan.home,
        );
        std::fs::write(session.join("files/passwd"), text)
            .map_err(|e| rt_err!("writing the session passwd: {e}"))?;
    }
    if let Ok(t) = std::fs::read_to_string(root.join("etc/group")) {
        std::fs::write(session.join("files/group"), crate::passwd::group(&t, &host))
            .map_err(|e| rt_err!("writing the session group: {e}"))?;
    }
    Ok(())
}

/// Mount the plan, move into the root and start the payload (or its init with `-p`).
///
/// With `wait_for` (the server, when it holds an ext3 image), this process stays outside
/// the container and waits for the payload and then for the server, so that the image is
/// flushed and unlocked before the command returns.
fn enter_and_exec(
    sys: &dyn Syscall,
    p: &Prepared,
    session: &Path,
    pivot_w: OwnedFd,
    wait_for: Option<Pid>,
) -> Result<()> {
    let root = session.join("root");
    if p.ns.pid || wait_for.is_some() {
        if p.ns.pid {
            sys.unshare(CloneFlags::CLONE_NEWPID)
                .map_err(|e| rt_err!("{e}: cannot create a PID namespace"))?;
        }
        // SAFETY: single-threaded process.
        match unsafe { nix::unistd::fork() }.map_err(|e| rt_err!("fork: {e}"))? {
            ForkResult::Parent { child } => {
                drop(pivot_w);
                supervise_then_wait(child, true, wait_for);
            }
            ForkResult::Child => crate::process::die_with_parent(),
        }
    }
    let exists = |t: &Path| t.exists();
    crate::mount_plan::apply(&p.plan, sys, &root, session, &exists)?;
    crate::session::pivot(sys, &root)?;
    send(&pivot_w, b"p");
    drop(pivot_w);
    if sys.chdir(&p.plan.cwd).is_err() {
        eprintln!(
            "squashbox: warning: {} is not in the container, starting in /",
            p.plan.cwd.display()
        );
    }
    if p.ns.pid {
        // SAFETY: single-threaded process.
        match unsafe { nix::unistd::fork() }.map_err(|e| rt_err!("fork: {e}"))? {
            ForkResult::Parent { child } => supervise(child, false),
            ForkResult::Child => {}
        }
    }
    Err(rt_err!("{}", exec_action(p)))
}

/// Exec the action; returns the error message if it could not.
fn exec_action(p: &Prepared) -> String {
    let tail = crate::actions::tail(p.action, p.oci.as_ref());
    if Path::new("/bin/sh").exists() {
        let script = crate::env::script(&p.env, p.no_eval, "/.singularity.d/env", &tail);
        let mut argv = vec!["/bin/sh".into(), "-c".into(), script, "squashbox".into()];
        argv.extend(p.args.iter().cloned());
        return crate::process::exec(&argv, &p.env.base);
    }
    // No shell in the image (a distroless OCI image): exec, or run an OCI entrypoint, can
    // still work, with the environment set directly.
    let argv = match (p.action, &p.oci) {
        (Action::Exec, _) => p.args.clone(),
        (Action::Run, Some(oci)) => oci.argv(&p.args),
        _ => return format!("the container has no /bin/sh to {}", p.action.name()),
    };
    let mut env = p.env.base.clone();
    env.extend(p.env.inherited.iter().cloned());
    env.extend(p.env.overrides.iter().cloned());
    crate::process::exec(&argv, &env)
}

/// Run the container: on success this never returns (the process becomes the payload).
pub fn run(opts: &RunOptions, action: Action, args: &[String]) -> RuntimeError {
    let p = match prepare(opts, action, args) {
        Ok(p) => p,
        Err(e) => return e,
    };
    for w in &p.layers.warnings {
        eprintln!("squashbox: warning: {w}");
    }
    let lowers = match crate::server::lowers_of(&p.layers.lowers, &p.image.path, p.layers.sif_lower)
    {
        Ok(l) => l,
        Err(e) => return RuntimeError(e),
    };
    let sys = LinuxSyscall;
    if let Err(e) = enter_user_ns(&sys, &p.ns, &p.maps) {
        return e;
    }
    if let Some(Err(e)) = opts.hostname.as_deref().map(|h| sys.sethostname(h)) {
        return rt_err!("{e}");
    }
    if let Some(Err(e)) = p.ns.net.then(crate::namespaces::loopback_up) {
        return rt_err!("{e}");
    }
    let session = match make_session_dir() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let result = (|| {
        let upper = crate::server::upper_of(&p.layers.upper, &session, &p.image.path)
            .map_err(RuntimeError)?;
        let (fd, bind_fds) = mount_session(&sys, &p, &session)?;
        let spec = ServerSpec {
            image: p.image.path.clone(),
            root: p.image.root,
            lowers,
            skeleton_dir: session.join("skeleton"),
            needed: p.plan.skeleton.clone(),
            upper,
            image_binds: p.plan.image_binds.clone(),
            cache_mib: 64,
        };
        let holds_image = spec.holds_ext3();
        let (server, pivot_w) = start_server(spec, fd, bind_fds, &session)?;
        generate_files(&p, &session)?;
        enter_and_exec(&sys, &p, &session, pivot_w, holds_image.then_some(server))
    })();
    let e = match result {
        Ok(()) => rt_err!("the container did not start"),
        Err(e) => e,
    };
    drop_session(&session);
    e
}
