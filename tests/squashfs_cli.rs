//! `squashbox squashfs info|ls|cat|extract` against real parts: the Apptainer busybox SIF
//! (with and without --offset), kernel loop mounts as the oracle, and error cases.

#[path = "common/cli.rs"]
mod cli;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cli::*;

const BUSYBOX_OFFSET: u64 = 45056;

/// The fixture tree packed once with default options; `None` (a counted skip) without the
/// squashfs tools.
fn default_image() -> Option<&'static Path> {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    if !squashfs_tools_ready() {
        return None;
    }
    Some(IMG.get_or_init(|| {
        let image = fresh("default.sqfs");
        squashbox_fixtures::mksquashfs(fixture_tree(), &image, &[]).expect("mksquashfs");
        image
    }))
}

fn sb(args: &[&OsStr]) -> std::process::Output {
    squashbox(args)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn busybox_sif_lists_and_extracts_at_offset_and_by_sif_detection() {
    let sif = busybox_sif();
    let off = BUSYBOX_OFFSET.to_string();
    let at_offset = squashbox_ok([
        os("squashfs"),
        os("ls"),
        os("-l"),
        os("--offset"),
        os(&off),
        sif.as_os_str(),
    ]);
    if squashbox_fixtures::prereq::require_tools(&["unsquashfs"]) {
        let theirs = unsquashfs_lln(&sif, &["-o", &off]);
        assert!(
            at_offset == theirs,
            "ls -l vs unsquashfs: {}",
            first_diff(&at_offset, &theirs)
        );
    }
    assert!(
        at_offset
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            >= 55
    );
    let detected = squashbox_ok([os("squashfs"), os("ls"), os("-l"), sif.as_os_str()]);
    assert!(
        detected == at_offset,
        "SIF detection: {}",
        first_diff(&detected, &at_offset)
    );

    let by_id = squashbox_ok([
        os("squashfs"),
        os("ls"),
        os("-l"),
        os("--partition"),
        os("4"),
        sif.as_os_str(),
    ]);
    assert!(
        by_id == at_offset,
        "--partition 4: {}",
        first_diff(&by_id, &at_offset)
    );
    for bad in ["1", "9"] {
        let out = sb(&[
            os("squashfs"),
            os("ls"),
            os("--partition"),
            os(bad),
            sif.as_os_str(),
        ]);
        assert_one_line_error(
            &out,
            &format!("--partition {bad} (not a SquashFS partition)"),
        );
    }

    // Read everything: extract at the offset and via detection; both equal.
    let a = fresh("busybox-off");
    let b = fresh("busybox-sif");
    squashbox_ok([
        os("squashfs"),
        os("extract"),
        os("--offset"),
        os(&off),
        sif.as_os_str(),
        a.as_os_str(),
    ]);
    squashbox_ok([
        os("squashfs"),
        os("extract"),
        sif.as_os_str(),
        b.as_os_str(),
    ]);
    let opts = Compare {
        ignore_owner: !is_root(),
        ..Compare::default()
    };
    assert_same_tree(
        &a,
        &b,
        opts,
        "busybox extract with --offset vs SIF detection",
    );
    let busybox = squashbox_ok([
        os("squashfs"),
        os("cat"),
        sif.as_os_str(),
        os("/bin/busybox"),
    ]);
    assert_eq!(&busybox[..4], b"\x7fELF");
    assert_eq!(
        busybox,
        std::fs::read(a.join("bin/busybox")).expect("read busybox")
    );

    // The kernel is the oracle.
    if let Some(mnt) = LoopMount::new(&sif, BUSYBOX_OFFSET) {
        assert_same_tree(
            &mnt.dir,
            &a,
            Compare::default(),
            "busybox: kernel mount vs our extract",
        );
        let kernel_list = list_like_ls(&mnt.dir);
        let ours = squashbox_ok([os("squashfs"), os("ls"), sif.as_os_str()]);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            kernel_list,
            "ls vs kernel mount"
        );
    }
    let info = squashbox_ok([os("squashfs"), os("info"), sif.as_os_str()]);
    let info = String::from_utf8_lossy(&info);
    assert!(
        info.contains("Compression gzip") && info.contains("Number of inodes 55"),
        "{info}"
    );
}

/// Paths under `root` in the order `squashbox squashfs ls` prints them (pre-order, entries
/// sorted bytewise, as SquashFS stores them).
fn list_like_ls(root: &Path) -> String {
    fn walk(abs: &Path, shown: &str, out: &mut String) {
        out.push_str(if shown.is_empty() { "/" } else { shown });
        out.push('\n');
        if std::fs::symlink_metadata(abs).expect("stat").is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(abs)
                .expect("readdir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
            for n in names {
                walk(
                    &abs.join(&n),
                    &format!("{shown}/{}", n.to_string_lossy()),
                    out,
                );
            }
        }
    }
    let mut out = String::new();
    walk(root, "", &mut out);
    out
}

