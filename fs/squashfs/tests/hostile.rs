//! Hostile input: flip bytes, truncate, and splice garbage into every table of several valid
//! images, then open and walk the whole tree. Errors are expected; a panic, a hang (per-case
//! time budget) or an unbounded walk fails the test.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use squashbox_squashfs::{Image, InodeKind, OpenOptions};

/// Per-case limits: a walk stops after this much work even on a valid image.
const MAX_ENTRIES: usize = 5000;
const MAX_FILE_BYTES: u64 = 1 << 20;
const CASE_BUDGET: Duration = Duration::from_secs(10);

fn small_tree(root: &Path) {
    let mut rng = StdRng::seed_from_u64(9);
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("many")).unwrap();
    for (i, size) in [0usize, 1, 600, 5000, 70000, 140000, 300000]
        .iter()
        .enumerate()
    {
        let v: Vec<u8> = (0..*size)
            .map(|j| {
                if i % 2 == 0 {
                    (j % 13) as u8
                } else {
                    rng.random()
                }
            })
            .collect();
        fs::write(root.join(format!("f{i}")), &v).unwrap();
        fs::write(root.join(format!("a/b/g{i}")), &v[..size / 2]).unwrap();
    }
    for i in 0..400 {
        fs::write(
            root.join(format!("many/entry_with_a_longish_name_{i:04}")),
            format!("{i}"),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("f1", root.join("a/link")).unwrap();
    fs::hard_link(root.join("f3"), root.join("a/b/c/hard")).unwrap();
    if squashbox_fixtures::prereq::require_user_xattrs(root) {
        set_xattr(&root.join("f2"), "user.k", b"v");
        set_xattr(&root.join("a"), "user.big", &[1u8; 2000]);
        set_xattr(&root.join("f4"), "user.big", &[1u8; 2000]);
    }
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(600_000).unwrap();
}

/// What a bounded walk of a (possibly hostile) image met.
#[derive(Debug, Default)]
struct Walk {
    /// Entries reached.
    entries: usize,
    /// Every error any call returned, as its message.
    errors: Vec<String>,
}

impl Walk {
    /// The value of `r`, or `None` after recording its error.
    fn ok<T>(&mut self, r: squashbox_squashfs::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e.to_string());
                None
            }
        }
    }
}

/// Walk everything reachable with bounded work, recording every error.
fn walk(image: &Image) -> Walk {
    let mut w = Walk::default();
    let Some(root) = w.ok(image.root()) else {
        return w;
    };
    let mut visited = HashSet::new();
    let mut stack = vec![(root, 0u32)];
    let mut buf = vec![0u8; 128 << 10];
    while let Some((dir, depth)) = stack.pop() {
        if !visited.insert(dir.inode_ref) || depth > 64 {
            continue;
        }
        let mut entries = Vec::new();
        let mut cookies = Vec::new();
        let listed = image.read_dir(&dir, 0, &mut |e, c| {
            entries.push(e);
            cookies.push(c);
            entries.len() < MAX_ENTRIES
        });
        w.ok(listed);
        if let Some(&c) = cookies.get(cookies.len() / 2) {
            // Resuming mid-listing yields exactly the rest of what the first pass saw.
            let mut rest = Vec::new();
            let resumed = image.read_dir(&dir, c, &mut |e, _| {
                rest.push(e.name);
                rest.len() < MAX_ENTRIES
            });
            if w.ok(resumed).is_some() && entries.len() < MAX_ENTRIES {
                let want: Vec<&Vec<u8>> = entries[cookies.len() / 2 + 1..]
                    .iter()
                    .map(|e| &e.name)
                    .collect();
                let got: Vec<&Vec<u8>> = rest.iter().collect();
                if want != got {
                    w.errors
                        .push("case.sqfs: resumed listing differs from the first one".into());
                }
            }
        }
        w.ok(image.xattrs(&dir));
        for e in entries {
            w.entries += 1;
            if w.entries > MAX_ENTRIES {
                return w;
            }
            w.ok(image.lookup(&dir, &e.name));
            let Some(ino) = w.ok(image.inode(e.inode_ref)) else {
                continue;
            };
            w.ok(image.xattrs(&ino));
            w.ok(image.xattr_names(&ino));
            match ino.kind {
                InodeKind::Directory => stack.push((ino, depth + 1)),
                InodeKind::File => {
                    let mut off = 0u64;
                    while off < ino.size.min(MAX_FILE_BYTES) {
                        match w.ok(image.read(&ino, off, &mut buf)) {
                            Some(0) | None => break,
                            Some(n) => off += n as u64,
                        }
                    }
                    if ino.size > 0 {
                        w.ok(image.read(&ino, ino.size - 1, &mut buf[..1]));
                    }
                }
                InodeKind::Symlink => {
                    w.ok(image.readlink(&ino));
                }
                _ => {}
            }
        }
    }
    w
}

