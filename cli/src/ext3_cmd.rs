//! `squashbox ext3 mount`: serve an ext3 image (or a SIF's ext3 overlay partition)
//! read-write or read-only, and the server shared with the `fuse2fs` personality
//! ([`crate::fuse2fs`]).

pub mod opener;
pub mod overlay_create;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use squashbox_fuse::options::ServeOptions;

use opener::{Ext3Source, ext3_opener};

/// Arguments of `squashbox ext3`.
#[derive(clap::Args)]
pub struct Ext3Args {
    #[command(subcommand)]
    command: Ext3Command,
}

#[derive(clap::Subcommand)]
enum Ext3Command {
    /// Mount an ext3 image or a SIF's ext3 overlay partition, read-write unless -o ro.
    Mount(MountArgs),
    /// Make an ext3 overlay image as `apptainer overlay create` does (also reachable as
    /// `squashbox overlay create`).
    Create(overlay_create::CreateArgs),
}

/// Arguments of `squashbox ext3 mount`.
#[derive(clap::Args)]
#[command(after_help = "\
The image is served read-write with the jbd2 journal (ordered mode; commits every 5 s, on \
fsync, at unmount and on SIGTERM), or read-only with -o ro (a journal that needs recovery \
is then replayed in memory only). ext4 images are served read-only. For a SIF file the \
overlay partition is served (or the ext3 partition given by --partition). Unmount with \
`squashbox unmount MOUNTPOINT` or fusermount3 -u; the image is clean afterwards.")]
pub struct MountArgs {
    /// The ext3 image, or a SIF file with an ext3 overlay partition.
    image: PathBuf,
    /// Directory to mount on (or /dev/fd/N: an already-mounted /dev/fuse fd).
    mountpoint: PathBuf,
    /// Serve the SIF partition with this descriptor ID.
    #[arg(long, value_name = "ID")]
    partition: Option<u32>,
    /// Stay in the foreground (default: detach once the mount is ready).
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Print debug output (every request); implies --foreground.
    #[arg(short = 'd', long)]
    debug: bool,
    /// Mount options, comma separated: ro, rw, allow_other, allow_root, offset=N,
    /// cache=MiB (metadata block cache, default 64), notify_pipe=PATH, timeout=SECS,
    /// threads=N, suid, dev, exec, noexec.
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
}

/// Run `squashbox ext3 ...`.
pub fn run(args: Ext3Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Ext3Command::Mount(m) => Ok(run_mount(m)),
        Ext3Command::Create(c) => overlay_create::run_create(c),
    }
}

fn run_mount(args: MountArgs) -> ExitCode {
    let mut opts = ServeOptions::default();
    let mut read_only = false;
    let mut ignored = Vec::new();
    for o in &args.options {
        let rest = take_rw_options(o, &mut read_only);
        if let Err(e) = opts.apply_o(&rest, &mut ignored) {
            eprintln!("squashbox: {e}");
            return ExitCode::FAILURE;
        }
    }
    for o in ignored {
        eprintln!("squashbox: warning: ignoring unknown option -o {o}");
    }
    opts.debug |= args.debug;
    let foreground = args.foreground || opts.debug;
    let src = Ext3Source {
        path: args.image,
        read_only,
        partition: args.partition,
        offset: opts.offset.unwrap_or(0),
        lock: true,
    };
    run_server(src, &args.mountpoint, opts, foreground, "squashbox")
}

/// Take `ro`/`rw` out of a comma-separated option string (they decide the mode here; the
/// serve options would treat `rw` as unknown); returns the rest.
pub fn take_rw_options(opts: &str, read_only: &mut bool) -> String {
    opts.split(',')
        .filter(|o| match *o {
            "ro" => {
                *read_only = true;
                false
            }
            "rw" => {
                *read_only = false;
                false
            }
            _ => true,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Serve `src` at `target`, in the foreground or as a daemon that detaches once the mount is
/// ready. `prog` prefixes errors.
pub fn run_server(
    mut src: Ext3Source,
    target: &Path,
    opts: ServeOptions,
    foreground: bool,
    prog: &str,
) -> ExitCode {
    squashbox_fuse::logger::init_for(opts.debug);
    if !foreground || src.lock {
        // A detached server runs from "/": resolve the path first; `squashbox unmount` also
        // finds the image by the absolute path the mount table shows. (The fuse2fs
        // personality in the foreground keeps the path as given, which Apptainer's offset
        // shim compares by string.)
        src.path = std::path::absolute(&src.path).unwrap_or(src.path);
    }
    let open = ext3_opener(src);
    crate::mount_cmd::serve_opener(open, target, &opts, foreground, prog)
}
