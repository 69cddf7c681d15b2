//! `squashbox exec|run|shell|test`: run a container; `squashbox inspect` and `doctor`.

#[path = "run_cmd/doctor.rs"]
mod doctor;
#[path = "run_cmd/inspect.rs"]
mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use squashbox_runtime::bind::{parse_bind_arg, parse_mount_arg};
use squashbox_runtime::options::{Action, RunOptions};

pub use doctor::{DoctorArgs, run_doctor};
pub use inspect::{InspectArgs, run_inspect};

/// The action flags, with Apptainer's names.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ActionFlags {
    /// Bind a host path: src[:dst[:ro|rw]], comma separated; `\,` and `\:` escape.
    #[arg(short = 'B', long = "bind", value_name = "SPEC")]
    pub bind: Vec<String>,
    /// A mount: type=bind,src=...,dst=...[,ro].
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Home directory: src[:dst].
    #[arg(short = 'H', long = "home", value_name = "SPEC")]
    pub home: Option<String>,
    /// Do not mount the home directory.
    #[arg(long)]
    pub no_home: bool,
    /// Minimal /dev and empty /tmp, /var/tmp and home instead of the host's.
    #[arg(short = 'c', long)]
    pub contain: bool,
    /// Contain everything: --contain, PID and IPC namespaces, a clean environment.
    #[arg(short = 'C', long)]
    pub containall: bool,
    /// Do not pass the host environment (except TERM and proxies).
    #[arg(short = 'e', long)]
    pub cleanenv: bool,
    /// Set a variable in the container: NAME=VALUE.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// A file of NAME=VALUE lines to set in the container.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Host variables not to pass (comma separated).
    #[arg(long = "no-env", value_name = "NAMES", value_delimiter = ',')]
    pub no_env: Vec<String>,
    /// Do not shell-evaluate --env and APPTAINERENV_ values.
    #[arg(long)]
    pub no_eval: bool,
    /// Working directory in the container.
    #[arg(long = "pwd", visible_alias = "cwd", value_name = "DIR")]
    pub pwd: Option<String>,
    /// Host directory for /tmp and /var/tmp with --contain.
    #[arg(short = 'W', long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Run as root inside (root-mapped user namespace, or /etc/subuid ranges).
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    /// With --fakeroot, ignore /etc/subuid and /etc/subgid.
    #[arg(long)]
    pub ignore_subuid: bool,
    /// A user namespace (always used: accepted for compatibility).
    #[arg(short = 'u', long)]
    pub userns: bool,
    /// A PID namespace.
    #[arg(short = 'p', long)]
    pub pid: bool,
    /// An IPC namespace.
    #[arg(short = 'i', long)]
    pub ipc: bool,
    /// A UTS namespace.
    #[arg(long)]
    pub uts: bool,
    /// The hostname in the container (implies --uts).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// A network namespace with loopback only.
    #[arg(short = 'n', long)]
    pub net: bool,
    /// Network type with --net (only `none` is supported).
    #[arg(long, value_name = "TYPE")]
    pub network: Option<String>,
    /// Mounts to skip: proc, sys, dev, devpts, home, tmp, cwd, bind-paths or a destination.
    #[arg(long = "no-mount", value_name = "LIST", value_delimiter = ',')]
    pub no_mount: Vec<String>,
    /// An overlay: DIR, IMG.ext3 or IMG.sqfs, `:ro` for read-only.
    #[arg(short = 'o', long = "overlay", value_name = "PATH")]
    pub overlay: Vec<String>,
    /// Write into the image (a SIF's overlay partition).
    #[arg(short = 'w', long)]
    pub writable: bool,
    /// A writable tmpfs over the image; writes are lost at exit.
    #[arg(long)]
    pub writable_tmpfs: bool,
    /// The shell for `shell`.
    #[arg(short = 's', long, value_name = "PATH")]
    pub shell: Option<String>,
}

/// `APPTAINER_<KEY>`, else the legacy `SINGULARITY_<KEY>`: action flags set through the
/// environment, as Apptainer reads them.
fn flag_env(key: &str) -> Option<String> {
    ["APPTAINER_", "SINGULARITY_"]
        .iter()
        .find_map(|p| std::env::var(format!("{p}{key}")).ok())
        .filter(|v| !v.is_empty())
}

