//! `squashbox sif header|list|info|dump` reproduce siftool's golden outputs byte for byte,
//! and read Apptainer's own busybox images.

#[path = "common/sif.rs"]
mod common;

use common::*;
use std::path::PathBuf;

/// `TwoGroupsSignedPGP` -> `two-groups-signed-pgp` (acronyms stay together).
fn kebab(case: &str) -> String {
    let c: Vec<char> = case.chars().collect();
    let mut s = String::new();
    for i in 0..c.len() {
        if c[i].is_ascii_uppercase() && i > 0 {
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if c[i - 1].is_ascii_lowercase() || (c[i - 1].is_ascii_uppercase() && next_lower) {
                s.push('-');
            }
        }
        s.push(c[i].to_ascii_lowercase());
    }
    s
}

fn goldens(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(fixtures().join("apptainer-sif/golden").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p: PathBuf| {
            let case = p.file_stem().unwrap().to_string_lossy().into_owned();
            (case, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no goldens in {dir}");
    v
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn header_and_list_goldens() {
    for (dir, cmd) in [("TestApp_Header", "header"), ("TestApp_List", "list")] {
        for (case, want) in goldens(dir) {
            let image = corpus(&format!("{}.sif", kebab(&case)));
            let got = sif_ok(&[cmd.as_ref(), image.as_os_str()]);
            assert_eq!(show(&got), show(&want), "{cmd} {case}");
        }
    }
}

fn info_case(case: &str) -> (&'static str, &'static str) {
    match case {
        "Time" => ("one-object-time.sif", "1"),
        "GenericJSON" => ("one-object-generic-json.sif", "1"),
        "CryptMessage" => ("one-object-crypt-message.sif", "1"),
        "SBOM" => ("one-object-sbom.sif", "1"),
        "OCIRootIndex" => ("one-object-oci-root-index.sif", "1"),
        "OCIBlob" => ("one-object-oci-blob.sif", "1"),
        "DataPartitionRaw" => ("two-groups-signed-pgp.sif", "1"),
        "DataPartitionSquashFS" => ("two-groups-signed-pgp.sif", "2"),
        "DataPartitionEXT3" => ("two-groups-signed-pgp.sif", "3"),
        "DataSignature" => ("two-groups-signed-pgp.sif", "4"),
        other => panic!("unmapped info case {other}"),
    }
}

#[test]
fn info_goldens() {
    for (case, want) in goldens("TestApp_Info") {
        let (image, id) = info_case(&case);
        let got = sif_ok(&["info".as_ref(), id.as_ref(), corpus(image).as_os_str()]);
        assert_eq!(show(&got), show(&want), "info {case}");
    }
}

#[test]
fn dump_goldens() {
    for (case, want) in goldens("TestApp_Dump") {
        let id = match case.as_str() {
            "One" => "1",
            "Two" => "2",
            other => panic!("unmapped dump case {other}"),
        };
        let got = sif_ok(&[
            "dump".as_ref(),
            id.as_ref(),
            corpus("one-group.sif").as_os_str(),
        ]);
        assert!(
            got == want,
            "dump {case}: {} bytes vs {}",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn busybox_amd64_lists_five_objects() {
    let got = sif_text(&["list".as_ref(), e2e("busybox_amd64.sif").as_os_str()]);
    let want = "\
------------------------------------------------------------------------------
ID   |GROUP   |LINK    |SIF POSITION (start-end)  |TYPE
------------------------------------------------------------------------------
1    |1       |NONE    |32768-32807               |Def.FILE
2    |1       |NONE    |36864-38760               |JSON.Generic
3    |1       |NONE    |40960-41050               |JSON.Generic
4    |1       |NONE    |45056-790528              |FS (Squashfs/*System/amd64)
5    |NONE    |1   (G) |790528-792293             |Signature (SHA-256)
";
    assert_eq!(got, want);
    let info = sif_text(&[
        "info".as_ref(),
        "4".as_ref(),
        e2e("busybox_amd64.sif").as_os_str(),
    ]);
    assert!(info.contains("  Offset:           45056\n"), "{info}");
    assert!(info.contains("  Size:             745472\n"), "{info}");
    assert!(
        info.contains("  Name:             squashfs-275937245\n"),
        "{info}"
    );
    // The dumped partition is the SquashFS image itself.
    let part = sif_ok(&[
        "dump".as_ref(),
        "4".as_ref(),
        e2e("busybox_amd64.sif").as_os_str(),
    ]);
    assert_eq!(part.len(), 745_472);
    assert_eq!(&part[..4], b"hsqs");
    let whole = std::fs::read(e2e("busybox_amd64.sif")).unwrap();
    assert!(whole[45056..45056 + 745_472] == part[..]);
}

#[test]
fn busybox_arm64_is_reported_arm64() {
    let h = sif_text(&["header".as_ref(), e2e("busybox_arm64.sif").as_os_str()]);
    assert!(h.contains("Primary Architecture: arm64\n"), "{h}");
    assert!(h.contains("Data Offset:          32768\n"), "{h}");
    let l = sif_text(&["list".as_ref(), e2e("busybox_arm64.sif").as_os_str()]);
    assert!(l.contains("|FS (Squashfs/*System/arm64)\n"), "{l}");
}
