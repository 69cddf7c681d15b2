//! `squashbox exec|run|shell|test|inspect|doctor` on Apptainer's busybox SIF, as whoever
//! runs the tests (root here, a plain user in CI; the runtime makes its own user and mount
//! namespaces either way): exit statuses, output, signals, a tty, the foreign architecture
//! error, binds, overlays, writable tmpfs, fakeroot, environment, the PID and network
//! namespaces. runtime_user.rs runs the same image as a plain user created for the test.

#[path = "common/fuse.rs"]
mod fuse;
#[path = "common/runtime.rs"]
mod runtime;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use fuse::{bin, busybox_sif};
use squashbox_fixtures::prereq;

use runtime::{describe, ready, sb, sb_in, stdout};

fn exec(extra: &[&str], cmd: &[&str]) -> Output {
    let img = busybox_sif();
    let mut args = vec!["exec"];
    args.extend_from_slice(extra);
    args.push(img.to_str().unwrap());
    args.extend_from_slice(cmd);
    sb(&args)
}

/// The caller's home directory in the passwd database (the container home).
fn passwd_home() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .expect("a passwd entry for the test user")
        .dir
        .display()
        .to_string()
}

/// What is in directory `d`.
fn entries(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn exit_statuses_and_output_pass_through() {
    if !ready() {
        return;
    }
    let o = exec(&[], &["/bin/true"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = exec(&[], &["/bin/false"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let o = exec(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", describe(&o));
    let o = exec(&[], &["echo", "hello", "from busybox"]);
    assert_eq!(stdout(&o), "hello from busybox\n", "{}", describe(&o));
    assert!(o.stderr.is_empty(), "{}", describe(&o));
    // Death by a signal is death by the same signal.
    let o = exec(&[], &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.signal(), Some(15), "{}", describe(&o));
    // A missing command: the shell's 127.
    let o = exec(&[], &["/no/such/command"]);
    assert_eq!(o.status.code(), Some(127), "{}", describe(&o));
}

#[test]
fn the_root_is_the_image_served_by_squashbox() {
    if !ready() {
        return;
    }
    let o = exec(
        &[],
        &[
            "sh",
            "-c",
            "grep ' / / ' /proc/self/mountinfo; cat /.singularity.d/runscript | head -1; \
             touch /cannot-write 2>&1 || echo READ-ONLY",
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("fuse.squashbox"), "{}", describe(&o));
    assert!(out.contains("READ-ONLY"), "{}", describe(&o));
    // The session directory is made in $TMPDIR and gone once the container has started.
    let tmp = tempfile::tempdir().unwrap();
    let img = busybox_sif();
    let o = sb_in(
        tmp.path(),
        &[
            "exec",
            img.to_str().unwrap(),
            "sh",
            "-c",
            "sleep 0.2; echo ok",
        ],
    );
    assert_eq!(stdout(&o), "ok\n", "{}", describe(&o));
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_foreign_architecture_fails_before_anything_is_mounted() {
    if !prereq::require_path(&squashbox_fixtures::upstream(
        "apptainer-e2e/busybox_arm64.sif",
    )) {
        return;
    }
    let img = squashbox_fixtures::upstream("apptainer-e2e/busybox_arm64.sif");
    let tmp = tempfile::tempdir().unwrap();
    let o = sb_in(tmp.path(), &["exec", img.to_str().unwrap(), "/bin/true"]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{}", describe(&o));
    assert!(
        err.contains("architecture (arm64)") && err.contains("amd64"),
        "{}",
        describe(&o)
    );
    assert_eq!(
        entries(tmp.path()),
        Vec::<String>::new(),
        "a session was made"
    );
}

#[test]
fn binds_read_only_binds_and_missing_targets() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "bound data\n").unwrap();
    let d = dir.path().display().to_string();
    // /opt/a/b does not exist in busybox: the skeleton layer provides it.
    let bind = format!("{d}:/opt/a/b,{d}:/ro-here:ro");
    let o = exec(
        &["-B", &bind],
        &[
            "sh",
            "-c",
            "cat /opt/a/b/data.txt; echo new > /opt/a/b/new.txt && echo WROTE; \
             echo x > /ro-here/x 2>/dev/null || echo RO-REFUSED; cat /ro-here/data.txt",
        ],
    );
    assert_eq!(
        stdout(&o),
        "bound data\nWROTE\nRO-REFUSED\nbound data\n",
        "{}",
        describe(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new.txt")).unwrap(),
        "new\n"
    );
    // APPTAINER_BIND works as -B does.
    let img = busybox_sif();
    let o = Command::new(bin())
        .args(["exec", img.to_str().unwrap(), "cat", "/from-env/data.txt"])
        .env("APPTAINER_BIND", format!("{d}:/from-env"))
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "bound data\n", "{}", describe(&o));
    // A missing source is an error with exit 255.
    let o = exec(&["-B", "/no/such/source:/x"], &["/bin/true"]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/source"));
    // --no-mount tmp: /tmp is the image's, not the host's.
    let marker = tempfile::Builder::new()
        .prefix("sb-marker")
        .tempfile()
        .unwrap();
    let name = marker
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let o = exec(&[], &["ls", "/tmp"]);
    assert!(stdout(&o).contains(&name), "{}", describe(&o));
    // (cwd too: the tests may run from /tmp, and $PWD is bound.)
    let o = exec(&["--no-mount", "tmp,cwd"], &["ls", "/tmp"]);
    assert!(!stdout(&o).contains(&name), "{}", describe(&o));
}

#[test]
fn writable_tmpfs_writes_are_lost_at_exit() {
    if !ready() {
        return;
    }
    // --fakeroot: the image's root-owned directories are writable only to its root.
    let o = exec(
        &["--fakeroot", "--writable-tmpfs"],
        &[
            "sh",
            "-c",
            "echo hi > /etc/new-file && cat /etc/new-file && rm /bin/true && ls /bin/true 2>/dev/null || echo GONE",
        ],
    );
    assert_eq!(stdout(&o), "hi\nGONE\n", "{}", describe(&o));
    let o = exec(
        &[],
        &[
            "sh",
            "-c",
            "ls /etc/new-file 2>/dev/null || echo ABSENT; /bin/true && echo BACK",
        ],
    );
    assert_eq!(stdout(&o), "ABSENT\nBACK\n", "{}", describe(&o));
    // Apptainer's rule: one writable overlay at most.
    let a = tempfile::tempdir().unwrap();
    let o = exec(
        &["--writable-tmpfs", "-o", a.path().to_str().unwrap()],
        &["/bin/true"],
    );
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("you can't specify --writable-tmpfs with another writable overlay image")
    );
    let o = exec(&["-w"], &["/bin/true"]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no SIF writable overlay partition found"));
}

#[test]
fn a_directory_overlay_keeps_changes_and_whiteouts() {
    if !ready() {
        return;
    }
    let ov = tempfile::tempdir().unwrap();
    let o_arg = ov.path().to_str().unwrap();
    // --fakeroot: the image's root-owned directories are writable only to its root.
    let o = exec(
        &["--fakeroot", "-o", o_arg],
        &[
            "sh",
            "-c",
            "echo kept > /kept && rm /bin/false && echo done",
        ],
    );
    assert_eq!(stdout(&o), "done\n", "{}", describe(&o));
    assert_eq!(
        std::fs::read_to_string(ov.path().join("upper/kept")).unwrap(),
        "kept\n"
    );
    let o = exec(
        &["--fakeroot", "-o", o_arg],
        &[
            "sh",
            "-c",
            "cat /kept; ls /bin/false 2>/dev/null || echo WHITED-OUT",
        ],
    );
    assert_eq!(stdout(&o), "kept\nWHITED-OUT\n", "{}", describe(&o));
    // Read-only use of the same directory sees the changes but cannot write.
    let ro = format!("{o_arg}:ro");
    let o = exec(
        &["--fakeroot", "-o", &ro],
        &["sh", "-c", "cat /kept; touch /x 2>&1"],
    );
    assert_eq!(
        stdout(&o),
        "kept\ntouch: /x: Read-only file system\n",
        "{}",
        describe(&o)
    );
}

#[test]
fn environment_home_fakeroot_and_pid_namespace() {
    if !ready() {
        return;
    }
    let img = busybox_sif();
    let o = Command::new(bin())
        .args(["exec", "--env", "B=cli", img.to_str().unwrap(), "sh", "-c"])
        .arg("echo \"$FROM_HOST|$A|$B|$HOME|$APPTAINER_NAME|$PATH\"")
        .env_clear()
        .env("HOME", "/root")
        .env("PATH", "/host/only")
        .env("FROM_HOST", "host-value")
        .env("APPTAINERENV_A", "app")
        .env("SINGULARITYENV_A", "sing")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o),
        format!(
            "host-value|app|cli|{}|busybox_amd64.sif|{}\n",
            passwd_home(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        "{}",
        describe(&o)
    );
    let o = exec(&["--cleanenv"], &["sh", "-c", "echo \"[$FROM_HOST]$LANG\""]);
    assert_eq!(stdout(&o), "[]C\n", "{}", describe(&o));
    let o = exec(
        &["--fakeroot"],
        &["sh", "-c", "id -u; echo $HOME; grep '^root:' /etc/passwd"],
    );
    assert_eq!(
        stdout(&o),
        "0\n/root\nroot:x:0:0:root:/root:/bin/sh\n",
        "{}",
        describe(&o)
    );
    // -p: an init is pid 1, the payload its child; its exit status passes through.
    let o = exec(&["-p"], &["sh", "-c", "echo $$; exit 3"]);
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(3), "2\n".into()),
        "{}",
        describe(&o)
    );
    // --hostname: a UTS namespace.
    let o = exec(&["--hostname", "inside"], &["hostname"]);
    assert_eq!(stdout(&o), "inside\n", "{}", describe(&o));
}

#[test]
fn run_shell_and_test_actions() {
    if !ready() {
        return;
    }
    let img = busybox_sif();
    let i = img.to_str().unwrap();
    // The busybox SIF's runscript is an OCI one: arguments replace its CMD ("sh").
    let o = sb(&["run", i, "echo", "via-runscript"]);
    assert_eq!(stdout(&o), "via-runscript\n", "{}", describe(&o));
    let o = sb(&["run", i, "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", describe(&o));
    // It has no test script: Apptainer's message, exit 0.
    let o = sb(&["test", i]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No test script found in container"),
        "{}",
        describe(&o)
    );
    let o = Command::new(bin())
        .args(["shell", i])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"echo in-shell; exit 4\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(4), "in-shell\n".into()),
        "{}",
        describe(&o)
    );
}

#[test]
fn contain_gives_a_minimal_dev_and_net_a_loopback_only_network() {
    if !ready() {
        return;
    }
    let o = exec(
        &["-c"],
        &[
            "sh",
            "-c",
            "ls /dev | tr '\\n' ' '; ls -A /tmp | wc -l; pwd",
        ],
    );
    assert_eq!(
        stdout(&o),
        format!(
            "fd null ptmx pts random shm stderr stdin stdout tty urandom zero 0\n{}\n",
            passwd_home()
        ),
        "{}",
        describe(&o)
    );
    let o = exec(
        &["--net", "--network", "none"],
        &[
            "sh",
            "-c",
            "ls /sys/class/net; f=$(cat /sys/class/net/lo/flags); [ $((f & 1)) = 1 ] && echo LO-UP",
        ],
    );
    assert_eq!(stdout(&o), "lo\nLO-UP\n", "{}", describe(&o));
    let o = exec(&["--net", "--network", "bridge"], &["/bin/true"]);
    assert_eq!(o.status.code(), Some(255), "{}", describe(&o));
}

#[test]
fn doctor_reports_each_check_on_one_line() {
    let o = sb(&["doctor"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let out = stdout(&o);
    for name in [
        "user.max_user_namespaces",
        "unprivileged user namespace",
        "/dev/fuse",
        "fusermount3",
        "FUSE mount in a user namespace",
        "subuid/subgid ranges for --fakeroot",
        "kernel overlay in a user namespace",
        "FUSE passthrough",
        "io_uring",
        "kernel SquashFS decompressor",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{out}"));
        let result = line[name.len()..].split_whitespace().next().unwrap_or("");
        assert!(["yes", "no", "unknown"].contains(&result), "{line}");
    }
    // Every "no" says what to do on the next line.
    let lines: Vec<&str> = out.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.split_whitespace().any(|w| w == "no") && !l.trim_start().starts_with("->") {
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|n| n.trim_start().starts_with("->")),
                "{out}"
            );
        }
    }
    // Where this test may run containers (root, /dev/fuse), the namespace checks say yes.
    if ready() {
        for name in [
            "unprivileged user namespace",
            "FUSE mount in a user namespace",
        ] {
            let line = out.lines().find(|l| l.starts_with(name)).unwrap();
            assert!(line[name.len()..].trim_start().starts_with("yes"), "{line}");
        }
    }
}

#[test]
fn inspect_reads_the_metadata_without_running_anything() {
    let img = busybox_sif();
    let i = img.to_str().unwrap();
    let o = sb(&["inspect", i]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let labels = stdout(&o);
    assert!(
        labels.contains("org.label-schema.build-arch: amd64\n"),
        "{labels}"
    );
    let mut sorted: Vec<&str> = labels.lines().collect();
    sorted.sort();
    assert_eq!(sorted, labels.lines().collect::<Vec<_>>());
    // The definition file comes from the SIF's Deffile object.
    let o = sb(&["inspect", "-d", i]);
    assert_eq!(
        stdout(&o),
        "BootStrap: docker\nFrom: busybox:1.33.1\n",
        "{}",
        describe(&o)
    );
    // The runscript is the image's file, byte for byte (read by another reader).
    let o = sb(&["inspect", "-r", i]);
    let cat = sb(&["squashfs", "cat", i, "/.singularity.d/runscript"]);
    assert!(cat.status.success(), "{}", describe(&cat));
    assert_eq!(o.stdout, cat.stdout);
    let o = sb(&["inspect", "-e", i]);
    assert!(
        stdout(&o).starts_with("=== /.singularity.d/env/10-docker2singularity.sh ===\n#!/bin/sh\n"),
        "{}",
        describe(&o)
    );
    // Metadata of a foreign image can be read; JSON has Apptainer's shape.
    let arm = squashbox_fixtures::upstream("apptainer-e2e/busybox_arm64.sif");
    let o = sb(&["inspect", "--all", arm.to_str().unwrap()]);
    let j = stdout(&o);
    assert!(
        j.starts_with("{\n    \"data\": {\n        \"attributes\": {\n"),
        "{j}"
    );
    assert!(
        j.contains("\"org.label-schema.build-arch\": \"arm64\""),
        "{j}"
    );
    assert!(j.ends_with("    \"type\": \"container\"\n}\n"), "{j}");
}

#[test]
fn bind_destinations_resolve_symlinks_inside_the_container() {
    if !ready() || !prereq::require_tools(&["mksquashfs"]) {
        return;
    }
    // An overlay image whose symlinks are absolute: they must resolve in the container's
    // root, not the host's (where /sb-real does not exist).
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("sb-real")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/zoneinfo/Etc")).unwrap();
    std::fs::write(tree.join("usr/share/zoneinfo/Etc/UTC"), "image-tz").unwrap();
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::os::unix::fs::symlink("/sb-real", tree.join("sb-linked")).unwrap();
    std::os::unix::fs::symlink("/usr/share/zoneinfo/Etc/UTC", tree.join("etc/localtime")).unwrap();
    let ov = tmp.path().join("ov.sqfs");
    fuse::mksquashfs(&tree, &ov, &["-all-root"]);
    let host = tmp.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("data.txt"), "through the link\n").unwrap();
    let bind = format!("{}:/sb-linked", host.display());
    let o = exec(
        &["-o", ov.to_str().unwrap(), "-B", &bind],
        &[
            "sh",
            "-c",
            "cat /sb-real/data.txt; head -c 4 /usr/share/zoneinfo/Etc/UTC; echo",
        ],
    );
    let host_tz = std::fs::read("/etc/localtime").ok();
    let want_tz = match &host_tz {
        Some(b) => String::from_utf8_lossy(&b[..4.min(b.len())]).into_owned(),
        None => "imag".into(),
    };
    assert_eq!(
        stdout(&o),
        format!("through the link\n{want_tz}\n"),
        "{}",
        describe(&o)
    );
    assert!(!Path::new("/sb-real").exists());
}

#[test]
fn a_tty_passes_through_to_an_interactive_shell() {
    if !ready() || !prereq::require_tools(&["script"]) {
        return;
    }
    let img = busybox_sif();
    let cmd = format!("{} shell {}", bin(), img.display());
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"test -t 0 && test -t 1 && echo BOTH-TTY; exit 6\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(6), "{}", describe(&o));
    // The terminal echoes the line; the answer comes on a line of its own.
    assert!(
        stdout(&o).lines().any(|l| l.trim_end() == "BOTH-TTY"),
        "{}",
        describe(&o)
    );
}

#[test]
fn a_killed_container_leaves_no_server_session_or_mount_behind() {
    if !ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = busybox_sif();
    let mut child = Command::new(bin())
        .args(["exec", img.to_str().unwrap(), "sleep", "60"])
        .env("TMPDIR", tmp.path())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The server is the runtime's child, in a process group of its own.
    let children = format!("/proc/{pid}/task/{pid}/children");
    let mut server = None;
    for _ in 0..200 {
        let kids = std::fs::read_to_string(&children).unwrap_or_default();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let first = kids.split_whitespace().next().map(str::to_string);
        if first.is_some() && comm.trim() == "sleep" {
            server = first;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let server = server.expect("the payload runs and the server is its child");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{server}/comm"))
            .unwrap()
            .trim(),
        "squashbox-srv"
    );
    // The session directory is already gone from the host: nothing to clean up later.
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
    // SIGKILL the container: its mount namespace dies, so the root's last mount goes and
    // the server ends by itself.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    let gone = fuse::wait_for(std::time::Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{server}")).exists()
            || std::fs::read_to_string(format!("/proc/{server}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(gone, "the server {server} outlived its container");
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}
