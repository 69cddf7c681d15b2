//! siftool's golden outputs (`internal/app/siftool/testdata`) reproduced by the library.

use squashbox_sif::{Sif, siftool};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The in-repo upstream fixtures (`fixtures/upstream/`); missing ones fail the test.
fn fixtures() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/upstream");
    assert!(p.is_dir(), "in-repo fixtures missing: {}", p.display());
    p
}

/// `fixtures/upstream/apptainer-sif`.
fn root() -> PathBuf {
    fixtures().join("apptainer-sif")
}

/// `TwoGroupsSignedPGP` -> `two-groups-signed-pgp`.
fn kebab(case: &str) -> String {
    let c: Vec<char> = case.chars().collect();
    let mut s = String::new();
    for i in 0..c.len() {
        if c[i].is_ascii_uppercase() && i > 0 {
            let prev_lower = c[i - 1].is_ascii_lowercase();
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev_lower || (c[i - 1].is_ascii_uppercase() && next_lower) {
                s.push('-');
            }
        }
        s.push(c[i].to_ascii_lowercase());
    }
    s
}

fn load(image: &str) -> Sif {
    let f = File::open(root().join("images").join(image)).unwrap();
    Sif::load(&f).unwrap()
}

fn goldens(dir: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("golden").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p: PathBuf| {
            let case = p.file_stem().unwrap().to_string_lossy().into_owned();
            (case, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

fn image_for(case: &str) -> String {
    format!("{}.sif", kebab(case))
}

#[test]
fn header_goldens() {
    for (case, want) in goldens("TestApp_Header") {
        let got = siftool::header(&load(&image_for(&case)));
        assert_eq!(got, want, "header {case}");
    }
}

#[test]
fn list_goldens() {
    for (case, want) in goldens("TestApp_List") {
        let got = siftool::list(&load(&image_for(&case)));
        assert_eq!(got, want, "list {case}");
    }
}

/// Image and object ID of each `TestApp_Info` case (fixtures README).
pub fn info_case(case: &str) -> (String, u32) {
    match case {
        "Time" => ("one-object-time.sif".into(), 1),
        "GenericJSON" | "CryptMessage" | "SBOM" | "OCIRootIndex" | "OCIBlob" => {
            let k = match case {
                "GenericJSON" => "generic-json",
                "CryptMessage" => "crypt-message",
                "SBOM" => "sbom",
                "OCIRootIndex" => "oci-root-index",
                _ => "oci-blob",
            };
            (format!("one-object-{k}.sif"), 1)
        }
        "DataPartitionRaw" => ("two-groups-signed-pgp.sif".into(), 1),
        "DataPartitionSquashFS" => ("two-groups-signed-pgp.sif".into(), 2),
        "DataPartitionEXT3" => ("two-groups-signed-pgp.sif".into(), 3),
        "DataSignature" => ("two-groups-signed-pgp.sif".into(), 4),
        other => panic!("unmapped info case {other}"),
    }
}

#[test]
fn info_goldens() {
    for (case, want) in goldens("TestApp_Info") {
        let (image, id) = info_case(&case);
        let got = siftool::info(&load(&image), id).unwrap();
        assert_eq!(got, want, "info {case}");
    }
}

#[test]
fn dump_goldens() {
    for (case, id) in [("One", 1), ("Two", 2)] {
        let path = root().join("images/one-group.sif");
        let f = File::open(&path).unwrap();
        let sif = Sif::load(&f).unwrap();
        let got = sif.read_data(&f, sif.object(id).unwrap()).unwrap();
        let want =
            std::fs::read(Path::new(&root()).join(format!("golden/TestApp_Dump/{case}.golden")))
                .unwrap();
        assert_eq!(got, want, "dump {case}");
    }
}
