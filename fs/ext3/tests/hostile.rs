//! Hostile images: bit flips in every kind of metadata block, truncations, and targeted
//! damage (bad group descriptors, out-of-range block numbers, huge sizes, directory loops,
//! broken htree, xattr and extent blocks). Each case opens the image and walks all of it
//! within a time budget: errors are expected, panics and hangs fail the test, and errors
//! name the image.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use squashbox_ext3::{Ext3Fs, Volume};
use squashbox_vfs::{FileHandle, FileType, Filesystem, ROOT_ID, ReadReply};

const CASE_BUDGET: Duration = Duration::from_secs(20);
const MAX_NODES: usize = 3000;
const MAX_READ: u64 = 1 << 20;

fn small_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("many")).unwrap();
    for (i, size) in [0usize, 1, 1500, 13_000, 300_000].iter().enumerate() {
        fs::write(
            root.join(format!("f{i}")),
            common::tree::bytes(i as u64, *size),
        )
        .unwrap();
    }
    for i in 0..400 {
        fs::write(
            root.join(format!("many/entry-with-a-longish-name-{i:04}")),
            [i as u8],
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("f1", root.join("a/fast")).unwrap();
    std::os::unix::fs::symlink("y".repeat(200), root.join("a/slow")).unwrap();
    fs::hard_link(root.join("f3"), root.join("a/b/c/hard")).unwrap();
    let _ = squashbox_fixtures::sys::lsetxattr(&root.join("f2"), "user.k", b"v");
    let _ = squashbox_fixtures::sys::lsetxattr(&root.join("f3"), "user.big", &[7u8; 600]);
    let f = fs::File::create(root.join("sparse")).unwrap();
    f.set_len(5 << 20).unwrap();
    f.write_all_at(b"end", (5 << 20) - 3).unwrap();
}

/// Make the pristine image of `kind` in `dir`; `None` after a counted skip.
fn pristine(dir: &Path, kind: &str) -> Option<PathBuf> {
    let src = dir.join("src");
    small_tree(&src);
    let img = dir.join(format!("pristine.{kind}"));
    make_image(kind, &src, &img, "4M", &[])?;
    Some(img)
}

/// Walk everything reachable, bounded; returns how many nodes were visited.
fn walk(fs: &Ext3Fs) -> usize {
    let mut seen = HashSet::new();
    let mut nodes = 0usize;
    let mut stack = vec![(ROOT_ID, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if nodes >= MAX_NODES || depth > 64 || !seen.insert(node) {
            continue;
        }
        nodes += 1;
        let _ = fs.getattr(&req(), node, None);
        let _ = fs.listxattr(&req(), node, 0);
        let _ = fs.getxattr(&req(), node, OsStr::new("user.big"), 4096);
        let _ = fs.statfs(&req(), node);
        let mut children = Vec::new();
        for plus in [false, true] {
            let _ = fs.readdir(&req(), node, FileHandle(0), 0, plus, &mut |item, _| {
                if children.len() < MAX_NODES {
                    children.push(item.name.to_os_string());
                }
                true
            });
        }
        for name in children {
            if name == "." || name == ".." {
                continue;
            }
            let Ok(Some(e)) = fs.lookup(&req(), node, &name) else {
                continue;
            };
            match e.attr.kind {
                FileType::Directory => stack.push((e.node, depth + 1)),
                FileType::Symlink => {
                    let _ = fs.readlink(&req(), e.node);
                }
                FileType::RegularFile => {
                    let mut off = 0;
                    while off < e.attr.size.min(MAX_READ) {
                        let (reply, rx) = ReadReply::channel();
                        fs.read(&req(), e.node, FileHandle(0), off, 128 << 10, reply);
                        if !matches!(rx.recv(), Ok(Ok(ref d)) if !d.is_empty()) {
                            break;
                        }
                        off += 128 << 10;
                    }
                    // And far out, where a hostile size may point.
                    let (reply, rx) = ReadReply::channel();
                    fs.read(
                        &req(),
                        e.node,
                        FileHandle(0),
                        e.attr.size.saturating_sub(10),
                        4096,
                        reply,
                    );
                    let _ = rx.recv();
                }
                _ => {}
            }
            nodes += 1;
        }
    }
    nodes
}

/// Open and walk `img` on a thread within the budget. `Err(message)` when open refused it.
fn survive(img: &Path, label: &str) -> Result<usize, String> {
    let (tx, rx) = mpsc::channel();
    let path = img.to_path_buf();
    std::thread::spawn(move || {
        let r = match Ext3Fs::open(&path, 0, true) {
            Ok(fs) => Ok(walk(&fs)),
            Err(e) => Err(e.to_string()),
        };
        let _ = tx.send(r);
    });
    match rx.recv_timeout(CASE_BUDGET) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{label}: no answer within {CASE_BUDGET:?} (hang)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{label}: the walk panicked"),
    }
}

fn assert_names_image(err: &str, img: &Path, label: &str) {
    assert!(
        err.contains(&*img.display().to_string()),
        "{label}: error does not name the image: {err}"
    );
}

/// Byte ranges worth damaging: superblock, GDT, used inode-table blocks, and every
/// directory, indirect, extent and xattr block of the pristine image.
fn interesting_blocks(img: &Path) -> Vec<u64> {
    let vol = Volume::open(img, 0, true).unwrap();
    let fs = open(img);
    let bs = u64::from(vol.block_size());
    let mut blocks: Vec<u64> = vec![1024 / bs, 1024 / bs + 1];
    let itable = vol.groups()[0].inode_table;
    blocks.extend(itable..itable + 8);
    let mut stack = vec![ROOT_ID];
    let mut seen = HashSet::new();
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        let ino = if node == ROOT_ID { 2 } else { node as u32 };
        let inode = vol.inode(ino).unwrap();
        if inode.file_acl != 0 {
            blocks.push(inode.file_acl);
        }
        if !inode.has_extents() {
            for slot in 12..15 {
                let b = u64::from(inode.block_word(slot));
                if b != 0 {
                    blocks.push(b);
                }
            }
        }
        if inode.is_dir() {
            for lblk in 0..inode.size.div_ceil(bs) {
                if let Some(p) = vol.map(&inode, lblk, 1).unwrap().phys {
                    blocks.push(p);
                }
            }
            for l in list(&fs, node) {
                if let Some(e) = fs
                    .lookup(&req(), node, OsStr::from_bytes_lossless(&l.name))
                    .unwrap()
                {
                    stack.push(e.node);
                }
            }
        }
    }
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

trait FromBytes {
    fn from_bytes_lossless(b: &[u8]) -> &OsStr;
}
impl FromBytes for OsStr {
    fn from_bytes_lossless(b: &[u8]) -> &OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// xorshift for the case generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn flips(kind: &str, cases: usize, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = pristine(tmp.path(), kind) else {
        return;
    };
    let good = fs::read(&img).unwrap();
    let bs = u64::from(Volume::open(&img, 0, true).unwrap().block_size());
    let whole = survive(&img, "pristine").unwrap();
    assert!(whole > 400, "the pristine walk reached only {whole} nodes");
    let targets = interesting_blocks(&img);
    assert!(
        targets.len() > 20,
        "found only {} metadata blocks",
        targets.len()
    );
    let case = tmp.path().join("case");
    let mut rng = Rng(seed);
    let (mut opened, mut refused) = (0, 0);
    for i in 0..cases {
        let mut bytes = good.clone();
        for _ in 0..=rng.below(3) {
            let blk = targets[rng.below(targets.len() as u64) as usize];
            for _ in 0..=rng.below(12) {
                let at = (blk * bs + rng.below(bs)) as usize;
                if let Some(b) = bytes.get_mut(at) {
                    *b = if rng.below(2) == 0 {
                        *b ^ (1 << rng.below(8))
                    } else {
                        rng.next() as u8
                    };
                }
            }
        }
        fs::write(&case, &bytes).unwrap();
        match survive(&case, &format!("{kind} flip case {i}")) {
            Ok(_) => opened += 1,
            Err(e) => {
                assert_names_image(&e, &case, &format!("{kind} flip case {i}"));
                refused += 1;
            }
        }
    }
    assert!(
        opened > cases / 4,
        "{kind}: only {opened} of {cases} damaged images opened ({refused} refused)"
    );
}

