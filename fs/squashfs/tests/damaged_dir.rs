//! A directory whose first listing block is damaged: lookups go through the directory index
//! to the block that holds the name, as the kernel's and unsquashfs's do, so only the names
//! whose entries need the damaged block fail, however often the directory is looked up.

mod common;

use std::fs;

use common::*;

/// Files in the victim directory: its listing spans several 8 KiB metadata blocks.
const VICTIMS: usize = 600;

fn victim(i: usize) -> String {
    format!("victim-{i:04}-with-a-name-long-enough")
}

/// Superblock offset of the directory table's start.
const DIRECTORY_TABLE: usize = 72;

/// The file offset and stored length of the first metadata block of the directory table.
fn first_directory_block(bytes: &[u8]) -> (usize, usize) {
    let at = u64::from_le_bytes(
        bytes[DIRECTORY_TABLE..DIRECTORY_TABLE + 8]
            .try_into()
            .unwrap(),
    ) as usize;
    let h = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    assert_eq!(
        h & 0x8000,
        0,
        "the first directory block is stored uncompressed"
    );
    (at, usize::from(h & 0x7fff))
}

/// Which victims `lookup` finds (true) or fails on (false); a wrong answer panics.
fn lookups(image: &squashbox_squashfs::Image) -> Vec<bool> {
    let dir = image.lookup_path(b"a-victim").unwrap().unwrap();
    (0..VICTIMS)
        .map(|i| match image.lookup(&dir, victim(i).as_bytes()) {
            Ok(Some(e)) => {
                let inode = image.inode(e.inode_ref).unwrap();
                let mut buf = vec![0u8; 64];
                let n = image.read(&inode, 0, &mut buf).unwrap();
                assert_eq!(
                    &buf[..n],
                    format!("victim {i}\n").as_bytes(),
                    "{}",
                    victim(i)
                );
                true
            }
            Ok(None) => panic!("{}: not found", victim(i)),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("damaged.sqfs"), "error names no image: {msg}");
                false
            }
        })
        .collect()
}

#[test]
fn only_names_in_the_damaged_block_fail() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    fs::create_dir_all(src.join("a-victim")).unwrap();
    for i in 0..VICTIMS {
        fs::write(
            src.join("a-victim").join(victim(i)),
            format!("victim {i}\n"),
        )
        .unwrap();
    }
    fs::write(src.join("z-file"), b"after\n").unwrap();
    let img = path_in(&d, "damaged.sqfs");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    // Intact, every name is found, through the index and through the cached listing.
    let intact = open(&img);
    for round in 0..3 {
        assert!(
            lookups(&intact).iter().all(|&ok| ok),
            "intact, round {round}"
        );
    }
    drop(intact);
    // mksquashfs writes children first: a-victim's listing starts the directory table.
    let mut bytes = fs::read(&img).unwrap();
    let (at, len) = first_directory_block(&bytes);
    bytes[at + 2..at + 2 + len.min(16)].fill(0xff);
    fs::write(&img, bytes).unwrap();
    let image = open(&img);
    let first = lookups(&image);
    let failed = first.iter().filter(|&&ok| !ok).count();
    // Names are stored sorted; the damaged block holds the first ones: at least the ~180
    // entries (8 + 37 bytes each) that fit in its 8 KiB must fail, and the index leads to
    // the rest. Which names past the block fail too depends on where mksquashfs starts its
    // headers (tests/fuse_hostile.rs checks the exact set against the kernel's).
    assert!(failed >= 150, "only {failed} lookups met the damaged block");
    assert!(
        failed <= VICTIMS - 150,
        "{failed} of {VICTIMS} names failed"
    );
    assert!(
        first[..failed].iter().all(|&ok| !ok),
        "the failures are not the first names: {first:?}"
    );
    // Looked up again (when a whole listing would be cached), nothing changes.
    for round in 1..4 {
        assert_eq!(lookups(&image), first, "round {round}");
    }
    // The rest of the image is untouched.
    let f = image.lookup_path(b"z-file").unwrap().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(image.read(&f, 0, &mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"after\n");
}
