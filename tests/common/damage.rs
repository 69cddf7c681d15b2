//! Images with one damaged metadata block (of the inode or the directory table), and a walker
//! that records what a mount answers for every path of the source tree. Used by the FUSE
//! hostile and log-flood tests (helper "damage"; include after `common/fuse.rs`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Superblock offset of the inode table's start (u64, little endian).
pub const INODE_TABLE: usize = 64;
/// Superblock offset of the directory table's start (u64, little endian).
pub const DIRECTORY_TABLE: usize = 72;

/// Files in `a-victim/`: enough that its listing and its inodes each span several 8 KiB
/// metadata blocks.
pub const VICTIMS: usize = 600;

/// Name of victim file `i`.
pub fn victim(i: usize) -> String {
    format!("victim-{i:04}-with-a-name-long-enough")
}

/// Contents of victim file `i`.
pub fn victim_text(i: usize) -> Vec<u8> {
    format!("victim {i}\n").into_bytes()
}

/// Deterministic text of `len` bytes.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = ["squash", "box", "fuse", "kernel", "block", "inode", "cache"];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        out.extend_from_slice(format!(" {} ", x % 1000).as_bytes());
    }
    out.truncate(len);
    out
}

/// The source tree: `a-victim/` (VICTIMS small files), `m-file`, `z-good/{big,small}`.
/// mksquashfs writes directories children first and in name order, so `a-victim`'s listing
/// and inodes come first in their tables and the root's come last.
pub fn make_source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("a-victim")).unwrap();
    fs::create_dir_all(src.join("z-good")).unwrap();
    for i in 0..VICTIMS {
        fs::write(src.join("a-victim").join(victim(i)), victim_text(i)).unwrap();
    }
    fs::write(src.join("m-file"), b"in the middle\n").unwrap();
    fs::write(src.join("z-good/big"), text(7, 300_000)).unwrap();
    fs::write(src.join("z-good/small"), b"small and good\n").unwrap();
    src
}

/// Where metadata block `k` of the table whose start is at superblock offset `field` lies:
/// (file offset of its 2-byte header, stored payload length, whether compressed).
pub fn metadata_block(bytes: &[u8], field: usize, k: usize) -> (usize, usize, bool) {
    let mut at = u64::from_le_bytes(bytes[field..field + 8].try_into().unwrap()) as usize;
    for i in 0..=k {
        let h = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let (len, compressed) = ((h & 0x7fff) as usize, h & 0x8000 == 0);
        assert!(
            len > 0 && at + 2 + len <= bytes.len(),
            "bad metadata block header at {at}"
        );
        if i == k {
            return (at, len, compressed);
        }
        at += 2 + len;
    }
    unreachable!()
}

/// Number of metadata blocks in the inode table (it ends where the directory table starts).
pub fn inode_table_blocks(bytes: &[u8]) -> usize {
    let end = u64::from_le_bytes(
        bytes[DIRECTORY_TABLE..DIRECTORY_TABLE + 8]
            .try_into()
            .unwrap(),
    ) as usize;
    let mut n = 0;
    loop {
        let (at, len, _) = metadata_block(bytes, INODE_TABLE, n);
        n += 1;
        if at + 2 + len >= end {
            return n;
        }
    }
}

/// Break metadata block `k` of the table at `field` in `img`: its compressed stream's first
/// bytes become 0xff, which no codec's header accepts, so every read of it fails.
pub fn break_block(img: &Path, field: usize, k: usize) {
    let mut bytes = fs::read(img).unwrap();
    let (at, len, compressed) = metadata_block(&bytes, field, k);
    assert!(
        compressed,
        "metadata block {k} at {at} is stored uncompressed"
    );
    bytes[at + 2..at + 2 + len.min(16)].fill(0xff);
    fs::write(img, bytes).unwrap();
}

/// What a mount answered for one path.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Everything matched the source (stat type, listing, contents).
    Good,
    /// A call failed with this errno.
    Errno(i32),
    /// The mount answered, but wrongly.
    Wrong(String),
}

fn errno(e: &std::io::Error) -> Answer {
    Answer::Errno(e.raw_os_error().unwrap_or(-1))
}

/// Sorted names in `dir`.
fn names(dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
    let mut v = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<Vec<_>>>()?;
    v.sort();
    Ok(v)
}

/// Look at every path of `src` through `mnt` (lstat; then the listing of a directory, or the
/// contents of a file, compared with the source). Paths come from the source, so a path is
/// looked up even when its directory cannot be listed.
pub fn walk_known(src: &Path, mnt: &Path) -> BTreeMap<PathBuf, Answer> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let (s, m) = (src.join(&rel), mnt.join(&rel));
        let want = fs::symlink_metadata(&s).unwrap();
        let expected = if want.is_dir() {
            names(&s).unwrap()
        } else {
            Vec::new()
        };
        todo.extend(expected.iter().map(|n| rel.join(n)));
        let answer = match fs::symlink_metadata(&m) {
            Err(e) => errno(&e),
            Ok(got)
                if got.file_type() != want.file_type()
                    || (want.is_file() && got.len() != want.len()) =>
            {
                Answer::Wrong(format!("stat {got:?}, expected {want:?}"))
            }
            Ok(_) if want.is_dir() => match names(&m) {
                Err(e) => errno(&e),
                Ok(got) if got == expected => Answer::Good,
                Ok(got) => {
                    Answer::Wrong(format!("{} names, expected {}", got.len(), expected.len()))
                }
            },
            Ok(_) => match read(&m) {
                Err(e) => errno(&e),
                Ok(got) if got == fs::read(&s).unwrap() => Answer::Good,
                Ok(got) => {
                    Answer::Wrong(format!("{} bytes that differ from the source", got.len()))
                }
            },
        };
        out.insert(rel, answer);
    }
    out
}

fn read(p: &Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    fs::File::open(p)?.read_to_end(&mut v)?;
    Ok(v)
}

/// [`walk_known`] on a worker thread; panics if it takes longer than `limit` (a hung server).
pub fn walk_known_within(
    src: &Path,
    mnt: &Path,
    limit: std::time::Duration,
) -> BTreeMap<PathBuf, Answer> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (s, m) = (src.to_path_buf(), mnt.to_path_buf());
    std::thread::spawn(move || {
        let _gone = tx.send(walk_known(&s, &m));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("walking {} did not finish in {limit:?}: {e}", mnt.display()))
}

/// Paths whose answer is not [`Answer::Good`], with the answer.
pub fn not_good(answers: &BTreeMap<PathBuf, Answer>) -> Vec<(&PathBuf, &Answer)> {
    answers
        .iter()
        .filter(|(_, a)| **a != Answer::Good)
        .collect()
}
