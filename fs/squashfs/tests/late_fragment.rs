//! A fragment block written after the tables, past the image's `bytes_used`: what mksquashfs
//! 4.5.1 and 4.6.1 sometimes write with `-b 4K -tailends` on a busy machine (a race; see
//! `tests/fragments.rs`). Made here deterministically from a good image by moving its
//! fragment block to the end of the file. unsquashfs reads such an image; the kernel refuses
//! the files whose tails are in that fragment, and so do we (the image ends at `bytes_used`),
//! naming the fragment. `squashbox_fixtures::written_past_its_end` spots the image.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use squashbox_fixtures::prereq;
use squashbox_squashfs::{Image, OpenOptions};

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Source files: one with a tail (in the one fragment block), one of whole blocks only.
fn sources() -> Vec<(&'static str, Vec<u8>)> {
    let text = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| b"squashbox late fragment\n"[(i + usize::from(seed)) % 24])
            .collect()
    };
    vec![("tailed.txt", text(5000, 1)), ("whole.txt", text(8192, 3))]
}

/// Pack the sources with `-b 4K -tailends`, then move fragment 0 past `bytes_used`.
/// Returns the source dir and the image.
fn late_fragment_image(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    for (name, data) in sources() {
        fs::write(src.join(name), data).unwrap();
    }
    let img = dir.join("late.sqfs");
    squashbox_fixtures::mksquashfs(&src, &img, &["-comp", "gzip", "-b", "4K", "-tailends"])
        .unwrap();
    assert!(!squashbox_fixtures::written_past_its_end(&img).unwrap());
    let mut b = fs::read(&img).unwrap();
    let fragments = u32::from_le_bytes(b[16..20].try_into().unwrap());
    assert_eq!(fragments, 1, "one tail, one fragment block");
    // The fragment table: an index of metadata block positions, one block here.
    let block = le64(&b, le64(&b, 80) as usize) as usize;
    let header = le16(&b, block);
    let stored = usize::from(header & 0x7fff);
    let raw = &b[block + 2..block + 2 + stored];
    let mut table = if header & 0x8000 != 0 {
        raw.to_vec()
    } else {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(raw), &mut out).unwrap();
        out
    };
    assert_eq!(table.len(), 16, "one 16-byte fragment entry");
    let (start, size) = (
        le64(&table, 0) as usize,
        u32::from_le_bytes(table[8..12].try_into().unwrap()),
    );
    let len = (size & 0x00ff_ffff) as usize;
    // The block goes to the end of the file (after mksquashfs's padding), as in the race.
    let late = b.len();
    let moved = b[start..start + len].to_vec();
    b.extend_from_slice(&moved);
    table[..8].copy_from_slice(&(late as u64).to_le_bytes());
    // Rewrite the table block in place: stored uncompressed when that fits (16 bytes do not
    // compress), else recompressed; lookup-table blocks are found through the index, so a
    // shorter block is fine.
    let (bytes, flag) = if table.len() <= stored {
        (table.clone(), 0x8000u16)
    } else {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&table).unwrap();
        (z.finish().unwrap(), 0)
    };
    assert!(bytes.len() <= stored, "the new table block does not fit");
    let header = u16::try_from(bytes.len()).unwrap() | flag;
    b[block..block + 2].copy_from_slice(&header.to_le_bytes());
    b[block + 2..block + 2 + bytes.len()].copy_from_slice(&bytes);
    fs::write(&img, b).unwrap();
    (src, img)
}

fn open(img: &Path) -> Image {
    Image::open(img, &OpenOptions::default()).unwrap()
}

#[test]
fn a_fragment_past_bytes_used_is_refused_and_spotted() {
    if !prereq::require_tools(&["mksquashfs", "unsquashfs"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (_src, img) = late_fragment_image(d.path());
    assert!(squashbox_fixtures::written_past_its_end(&img).unwrap());
    let image = open(&img);
    for (name, data) in sources() {
        let ino = image.lookup_path(name.as_bytes()).unwrap().unwrap();
        let mut buf = vec![0u8; data.len()];
        let r = image.read(&ino, 0, &mut buf);
        if ino.has_fragment() {
            let msg = r.expect_err(name).to_string();
            assert!(
                msg.contains("late.sqfs")
                    && msg.contains("fragment 0")
                    && msg.contains("past the end of the image"),
                "{name}: {msg}"
            );
        } else {
            assert_eq!(r.unwrap(), data.len(), "{name}");
            assert_eq!(buf, data, "{name}");
        }
    }
    // squashfs-tools does not bound reads by bytes_used: it extracts every file.
    let dest = d.path().join("x");
    let out = Command::new("unsquashfs")
        .args(["-no-progress", "-quiet", "-d"])
        .arg(&dest)
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success(), "unsquashfs refused the image");
    for (name, data) in sources() {
        assert_eq!(
            fs::read(dest.join(name)).unwrap(),
            data,
            "unsquashfs: {name}"
        );
    }
}

/// The kernel refuses the same files (EIO) and reads the rest.
#[test]
fn the_kernel_refuses_a_fragment_past_bytes_used_too() {
    if !prereq::require_root("a kernel loop mount") || !prereq::require_tools(&["mksquashfs"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (_src, img) = late_fragment_image(d.path());
    let image = open(&img);
    let mnt = d.path().join("m");
    fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "squashfs", "-o", "loop,ro"])
        .arg(&img)
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    assert!(ok, "loop mount failed as root");
    let results: Vec<_> = sources()
        .into_iter()
        .map(|(name, data)| (name, data, fs::read(mnt.join(name))))
        .collect();
    let _ = Command::new("umount").arg(&mnt).status();
    for (name, data, got) in results {
        let tailed = image
            .lookup_path(name.as_bytes())
            .unwrap()
            .unwrap()
            .has_fragment();
        match got {
            Ok(got) => assert!(!tailed && got == data, "kernel read {name}"),
            Err(e) => assert!(
                tailed && e.raw_os_error() == Some(libc::EIO),
                "kernel: {name}: {e}"
            ),
        }
    }
}
