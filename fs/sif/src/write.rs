//! The SIF writer: create, add, delete and set-primary, byte for byte as the Go library.
//!
//! Every operation validates its request against the loaded image first. It then writes the
//! object data (beyond or between live objects), then the changed descriptors, then the header,
//! so a failure before the descriptor write leaves the image as it was (any bytes appended are
//! truncated away again).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::consts::*;
use crate::descriptor::{Descriptor, Link};
use crate::header::Header;
use crate::image::Sif;
use sha2::{Digest, Sha256};

/// Where the bytes of a new object come from.
#[derive(Debug, Clone)]
pub enum ObjectData {
    /// In-memory bytes.
    Bytes(Vec<u8>),
    /// A file, streamed in.
    File(PathBuf),
}

/// Type-specific descriptor metadata (the Extra field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata {
    /// Nothing (Extra stays zero; OCI digests are computed automatically).
    None,
    /// Partition: filesystem, partition type and arch.
    Partition {
        /// Filesystem type.
        fs: FsType,
        /// Partition type.
        part: PartType,
        /// Architecture (must be a known code).
        arch: Arch,
    },
    /// Signature: hash type and signing entity (a 20-byte OpenPGP fingerprint; at most 256 bytes).
    Signature {
        /// Hash type.
        hash: HashType,
        /// Fingerprint bytes.
        entity: Vec<u8>,
    },
    /// Cryptographic message: format and message type.
    CryptoMessage {
        /// Format type.
        format: FormatType,
        /// Message type.
        message: MessageType,
    },
    /// SBOM format.
    Sbom(SbomFormat),
}

/// A data object to add.
#[derive(Debug, Clone)]
pub struct ObjectInput {
    /// Kind of object.
    pub data_type: DataType,
    /// Its bytes.
    pub data: ObjectData,
    /// Name (at most 128 bytes); empty for none.
    pub name: String,
    /// Group number; 0 means no group. [`ObjectInput::new`] uses the library default, 1.
    pub group: u32,
    /// Link to another object or group.
    pub link: Link,
    /// Alignment of the data offset; `None` = 4096 for partitions, none otherwise.
    pub alignment: Option<u64>,
    /// Type-specific metadata.
    pub metadata: Metadata,
}

impl ObjectInput {
    /// An object with the Go library's defaults: group 1, no name, no link, default alignment.
    pub fn new(data_type: DataType, data: ObjectData) -> ObjectInput {
        ObjectInput {
            data_type,
            data,
            name: String::new(),
            group: 1,
            link: Link::None,
            alignment: None,
            metadata: Metadata::None,
        }
    }
}

/// Options of [`create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Launch script (less than 32 bytes), e.g. `#!/usr/bin/env run-singularity\n`.
    pub launch_script: String,
    /// Nil UUID and Go's zero time, unless `id` / `time` override them.
    pub deterministic: bool,
    /// Explicit image UUID.
    pub id: Option<[u8; 16]>,
    /// Explicit creation time (Unix seconds).
    pub time: Option<i64>,
    /// Descriptor capacity (default 48).
    pub descriptors_total: i64,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            launch_script: String::new(),
            deterministic: false,
            id: None,
            time: None,
            descriptors_total: DEFAULT_DESCRIPTORS,
        }
    }
}

/// Options of [`add_object`] and [`set_primary`].
#[derive(Debug, Clone, Default)]
pub struct EditOptions {
    /// Modification time; default now, or Go's zero time for a deterministic image.
    pub time: Option<i64>,
}

/// Options of [`delete_object`].
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Modification time; default now, or Go's zero time for a deterministic image.
    pub time: Option<i64>,
    /// Overwrite the object's data with zeros.
    pub zero: bool,
    /// Recompute DataSize and truncate the file after the last remaining object.
    pub compact: bool,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn edit_time(h: &Header, explicit: Option<i64>) -> i64 {
    explicit.unwrap_or(if h.is_deterministic() {
        GO_ZERO_TIME
    } else {
        now()
    })
}

fn rejected(msg: impl Into<String>) -> Error {
    Error::Rejected(msg.into())
}

