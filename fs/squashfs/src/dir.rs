//! Directory listings: headers (count, inode block, base inode number) each followed by up
//! to 256 entries (offset, inode number delta, type, name). Listings resume from a cookie,
//! the listing byte offset just after the last returned entry, using the directory index
//! to jump close to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};

use crate::cache::Weighted;
use crate::error::Result;
use crate::image::Inner;
use crate::inode::{DirLayout, InodeKind, InodeRef};
use crate::metadata::{METADATA_SIZE, MetaCursor, MetaPos};

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Entry name (raw bytes, never contains '/' or NUL).
    pub name: Vec<u8>,
    /// Reference of the child's inode.
    pub inode_ref: InodeRef,
    /// The child's inode number.
    pub inode_number: u32,
    /// The child's type as the directory records it.
    pub kind: InodeKind,
}

/// Most entries one directory header may cover, and the longest name (Linux limits).
pub(crate) const DIR_COUNT_MAX: u32 = 256;
pub(crate) const NAME_MAX: usize = 256;
const HEADER_SIZE: u32 = 12;
const ENTRY_SIZE: u32 = 8;

/// A directory entry as scanned, with the name borrowed from a scratch buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEntry<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) inode_ref: InodeRef,
    pub(crate) inode_number: u32,
    pub(crate) kind: InodeKind,
}

impl RawEntry<'_> {
    pub(crate) fn to_entry(self) -> DirEntry {
        DirEntry {
            name: self.name.to_vec(),
            inode_ref: self.inode_ref,
            inode_number: self.inode_number,
            kind: self.kind,
        }
    }
}

/// One directory index entry: the header at listing offset `index` is the first in the
/// metadata block `start` (relative to the directory table); `name` is its first name.
#[derive(Debug, Clone)]
pub(crate) struct IndexEntry {
    pub(crate) index: u32,
    pub(crate) start: u32,
    pub(crate) name: Box<[u8]>,
}

/// A parsed directory index (cached per directory), with a count of lookups so that
/// directories looked up repeatedly get their whole listing cached.
pub(crate) struct DirIndex {
    pub(crate) entries: Vec<IndexEntry>,
    pub(crate) lookups: AtomicU32,
    /// Decoding the whole listing failed (a damaged block): lookups keep going through the
    /// index, so only names in the damaged block fail.
    pub(crate) listing_failed: AtomicBool,
}

/// Listings up to this many bytes are cached whole once looked up more than once.
pub(crate) const LISTING_CACHE_MAX: u32 = 1 << 20;

/// A whole decoded listing, in on-disk (sorted) order.
pub(crate) struct Listing {
    pub(crate) entries: Vec<(DirEntry, u32)>,
}

impl Weighted for Arc<Listing> {
    fn weight(&self) -> u64 {
        self.entries
            .iter()
            .map(|(e, _)| e.name.len() as u64 + 64)
            .sum::<u64>()
            + 64
    }
}

impl Weighted for Arc<DirIndex> {
    fn weight(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.name.len() as u64 + 48)
            .sum::<u64>()
            + 64
    }
}

/// A place to start scanning a listing: the listing byte offset and the metadata position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanStart {
    pub(crate) listing_offset: u32,
    pub(crate) pos: MetaPos,
}

impl DirLayout {
    /// Bytes of listing (the stored size counts 3 for "." and "..").
    pub(crate) fn listing_len(&self) -> u32 {
        self.file_size.saturating_sub(3)
    }
}

impl Inner {
    pub(crate) fn listing_start(&self, r: InodeRef, d: &DirLayout) -> Result<ScanStart> {
        let block = self
            .sb
            .directory_table_start
            .checked_add(u64::from(d.start));
        match block {
            Some(block) if usize::from(d.offset) < METADATA_SIZE => Ok(ScanStart {
                listing_offset: 0,
                pos: MetaPos {
                    block,
                    offset: usize::from(d.offset),
                },
            }),
            _ => Err(self.src.corrupt(
                self.sb.directory_table_start,
                format!(
                    "directory inode {:#x}: listing start {}:{} is malformed",
                    r.0, d.start, d.offset
                ),
            )),
        }
    }

    /// The directory index of `d` (empty for basic directories), cached per directory.
    pub(crate) fn dir_index(&self, r: InodeRef, d: &DirLayout) -> Result<Arc<DirIndex>> {
        self.index_cache
            .get_or_load(&r.0, || self.load_dir_index(r, d))
    }

    fn load_dir_index(&self, r: InodeRef, d: &DirLayout) -> Result<Arc<DirIndex>> {
        if d.index_count == 0 {
            return Ok(Arc::new(DirIndex {
                entries: Vec::new(),
                lookups: AtomicU32::new(0),
                listing_failed: AtomicBool::new(false),
            }));
        }
        let len = d.listing_len();
        let at = d.index.block;
        // Each index entry marks a metadata block boundary inside the listing.
        let max = len / METADATA_SIZE as u32 + 2;
        if u32::from(d.index_count) > max {
            return Err(self.src.corrupt(
                at,
                format!(
                    "directory {:#x}: {} index entries for a {len}-byte listing",
                    r.0, d.index_count
                ),
            ));
        }
        let mut c = MetaCursor::new(self, self.sb.directory_table_start, d.index);
        let mut entries = Vec::with_capacity(usize::from(d.index_count).min(1024));
        let mut last: Option<u32> = None;
        for _ in 0..d.index_count {
            let index = c.u32()?;
            let start = c.u32()?;
            let name_len = c.u32()? as usize + 1;
            if name_len > NAME_MAX || index >= len || last.is_some_and(|l| index <= l) {
                return Err(self.src.corrupt(
                    at,
                    format!(
                        "directory {:#x}: bad index entry (offset {index}, name {name_len} bytes)",
                        r.0
                    ),
                ));
            }
            last = Some(index);
            let name = c.read_vec(name_len)?.into_boxed_slice();
            entries.push(IndexEntry { index, start, name });
        }
        Ok(Arc::new(DirIndex {
            entries,
            lookups: AtomicU32::new(0),
            listing_failed: AtomicBool::new(false),
        }))
    }

