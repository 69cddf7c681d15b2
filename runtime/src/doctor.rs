//! `squashbox doctor`: what this host allows, one check a line, with what to do about a
//! "no". Probes that need namespaces run in a forked child, so the caller is left as it was.

use std::path::Path;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;

use crate::user_ns::{find_in_path, parse_subid};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Available.
    Yes,
    /// Not available.
    No,
    /// Could not be told.
    Unknown,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// What to do about a "no" (empty when nothing is needed).
    pub advice: String,
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Run `probe` in a forked child; its result is whether it returned `Ok`, else the errno
/// text it failed with.
fn in_child(probe: fn() -> Result<(), nix::errno::Errno>) -> Result<(), String> {
    // SAFETY: the doctor runs single-threaded; the child only makes system calls and exits.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            let code = match probe() {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // SAFETY: _exit skips the parent's atexit handlers and buffers, as a forked
            // child must.
            unsafe { libc::_exit(code.min(255)) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, n)) => Err(nix::errno::Errno::from_raw(n).desc().into()),
            other => Err(format!("probe ended: {other:?}")),
        },
    }
}

fn enter_userns() -> Result<(), nix::errno::Errno> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)?;
    let w = |p: &str, s: String| {
        std::fs::write(p, s).map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(5)))
    };
    w("/proc/self/setgroups", "deny".into())?;
    w("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    w("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

fn scratch_tmpfs() -> Result<std::path::PathBuf, nix::errno::Errno> {
    let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("squashbox-doctor.XXXXXX"))?;
    let r = nix::mount::mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    );
    // The directory stays empty on the host; the tmpfs dies with this namespace.
    let _ = std::fs::remove_dir(&dir);
    r.map(|_| dir)
}

