//! `squashbox sif new|add|del|setprim`: byte-identical rebuilds of the upstream corpus, a
//! round trip with real SquashFS and ext3 images, and rejected edits that leave the file
//! untouched.

#[path = "common/sif.rs"]
mod common;

use common::*;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn args<'a>(v: &'a [&'a OsStr]) -> &'a [&'a OsStr] {
    v
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn assert_same_file(got: &Path, want: &Path) {
    let (g, w) = (std::fs::read(got).unwrap(), std::fs::read(want).unwrap());
    assert_eq!(g.len(), w.len(), "{}: length", want.display());
    if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
        panic!("{}: first difference at byte {i}", want.display());
    }
}

/// Rebuild the corpus images that siftool's flags can express (gen_sifs.go steps; the Go
/// library's default group 1 is `--groupid 1` here).
#[test]
fn rebuild_corpus_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.bin");
    std::fs::write(&raw, [0xfa, 0xce, 0xfe, 0xed]).unwrap();
    let json = dir.path().join("data.json");
    std::fs::write(&json, b"{}").unwrap();
    let new = |name: &str| {
        let p = dir.path().join(name);
        sif_ok(&[os("new"), os("--deterministic"), p.as_os_str()]);
        p
    };
    let add = |img: &Path, flags: &[&str], obj: &Path| {
        let mut a: Vec<&OsStr> = vec![os("add")];
        a.extend(flags.iter().map(|f| os(f)));
        a.push(img.as_os_str());
        a.push(obj.as_os_str());
        sif_ok(args(&a));
    };
    let raw_part = [
        "--datatype",
        "4",
        "--partfs",
        "4",
        "--parttype",
        "1",
        "--partarch",
        "1",
        "--groupid",
        "1",
    ];
    let prim = [
        "--datatype",
        "4",
        "--partfs",
        "1",
        "--parttype",
        "2",
        "--partarch",
        "1",
        "--groupid",
        "1",
    ];
    let ext3 = [
        "--datatype",
        "4",
        "--partfs",
        "2",
        "--parttype",
        "1",
        "--partarch",
        "2",
        "--groupid",
        "2",
    ];

    let p = new("empty.sif");
    assert_same_file(&p, &corpus("empty.sif"));

    let p = new("one-group.sif");
    add(&p, &raw_part, &raw);
    add(&p, &prim, &input("root.squashfs"));
    assert_same_file(&p, &corpus("one-group.sif"));

    let p = new("two-groups.sif");
    add(&p, &raw_part, &raw);
    add(&p, &prim, &input("root.squashfs"));
    add(&p, &ext3, &input("root.ext3"));
    assert_same_file(&p, &corpus("two-groups.sif"));

    let p = new("one-object-generic-json.sif");
    add(
        &p,
        &[
            "--datatype",
            "6",
            "--groupid",
            "1",
            "--filename",
            "data.json",
        ],
        &json,
    );
    assert_same_file(&p, &corpus("one-object-generic-json.sif"));

    let p = new("one-object-sbom.sif");
    add(
        &p,
        &[
            "--datatype",
            "9",
            "--groupid",
            "1",
            "--sbomformat",
            "cyclonedx-json",
        ],
        &input("sbom.cdx.json"),
    );
    assert_same_file(&p, &corpus("one-object-sbom.sif"));

    let p = new("one-object-oci-root-index.sif");
    add(
        &p,
        &["--datatype", "10", "--groupid", "1"],
        &input("index.json"),
    );
    assert_same_file(&p, &corpus("one-object-oci-root-index.sif"));

    let p = new("one-object-oci-blob.sif");
    add(
        &p,
        &["--datatype", "11", "--groupid", "1"],
        &input("oci-config.json"),
    );
    assert_same_file(&p, &corpus("one-object-oci-blob.sif"));
}

#[test]
fn new_image_is_random_and_timestamped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.sif");
    sif_ok(&[os("new"), p.as_os_str()]);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 32176);
    let h = sif_text(&[os("header"), p.as_os_str()]);
    assert!(h.contains("\nID:                 "), "{h}");
    assert!(h.contains("Created At:         20"), "{h}");
    assert!(h.contains("Descriptors Free:   48\n"), "{h}");
    let p2 = dir.path().join("m.sif");
    sif_ok(&[os("new"), p2.as_os_str()]);
    let h2 = sif_text(&[os("header"), p2.as_os_str()]);
    let id = |h: &str| {
        h.lines()
            .find(|l| l.starts_with("ID:"))
            .unwrap()
            .to_string()
    };
    assert_ne!(id(&h), id(&h2));
}

fn make_squashfs(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let src = dir.join(format!("{name}.d"));
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hello"), content).unwrap();
    let out = dir.join(name);
    squashbox_fixtures::mksquashfs(&src, &out, &["-comp", "gzip"]).unwrap();
    out
}

