//! The session: a tmpfs on a fresh host directory (in the run's private mount namespace)
//! holding the container root's FUSE mount (`root/`), the skeleton layer, generated files
//! and the writable tmpfs upper; and the pivot into the root. Every step goes through the
//! [`Syscall`] seam, so the sequence of each mode is checked against golden lists.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::syscall::Syscall;
use crate::user_ns::IdMaps;
use crate::{Result, rt_err};

/// Session subdirectories every run has.
pub const DIRS: &[&str] = &["root", "skeleton", "files", "tmpfs"];

/// Make every mount private, mount the session tmpfs at `session` and create its
/// directories (plus `extra`, relative to the session).
pub fn setup(sys: &dyn Syscall, session: &Path, extra: &[PathBuf]) -> Result<()> {
    let err = |e: String| rt_err!("setting up the session: {e}");
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(err)?;
    sys.mount(
        Some(Path::new("squashbox-session")),
        session,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700,size=64m"),
    )
    .map_err(err)?;
    for d in DIRS.iter().map(PathBuf::from).chain(extra.iter().cloned()) {
        sys.mkdir_all(&session.join(d), 0o755).map_err(err)?;
    }
    Ok(())
}

/// Mount the container root at `session/root` on the FUSE connection `fuse_fd` (opened
/// on `/dev/fuse` by the caller), read-only unless `writable`, owned by the ids the
/// container has inside.
pub fn mount_root(
    sys: &dyn Syscall,
    session: &Path,
    fuse_fd: i32,
    writable: bool,
    maps: &IdMaps,
) -> Result<()> {
    mount_fuse(sys, &session.join("root"), fuse_fd, writable, maps)
        .map_err(|e| rt_err!("mounting the image: {e}; see `squashbox doctor`"))
}

/// Mount bound image `n` (read-only) at `session/images/n` on the FUSE connection
/// `fuse_fd`.
pub fn mount_image_bind(
    sys: &dyn Syscall,
    session: &Path,
    n: usize,
    fuse_fd: i32,
    maps: &IdMaps,
) -> Result<()> {
    mount_fuse(
        sys,
        &session.join(format!("images/{n}")),
        fuse_fd,
        false,
        maps,
    )
    .map_err(|e| rt_err!("mounting bound image {n}: {e}; see `squashbox doctor`"))
}

fn mount_fuse(
    sys: &dyn Syscall,
    at: &Path,
    fuse_fd: i32,
    writable: bool,
    maps: &IdMaps,
) -> std::result::Result<(), String> {
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    let data = format!(
        "fd={fuse_fd},rootmode=40000,user_id={},group_id={},default_permissions,allow_other",
        maps.inside_uid, maps.inside_gid
    );
    sys.mount(
        Some(Path::new("squashbox")),
        at,
        Some("fuse.squashbox"),
        flags,
        Some(&data),
    )
}

