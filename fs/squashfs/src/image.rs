//! The public facade: open an image and serve inode-based requests from many threads.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::cache::BlockCache;
use crate::dir::{DirEntry, DirIndex};
use crate::error::{Error, Result};
use crate::file::BlockIndex;
use crate::inode::{Inode, InodeRef, Layout};
use crate::metadata::{METADATA_SIZE, MetaCursor, MetaPos};
use crate::source::Source;
use crate::superblock::{INVALID_TABLE, SUPERBLOCK_SIZE, Superblock, flags};
use crate::table::LookupTable;
use crate::xattr::{Xattr, XattrTable};

/// How to open an image.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Byte offset of the SquashFS image inside the file (e.g. a SIF partition).
    pub offset: u64,
    /// Bound in bytes on the decompressed data/fragment block cache.
    pub cache_bytes: usize,
    /// Bound in bytes on the decompressed metadata block cache.
    pub metadata_cache_bytes: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            offset: 0,
            cache_bytes: 64 << 20,
            metadata_cache_bytes: 8 << 20,
        }
    }
}

/// Counters for the block caches.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheStats {
    /// Cache hits.
    pub hits: u64,
    /// Cache misses (blocks decompressed).
    pub misses: u64,
    /// Bytes currently held.
    pub bytes: u64,
}

/// Filesystem totals, as Linux squashfs answers `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// `f_bsize`: the data block size.
    pub block_size: u32,
    /// `f_blocks`: `bytes_used` in block-size units, rounded up.
    pub blocks: u64,
    /// `f_files`: the inode count.
    pub files: u64,
    /// `f_namelen`: longest name (256).
    pub name_max: u32,
}

/// Shared state behind [`Image`].
pub(crate) struct Inner {
    pub(crate) src: Source,
    pub(crate) sb: Superblock,
    /// End bound of the directory table's metadata stream.
    pub(crate) dir_table_end: u64,
    pub(crate) meta_cache: BlockCache<u64, Arc<crate::metadata::MetaBlock>>,
    pub(crate) data_cache: BlockCache<(u64, u32), Arc<[u8]>>,
    pub(crate) index_cache: BlockCache<u64, Arc<DirIndex>>,
    pub(crate) listing_cache: BlockCache<u64, Arc<crate::dir::Listing>>,
    pub(crate) block_index_cache: BlockCache<u64, Arc<BlockIndex>>,
    pub(crate) id_table: LookupTable,
    pub(crate) ids: OnceLock<Vec<u32>>,
    pub(crate) fragment_table: Option<LookupTable>,
    pub(crate) export_table: Option<LookupTable>,
    pub(crate) xattr_table: Option<XattrTable>,
    /// Decompressed compressor options, if the image has them.
    pub(crate) comp_options: Option<Vec<u8>>,
}

