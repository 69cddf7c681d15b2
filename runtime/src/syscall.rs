//! The system-call seam. Everything that changes the process or the mount table goes
//! through [`Syscall`]: [`LinuxSyscall`] does it, [`RecordingSyscall`] records each call as
//! one line of text, so the namespace and mount logic is tested without privileges.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// What a failed call returns: the call and the error, in one line.
pub type SysResult<T> = std::result::Result<T, String>;

/// The calls the runtime makes. Paths are host paths as seen by the calling process.
pub trait Syscall {
    /// `unshare(2)`.
    fn unshare(&self, flags: CloneFlags) -> SysResult<()>;
    /// `mount(2)`. A bind remount (`MS_REMOUNT|MS_BIND`) keeps the flags the kernel locks in
    /// a user namespace (nosuid, nodev, noexec, atime flags) in the real implementation.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> SysResult<()>;
    /// `umount2(2)`.
    fn umount2(&self, target: &Path, flags: MntFlags) -> SysResult<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> SysResult<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> SysResult<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> SysResult<()>;
    /// Write a whole file that exists (`/proc/self/uid_map`, `setgroups`, ...).
    fn write_file(&self, path: &Path, contents: &str) -> SysResult<()>;
    /// Create a file (or replace its contents) with `contents` and mode `mode`.
    fn create_file(&self, path: &Path, contents: &[u8], mode: u32) -> SysResult<()>;
    /// `mkdir -p` with mode `mode` for the directories it creates.
    fn mkdir_all(&self, path: &Path, mode: u32) -> SysResult<()>;
    /// `symlink(2)`: a link at `link` pointing to `target`.
    fn symlink(&self, target: &Path, link: &Path) -> SysResult<()>;
    /// `mknod(2)`.
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> SysResult<()>;
    /// A path that names container path `path` resolved inside `root` (symlinks in the
    /// image resolve against the container root, never the host's): the real
    /// implementation opens it with `openat2(RESOLVE_IN_ROOT)` and answers
    /// `/proc/self/fd/N` (the descriptor stays open, close-on-exec); when that fails, and
    /// in the recording implementation, `root` joined with `path`.
    fn in_root(&self, root: &Path, path: &Path) -> PathBuf {
        crate::mount_plan::in_root(root, path)
    }
}

fn cpath(p: &Path) -> SysResult<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{}: NUL in path", p.display()))
}

/// Open `path` inside `root` with `RESOLVE_IN_ROOT`; `/proc/self/fd/N` on success.
fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    let root_c = cpath(root).ok()?;
    // SAFETY: a NUL-terminated path; the descriptor is owned below.
    let rfd = unsafe {
        libc::open(
            root_c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if rfd < 0 {
        return None;
    }
    // SAFETY: `rfd` was just opened and is owned by nothing else.
    let rfd = unsafe { OwnedFd::from_raw_fd(rfd) };
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = cpath(rel).ok()?;
    // SAFETY: open_how is plain old data; zero is valid for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    use std::os::fd::AsRawFd;
    // SAFETY: openat2 reads `c` and `how` (of the size given) and returns a new descriptor.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            rfd.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor; it is kept open (close-on-exec) for the path we return.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) }.into_raw_fd();
    Some(PathBuf::from(format!("/proc/self/fd/{fd}")))
}

/// The real system calls, through nix and libc.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

/// The flags a bind remount must keep: those the kernel locks on mounts that came from a
/// more privileged mount namespace.
fn locked_flags(target: &Path) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(target) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (ff, mf) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        // ST_RELATIME (4096): nix names it on glibc only; the kernel's value is the same.
        (FsFlags::from_bits_retain(4096), MsFlags::MS_RELATIME),
    ] {
        if f.contains(ff) {
            out |= mf;
        }
    }
    out
}

