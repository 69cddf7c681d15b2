//! Hostile input: corrupt one compressed data block of a mounted image, or one metadata block
//! of its inode or directory table. What the damage reaches gives EIO (again and again, no
//! hang); every other path is still served correctly and the server stays up. Needs root and
//! mksquashfs.

#[path = "common/fuse.rs"]
mod fuse;

#[path = "common/damage.rs"]
mod damage;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use damage::*;
use fuse::*;

#[test]
fn corrupt_block_gives_eio_for_that_file_only() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // mksquashfs writes file data in name order right after the 96-byte superblock, so the
    // first compressed block in the image belongs to "a-victim".
    let victim = text(1, 600_000);
    let other = text(2, 700_000);
    std::fs::write(src.join("a-victim"), &victim).unwrap();
    std::fs::write(src.join("b-other"), &other).unwrap();
    std::fs::write(src.join("c-small"), b"small file in a fragment\n").unwrap();
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &["-comp", "gzip"]);

    let mnt = tmp.path().join("m");
    let _g = mount_ours(&img, &mnt, &[]);
    // Corrupt the image while it is mounted (nothing of the data has been read yet).
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let mut head = [0u8; 2];
    f.read_exact_at(&mut head, 96).unwrap();
    assert_eq!(
        head[0], 0x78,
        "expected a zlib stream (victim's first block) at byte 96"
    );
    f.write_all_at(&[0xffu8; 64], 96 + 200).unwrap();
    f.sync_all().unwrap();

    for attempt in 0..3 {
        let err = std::fs::read(mnt.join("a-victim")).expect_err("corrupt file read fine");
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EIO),
            "attempt {attempt}: {err}"
        );
    }
    // Bytes after the corrupt block are still readable (another block of the same file).
    let fv = std::fs::File::open(mnt.join("a-victim")).unwrap();
    let mut buf = vec![0u8; 1000];
    fv.read_exact_at(&mut buf, 300_000).unwrap();
    assert_eq!(buf, victim[300_000..301_000]);
    // Everything else is served, and the server is alive.
    assert_eq!(std::fs::read(mnt.join("b-other")).unwrap(), other);
    assert_eq!(
        std::fs::read(mnt.join("c-small")).unwrap(),
        b"small file in a fragment\n"
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 3);
    assert!(std::fs::metadata(mnt.join("a-victim")).unwrap().len() == 600_000);
    assert!(wait_for(Duration::from_millis(200), || is_mounted(&mnt)));
}

/// After the damage: the server still answers real requests (a good file reads back, the
/// root lists) and the mount is alive.
fn assert_alive(src: &Path, mnt: &Path) {
    assert_eq!(
        std::fs::read(mnt.join("z-good/big")).unwrap(),
        std::fs::read(src.join("z-good/big")).unwrap()
    );
    assert_eq!(std::fs::read_dir(mnt).unwrap().count(), 3);
    assert!(is_mounted(mnt), "the mount went away");
}

/// Everything outside `a-victim/` answered Good.
fn assert_outside_good(answers: &std::collections::BTreeMap<PathBuf, Answer>) {
    for (p, a) in not_good(answers) {
        assert!(
            p.starts_with("a-victim"),
            "{}: {a:?}, but the damage is in a-victim/ only",
            p.display()
        );
    }
    assert!(answers.len() > VICTIMS, "walk saw {} paths", answers.len());
}

#[test]
fn corrupt_directory_block_gives_eio_for_that_listing_only() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = make_source(tmp.path());
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    // The directory table's first block holds the start of a-victim's listing.
    break_block(&img, DIRECTORY_TABLE, 0);
    let mnt = tmp.path().join("m");
    let _g = mount_ours(&img, &mnt, &[]);
    // The kernel's answers on the same damaged bytes are the oracle for which names the
    // directory index still reaches.
    let kern = tmp.path().join("k");
    let kernel_eio: Vec<bool> = {
        let _k = mount_kernel(&img, 0, &kern);
        (0..VICTIMS)
            .map(|i| std::fs::read(kern.join("a-victim").join(victim(i))).is_err())
            .collect()
    };
    let kernel_count = kernel_eio.iter().filter(|&&e| e).count();
    assert!(
        kernel_count > 0 && kernel_count < VICTIMS,
        "the kernel failed {kernel_count} of {VICTIMS} names"
    );
    for round in 0..2 {
        let answers = walk_known_within(&src, &mnt, Duration::from_secs(30));
        assert_eq!(
            answers[Path::new("a-victim")],
            Answer::Errno(libc::EIO),
            "round {round}: listing a-victim/"
        );
        // A name whose entry sits in the broken block cannot be looked up (EIO); one found
        // through the directory index in an intact block is served correctly: the same
        // names as the kernel's, every round (a cached whole listing must not spoil them).
        let mut eio = 0;
        for i in 0..VICTIMS {
            let want = if kernel_eio[i] {
                Answer::Errno(libc::EIO)
            } else {
                Answer::Good
            };
            let got = &answers[&Path::new("a-victim").join(victim(i))];
            assert_eq!(got, &want, "round {round}: a-victim/{}", victim(i));
            eio += usize::from(kernel_eio[i]);
        }
        assert_outside_good(&answers);
        assert_alive(&src, &mnt);
        println!("round {round}: {eio} of {VICTIMS} victims gave EIO");
    }
}

#[test]
fn corrupt_inode_block_gives_eio_for_those_inodes_only() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = make_source(tmp.path());
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    // Which inodes live in the inode table's first block, per the intact image.
    let image =
        squashbox_squashfs::Image::open(&img, &squashbox_squashfs::OpenOptions::default()).unwrap();
    for p in [
        "",
        "a-victim",
        "m-file",
        "z-good",
        "z-good/big",
        "z-good/small",
    ] {
        let ino = image.lookup_path(p.as_bytes()).unwrap().unwrap();
        assert_ne!(
            ino.inode_ref.block(),
            0,
            "layout: /{p}'s inode is in the first inode block"
        );
    }
    let dir = image.lookup_path(b"a-victim").unwrap().unwrap();
    let in_first_block: std::collections::BTreeSet<Vec<u8>> = image
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .filter(|e| e.inode_ref.block() == 0)
        .map(|e| e.name)
        .collect();
    assert!(
        !in_first_block.is_empty() && in_first_block.len() < VICTIMS,
        "layout: {} victims' inodes in the first block",
        in_first_block.len()
    );
    assert!(inode_table_blocks(&std::fs::read(&img).unwrap()) >= 3);
    drop(image);
    break_block(&img, INODE_TABLE, 0);
    let mnt = tmp.path().join("m");
    let _g = mount_ours(&img, &mnt, &[]);
    for round in 0..2 {
        let answers = walk_known_within(&src, &mnt, Duration::from_secs(30));
        for i in 0..VICTIMS {
            let name = victim(i);
            let want = if in_first_block.contains(name.as_bytes()) {
                Answer::Errno(libc::EIO)
            } else {
                Answer::Good
            };
            assert_eq!(
                answers[&Path::new("a-victim").join(&name)],
                want,
                "round {round}: a-victim/{name}"
            );
        }
        // Listing a-victim/ with attributes (readdirplus) may fail as a whole; if it
        // succeeds it must be complete.
        let listing = &answers[Path::new("a-victim")];
        assert!(
            matches!(listing, Answer::Good | Answer::Errno(libc::EIO)),
            "round {round}: listing a-victim/: {listing:?}"
        );
        assert_outside_good(&answers);
        assert_alive(&src, &mnt);
        println!(
            "round {round}: {} victims gave EIO, listing {listing:?}",
            in_first_block.len()
        );
    }
}