/// How one hostile case ended.
#[derive(Debug)]
enum Outcome {
    /// `Image::open` refused it (with this message).
    Rejected(String),
    /// It opened; the walk reached this many entries and met this many errors.
    Opened { entries: usize, errors: usize },
}

/// Open `bytes` as an image and walk it on a worker thread with a time budget. Every error,
/// from open or from the walk, must name the image.
fn run_case(dir: &Path, bytes: Vec<u8>, what: &str) -> Outcome {
    let path = dir.join("case.sqfs");
    fs::write(&path, &bytes).unwrap();
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    let h = std::thread::spawn(move || {
        let r = match Image::open(
            &p,
            &OpenOptions {
                cache_bytes: 4 << 20,
                ..OpenOptions::default()
            },
        ) {
            Ok(img) => Ok(walk(&img)),
            Err(e) => Err(e.to_string()),
        };
        tx.send(r).expect("the test waits for the result");
    });
    let outcome = match rx.recv_timeout(CASE_BUDGET) {
        Ok(Err(msg)) => {
            assert!(
                msg.contains("case.sqfs") && !msg.contains('\n'),
                "{what}: open error does not name the image on one line: {msg}"
            );
            Outcome::Rejected(msg)
        }
        Ok(Ok(w)) => {
            for msg in &w.errors {
                assert!(
                    msg.contains("case.sqfs") && !msg.contains('\n'),
                    "{what}: walk error does not name the image on one line: {msg}"
                );
            }
            Outcome::Opened {
                entries: w.entries,
                errors: w.errors.len(),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: walk did not finish in {CASE_BUDGET:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let _panic = h.join();
            panic!("{what}: the reader panicked");
        }
    };
    h.join()
        .unwrap_or_else(|_| panic!("{what}: the reader panicked"));
    outcome
}

/// Outcomes of one image's hostile cases.
#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    rejected: usize,
    opened: usize,
    /// Opened, and the walk then met at least one error.
    opened_with_errors: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        self.cases += 1;
        match o {
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Opened { errors, .. } => {
                self.opened += 1;
                self.opened_with_errors += usize::from(*errors > 0);
            }
        }
    }
}

/// Table regions of an image, from its superblock: (name, start, end).
fn regions(image: &Image) -> Vec<(&'static str, u64, u64)> {
    let sb = image.superblock();
    let mut starts = vec![
        ("inode table", sb.inode_table_start),
        ("directory table", sb.directory_table_start),
        ("id table", sb.id_table_start),
    ];
    for (n, v) in [
        ("fragment table", sb.fragment_table_start),
        ("export table", sb.export_table_start),
        ("xattr table", sb.xattr_id_table_start),
    ] {
        if v != u64::MAX {
            starts.push((n, v));
        }
    }
    starts.sort_by_key(|s| s.1);
    let mut out = vec![("superblock", 0, 96), ("data blocks", 96, starts[0].1)];
    for (i, &(n, s)) in starts.iter().enumerate() {
        let e = starts.get(i + 1).map_or(sb.bytes_used, |x| x.1);
        // A lookup table's metadata blocks precede its index: widen the region backwards.
        let s0 = if n.ends_with("table") && n != "inode table" && n != "directory table" {
            s.saturating_sub(200)
        } else {
            s
        };
        out.push((n, s0, e.max(s + 1)));
    }
    out
}