/// Create a new image at `path` holding `objects`, like `sif.CreateContainerAtPath`.
///
/// The image is built in a temporary file beside `path` and renamed over it at the end, so a
/// failure leaves any existing file at `path` untouched. The file mode is 0755.
pub fn create(path: &Path, opts: &CreateOptions, objects: Vec<ObjectInput>) -> Result<(), Error> {
    if opts.launch_script.len() >= 32 {
        return Err(rejected(format!(
            "launch script is {} bytes; it must be shorter than 32",
            opts.launch_script.len()
        )));
    }
    let total = opts.descriptors_total;
    if !(1..=100_000).contains(&total) {
        return Err(rejected(format!(
            "descriptor capacity {total} out of range 1..=100000"
        )));
    }
    if objects.len() as i64 > total {
        return Err(rejected(format!(
            "{} objects do not fit in {total} descriptors",
            objects.len()
        )));
    }
    let t = opts.time.unwrap_or(if opts.deterministic {
        GO_ZERO_TIME
    } else {
        now()
    });
    let id = match opts.id {
        Some(id) => id,
        None if opts.deterministic => [0; 16],
        None => *uuid::Uuid::new_v4().as_bytes(),
    };
    let mut launch_script = [0u8; 32];
    launch_script[..opts.launch_script.len()].copy_from_slice(opts.launch_script.as_bytes());
    let desc_size = total * DESCRIPTOR_SIZE as i64;
    let header = Header {
        launch_script,
        magic: MAGIC,
        version: VERSION,
        arch: Arch::UNKNOWN,
        id,
        created_at: t,
        modified_at: t,
        descriptors_free: total,
        descriptors_total: total,
        descriptors_offset: DEFAULT_DESCRIPTORS_OFFSET,
        descriptors_size: desc_size,
        data_offset: DEFAULT_DESCRIPTORS_OFFSET + desc_size,
        data_size: 0,
    };
    let mut sif = Sif {
        header,
        slots: vec![Descriptor::default(); total as usize],
        file_len: 0,
    };

    let tmp = temp_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&tmp)
        .map_err(|e| io_ctx(e, &format!("creating {}", tmp.display())))?;
    let result = (|| -> Result<(), Error> {
        for obj in objects {
            place_object(&mut sif, &file, obj, t)?;
        }
        let mut table = Vec::with_capacity(desc_size as usize);
        for d in &sif.slots {
            table.extend_from_slice(&d.encode());
        }
        file.write_all_at(&table, DEFAULT_DESCRIPTORS_OFFSET as u64)?;
        file.write_all_at(&sif.header.encode(), 0)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
            .map_err(|e| io_ctx(e, &format!("renaming into {}", path.display())))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
    let unique = uuid::Uuid::new_v4().as_u128() as u32;
    path.with_file_name(format!(".{name}.{}.{unique:08x}.tmp", std::process::id()))
}

fn io_ctx(e: io::Error, what: &str) -> Error {
    Error::Io(io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// Add an object to the image open read-write in `file`; returns its ID.
pub fn add_object(file: &File, input: ObjectInput, opts: &EditOptions) -> Result<u32, Error> {
    let mut sif = Sif::load(file)?;
    let t = edit_time(&sif.header, opts.time);
    let orig_len = sif.file_len;
    let slot = match place_object(&mut sif, file, input, t) {
        Ok(s) => s,
        Err(e) => {
            if file.metadata().is_ok_and(|m| m.len() > orig_len) {
                let _ = file.set_len(orig_len);
            }
            return Err(e);
        }
    };
    sif.header.modified_at = t;
    write_slots(file, &sif, &[slot])?;
    file.write_all_at(&sif.header.encode(), 0)?;
    Ok(sif.slots[slot].id)
}

/// Delete object `id` from the image open read-write in `file`.
pub fn delete_object(file: &File, id: u32, opts: &DeleteOptions) -> Result<(), Error> {
    let mut sif = Sif::load(file)?;
    let t = edit_time(&sif.header, opts.time);
    let slot = find_slot(&sif, id)?;
    let d = sif.slots[slot].clone();
    if opts.zero && d.size > 0 {
        let zeros = vec![0u8; 1 << 20];
        let mut off = d.offset as u64;
        let end = off + d.size as u64;
        while off < end {
            let n = (end - off).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], off)?;
            off += n as u64;
        }
    }
    if d.partition()
        .is_some_and(|(_, p, _)| p == PartType::PRIM_SYS)
    {
        sif.header.arch = Arch::UNKNOWN;
    }
    sif.slots[slot] = Descriptor::default();
    sif.header.descriptors_free = free_count(&sif);
    sif.header.modified_at = t;
    if opts.compact {
        sif.header.data_size = data_end(&sif) - sif.header.data_offset;
    }
    write_slots(file, &sif, &[slot])?;
    file.write_all_at(&sif.header.encode(), 0)?;
    if opts.compact {
        let end = (sif.header.data_offset + sif.header.data_size) as u64;
        if end < sif.file_len {
            file.set_len(end)?;
        }
    }
    Ok(())
}

/// Make partition `id` (of type System) the primary system partition, demoting the old one
/// and setting the header arch. A partition that is already primary is left as is.
pub fn set_primary(file: &File, id: u32, opts: &EditOptions) -> Result<(), Error> {
    let mut sif = Sif::load(file)?;
    let t = edit_time(&sif.header, opts.time);
    let slot = find_slot(&sif, id)?;
    let Some((fs, part, arch)) = sif.slots[slot].partition() else {
        return Err(rejected(format!("object {id} is not a partition")));
    };
    if part == PartType::PRIM_SYS {
        return Ok(());
    }
    if part != PartType::SYSTEM {
        return Err(rejected(format!(
            "partition {id} is of type {}, not System",
            part.name().unwrap_or("unknown")
        )));
    }
    let mut changed = vec![slot];
    let old = sif.slots.iter().position(|d| {
        d.used
            && d.partition()
                .is_some_and(|(_, p, _)| p == PartType::PRIM_SYS)
    });
    if let Some(o) = old {
        let (ofs, _, oarch) = sif.slots[o].partition().expect("partition");
        sif.slots[o].set_partition(ofs, PartType::SYSTEM, oarch);
        sif.slots[o].modified_at = t;
        changed.push(o);
    }
    sif.slots[slot].set_partition(fs, PartType::PRIM_SYS, arch);
    sif.slots[slot].modified_at = t;
    sif.header.arch = arch;
    sif.header.modified_at = t;
    write_slots(file, &sif, &changed)?;
    file.write_all_at(&sif.header.encode(), 0)?;
    Ok(())
}

fn find_slot(sif: &Sif, id: u32) -> Result<usize, Error> {
    sif.slots
        .iter()
        .position(|d| d.used && d.id == id)
        .ok_or_else(|| Error::NotFound(format!("no object with ID {id}")))
}

fn free_count(sif: &Sif) -> i64 {
    sif.slots.iter().filter(|d| !d.used).count() as i64
}

/// One past the last byte of any used object, or DataOffset if there are none.
fn data_end(sif: &Sif) -> i64 {
    sif.objects()
        .map(|d| d.offset + d.size)
        .fold(sif.header.data_offset, i64::max)
}

fn write_slots(file: &File, sif: &Sif, slots: &[usize]) -> Result<(), Error> {
    for &s in slots {
        let off = sif.header.descriptors_offset as u64 + (s * DESCRIPTOR_SIZE) as u64;
        file.write_all_at(&sif.slots[s].encode(), off)?;
    }
    Ok(())
}

fn check_input(sif: &Sif, input: &ObjectInput) -> Result<(), Error> {
    if input.data_type.name().is_none() {
        return Err(rejected(format!(
            "unknown data type {:#x}",
            input.data_type.0
        )));
    }
    if input.name.len() > 128 {
        return Err(rejected(format!(
            "object name is {} bytes; at most 128 fit",
            input.name.len()
        )));
    }
    if input.group >= GROUP_MASK {
        return Err(rejected(format!("group ID {} too large", input.group)));
    }
    match (&input.metadata, input.data_type) {
        (Metadata::Partition { part, arch, .. }, DataType::PARTITION) => {
            if arch.is_unknown() {
                return Err(rejected("unknown partition architecture"));
            }
            if *part == PartType::PRIM_SYS && sif.primary_partition().is_ok() {
                return Err(rejected("image already has a primary system partition"));
            }
        }
        (Metadata::None, DataType::PARTITION) => {
            return Err(rejected(
                "a partition needs filesystem, partition type and arch",
            ));
        }
        (Metadata::Signature { entity, .. }, DataType::SIGNATURE) => {
            if entity.len() > 256 {
                return Err(rejected(format!(
                    "signing entity is {} bytes; at most 256 fit",
                    entity.len()
                )));
            }
        }
        (Metadata::CryptoMessage { .. }, DataType::CRYPTO_MESSAGE)
        | (Metadata::Sbom(_), DataType::SBOM)
        | (Metadata::None, _) => {}
        (m, t) => {
            return Err(rejected(format!(
                "metadata {m:?} does not fit data type {}",
                t.name().unwrap_or("unknown")
            )));
        }
    }
    if sif.slots.iter().all(|d| d.used) {
        return Err(rejected(format!(
            "no free descriptor slot (all {} in use)",
            sif.slots.len()
        )));
    }
    Ok(())
}

/// Validate `input`, stream its data into `file` at the next (aligned) offset and fill the
/// first free slot of `sif` in memory. Returns the slot index. Descriptors and header are
/// not written here.
fn place_object(sif: &mut Sif, file: &File, input: ObjectInput, t: i64) -> Result<usize, Error> {
    check_input(sif, &input)?;
    let slot = sif.slots.iter().position(|d| !d.used).expect("checked");
    let align = input
        .alignment
        .unwrap_or(if input.data_type == DataType::PARTITION {
            PARTITION_ALIGNMENT
        } else {
            0
        });
    sif.header.data_size = data_end(sif) - sif.header.data_offset;
    let unaligned = (sif.header.data_offset + sif.header.data_size) as u64;
    let offset = align_up(unaligned, align)
        .ok_or_else(|| rejected(format!("alignment {align} overflows the offset")))?;
    let want_digest =
        input.data_type == DataType::OCI_ROOT_INDEX || input.data_type == DataType::OCI_BLOB;
    let (size, digest) = match &input.data {
        ObjectData::Bytes(b) => {
            file.write_all_at(b, offset)?;
            (
                b.len() as u64,
                want_digest.then(|| format!("{:x}", Sha256::digest(b))),
            )
        }
        ObjectData::File(p) => {
            let mut src =
                File::open(p).map_err(|e| io_ctx(e, &format!("opening {}", p.display())))?;
            if same_file(&src, file) {
                return Err(rejected(format!(
                    "{} is the image itself; it cannot be added to itself",
                    p.display()
                )));
            }
            copy_into(&mut src, file, offset, want_digest)
                .map_err(|e| io_ctx(e, &format!("copying {}", p.display())))?
        }
    };
    let mut d = Descriptor {
        data_type: input.data_type,
        used: true,
        id: slot as u32 + 1,
        group_raw: input.group | GROUP_MASK,
        link_raw: match input.link {
            Link::None => 0,
            Link::Object(id) => id,
            Link::Group(g) => g | GROUP_MASK,
        },
        offset: offset as i64,
        size: size as i64,
        size_with_padding: (offset - unaligned + size) as i64,
        created_at: t,
        modified_at: t,
        ..Descriptor::default()
    };
    d.name[..input.name.len()].copy_from_slice(input.name.as_bytes());
    match input.metadata {
        Metadata::None => {
            if let Some(hex) = digest {
                let s = format!("sha256:{hex}");
                d.extra[..s.len()].copy_from_slice(s.as_bytes());
            }
        }
        Metadata::Partition { fs, part, arch } => {
            d.set_partition(fs, part, arch);
            if part == PartType::PRIM_SYS {
                sif.header.arch = arch;
            }
        }
        Metadata::Signature { hash, entity } => {
            d.extra[0..4].copy_from_slice(&hash.0.to_le_bytes());
            d.extra[4..4 + entity.len()].copy_from_slice(&entity);
        }
        Metadata::CryptoMessage { format, message } => {
            d.extra[0..4].copy_from_slice(&format.0.to_le_bytes());
            d.extra[4..8].copy_from_slice(&message.0.to_le_bytes());
        }
        Metadata::Sbom(f) => d.extra[0..4].copy_from_slice(&f.0.to_le_bytes()),
    }
    sif.header.data_size += d.size_with_padding;
    sif.slots[slot] = d;
    sif.header.descriptors_free = free_count(sif);
    Ok(slot)
}

/// True if both handles refer to the same inode (adding an image to itself would never end).
fn same_file(a: &File, b: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn align_up(x: u64, align: u64) -> Option<u64> {
    if align <= 1 {
        return Some(x);
    }
    x.checked_add(align - 1).map(|v| v / align * align)
}

/// Copy all of `src` into `dst` at `offset`; returns the byte count and, if asked, the
/// SHA-256 hex digest.
fn copy_into(
    src: &mut File,
    dst: &File,
    offset: u64,
    digest: bool,
) -> io::Result<(u64, Option<String>)> {
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = digest.then(Sha256::new);
    let mut done = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all_at(&buf[..n], offset + done)?;
        if let Some(h) = hash.as_mut() {
            h.update(&buf[..n]);
        }
        done += n as u64;
    }
    Ok((done, hash.map(|h| format!("{:x}", h.finalize()))))
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