#[test]
fn fixture_image_extract_equals_kernel_mount() {
    let Some(image) = default_image() else { return };
    let Some(mnt) = LoopMount::new(image, 0) else {
        return;
    };
    let dest = fresh("kernel-cmp");
    squashbox_ok([
        os("squashfs"),
        os("extract"),
        image.as_os_str(),
        dest.as_os_str(),
    ]);
    assert_same_tree(
        &mnt.dir,
        &dest,
        Compare::default(),
        "fixture image: kernel mount vs extract",
    );
    assert_eq!(
        String::from_utf8_lossy(&squashbox_ok([os("squashfs"), os("ls"), image.as_os_str()])),
        list_like_ls(&mnt.dir)
    );
    let _ = std::fs::remove_dir_all(&dest);
}

#[test]
fn ls_of_a_path_and_plain_ls_match_unsquashfs() {
    let Some(image) = default_image() else { return };
    // Plain listing: unsquashfs -ls with root "" -> "/".
    let ours = squashbox_ok([os("squashfs"), os("ls"), image.as_os_str()]);
    let theirs = run_ok(
        Command::new("unsquashfs")
            .args(["-d", "", "-ls"])
            .arg(image),
    );
    let theirs = [b"/".as_slice(), &theirs].concat();
    assert!(ours == theirs, "ls: {}", first_diff(&ours, &theirs));
    // A subtree: unsquashfs also prints the ancestors; keep the lines at or under the path.
    let ours = squashbox_ok([
        os("squashfs"),
        os("ls"),
        os("-l"),
        image.as_os_str(),
        os("links/"),
    ]);
    let theirs = run_ok(
        Command::new("unsquashfs")
            .args(["-d", "", "-lln"])
            .arg(image)
            .arg("links"),
    );
    let theirs: Vec<&[u8]> = theirs
        .split(|&b| b == b'\n')
        .filter(|l| l.ends_with(b" /links") || l.windows(8).any(|w| w == b" /links/"))
        .collect();
    let theirs = [theirs.join(&b'\n'), b"\n".to_vec()].concat();
    assert!(
        ours == theirs,
        "ls -l links: {}",
        first_diff(&ours, &theirs)
    );
    // A single file.
    let ours = squashbox_ok([
        os("squashfs"),
        os("ls"),
        image.as_os_str(),
        os("/files/f-00000001"),
    ]);
    assert_eq!(ours, b"/files/f-00000001\n");
}

#[test]
fn cat_reads_files_and_follows_symlinks() {
    let Some(image) = default_image() else { return };
    let tree = fixture_tree();
    for p in [
        "files/f-00000000",
        "files/f-00131073",
        "files/f-06291463",
        "files/holes",
        "names/héllo wörld.txt",
    ] {
        let ours = squashbox_ok([os("squashfs"), os("cat"), image.as_os_str(), os(p)]);
        assert!(
            ours == std::fs::read(tree.join(p)).expect("read"),
            "cat {p}"
        );
    }
    let via_link = squashbox_ok([
        os("squashfs"),
        os("cat"),
        image.as_os_str(),
        os("symlinks/short"),
    ]);
    assert_eq!(
        via_link,
        std::fs::read(tree.join("files/f-00000001")).expect("read")
    );
    let deep = squashbox_ok([
        os("squashfs"),
        os("cat"),
        image.as_os_str(),
        os(
            "symlinks/to-dir/l00/../l00/l01/l02/l03/l04/l05/l06/l07/l08/l09/l10/l11/l12/l13/l14/l15/l16/l17/l18/l19/l20/l21/l22/l23/l24/l25/l26/l27/l28/l29/l30/l31/l32/l33/l34/l35/l36/l37/l38/l39/leaf.txt",
        ),
    ]);
    assert_eq!(deep, b"bottom\n");
}

