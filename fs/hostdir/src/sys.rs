//! Thin wrappers over the `*at` system calls the host directory is served through.
//!
//! Every call takes a directory descriptor and one name component (or an empty path with
//! `AT_EMPTY_PATH`), never a path from the root, and never follows a final symlink. Errors
//! are plain [`Errno`]s.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use squashbox_vfs::{Errno, Result};

/// The last OS error as an [`Errno`].
pub fn last() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

fn check(rc: libc::c_int) -> Result<()> {
    if rc < 0 { Err(last()) } else { Ok(()) }
}

fn check_len(rc: isize) -> Result<usize> {
    if rc < 0 { Err(last()) } else { Ok(rc as usize) }
}

/// A name as a C string (EINVAL when it holds a NUL).
pub fn cstr(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `/proc/self/fd/N`: the magic link that reopens or addresses what descriptor N holds.
pub fn proc_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number")
}

/// `/proc/self/fd/N/NAME`: one name inside directory descriptor N (for the calls that have no
/// `*at` form, such as `lgetxattr`); the final component is never followed by the `l*` calls.
pub fn proc_child(fd: RawFd, name: &OsStr) -> Result<CString> {
    let mut p = format!("/proc/self/fd/{fd}/").into_bytes();
    p.extend_from_slice(name.as_bytes());
    CString::new(p).map_err(|_| Errno::EINVAL)
}

fn owned(rc: libc::c_int) -> Result<OwnedFd> {
    if rc < 0 {
        Err(last())
    } else {
        // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(rc) })
    }
}

/// Whether `openat2` works here: 0 unknown, 1 yes, 2 no.
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// Open `name` (one component) under `dir` with `flags | O_NOFOLLOW | O_CLOEXEC`.
///
/// Where the kernel has `openat2`, the lookup also runs with `RESOLVE_BENEATH`,
/// `RESOLVE_NO_SYMLINKS` and `RESOLVE_NO_MAGICLINKS`, so nothing it resolves can leave `dir`
/// even if a caller passed something that is not a single component. Otherwise plain
/// `openat` with `O_NOFOLLOW` (the callers pass single, checked components).
pub fn open_beneath(dir: BorrowedFd<'_>, name: &OsStr, flags: i32, mode: u32) -> Result<OwnedFd> {
    let c = cstr(name)?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if OPENAT2.load(Ordering::Relaxed) != 2 {
        let mut how: libc::open_how = unsafe_zeroed_open_how();
        how.flags = flags as u64;
        how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            u64::from(mode)
        } else {
            0
        };
        how.resolve =
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: `c` is NUL-terminated and `how` is a properly sized open_how that lives
        // across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if rc >= 0 {
            OPENAT2.store(1, Ordering::Relaxed);
            return owned(rc as libc::c_int);
        }
        let e = last();
        if e != Errno::ENOSYS {
            // RESOLVE_NO_SYMLINKS reports a final symlink as ELOOP, as O_NOFOLLOW does.
            return Err(e);
        }
        OPENAT2.store(2, Ordering::Relaxed);
    }
    // SAFETY: `c` is NUL-terminated and lives across the call.
    owned(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) })
}

/// Use plain `openat` from now on, as on kernels without `openat2` (for tests of that path).
#[doc(hidden)]
pub fn disable_openat2() {
    OPENAT2.store(2, Ordering::Relaxed);
}

fn unsafe_zeroed_open_how() -> libc::open_how {
    // SAFETY: open_how is a plain struct of integers, for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Reopen what the `O_PATH` descriptor `fd` holds with real access `flags` (through
/// `/proc/self/fd`, which addresses the inode itself, not a path).
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> Result<OwnedFd> {
    let p = proc_path(fd.as_raw_fd());
    let flags = (flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_NOCTTY))
        | libc::O_CLOEXEC;
    // SAFETY: `p` is NUL-terminated and lives across the call.
    owned(unsafe { libc::open(p.as_ptr(), flags) })
}

/// `fstat` of a descriptor (also an `O_PATH` one).
pub fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat> {
    // SAFETY: all-zero is a valid `stat`, which the kernel then fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the empty path is NUL-terminated and `st` is a valid, writable stat buffer.
    check(unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            &mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: all-zero is a valid `stat`, which the kernel then fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid, writable stat buffer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// The target of the symlink `fd` holds (an `O_PATH` descriptor of the link itself).
pub fn readlink_fd(fd: BorrowedFd<'_>) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: the empty path is NUL-terminated; `buf` is writable for its length.
        let n = check_len(unsafe {
            libc::readlinkat(
                fd.as_raw_fd(),
                c"".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        })?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// `mknodat(dir, name, mode, dev)`.
pub fn mknod_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32, dev: libc::dev_t) -> Result<()> {
    let c = cstr(name)?;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, dev) })
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> Result<()> {
    let c = cstr(name)?;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })
}

