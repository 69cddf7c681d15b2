//! Extended attributes: the xattr id table (per-inode location, count and size) and the
//! key/value stream with its `user.` / `trusted.` / `security.` prefixes and out-of-line values.

use crate::error::Result;
use crate::image::Inner;
use crate::metadata::{METADATA_SIZE, MetaCursor, MetaPos};
use crate::superblock::{le32, le64};
use crate::table::LookupTable;

/// One extended attribute, with its full name (prefix included, e.g. `user.foo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Full name with prefix.
    pub name: Vec<u8>,
    /// Value bytes.
    pub value: Vec<u8>,
}

/// Largest xattr name (without prefix) and value Linux accepts.
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: u32 = 65536;
const OUT_OF_LINE: u16 = 0x100;

/// The xattr tables found at open.
pub(crate) struct XattrTable {
    /// Start of the key/value metadata stream.
    pub(crate) kv_start: u64,
    /// End bound of the key/value stream (the id table header).
    pub(crate) kv_end: u64,
    pub(crate) ids: LookupTable,
}

/// One xattr id entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XattrId {
    pub(crate) xref: u64,
    pub(crate) count: u32,
    pub(crate) size: u32,
}

fn prefix(t: u16) -> Option<&'static [u8]> {
    Some(match t & 0xff {
        0 => b"user.",
        1 => b"trusted.",
        2 => b"security.",
        _ => return None,
    })
}

impl XattrTable {
    pub(crate) fn open(src: &crate::source::Source, start: u64) -> Result<XattrTable> {
        let mut hdr = [0u8; 16];
        src.read_at(start, &mut hdr, "xattr id table header")?;
        let kv_start = le64(&hdr, 0);
        let count = le32(&hdr, 8);
        if kv_start >= start || kv_start < crate::superblock::SUPERBLOCK_SIZE as u64 {
            return Err(src.corrupt(
                start,
                format!("xattr table start {kv_start} is not before its id table"),
            ));
        }
        let ids = LookupTable::open(src, "xattr id table", start + 16, u64::from(count), 16)?;
        Ok(XattrTable {
            kv_start,
            kv_end: start,
            ids,
        })
    }
}

impl Inner {
    /// The xattr id entry `idx`.
    pub(crate) fn xattr_id(&self, idx: u32) -> Result<XattrId> {
        let Some(t) = &self.xattr_table else {
            return Err(self
                .src
                .corrupt(0, format!("xattr index {idx} but no xattr table")));
        };
        let mut b = [0u8; 16];
        t.ids.entry(self, u64::from(idx), &mut b)?;
        Ok(XattrId {
            xref: le64(&b, 0),
            count: le32(&b, 8),
            size: le32(&b, 12),
        })
    }

    fn xattr_cursor(&self, t: &XattrTable, xref: u64) -> Result<MetaCursor<'_>> {
        let offset = (xref & 0xffff) as usize;
        let block = t
            .kv_start
            .checked_add(xref >> 16)
            .filter(|_| offset < METADATA_SIZE);
        let Some(block) = block else {
            return Err(self.src.corrupt(
                t.kv_start,
                format!("xattr reference {xref:#x} is malformed"),
            ));
        };
        Ok(MetaCursor::new(self, t.kv_end, MetaPos { block, offset }))
    }

    /// Visit the xattrs at index `idx`: `f(full_name, value_or_none)`; values are read only
    /// when `want_value(name)` says so. Stops early when `f` returns false.
    pub(crate) fn xattr_walk(
        &self,
        idx: u32,
        want_value: &mut dyn FnMut(&[u8]) -> bool,
        f: &mut dyn FnMut(Vec<u8>, Option<Vec<u8>>) -> bool,
    ) -> Result<()> {
        let Some(t) = &self.xattr_table else {
            return Ok(());
        };
        let id = self.xattr_id(idx)?;
        if id.count > 65536 {
            return Err(self
                .src
                .corrupt(t.kv_start, format!("xattr id {idx}: {} entries", id.count)));
        }
        let mut c = self.xattr_cursor(t, id.xref)?;
        for _ in 0..id.count {
            let ty = c.u16()?;
            let name_len = usize::from(c.u16()?);
            let here = c.pos().block;
            let Some(pre) = prefix(ty) else {
                return Err(self
                    .src
                    .corrupt(here, format!("xattr id {idx}: unknown prefix type {ty:#x}")));
            };
            if name_len > XATTR_NAME_MAX {
                return Err(self
                    .src
                    .corrupt(here, format!("xattr id {idx}: name of {name_len} bytes")));
            }
            let mut name = pre.to_vec();
            name.extend_from_slice(&c.read_vec(name_len)?);
            let vsize = c.u32()?;
            let want = want_value(&name);
            let value = if ty & OUT_OF_LINE != 0 {
                if vsize != 8 {
                    return Err(self
                        .src
                        .corrupt(here, format!("xattr id {idx}: out-of-line size {vsize}")));
                }
                let vref = c.u64()?;
                if want {
                    let mut vc = self.xattr_cursor(t, vref)?;
                    let n = vc.u32()?;
                    if n > XATTR_SIZE_MAX {
                        return Err(self
                            .src
                            .corrupt(here, format!("xattr id {idx}: value of {n} bytes")));
                    }
                    Some(vc.read_vec(n as usize)?)
                } else {
                    None
                }
            } else {
                if vsize > XATTR_SIZE_MAX {
                    return Err(self
                        .src
                        .corrupt(here, format!("xattr id {idx}: value of {vsize} bytes")));
                }
                if want {
                    Some(c.read_vec(vsize as usize)?)
                } else {
                    c.skip(vsize as usize)?;
                    None
                }
            };
            if !f(name, value) {
                break;
            }
        }
        Ok(())
    }
}