#[test]
fn ext3_bit_flips_in_metadata_never_panic_or_hang() {
    flips("ext3", 250, 0x5eed_0001);
}

#[test]
fn ext4_bit_flips_in_metadata_never_panic_or_hang() {
    flips("ext4", 150, 0x5eed_0002);
}

#[test]
fn truncated_images_are_refused_with_the_image_named() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = pristine(tmp.path(), "ext3") else {
        return;
    };
    let good = fs::read(&img).unwrap();
    let case = tmp.path().join("cut");
    for len in [0, 1000, 1500, 2048, 3000, good.len() / 2, good.len() - 1024] {
        fs::write(&case, &good[..len]).unwrap();
        let err = survive(&case, &format!("cut at {len}"))
            .expect_err("a truncated image must be refused");
        assert_names_image(&err, &case, &format!("cut at {len}"));
    }
}

/// Patch `bytes` at `at` in a copy of `img` called `name`; returns the copy.
fn patched(img: &Path, name: &str, edits: &[(u64, &[u8])]) -> PathBuf {
    let out = img.with_file_name(name);
    fs::copy(img, &out).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&out).unwrap();
    for (at, b) in edits {
        f.write_all_at(b, *at).unwrap();
    }
    out
}

/// Byte offset of inode `ino`'s on-disk record.
fn inode_offset(vol: &Volume, ino: u32) -> u64 {
    let sb = vol.sb();
    let g = (ino - 1) / sb.inodes_per_group;
    let idx = u64::from((ino - 1) % sb.inodes_per_group);
    vol.groups()[g as usize].inode_table * u64::from(vol.block_size())
        + idx * u64::from(sb.inode_size)
}

