//! Larger and special images: a 5000-entry directory, an image at an offset inside a bigger
//! file, the Apptainer busybox SIF, concurrent readers, laziness, and the kernel's own
//! loop mount as the oracle for stat fields.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use squashbox_squashfs::{Image, InodeKind, OpenOptions};

#[test]
fn big_directory_lookup_every_name() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    let big = src.join("big");
    fs::create_dir_all(&big).unwrap();
    let mut names = Vec::new();
    for i in 0..5000u32 {
        let n = format!(
            "{}_{i:05}_{}",
            ["a", "bb", "file", "zz"][i as usize % 4],
            "x".repeat((i % 37) as usize)
        );
        fs::write(big.join(&n), i.to_le_bytes()).unwrap();
        names.push(n.into_bytes());
    }
    names.sort();
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "zstd", "-b", "4096"]);
    let image = open(&img);
    let dir = image.lookup_path(b"big").unwrap().unwrap();
    assert!(
        dir.extended,
        "a 5000-entry directory uses the extended inode with an index"
    );
    let listed: Vec<Vec<u8>> = image
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, names);
    for n in &names {
        let e = image
            .lookup(&dir, n)
            .unwrap()
            .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(n)));
        let ino = image.inode(e.inode_ref).unwrap();
        let mut b = [0u8; 4];
        assert_eq!(image.read(&ino, 0, &mut b).unwrap(), 4);
        let want: u32 = String::from_utf8_lossy(n)
            .split('_')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(u32::from_le_bytes(b), want);
    }
    for miss in [&b"a"[..], b"a_", b"zz_99999", b"~", b"0", b"file_00002_x"] {
        assert!(image.lookup(&dir, miss).unwrap().is_none());
    }
    // Resume from a sample of cookies, in pages as a FUSE readdir does.
    let mut page_cookie = 0;
    let mut paged = Vec::new();
    loop {
        let mut got = 0;
        image
            .read_dir(&dir, page_cookie, &mut |e, c| {
                paged.push(e.name);
                page_cookie = c;
                got += 1;
                got < 97
            })
            .unwrap();
        if got == 0 {
            break;
        }
    }
    assert_eq!(paged, names);
}

#[test]
fn image_at_an_offset() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    let xa = build_tree(&src, 131072, 7);
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "xz"]);
    let mut bytes = vec![0xa5u8; 45056 + 123];
    bytes.extend(fs::read(&img).unwrap());
    bytes.extend([0u8; 4096]);
    let wrapped = path_in(&d, "wrapped");
    fs::write(&wrapped, &bytes).unwrap();
    let opts = OpenOptions {
        offset: 45056 + 123,
        ..OpenOptions::default()
    };
    let image = Image::open(&wrapped, &opts).unwrap();
    compare_tree(&image, &src, xa);
    let err = Image::open(&wrapped, &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("magic"), "{err}");
    let err = Image::open(
        &wrapped,
        &OpenOptions {
            offset: 1 << 40,
            ..OpenOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("offset"), "{err}");
}

#[test]
fn busybox_sif_reads_fully() {
    let sif = squashbox_fixtures::upstream("apptainer-e2e/busybox_amd64.sif");
    let opts = OpenOptions {
        offset: 45056,
        ..OpenOptions::default()
    };
    let image = Image::open(&sif, &opts).unwrap();
    // Everything reads back to its recorded size.
    let mut stack = vec![image.root().unwrap()];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        for e in image.list_dir(&dir).unwrap() {
            let ino = image.inode(e.inode_ref).unwrap();
            n += 1;
            match ino.kind {
                InodeKind::Directory => stack.push(ino),
                InodeKind::File => {
                    assert_eq!(read_all(&image, &ino, 1 << 20).len() as u64, ino.size)
                }
                InodeKind::Symlink => assert!(!image.readlink(&ino).unwrap().is_empty()),
                _ => {}
            }
        }
    }
    assert!(n > 300, "busybox has hundreds of entries, saw {n}");
    // unsquashfs is the oracle for everything else (owners need root to restore).
    if !squashbox_fixtures::prereq::require_tools(&["unsquashfs"])
        || !squashbox_fixtures::prereq::require_root("unsquashfs restoring owners")
    {
        return;
    }
    let d = tempdir();
    let out = path_in(&d, "x");
    let st = Command::new("unsquashfs")
        .args(["-no-progress", "-quiet", "-o", "45056", "-d"])
        .arg(&out)
        .arg(&sif)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let n = compare_tree(&image, &out, false);
    assert!(n > 300, "busybox has hundreds of entries, saw {n}");
}