/// An open SquashFS image. `Send + Sync`; cloning is cheap (the state is shared), so clones
/// or an `Arc` can serve many threads.
#[derive(Clone)]
pub struct Image {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("name", &self.inner.src.name)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Open the image at `path`.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Image> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::Io {
            image: name.clone(),
            offset: opts.offset,
            source: e,
        })?;
        Image::from_file(file, &name, opts)
    }

    /// Open an image from an already-open file; `name` is used in error messages.
    pub fn from_file(file: File, name: &str, opts: &OpenOptions) -> Result<Image> {
        let file_len = file
            .metadata()
            .map_err(|e| Error::Io {
                image: name.to_string(),
                offset: 0,
                source: e,
            })?
            .len();
        let available = file_len.checked_sub(opts.offset).ok_or_else(|| {
            Error::corrupt(
                name,
                0,
                format!(
                    "offset {} is past the end of the file ({file_len} bytes)",
                    opts.offset
                ),
            )
        })?;
        let mut src = Source::new(file, name, opts.offset, available);
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        if available < SUPERBLOCK_SIZE as u64 {
            return Err(Error::corrupt(
                name,
                0,
                format!("file too short for a superblock ({available} bytes)"),
            ));
        }
        src.read_at(0, &mut raw, "superblock")?;
        let sb = Superblock::parse(&raw, available, name)?;
        src.set_len(sb.bytes_used);

        let id_table = LookupTable::open(
            &src,
            "id table",
            sb.id_table_start,
            u64::from(sb.id_count),
            4,
        )?;
        let fragment_table = if sb.fragment_table_start != INVALID_TABLE && sb.fragment_count > 0 {
            Some(LookupTable::open(
                &src,
                "fragment table",
                sb.fragment_table_start,
                u64::from(sb.fragment_count),
                16,
            )?)
        } else {
            None
        };
        let export_table = if sb.export_table_start != INVALID_TABLE {
            Some(LookupTable::open(
                &src,
                "export table",
                sb.export_table_start,
                u64::from(sb.inode_count),
                8,
            )?)
        } else {
            None
        };
        let xattr_table = if sb.xattr_id_table_start != INVALID_TABLE {
            Some(XattrTable::open(&src, sb.xattr_id_table_start)?)
        } else {
            None
        };
        // The directory table ends where the next table (or the end of the image) begins.
        let dir_table_end = [
            sb.fragment_table_start,
            sb.export_table_start,
            sb.id_table_start,
            sb.xattr_id_table_start,
            xattr_table.as_ref().map_or(INVALID_TABLE, |x| x.kv_start),
            sb.bytes_used,
        ]
        .into_iter()
        .filter(|&t| t > sb.directory_table_start)
        .min()
        .unwrap_or(sb.bytes_used);

        let meta_bytes = opts.metadata_cache_bytes.max(64 << 10);
        let inner = Inner {
            dir_table_end,
            meta_cache: BlockCache::new(meta_bytes, METADATA_SIZE),
            data_cache: BlockCache::new(opts.cache_bytes.max(1 << 20), sb.block_size as usize),
            index_cache: BlockCache::new((meta_bytes / 8).max(64 << 10), 256),
            // Few, large items: a big typical size keeps the shard count low so that one
            // listing (up to ~8 MiB decoded) fits in a shard.
            listing_cache: BlockCache::new(meta_bytes.max(16 << 20), 512 << 10),
            block_index_cache: BlockCache::new(1 << 20, 256),
            id_table,
            ids: OnceLock::new(),
            fragment_table,
            export_table,
            xattr_table,
            comp_options: None,
            src,
            sb,
        };
        let mut inner = inner;
        if inner.sb.has_flag(flags::COMPRESSOR_OPTIONS) {
            let mut c = MetaCursor::new(
                &inner,
                inner.sb.inode_table_start,
                MetaPos {
                    block: SUPERBLOCK_SIZE as u64,
                    offset: 0,
                },
            );
            let blk = inner.meta_block(SUPERBLOCK_SIZE as u64, inner.sb.inode_table_start)?;
            let n = blk.data.len().min(64);
            let opts_raw = c.read_vec(n)?;
            inner.comp_options = Some(opts_raw);
        }
        crate::compress::check_options(inner.sb.compressor, inner.comp_options.as_deref())
            .map_err(|e| Error::Unsupported {
                image: inner.src.name.clone(),
                what: format!("compressor options: {e}"),
            })?;
        let ids = inner.load_ids()?;
        let _ = inner.ids.set(ids);
        Ok(Image {
            inner: Arc::new(inner),
        })
    }

    /// The validated superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.inner.sb
    }

    /// The decompressed compressor-options block, if the image has one.
    pub fn compressor_options(&self) -> Option<&[u8]> {
        self.inner.comp_options.as_deref()
    }

    /// The image name used in error messages.
    pub fn name(&self) -> &str {
        &self.inner.src.name
    }

    /// The root directory's inode reference.
    pub fn root_ref(&self) -> InodeRef {
        InodeRef(self.inner.sb.root_inode)
    }

    /// Decode the inode at `r` (getattr).
    pub fn inode(&self, r: InodeRef) -> Result<Inode> {
        self.inner.read_inode(r)
    }

    /// Decode the root directory inode.
    pub fn root(&self) -> Result<Inode> {
        let root = self.inode(self.root_ref())?;
        if !root.is_dir() {
            return Err(Error::corrupt(
                self.name(),
                self.inner.sb.inode_table_start,
                "root inode is not a directory",
            ));
        }
        Ok(root)
    }

    /// The reference of inode number `ino` through the export table; `Ok(None)` when the
    /// image has no export table or the number is out of range.
    pub fn inode_ref_by_number(&self, ino: u32) -> Result<Option<InodeRef>> {
        self.inner.export_lookup(ino)
    }

    /// Find `name` in directory `dir`, using the directory index. `Ok(None)` if absent.
    pub fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<DirEntry>> {
        let Layout::Dir(d) = &dir.layout else {
            return Err(Error::WrongType {
                inode: dir.inode_ref.0,
                what: "not a directory",
            });
        };
        self.inner.lookup_in(dir.inode_ref, d, name)
    }

    /// Resolve a `/`-separated path from the root (no symlinks followed). `Ok(None)` if a
    /// component is missing or a non-final component is not a directory.
    pub fn lookup_path(&self, path: &[u8]) -> Result<Option<Inode>> {
        let mut cur = self.root()?;
        for comp in path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
        {
            if !cur.is_dir() {
                return Ok(None);
            }
            match self.lookup(&cur, comp)? {
                Some(e) => cur = self.inode(e.inode_ref)?,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// List `dir` starting after `cookie` (0 = from the start). `visit` gets each entry and the
    /// cookie that resumes after it; it returns `false` to stop. Cookies are opaque and > 0.
    /// "." and ".." are not included.
    pub fn read_dir(
        &self,
        dir: &Inode,
        cookie: u64,
        visit: &mut dyn FnMut(DirEntry, u64) -> bool,
    ) -> Result<()> {
        let Layout::Dir(d) = &dir.layout else {
            return Err(Error::WrongType {
                inode: dir.inode_ref.0,
                what: "not a directory",
            });
        };
        let len = d.listing_len();
        let Ok(target) = u32::try_from(cookie) else {
            return Ok(());
        };
        if target >= len {
            return Ok(());
        }
        if let Some(l) = self.inner.cached_listing(dir.inode_ref) {
            let from = l.entries.partition_point(|(_, end)| *end <= target);
            for (e, end) in l.entries.get(from..).unwrap_or_default() {
                if !visit(e.clone(), u64::from(*end)) {
                    break;
                }
            }
            return Ok(());
        }
        let start = self.inner.scan_start_for_offset(dir.inode_ref, d, target)?;
        self.inner.scan_dir(dir.inode_ref, d, start, &mut |e, end| {
            if end <= target {
                return true;
            }
            visit(e.to_entry(), u64::from(end))
        })
    }

    /// All entries of `dir` in listing order (convenience over [`Image::read_dir`]).
    pub fn list_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        let mut v = Vec::new();
        self.read_dir(dir, 0, &mut |e, _| {
            v.push(e);
            true
        })?;
        Ok(v)
    }

    /// Read up to `buf.len()` bytes of regular file `file` at `offset`; returns the bytes read
    /// (short only at end of file). Blocks a request spans are decompressed in parallel.
    pub fn read(&self, file: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.inner.read_file(file, offset, buf)
    }

    /// Warm the cache for `file` bytes `offset..offset + len` in the background (rayon), for
    /// a sequential-read detector. Errors are ignored; a later `read` reports them.
    pub fn prefetch(&self, file: &Inode, offset: u64, len: usize) {
        let Layout::File(f) = &file.layout else {
            return;
        };
        if offset >= file.size || len == 0 {
            return;
        }
        let bs = u64::from(self.inner.sb.block_size);
        let end = file.size.min(offset.saturating_add(len as u64));
        let (first, last) = (offset / bs, (end - 1) / bs);
        let Ok(pieces) = self.inner.pieces(file, f, first, last) else {
            return;
        };
        for p in pieces {
            let (pos, word) = match p {
                crate::file::Piece::Data { pos, word }
                | crate::file::Piece::Fragment { pos, word, .. } => (pos, word),
                crate::file::Piece::Hole => continue,
            };
            if self.inner.data_cache.contains(&(pos, word)) {
                continue;
            }
            let inner = Arc::clone(&self.inner);
            rayon::spawn(move || {
                let _ = inner.data_block(pos, word);
            });
        }
    }

    /// The target of symlink `link`.
    pub fn readlink(&self, link: &Inode) -> Result<Vec<u8>> {
        let Layout::Symlink { target } = &link.layout else {
            return Err(Error::WrongType {
                inode: link.inode_ref.0,
                what: "not a symlink",
            });
        };
        let mut c = MetaCursor::new(&self.inner, self.inner.sb.directory_table_start, *target);
        c.read_vec(link.size as usize)
    }

    /// All xattrs of `inode`, names with their prefixes.
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<Xattr>> {
        let mut v = Vec::new();
        if let Some(idx) = inode.xattr_index {
            self.inner
                .xattr_walk(idx, &mut |_| true, &mut |name, value| {
                    v.push(Xattr {
                        name,
                        value: value.unwrap_or_default(),
                    });
                    true
                })?;
        }
        Ok(v)
    }

    /// The names (with prefixes) of `inode`'s xattrs, without reading their values.
    pub fn xattr_names(&self, inode: &Inode) -> Result<Vec<Vec<u8>>> {
        let mut v = Vec::new();
        if let Some(idx) = inode.xattr_index {
            self.inner.xattr_walk(idx, &mut |_| false, &mut |name, _| {
                v.push(name);
                true
            })?;
        }
        Ok(v)
    }

    /// The value of xattr `name` (full name with prefix), `Ok(None)` if absent.
    pub fn xattr_get(&self, inode: &Inode, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut found = None;
        if let Some(idx) = inode.xattr_index {
            self.inner
                .xattr_walk(idx, &mut |n| n == name, &mut |n, value| {
                    if n == name {
                        found = value;
                        return false;
                    }
                    true
                })?;
        }
        Ok(found)
    }

    /// Filesystem totals as Linux squashfs reports them in `statfs`.
    pub fn statfs(&self) -> StatFs {
        let sb = &self.inner.sb;
        StatFs {
            block_size: sb.block_size,
            blocks: ((sb.bytes_used - 1) >> sb.block_log) + 1,
            files: u64::from(sb.inode_count),
            name_max: 256,
        }
    }

    /// Cache counters (data/fragment blocks).
    pub fn cache_stats(&self) -> CacheStats {
        let c = &self.inner.data_cache;
        CacheStats {
            hits: c.hits(),
            misses: c.misses(),
            bytes: c.bytes(),
        }
    }

    /// Cache counters for metadata blocks.
    pub fn metadata_cache_stats(&self) -> CacheStats {
        let c = &self.inner.meta_cache;
        CacheStats {
            hits: c.hits(),
            misses: c.misses(),
            bytes: c.bytes(),
        }
    }
}
