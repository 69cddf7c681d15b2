//! What the container runtime tests share: readiness, and running `squashbox` with a clean,
//! known environment. Each test crate uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use squashbox_fixtures::prereq;

/// What a run needs: a /dev/fuse this user may open, and user namespaces. Root is not
/// needed (CI runs the runtime as a plain user too).
pub fn ready() -> bool {
    let fuse = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    if !prereq::require(fuse, "a /dev/fuse this user can open read-write") {
        return false;
    }
    if !prereq::require_tools(&["unshare"]) {
        return false;
    }
    let userns = Command::new("unshare")
        .args(["--user", "--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    prereq::require(
        userns,
        "unprivileged user namespaces (see `squashbox doctor`)",
    )
}

/// `squashbox ARGS` with a clean, known environment (`FROM_HOST` set, for the environment
/// tests), `TMPDIR` (where the session directory goes) set to `tmp`, stdin closed.
pub fn command_in(tmp: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(crate::fuse::bin());
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/root")
        .env("TMPDIR", tmp)
        .env("FROM_HOST", "host-value")
        .stdin(Stdio::null());
    c
}

/// [`command_in`], waited for.
pub fn sb_in(tmp: &Path, args: &[&str]) -> Output {
    command_in(tmp, args).output().expect("running squashbox")
}

/// [`sb_in`] with the system's temporary directory.
pub fn sb(args: &[&str]) -> Output {
    sb_in(&std::env::temp_dir(), args)
}

/// What a run printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's status and output, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}
