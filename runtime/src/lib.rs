//! The unprivileged container runtime behind `squashbox exec|run|shell|test`.
//!
//! Shaped like youki's libcontainer: the logic decides, a [`syscall::Syscall`] seam acts.
//!
//! - [`syscall`]: the seam; [`syscall::LinuxSyscall`] does it, [`syscall::RecordingSyscall`]
//!   writes down what would be done (for tests without privileges).
//! - [`options`]: what the user asked for (the CLI fills it in).
//! - [`host`]: facts about the caller (ids, home, cwd, environment), gathered once.
//! - [`user_ns`]: the ID maps (own ids, root-mapped for fakeroot, `/etc/subuid` ranges).
//! - [`namespaces`]: which namespaces a run creates.
//! - [`bind`]: `-B src[:dst[:opts]]` and `--mount type=bind,...` parsing.
//! - [`mount_plan`]: the mounts that build the container root, as an ordered list.
//! - [`writable`]: overlay modes and Apptainer's rules and messages for them.
//! - [`env`]: the container's environment by Apptainer's rules.
//! - [`passwd`]: the generated `/etc/passwd` and `/etc/group`.
//! - [`actions`]: what `exec`, `run`, `shell` and `test` execute.
//! - [`image`]: opening the image and checking its architecture before anything is mounted.
//! - [`launch`]: the real thing: namespaces, the in-process server, mounts, pivot, exec.
//! - [`inspect`]: an image's metadata without running it.
//! - [`server`]: the root's FUSE server, a process of its own.
//! - [`frozen`]: a filesystem declared immutable (the skeleton layer).
//! - [`session`]: the session tmpfs, the root's FUSE mount and the pivot.
//! - [`process`]: pipes, supervision (signal forwarding, reaping) and exec.
//! - [`doctor`]: what this host allows.
#![warn(missing_docs)]

pub mod actions;
pub mod bind;
pub mod bound_images;
pub mod doctor;
pub mod env;
pub mod ext3_layer;
pub mod frozen;
pub mod host;
pub mod image;
pub mod inspect;
pub mod launch;
pub mod mount_plan;
pub mod namespaces;
pub mod oci;
pub mod options;
pub mod passwd;
pub mod process;
pub mod server;
pub mod session;
pub mod syscall;
pub mod user_ns;
pub mod writable;

/// A runtime error: one line that says what went wrong and what to do. The CLI prints it
/// and exits 255, as Apptainer does for its own errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeError(pub String);

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuntimeError {}

/// The exit status of a runtime error (Apptainer's).
pub const ERROR_EXIT: u8 = 255;

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Make a [`RuntimeError`] from a format string.
#[macro_export]
macro_rules! rt_err {
    ($($arg:tt)*) => { $crate::RuntimeError(format!($($arg)*)) };
}
