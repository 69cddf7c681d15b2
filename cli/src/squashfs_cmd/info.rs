//! `squashbox squashfs info`: superblock facts in the words of `unsquashfs -s`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;

use anyhow::Result;
use squashbox_squashfs::{Compressor, Superblock};

use super::sys::local_time;
use crate::image_arg::ImageArgs;

/// Arguments of `squashbox squashfs info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    image: ImageArgs,
}

const NOI: u16 = 0x0001;
const NOD: u16 = 0x0002;
const NOF: u16 = 0x0008;
const NO_FRAG: u16 = 0x0010;
const ALWAYS_FRAG: u16 = 0x0020;
const DUPLICATES: u16 = 0x0040;
const EXPORTABLE: u16 = 0x0080;
const NOX: u16 = 0x0100;
const NO_XATTRS: u16 = 0x0200;
const COMP_OPT: u16 = 0x0400;
const NO_IDS_COMP: u16 = 0x0800;

/// Run `info`.
pub fn run(args: InfoArgs) -> Result<ExitCode> {
    let opened = args.image.open()?;
    let sb = opened.image.superblock().clone();
    let file = File::open(&args.image.image)?;
    let mut out = std::io::stdout().lock();
    let text = render(&sb, &file, opened.offset, &opened.name);
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn ctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = local_time(secs);
    let month = MONTHS[(mo as usize).clamp(1, 12) - 1];
    let day = DAYS[(wd as usize).min(6)];
    format!("{day} {month} {d:>2} {h:02}:{mi:02}:{s:02} {y}")
}

/// Read `len` bytes at image-relative `pos`, or `None` if they are not there.
fn read_at(file: &File, base: u64, pos: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, base.checked_add(pos)?).ok()?;
    Some(buf)
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Lines describing the compressor options block (stored uncompressed after the superblock).
fn compressor_options(sb: &Superblock, file: &File, base: u64) -> Vec<String> {
    let mut lines = Vec::new();
    if sb.flags & COMP_OPT == 0 {
        return lines;
    }
    let Some(h) = read_at(file, base, 96, 2) else {
        return lines;
    };
    let header = u16::from_le_bytes([h[0], h[1]]);
    let len = usize::from(header & 0x7fff);
    if header & 0x8000 == 0 || !(4..=64).contains(&len) {
        return lines;
    }
    let Some(o) = read_at(file, base, 98, len) else {
        return lines;
    };
    match sb.compressor {
        Compressor::Gzip if len >= 8 => {
            lines.push(format!("\tcompression-level {}", u32_at(&o, 0)));
            lines.push(format!(
                "\twindow-size {}",
                u16::from_le_bytes([o[4], o[5]])
            ));
            let s = u16::from_le_bytes([o[6], o[7]]);
            let names = [
                "default",
                "filtered",
                "huffman_only",
                "run_length_encoded",
                "fixed",
            ];
            let chosen: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| s & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            if !(chosen.is_empty() || chosen == ["default"]) {
                lines.push(format!("\tStrategies selected: {}", chosen.join(", ")));
            }
        }
        Compressor::Xz if len >= 8 => {
            lines.push(format!("\tDictionary size {}", u32_at(&o, 0)));
            let f = u32_at(&o, 4);
            let names = ["x86", "powerpc", "ia64", "arm", "armthumb", "sparc"];
            let chosen: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| f & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            if !chosen.is_empty() {
                lines.push(format!("\tFilters selected: {}", chosen.join(", ")));
            }
        }
        Compressor::Lz4 if len >= 8 && u32_at(&o, 4) & 1 != 0 => {
            lines.push("\tHigh Compression option specified (-Xhc)".into());
        }
        Compressor::Zstd => lines.push(format!("\tcompression-level {}", u32_at(&o, 0))),
        Compressor::Lzo if len >= 8 => {
            let names = [
                "lzo1x_1",
                "lzo1x_1_11",
                "lzo1x_1_12",
                "lzo1x_1_15",
                "lzo1x_999",
            ];
            let alg = u32_at(&o, 0) as usize;
            lines.push(format!(
                "\talgorithm {}",
                names.get(alg).unwrap_or(&"unknown")
            ));
            if alg == 4 {
                lines.push(format!("\tcompression-level {}", u32_at(&o, 4)));
            }
        }
        _ => {}
    }
    lines
}

/// The full `info` text.
fn render(sb: &Superblock, file: &File, base: u64, name: &str) -> String {
    let f = sb.flags;
    let is = |flag: u16| {
        if f & flag != 0 {
            "uncompressed"
        } else {
            "compressed"
        }
    };
    // squashfs-tools leaves the id table uncompressed with -noI too.
    let ids = if f & (NOI | NO_IDS_COMP) != 0 {
        "uncompressed"
    } else {
        "compressed"
    };
    let mut l = vec![
        format!(
            "Found a valid SQUASHFS {}:{} superblock on {name}.",
            sb.version_major, sb.version_minor
        ),
        format!(
            "Creation or last append time {}",
            ctime(i64::from(sb.mod_time))
        ),
        format!(
            "Filesystem size {} bytes ({:.2} Kbytes / {:.2} Mbytes)",
            sb.bytes_used,
            sb.bytes_used as f64 / 1024.0,
            sb.bytes_used as f64 / (1024.0 * 1024.0)
        ),
        format!("Compression {}", sb.compressor.name()),
    ];
    l.extend(compressor_options(sb, file, base));
    l.push(format!("Block size {}", sb.block_size));
    l.push(format!(
        "Filesystem is {}exportable via NFS",
        if f & EXPORTABLE != 0 { "" } else { "not " }
    ));
    l.push(format!("Inodes are {}", is(NOI)));
    l.push(format!("Data is {}", is(NOD)));
    l.push(format!("Uids/Gids (Id table) are {ids}"));
    if f & NO_FRAG != 0 {
        l.push("Fragments are not stored".into());
    } else {
        l.push(format!("Fragments are {}", is(NOF)));
        l.push(format!(
            "Always-use-fragments option is {}specified",
            if f & ALWAYS_FRAG != 0 { "" } else { "not " }
        ));
    }
    if f & NO_XATTRS != 0 {
        l.push("Xattrs are not stored".into());
    } else {
        l.push(format!("Xattrs are {}", is(NOX)));
    }
    l.push(format!(
        "Duplicates are {}removed",
        if f & DUPLICATES != 0 { "" } else { "not " }
    ));
    l.push(format!("Number of fragments {}", sb.fragment_count));
    l.push(format!("Number of inodes {}", sb.inode_count));
    l.push(format!("Number of ids {}", sb.id_count));
    if f & NO_XATTRS == 0 {
        let n = if sb.xattr_id_table_start == u64::MAX {
            Some(0)
        } else {
            read_at(file, base, sb.xattr_id_table_start.saturating_add(8), 4).map(|b| u32_at(&b, 0))
        };
        if let Some(n) = n {
            l.push(format!("Number of xattr ids {n}"));
        }
    }
    let mut s = l.join("\n");
    s.push('\n');
    s
}
