//! The `fuse-overlayfs` personality: the command lines Apptainer and mount.fuse3 pass.
//!
//! Accepted: `[-f] [-d] [-o OPT[,OPT...]]... [SOURCE] TARGET` in any order (mount.fuse3
//! passes `SOURCE TARGET -o ...`; SOURCE is ignored), `-h/--help`, `-V/--version`. TARGET
//! may be `/dev/fd/N`. Unknown options are ignored, as fuse-overlayfs does (named on stderr
//! with `-d`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use super::options::OverlayOptions;

const PROG: &str = "fuse-overlayfs";

fn help() -> String {
    format!(
        "usage: {PROG} [options] [SOURCE] MOUNTPOINT\n\
         (squashbox {version}: an overlay served in one process; lower layers may also be\n\
         SquashFS images or SIF files)\n\
         \n\
         \x20   -h   --help              print help\n\
         \x20   -V   --version           print version\n\
         \x20   -f                       foreground operation\n\
         \x20   -d   -o debug            enable debug output (implies -f)\n\
         \x20   -o lowerdir=L1[:L2...]   lower layers, top first (\\: escapes a colon)\n\
         \x20   -o upperdir=DIR          the writable upper layer\n\
         \x20   -o workdir=DIR           work directory, same filesystem as upperdir\n\
         \x20   -o squash_to_root        show every file as owned by root\n\
         \x20   -o squash_to_uid=N       show every file as owned by uid N\n\
         \x20   -o squash_to_gid=N       show every file as owned by gid N\n\
         \x20   -o uidmapping=C:H:N[:..] show stored uid H+i as C+i\n\
         \x20   -o gidmapping=C:H:N[:..] likewise for groups\n\
         \x20   -o static_nlink          directories report st_nlink 1\n\
         \x20   -o noacl, xino=on|off|auto  accepted (no ACLs; inode numbers always unique)\n\
         \x20   -o allow_other, ro, notify_pipe=PATH, threads=N\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

enum Action {
    Run(Box<OverlayOptions>, bool, PathBuf),
    Exit(ExitCode),
}

fn parse(args: &[OsString]) -> Result<Action, String> {
    let mut o = OverlayOptions::default();
    let mut foreground = false;
    let mut positional = Vec::new();
    let mut it = args.iter();
    let mut only_positional = false;
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy();
        if only_positional || !s.starts_with('-') || s == "-" {
            positional.push(PathBuf::from(arg));
            continue;
        }
        match s.as_ref() {
            "--" => only_positional = true,
            "-h" | "--help" => {
                print!("{}", help());
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            "-V" | "--version" => {
                println!(
                    "{PROG}: version 1.14 (squashbox {})",
                    env!("CARGO_PKG_VERSION")
                );
                println!("FUSE library version: fuser 0.18 (no libfuse)");
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            "-f" => foreground = true,
            "-d" | "--debug" => {
                o.serve.debug = true;
            }
            "-s" => o.serve.threads = Some(1),
            "-o" => {
                let v = it.next().ok_or("missing argument after -o")?;
                o.apply(&v.to_string_lossy(), true)?;
            }
            x if x.starts_with("-o") => o.apply(&x[2..], true)?,
            other => o.ignored.push(other.to_string()),
        }
    }
    let target = match positional.len() {
        1 | 2 => positional.pop().unwrap_or_default(),
        0 => return Err("no mountpoint given (see --help)".into()),
        _ => return Err("too many arguments: expected [SOURCE] MOUNTPOINT".into()),
    };
    if o.lowerdirs.is_empty() {
        return Err("no lowerdir specified".into());
    }
    let foreground = foreground || o.serve.debug;
    Ok(Action::Run(Box::new(o), foreground, target))
}

/// Run as `fuse-overlayfs` with `args` (argv without argv[0]).
pub fn run_fuse_overlayfs(args: &[OsString]) -> ExitCode {
    let (o, foreground, target) = match parse(args) {
        Ok(Action::Run(o, f, t)) => (o, f, t),
        Ok(Action::Exit(code)) => return code,
        Err(e) => {
            eprintln!("{PROG}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if o.serve.debug {
        for i in &o.ignored {
            eprintln!("{PROG}: ignoring unknown option {i}");
        }
    }
    match super::stack_of(&o) {
        Ok(stack) => super::serve_stack(stack, &target, o.serve, foreground, PROG),
        Err(e) => {
            eprintln!("{PROG}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn apptainer_form() {
        let a = args(&[
            "-f",
            "-o",
            r"allow_other,lowerdir=/l\:1:/l2,upperdir=/u,workdir=/w,noacl",
            "/dev/fd/5",
        ]);
        let Ok(Action::Run(o, fg, t)) = parse(&a) else {
            panic!("not parsed")
        };
        assert!(fg && o.serve.allow_other);
        assert_eq!(t, PathBuf::from("/dev/fd/5"));
        assert_eq!(o.lowerdirs, [r"/l\:1:/l2"]);
    }

    #[test]
    fn mount_fuse3_form_and_errors() {
        let a = args(&["overlay", "/mnt", "-o", "rw,lowerdir=/l,xyz"]);
        let Ok(Action::Run(o, fg, t)) = parse(&a) else {
            panic!("not parsed")
        };
        assert!(!fg);
        assert_eq!(t, PathBuf::from("/mnt"));
        assert_eq!(o.ignored, ["xyz"]);
        assert!(parse(&args(&["/mnt"])).is_err());
        assert!(parse(&args(&["-o", "lowerdir=/l"])).is_err());
        assert!(parse(&args(&["-o", "lowerdir=/l", "a", "b", "c"])).is_err());
    }
}
