//! The `fuse2fs` personality: the command line Apptainer passes to fuse2fs,
//! `[-f] -o allow_other[,ro][,fakeroot][,offset=N] SOURCE TARGET`, served by the ext3 driver.
//!
//! SOURCE may be `/proc/self/fd/N`; TARGET may be `/dev/fd/N`. Options fuse2fs knows that
//! mean nothing here (`fakeroot`, `errors=`, `minixdf`, ...) are accepted silently; others
//! are warned about and ignored, as fuse2fs passes them to libfuse.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use squashbox_fuse::options::ServeOptions;

use crate::ext3_cmd::opener::Ext3Source;

fn help() -> String {
    format!(
        "fuse2fs (squashbox {v}): serve an ext2/ext3 image read-write with a multithreaded \
         FUSE server that writes the journal\n\
         Usage: fuse2fs [options] DEVICE MOUNTPOINT\n\
         \n\
         DEVICE may be /proc/self/fd/N (or a SIF file: its overlay partition is served);\n\
         MOUNTPOINT may be /dev/fd/N (an already-mounted /dev/fuse fd).\n\
         \n\
         fuse2fs options:\n\
         \x20   -o ro                  read-only mount\n\
         \x20   -o rw                  read-write mount (default)\n\
         \x20   -o norecovery          do not replay the journal (implies ro)\n\
         \x20   -o fakeroot            accepted (files keep the owners the kernel asks for)\n\
         \x20   -o offset=N            the filesystem starts N bytes into DEVICE\n\
         \x20   -o cache_size=N[KMG]   metadata block cache size (default 64M)\n\
         \x20   -o notify_pipe=PATH    write 's' (mounted) or 'f' (failed) to PATH\n\
         \x20   -o timeout=N           unmount after N seconds idle\n\
         \x20   -o threads=N           request threads (default: number of cores)\n\
         \n\
         The offset shim of Apptainer (LD_PRELOAD with OFFSETPRELOAD_FILE and\n\
         OFFSETPRELOAD_OFFSET) works: all image I/O is pread64/pwrite64 on one open64 fd, and\n\
         when the shim is not loaded the offset it names is applied here instead.\n\
         \n\
         FUSE options:\n\
         \x20   -h   --help            print help\n\
         \x20   -V   --version         print version\n\
         \x20   -d   -o debug          enable debug output (implies -f)\n\
         \x20   -f                     foreground operation\n\
         \x20   -s                     disable multi-threaded operation\n\
         \x20   -o allow_other         allow access by all users\n\
         \x20   -o allow_root          allow access by root\n",
        v = env!("CARGO_PKG_VERSION"),
    )
}

/// What the command line asks for.
#[derive(Debug)]
struct Parsed {
    opts: ServeOptions,
    read_only: bool,
    foreground: bool,
    positional: Vec<PathBuf>,
}

enum Action {
    Run(Box<Parsed>),
    Exit(ExitCode),
}

/// fuse2fs options with no effect here, accepted without a warning.
fn quietly_accepted(opt: &str) -> bool {
    let key = opt.split_once('=').map_or(opt, |(k, _)| k);
    matches!(
        key,
        "fakeroot"
            | "errors"
            | "minixdf"
            | "bsddf"
            | "no_default_opts"
            | "fuse2fs_debug"
            | "acl"
            | "noacl"
            | "direct"
            | "kernel"
            | "lockfile"
            | "noload"
            | "user_xattr"
            | "nouser_xattr"
    )
}

/// fuse2fs's `cache_size=N[KMG]` (bytes, or with a binary suffix) as whole MiB, at least 1.
fn cache_size_mib(v: &str) -> Result<usize, String> {
    let bad = || format!("cache_size={v}: expected a size such as 32M or 1G");
    let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => v.split_at(i),
        None => (v, ""),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    usize::try_from(bytes.div_ceil(1 << 20).max(1)).map_err(|_| bad())
}