    fn index_start(&self, r: InodeRef, d: &DirLayout, e: &IndexEntry) -> Result<ScanStart> {
        let block = self
            .sb
            .directory_table_start
            .checked_add(u64::from(e.start))
            .ok_or_else(|| {
                self.src.corrupt(
                    self.sb.directory_table_start,
                    format!("directory {:#x}: index overflow", r.0),
                )
            })?;
        let offset = ((u64::from(d.offset) + u64::from(e.index)) % METADATA_SIZE as u64) as usize;
        Ok(ScanStart {
            listing_offset: e.index,
            pos: MetaPos { block, offset },
        })
    }

    /// Where to start scanning to reach the entry at listing offset `target`.
    pub(crate) fn scan_start_for_offset(
        &self,
        r: InodeRef,
        d: &DirLayout,
        target: u32,
    ) -> Result<ScanStart> {
        let idx = self.dir_index(r, d)?;
        let n = idx.entries.partition_point(|e| e.index <= target);
        match n.checked_sub(1).and_then(|i| idx.entries.get(i)) {
            Some(e) => self.index_start(r, d, e),
            None => self.listing_start(r, d),
        }
    }

    /// Where to start scanning to find `name` (binary search in the sorted index).
    pub(crate) fn scan_start_for_name(
        &self,
        r: InodeRef,
        d: &DirLayout,
        name: &[u8],
    ) -> Result<ScanStart> {
        let idx = self.dir_index(r, d)?;
        let n = idx.entries.partition_point(|e| &*e.name <= name);
        match n.checked_sub(1).and_then(|i| idx.entries.get(i)) {
            Some(e) => self.index_start(r, d, e),
            None => self.listing_start(r, d),
        }
    }

    /// The whole listing of `d`, from the cache or decoded now (callers bound its size).
    pub(crate) fn listing(&self, r: InodeRef, d: &DirLayout) -> Result<Arc<Listing>> {
        self.listing_cache.get_or_load(&r.0, || {
            let mut entries = Vec::new();
            let start = self.listing_start(r, d)?;
            self.scan_dir(r, d, start, &mut |e, end| {
                entries.push((e.to_entry(), end));
                true
            })?;
            Ok(Arc::new(Listing { entries }))
        })
    }

    /// The cached listing of `d`, if it is cached.
    pub(crate) fn cached_listing(&self, r: InodeRef) -> Option<Arc<Listing>> {
        self.listing_cache.get_cached(&r.0)
    }

    /// Scan the listing of `d` from `from`; `f(entry, end_offset)` returns false to stop.
    /// Every step consumes listing bytes, so the scan ends within the listing size.
    pub(crate) fn scan_dir(
        &self,
        r: InodeRef,
        d: &DirLayout,
        from: ScanStart,
        f: &mut dyn FnMut(&RawEntry<'_>, u32) -> bool,
    ) -> Result<()> {
        let len = d.listing_len();
        let mut off = from.listing_offset;
        let mut c = MetaCursor::new(self, self.dir_table_end, from.pos);
        let corrupt = |c: &MetaCursor<'_>, what: String| {
            self.src
                .corrupt(c.pos().block, format!("directory {:#x}: {what}", r.0))
        };
        while off < len {
            if len - off < HEADER_SIZE {
                return Err(corrupt(
                    &c,
                    format!("listing ends inside a header at offset {off}"),
                ));
            }
            let count = c.u32()?;
            let start = c.u32()?;
            let base = c.u32()?;
            off += HEADER_SIZE;
            if count >= DIR_COUNT_MAX {
                return Err(corrupt(
                    &c,
                    format!("header with {} entries (max 256)", u64::from(count) + 1),
                ));
            }
            for _ in 0..=count {
                if len - off < ENTRY_SIZE {
                    return Err(corrupt(
                        &c,
                        format!("listing ends inside an entry at offset {off}"),
                    ));
                }
                let offset = c.u16()?;
                let delta = c.u16()? as i16;
                let ty = c.u16()?;
                let name_len = usize::from(c.u16()?) + 1;
                off += ENTRY_SIZE;
                if name_len > NAME_MAX || (len - off) < name_len as u32 {
                    return Err(corrupt(
                        &c,
                        format!("entry name of {name_len} bytes at offset {off}"),
                    ));
                }
                let mut name_buf = [0u8; NAME_MAX];
                let name = &mut name_buf[..name_len];
                c.read(name)?;
                let name = &*name;
                off += name_len as u32;
                if name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".." {
                    return Err(corrupt(
                        &c,
                        format!("invalid entry name {:?}", String::from_utf8_lossy(name)),
                    ));
                }
                let Some(kind) = InodeKind::from_type(ty) else {
                    return Err(corrupt(&c, format!("entry of unknown type {ty}")));
                };
                if usize::from(offset) >= METADATA_SIZE {
                    return Err(corrupt(&c, format!("entry inode offset {offset} >= 8192")));
                }
                let number = i64::from(base) + i64::from(delta);
                let Ok(inode_number) = u32::try_from(number) else {
                    return Err(corrupt(
                        &c,
                        format!("entry inode number {number} out of range"),
                    ));
                };
                let entry = RawEntry {
                    name,
                    inode_ref: InodeRef((u64::from(start) << 16) | u64::from(offset)),
                    inode_number,
                    kind,
                };
                if !f(&entry, off) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