fn mutate_image(args: &[&str], seed: u64, cases_per_region: usize) {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    small_tree(&src);
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, args);
    let orig = fs::read(&img).unwrap();
    let image = open(&img);
    let clean = walk(&image);
    assert!(
        clean.entries > 400 && clean.errors.is_empty(),
        "the unmutated image walks fully and cleanly: {clean:?}"
    );
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for (name, s, e) in regions(&image) {
        let e = e.min(orig.len() as u64);
        if s >= e {
            continue;
        }
        for k in 0..cases_per_region {
            let mut b = orig.clone();
            let at = rng.random_range(s..e) as usize;
            let what = match k % 3 {
                0 => {
                    for _ in 0..rng.random_range(1..4) {
                        let i = rng.random_range(s..e) as usize;
                        b[i] ^= 1 << rng.random_range(0..8);
                    }
                    format!("{args:?}: bit flips in {name}")
                }
                1 => {
                    let n = rng.random_range(1..64).min(b.len() - at);
                    rng.fill(&mut b[at..at + n]);
                    format!("{args:?}: {n} garbage bytes at {at} in {name}")
                }
                _ => {
                    let v: u32 = [0, 1, 0xffff, 0x7fff_ffff, 0xffff_ffff, rng.random()]
                        [rng.random_range(0..6)];
                    let at = at.min(b.len() - 4);
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    format!("{args:?}: u32 {v:#x} at {at} in {name}")
                }
            };
            tally.add(&run_case(d.path(), b, &what));
        }
    }
    // Truncations, including just inside each table.
    let mut cuts: Vec<usize> = regions(&image)
        .iter()
        .flat_map(|r| [r.1 as usize, r.1 as usize + 3])
        .collect();
    cuts.extend((0..12).map(|_| rng.random_range(0..orig.len())));
    for cut in cuts {
        let cut = cut.min(orig.len());
        let what = format!("{args:?}: truncated to {cut}");
        let o = run_case(d.path(), orig[..cut].to_vec(), &what);
        if cut < 96 {
            assert!(matches!(o, Outcome::Rejected(_)), "{what}: {o:?}");
        }
        tally.add(&o);
    }
    // Every superblock field set to extreme values.
    for off in (0..96).step_by(2) {
        for v in [0u16, 0xffff, 0x8000] {
            let mut b = orig.clone();
            b[off..off + 2].copy_from_slice(&v.to_le_bytes());
            let what = format!("{args:?}: superblock u16 at {off} = {v:#x}");
            let o = run_case(d.path(), b, &what);
            match off {
                // The magic.
                0 | 2 => assert!(
                    matches!(&o, Outcome::Rejected(msg) if msg.contains("magic")),
                    "{what}: {o:?}"
                ),
                // The modification time: nothing checks it, and nothing else changed.
                8 | 10 => assert!(
                    matches!(o, Outcome::Opened { errors: 0, entries } if entries == clean.entries),
                    "{what}: {o:?}"
                ),
                _ => {}
            }
            tally.add(&o);
        }
    }
    eprintln!("{args:?}: {tally:?} in {:?}", start.elapsed());
    // Both ways out were taken, and some opened images failed later, in the walk.
    assert!(
        tally.rejected > 0,
        "{args:?}: no mutation was rejected: {tally:?}"
    );
    assert!(tally.opened > 0, "{args:?}: no mutation opened: {tally:?}");
    assert!(
        tally.opened_with_errors > 0,
        "{args:?}: no opened image met an error in the walk: {tally:?}"
    );
}

#[test]
fn hostile_gzip_with_xattrs_and_fragments() {
    mutate_image(&["-comp", "gzip", "-b", "65536"], 1, 80);
}

#[test]
fn hostile_zstd_exportable_small_blocks() {
    mutate_image(&["-comp", "zstd", "-b", "4096", "-exports"], 2, 80);
}

#[test]
fn hostile_uncompressed_metadata() {
    // Uncompressed tables let mutations reach the parsers instead of the decompressor.
    mutate_image(&["-noI", "-noD", "-noF", "-noX", "-exports"], 3, 150);
}

