//! Directory listings: [`DirItem`] and the visitor `readdir` feeds.

use std::ffi::OsStr;

use crate::attr::{Entry, FileType};

/// One directory entry of a listing.
#[derive(Debug, Clone, Copy)]
pub struct DirItem<'a> {
    /// The entry's name.
    pub name: &'a OsStr,
    /// `d_ino`: the inode number `readdir` reports.
    pub ino: u64,
    /// The entry's type.
    pub kind: FileType,
    /// The offset that resumes the listing right after this entry (never 0).
    pub next_offset: u64,
}

/// What `readdir` feeds each entry to: the entry and, for readdirplus, its [`Entry`]
/// (`None` for "." and "..", whose attributes the kernel does not use). It returns `false`
/// when the entry did not fit and was not taken: the listing stops there, and an `Entry` that
/// was not taken does not count as a lookup.
pub type DirVisitor<'v> = dyn FnMut(DirItem<'_>, Option<&Entry>) -> bool + 'v;
