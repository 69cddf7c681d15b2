//! An ext2/ext3 driver for squashbox, shaped like Linux's fs/ext2 and fs/ext4: one module per
//! on-disk structure. Every byte of the image is treated as hostile: nothing here panics,
//! loops without bound or allocates by a size read from the image without checking it
//! against the image first. ext4 images (extents, 64bit, flex_bg, metadata_csum) are served
//! read-only.
//!
//! Reading:
//! - [`image`]: all I/O, `pread64`/`pwrite64` on one `open64` descriptor, with an offset.
//! - [`superblock`], [`group_desc`]: geometry and features, checked at open.
//! - [`inode`]: on-disk inodes; [`block_map`] and [`extents`]: file block mapping.
//! - [`dir`] (linear), [`htree`] and [`dx_hash`]: directories.
//! - [`xattr`], [`symlink`], [`statfs`], [`journal`] (replay).
//! - [`cache`]: bounded metadata block cache; [`volume`]: the opened filesystem.
//!
//! Writing (ext2/ext3 images):
//! - [`volume_write`]: metadata read-modify-write under per-block locks, inodes, superblock.
//! - [`alloc`]: per-group block and inode allocation; [`block_map_write`], [`file_write`].
//! - [`dir_write`], [`htree_write`] (leaf splits), [`xattr_write`].
//! - [`journal_write`]: jbd2 transactions in ordered mode (replayable by the kernel and
//!   e2fsck); [`locks`]: per-inode locks and lookup counts; the orphan list for files
//!   unlinked while open.
//!
//! [`filesystem`]: [`Ext3Fs`], the [`squashbox_vfs::Filesystem`] implementation.

#![warn(missing_docs)]

pub mod alloc;
pub mod block_map;
pub mod block_map_write;
pub mod bytes;
pub mod cache;
pub mod dir;
pub mod dir_write;
pub mod dx_hash;
pub mod error;
pub mod extents;
pub mod file_write;
pub mod filesystem;
pub mod group_desc;
pub mod htree;
pub mod htree_write;
pub mod image;
pub mod inode;
pub mod journal;
pub mod journal_write;
pub mod locks;
pub mod mkfs;
pub mod statfs;
pub mod superblock;
pub mod symlink;
pub mod volume;
pub mod volume_write;
pub mod xattr;
pub mod xattr_write;

pub use error::{Error, ErrorKind, Result};
pub use filesystem::Ext3Fs;
pub use volume::Volume;
