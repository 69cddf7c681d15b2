//! Hostile SIF files through the CLI: every command fails with a one-line error naming the
//! problem (never a panic), and edit commands leave the file byte for byte as it was.

#[path = "common/sif.rs"]
mod common;

use common::*;
use std::ffi::OsStr;
use std::path::Path;

fn put_i64(b: &mut [u8], off: usize, v: i64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn desc(slot: usize) -> usize {
    4096 + slot * 585
}

/// (what, mutation, expected words in the error)
type Case = (&'static str, fn(&mut Vec<u8>), &'static str);

fn cases() -> Vec<Case> {
    vec![
        ("bad magic", |b| b[32] = b'X', "not a SIF"),
        ("bad version", |b| b[42] = b'9', "unsupported SIF version"),
        (
            "huge DescriptorsTotal",
            |b| put_i64(b, 88, 1 << 50),
            "DescriptorsTotal",
        ),
        (
            "table past EOF",
            |b| {
                put_i64(b, 88, 4000);
                put_i64(b, 104, 4000 * 585);
            },
            "past the end of the file",
        ),
        (
            "object past EOF",
            |b| put_i64(b, desc(1) + 25, 1 << 40),
            "past the end of the file",
        ),
        (
            "negative offset",
            |b| put_i64(b, desc(0) + 17, -4096),
            "negative",
        ),
        (
            "overlapping objects",
            |b| put_i64(b, desc(1) + 17, 32768),
            "overlap",
        ),
        (
            "object over the descriptor table",
            |b| put_i64(b, desc(0) + 17, 5000),
            "descriptor table",
        ),
        (
            "duplicate IDs",
            |b| b[desc(1) + 5] = 1,
            "duplicate object ID",
        ),
        (
            "truncated file",
            |b| b.truncate(20_000),
            "past the end of the file",
        ),
        ("tiny file", |b| b.truncate(50), "too short"),
    ]
}

fn run_all(img: &Path) {
    let p = img.as_os_str();
    let sq = input("root.squashfs");
    let o = OsStr::new;
    let commands: Vec<Vec<&OsStr>> = vec![
        vec![o("header"), p],
        vec![o("list"), p],
        vec![o("info"), o("1"), p],
        vec![o("dump"), o("2"), p],
        vec![o("add"), o("--datatype"), o("6"), p, sq.as_os_str()],
        vec![o("del"), o("1"), p],
        vec![o("setprim"), o("1"), p],
    ];
    for cmd in &commands {
        let before = std::fs::read(img).unwrap();
        let err = sif_err(cmd);
        assert_eq!(err.trim_end().lines().count(), 1, "{cmd:?}: {err}");
        assert!(
            err.contains("hostile.sif"),
            "{cmd:?}: error does not name the image: {err}"
        );
        assert!(
            std::fs::read(img).unwrap() == before,
            "{cmd:?} modified a hostile image"
        );
    }
}

#[test]
fn mutated_corpus_images_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read(corpus("one-group.sif")).unwrap();
    for (what, mutate, words) in cases() {
        let mut b = base.clone();
        mutate(&mut b);
        let img = dir.path().join("hostile.sif");
        std::fs::write(&img, &b).unwrap();
        let err = sif_err(&[OsStr::new("list"), img.as_os_str()]);
        assert!(err.contains(words), "{what}: {err}");
        assert!(
            err.contains("hostile.sif"),
            "{what}: error does not name the image: {err}"
        );
        run_all(&img);
    }
}

#[test]
fn bare_squashfs_is_rejected_as_not_a_sif() {
    let err = sif_err(&[OsStr::new("header"), input("root.squashfs").as_os_str()]);
    assert!(err.contains("not a SIF"), "{err}");
}
