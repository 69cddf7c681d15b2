//! Inodes: references, kinds and decoded attributes, and the decoder for all 14 on-disk
//! inode types (basic and extended).

use crate::error::Result;
use crate::image::Inner;
use crate::metadata::{METADATA_SIZE, MetaCursor, MetaPos};

/// An on-disk inode reference: `metadata block start (relative to the inode table) << 16 |
/// offset within the uncompressed block`. It is the handle the API hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeRef(pub u64);

impl InodeRef {
    /// Metadata block start, relative to the inode table.
    pub fn block(self) -> u64 {
        self.0 >> 16
    }

    /// Offset inside the uncompressed metadata block.
    pub fn offset(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

/// The type of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InodeKind {
    /// Directory.
    Directory,
    /// Regular file.
    File,
    /// Symbolic link.
    Symlink,
    /// Block device.
    BlockDevice,
    /// Character device.
    CharDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// A decoded inode: everything `stat` needs, plus the private layout to read it.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Where this inode lives.
    pub inode_ref: InodeRef,
    /// The inode type.
    pub kind: InodeKind,
    /// Whether the on-disk inode is the extended form.
    pub extended: bool,
    /// Permission bits (lower 12 bits of st_mode).
    pub permissions: u16,
    /// Owner uid (resolved through the id table).
    pub uid: u32,
    /// Owner gid (resolved through the id table).
    pub gid: u32,
    /// Modification time, Unix seconds.
    pub mtime: u32,
    /// The inode number stored in the image (what the kernel reports as st_ino).
    pub inode_number: u32,
    /// Link count.
    pub nlink: u32,
    /// Size in bytes as the kernel reports it (files: length; dirs: listing size + 3;
    /// symlinks: target length; others: 0).
    pub size: u64,
    /// Device number for block/char devices (the on-disk encoding, as the kernel decodes it).
    pub rdev: u32,
    /// Index into the xattr id table, if the inode has xattrs.
    pub xattr_index: Option<u32>,
    /// `st_blocks` (512-byte units) as the kernel reports it.
    pub(crate) blocks: u64,
    /// Private layout: where the inode's data, listing or target is.
    pub(crate) layout: Layout,
}

/// Where an inode's contents live (private to the reader).
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    Dir(DirLayout),
    File(FileLayout),
    Symlink { target: MetaPos },
    Other,
}

/// A directory's listing and index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirLayout {
    /// Listing start block, relative to the directory table.
    pub(crate) start: u32,
    /// Listing offset inside that block.
    pub(crate) offset: u16,
    /// Listing size as stored (3 more than the listing bytes).
    pub(crate) file_size: u32,
    /// Number of directory index entries.
    pub(crate) index_count: u16,
    /// Where the index entries start (in the inode table).
    pub(crate) index: MetaPos,
    /// Inode number of the parent directory.
    pub(crate) parent: u32,
}

/// A regular file's data blocks and tail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileLayout {
    /// Image-relative position of the first data block.
    pub(crate) blocks_start: u64,
    /// Fragment index and offset of the tail, if any.
    pub(crate) fragment: Option<(u32, u32)>,
    /// Where the block size list starts (in the inode table).
    pub(crate) block_list: MetaPos,
    /// Number of full (or last partial) data blocks.
    pub(crate) block_count: u64,
}

