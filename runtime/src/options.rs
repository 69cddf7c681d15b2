//! What the user asked for: the action flags of `exec`, `run`, `shell` and `test`, with
//! Apptainer's names. The CLI fills this in; nothing here touches the system.

use std::path::PathBuf;

use crate::bind::BindSpec;

/// Which action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `exec IMAGE CMD [ARGS]`.
    Exec,
    /// `run IMAGE [ARGS]`: the runscript.
    Run,
    /// `shell IMAGE`: an interactive shell.
    Shell,
    /// `test IMAGE [ARGS]`: the test script.
    Test,
}

impl Action {
    /// The name, as `APPTAINER_COMMAND` carries it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Exec => "exec",
            Action::Run => "run",
            Action::Shell => "shell",
            Action::Test => "test",
        }
    }
}

/// Everything that shapes one container run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The image: a SquashFS file, a SIF, or a sandbox directory.
    pub image: PathBuf,
    /// `-B/--bind` and `--mount` entries, in order.
    pub binds: Vec<BindSpec>,
    /// `-H/--home SRC[:DST]`.
    pub home: Option<String>,
    /// `--no-home`.
    pub no_home: bool,
    /// `-c/--contain`: minimal /dev, no host /tmp, $PWD or bind path list.
    pub contain: bool,
    /// `-C/--containall`: contain plus pid and ipc namespaces and a clean environment.
    pub containall: bool,
    /// `-e/--cleanenv`.
    pub cleanenv: bool,
    /// `--env K=V` entries.
    pub env: Vec<String>,
    /// `--env-file` files.
    pub env_files: Vec<PathBuf>,
    /// `--no-env` names.
    pub no_env: Vec<String>,
    /// `--no-eval`: values are not shell-evaluated.
    pub no_eval: bool,
    /// `--pwd/--cwd`: the working directory in the container.
    pub pwd: Option<String>,
    /// `-W/--workdir`: host directory for /tmp and /var/tmp with `--contain`.
    pub workdir: Option<PathBuf>,
    /// `-f/--fakeroot`.
    pub fakeroot: bool,
    /// `--ignore-subuid`: fakeroot with a single root mapping even with subuid ranges.
    pub ignore_subuid: bool,
    /// `-p/--pid`.
    pub pid: bool,
    /// `-i/--ipc`.
    pub ipc: bool,
    /// `--uts`.
    pub uts: bool,
    /// `--hostname NAME` (implies `--uts`).
    pub hostname: Option<String>,
    /// `-n/--net`.
    pub net: bool,
    /// `--no-mount` entries (comma lists already split).
    pub no_mount: Vec<String>,
    /// `-o/--overlay` entries.
    pub overlays: Vec<String>,
    /// `-w/--writable`.
    pub writable: bool,
    /// `--writable-tmpfs`.
    pub writable_tmpfs: bool,
    /// `-s/--shell`: the shell for `shell`.
    pub shell: Option<String>,
}

impl RunOptions {
    /// `-c` or `-C`.
    pub fn contained(&self) -> bool {
        self.contain || self.containall
    }

    /// Whether `--no-mount` names `what` (`home`, `tmp`, `proc`, a destination path...).
    pub fn no_mount(&self, what: &str) -> bool {
        self.no_mount.iter().any(|n| n == what)
    }
}