fn list_rows(img: &Path) -> Vec<String> {
    sif_text(&[os("list"), img.as_os_str()])
        .lines()
        .skip(3)
        .map(str::to_string)
        .collect()
}

/// Create, add a SquashFS primary and an ext3 overlay (group 1), delete, setprim; `list`
/// after each step; the partition bytes come back unchanged through `dump`.
#[test]
fn round_trip_with_real_filesystems() {
    if !squashbox_fixtures::prereq::require_tools(&["mksquashfs", "mkfs.ext3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sq1 = make_squashfs(d, "root.sqfs", "first\n");
    let sq2 = make_squashfs(d, "other.sqfs", "second\n");
    let ext3 = d.join("overlay.img");
    std::fs::write(&ext3, vec![0u8; 4 << 20]).unwrap();
    let st = Command::new("mkfs.ext3")
        .args(["-q", "-F"])
        .arg(&ext3)
        .status()
        .unwrap();
    assert!(st.success());
    let img = d.join("rt.sif");
    let p = img.as_os_str();

    sif_ok(&[os("new"), p]);
    assert!(list_rows(&img).is_empty());

    let len1 = std::fs::metadata(&sq1).unwrap().len();
    sif_ok(&[
        os("add"),
        os("--datatype"),
        os("4"),
        os("--partfs"),
        os("1"),
        os("--parttype"),
        os("2"),
        os("--partarch"),
        os("2"),
        os("--groupid"),
        os("1"),
        p,
        sq1.as_os_str(),
    ]);
    let rows = list_rows(&img);
    assert_eq!(
        rows,
        vec![format!(
            "1    |1       |NONE    {:<26} |FS (Squashfs/*System/amd64)",
            format!("|32768-{}", 32768 + len1)
        )]
    );
    assert!(sif_text(&[os("header"), p]).contains("Primary Architecture: amd64\n"));

    // The overlay, as the Apptainer user docs add it.
    sif_ok(&[
        os("add"),
        os("--datatype"),
        os("4"),
        os("--partfs"),
        os("2"),
        os("--parttype"),
        os("4"),
        os("--partarch"),
        os("2"),
        os("--groupid"),
        os("1"),
        p,
        ext3.as_os_str(),
    ]);
    let rows = list_rows(&img);
    assert_eq!(rows.len(), 2);
    let ext3_off = (32768 + len1).div_ceil(4096) * 4096;
    assert_eq!(
        rows[1],
        format!(
            "2    |1       |NONE    {:<26} |FS (Ext3/Overlay/amd64)",
            format!("|{ext3_off}-{}", ext3_off + (4 << 20))
        )
    );
    let f = std::fs::File::open(&img).unwrap();
    let sif = squashbox_sif::Sif::load(&f).unwrap();
    let overlays = sif.overlay_partitions();
    assert_eq!(overlays.len(), 1);
    assert_eq!((overlays[0].id, overlays[0].offset), (2, ext3_off));
    // mkfs.ext3's output passes Apptainer's strict ext3 check.
    assert_eq!(
        squashbox_sif::probe_filesystem(&f, &overlays[0]).unwrap(),
        squashbox_sif::ProbedFs::Ext3
    );

    kernel_mount_oracle(&img, ext3_off, 4 << 20);

    // A definition file (no group), then its deletion.
    let def = d.join("recipe.def");
    std::fs::write(&def, "Bootstrap: scratch\n").unwrap();
    sif_ok(&[
        os("add"),
        os("--datatype"),
        os("1"),
        os("--filename"),
        os("recipe.def"),
        p,
        def.as_os_str(),
    ]);
    let rows = list_rows(&img);
    assert_eq!(rows.len(), 3);
    assert!(
        rows[2].starts_with("3    |NONE    |NONE    |"),
        "{}",
        rows[2]
    );
    assert!(rows[2].ends_with("|Def.FILE"));
    sif_ok(&[os("del"), os("3"), p]);
    assert_eq!(list_rows(&img).len(), 2);
    assert!(sif_text(&[os("header"), p]).contains("Descriptors Free:     46\n"));

    // A second SquashFS as a System partition reuses the free slot 3, then becomes primary.
    sif_ok(&[
        os("add"),
        os("--datatype"),
        os("4"),
        os("--partfs"),
        os("1"),
        os("--parttype"),
        os("1"),
        os("--partarch"),
        os("4"),
        os("--groupid"),
        os("1"),
        p,
        sq2.as_os_str(),
    ]);
    let rows = list_rows(&img);
    assert!(
        rows[2].starts_with("3    |1       |NONE    |"),
        "{}",
        rows[2]
    );
    assert!(rows[2].ends_with("|FS (Squashfs/System/arm64)"));
    sif_ok(&[os("setprim"), os("3"), p]);
    let rows = list_rows(&img);
    assert!(
        rows[0].ends_with("|FS (Squashfs/System/amd64)"),
        "{}",
        rows[0]
    );
    assert!(
        rows[2].ends_with("|FS (Squashfs/*System/arm64)"),
        "{}",
        rows[2]
    );
    assert!(sif_text(&[os("header"), p]).contains("Primary Architecture: arm64\n"));

    // Every partition's bytes come back unchanged.
    for (id, src) in [("1", &sq1), ("2", &ext3), ("3", &sq2)] {
        let got = sif_ok(&[os("dump"), os(id), p]);
        assert!(got == std::fs::read(src).unwrap(), "object {id} differs");
    }
    // And the embedded SquashFS is readable in place by unsquashfs at the listed offset.
    if squashbox_fixtures::prereq::require_tools(&["unsquashfs"]) {
        let out = Command::new("unsquashfs")
            .args(["-o", "32768", "-l"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("etc/hello"));
    }
}

/// Rejected edits exit non-zero with one line and leave the image byte for byte as it was.
#[test]
fn rejected_edits_leave_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let img = writable_copy(&corpus("one-group.sif"), dir.path());
    let before = std::fs::read(&img).unwrap();
    let p = img.as_os_str();
    let sq = input("root.squashfs");
    let long_name = "n".repeat(129);
    let cases: Vec<Vec<&OsStr>> = vec![
        // A second primary partition.
        vec![
            os("add"),
            os("--datatype"),
            os("4"),
            os("--partfs"),
            os("1"),
            os("--parttype"),
            os("2"),
            os("--partarch"),
            os("2"),
            p,
            sq.as_os_str(),
        ],
        // Partition flags missing.
        vec![os("add"), os("--datatype"), os("4"), p, sq.as_os_str()],
        // Unknown data type, arch, hash, fingerprint, SBOM format.
        vec![os("add"), os("--datatype"), os("12"), p, sq.as_os_str()],
        vec![
            os("add"),
            os("--datatype"),
            os("4"),
            os("--partfs"),
            os("1"),
            os("--parttype"),
            os("1"),
            os("--partarch"),
            os("99"),
            p,
            sq.as_os_str(),
        ],
        vec![
            os("add"),
            os("--datatype"),
            os("5"),
            os("--signhash"),
            os("9"),
            os("--signentity"),
            os("433FE984155206BD962725E20E8713472A879943"),
            p,
            sq.as_os_str(),
        ],
        vec![
            os("add"),
            os("--datatype"),
            os("5"),
            os("--signhash"),
            os("1"),
            os("--signentity"),
            os("XYZ"),
            p,
            sq.as_os_str(),
        ],
        vec![
            os("add"),
            os("--datatype"),
            os("9"),
            os("--sbomformat"),
            os("nope"),
            p,
            sq.as_os_str(),
        ],
        // A name longer than 128 bytes, a missing payload.
        vec![
            os("add"),
            os("--datatype"),
            os("6"),
            os("--filename"),
            os(&long_name),
            p,
            sq.as_os_str(),
        ],
        vec![
            os("add"),
            os("--datatype"),
            os("6"),
            p,
            os("/nonexistent/payload"),
        ],
        // The image added to itself.
        vec![os("add"), os("--datatype"), os("7"), p, p],
        // Unknown IDs, setprim on a non-System partition.
        vec![os("del"), os("9"), p],
        vec![os("setprim"), os("7"), p],
        vec![os("info"), os("3"), p],
        vec![os("dump"), os("0"), p],
    ];
    for c in &cases {
        let err = sif_err(c);
        assert_eq!(err.trim_end().lines().count(), 1, "{c:?}: {err}");
        assert!(
            std::fs::read(&img).unwrap() == before,
            "{c:?} modified the image"
        );
    }
    // A malformed ID is a clap usage error (exit 2).
    let out = sif(&[os("info"), os("notanumber"), p]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: invalid value 'notanumber'"));
    // setprim on the primary itself is a no-op, as in siftool.
    sif_ok(&[os("setprim"), os("2"), p]);
    assert!(std::fs::read(&img).unwrap() == before);
}

/// As root, the kernel mounts the embedded ext3 overlay in place (loop device with offset).
fn kernel_mount_oracle(img: &Path, offset: u64, size: u64) {
    if !squashbox_fixtures::prereq::require_root("a kernel loop mount of the embedded ext3") {
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args(["-t", "ext3", "-o"])
        .arg(format!("loop,ro,offset={offset},sizelimit={size}"))
        .arg(img)
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "kernel refused the embedded ext3 at offset {offset}"
    );
    let lost_found = mnt.path().join("lost+found").is_dir();
    let st = Command::new("umount").arg(mnt.path()).status().unwrap();
    assert!(st.success());
    assert!(lost_found, "embedded ext3 has no lost+found");
}
