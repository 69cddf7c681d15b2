//! A lazy, concurrent, hostile-input-safe reader for SquashFS 4.0 images.
//!
//! Opening an [`Image`] reads the superblock and a few small tables; everything else is read
//! on demand through a byte-bounded, sharded block cache that many threads share. The API is
//! shaped for an inode-based FUSE server: the on-disk inode reference ([`InodeRef`],
//! `block << 16 | offset`) is the handle, so a server needs no inode table.
//!
//! One file per on-disk table or concern, as in Linux `fs/squashfs`.

#![warn(missing_docs)]

mod cache;
pub mod compress;
pub mod dir;
pub mod error;
mod export;
mod file;
pub mod filesystem;
mod fragment;
mod id;
pub mod image;
pub mod inode;
mod metadata;
mod namei;
mod source;
pub mod superblock;
mod table;
pub mod xattr;

pub use dir::DirEntry;
pub use error::{Error, Result};
pub use filesystem::{FsOptions, ImageOptions, SquashFs, open_image};
pub use image::{CacheStats, Image, OpenOptions, StatFs};
pub use inode::{Inode, InodeKind, InodeRef};
pub use superblock::{Compressor, Superblock};
pub use xattr::Xattr;
