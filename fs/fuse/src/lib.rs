//! The FUSE transport: it serves any [`squashbox_vfs::Filesystem`].
//!
//! - [`fuse_adapter`]: the one `fuser::Filesystem` adapter; it translates requests into trait
//!   calls and results into replies, and decides nothing that belongs to a filesystem.
//! - [`capabilities`]: what INIT asks the kernel for, from the filesystem's mount policy.
//! - [`convert`]: the type conversions between the trait and fuser.
//! - [`session`]: mounting (direct `mount(2)`, `fusermount3`, or a pre-mounted `/dev/fd/N`),
//!   clone_fd fallback, readiness notification, idle timeout and signals.
//! - [`options`]: the libfuse-style `-o` option parser shared by the CLI and the drop-ins.
//! - [`stats`]: request counts (`-o print_stats`).
//! - [`logger`]: the stderr log backend, which never blocks a request.
//! - [`unmount`]: unmounting a path as root, in a user namespace, or through `fusermount3`.
//! - [`write_back`]: the kernel's dirty pages of files still open, written back before exit.

#![warn(missing_docs)]

pub mod activity;
pub mod capabilities;
pub mod convert;
pub mod fuse_adapter;
pub mod logger;
pub mod options;
mod replies;
pub mod session;
pub mod stats;
pub mod unmount;
pub mod write_back;

pub use options::ServeOptions;
pub use session::{MountTarget, Opener, Readiness, Served, serve};