#[test]
fn concurrent_readers_share_blocks() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..(4u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(src.join("big"), &data).unwrap();
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    let image = Arc::new(open(&img));
    let ino = image.lookup_path(b"big").unwrap().unwrap();
    let data = Arc::new(data);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (image, ino, data) = (image.clone(), ino.clone(), data.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 100_000];
                for k in 0..60u64 {
                    let off = (k * 70_001 + t * 13) % (4 << 20);
                    let n = image.read(&ino, off, &mut buf).unwrap();
                    assert_eq!(&buf[..n], &data[off as usize..off as usize + n]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = image.cache_stats();
    // 32 distinct blocks; concurrent misses on one block decompress it once.
    assert!(st.misses <= 32, "{st:?}");
    assert!(st.hits > 0);
}

#[test]
fn open_is_lazy() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    for i in 0..3000 {
        let p = src.join(format!("d{}", i % 30));
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join(format!("f{i}")), format!("{i}")).unwrap();
    }
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    let image = open(&img);
    let m = image.metadata_cache_stats();
    assert!(
        m.misses <= 3,
        "open decompressed {} metadata blocks",
        m.misses
    );
    assert_eq!(image.cache_stats().misses, 0);
}

/// The kernel's loop mount is the oracle for stat fields (size, nlink, blocks, rdev, ino,
/// mode, mtime, uid, gid) and xattrs.
#[test]
fn stat_fields_match_the_kernel() {
    if !mksquashfs_ready(&["mount", "umount"])
        || !squashbox_fixtures::prereq::require_root("kernel loop mount as the oracle")
    {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    let xa = build_tree(&src, 131072, 3);
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    let mnt = path_in(&d, "mnt");
    fs::create_dir_all(&mnt).unwrap();
    let out = Command::new("mount")
        .args(["-t", "squashfs", "-o", "loop,ro"])
        .arg(&img)
        .arg(&mnt)
        .output()
        .expect("running mount");
    assert!(
        out.status.success(),
        "kernel loop mount of {} failed: {}",
        img.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let image = open(&img);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut stack = vec![(image.root().unwrap(), mnt.clone())];
        let (mut n, mut with_xattrs, mut owned) = (0, 0, 0);
        let mut check = |ino: &squashbox_squashfs::Inode, p: &Path| {
            check_stat(&image, ino, &fs::symlink_metadata(p).unwrap(), p);
            with_xattrs += usize::from(ino.xattr_index.is_some());
            owned += usize::from(ino.uid != 0 || ino.gid != 0);
        };
        while let Some((dir, path)) = stack.pop() {
            check(&dir, &path);
            for e in image.list_dir(&dir).unwrap() {
                let p = path.join(std::ffi::OsStr::from_bytes(&e.name));
                let ino = image.inode(e.inode_ref).unwrap();
                n += 1;
                if ino.is_dir() {
                    stack.push((ino, p));
                } else {
                    check(&ino, &p);
                }
            }
        }
        let root = image.root().unwrap();
        let kernel_root = fs::symlink_metadata(&mnt).unwrap();
        assert_eq!(u64::from(root.inode_number), kernel_root.ino());
        assert!(n > 40);
        // The comparison saw xattrs and owners for real.
        if xa {
            assert!(with_xattrs >= 4, "only {with_xattrs} entries with xattrs");
        }
        assert!(owned >= 1, "no entry with a non-root owner");
        let sfs = nix_statfs(&mnt);
        let ours = image.statfs();
        assert_eq!((ours.blocks, ours.files, ours.block_size as u64), sfs);
    }));
    let umount = Command::new("umount").arg(&mnt).output();
    if let Err(e) = res {
        std::panic::resume_unwind(e);
    }
    let umount = umount.expect("running umount");
    assert!(
        umount.status.success(),
        "umount {}: {}",
        mnt.display(),
        String::from_utf8_lossy(&umount.stderr)
    );
}

