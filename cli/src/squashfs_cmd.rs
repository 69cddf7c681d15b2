//! `squashbox squashfs info|ls|cat|extract`.

mod cat;
mod extract;
mod format;
mod info;
mod ls;
mod resolve;
mod sys;

use std::io;
use std::process::ExitCode;

use clap::Subcommand;

/// Arguments of `squashbox squashfs`.
#[derive(clap::Args)]
pub struct SquashfsArgs {
    #[command(subcommand)]
    command: SquashfsCommand,
}

#[derive(Subcommand)]
enum SquashfsCommand {
    /// Print superblock facts, like `unsquashfs -s`.
    Info(info::InfoArgs),
    /// List the tree (or the subtree at PATH), like `unsquashfs -ls` / `-lln` with `-l`.
    Ls(ls::LsArgs),
    /// Write a file's contents to stdout (symlinks are followed inside the image).
    Cat(cat::CatArgs),
    /// Extract the tree (or PATH) into DEST, in parallel, keeping all metadata.
    Extract(extract::ExtractArgs),
}

/// Run `squashbox squashfs`.
pub fn run(args: SquashfsArgs) -> anyhow::Result<ExitCode> {
    let result = match args.command {
        SquashfsCommand::Info(a) => info::run(a),
        SquashfsCommand::Ls(a) => ls::run(a),
        SquashfsCommand::Cat(a) => cat::run(a),
        SquashfsCommand::Extract(a) => extract::run(a),
    };
    match result {
        // A closed pipe (`| head`) is not an error.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