impl Syscall for LinuxSyscall {
    fn unshare(&self, flags: CloneFlags) -> SysResult<()> {
        nix::sched::unshare(flags).map_err(|e| format!("unshare({flags:?}): {e}"))
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> SysResult<()> {
        let mut flags = flags;
        if flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_BIND) {
            flags |= locked_flags(target);
        }
        nix::mount::mount(source, target, fstype, flags, data).map_err(|e| {
            format!(
                "mount {} on {} ({}): {e}",
                source.map_or("none".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("bind")
            )
        })
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> SysResult<()> {
        nix::mount::umount2(target, flags).map_err(|e| format!("umount {}: {e}", target.display()))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> SysResult<()> {
        nix::unistd::pivot_root(new_root, put_old)
            .map_err(|e| format!("pivot_root to {}: {e}", new_root.display()))
    }

    fn chdir(&self, path: &Path) -> SysResult<()> {
        nix::unistd::chdir(path).map_err(|e| format!("chdir {}: {e}", path.display()))
    }

    fn sethostname(&self, name: &str) -> SysResult<()> {
        nix::unistd::sethostname(name).map_err(|e| format!("sethostname {name}: {e}"))
    }

    fn write_file(&self, path: &Path, contents: &str) -> SysResult<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(contents.as_bytes())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn create_file(&self, path: &Path, contents: &[u8], mode: u32) -> SysResult<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        f.write_all(contents)
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> SysResult<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| format!("mkdir {}: {e}", path.display()))
    }

    fn symlink(&self, target: &Path, link: &Path) -> SysResult<()> {
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| format!("symlink {} -> {}: {e}", link.display(), target.display()))
    }

    fn in_root(&self, root: &Path, path: &Path) -> PathBuf {
        let joined = crate::mount_plan::in_root(root, path);
        resolve_in_root(root, path).unwrap_or(joined)
    }

    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> SysResult<()> {
        let c = cpath(path)?;
        // SAFETY: `c` is a NUL-terminated path that lives across the call.
        let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev as libc::dev_t) };
        if rc != 0 {
            return Err(format!(
                "mknod {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `unshare`.
    Unshare(CloneFlags),
    /// `mount`.
    Mount {
        /// Source, if any.
        source: Option<PathBuf>,
        /// Target.
        target: PathBuf,
        /// Filesystem type, if any.
        fstype: Option<String>,
        /// Flags.
        flags: MsFlags,
        /// Data string.
        data: Option<String>,
    },
    /// `umount2`.
    Umount(PathBuf, MntFlags),
    /// `pivot_root`.
    PivotRoot(PathBuf, PathBuf),
    /// `chdir`.
    Chdir(PathBuf),
    /// `sethostname`.
    Sethostname(String),
    /// `write_file`.
    WriteFile(PathBuf, String),
    /// `create_file` (contents length and mode).
    CreateFile(PathBuf, usize, u32),
    /// `mkdir_all`.
    Mkdir(PathBuf, u32),
    /// `symlink` (target, link).
    Symlink(PathBuf, PathBuf),
    /// `mknod`.
    Mknod(PathBuf, u32, u64),
}

/// Short names of mount flags, in a fixed order, for the recorded lines.
const FLAG_NAMES: &[(MsFlags, &str)] = &[
    (MsFlags::MS_REMOUNT, "remount"),
    (MsFlags::MS_BIND, "bind"),
    (MsFlags::MS_REC, "rec"),
    (MsFlags::MS_PRIVATE, "private"),
    (MsFlags::MS_SLAVE, "slave"),
    (MsFlags::MS_RDONLY, "ro"),
    (MsFlags::MS_NOSUID, "nosuid"),
    (MsFlags::MS_NODEV, "nodev"),
    (MsFlags::MS_NOEXEC, "noexec"),
];

/// Mount flags as `a,b,c` (`-` when none).
pub fn flag_names(flags: MsFlags) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Unshare(fl) => {
                let names: Vec<&str> = [
                    (CloneFlags::CLONE_NEWUSER, "user"),
                    (CloneFlags::CLONE_NEWNS, "mount"),
                    (CloneFlags::CLONE_NEWPID, "pid"),
                    (CloneFlags::CLONE_NEWIPC, "ipc"),
                    (CloneFlags::CLONE_NEWUTS, "uts"),
                    (CloneFlags::CLONE_NEWNET, "net"),
                ]
                .iter()
                .filter(|(c, _)| fl.contains(*c))
                .map(|(_, n)| *n)
                .collect();
                write!(f, "unshare {}", names.join(","))
            }
            Call::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => write!(
                f,
                "mount {} {} {} {} {}",
                source
                    .as_ref()
                    .map_or("none".into(), |s| s.display().to_string()),
                target.display(),
                fstype.as_deref().unwrap_or("-"),
                flag_names(*flags),
                data.as_deref().unwrap_or("-")
            ),
            Call::Umount(p, fl) => write!(
                f,
                "umount {}{}",
                p.display(),
                if fl.contains(MntFlags::MNT_DETACH) {
                    " detach"
                } else {
                    ""
                }
            ),
            Call::PivotRoot(n, o) => write!(f, "pivot_root {} {}", n.display(), o.display()),
            Call::Chdir(p) => write!(f, "chdir {}", p.display()),
            Call::Sethostname(n) => write!(f, "sethostname {n}"),
            Call::WriteFile(p, c) => write!(f, "write {} {:?}", p.display(), c),
            Call::CreateFile(p, n, m) => write!(f, "create {} {n}B {m:o}", p.display()),
            Call::Mkdir(p, m) => write!(f, "mkdir {} {m:o}", p.display()),
            Call::Symlink(t, l) => write!(f, "symlink {} -> {}", l.display(), t.display()),
            Call::Mknod(p, m, d) => write!(f, "mknod {} {m:o} {d}", p.display()),
        }
    }
}