#[test]
fn hostile_lzo_and_lz4() {
    mutate_image(&["-comp", "lzo"], 4, 40);
    mutate_image(&["-comp", "lz4"], 5, 40);
}

#[test]
fn garbage_and_empty_files_are_errors() {
    let d = tempdir();
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("short", b"hsqs".to_vec()),
        ("zeros", vec![0u8; 4096]),
        ("magic then zeros", {
            let mut v = vec![0u8; 4096];
            v[..4].copy_from_slice(b"hsqs");
            v
        }),
    ] {
        let p = d.path().join("case.sqfs");
        fs::write(&p, &bytes).unwrap();
        let e = Image::open(&p, &OpenOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("case.sqfs") && !msg.contains('\n'),
            "{what}: {msg}"
        );
    }
}

/// Every codec refuses garbage, an empty block and an output bound too small for a real
/// block: none of them may answer Ok.
#[test]
fn garbage_is_an_error_for_every_codec() {
    use squashbox_squashfs::Compressor;
    use squashbox_squashfs::compress::decompress;
    let garbage: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    for comp in [
        Compressor::Gzip,
        Compressor::Lzma,
        Compressor::Lzo,
        Compressor::Xz,
        Compressor::Lz4,
        Compressor::Zstd,
    ] {
        let name = comp.name();
        let mut out = vec![0u8; 8192];
        let r = decompress(comp, &garbage, &mut out);
        assert!(r.is_err(), "{name}: garbage decoded to {r:?}");
        let mut small = [0u8; 4];
        let r = decompress(comp, &garbage, &mut small);
        assert!(r.is_err(), "{name}: garbage into 4 bytes decoded to {r:?}");
        let r = decompress(comp, &[], &mut out);
        assert!(r.is_err(), "{name}: an empty block decoded to {r:?}");
    }
}

/// Real blocks written by mksquashfs, one per codec, decode to the exact bytes, and fail
/// (never truncate silently) when the output bound is one byte short.
#[test]
fn real_blocks_decode_exactly_and_respect_the_bound() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    fs::create_dir_all(&src).unwrap();
    // One full 4 KiB block, compressible, so every codec stores it compressed.
    let data: Vec<u8> = (0..4096u32)
        .map(|i| b"squashbox "[(i % 10) as usize] ^ (i / 512) as u8)
        .collect();
    fs::write(src.join("f"), &data).unwrap();
    for comp in ["gzip", "lzma", "lzo", "xz", "lz4", "zstd"] {
        let img = path_in(&d, &format!("{comp}.sqfs"));
        mksquashfs(&src, &img, &["-comp", comp, "-b", "4096", "-no-fragments"]);
        let bytes = fs::read(&img).unwrap();
        let image = open(&img);
        let ino = image.lookup_path(b"f").unwrap().unwrap();
        let mut got = vec![0u8; 4096];
        assert_eq!(image.read(&ino, 0, &mut got).unwrap(), 4096, "{comp}");
        assert_eq!(got, data, "{comp}");
        // The only data block starts right after the superblock (and the compressor
        // options, if any): find it as the block whose decoding gives `data`.
        let codec = image.superblock().compressor;
        let start = 96 + image.compressor_options().map_or(0, |o| o.len() + 2);
        let end = image.superblock().inode_table_start as usize;
        let block = &bytes[start..end];
        let mut out = vec![0u8; 4096];
        let n = decompress_ok(codec, block, &mut out, comp);
        assert_eq!(
            (n, &out[..]),
            (4096, &data[..]),
            "{comp}: block at {start}..{end}"
        );
        let mut short = vec![0u8; 4095];
        let r = squashbox_squashfs::compress::decompress(codec, block, &mut short);
        assert!(r.is_err(), "{comp}: 4096 bytes decoded into 4095: {r:?}");
    }
}

fn decompress_ok(
    codec: squashbox_squashfs::Compressor,
    block: &[u8],
    out: &mut [u8],
    what: &str,
) -> usize {
    squashbox_squashfs::compress::decompress(codec, block, out)
        .unwrap_or_else(|e| panic!("{what}: the real block does not decode: {e}"))
}