#[test]
fn targeted_damage_gives_errors_naming_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = pristine(tmp.path(), "ext3") else {
        return;
    };
    let vol = Volume::open(&img, 0, true).unwrap();
    let fs = open(&img);
    let bs = u64::from(vol.block_size());
    let gdt = if bs == 1024 { 2048 } else { bs };
    let ino_of = |p: &str| resolve(&fs, Path::new(p)).attr.ino as u32;

    // A group descriptor whose inode table lies past the end.
    let bad = patched(&img, "bad-gdt", &[(gdt + 8, &u32::MAX.to_le_bytes())]);
    let err = survive(&bad, "bad gdt").expect_err("refused");
    assert!(err.contains("inode table"), "{err}");
    assert_names_image(&err, &bad, "bad gdt");

    // A block count beyond the image.
    let bad = patched(
        &img,
        "big-count",
        &[(1024 + 4, &0x7fff_ffffu32.to_le_bytes())],
    );
    let err = survive(&bad, "block count").expect_err("refused");
    assert_names_image(&err, &bad, "block count");

    // Bad magic, unknown incompatible feature.
    let bad = patched(&img, "magic", &[(1024 + 0x38, &[0, 0])]);
    assert!(survive(&bad, "magic").unwrap_err().contains("magic"));
    let bad = patched(
        &img,
        "feature",
        &[(1024 + 0x60, &0x8000_0002u32.to_le_bytes())],
    );
    assert!(
        survive(&bad, "feature")
            .unwrap_err()
            .contains("unknown 0x80000000")
    );

    // A data block number past the end: read fails with EIO, the error names image and inode.
    let f4 = ino_of("f4");
    let off = inode_offset(&vol, f4);
    let bad = patched(
        &img,
        "bad-block",
        &[(off + 0x28, &0xffff_ff00u32.to_le_bytes())],
    );
    survive(&bad, "bad block").unwrap();
    let bvol = Volume::open(&bad, 0, true).unwrap();
    let inode = bvol.inode(f4).unwrap();
    let mut buf = vec![0u8; 100];
    let err = bvol.read_data(&inode, 0, &mut buf).unwrap_err().to_string();
    assert!(
        err.contains(&format!("inode {f4}")) && err.contains("bad-block"),
        "{err}"
    );
    let bfs = open(&bad);
    let (reply, rx) = ReadReply::channel();
    bfs.read(&req(), u64::from(f4), FileHandle(0), 0, 100, reply);
    assert_eq!(rx.recv().unwrap(), Err(squashbox_vfs::Errno::EIO));

    // Huge sizes: a 2^64-1 byte file reads (holes) quickly; a 4 GiB directory is refused.
    let f1 = ino_of("f1");
    let many = ino_of("many");
    let bad = patched(
        &img,
        "huge",
        &[
            (inode_offset(&vol, f1) + 4, &u32::MAX.to_le_bytes()),
            (inode_offset(&vol, f1) + 0x6C, &u32::MAX.to_le_bytes()),
            (inode_offset(&vol, many) + 4, &0xffff_fc00u32.to_le_bytes()),
        ],
    );
    survive(&bad, "huge").unwrap();
    let hfs = open(&bad);
    let (reply, rx) = ReadReply::channel();
    hfs.read(
        &req(),
        u64::from(f1),
        FileHandle(0),
        1 << 62,
        1 << 20,
        reply,
    );
    assert!(rx.recv().unwrap().unwrap().iter().all(|&b| b == 0));
    let r = hfs.readdir(
        &req(),
        u64::from(many),
        FileHandle(0),
        2,
        false,
        &mut |_, _| true,
    );
    assert_eq!(r, Err(squashbox_vfs::Errno::EIO));

    // A directory loop: a/b/c gets an entry naming "a"; the walk still ends.
    let c = ino_of("a/b/c");
    let a = ino_of("a");
    let cinode = vol.inode(c).unwrap();
    let cblk = vol.map(&cinode, 0, 1).unwrap().phys.unwrap();
    // Turn "hard" (after "." and "..") into a directory entry naming `a`.
    let mut block = vec![0u8; bs as usize];
    vol.file().read_exact_at(&mut block, cblk * bs).unwrap();
    let pos = 24; // "." 12 + ".." 12 in a fresh block made by mkfs
    assert_eq!(&block[pos + 8..pos + 12], b"hard");
    let bad = patched(
        &img,
        "loop",
        &[
            (cblk * bs + pos as u64, &a.to_le_bytes()),
            (cblk * bs + pos as u64 + 7, &[2]),
        ],
    );
    let n = survive(&bad, "loop").unwrap();
    assert!(n > 10, "walked {n}");
    let lfs = open(&bad);
    let e = lfs
        .lookup(&req(), u64::from(c), OsStr::new("hard"))
        .unwrap()
        .unwrap();
    assert_eq!(
        e.attr.ino,
        u64::from(a),
        "the looping entry leads to the ancestor"
    );

    // A broken htree root: lookups fall back to a linear scan and still find every name.
    let minode = vol.inode(many).unwrap();
    assert!(squashbox_ext3::htree::is_indexed(&vol, &minode));
    let root_blk = vol.map(&minode, 0, 1).unwrap().phys.unwrap();
    let bad = patched(&img, "htree", &[(root_blk * bs + 0x1E, &[9])]);
    let hfs = open(&bad);
    for i in (0..400).step_by(13) {
        let name = format!("entry-with-a-longish-name-{i:04}");
        assert!(
            hfs.lookup(&req(), u64::from(many), OsStr::new(&name))
                .unwrap()
                .is_some(),
            "{name}"
        );
    }
    assert!(
        hfs.faults().emitted() >= 1,
        "the unusable index is reported"
    );

    // A bad xattr block: getxattr fails with EIO, the error names image and inode.
    let f3 = ino_of("f3");
    let acl = vol.inode(f3).unwrap().file_acl;
    assert_ne!(acl, 0, "f3's big xattr lives in a block");
    let bad = patched(&img, "xattr", &[(acl * bs, &[0, 0, 0, 0])]);
    let xfs = open(&bad);
    assert_eq!(
        xfs.getxattr(&req(), u64::from(f3), OsStr::new("user.big"), 1000),
        Err(squashbox_vfs::Errno::EIO)
    );
    let xv = Volume::open(&bad, 0, true).unwrap();
    let err = squashbox_ext3::xattr::list(&xv, &xv.inode(f3).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("xattr") && err.contains(&format!("inode {f3}")) && err.contains("/xattr"),
        "{err}"
    );
}

