//! `squashbox`: the one multicall binary.
//!
//! Invoked as `squashbox`, it is the CLI. Invoked (by symlink or copy) as `squashfuse_ll` or
//! `squashfuse`, or `fuse-overlayfs`, it takes the command lines Apptainer passes to those
//! helpers.

mod dropin;
mod ext3_cmd;
mod fuse2fs;
mod image_arg;
mod mount_cmd;
mod overlay_cmd;
mod run_cmd;
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
    /// Run a command in a container: exec IMAGE COMMAND [ARGS].
    Exec(run_cmd::ExecArgs),
    /// Run the container's runscript: run IMAGE [ARGS].
    Run(run_cmd::ImageArgs),
    /// An interactive shell in the container: shell IMAGE.
    Shell(run_cmd::ImageArgs),
    /// Run the container's test script: test IMAGE [ARGS].
    Test(run_cmd::ImageArgs),
    /// What this host allows: user namespaces, FUSE, subuid, overlay, io_uring.
    Doctor(run_cmd::DoctorArgs),
    /// Show an image's labels, definition file, runscript, environment...
    Inspect(run_cmd::InspectArgs),
    /// Inspect, list, read and extract SquashFS images (bare or inside a SIF).
    Squashfs(squashfs_cmd::SquashfsArgs),
    /// Inspect and edit SIF files, like `siftool` / `apptainer sif`.
    Sif(sif_cmd::SifArgs),
    /// Mount a SquashFS image or SIF with the multithreaded FUSE server.
    Mount(mount_cmd::MountArgs),
    /// Unmount a squashbox FUSE mount.
    Unmount(mount_cmd::UnmountArgs),
    /// Mount an overlay of images and directories (optionally writable) in one process.
    Overlay(overlay_cmd::OverlayArgs),
    /// Mount ext3 images (or a SIF's ext3 overlay partition) read-write with a journal.
    Ext3(ext3_cmd::Ext3Args),
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
        Command::Exec(a) => Ok(run_cmd::run_exec(a)),
        Command::Run(a) => Ok(run_cmd::run_action(
            a,
            squashbox_runtime::options::Action::Run,
        )),
        Command::Shell(a) => Ok(run_cmd::run_action(
            a,
            squashbox_runtime::options::Action::Shell,
        )),
        Command::Test(a) => Ok(run_cmd::run_action(
            a,
            squashbox_runtime::options::Action::Test,
        )),
        Command::Doctor(a) => Ok(run_cmd::run_doctor(a)),
        Command::Inspect(a) => Ok(run_cmd::run_inspect(a)),
        Command::Squashfs(a) => squashfs_cmd::run(a),
        Command::Sif(a) => sif_cmd::run(a),
        Command::Mount(a) => mount_cmd::run_mount(a),
        Command::Unmount(a) => mount_cmd::run_unmount(a),
        Command::Overlay(a) => overlay_cmd::run(a),
        Command::Ext3(a) => ext3_cmd::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("squashbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
