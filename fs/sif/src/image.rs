//! The SIF reader: header and descriptor table, validated before anything trusts them.

use crate::Error;
use crate::consts::{DESCRIPTOR_SIZE, HEADER_SIZE, MAGIC};
use crate::descriptor::Descriptor;
use crate::header::Header;
use crate::util::ReadAt;

/// Largest descriptor table we are willing to load (64 MiB, ~114k slots).
const MAX_DESCRIPTOR_TABLE: u64 = 64 << 20;

/// A loaded, validated SIF: header plus every descriptor slot.
#[derive(Debug, Clone)]
pub struct Sif {
    /// The global header.
    pub header: Header,
    /// All descriptor slots, used or not, in table order (slot i normally has ID i+1).
    pub slots: Vec<Descriptor>,
    /// Length of the image in bytes when it was loaded.
    pub file_len: u64,
}

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

/// True if `bytes` (the start of a file) looks like a SIF header (magic at offset 32).
pub fn has_sif_magic(bytes: &[u8]) -> bool {
    bytes.len() >= 42 && bytes[32..42] == MAGIC
}

impl Sif {
    /// Read and validate the header and descriptor table of `src`.
    ///
    /// Returns [`Error::NotSif`] when the magic is missing, and [`Error::Invalid`] for a SIF
    /// whose header or descriptors are inconsistent with each other or with the file size.
    pub fn load<R: ReadAt + ?Sized>(src: &R) -> Result<Sif, Error> {
        let file_len = src.byte_len()?;
        if file_len < HEADER_SIZE as u64 {
            return Err(Error::NotSif(format!(
                "file is {file_len} bytes, too short for a {HEADER_SIZE}-byte SIF header"
            )));
        }
        let mut hb = [0u8; HEADER_SIZE];
        src.read_exact_at(&mut hb, 0)?;
        let header = Header::decode(&hb);
        if !header.magic_ok() {
            return Err(Error::NotSif("no SIF_MAGIC at offset 32".into()));
        }
        if !header.version_ok() {
            return Err(invalid(format!(
                "unsupported SIF version {:?} at offset 42 (expected \"01\")",
                String::from_utf8_lossy(&header.version).trim_end_matches('\0')
            )));
        }
        let table = check_table(&header, file_len)?;
        let mut raw = vec![0u8; table.len as usize];
        src.read_exact_at(&mut raw, table.offset)?;
        let slots: Vec<Descriptor> = raw
            .chunks_exact(DESCRIPTOR_SIZE)
            .map(|c| {
                let mut a = [0u8; DESCRIPTOR_SIZE];
                a.copy_from_slice(c);
                Descriptor::decode(&a)
            })
            .collect();
        let sif = Sif {
            header,
            slots,
            file_len,
        };
        sif.validate_objects(table.offset + table.len)?;
        Ok(sif)
    }

    /// Used descriptors in table order.
    pub fn objects(&self) -> impl Iterator<Item = &Descriptor> {
        self.slots.iter().filter(|d| d.used)
    }

    /// The used descriptor with object ID `id`.
    pub fn object(&self, id: u32) -> Option<&Descriptor> {
        self.objects().find(|d| d.id == id)
    }

    /// Like [`Sif::object`], with an error naming the missing ID.
    pub fn object_or_err(&self, id: u32) -> Result<&Descriptor, Error> {
        self.object(id)
            .ok_or_else(|| Error::NotFound(format!("no object with ID {id}")))
    }

    /// Read the data bytes of `d` (already validated to lie inside the file).
    pub fn read_data<R: ReadAt + ?Sized>(&self, src: &R, d: &Descriptor) -> Result<Vec<u8>, Error> {
        let size = u64::try_from(d.size)
            .map_err(|_| invalid(format!("object {} has negative size", d.id)))?;
        let off = u64::try_from(d.offset)
            .map_err(|_| invalid(format!("object {} has negative offset", d.id)))?;
        if off
            .checked_add(size)
            .is_none_or(|e| e > src.byte_len().unwrap_or(0))
        {
            return Err(invalid(format!(
                "object {} data lies past the end of the file",
                d.id
            )));
        }
        let len =
            usize::try_from(size).map_err(|_| invalid(format!("object {} too large", d.id)))?;
        let mut buf = vec![0u8; len];
        src.read_exact_at(&mut buf, off)?;
        Ok(buf)
    }