/// Write to a (possibly damaged) image: create, write across levels, truncate, unlink,
/// mkdir/rmdir, rename and xattrs in every directory reached; errors are fine.
fn scribble(fs: &Ext3Fs) {
    let r = req();
    let mut dirs = vec![ROOT_ID];
    let mut i = 0;
    while i < dirs.len() && i < 20 {
        let d = dirs[i];
        i += 1;
        let mut names = Vec::new();
        let _ = fs.readdir(&r, d, FileHandle(0), 0, false, &mut |item, _| {
            if names.len() < 50 {
                names.push(item.name.to_os_string());
            }
            true
        });
        for n in &names {
            if n == "." || n == ".." {
                continue;
            }
            let Ok(Some(e)) = fs.lookup(&r, d, n) else {
                continue;
            };
            match e.attr.kind {
                FileType::Directory => dirs.push(e.node),
                FileType::RegularFile => {
                    let set = squashbox_vfs::SetAttr {
                        size: Some(e.attr.size / 3),
                        ..Default::default()
                    };
                    let _ = fs.setattr(&r, e.node, &set);
                    let _ = fs.write(
                        &r,
                        e.node,
                        FileHandle(0),
                        5000,
                        b"scribble",
                        squashbox_vfs::OpenFlags(1),
                    );
                    let _ = fs.setxattr(&r, e.node, OsStr::new("user.s"), &[3u8; 300], 0);
                }
                _ => {}
            }
        }
        if let Some(first) = names.iter().find(|n| *n != "." && *n != "..") {
            let _ = fs.rename(
                &r,
                d,
                first,
                ROOT_ID,
                OsStr::new("renamed"),
                squashbox_vfs::RenameFlags(0),
            );
            let _ = fs.unlink(&r, ROOT_ID, OsStr::new("renamed"));
        }
        if let Ok((e, _)) = fs.create(
            &r,
            d,
            OsStr::new("new-file"),
            0o644,
            squashbox_vfs::OpenFlags(1),
        ) {
            let _ = fs.write(
                &r,
                e.node,
                FileHandle(0),
                0,
                &[1u8; 300_000],
                squashbox_vfs::OpenFlags(1),
            );
            let _ = fs.unlink(&r, d, OsStr::new("new-file"));
            fs.forget(e.node, 1);
        }
        if fs.mkdir(&r, d, OsStr::new("new-dir"), 0o755).is_ok() {
            let _ = fs.rmdir(&r, d, OsStr::new("new-dir"));
        }
    }
    fs.destroy();
}