/// `symlinkat(target, dir, name)`.
pub fn symlink_at(target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: both strings are NUL-terminated and live across the call.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) })
}

/// `unlinkat(dir, name, flags)` (`AT_REMOVEDIR` for directories).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr, flags: i32) -> Result<()> {
    let c = cstr(name)?;
    // SAFETY: `c` is NUL-terminated and lives across the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })
}

/// `renameat2(old_dir, old, new_dir, new, flags)`.
pub fn rename_at(
    old_dir: BorrowedFd<'_>,
    old: &OsStr,
    new_dir: BorrowedFd<'_>,
    new: &OsStr,
    flags: u32,
) -> Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: both strings are NUL-terminated and live across the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            flags,
        ) as libc::c_int
    })
}

/// `linkat(old_dir, old, new_dir, new, 0)`: never follows a symlink.
pub fn link_at(
    old_dir: BorrowedFd<'_>,
    old: &OsStr,
    new_dir: BorrowedFd<'_>,
    new: &OsStr,
) -> Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: both strings are NUL-terminated and live across the call.
    check(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`; `u32::MAX` leaves one
/// unchanged.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<()> {
    // SAFETY: the empty path is NUL-terminated.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Set once `fchmodat2` with `AT_EMPTY_PATH` turned out missing (kernels before 6.6).
static NO_FCHMODAT2: AtomicBool = AtomicBool::new(false);

/// `chmod` of what `fd` holds (not a symlink): `fchmodat2(fd, "", AT_EMPTY_PATH)` where the
/// kernel has it, else through its `/proc/self/fd` link (a path walk more).
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> Result<()> {
    if !NO_FCHMODAT2.load(Ordering::Relaxed) {
        // SAFETY: the empty path is NUL-terminated; fchmodat2 takes (dirfd, path, mode, flags).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                fd.as_raw_fd(),
                c"".as_ptr(),
                mode as libc::mode_t,
                libc::AT_EMPTY_PATH,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        match last() {
            Errno::ENOSYS | Errno::EINVAL => NO_FCHMODAT2.store(true, Ordering::Relaxed),
            e => return Err(e),
        }
    }
    let p = proc_path(fd.as_raw_fd());
    // SAFETY: `p` is NUL-terminated and lives across the call.
    check(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) })
}

/// `fchmod` of an open (not `O_PATH`) descriptor.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> Result<()> {
    // SAFETY: plain syscall on a descriptor we hold.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

/// Set the access and modification times of what `fd` holds, without following it
/// (`UTIME_OMIT` in a field leaves that time alone).
pub fn utimes_fd(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> Result<()> {
    // SAFETY: the empty path is NUL-terminated and `times` points at two timespecs.
    check(unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// `ftruncate`.
pub fn truncate_fd(fd: BorrowedFd<'_>, size: u64) -> Result<()> {
    let size = libc::off_t::try_from(size).map_err(|_| Errno::EFBIG)?;
    // SAFETY: plain syscall on a descriptor we hold.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })
}

/// `pread` until `buf` is full or end of file; returns the bytes read.
pub fn pread_full(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let off = libc::off_t::try_from(offset + done as u64).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the pointer and length describe the unfilled, writable tail of `buf`.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                off,
            )
        };
        match n {
            n if n < 0 => {
                let e = last();
                if e.0 == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            0 => break,
            n => done += n as usize,
        }
    }
    Ok(done)
}

/// `pwrite` all of `data` at `offset`; returns the bytes written.
pub fn pwrite_full(fd: BorrowedFd<'_>, data: &[u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < data.len() {
        let off = libc::off_t::try_from(offset + done as u64).map_err(|_| Errno::EFBIG)?;
        // SAFETY: the pointer and length describe the unwritten tail of `data`.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
                off,
            )
        };
        if n < 0 {
            let e = last();
            if e.0 == libc::EINTR {
                continue;
            }
            if done > 0 {
                break;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// `fsync` or `fdatasync`.
pub fn sync_fd(fd: BorrowedFd<'_>, datasync: bool) -> Result<()> {
    // SAFETY: plain syscalls on a descriptor we hold.
    check(unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })
}

/// `fallocate(fd, mode, offset, length)`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: u64, length: u64) -> Result<()> {
    let off = libc::off_t::try_from(offset).map_err(|_| Errno::EFBIG)?;
    let len = libc::off_t::try_from(length).map_err(|_| Errno::EFBIG)?;
    // SAFETY: plain syscall on a descriptor we hold.
    check(unsafe { libc::fallocate(fd.as_raw_fd(), mode, off, len) })
}

/// `lseek(fd, offset, whence)`.
pub fn lseek(fd: BorrowedFd<'_>, offset: u64, whence: i32) -> Result<u64> {
    let off = libc::off_t::try_from(offset).map_err(|_| Errno::ENXIO)?;
    // SAFETY: plain syscall on a descriptor we hold.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off, whence) };
    if r < 0 { Err(last()) } else { Ok(r as u64) }
}

/// `copy_file_range` between two descriptors at explicit offsets.
pub fn copy_range(
    fd_in: BorrowedFd<'_>,
    off_in: u64,
    fd_out: BorrowedFd<'_>,
    off_out: u64,
    len: u64,
    flags: u32,
) -> Result<usize> {
    let mut i = libc::off64_t::try_from(off_in).map_err(|_| Errno::EINVAL)?;
    let mut o = libc::off64_t::try_from(off_out).map_err(|_| Errno::EFBIG)?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    // SAFETY: the offsets are valid, writable locals; the descriptors are ours.
    check_len(unsafe {
        libc::copy_file_range(
            fd_in.as_raw_fd(),
            &mut i,
            fd_out.as_raw_fd(),
            &mut o,
            len,
            flags,
        )
    })
}

/// `fstatfs` (works on `O_PATH` descriptors).
pub fn statfs_fd(fd: BorrowedFd<'_>) -> Result<libc::statfs> {
    // SAFETY: all-zero is a valid `statfs`, which the kernel then fills in.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `s` is a valid, writable statfs buffer.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut s) })?;
    Ok(s)
}

/// `faccessat2(fd, "", mask, AT_EMPTY_PATH | AT_EACCESS)`: access as this process.
pub fn access_fd(fd: BorrowedFd<'_>, mask: i32) -> Result<()> {
    // SAFETY: the empty path is NUL-terminated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mask,
            libc::AT_EMPTY_PATH | libc::AT_EACCESS,
        )
    };
    if rc >= 0 {
        return Ok(());
    }
    match last() {
        // No faccessat2 (before Linux 5.8): ask through the descriptor's /proc link.
        Errno::ENOSYS => {
            let p = proc_path(fd.as_raw_fd());
            // SAFETY: `p` is NUL-terminated and lives across the call.
            check(unsafe { libc::faccessat(libc::AT_FDCWD, p.as_ptr(), mask, libc::AT_EACCESS) })
        }
        e => Err(e),
    }
}

/// One entry `getdents64` returned.
#[derive(Debug, Clone)]
pub struct RawDirent {
    /// `d_ino`.
    pub ino: u64,
    /// `d_off`: the position after this entry.
    pub off: i64,
    /// `d_type`.
    pub dtype: u8,
    /// The name.
    pub name: Vec<u8>,
}

/// Read a batch of entries from directory descriptor `fd` at its current position (empty at
/// the end).
pub fn getdents(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Vec<RawDirent>> {
    // SAFETY: `buf` is writable for its length.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(last());
    }
    let n = n as usize;
    let mut out = Vec::new();
    let mut pos = 0;
    // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name NUL-terminated.
    while pos + 19 <= n {
        let rec = &buf[pos..n];
        let ino = u64::from_ne_bytes(rec[0..8].try_into().expect("8 bytes"));
        let off = i64::from_ne_bytes(rec[8..16].try_into().expect("8 bytes"));
        let reclen = usize::from(u16::from_ne_bytes(rec[16..18].try_into().expect("2 bytes")));
        if reclen < 19 || reclen > rec.len() {
            return Err(Errno::EIO);
        }
        let dtype = rec[18];
        let name_bytes = &rec[19..reclen];
        let len = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        out.push(RawDirent {
            ino,
            off,
            dtype,
            name: name_bytes[..len].to_vec(),
        });
        pos += reclen;
    }
    Ok(out)
}

/// Whether this process runs as root (and so may set owners).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
