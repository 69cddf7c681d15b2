//! `squashbox`: the one multicall binary.
//!
//! Invoked as `squashbox`, it is the CLI. Invoked (by symlink or copy) as `squashfuse_ll` or
//! `squashfuse`, it takes the command lines Apptainer passes to those helpers.

mod dropin;
mod image_arg;
mod mount_cmd;
mod sif_cmd;
mod squashfs_cmd;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run SquashFS and SIF container images without privileges, fast.
#[derive(Parser)]
#[command(name = "squashbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, list, read and extract SquashFS images (bare or inside a SIF).
    Squashfs(squashfs_cmd::SquashfsArgs),
    /// Inspect and edit SIF files, like `siftool` / `apptainer sif`.
    Sif(sif_cmd::SifArgs),
    /// Mount a SquashFS image or SIF with the multithreaded FUSE server.
    Mount(mount_cmd::MountArgs),
    /// Unmount a squashbox FUSE mount.
    Unmount(mount_cmd::UnmountArgs),
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(code) = dropin::dispatch(&argv0, &args) {
        return code;
    }
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Command::Squashfs(a) => squashfs_cmd::run(a),
        Command::Sif(a) => sif_cmd::run(a),
        Command::Mount(a) => mount_cmd::run_mount(a),
        Command::Unmount(a) => mount_cmd::run_unmount(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("squashbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