#[test]
fn writing_to_damaged_images_never_panics_or_hangs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = pristine(tmp.path(), "ext3") else {
        return;
    };
    let good = fs::read(&img).unwrap();
    let bs = u64::from(Volume::open(&img, 0, true).unwrap().block_size());
    let targets = interesting_blocks(&img);
    let case = tmp.path().join("case");
    let mut rng = Rng(0x5eed_0003);
    let mut wrote = 0;
    for i in 0..120 {
        let mut bytes = good.clone();
        for _ in 0..=rng.below(3) {
            let blk = targets[rng.below(targets.len() as u64) as usize];
            for _ in 0..=rng.below(12) {
                let at = (blk * bs + rng.below(bs)) as usize;
                if let Some(b) = bytes.get_mut(at) {
                    *b = rng.next() as u8;
                }
            }
        }
        fs::write(&case, &bytes).unwrap();
        let (tx, rx) = mpsc::channel();
        let path = case.clone();
        std::thread::spawn(move || {
            let opened = match Ext3Fs::open(&path, 0, false) {
                Ok(fs) if fs.writable() => {
                    scribble(&fs);
                    true
                }
                _ => false,
            };
            let _ = tx.send(opened);
        });
        match rx.recv_timeout(CASE_BUDGET) {
            Ok(true) => wrote += 1,
            Ok(false) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("write case {i}: hang"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("write case {i}: panicked"),
        }
    }
    assert!(wrote > 30, "only {wrote} damaged images were written to");
    // The undamaged image survives the same treatment and stays clean.
    let clean = tmp.path().join("clean");
    fs::copy(&img, &clean).unwrap();
    scribble(&Ext3Fs::open(&clean, 0, false).unwrap());
    common::writer::assert_fsck_clean(&clean, "scribbled pristine image");
}
