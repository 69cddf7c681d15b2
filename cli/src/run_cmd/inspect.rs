//! `squashbox inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use squashbox_runtime::inspect::{Parts, inspect};

/// Arguments of `squashbox inspect`, with Apptainer's flags.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Labels (the default).
    #[arg(short = 'l', long)]
    labels: bool,
    /// The definition file.
    #[arg(short = 'd', long)]
    deffile: bool,
    /// The runscript.
    #[arg(short = 'r', long)]
    runscript: bool,
    /// The startscript.
    #[arg(short = 's', long)]
    startscript: bool,
    /// The test script.
    #[arg(short = 't', long)]
    test: bool,
    /// The environment files.
    #[arg(short = 'e', long)]
    environment: bool,
    /// The help file.
    #[arg(short = 'H', long)]
    helpfile: bool,
    /// JSON output.
    #[arg(short = 'j', long)]
    json: bool,
    /// Everything, as JSON.
    #[arg(long)]
    all: bool,
    /// SIF, SquashFS image or sandbox directory.
    image: PathBuf,
}

/// Run `squashbox inspect`.
pub fn run_inspect(a: InspectArgs) -> ExitCode {
    let parts = Parts {
        labels: a.labels,
        deffile: a.deffile,
        runscript: a.runscript,
        startscript: a.startscript,
        test: a.test,
        environment: a.environment,
        helpfile: a.helpfile,
        json: a.json,
        all: a.all,
    };
    match inspect(&a.image, parts) {
        Ok(s) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("squashbox: {e}");
            ExitCode::from(squashbox_runtime::ERROR_EXIT)
        }
    }
}
