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
    set_xattr(&root.join("f2"), "user.k", b"v");
    set_xattr(&root.join("a"), "user.big", &[1u8; 2000]);
    set_xattr(&root.join("f4"), "user.big", &[1u8; 2000]);
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(600_000).unwrap();
}

/// Walk everything reachable with bounded work; returns entries seen.
fn walk(image: &Image) -> usize {
    let Ok(root) = image.root() else { return 0 };
    let mut seen = 0usize;
    let mut visited = HashSet::new();
    let mut stack = vec![(root, 0u32)];
    let mut buf = vec![0u8; 128 << 10];
    while let Some((dir, depth)) = stack.pop() {
        if !visited.insert(dir.inode_ref) || depth > 64 {
            continue;
        }
        let mut entries = Vec::new();
        let mut cookies = Vec::new();
        let _ = image.read_dir(&dir, 0, &mut |e, c| {
            entries.push(e);
            cookies.push(c);
            entries.len() < MAX_ENTRIES
        });
        if let Some(&c) = cookies.get(cookies.len() / 2) {
            let mut n = 0;
            let _ = image.read_dir(&dir, c, &mut |_, _| {
                n += 1;
                n < MAX_ENTRIES
            });
        }
        let _ = image.xattrs(&dir);
        for e in entries {
            seen += 1;
            if seen > MAX_ENTRIES {
                return seen;
            }
            let _ = image.lookup(&dir, &e.name);
            let Ok(ino) = image.inode(e.inode_ref) else {
                continue;
            };
            let _ = image.xattrs(&ino);
            let _ = image.xattr_names(&ino);
            match ino.kind {
                InodeKind::Directory => stack.push((ino, depth + 1)),
                InodeKind::File => {
                    let mut off = 0u64;
                    while off < ino.size.min(MAX_FILE_BYTES) {
                        match image.read(&ino, off, &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => off += n as u64,
                        }
                    }
                    if ino.size > 0 {
                        let _ = image.read(&ino, ino.size - 1, &mut buf[..1]);
                    }
                }
                InodeKind::Symlink => {
                    let _ = image.readlink(&ino);
                }
                _ => {}
            }
        }
    }
    seen
}

/// Open `bytes` as an image and walk it on a worker thread with a time budget.
fn run_case(dir: &Path, bytes: Vec<u8>, what: &str) {
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
            Ok(img) => {
                walk(&img);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
        let _ = tx.send(r);
    });
    match rx.recv_timeout(CASE_BUDGET) {
        Ok(Err(msg)) => assert!(
            msg.contains("case.sqfs"),
            "{what}: error does not name the image: {msg}"
        ),
        Ok(Ok(())) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: walk did not finish in {CASE_BUDGET:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {}
    }
    if h.join().is_err() {
        panic!("{what}: the reader panicked");
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
    if skip_without_mksquashfs() {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    small_tree(&src);
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, args);
    let orig = fs::read(&img).unwrap();
    let image = open(&img);
    assert!(walk(&image) > 400, "the unmutated image walks fully");
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cases = 0;
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
            run_case(d.path(), b, &what);
            cases += 1;
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
        run_case(
            d.path(),
            orig[..cut].to_vec(),
            &format!("{args:?}: truncated to {cut}"),
        );
        cases += 1;
    }
    // Every superblock field set to extreme values.
    for off in (0..96).step_by(2) {
        for v in [0u16, 0xffff, 0x8000] {
            let mut b = orig.clone();
            b[off..off + 2].copy_from_slice(&v.to_le_bytes());
            run_case(
                d.path(),
                b,
                &format!("{args:?}: superblock u16 at {off} = {v:#x}"),
            );
            cases += 1;
        }
    }
    eprintln!("{args:?}: {cases} hostile cases in {:?}", start.elapsed());
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