fn flag_env_bool(key: &str) -> bool {
    flag_env(key).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

impl ActionFlags {
    /// Fill in what the command line left unset from `APPTAINER_BIND`, `APPTAINER_HOME`,
    /// `APPTAINER_OVERLAY`, `APPTAINER_CONTAIN`... (and their `SINGULARITY_` forms).
    pub fn with_env_defaults(mut self) -> ActionFlags {
        for key in ["BIND", "BINDPATH"] {
            if let Some(v) = flag_env(key) {
                self.bind.insert(0, v);
            }
        }
        if self.home.is_none() {
            self.home = flag_env("HOME");
        }
        if let Some(v) = flag_env("OVERLAY").filter(|_| self.overlay.is_empty()) {
            self.overlay = v.split(',').map(str::to_string).collect();
        }
        for (key, flag) in [
            ("CONTAIN", &mut self.contain),
            ("CONTAINALL", &mut self.containall),
            ("CLEANENV", &mut self.cleanenv),
            ("NO_HOME", &mut self.no_home),
            ("FAKEROOT", &mut self.fakeroot),
            ("WRITABLE_TMPFS", &mut self.writable_tmpfs),
            ("NO_EVAL", &mut self.no_eval),
        ] {
            *flag |= flag_env_bool(key);
        }
        self
    }

    /// The runtime options for `image`.
    pub fn options(&self, image: PathBuf) -> Result<RunOptions, String> {
        let mut binds = Vec::new();
        for b in &self.bind {
            binds.extend(parse_bind_arg(b).map_err(|e| e.0)?);
        }
        for m in &self.mount {
            binds.push(parse_mount_arg(m).map_err(|e| e.0)?);
        }
        if let Some(n) = self.network.as_deref().filter(|n| *n != "none") {
            return Err(format!(
                "--network {n}: only `none` (loopback only) is supported unprivileged"
            ));
        }
        Ok(RunOptions {
            image,
            binds,
            home: self.home.clone(),
            no_home: self.no_home,
            contain: self.contain,
            containall: self.containall,
            cleanenv: self.cleanenv,
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            no_env: self.no_env.clone(),
            no_eval: self.no_eval,
            pwd: self.pwd.clone(),
            workdir: self.workdir.clone(),
            fakeroot: self.fakeroot,
            ignore_subuid: self.ignore_subuid,
            pid: self.pid,
            ipc: self.ipc,
            uts: self.uts,
            hostname: self.hostname.clone(),
            net: self.net,
            no_mount: self.no_mount.clone(),
            overlays: self.overlay.clone(),
            writable: self.writable,
            writable_tmpfs: self.writable_tmpfs,
            shell: self.shell.clone(),
        })
    }
}

/// `squashbox exec IMAGE COMMAND [ARGS]`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    flags: ActionFlags,
    /// SIF, SquashFS image or sandbox directory.
    image: PathBuf,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `squashbox run|shell|test IMAGE [ARGS]`.
#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    #[command(flatten)]
    flags: ActionFlags,
    /// SIF, SquashFS image or sandbox directory.
    image: PathBuf,
    /// Arguments for the runscript, shell or test script.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn start(flags: &ActionFlags, image: PathBuf, action: Action, args: &[String]) -> ExitCode {
    let err = match flags.clone().with_env_defaults().options(image) {
        Ok(opts) => squashbox_runtime::launch::run(&opts, action, args).0,
        Err(e) => e,
    };
    eprintln!("squashbox: {err}");
    ExitCode::from(squashbox_runtime::ERROR_EXIT)
}

/// Run `squashbox exec`.
pub fn run_exec(a: ExecArgs) -> ExitCode {
    start(&a.flags, a.image, Action::Exec, &a.command)
}

/// Run `squashbox run`, `shell` or `test`.
pub fn run_action(a: ImageArgs, action: Action) -> ExitCode {
    start(&a.flags, a.image, action, &a.args)
}
