//! Drop-in personalities: `squashfuse_ll` and `squashfuse` command lines as Apptainer passes them,
//! and `fuse-overlayfs` (see [`crate::overlay_cmd::personality`]).
//!
//! Accepted: `[-f] [-d] [-s] [-o OPT[,OPT...]]... SOURCE TARGET`, `-h/--help`, `-V/--version`.
//! SOURCE may be `/proc/self/fd/N`; TARGET may be `/dev/fd/N` (an already-mounted FUSE fd).
//! Unknown `-o` options and flags are warned about and ignored, as libfuse-based helpers do.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use squashbox_fuse::options::ServeOptions;

const NOT_YET: &[&str] = &[];

/// If `argv0` names a drop-in personality, run it and return its exit code.
pub fn dispatch(argv0: &str, args: &[OsString]) -> Option<ExitCode> {
    match argv0 {
        "squashfuse_ll" | "squashfuse" => Some(run_squashfuse(argv0, &args[1.min(args.len())..])),
        "fuse-overlayfs" => Some(crate::overlay_cmd::personality::run_fuse_overlayfs(
            &args[1.min(args.len())..],
        )),
        "fuse2fs" => Some(crate::fuse2fs::run_fuse2fs(&args[1.min(args.len())..])),
        name if NOT_YET.contains(&name) => {
            eprintln!("{name}: not implemented yet in squashbox");
            Some(ExitCode::FAILURE)
        }
        _ => None,
    }
}

fn help(prog: &str) -> String {
    format!(
        "{prog} (squashbox {version}): mount a SquashFS image or SIF with a multithreaded FUSE server\n\
         Usage: {prog} [options] ARCHIVE MOUNTPOINT\n\
         \n\
         ARCHIVE may be /proc/self/fd/N; MOUNTPOINT may be /dev/fd/N (an already-mounted\n\
         /dev/fuse fd).\n\
         \n\
         {prog} options:\n\
         \x20   -o offset=N            offset N bytes into ARCHIVE to mount\n\
         \x20   -o subdir=PATH         mount PATH inside the archive as the root\n\
         \x20   -o timeout=N           unmount after N seconds idle\n\
         \x20   -o uid=N               set file owner to uid N\n\
         \x20   -o gid=N               set file group to gid N\n\
         \x20   -o notify_pipe=PATH    write 's' (mounted) or 'f' (failed) to the named pipe PATH\n\
         \x20   -o cache=MIB           decompressed block cache size (default 64)\n\
         \x20   -o threads=N           request threads (default: number of cores)\n\
         \x20   -o prefetch=N          blocks to decompress ahead of sequential readers (default: 2 MiB)\n\
         \n\
         FUSE options:\n\
         \x20   -h   --help            print help\n\
         \x20   -V   --version         print version\n\
         \x20   -d   -o debug          enable debug output (implies -f)\n\
         \x20   -f                     foreground operation\n\
         \x20   -s                     disable multi-threaded operation\n\
         \x20   -o clone_fd            use separate fuse device fd for each thread (default)\n\
         \x20   -o max_threads=N       the maximum number of threads\n\
         \x20   -o allow_other         allow access by all users\n\
         \x20   -o allow_root          allow access by root\n\
         \x20   -o ro, suid, dev, exec, noexec, fsname=NAME, subtype=NAME\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// What the command line asks for.
struct Parsed {
    opts: ServeOptions,
    foreground: bool,
    positional: Vec<PathBuf>,
}

enum Action {
    Run(Box<Parsed>),
    Exit(ExitCode),
}

fn parse(prog: &str, args: &[OsString]) -> Result<Action, String> {
    let mut opts = ServeOptions::default();
    let mut foreground = false;
    let mut positional = Vec::new();
    let mut ignored = Vec::new();
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
                print!("{}", help(prog));
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            "-V" | "--version" => {
                println!("{prog} (squashbox) {}", env!("CARGO_PKG_VERSION"));
                println!("FUSE library version: fuser 0.18 (no libfuse)");
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            "-f" => foreground = true,
            "-d" | "--debug" => {
                opts.debug = true;
                foreground = true;
            }
            "-s" => opts.threads = Some(1),
            "-o" => {
                let v = it.next().ok_or("missing argument after -o")?;
                opts.apply_o(&v.to_string_lossy(), &mut ignored)?;
            }
            o if o.starts_with("-o") => opts.apply_o(&o[2..], &mut ignored)?,
            other => ignored.push(other.to_string()),
        }
    }
    for o in ignored {
        eprintln!("{prog}: warning: ignoring unknown option {o}");
    }
    if opts.debug {
        foreground = true;
    }
    Ok(Action::Run(Box::new(Parsed {
        opts,
        foreground,
        positional,
    })))
}

fn run_squashfuse(prog: &str, args: &[OsString]) -> ExitCode {
    let parsed = match parse(prog, args) {
        Ok(Action::Run(p)) => p,
        Ok(Action::Exit(code)) => return code,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let [source, target] = parsed.positional.as_slice() else {
        eprintln!("{prog}: expected ARCHIVE and MOUNTPOINT (see {prog} --help)");
        return ExitCode::FAILURE;
    };
    crate::mount_cmd::run_server(source, target, parsed.opts, parsed.foreground, prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_the_apptainer_form() {
        let a = args(&[
            "-f",
            "-o",
            "allow_other,ro,uid=1000,gid=1000,offset=45056",
            "/proc/self/fd/3",
            "/dev/fd/5",
        ]);
        let Ok(Action::Run(p)) = parse("squashfuse_ll", &a) else {
            panic!("not parsed")
        };
        assert!(p.foreground && p.opts.allow_other);
        assert_eq!(p.opts.uid, Some(1000));
        assert_eq!(p.opts.offset, Some(45056));
        assert_eq!(
            p.positional,
            [PathBuf::from("/proc/self/fd/3"), PathBuf::from("/dev/fd/5")]
        );
    }

    #[test]
    fn attached_o_debug_and_single_thread() {
        let a = args(&["-oallow_other", "-d", "-s", "-x", "img", "mnt"]);
        let Ok(Action::Run(p)) = parse("squashfuse", &a) else {
            panic!("not parsed")
        };
        assert!(p.foreground && p.opts.debug && p.opts.allow_other);
        assert_eq!(p.opts.thread_count(), 1);
        assert_eq!(p.positional.len(), 2);
    }

    #[test]
    fn help_mentions_uid_option() {
        assert!(help("squashfuse_ll").contains("-o uid=N"));
    }
}