impl Inode {
    /// `st_blocks` in 512-byte units, computed the way Linux squashfs does: regular files
    /// `ceil(size / 512)` (extended: `ceil((size - sparse) / 512)`), everything else 0, plus
    /// `ceil(xattr_size / 512)` when the inode has xattrs.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The parent directory's inode number (directories only; the root's parent is
    /// `inode_count + 1`, as mksquashfs writes it).
    pub fn parent_inode_number(&self) -> Option<u32> {
        match &self.layout {
            Layout::Dir(d) => Some(d.parent),
            _ => None,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == InodeKind::Directory
    }

    /// Number of data blocks of a regular file (0 for other kinds).
    pub fn data_block_count(&self) -> u64 {
        match &self.layout {
            Layout::File(f) => f.block_count,
            _ => 0,
        }
    }

    /// Whether a regular file's tail lives in a fragment block.
    pub fn has_fragment(&self) -> bool {
        matches!(&self.layout, Layout::File(f) if f.fragment.is_some())
    }

    /// Major device number of `rdev` (Linux `new_decode_dev`).
    pub fn rdev_major(&self) -> u32 {
        (self.rdev & 0xfff00) >> 8
    }

    /// Minor device number of `rdev` (Linux `new_decode_dev`).
    pub fn rdev_minor(&self) -> u32 {
        (self.rdev & 0xff) | ((self.rdev >> 12) & 0xfff00)
    }

    /// Full `st_mode`: file-type bits | permission bits.
    pub fn mode(&self) -> u32 {
        let t = match self.kind {
            InodeKind::Directory => libc::S_IFDIR,
            InodeKind::File => libc::S_IFREG,
            InodeKind::Symlink => libc::S_IFLNK,
            InodeKind::BlockDevice => libc::S_IFBLK,
            InodeKind::CharDevice => libc::S_IFCHR,
            InodeKind::Fifo => libc::S_IFIFO,
            InodeKind::Socket => libc::S_IFSOCK,
        };
        t | u32::from(self.permissions & 0o7777)
    }
}

/// Largest symlink target accepted (Linux refuses targets longer than a page).
const MAX_SYMLINK: u32 = 4096;
const NO_FRAGMENT: u32 = 0xffff_ffff;
const NO_XATTR: u32 = 0xffff_ffff;

impl InodeKind {
    /// Map an on-disk type (1..=14; extended types map to their basic kind).
    pub(crate) fn from_type(t: u16) -> Option<InodeKind> {
        Some(match t {
            1 | 8 => InodeKind::Directory,
            2 | 9 => InodeKind::File,
            3 | 10 => InodeKind::Symlink,
            4 | 11 => InodeKind::BlockDevice,
            5 | 12 => InodeKind::CharDevice,
            6 | 13 => InodeKind::Fifo,
            7 | 14 => InodeKind::Socket,
            _ => return None,
        })
    }
}

fn opt_xattr(x: u32) -> Option<u32> {
    (x != NO_XATTR).then_some(x)
}

impl Inner {
    /// Decode the inode at `r`.
    pub(crate) fn read_inode(&self, r: InodeRef) -> Result<Inode> {
        let sb = &self.sb;
        let at = sb.inode_table_start.saturating_add(r.block());
        if r.0 >> 48 != 0 || usize::from(r.offset()) >= METADATA_SIZE {
            return Err(self
                .src
                .corrupt(at, format!("inode reference {:#x} is malformed", r.0)));
        }
        let block = sb.inode_table_start.checked_add(r.block()).ok_or_else(|| {
            self.src
                .corrupt(at, format!("inode reference {:#x} overflows", r.0))
        })?;
        let end = sb.directory_table_start;
        let mut c = MetaCursor::new(
            self,
            end,
            MetaPos {
                block,
                offset: usize::from(r.offset()),
            },
        );
        let ty = c.u16()?;
        let permissions = c.u16()?;
        let uid_idx = c.u16()?;
        let gid_idx = c.u16()?;
        let mtime = c.u32()?;
        let inode_number = c.u32()?;
        let kind = InodeKind::from_type(ty).ok_or_else(|| {
            self.src
                .corrupt(at, format!("inode {:#x}: unknown inode type {ty}", r.0))
        })?;
        let uid = self.id(uid_idx, at)?;
        let gid = self.id(gid_idx, at)?;
        let extended = ty >= 8;
        let mut nlink = 1;
        let mut size = 0u64;
        let mut rdev = 0;
        let mut xattr = NO_XATTR;
        let mut blocks = 0u64;
        let layout = match ty {
            1 => {
                let start = c.u32()?;
                nlink = c.u32()?;
                let file_size = u32::from(c.u16()?);
                let offset = c.u16()?;
                let parent = c.u32()?;
                size = u64::from(file_size);
                Layout::Dir(DirLayout {
                    start,
                    offset,
                    file_size,
                    index_count: 0,
                    index: c.pos(),
                    parent,
                })
            }
            8 => {
                nlink = c.u32()?;
                let file_size = c.u32()?;
                let start = c.u32()?;
                let parent = c.u32()?;
                let index_count = c.u16()?;
                let offset = c.u16()?;
                xattr = c.u32()?;
                size = u64::from(file_size);
                Layout::Dir(DirLayout {
                    start,
                    offset,
                    file_size,
                    index_count,
                    index: c.pos(),
                    parent,
                })
            }
            2 | 9 => {
                let (blocks_start, file_size, frag, frag_off);
                if ty == 2 {
                    blocks_start = u64::from(c.u32()?);
                    frag = c.u32()?;
                    frag_off = c.u32()?;
                    file_size = u64::from(c.u32()?);
                    blocks = if file_size == 0 {
                        0
                    } else {
                        (file_size - 1) / 512 + 1
                    };
                } else {
                    blocks_start = c.u64()?;
                    file_size = c.u64()?;
                    let sparse = c.u64()?;
                    nlink = c.u32()?;
                    frag = c.u32()?;
                    frag_off = c.u32()?;
                    xattr = c.u32()?;
                    blocks = file_size.saturating_sub(sparse).div_ceil(512);
                }
                if blocks_start > sb.bytes_used {
                    return Err(self.src.corrupt(
                        at,
                        format!(
                            "inode {:#x}: data start {blocks_start} outside the image",
                            r.0
                        ),
                    ));
                }
                let bs = u64::from(sb.block_size);
                let fragment = (frag != NO_FRAGMENT).then_some((frag, frag_off));
                if let Some((idx, _)) = fragment
                    && idx >= sb.fragment_count
                {
                    return Err(self.src.corrupt(
                        at,
                        format!(
                            "inode {:#x}: fragment index {idx} >= fragment count {}",
                            r.0, sb.fragment_count
                        ),
                    ));
                }
                let block_count = if fragment.is_some() {
                    file_size / bs
                } else {
                    file_size.div_ceil(bs)
                };
                size = file_size;
                Layout::File(FileLayout {
                    blocks_start,
                    fragment,
                    block_list: c.pos(),
                    block_count,
                })
            }
            3 | 10 => {
                nlink = c.u32()?;
                let len = c.u32()?;
                if len > MAX_SYMLINK {
                    return Err(self.src.corrupt(
                        at,
                        format!(
                            "inode {:#x}: symlink target of {len} bytes (max {MAX_SYMLINK})",
                            r.0
                        ),
                    ));
                }
                size = u64::from(len);
                let target = c.pos();
                if ty == 10 {
                    c.skip(len as usize)?;
                    xattr = c.u32()?;
                }
                Layout::Symlink { target }
            }
            4 | 5 | 11 | 12 => {
                nlink = c.u32()?;
                rdev = c.u32()?;
                if extended {
                    xattr = c.u32()?;
                }
                Layout::Other
            }
            _ => {
                nlink = c.u32()?;
                if extended {
                    xattr = c.u32()?;
                }
                Layout::Other
            }
        };
        let xattr_index = opt_xattr(xattr);
        if let Some(x) = xattr_index
            && self.xattr_table.is_some()
        {
            let xsize = self.xattr_id(x)?.size;
            blocks = blocks.saturating_add(u64::from(xsize).saturating_sub(1) / 512 + 1);
        }
        Ok(Inode {
            inode_ref: r,
            kind,
            extended,
            permissions,
            uid,
            gid,
            mtime,
            inode_number,
            nlink,
            size,
            rdev,
            xattr_index,
            blocks,
            layout,
        })
    }
}
