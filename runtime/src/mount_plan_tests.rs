//! Golden lists: the plan of each mode, and the calls it makes through the recording seam.

use super::*;
use crate::bind::parse_bind_arg;
use crate::syscall::RecordingSyscall;

struct Fake;

impl Probe for Fake {
    fn kind(&self, path: &Path) -> Option<Kind> {
        let s = path.to_str()?;
        match s {
            "/dev" | "/proc" | "/sys" | "/home/alice" | "/home/alice/src" | "/tmp" | "/var/tmp"
            | "/work" | "/data" | "/scratch" | "/scratch/tmp" | "/scratch/var_tmp" => {
                Some(Kind::Dir)
            }
            "/etc/localtime" | "/etc/hosts" | "/etc/resolv.conf" | "/data/file" => Some(Kind::File),
            _ if s.starts_with("/dev/") => Some(Kind::File),
            _ => None,
        }
    }
}

fn plan_of(opts: RunOptions, pid: bool) -> Vec<String> {
    render(&build(&opts, &Host::example(), pid, &Fake).unwrap())
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn default_mode() {
    assert_eq!(
        plan_of(RunOptions::default(), false),
        lines(
            "bind /dev -> /dev rec
             bind /etc/localtime -> /etc/localtime
             bind /etc/hosts -> /etc/hosts
             bind /proc -> /proc rec
             bind /sys -> /sys rec
             bind /home/alice -> /home/alice rec
             bind /tmp -> /tmp rec
             bind /var/tmp -> /var/tmp rec
             bind session:files/passwd -> /etc/passwd if-in-image
             bind session:files/group -> /etc/group if-in-image
             bind /etc/resolv.conf -> /etc/resolv.conf
             bind /work -> /work rec
             home /home/alice
             cwd /work"
        )
    );
}

#[test]
fn contain_mode_with_minimal_dev_and_session_home_and_tmp() {
    let opts = RunOptions {
        contain: true,
        ..Default::default()
    };
    assert_eq!(
        plan_of(opts, false),
        lines(
            "tmpfs -> /dev mode=755,size=1m
             touch /dev/null
             bind /dev/null -> /dev/null
             touch /dev/zero
             bind /dev/zero -> /dev/zero
             touch /dev/random
             bind /dev/random -> /dev/random
             touch /dev/urandom
             bind /dev/urandom -> /dev/urandom
             touch /dev/tty
             bind /dev/tty -> /dev/tty
             symlink /dev/fd -> /proc/self/fd
             symlink /dev/stdin -> /proc/self/fd/0
             symlink /dev/stdout -> /proc/self/fd/1
             symlink /dev/stderr -> /proc/self/fd/2
             symlink /dev/ptmx -> pts/ptmx
             tmpfs -> /dev/shm mode=1777
             devpts -> /dev/pts
             bind /etc/localtime -> /etc/localtime
             bind /etc/hosts -> /etc/hosts
             bind /proc -> /proc rec
             bind /sys -> /sys rec
             bind session:home -> /home/alice
             bind session:tmp -> /tmp
             bind session:var_tmp -> /var/tmp
             bind session:files/passwd -> /etc/passwd if-in-image
             bind session:files/group -> /etc/group if-in-image
             bind /etc/resolv.conf -> /etc/resolv.conf
             home /home/alice
             cwd /home/alice"
        )
    );
}

#[test]
fn containall_with_pid_namespace_workdir_and_pwd() {
    let opts = RunOptions {
        containall: true,
        workdir: Some("/scratch".into()),
        pwd: Some("/opt".into()),
        no_mount: vec!["sys".into(), "bind-paths".into(), "devpts".into()],
        ..Default::default()
    };
    let got = plan_of(opts, true);
    let tail: Vec<String> = got
        .into_iter()
        .skip_while(|l| !l.starts_with("tmpfs -> /dev/shm"))
        .collect();
    assert_eq!(
        tail,
        lines(
            "tmpfs -> /dev/shm mode=1777
             proc -> /proc
             bind session:home -> /home/alice
             bind /scratch/tmp -> /tmp rec
             bind /scratch/var_tmp -> /var/tmp rec
             bind session:files/passwd -> /etc/passwd if-in-image
             bind session:files/group -> /etc/group if-in-image
             bind /etc/resolv.conf -> /etc/resolv.conf
             home /home/alice
             cwd /opt"
        )
    );
}

#[test]
fn fakeroot_home_is_root_and_binds_follow_the_files() {
    let mut opts = RunOptions {
        fakeroot: true,
        no_mount: vec!["/dev".into(), "tmp".into(), "/etc/hosts".into()],
        ..Default::default()
    };
    opts.binds = parse_bind_arg("/data:/mnt/d:ro,/data/file:/opt/f").unwrap();
    let mut host = Host::example();
    host.cwd = "/home/alice/src".into();
    let plan = build(&opts, &host, false, &Fake).unwrap();
    assert_eq!(
        render(&plan),
        lines(
            "bind /etc/localtime -> /etc/localtime
             bind /proc -> /proc rec
             bind /sys -> /sys rec
             bind /home/alice -> /root rec
             bind session:files/passwd -> /etc/passwd if-in-image
             bind session:files/group -> /etc/group if-in-image
             bind /etc/resolv.conf -> /etc/resolv.conf
             bind /data -> /mnt/d rec ro
             bind /data/file -> /opt/f
             bind /home/alice/src -> /home/alice/src rec
             home /root
             cwd /home/alice/src"
        )
    );
    // The skeleton: every destination, with the kind of its source.
    let skel: Vec<String> = plan
        .skeleton
        .iter()
        .map(|(p, k)| format!("{} {k:?}", p.display()))
        .collect();
    assert_eq!(
        skel,
        lines(
            "/etc/localtime File
             /proc Dir
             /sys Dir
             /root Dir
             /etc/resolv.conf File
             /mnt/d Dir
             /opt/f File
             /home/alice/src Dir"
        )
    );
}

#[test]
fn no_home_custom_home_and_missing_sources() {
    let opts = RunOptions {
        no_home: true,
        ..Default::default()
    };
    let got = plan_of(opts, false);
    assert!(!got.iter().any(|l| l.contains("/home/alice ->")), "{got:?}");
    assert!(got.contains(&"home /home/alice".to_string()));
    let opts = RunOptions {
        home: Some("/data:/home/me".into()),
        ..Default::default()
    };
    assert!(plan_of(opts, false).contains(&"bind /data -> /home/me rec".to_string()));
    let opts = RunOptions {
        binds: parse_bind_arg("/nope:/x").unwrap(),
        ..Default::default()
    };
    let e = build(&opts, &Host::example(), false, &Fake).unwrap_err();
    assert_eq!(
        e.0,
        "bind source /nope does not exist: create it or fix the -B/--mount argument"
    );
    let opts = RunOptions {
        binds: parse_bind_arg("/data/x.sif:/d:image-src=/").unwrap(),
        ..Default::default()
    };
    let e = build(&opts, &Host::example(), false, &Fake).unwrap_err();
    assert!(e.0.contains("need an image file"), "{e:?}");
}

#[test]
fn image_binds_are_served_under_the_session_and_bound_read_only() {
    let mut binds = parse_bind_arg("/data/file:/d:image-src=/sub/dir,id=3").unwrap();
    binds.extend(parse_bind_arg("/data/file:/e:image-src=/").unwrap());
    let opts = RunOptions {
        binds,
        ..Default::default()
    };
    let plan = build(&opts, &Host::example(), false, &Fake).unwrap();
    let text = render(&plan);
    assert!(
        text.contains(&"bind session:images/0/sub/dir -> /d ro".to_string()),
        "{text:?}"
    );
    assert!(
        text.contains(&"bind session:images/1 -> /e ro".to_string()),
        "{text:?}"
    );
    assert_eq!(
        plan.image_binds,
        vec![
            ImageBind {
                image: "/data/file".into(),
                id: Some(3)
            },
            ImageBind {
                image: "/data/file".into(),
                id: None
            }
        ]
    );
    for n in ["images/0", "images/1"] {
        assert!(plan.session_dirs.contains(&PathBuf::from(n)));
    }
    assert!(plan.skeleton.contains(&(PathBuf::from("/d"), Kind::Dir)));
}

#[test]
fn apply_makes_the_calls_under_the_root() {
    let opts = RunOptions {
        contain: true,
        no_mount: vec!["/dev".into(), "bind-paths".into(), "sys".into()],
        binds: parse_bind_arg("/data:/d:ro").unwrap(),
        ..Default::default()
    };
    let plan = build(&opts, &Host::example(), true, &Fake).unwrap();
    let r = RecordingSyscall::new();
    let has_group_file = |p: &Path| p.ends_with("etc/passwd");
    apply(
        &plan,
        &r,
        Path::new("/S/root"),
        Path::new("/S"),
        &has_group_file,
    )
    .unwrap();
    assert_eq!(
        r.lines(),
        lines(
            "mount proc /S/root/proc proc nosuid,nodev,noexec -
             mount /S/home /S/root/home/alice - bind -
             mount /S/tmp /S/root/tmp - bind -
             mount /S/var_tmp /S/root/var/tmp - bind -
             mount /S/files/passwd /S/root/etc/passwd - bind -
             mount /etc/resolv.conf /S/root/etc/resolv.conf - bind -
             mount /data /S/root/d - bind,rec -
             mount none /S/root/d - remount,bind,ro -"
        )
    );
    // A failing call stops the plan with the call in the message.
    let r = RecordingSyscall::new();
    r.fail_on("/S/root/tmp");
    let e = apply(&plan, &r, Path::new("/S/root"), Path::new("/S"), &|_| true).unwrap_err();
    assert!(
        e.0.contains("/S/root/tmp") && e.0.starts_with("building"),
        "{e}"
    );
}

#[test]
fn a_network_namespace_gets_its_own_sysfs() {
    let opts = RunOptions {
        net: true,
        no_mount: vec![
            "dev".into(),
            "bind-paths".into(),
            "home".into(),
            "tmp".into(),
        ],
        ..Default::default()
    };
    let got = plan_of(opts, false);
    assert_eq!(
        got[..2],
        lines("bind /proc -> /proc rec\nsysfs -> /sys")[..]
    );
}