#[test]
fn extract_of_a_path_keeps_only_it_and_its_parents() {
    let Some(image) = default_image() else { return };
    let dest = fresh("partial");
    squashbox_ok([
        os("squashfs"),
        os("extract"),
        image.as_os_str(),
        dest.as_os_str(),
        os("links/sub"),
    ]);
    let top: Vec<_> = std::fs::read_dir(&dest)
        .expect("readdir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(top, vec![OsStr::new("links").to_owned()]);
    let sub: Vec<_> = std::fs::read_dir(dest.join("links"))
        .expect("readdir")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(sub, vec![OsStr::new("sub").to_owned()]);
    assert_eq!(
        std::fs::read(dest.join("links/sub/hl3-c")).expect("read"),
        std::fs::read(fixture_tree().join("links/hl3-a")).expect("read")
    );
}

#[test]
fn errors_are_one_line_and_never_panic() {
    let missing = fresh("missing.sqfs");
    let out = sb(&[os("squashfs"), os("ls"), missing.as_os_str()]);
    assert_one_line_error(&out, "missing image");

    let garbage = fresh("garbage.sqfs");
    std::fs::write(&garbage, vec![0x5au8; 10000]).expect("write");
    for cmd in ["ls", "info"] {
        let out = sb(&[os("squashfs"), os(cmd), garbage.as_os_str()]);
        assert_one_line_error(&out, &format!("{cmd} on garbage"));
    }
    let out = sb(&[
        os("squashfs"),
        os("extract"),
        garbage.as_os_str(),
        fresh("g-out").as_os_str(),
    ]);
    assert_one_line_error(&out, "extract of garbage");

    let Some(image) = default_image() else { return };
    let out = sb(&[
        os("squashfs"),
        os("cat"),
        image.as_os_str(),
        os("no/such/file"),
    ]);
    assert_one_line_error(&out, "cat of a missing path");
    let out = sb(&[
        os("squashfs"),
        os("ls"),
        image.as_os_str(),
        os("/files/nope"),
    ]);
    assert_one_line_error(&out, "ls of a missing path");
    let out = sb(&[os("squashfs"), os("cat"), image.as_os_str(), os("files")]);
    assert_one_line_error(&out, "cat of a directory");
    let out = sb(&[
        os("squashfs"),
        os("extract"),
        image.as_os_str(),
        fresh("x").as_os_str(),
        os("nope"),
    ]);
    assert_one_line_error(&out, "extract of a missing path");
    let out = sb(&[
        os("squashfs"),
        os("extract"),
        image.as_os_str(),
        fresh("x").as_os_str(),
        os("symlinks/to-dir/l00"),
    ]);
    assert_one_line_error(&out, "extract through a symlink");
    let out = sb(&[
        os("squashfs"),
        os("ls"),
        os("--offset"),
        os("4096"),
        image.as_os_str(),
    ]);
    assert_one_line_error(&out, "wrong offset");
    let out = sb(&[
        os("squashfs"),
        os("ls"),
        os("--partition"),
        os("3"),
        image.as_os_str(),
    ]);
    assert_one_line_error(&out, "--partition on a non-SIF");
    // A non-empty destination is refused.
    let dest = fresh("nonempty");
    std::fs::create_dir(&dest).expect("mkdir");
    std::fs::write(dest.join("keep"), b"x").expect("write");
    let out = sb(&[
        os("squashfs"),
        os("extract"),
        image.as_os_str(),
        dest.as_os_str(),
    ]);
    assert_one_line_error(&out, "non-empty destination");
    assert_eq!(std::fs::read(dest.join("keep")).expect("read"), b"x");
    // A truncated image: the error names the problem; no panic.
    let bytes = std::fs::read(image).expect("read");
    let cut = fresh("cut.sqfs");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let out = sb(&[os("squashfs"), os("ls"), cut.as_os_str()]);
    assert_one_line_error(&out, "truncated image");
    // A corrupt metadata block: garbage over the start of the inode table.
    let mut bad = bytes.clone();
    let inode_table = u64::from_le_bytes(bytes[64..72].try_into().expect("8 bytes")) as usize;
    bad[inode_table..inode_table + 64].fill(0xff);
    let corrupt = fresh("corrupt.sqfs");
    std::fs::write(&corrupt, &bad).expect("write");
    // (-l: plain ls reads only directory inodes, which mksquashfs writes last.)
    let out = sb(&[os("squashfs"), os("ls"), os("-l"), corrupt.as_os_str()]);
    assert_one_line_error(&out, "corrupt inode table (ls)");
    let out = sb(&[
        os("squashfs"),
        os("extract"),
        corrupt.as_os_str(),
        fresh("c").as_os_str(),
    ]);
    assert_one_line_error(&out, "corrupt inode table (extract)");
}

#[test]
fn tree_comparer_sees_every_kind_of_difference() {
    let opts = squashbox_fixtures::TreeOptions {
        big_dir_entries: 3,
        ..Default::default()
    };
    let (a, b) = (fresh("cmp-a"), fresh("cmp-b"));
    squashbox_fixtures::generate_tree(&a, &opts).expect("tree a");
    squashbox_fixtures::generate_tree(&b, &opts).expect("tree b");
    assert_eq!(
        compare_trees(&a, &b, Compare::default()),
        Vec::<String>::new()
    );
    use std::os::unix::fs::PermissionsExt;
    let f = b.join("files/f-00000511");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(b.join("files/f-00004096"), vec![b'x'; 4096]).expect("write");
    std::fs::remove_file(b.join("links/hl2-a")).expect("rm");
    std::fs::copy(b.join("files/hl2-b"), b.join("links/hl2-a")).expect("copy");
    std::fs::remove_file(b.join("symlinks/short")).expect("rm");
    std::os::unix::fs::symlink("elsewhere", b.join("symlinks/short")).expect("symlink");
    let diffs = compare_trees(&a, &b, Compare::default()).join("\n");
    for what in [
        "f-00000511",
        "f-00004096",
        "hard-link groups",
        "symlinks/short",
    ] {
        assert!(diffs.contains(what), "{what} not reported in:\n{diffs}");
    }
}
