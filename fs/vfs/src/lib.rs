//! The one filesystem interface of squashbox.
//!
//! Every driver (the SquashFS/SIF image, a host directory, an ext3 image, the overlay)
//! implements [`Filesystem`]; the FUSE transport (`squashbox-fuse`) serves any of them, and
//! the overlay stacks any of them in-process. Nothing here knows about FUSE's wire types.
//!
//! - [`attr`]: node ids, [`Attr`], [`Entry`], [`SetAttr`], [`StatFs`].
//! - [`request`]: the caller's uid, gid, pid and umask.
//! - [`open`]: file handles, open results and the flag sets.
//! - [`dir`]: directory listings.
//! - [`reply`]: [`ReadReply`], answering a read from any thread.
//! - [`xattr`]: the xattr size-probe protocol.
//! - [`policy`]: what the kernel may cache for the whole mount.
//! - [`faults`]: rate-limited warnings for faults met while serving.
//! - [`conformance`]: a test suite every implementation runs.

#![warn(missing_docs)]

pub mod attr;
pub mod conformance;
pub mod dir;
pub mod errno;
pub mod faults;
pub mod filesystem;
pub mod open;
pub mod policy;
pub mod reply;
pub mod request;
pub mod xattr;

pub use attr::{Attr, AttrOut, Entry, FileType, NodeId, SetAttr, StatFs, TimeSet, Timespec};
pub use dir::{DirItem, DirVisitor};
pub use errno::{Errno, Result};
pub use faults::FaultLog;
pub use filesystem::Filesystem;
pub use open::{FileHandle, OpenFlags, Opened, RenameFlags, Whence};
pub use policy::MountPolicy;
pub use reply::ReadReply;
pub use request::Request;
pub use xattr::XattrData;

/// The root's node id (FUSE's `FUSE_ROOT_ID`).
pub const ROOT_ID: NodeId = 1;
