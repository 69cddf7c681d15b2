//! Pack varied trees with mksquashfs (every compressor and the main options) and check that
//! everything read through the API equals the source tree.

mod common;

use common::*;

fn roundtrip(args: &[&str], block: usize) {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    let xa = build_tree(&src, block, 42);
    let img = path_in(&d, "img.sqfs");
    let bs = block.to_string();
    let mut all: Vec<&str> = vec!["-b", &bs];
    all.extend_from_slice(args);
    mksquashfs(&src, &img, &all);
    let image = open(&img);
    if let Some(i) = args.iter().position(|a| *a == "-comp") {
        assert_eq!(image.superblock().compressor.name(), args[i + 1]);
    }
    let n = compare_tree(&image, &src, xa && !args.contains(&"-no-xattrs"));
    assert!(n > 40, "only {n} entries checked");
    // Spot checks that prove the comparison saw the interesting parts.
    let f = image.lookup_path(b"f3_100").unwrap().unwrap();
    if xa && !args.contains(&"-no-xattrs") {
        assert_eq!(image.xattrs(&f).unwrap().len(), 2);
        assert_eq!(
            image.xattr_get(&f, b"user.small").unwrap().as_deref(),
            Some(&b"value"[..])
        );
    }
    if is_root() {
        let c = image.lookup_path(b"dir/chardev").unwrap().unwrap();
        assert_eq!((c.rdev_major(), c.rdev_minor()), (1, 3));
        let b = image.lookup_path(b"dir/blockdev").unwrap().unwrap();
        assert_eq!((b.rdev_major(), b.rdev_minor()), (259, 70000));
        assert_eq!(c.mode() & libc::S_IFMT, libc::S_IFCHR);
    }
    let h = image.lookup_path(b"dir/sub/hard2").unwrap().unwrap();
    assert_eq!(h.nlink, 3);
    assert_eq!(
        h.inode_ref,
        image.lookup_path(b"f5_4096").unwrap().unwrap().inode_ref
    );
    let sp = image.lookup_path(b"sparse").unwrap().unwrap();
    assert_eq!(sp.size, (8 * block) as u64 + 5);
    assert!(image.lookup_path(b"dir/nope").unwrap().is_none());
    assert!(image.lookup_path(b"f3_100/x").unwrap().is_none());
    let st = image.statfs();
    assert_eq!(st.block_size as usize, block);
}

#[test]
fn gzip_default() {
    roundtrip(&["-comp", "gzip"], 131072);
}

#[test]
fn xz_plain_and_bcj() {
    roundtrip(&["-comp", "xz"], 131072);
    roundtrip(&["-comp", "xz", "-Xbcj", "x86,arm"], 131072);
}

#[test]
fn zstd_4k_blocks() {
    roundtrip(&["-comp", "zstd"], 4096);
}

#[test]
fn lz4_and_hc() {
    roundtrip(&["-comp", "lz4"], 131072);
    roundtrip(&["-comp", "lz4", "-Xhc"], 131072);
}

#[test]
fn lzo_1m_blocks() {
    roundtrip(&["-comp", "lzo"], 1 << 20);
}

#[test]
fn lzma_legacy() {
    roundtrip(&["-comp", "lzma"], 131072);
}

#[test]
fn uncompressed_everything() {
    roundtrip(&["-noI", "-noD", "-noF", "-noX"], 131072);
}

#[test]
fn fragment_variants() {
    roundtrip(&["-comp", "gzip", "-no-fragments"], 65536);
    roundtrip(
        &["-comp", "zstd", "-always-use-fragments", "-no-duplicates"],
        131072,
    );
    roundtrip(&["-comp", "lz4", "-tailends", "-exports"], 131072);
}

