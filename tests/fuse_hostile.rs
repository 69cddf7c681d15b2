//! Hostile input: corrupt one compressed data block of a mounted image. Reading that file gives
//! EIO (again and again, no hang); every other file is still served correctly and the server
//! stays up. Needs root and mksquashfs.

#[path = "common/fuse.rs"]
mod fuse;

use std::os::unix::fs::FileExt;
use std::time::Duration;

use fuse::*;

fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "squash", "box", "fuse", "kernel", "block", "inode", "cache", "thread", "zlib",
    ];
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

#[test]
fn corrupt_block_gives_eio_for_that_file_only() {
    if skip_unless(&[]) {
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