/// Records every call and succeeds (or fails the calls [`RecordingSyscall::fail_on`] names).
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: Mutex<Vec<Call>>,
    fail: Mutex<Vec<String>>,
}

impl RecordingSyscall {
    /// A recorder with nothing recorded.
    pub fn new() -> RecordingSyscall {
        RecordingSyscall::default()
    }

    /// Make every later call whose line contains `needle` fail (it is still recorded).
    pub fn fail_on(&self, needle: &str) {
        self.fail.lock().unwrap().push(needle.to_string());
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls so far, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(|c| c.to_string()).collect()
    }

    fn record(&self, c: Call) -> SysResult<()> {
        let line = c.to_string();
        self.calls.lock().unwrap().push(c);
        if self.fail.lock().unwrap().iter().any(|n| line.contains(n)) {
            return Err(format!("{line}: injected failure"));
        }
        Ok(())
    }
}

impl Syscall for RecordingSyscall {
    fn unshare(&self, flags: CloneFlags) -> SysResult<()> {
        self.record(Call::Unshare(flags))
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> SysResult<()> {
        self.record(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> SysResult<()> {
        self.record(Call::Umount(target.to_path_buf(), flags))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> SysResult<()> {
        self.record(Call::PivotRoot(new_root.into(), put_old.into()))
    }

    fn chdir(&self, path: &Path) -> SysResult<()> {
        self.record(Call::Chdir(path.into()))
    }

    fn sethostname(&self, name: &str) -> SysResult<()> {
        self.record(Call::Sethostname(name.into()))
    }

    fn write_file(&self, path: &Path, contents: &str) -> SysResult<()> {
        self.record(Call::WriteFile(path.into(), contents.into()))
    }

    fn create_file(&self, path: &Path, contents: &[u8], mode: u32) -> SysResult<()> {
        self.record(Call::CreateFile(path.into(), contents.len(), mode))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> SysResult<()> {
        self.record(Call::Mkdir(path.into(), mode))
    }

    fn symlink(&self, target: &Path, link: &Path) -> SysResult<()> {
        self.record(Call::Symlink(target.into(), link.into()))
    }

    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> SysResult<()> {
        self.record(Call::Mknod(path.into(), mode, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_writes_one_line_per_call_and_injects_failures() {
        let r = RecordingSyscall::new();
        r.unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .unwrap();
        r.mount(
            Some(Path::new("/home/u")),
            Path::new("/s/root/home/u"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .unwrap();
        r.fail_on("pivot_root");
        assert!(r.pivot_root(Path::new("."), Path::new(".")).is_err());
        assert_eq!(
            r.lines(),
            vec![
                "unshare user,mount",
                "mount /home/u /s/root/home/u - bind,rec -",
                "pivot_root . .",
            ]
        );
    }
}
