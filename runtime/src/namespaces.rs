//! Which namespaces a run creates: user and mount always; pid, ipc and uts on request
//! (`-p`, `-i`, `--uts`/`--hostname`, all three of pid/ipc with `-C`); a network namespace
//! only with `-n/--net`.

use nix::sched::CloneFlags;

use crate::options::RunOptions;

/// The namespaces of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Namespaces {
    /// A new pid namespace (the payload is pid 1's child... or pid 1 itself).
    pub pid: bool,
    /// A new ipc namespace.
    pub ipc: bool,
    /// A new uts namespace.
    pub uts: bool,
    /// A new network namespace (loopback only).
    pub net: bool,
}

impl Namespaces {
    /// The namespaces `opts` ask for.
    pub fn from_options(opts: &RunOptions) -> Namespaces {
        Namespaces {
            pid: opts.pid || opts.containall,
            ipc: opts.ipc || opts.containall,
            uts: opts.uts || opts.hostname.is_some(),
            net: opts.net,
        }
    }

    /// The flags of the first `unshare`: user and mount, plus ipc, uts and net. The pid
    /// namespace is separate: it applies to children, so it is unshared right before the
    /// container's process is forked.
    pub fn first_unshare(&self) -> CloneFlags {
        let mut f = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
        if self.ipc {
            f |= CloneFlags::CLONE_NEWIPC;
        }
        if self.uts {
            f |= CloneFlags::CLONE_NEWUTS;
        }
        if self.net {
            f |= CloneFlags::CLONE_NEWNET;
        }
        f
    }
}

/// Bring the loopback interface of a new network namespace up (Apptainer's `--net
/// --network none`).
pub fn loopback_up() -> Result<(), String> {
    // SAFETY: a plain datagram socket; closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: ifreq is plain old data; zero is a valid value for every field.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own; the union's
    // flags member is the one these requests use.
    let res = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as libc::Ioctl, &mut ifr) != 0 {
            Err(std::io::Error::last_os_error())
        } else {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS as libc::Ioctl, &ifr) != 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: `sock` is ours and closed once.
    unsafe { libc::close(sock) };
    res.map_err(|e| format!("bringing up lo: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{RecordingSyscall, Syscall};

    fn flags_of(opts: RunOptions) -> String {
        let r = RecordingSyscall::new();
        r.unshare(Namespaces::from_options(&opts).first_unshare())
            .unwrap();
        r.lines().join("")
    }

    #[test]
    fn user_and_mount_always_others_on_request() {
        assert_eq!(flags_of(RunOptions::default()), "unshare user,mount");
        let o = RunOptions {
            ipc: true,
            hostname: Some("h".into()),
            ..Default::default()
        };
        assert_eq!(flags_of(o), "unshare user,mount,ipc,uts");
        let o = RunOptions {
            net: true,
            ..Default::default()
        };
        assert_eq!(flags_of(o), "unshare user,mount,net");
        let all = Namespaces::from_options(&RunOptions {
            containall: true,
            ..Default::default()
        });
        assert!(all.pid && all.ipc && !all.net && !all.uts);
    }
}