/// Real x86-64 executables make mksquashfs keep BCJ-filtered xz blocks (it keeps the
/// smallest of each filter and no filter), so this decodes BCJ streams for real. The
/// executable: busybox from the in-repo Apptainer SIF.
#[test]
fn xz_bcj_on_executables() {
    if !mksquashfs_ready(&[]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    std::fs::create_dir_all(&src).unwrap();
    let sif = squashbox_squashfs::Image::open(
        squashbox_fixtures::upstream("apptainer-e2e/busybox_amd64.sif"),
        &squashbox_squashfs::OpenOptions {
            offset: 45056,
            ..Default::default()
        },
    )
    .unwrap();
    let busybox = sif.lookup_path(b"bin/busybox").unwrap().unwrap();
    let elf = read_all(&sif, &busybox, 1 << 20);
    assert_eq!(&elf[..4], b"\x7fELF");
    std::fs::write(src.join("busybox"), &elf).unwrap();
    for filters in ["x86", "x86,arm,armthumb,powerpc,sparc,ia64"] {
        let img = path_in(&d, "img");
        mksquashfs(
            &src,
            &img,
            &["-comp", "xz", "-Xbcj", filters, "-b", "65536"],
        );
        let image = open(&img);
        assert_eq!(compare_tree(&image, &src, false), 2);
    }
}

/// `unsquashfs -lln` (numeric owners) agrees with what the API reports for every path.
#[test]
fn listing_matches_unsquashfs_lln() {
    if !mksquashfs_ready(&["unsquashfs"]) {
        return;
    }
    let d = tempdir();
    let src = path_in(&d, "src");
    build_tree(&src, 131072, 11);
    let img = path_in(&d, "img");
    mksquashfs(&src, &img, &["-comp", "zstd"]);
    let out = std::process::Command::new("unsquashfs")
        .args(["-lln", "-d", "R"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut theirs: Vec<String> = text
        .lines()
        .filter(|l| {
            l.len() > 10
                && matches!(
                    l.as_bytes()[0],
                    b'-' | b'd' | b'l' | b'c' | b'b' | b'p' | b's'
                )
        })
        .map(|l| {
            // mode owner size date time path[ -> target]: drop date and time.
            let f: Vec<&str> = l.split_whitespace().collect();
            let (mode, owner) = (f[0], f[1]);
            let (size, rest) = if f[2].ends_with(',') {
                (format!("{}{}", f[2], f[3]), 6)
            } else {
                (f[2].to_string(), 5)
            };
            format!("{mode} {owner} {size} {}", f[rest..].join(" "))
        })
        .collect();
    let image = open(&img);
    let mut ours = Vec::new();
    let mut stack = vec![(image.root().unwrap(), "R".to_string())];
    while let Some((dir, path)) = stack.pop() {
        ours.push(lln_line(&image, &dir, &path));
        for e in image.list_dir(&dir).unwrap() {
            let p = format!("{path}/{}", String::from_utf8(e.name.clone()).unwrap());
            let ino = image.inode(e.inode_ref).unwrap();
            if ino.is_dir() {
                stack.push((ino, p));
            } else {
                ours.push(lln_line(&image, &ino, &p));
            }
        }
    }
    // Names with spaces split differently; compare on whitespace-normalised lines.
    let norm = |v: &mut Vec<String>| {
        for s in v.iter_mut() {
            *s = s
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace(", ", ",");
        }
        v.sort();
    };
    norm(&mut theirs);
    norm(&mut ours);
    assert_eq!(ours, theirs);
}

fn lln_line(
    image: &squashbox_squashfs::Image,
    ino: &squashbox_squashfs::Inode,
    path: &str,
) -> String {
    use squashbox_squashfs::InodeKind::*;
    let t = match ino.kind {
        Directory => 'd',
        File => '-',
        Symlink => 'l',
        CharDevice => 'c',
        BlockDevice => 'b',
        Fifo => 'p',
        Socket => 's',
    };
    let p = ino.permissions;
    let bit = |m: u16, c: char| if p & m != 0 { c } else { '-' };
    let special = |x: u16, exec: u16, set: char| match (p & x != 0, p & exec != 0) {
        (true, true) => set,
        (true, false) => set.to_ascii_uppercase(),
        (false, true) => 'x',
        (false, false) => '-',
    };
    let mode: String = [
        t,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o4000, 0o100, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o2000, 0o010, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o1000, 0o001, 't'),
    ]
    .iter()
    .collect();
    let size = match ino.kind {
        // unsquashfs 4.5.1 prints `rdev >> 8, rdev & 0xff`, which differs from the kernel's
        // decoding (rdev_major/rdev_minor, checked against a loop mount in special.rs) only
        // for minors above 255.
        CharDevice | BlockDevice => format!("{:>3},{:>3}", ino.rdev >> 8, ino.rdev & 0xff),
        _ => ino.size.to_string(),
    };
    let mut s = format!("{mode} {}/{} {size} {path}", ino.uid, ino.gid);
    if ino.kind == Symlink {
        s += &format!(
            " -> {}",
            String::from_utf8(image.readlink(ino).unwrap()).unwrap()
        );
    }
    s
}