fn probe_fuse_mount() -> Result<(), nix::errno::Errno> {
    enter_userns()?;
    let dir = scratch_tmpfs()?;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(5)))?;
    use std::os::fd::AsRawFd;
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let data = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid}",
        dev.as_raw_fd()
    );
    nix::mount::mount(
        Some("squashbox"),
        &dir,
        Some("fuse.squashbox"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
}

fn probe_overlay() -> Result<(), nix::errno::Errno> {
    enter_userns()?;
    let dir = scratch_tmpfs()?;
    for d in ["l", "u", "w", "m"] {
        std::fs::create_dir(dir.join(d)).map_err(|_| nix::errno::Errno::EIO)?;
    }
    let data = format!("lowerdir={0}/l,upperdir={0}/u,workdir={0}/w", dir.display());
    nix::mount::mount(
        Some("overlay"),
        &dir.join("m"),
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
}

fn kernel_version() -> (u32, u32) {
    let r = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut it = r.split(|c: char| !c.is_ascii_digit());
    let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn kernel_config(key: &str) -> Option<String> {
    let release = nix::sys::utsname::uname()
        .ok()?
        .release()
        .to_string_lossy()
        .into_owned();
    let text = std::fs::read_to_string(format!("/boot/config-{release}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn check(name: &'static str, outcome: Outcome, detail: String, advice: &str) -> Check {
    Check {
        name,
        outcome,
        detail,
        advice: if outcome == Outcome::Yes {
            String::new()
        } else {
            advice.to_string()
        },
    }
}

/// Run every check.
pub fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    let max = read_trim("/proc/sys/user/max_user_namespaces");
    out.push(check(
        "user.max_user_namespaces",
        match max.as_deref() {
            Some("0") => Outcome::No,
            Some(_) => Outcome::Yes,
            None => Outcome::Unknown,
        },
        max.clone().unwrap_or_else(|| "not readable".into()),
        "an administrator sets it above 0: sysctl -w user.max_user_namespaces=15000",
    ));
    if let Some(v) = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        out.push(check(
            "kernel.apparmor_restrict_unprivileged_userns",
            if v == "0" { Outcome::Yes } else { Outcome::No },
            v,
            "Ubuntu restricts user namespaces: an administrator adds an AppArmor profile for \
             squashbox, or sets the sysctl to 0",
        ));
    }
    if let Some(v) = read_trim("/proc/sys/kernel/unprivileged_userns_clone") {
        out.push(check(
            "kernel.unprivileged_userns_clone",
            if v == "1" { Outcome::Yes } else { Outcome::No },
            v,
            "an administrator sets kernel.unprivileged_userns_clone=1",
        ));
    }
    let userns = in_child(enter_userns);
    out.push(check(
        "unprivileged user namespace",
        if userns.is_ok() {
            Outcome::Yes
        } else {
            Outcome::No
        },
        userns.clone().err().unwrap_or_else(|| "created one".into()),
        "squashbox exec/run need it: see the sysctls above",
    ));
    let fuse = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    out.push(check(
        "/dev/fuse",
        if fuse.is_ok() {
            Outcome::Yes
        } else {
            Outcome::No
        },
        match &fuse {
            Ok(_) => "opens read-write".into(),
            Err(e) => e.to_string(),
        },
        "load the fuse module (modprobe fuse) and make /dev/fuse mode 0666",
    ));
    let fm = find_in_path("fusermount3");
    out.push(check(
        "fusermount3",
        if fm.is_some() {
            Outcome::Yes
        } else {
            Outcome::No
        },
        fm.map_or("not found".into(), |p| p.display().to_string()),
        "install fuse3 (only `squashbox mount` outside a namespace needs it)",
    ));
    let fm = in_child(probe_fuse_mount);
    out.push(check(
        "FUSE mount in a user namespace",
        if fm.is_ok() {
            Outcome::Yes
        } else {
            Outcome::No
        },
        fm.err().unwrap_or_else(|| "mounted".into()),
        "needs Linux 4.18 or later, user namespaces and /dev/fuse",
    ));
    let host = crate::host::Host::current();
    let subs = ["/etc/subuid", "/etc/subgid"].map(|f| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| parse_subid(&t, &host.user, host.uid))
    });
    let helpers = find_in_path("newuidmap").is_some() && find_in_path("newgidmap").is_some();
    out.push(check(
        "subuid/subgid ranges for --fakeroot",
        if subs.iter().all(Option::is_some) && helpers {
            Outcome::Yes
        } else {
            Outcome::No
        },
        format!(
            "subuid {}, subgid {}, newuidmap/newgidmap {}",
            range_text(subs[0]),
            range_text(subs[1]),
            if helpers { "found" } else { "missing" }
        ),
        "--fakeroot still works, root-mapped only; for full ranges an administrator adds \
         the user to /etc/subuid and /etc/subgid (65536 ids) and installs uidmap",
    ));
    let ov = in_child(probe_overlay);
    out.push(check(
        "kernel overlay in a user namespace",
        if ov.is_ok() {
            Outcome::Yes
        } else {
            Outcome::No
        },
        ov.err().unwrap_or_else(|| {
            "mounted; squashbox uses its in-process overlay in the image server".into()
        }),
        "not needed: squashbox's overlay runs in the image server",
    ));
    let (maj, min) = kernel_version();
    let passthrough = (maj, min) >= (6, 9);
    out.push(check(
        "FUSE passthrough",
        if passthrough {
            Outcome::Yes
        } else {
            Outcome::No
        },
        format!(
            "kernel {maj}.{min}{}; passthrough needs CAP_SYS_ADMIN in the initial namespace, \
             so unprivileged runs do without it",
            if passthrough {
                " has it"
            } else {
                " predates it (6.9)"
            }
        ),
        "a 6.9 or later kernel",
    ));
    let uring = read_trim("/proc/sys/kernel/io_uring_disabled");
    let fuse_uring = read_trim("/sys/module/fuse/parameters/enable_uring");
    out.push(check(
        "io_uring",
        match uring.as_deref() {
            Some("0") => Outcome::Yes,
            Some(_) => Outcome::No,
            None if Path::new("/proc/sys/kernel/io_uring_disabled").exists() => Outcome::Unknown,
            None => Outcome::Unknown,
        },
        format!(
            "io_uring_disabled={}, fuse enable_uring={}",
            uring.unwrap_or_else(|| "?".into()),
            fuse_uring.unwrap_or_else(|| "absent".into())
        ),
        "an administrator sets kernel.io_uring_disabled=0",
    ));
    let decomp = [
        (
            "CONFIG_SQUASHFS_CHOICE_DECOMP_BY_MOUNT",
            "chosen per mount (threads=)",
        ),
        (
            "CONFIG_SQUASHFS_DECOMP_MULTI_PERCPU",
            "one decompressor per CPU",
        ),
        ("CONFIG_SQUASHFS_DECOMP_MULTI", "several decompressors"),
        (
            "CONFIG_SQUASHFS_DECOMP_SINGLE",
            "one decompressor (serialised)",
        ),
    ]
    .iter()
    .find(|(k, _)| kernel_config(k).as_deref() == Some("y"))
    .map(|(k, d)| format!("{d} ({k})"));
    out.push(check(
        "kernel SquashFS decompressor",
        if decomp.is_some() {
            Outcome::Yes
        } else {
            Outcome::Unknown
        },
        decomp.unwrap_or_else(|| "kernel config not readable in /boot".into()),
        "informational: squashbox decompresses in parallel itself",
    ));
    out.extend(idle_poll_check(
        read_trim("/sys/devices/system/cpu/cpuidle/current_driver").as_deref(),
        read_trim("/sys/module/haltpoll/parameters/guest_halt_poll_ns").as_deref(),
    ));
    out
}

/// In a KVM guest with the `haltpoll` cpuidle driver: whether idle vCPUs poll before they
/// halt. With polling off every FUSE request and every reply wakes a halted vCPU, which costs
/// a VM exit; on the 2-vCPU benchmark machine that made an untar into an ext3 image 2-3x
/// slower. `None` elsewhere (bare metal, other idle drivers), where there is nothing to say.
fn idle_poll_check(driver: Option<&str>, poll_ns: Option<&str>) -> Option<Check> {
    if driver != Some("haltpoll") {
        return None;
    }
    let outcome = match poll_ns.map(str::parse::<u64>) {
        Some(Ok(0)) => Outcome::No,
        Some(Ok(_)) => Outcome::Yes,
        _ => Outcome::Unknown,
    };
    Some(check(
        "idle vCPUs poll before halting (haltpoll)",
        outcome,
        format!(
            "guest_halt_poll_ns={}; every FUSE round trip wakes a vCPU that is not polling",
            poll_ns.unwrap_or("?")
        ),
        "an administrator of the VM sets /sys/module/haltpoll/parameters/guest_halt_poll_ns \
         (e.g. 200000) or drops haltpoll.guest_halt_poll_ns=0 from the kernel command line",
    ))
}

/// The report, one check a line, advice indented under a "no".
pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let o = match c.outcome {
            Outcome::Yes => "yes",
            Outcome::No => "no",
            Outcome::Unknown => "unknown",
        };
        s.push_str(&format!("{:<45} {o:<7} {}\n", c.name, c.detail));
        if !c.advice.is_empty() {
            s.push_str(&format!("{:<45} -> {}\n", "", c.advice));
        }
    }
    s
}

/// A subordinate range as `start+count`, or `none` for the user.
fn range_text(r: Option<(u64, u64)>) -> String {
    r.map_or_else(|| "none for this user".into(), |(s, c)| format!("{s}+{c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halt_polling_is_checked_only_under_haltpoll() {
        assert!(idle_poll_check(Some("acpi_idle"), Some("0")).is_none());
        assert!(idle_poll_check(None, None).is_none());
        let off = idle_poll_check(Some("haltpoll"), Some("0")).unwrap();
        assert_eq!(off.outcome, Outcome::No);
        assert!(off.advice.contains("guest_halt_poll_ns"), "{}", off.advice);
        let on = idle_poll_check(Some("haltpoll"), Some("200000")).unwrap();
        assert_eq!(on.outcome, Outcome::Yes);
        assert!(on.advice.is_empty());
        let odd = idle_poll_check(Some("haltpoll"), None).unwrap();
        assert_eq!(odd.outcome, Outcome::Unknown);
    }
}
