//! siftool's text output for `header`, `list` and `info`, reproduced byte for byte.

use crate::Error;
use crate::consts::*;
use crate::descriptor::{Descriptor, Link};
use crate::display::{go_time, human_size, is_zero_time};
use crate::image::Sif;

/// Align `key\tvalue` rows the way Go's tabwriter does: each key padded to the widest key
/// plus `padding` spaces.
fn tabulate(rows: &[(String, String)], padding: usize) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + padding;
    let mut out = String::new();
    for (k, v) in rows {
        // Go's tabwriter pads every tab-terminated cell, even before an empty value.
        out.push_str(k);
        out.extend(std::iter::repeat_n(' ', width - k.chars().count()));
        out.push_str(v);
        out.push('\n');
    }
    out
}

fn row(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// `siftool header`: the global header.
pub fn header(sif: &Sif) -> String {
    let h = &sif.header;
    let mut rows = Vec::new();
    let ls = h.launch_script_str();
    if !ls.is_empty() {
        rows.push(row("Launch Script:", ls.strip_suffix('\n').unwrap_or(&ls)));
    }
    rows.push(row("Version:", h.version_str()));
    if !h.arch.is_unknown() {
        rows.push(row("Primary Architecture:", h.arch.go_name()));
    }
    if h.id != [0; 16] {
        rows.push(row(
            "ID:",
            uuid::Uuid::from_bytes(h.id).hyphenated().to_string(),
        ));
    }
    if !is_zero_time(h.created_at) {
        rows.push(row("Created At:", go_time(h.created_at)));
    }
    if !is_zero_time(h.modified_at) {
        rows.push(row("Modified At:", go_time(h.modified_at)));
    }
    rows.push(row("Descriptors Free:", h.descriptors_free));
    rows.push(row("Descriptors Total:", h.descriptors_total));
    rows.push(row("Descriptors Offset:", h.descriptors_offset));
    rows.push(row("Descriptors Size:", human_size(h.descriptors_size)));
    rows.push(row("Data Offset:", h.data_offset));
    rows.push(row("Data Size:", human_size(h.data_size)));
    tabulate(&rows, 1)
}

fn data_type_name(t: DataType) -> String {
    t.name()
        .map_or_else(|| "Unknown data-type".into(), str::to_string)
}

fn fs_name(t: FsType) -> String {
    t.name()
        .map_or_else(|| "Unknown fstype".into(), str::to_string)
}

fn part_name(t: PartType) -> String {
    t.name()
        .map_or_else(|| "Unknown parttype".into(), str::to_string)
}

fn hash_name(t: HashType) -> String {
    t.name()
        .map_or_else(|| format!("unknown hash value {}", t.0), str::to_string)
}

fn format_name(t: FormatType) -> String {
    t.name()
        .map_or_else(|| "Unknown format-type".into(), str::to_string)
}

fn message_name(t: MessageType) -> String {
    t.name()
        .map_or_else(|| "Unknown message-type".into(), str::to_string)
}

fn sbom_name(f: SbomFormat) -> String {
    f.name().map_or_else(|| "unknown".into(), str::to_string)
}

/// The TYPE column of `siftool list` for one object.
pub fn type_summary(d: &Descriptor) -> String {
    let base = data_type_name(d.data_type);
    if let Some((fs, part, arch)) = d.partition() {
        return format!(
            "{base} ({}/{}/{})",
            fs_name(fs),
            part_name(part),
            arch.go_name()
        );
    }
    if let Some((hash, _)) = d.signature() {
        return format!("{base} ({})", hash_name(hash));
    }
    if let Some((f, m)) = d.crypto_message() {
        return format!("{base} ({}/{})", format_name(f), message_name(m));
    }
    if let Some(f) = d.sbom_format() {
        return format!("{base} ({})", sbom_name(f));
    }
    base
}

const RULE: &str = "------------------------------------------------------------------------------";

/// `siftool list`: one row per object.
pub fn list(sif: &Sif) -> String {
    let mut out =
        format!("{RULE}\nID   |GROUP   |LINK    |SIF POSITION (start-end)  |TYPE\n{RULE}\n");
    for d in sif.objects() {
        let group = match d.group_id() {
            0 => "NONE".to_string(),
            g => g.to_string(),
        };
        let link = match d.link() {
            Link::None => "NONE".to_string(),
            Link::Object(id) => id.to_string(),
            Link::Group(g) => format!("{g:<3} (G)"),
        };
        let pos = format!("|{}-{}", d.offset, d.offset.saturating_add(d.size));
        out.push_str(&format!(
            "{:<4} |{group:<7} |{link:<7} {pos:<26} |{}\n",
            d.id,
            type_summary(d)
        ));
    }
    out
}

/// `siftool info <id>`: every field of one object.
pub fn info(sif: &Sif, id: u32) -> Result<String, Error> {
    let d = sif.object_or_err(id)?;
    let mut rows = vec![
        row("  Data Type:", data_type_name(d.data_type)),
        row("  ID:", d.id),
    ];
    rows.push(match d.group_id() {
        0 => row("  Group ID:", "NONE"),
        g => row("  Group ID:", g),
    });
    rows.push(match d.link() {
        Link::None => row("  Linked ID:", "NONE"),
        Link::Object(l) => row("  Linked ID:", l),
        Link::Group(g) => row("  Linked ID:", format!("{g} (G)")),
    });
    rows.push(row("  Offset:", d.offset));
    rows.push(row("  Size:", d.size));
    if !is_zero_time(d.created_at) {
        rows.push(row("  Created At:", go_time(d.created_at)));
    }
    if !is_zero_time(d.modified_at) {
        rows.push(row("  Modified At:", go_time(d.modified_at)));
    }
    let name = d.name_str();
    if !name.is_empty() {
        rows.push(row("  Name:", name));
    }
    if let Some((fs, part, arch)) = d.partition() {
        rows.push(row("  Filesystem Type:", fs_name(fs)));
        rows.push(row("  Partition Type:", part_name(part)));
        rows.push(row("  Architecture:", arch.go_name()));
    } else if let Some((hash, entity)) = d.signature() {
        rows.push(row("  Hash Type:", hash_name(hash)));
        let hex: String = entity.iter().map(|b| format!("{b:02X}")).collect();
        rows.push(row("  Entity:", hex));
    } else if let Some((f, m)) = d.crypto_message() {
        rows.push(row("  Format Type:", format_name(f)));
        rows.push(row("  Message Type:", message_name(m)));
    } else if let Some(f) = d.sbom_format() {
        rows.push(row("  Format:", sbom_name(f)));
    } else if let Some(digest) = d.oci_digest() {
        rows.push(row("  Digest:", digest));
    }
    Ok(tabulate(&rows, 2))
}
