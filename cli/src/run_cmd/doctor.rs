//! `squashbox doctor`.

use std::process::ExitCode;

/// Arguments of `squashbox doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {}

/// Print the host's checks.
pub fn run_doctor(_a: DoctorArgs) -> ExitCode {
    let checks = squashbox_runtime::doctor::checks();
    print!("{}", squashbox_runtime::doctor::render(&checks));
    ExitCode::SUCCESS
}