fn nix_statfs(p: &Path) -> (u64, u64, u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: zeroed statfs is a valid out-parameter; c is NUL-terminated.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        assert_eq!(libc::statfs(c.as_ptr(), &mut s), 0);
        (s.f_blocks, s.f_files, s.f_bsize as u64)
    }
}

fn check_stat(image: &Image, ino: &squashbox_squashfs::Inode, md: &fs::Metadata, p: &Path) {
    let what = p.display();
    assert_eq!(ino.size, md.size(), "size of {what}");
    assert_eq!(u64::from(ino.nlink), md.nlink(), "nlink of {what}");
    assert_eq!(ino.blocks(), md.blocks(), "blocks of {what}");
    assert_eq!(u64::from(ino.rdev), md.rdev(), "rdev of {what}");
    assert_eq!(u64::from(ino.inode_number), md.ino(), "ino of {what}");
    assert_eq!(ino.mode(), md.mode(), "mode of {what}");
    assert_eq!(i64::from(ino.mtime), md.mtime(), "mtime of {what}");
    assert_eq!(ino.uid, md.uid(), "uid of {what}");
    assert_eq!(ino.gid, md.gid(), "gid of {what}");
    let mut ours: Vec<(Vec<u8>, Vec<u8>)> = image
        .xattrs(ino)
        .unwrap()
        .into_iter()
        .map(|x| (x.name, x.value))
        .collect();
    ours.sort();
    assert_eq!(ours, xattrs_of(p, false), "xattrs of {what}");
}

#[test]
fn huge_sparse_file_and_seeks() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    fs::create_dir_all(&src).unwrap();
    let size: u64 = (4 << 30) + 12345;
    let marks: Vec<u64> = vec![
        0,
        4096 * 1023,
        4096 * 1024 + 7,
        1 << 30,
        (3 << 30) + 999,
        size - 6,
    ];
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(src.join("huge")).unwrap();
        f.set_len(size).unwrap();
        for &m in &marks {
            f.write_all_at(b"MARK!!", m).unwrap();
        }
    }
    // Also a dense file of more than 1024 blocks, so seeks use block-list checkpoints.
    let dense: Vec<u8> = (0..(6u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    fs::write(src.join("dense"), &dense).unwrap();
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "lz4", "-b", "4096"]);
    let image = open(&img);
    let huge = image.lookup_path(b"huge").unwrap().unwrap();
    assert_eq!(huge.size, size);
    assert!(huge.extended);
    let mut b = [0u8; 6];
    for &m in marks.iter().rev() {
        assert_eq!(image.read(&huge, m, &mut b).unwrap(), 6);
        assert_eq!(&b, b"MARK!!", "mark at {m}");
    }
    let mut z = vec![1u8; 10000];
    assert_eq!(image.read(&huge, 2 << 30, &mut z).unwrap(), 10000);
    assert!(z.iter().all(|&x| x == 0));
    let ino = image.lookup_path(b"dense").unwrap().unwrap();
    assert!(ino.data_block_count() > 1024);
    let mut buf = vec![0u8; 70000];
    for &off in &[
        (6u64 << 20) - 70000,
        5_000_000,
        4096 * 1500 + 1,
        4096 * 1024 - 3,
        17,
        4_194_303,
    ] {
        let n = image.read(&ino, off, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &dense[off as usize..off as usize + n],
            "at {off}"
        );
    }
}

#[test]
fn export_table_and_parents() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    build_tree(&src, 131072, 5);
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "gzip", "-exports"]);
    let image = open(&img);
    assert!(image.superblock().exportable());
    let root = image.root().unwrap();
    assert_eq!(
        root.parent_inode_number(),
        Some(image.superblock().inode_count + 1)
    );
    let mut stack = vec![root];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        for e in image.list_dir(&dir).unwrap() {
            let ino = image.inode(e.inode_ref).unwrap();
            assert_eq!(
                image.inode_ref_by_number(ino.inode_number).unwrap(),
                Some(ino.inode_ref)
            );
            if ino.is_dir() {
                assert_eq!(ino.parent_inode_number(), Some(dir.inode_number));
                stack.push(ino);
            }
            n += 1;
        }
    }
    assert!(n > 40);
    assert_eq!(image.inode_ref_by_number(0).unwrap(), None);
    assert_eq!(image.inode_ref_by_number(u32::MAX).unwrap(), None);
}