fn apply(
    opts: &mut ServeOptions,
    read_only: &mut bool,
    o: &str,
    ignored: &mut Vec<String>,
) -> Result<(), String> {
    let mut rest = Vec::new();
    for opt in o.split(',').filter(|x| !x.is_empty()) {
        match opt {
            "ro" | "norecovery" => *read_only = true,
            "rw" => *read_only = false,
            x if x.starts_with("cache_size=") => opts.cache_mib = cache_size_mib(&x[11..])?,
            x if quietly_accepted(x) => {}
            x => rest.push(x),
        }
    }
    opts.apply_o(&rest.join(","), ignored)
}

fn parse(args: &[OsString]) -> Result<Action, String> {
    let mut opts = ServeOptions::default();
    let mut read_only = false;
    let mut foreground = false;
    let mut positional = Vec::new();
    let mut ignored = Vec::new();
    let mut only_positional = false;
    let mut it = args.iter();
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
                println!("fuse2fs (squashbox) {}", env!("CARGO_PKG_VERSION"));
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
                apply(
                    &mut opts,
                    &mut read_only,
                    &v.to_string_lossy(),
                    &mut ignored,
                )?;
            }
            o if o.starts_with("-o") => apply(&mut opts, &mut read_only, &o[2..], &mut ignored)?,
            other => ignored.push(other.to_string()),
        }
    }
    for o in ignored {
        eprintln!("fuse2fs: warning: ignoring unknown option {o}");
    }
    foreground |= opts.debug;
    Ok(Action::Run(Box::new(Parsed {
        opts,
        read_only,
        foreground,
        positional,
    })))
}

/// Run the `fuse2fs` personality with `args` (argv without argv\[0\]).
pub fn run_fuse2fs(args: &[OsString]) -> ExitCode {
    let p = match parse(args) {
        Ok(Action::Run(p)) => p,
        Ok(Action::Exit(code)) => return code,
        Err(e) => {
            eprintln!("fuse2fs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let [source, target] = p.positional.as_slice() else {
        eprintln!("fuse2fs: expected DEVICE and MOUNTPOINT (see fuse2fs --help)");
        return ExitCode::FAILURE;
    };
    let src = Ext3Source {
        path: source.clone(),
        read_only: p.read_only,
        partition: None,
        offset: p.opts.offset.unwrap_or(0),
        lock: false,
    };
    crate::ext3_cmd::run_server(src, target, p.opts, p.foreground, "fuse2fs")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parsed(v: &[&str]) -> Parsed {
        match parse(&args(v)) {
            Ok(Action::Run(p)) => *p,
            _ => panic!("not parsed: {v:?}"),
        }
    }

    #[test]
    fn parses_the_apptainer_form() {
        let p = parsed(&[
            "-f",
            "-o",
            "allow_other,ro,fakeroot,offset=4096",
            "/proc/self/fd/3",
            "/dev/fd/5",
        ]);
        assert!(p.foreground && p.read_only && p.opts.allow_other);
        assert_eq!(p.opts.offset, Some(4096));
        assert_eq!(
            p.positional,
            [PathBuf::from("/proc/self/fd/3"), PathBuf::from("/dev/fd/5")]
        );
    }

    #[test]
    fn read_write_by_default_and_norecovery_is_read_only() {
        let p = parsed(&["-oallow_other,fakeroot", "img", "mnt"]);
        assert!(!p.read_only && !p.foreground);
        assert!(parsed(&["-o", "norecovery", "img", "mnt"]).read_only);
        assert!(!parsed(&["-o", "ro", "-o", "rw", "img", "mnt"]).read_only);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse(&args(&["-o", "offset=x", "img", "mnt"])).is_err());
        assert!(parse(&args(&["-o"])).is_err());
        for bad in [
            "cache_size=",
            "cache_size=12X",
            "cache_size=M",
            "cache_size=99999999999G",
        ] {
            assert!(parse(&args(&["-o", bad, "img", "mnt"])).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_size_sets_the_cache_in_mib() {
        for (v, mib) in [
            ("32M", 32),
            ("1G", 1024),
            ("1048576", 1),
            ("1", 1),
            ("1536k", 2),
        ] {
            let p = parsed(&["-o", &format!("allow_other,cache_size={v}"), "img", "mnt"]);
            assert_eq!(p.opts.cache_mib, mib, "{v}");
        }
    }
}
