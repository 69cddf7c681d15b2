//! Unmounting a FUSE mount: `umount2` as root or inside a user+mount namespace, `fusermount3 -u`
//! for a plain user; lazily (`MNT_DETACH` / `-z`) when the mount is busy and that is allowed.

use std::path::Path;
use std::process::Command;

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

/// Unmount `path`. With `lazy_if_busy`, a busy mount is detached lazily instead of failing.
pub fn unmount(path: &Path, lazy_if_busy: bool) -> Result<(), String> {
    match umount2(path, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) if lazy_if_busy => umount2(path, MntFlags::MNT_DETACH)
            .map_err(|e| format!("{}: lazy unmount failed: {e}", path.display())),
        Err(Errno::EPERM) => fusermount_unmount(path, lazy_if_busy),
        Err(Errno::EINVAL) => Err(format!("{}: not a mount point", path.display())),
        Err(e) => Err(format!("{}: unmount failed: {e}", path.display())),
    }
}

/// Find the setuid helper: `$FUSERMOUNT_PATH`, else `fusermount3`, else `fusermount`.
pub fn fusermount_binary() -> String {
    if let Some(p) = std::env::var_os("FUSERMOUNT_PATH") {
        return p.to_string_lossy().into_owned();
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/bin"])
    {
        for name in ["fusermount3", "fusermount"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    "fusermount3".to_string()
}

fn fusermount_unmount(path: &Path, lazy_if_busy: bool) -> Result<(), String> {
    let bin = fusermount_binary();
    let run = |lazy: bool| {
        let mut cmd = Command::new(&bin);
        cmd.arg("-u").arg("-q");
        if lazy {
            cmd.arg("-z");
        }
        cmd.arg("--").arg(path).output()
    };
    match run(false) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            if lazy_if_busy && run(true).is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            Err(format!(
                "{}: {bin} -u failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => Err(format!("{}: cannot run {bin}: {e}", path.display())),
    }
}
