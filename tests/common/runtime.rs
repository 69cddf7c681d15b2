//! What the container runtime tests share.

use std::process::Command;

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
