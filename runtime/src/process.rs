//! Process plumbing for the launcher: pipes between the processes of a run, waiting for a
//! child while forwarding signals to it (and reaping every other child, as an init must),
//! and exec.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// A one-way pipe with both ends close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// Write all of `buf` (errors ignored: the reader may be gone).
pub fn send(fd: &OwnedFd, buf: &[u8]) {
    let _ = nix::unistd::write(fd, buf);
}

/// Read what the other end sends until it closes (at most 64 KiB).
pub fn receive(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return out,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() >= 65536 {
                    return out;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return out,
        }
    }
}

/// Read one message of at most 4 KiB (one `read`), or nothing when the writer is gone.
pub fn receive_one(fd: &OwnedFd) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(n) => return buf[..n].to_vec(),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Vec::new(),
        }
    }
}

static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; pid is our child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Wait for `child`, forwarding the usual signals to it and reaping other children; then
/// end this process as the child ended: the same exit status, or (when `reraise`) death by
/// the same signal, else status 128+signal.
pub fn supervise(child: Pid, reraise: bool) -> ! {
    supervise_then_wait(child, reraise, None)
}

/// How long to wait for the server after the container ended before giving up (processes
/// left running in the container keep its mounts, and so the server, alive).
const SERVER_GRACE: Duration = Duration::from_secs(10);

/// End this child when its parent dies (a killed runtime takes its container with it).
pub fn die_with_parent() {
    let parent = nix::unistd::getppid();
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // The parent may have died before the call: then nobody will send the signal.
    if nix::unistd::getppid() != parent {
        std::process::exit(crate::ERROR_EXIT.into());
    }
}

/// [`supervise`], and once `child` has ended, wait for `server` too (at most
/// [`SERVER_GRACE`]) before ending as the child did.
pub fn supervise_then_wait(child: Pid, reraise: bool, server: Option<Pid>) -> ! {
    FORWARD_TO.store(child.as_raw(), Ordering::SeqCst);
    let act = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in FORWARDED {
        // SAFETY: the handler only calls kill(2), which is async-signal-safe.
        let _ = unsafe { sigaction(*s, &act) };
    }
    let mut server_done = server.is_none();
    let ended = loop {
        match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => break Ended::Code(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => break Ended::Signal(sig),
            Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _))
                if Some(pid) == server =>
            {
                server_done = true;
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(crate::ERROR_EXIT.into()),
        }
    };
    if let (false, Some(s)) = (server_done, server) {
        wait_server(s);
    }
    match ended {
        Ended::Code(code) => std::process::exit(code),
        Ended::Signal(sig) => {
            if reraise {
                let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
                // SAFETY: restoring the default action of one signal.
                let _ = unsafe { sigaction(sig, &dfl) };
                let _ = nix::sys::signal::raise(sig);
            }
            std::process::exit(128 + sig as i32);
        }
    }
}

/// How the supervised child ended.
enum Ended {
    Code(i32),
    Signal(Signal),
}

/// Wait for the server to end after the container did, at most [`SERVER_GRACE`].
fn wait_server(server: Pid) {
    let start = Instant::now();
    while start.elapsed() < SERVER_GRACE {
        match waitpid(server, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(2)),
            Err(nix::errno::Errno::EINTR) => {}
            _ => return,
        }
    }
    eprintln!(
        "squashbox: warning: processes left in the container keep its filesystems in use; \
         the overlay image is written back and unlocked when they end"
    );
}

/// Replace this process with `argv` and `env`; returns only on failure, with a message.
pub fn exec(argv: &[String], env: &[(String, String)]) -> String {
    let to_c = |s: &str| CString::new(s.as_bytes()).unwrap_or_default();
    let cargv: Vec<CString> = argv.iter().map(|a| to_c(a)).collect();
    let cenv: Vec<CString> = env.iter().map(|(k, v)| to_c(&format!("{k}={v}"))).collect();
    let Some(prog) = cargv.first() else {
        return "nothing to execute".into();
    };
    let err = if argv[0].contains('/') {
        nix::unistd::execve(prog, &cargv, &cenv).unwrap_err()
    } else {
        // Look the command up on the container's PATH.
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or(crate::env::DEFAULT_PATH, |(_, v)| v.as_str());
        let mut last = nix::errno::Errno::ENOENT;
        for dir in path.split(':').filter(|d| !d.is_empty()) {
            let full = to_c(&format!("{dir}/{}", argv[0]));
            match nix::unistd::execve(&full, &cargv, &cenv) {
                Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => {}
                Err(e) => last = e,
                Ok(_) => unreachable!(),
            }
        }
        last
    };
    format!("could not execute {}: {err}", argv[0])
}

/// The raw number of `fd`, for mount options.
pub fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}