    /// Check every used descriptor: sane offsets and sizes inside the file, after the
    /// descriptor table, unique IDs, no two objects overlapping.
    fn validate_objects(&self, table_end: u64) -> Result<(), Error> {
        let mut spans: Vec<(u64, u64, u32)> = Vec::new();
        let mut ids: Vec<u32> = Vec::new();
        for (slot, d) in self.slots.iter().enumerate() {
            if !d.used {
                continue;
            }
            let what = format!("descriptor slot {slot} (object ID {})", d.id);
            if d.id == 0 {
                return Err(invalid(format!("{what}: object ID 0 is reserved")));
            }
            if ids.contains(&d.id) {
                return Err(invalid(format!("{what}: duplicate object ID {}", d.id)));
            }
            ids.push(d.id);
            if d.offset < 0 || d.size < 0 {
                return Err(invalid(format!(
                    "{what}: negative offset {} or size {}",
                    d.offset, d.size
                )));
            }
            let (off, size) = (d.offset as u64, d.size as u64);
            let end = off
                .checked_add(size)
                .ok_or_else(|| invalid(format!("{what}: offset {off} + size {size} overflows")))?;
            if size > 0 && end > self.file_len {
                return Err(invalid(format!(
                    "{what}: data {off}..{end} lies past the end of the file ({} bytes)",
                    self.file_len
                )));
            }
            if size > 0 && off < table_end {
                return Err(invalid(format!(
                    "{what}: data at offset {off} overlaps the header or descriptor table (ends at {table_end})"
                )));
            }
            if size > 0 {
                spans.push((off, end, d.id));
            }
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(invalid(format!(
                    "objects {} ({}..{}) and {} ({}..{}) overlap",
                    w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
                )));
            }
        }
        Ok(())
    }
}

/// Location of the descriptor table, after checking it against the file.
struct Table {
    offset: u64,
    len: u64,
}

fn check_table(h: &Header, file_len: u64) -> Result<Table, Error> {
    let total = u64::try_from(h.descriptors_total).map_err(|_| {
        invalid(format!(
            "DescriptorsTotal is negative ({})",
            h.descriptors_total
        ))
    })?;
    let offset = u64::try_from(h.descriptors_offset).map_err(|_| {
        invalid(format!(
            "DescriptorsOffset is negative ({})",
            h.descriptors_offset
        ))
    })?;
    if offset < HEADER_SIZE as u64 {
        return Err(invalid(format!(
            "DescriptorsOffset {offset} lies inside the {HEADER_SIZE}-byte header"
        )));
    }
    let len = total
        .checked_mul(DESCRIPTOR_SIZE as u64)
        .filter(|&l| l <= MAX_DESCRIPTOR_TABLE)
        .ok_or_else(|| invalid(format!("DescriptorsTotal {total} is implausibly large")))?;
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= file_len)
        .ok_or_else(|| {
            invalid(format!(
                "descriptor table ({total} descriptors at offset {offset}) extends past the end of the file ({file_len} bytes)"
            ))
        })?;
    if h.descriptors_size != len as i64 {
        return Err(invalid(format!(
            "DescriptorsSize {} does not match DescriptorsTotal {total} x {DESCRIPTOR_SIZE}",
            h.descriptors_size
        )));
    }
    if h.descriptors_free < 0 || h.descriptors_free > h.descriptors_total {
        return Err(invalid(format!(
            "DescriptorsFree {} is outside 0..={total}",
            h.descriptors_free
        )));
    }
    if h.data_offset < 0 || (h.data_offset as u64) < end || h.data_offset as u64 > file_len {
        return Err(invalid(format!(
            "DataOffset {} must lie between the end of the descriptor table ({end}) and the end of the file ({file_len})",
            h.data_offset
        )));
    }
    if h.data_size < 0 {
        return Err(invalid(format!("DataSize is negative ({})", h.data_size)));
    }
    Ok(Table { offset, len })
}
