//! Range operations on files: fallocate and copy_file_range.
//!
//! fallocate on block-mapped files: mode 0 (allocate zeroed blocks and grow the size) and
//! `PUNCH_HOLE | KEEP_SIZE` (free the whole blocks of a range, zero its partial edges) are
//! served; the other modes answer EOPNOTSUPP, as the kernel's ext4 driver does for
//! block-mapped (non-extent) files: a block map cannot mark blocks unwritten, so
//! `KEEP_SIZE` alone would leave blocks past the end (which e2fsck reports), and zeroing,
//! collapsing or inserting ranges is not implemented.
//!
//! copy_file_range reads the source range and writes it like a `write` (holes in the source
//! become zeroed blocks). The kernel has written back both ranges' dirty pages before the
//! request and refuses overlapping ranges within one file itself.

use squashbox_vfs::{Errno, FileType, NodeId, Result, Timespec};

/// Bytes read and written per step of a copy_file_range.
const COPY_CHUNK: u64 = 1 << 20;

/// Most bytes one copy_file_range request copies (the reply is a 32-bit count; the caller
/// loops for the rest).
const COPY_MAX: u64 = 1 << 30;

use super::{Ext3Fs, privs};
use crate::file_write;

impl Ext3Fs {
    pub(super) fn do_fallocate(
        &self,
        node: NodeId,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        let a = self.alloc()?;
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        if mode != 0 && mode != punch {
            return Err(Errno::EOPNOTSUPP);
        }
        if length == 0 {
            return Err(Errno::EINVAL);
        }
        let ino = self.ino_of(node)?;
        let _op = self.begin()?;
        let _held = self.locks.lock(&[ino]);
        let mut inode = self.inode(node)?;
        match inode.kind() {
            Some(FileType::RegularFile) => {}
            Some(FileType::Directory) => return Err(Errno::EISDIR),
            _ => return Err(Errno(libc::ENODEV)),
        }
        if inode.has_extents() {
            return Err(Errno::EOPNOTSUPP);
        }
        let old_size = inode.size;
        privs::kill_capability(&self.vol, a, &mut inode)
            .map_err(|e| self.err("fallocate", node, e))?;
        let r = if mode == punch {
            inode.mtime = Timespec::now();
            file_write::punch(&self.vol, a, &mut inode, offset, length)
        } else {
            file_write::allocate(&self.vol, a, &mut inode, offset, length)
        };
        let t = Timespec::now();
        inode.ctime = t;
        if inode.size != old_size {
            inode.mtime = t;
        }
        self.vol
            .write_inode(&inode)
            .map_err(|e| self.err("fallocate", node, e))?;
        r.map_err(|e| self.err("fallocate", node, e))
    }

    pub(super) fn do_copy_file_range(
        &self,
        node_in: NodeId,
        offset_in: u64,
        node_out: NodeId,
        offset_out: u64,
        len: u64,
    ) -> Result<u32> {
        self.alloc()?;
        let src = self.inode(node_in)?;
        match src.kind() {
            Some(FileType::RegularFile) => {}
            Some(FileType::Directory) => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        }
        let len = len.min(COPY_MAX).min(src.size.saturating_sub(offset_in));
        let mut done = 0u64;
        let mut buf = Vec::new();
        while done < len {
            let n = (len - done).min(COPY_CHUNK);
            buf.resize(n as usize, 0);
            // Re-read the source each step: a copy onto the same file may have grown it.
            let src = self.inode(node_in)?;
            self.vol
                .read_data(&src, offset_in + done, &mut buf)
                .map_err(|e| self.fault("copy_file_range", node_in, e))?;
            let wrote = match self.do_write(node_out, offset_out + done, &buf) {
                Ok(w) => u64::from(w),
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += wrote;
            if wrote < n {
                break;
            }
        }
        u32::try_from(done).map_err(|_| Errno::EINVAL)
    }
}
