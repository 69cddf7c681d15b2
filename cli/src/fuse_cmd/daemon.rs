//! Detaching: fork before any thread starts; the child mounts and serves, and reports
//! readiness (or its one-line error) to the parent over a pipe; the parent exits 0 once the
//! mount is ready, or prints the child's error and exits 1.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe2, setsid};
use squashbox_fuse::options::ServeOptions;
use squashbox_fuse::session::{MountTarget, Opener};

/// Serve as a daemon; returns the exit code for whichever process returns here.
pub fn serve_detached(
    open: Opener<'_>,
    target: &Path,
    opts: &ServeOptions,
    prog: &str,
) -> ExitCode {
    // The daemon runs from "/" so it pins no directory: resolve paths first (the opener
    // holds an absolute image path).
    let target_abs = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    let (rx, tx) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{prog}: pipe: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: the process is still single-threaded here (nothing has spawned a thread yet:
    // argument parsing only), so the child may keep running arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => {
            eprintln!("{prog}: fork: {e}");
            ExitCode::FAILURE
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(tx);
            wait_for_child(rx, prog)
        }
        Ok(ForkResult::Child) => {
            drop(rx);
            let _ = setsid();
            let _ = std::env::set_current_dir("/");
            if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
                let _ = dup2_stdin(&null);
                let _ = dup2_stdout(&null);
            }
            let code = run_child(open, &target_abs, opts, tx, prog);
            std::process::exit(code);
        }
    }
}

fn wait_for_child(rx: OwnedFd, prog: &str) -> ExitCode {
    let mut msg = String::new();
    let _ = File::from(rx).read_to_string(&mut msg);
    match msg.lines().next() {
        Some("ok") => ExitCode::SUCCESS,
        Some(line) => {
            eprintln!("{prog}: {}", line.strip_prefix("err ").unwrap_or(line));
            ExitCode::FAILURE
        }
        None => {
            eprintln!("{prog}: the server exited before the mount was ready");
            ExitCode::FAILURE
        }
    }
}

fn run_child(open: Opener<'_>, target: &Path, opts: &ServeOptions, tx: OwnedFd, prog: &str) -> i32 {
    let debug = opts.debug;
    let mut tx = Some(File::from(tx));
    let mut send = move |line: &str| {
        if let Some(mut f) = tx.take() {
            let _ = writeln!(f, "{line}");
        }
    };
    let target = match MountTarget::parse(target) {
        Ok(t) => t,
        Err(e) => {
            send(&format!("err {e}"));
            return 1;
        }
    };
    let ready = Box::new(move |r: Result<(), &str>| match r {
        Ok(()) => {
            send("ok");
            if !debug {
                // Detached: nothing to talk to any more (as libfuse's fuse_daemonize).
                if let Ok(null) = File::options().write(true).open("/dev/null") {
                    let _ = dup2_stderr(&null);
                }
            }
        }
        Err(e) => send(&format!("err {}", e.replace('\n', " "))),
    });
    match squashbox_fuse::serve(open, target, opts, ready) {
        Ok(()) => 0,
        Err(e) => {
            // Failures before readiness already went to the parent over the pipe; later ones
            // are only visible with -d (stderr is /dev/null otherwise).
            if debug {
                eprintln!("{prog}: {e}");
            }
            1
        }
    }
}
