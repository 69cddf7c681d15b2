//! `squashbox sif ...`: siftool-compatible SIF inspection and editing
//! (`header`, `list`, `info`, `dump`, `new`, `add`, `del`, `setprim`).

mod add;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use squashbox_sif::{CreateOptions, DeleteOptions, EditOptions, Sif, siftool};

/// Arguments of `squashbox sif`.
#[derive(clap::Args)]
pub struct SifArgs {
    #[command(subcommand)]
    command: SifCommand,
}

#[derive(clap::Subcommand)]
enum SifCommand {
    /// Display SIF global header.
    Header {
        /// SIF image.
        sif_path: PathBuf,
    },
    /// List object descriptors.
    List {
        /// SIF image.
        sif_path: PathBuf,
    },
    /// Display detailed information of object.
    Info {
        /// Object ID.
        id: u32,
        /// SIF image.
        sif_path: PathBuf,
    },
    /// Dump data object to stdout.
    Dump {
        /// Object ID.
        id: u32,
        /// SIF image.
        sif_path: PathBuf,
    },
    /// Create SIF with header only.
    New {
        /// SIF image to create.
        sif_path: PathBuf,
        /// Nil ID and Go's zero time, for reproducible images.
        #[arg(long, hide = true)]
        deterministic: bool,
    },
    /// Add data object.
    Add(add::AddArgs),
    /// Delete a specified object.
    Del {
        /// Object ID.
        id: u32,
        /// SIF image.
        sif_path: PathBuf,
    },
    /// Set primary system partition.
    Setprim {
        /// Object ID.
        id: u32,
        /// SIF image.
        sif_path: PathBuf,
    },
}

fn open_ro(path: &Path) -> anyhow::Result<(File, Sif)> {
    let f = File::open(path).with_context(|| format!("{}", path.display()))?;
    let sif = Sif::load(&f).with_context(|| format!("{}", path.display()))?;
    Ok((f, sif))
}

pub(crate) fn open_rw(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("{}", path.display()))
}

fn print(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    quiet_pipe(out.write_all(s.as_bytes()).and_then(|()| out.flush()))
}

/// A reader that went away (`| head`) is not an error.
fn quiet_pipe(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Run `squashbox sif`.
pub fn run(args: SifArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SifCommand::Header { sif_path } => print(&siftool::header(&open_ro(&sif_path)?.1))?,
        SifCommand::List { sif_path } => print(&siftool::list(&open_ro(&sif_path)?.1))?,
        SifCommand::Info { id, sif_path } => {
            let (_, sif) = open_ro(&sif_path)?;
            print(&siftool::info(&sif, id).with_context(|| format!("{}", sif_path.display()))?)?;
        }
        SifCommand::Dump { id, sif_path } => dump(id, &sif_path)?,
        SifCommand::New {
            sif_path,
            deterministic,
        } => {
            let opts = CreateOptions {
                deterministic,
                ..CreateOptions::default()
            };
            squashbox_sif::create(&sif_path, &opts, vec![])
                .with_context(|| format!("{}", sif_path.display()))?;
        }
        SifCommand::Add(a) => add::run(a)?,
        SifCommand::Del { id, sif_path } => {
            let f = open_rw(&sif_path)?;
            squashbox_sif::delete_object(&f, id, &DeleteOptions::default())
                .with_context(|| format!("{}", sif_path.display()))?;
        }
        SifCommand::Setprim { id, sif_path } => {
            let f = open_rw(&sif_path)?;
            squashbox_sif::set_primary(&f, id, &EditOptions::default())
                .with_context(|| format!("{}", sif_path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stream object `id` to stdout.
fn dump(id: u32, path: &Path) -> anyhow::Result<()> {
    let (f, sif) = open_ro(path)?;
    let d = sif
        .object_or_err(id)
        .with_context(|| format!("{}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = d.offset as u64;
    let end = off + d.size as u64;
    while off < end {
        let n = (end - off).min(buf.len() as u64) as usize;
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf[..n], off)
            .with_context(|| format!("{}: reading object {id} at offset {off}", path.display()))?;
        if let Err(e) = out.write_all(&buf[..n]) {
            return quiet_pipe(Err(e));
        }
        off += n as u64;
    }
    quiet_pipe(out.flush())
}
