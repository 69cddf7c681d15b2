//! The shared FUSE serving layer and the SquashFS/SIF FUSE filesystem.
//!
//! Layout (mountpoint-s3 style):
//! - [`squashfs_fs`]: filesystem semantics with no FUSE types (node ids, attributes, lookup,
//!   readdir, read, xattrs, statfs, owner mapping, errno mapping). Unit-testable without a mount.
//! - [`node_table`]: the node-id scheme (see its docs): node ids *are* the image's inode numbers,
//!   so `st_ino` matches the kernel driver.
//! - [`prefetch`]: the per-open-file sequential-read detector.
//! - [`fuse_adapter`]: the thin `fuser::Filesystem` adapter; block reads run on a rayon pool and
//!   reply from the worker that did the work.
//! - [`session`]: options, opening bare SquashFS or SIF images, mounting (direct `mount(2)`,
//!   `fusermount3`, or a pre-mounted `/dev/fd/N`), clone_fd fallback, readiness notification,
//!   idle timeout and signals.
//! - [`options`]: the libfuse/squashfuse-style `-o` option parser shared by the CLI and drop-in.
//! - [`unmount`]: unmounting a path as root, in a user namespace, or through `fusermount3`.

#![warn(missing_docs)]

pub mod fuse_adapter;
pub mod logger;
pub mod node_table;
pub mod options;
pub mod prefetch;
pub mod session;
pub mod squashfs_fs;
pub mod unmount;

pub use options::ServeOptions;
pub use session::{ImageSource, MountTarget, Readiness, serve};
pub use squashfs_fs::{Attr, FsError, FsOptions, SquashFs};
