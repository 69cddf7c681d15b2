//! `squashbox overlay mount`: an overlay of images and directories, with an optional upper,
//! served by this one process; and the `fuse-overlayfs` personality
//! ([`personality::run_fuse_overlayfs`]), which builds the same stack from fuse-overlayfs's
//! command line.

pub mod layers;
pub mod options;
pub mod personality;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use squashbox_fuse::options::ServeOptions;

use layers::Stack;
use options::OverlayOptions;

/// Arguments of `squashbox overlay`.
#[derive(clap::Args)]
pub struct OverlayArgs {
    #[command(subcommand)]
    command: OverlayCommand,
}

#[derive(clap::Subcommand)]
enum OverlayCommand {
    /// Mount an overlay of SquashFS/SIF images and directories, optionally writable.
    Mount(MountArgs),
    /// Make an ext3 overlay image as Apptainer does (`upper/` and `work/` inside), or add
    /// one to a SIF as an overlay partition.
    Create(crate::ext3_cmd::overlay_create::CreateArgs),
}

/// Arguments of `squashbox overlay mount`.
#[derive(clap::Args)]
#[command(after_help = "\
Layers: each --lower takes a colon-separated list, top first (write \\: for a colon in a \
name); several --lower options stack in the order given, the first on top. An entry is a \
directory, a SquashFS image, or a SIF file (its primary system partition; FILE@ID serves \
the partition with descriptor ID); an ext3 overlay image shows its upper/ read-only. \
Without --upper (or --upper-image) the mount is read-only; with it, \
changes go to the upper directory (whiteouts as 0/0 character devices, as the kernel \
overlay writes them), and --work must name an empty directory on the same filesystem.\n\n\
Example: squashbox overlay mount --lower app.sif:/opt/extra --upper /tmp/u --work /tmp/w /mnt")]
pub struct MountArgs {
    /// Lower layers, top first: DIR, IMAGE or SIF[@ID], colon separated.
    #[arg(long, short = 'l', value_name = "LAYER[:LAYER...]")]
    lower: Vec<String>,
    /// The writable upper directory.
    #[arg(long, short = 'u', value_name = "DIR")]
    upper: Option<PathBuf>,
    /// The work directory (same filesystem as --upper).
    #[arg(long, short = 'w', value_name = "DIR")]
    work: Option<PathBuf>,
    /// An ext3 overlay image (or a SIF with an overlay partition) as the upper layer: its
    /// upper/ and work/ (made if missing) hold the changes. Instead of --upper and --work.
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["upper", "work"])]
    upper_image: Option<PathBuf>,
    /// Directory to mount on (or /dev/fd/N: an already-mounted /dev/fuse fd).
    mountpoint: PathBuf,
    /// Stay in the foreground (default: detach once the mount is ready).
    #[arg(short = 'f', long)]
    foreground: bool,
    /// Print debug output (every request); implies --foreground.
    #[arg(short = 'd', long)]
    debug: bool,
    /// Mount options, comma separated: allow_other, ro, notify_pipe=PATH, threads=N,
    /// cache=MiB, timeout=SECS (idle unmount), squash_to_root, squash_to_uid=N,
    /// squash_to_gid=N, uidmapping=C:H:N[:...], gidmapping=..., static_nlink, and
    /// fuse-overlayfs's lowerdir=, upperdir=, workdir=.
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
}

/// Run `squashbox overlay ...`.
pub fn run(args: OverlayArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        OverlayCommand::Mount(m) => Ok(run_mount(m)),
        OverlayCommand::Create(c) => crate::ext3_cmd::overlay_create::run_create(c),
    }
}

fn run_mount(args: MountArgs) -> ExitCode {
    const PROG: &str = "squashbox";
    let mut o = OverlayOptions::default();
    for opt in &args.options {
        if let Err(e) = o.apply(opt, false) {
            eprintln!("{PROG}: {e}");
            return ExitCode::FAILURE;
        }
    }
    for i in &o.ignored {
        eprintln!("{PROG}: warning: ignoring unknown option -o {i}");
    }
    o.lowerdirs.extend(args.lower);
    o.upperdir = args.upper.or(o.upperdir);
    o.workdir = args.work.or(o.workdir);
    o.serve.debug |= args.debug;
    let foreground = args.foreground || o.serve.debug;
    match stack_of(&o) {
        Ok(mut stack) => {
            stack.upper_image = args.upper_image.clone();
            serve_stack(
                stack.absolute(),
                &args.mountpoint,
                o.serve,
                foreground,
                PROG,
            )
        }
        Err(e) => {
            eprintln!("{PROG}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The layers `o` names, checked (each lower exists; upper and work go together).
pub fn stack_of(o: &OverlayOptions) -> Result<Stack, String> {
    let mut lowers = Vec::new();
    for list in &o.lowerdirs {
        for item in layers::split_list(list)? {
            lowers.push(layers::classify(&item)?);
        }
    }
    let upper = layers::upper_of(o.upperdir.as_deref(), o.workdir.as_deref())?;
    if lowers.is_empty() {
        return Err("no lower layer given".into());
    }
    Ok(Stack {
        lowers,
        upper,
        upper_image: None,
        ids: o.ids.clone(),
    }
    .absolute())
}

/// Serve `stack` at `target` in the foreground, or as a daemon that detaches once the mount
/// is ready. `prog` prefixes errors.
pub fn serve_stack(
    stack: Stack,
    target: &Path,
    opts: ServeOptions,
    foreground: bool,
    prog: &str,
) -> ExitCode {
    squashbox_fuse::logger::init_for(opts.debug);
    let open: squashbox_fuse::Opener<'static> =
        Box::new(move |o: &ServeOptions| Ok((stack.open(o)?, stack.name())));
    crate::mount_cmd::serve_opener(open, target, &opts, foreground, prog)
}