/// Move into `root`: a mount namespace of the container's own (so the pivot does not move
/// the server's root), then `pivot_root(".", ".")`, detach the old root, `chdir /`.
pub fn pivot(sys: &dyn Syscall, root: &Path) -> Result<()> {
    let err = |e: String| rt_err!("entering the container: {e}");
    sys.unshare(CloneFlags::CLONE_NEWNS).map_err(err)?;
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(err)?;
    sys.chdir(root).map_err(err)?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(err)?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(err)?;
    sys.chdir(Path::new("/")).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
    use crate::mount_plan::{Kind, Probe, apply, build};
    use crate::namespaces::Namespaces;
    use crate::options::RunOptions;
    use crate::syscall::RecordingSyscall;
    use crate::user_ns::{SubidSource, plan, write_own_maps};

    struct Everything;

    impl Probe for Everything {
        fn kind(&self, p: &Path) -> Option<Kind> {
            Some(if p.to_str()?.starts_with("/etc/") {
                Kind::File
            } else {
                Kind::Dir
            })
        }
    }

    /// The whole run of `opts` as the recorder sees it, up to the exec.
    fn run_lines(opts: RunOptions, writable: bool) -> Vec<String> {
        let host = Host::example();
        let maps = plan(&host, opts.fakeroot, false, &SubidSource::default());
        let ns = Namespaces::from_options(&opts);
        let p = build(&opts, &host, ns.pid, &Everything).unwrap();
        let r = RecordingSyscall::new();
        let s = Path::new("/tmp/S");
        r.unshare(ns.first_unshare()).unwrap();
        write_own_maps(&r, &maps).unwrap();
        setup(&r, s, &p.session_dirs).unwrap();
        mount_root(&r, s, 7, writable, &maps).unwrap();
        apply(&p, &r, &s.join("root"), s, &|_| true).unwrap();
        pivot(&r, &s.join("root")).unwrap();
        r.lines()
    }

    fn lines(s: &str) -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn read_only_default_run() {
        let opts = RunOptions {
            no_mount: vec![
                "dev".into(),
                "sys".into(),
                "bind-paths".into(),
                "cwd".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            run_lines(opts, false),
            lines(
                r#"unshare user,mount
                write /proc/self/setgroups "deny"
                write /proc/self/gid_map "1000 1000 1\n"
                write /proc/self/uid_map "1000 1000 1\n"
                mount none / - rec,private -
                mount squashbox-session /tmp/S tmpfs nosuid,nodev mode=0700,size=64m
                mkdir /tmp/S/root 755
                mkdir /tmp/S/skeleton 755
                mkdir /tmp/S/files 755
                mkdir /tmp/S/tmpfs 755
                mount squashbox /tmp/S/root fuse.squashbox ro,nosuid,nodev fd=7,rootmode=40000,user_id=1000,group_id=1000,default_permissions,allow_other
                mount /proc /tmp/S/root/proc - bind,rec -
                mount /home/alice /tmp/S/root/home/alice - bind,rec -
                mount /tmp /tmp/S/root/tmp - bind,rec -
                mount /var/tmp /tmp/S/root/var/tmp - bind,rec -
                mount /tmp/S/files/passwd /tmp/S/root/etc/passwd - bind -
                mount /tmp/S/files/group /tmp/S/root/etc/group - bind -
                mount /etc/resolv.conf /tmp/S/root/etc/resolv.conf - bind -
                unshare mount
                mount none / - rec,private -
                chdir /tmp/S/root
                pivot_root . .
                umount . detach
                chdir /"#
            )
        );
    }

    #[test]
    fn writable_tmpfs_fakeroot_run_with_ipc_and_uts() {
        let opts = RunOptions {
            fakeroot: true,
            writable_tmpfs: true,
            ipc: true,
            hostname: Some("box".into()),
            no_mount: vec![
                "dev".into(),
                "sys".into(),
                "proc".into(),
                "bind-paths".into(),
                "cwd".into(),
                "tmp".into(),
                "/etc/resolv.conf".into(),
            ],
            ..Default::default()
        };
        let got = run_lines(opts, true);
        let want = lines(
            r#"unshare user,mount,ipc,uts
            write /proc/self/setgroups "deny"
            write /proc/self/gid_map "0 1000 1\n"
            write /proc/self/uid_map "0 1000 1\n"
            mount none / - rec,private -
            mount squashbox-session /tmp/S tmpfs nosuid,nodev mode=0700,size=64m
            mkdir /tmp/S/root 755
            mkdir /tmp/S/skeleton 755
            mkdir /tmp/S/files 755
            mkdir /tmp/S/tmpfs 755
            mount squashbox /tmp/S/root fuse.squashbox nosuid,nodev fd=7,rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other
            mount /home/alice /tmp/S/root/root - bind,rec -
            mount /tmp/S/files/passwd /tmp/S/root/etc/passwd - bind -
            mount /tmp/S/files/group /tmp/S/root/etc/group - bind -"#,
        );
        assert_eq!(got[..want.len()], want[..]);
        assert_eq!(got.len(), want.len() + 6);
    }
}
