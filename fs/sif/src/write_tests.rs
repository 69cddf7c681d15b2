//! Unit tests of the writer's own choices: the random image UUID and the OCI digests.

use super::*;
use squashbox_fixtures::prereq;

fn load(path: &Path) -> Sif {
    Sif::load(&File::open(path).unwrap()).unwrap()
}

fn blob(data: ObjectData) -> ObjectInput {
    ObjectInput::new(DataType::OCI_BLOB, data)
}

#[test]
fn new_images_get_distinct_v4_ids_shown_hyphenated() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sif"), dir.path().join("b.sif"));
    create(&a, &CreateOptions::default(), vec![]).unwrap();
    create(&b, &CreateOptions::default(), vec![]).unwrap();
    let (ha, hb) = (load(&a).header, load(&b).header);
    assert_ne!(ha.id, hb.id);
    assert_eq!(ha.id[6] >> 4, 4, "version nibble of {:02x?}", ha.id);
    assert_eq!(ha.id[8] >> 6, 0b10, "RFC 4122 variant of {:02x?}", ha.id);
    // `siftool header` prints the ID as lowercase 8-4-4-4-12 hex.
    let hex: String = ha.id.iter().map(|x| format!("{x:02x}")).collect();
    let want = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let text = crate::siftool::header(&load(&a));
    assert!(text.contains(&want), "{want} not in:\n{text}");
}

#[test]
fn explicit_and_deterministic_ids_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.sif");
    let id = [
        0x3f, 0xa8, 0x02, 0xcc, 0x35, 0x8b, 0x45, 0xe3, 0xbc, 0xc0, 0x69, 0xdc, 0x7a, 0x45, 0xf9,
        0xf8,
    ];
    let opts = CreateOptions {
        id: Some(id),
        ..CreateOptions::default()
    };
    create(&p, &opts, vec![]).unwrap();
    assert_eq!(load(&p).header.id, id);
    let text = crate::siftool::header(&load(&p));
    assert!(
        text.contains("3fa802cc-358b-45e3-bcc0-69dc7a45f9f8"),
        "{text}"
    );
    std::fs::remove_file(&p).unwrap();
    let opts = CreateOptions {
        deterministic: true,
        ..CreateOptions::default()
    };
    create(&p, &opts, vec![]).unwrap();
    assert_eq!(load(&p).header.id, [0; 16]);
}

#[test]
fn oci_digests_match_fips_vectors() {
    // FIPS 180-2 appendix B: "abc" and one million 'a'.
    let dir = tempfile::tempdir().unwrap();
    let million = dir.path().join("million-a");
    std::fs::write(&million, vec![b'a'; 1_000_000]).unwrap();
    let p = dir.path().join("oci.sif");
    let objects = vec![
        blob(ObjectData::Bytes(b"abc".to_vec())),
        blob(ObjectData::File(million)),
        blob(ObjectData::Bytes(Vec::new())),
    ];
    create(&p, &CreateOptions::default(), objects).unwrap();
    let digests: Vec<String> = load(&p).objects().filter_map(|d| d.oci_digest()).collect();
    assert_eq!(
        digests,
        [
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ]
    );
}

#[test]
fn streamed_digest_across_copy_buffers_matches_sha256sum() {
    if !prereq::require_tools(&["sha256sum"]) {
        return;
    }
    // Over three 1 MiB copy buffers and not a multiple of the 64-byte block.
    let data: Vec<u8> = (0..3 * (1u32 << 20) + 77)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("blob");
    std::fs::write(&src, &data).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "sha256sum failed: {out:?}");
    let want = String::from_utf8(out.stdout).unwrap();
    let want = want.split_whitespace().next().unwrap();
    let p = dir.path().join("oci.sif");
    create(&p, &CreateOptions::default(), vec![]).unwrap();
    let img = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    let id = add_object(&img, blob(ObjectData::File(src)), &EditOptions::default()).unwrap();
    let sif = load(&p);
    let d = sif.object(id).unwrap();
    assert_eq!(d.oci_digest().unwrap(), format!("sha256:{want}"));
    assert_eq!(sif.read_data(&img, d).unwrap(), data);
}
