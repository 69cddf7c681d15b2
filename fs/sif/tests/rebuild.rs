//! Byte-identical rebuilds of the upstream corpus (`test/images/gen_sifs.go` steps) through
//! the library API.

use squashbox_sif::{
    Arch, CreateOptions, DataType, FormatType, FsType, MessageType, Metadata, ObjectData,
    ObjectInput, PartType, SbomFormat, create,
};
use std::path::PathBuf;

/// The in-repo upstream fixtures (`fixtures/upstream/`); missing ones fail the test.
fn upstream() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/upstream");
    assert!(p.is_dir(), "in-repo fixtures missing: {}", p.display());
    p
}

/// `fixtures/upstream/apptainer-sif`.
fn fixtures() -> PathBuf {
    upstream().join("apptainer-sif")
}

fn input(name: &str) -> ObjectData {
    ObjectData::File(fixtures().join("input").join(name))
}

fn generic_json() -> ObjectInput {
    let mut o = ObjectInput::new(DataType::GENERIC_JSON, ObjectData::Bytes(b"{}".to_vec()));
    o.name = "data.json".into();
    o
}

fn part(data: ObjectData, fs: FsType, part: PartType, arch: &str) -> ObjectInput {
    let mut o = ObjectInput::new(DataType::PARTITION, data);
    o.metadata = Metadata::Partition {
        fs,
        part,
        arch: Arch::from_go_name(arch).unwrap(),
    };
    o
}

fn part_system() -> ObjectInput {
    part(
        ObjectData::Bytes(vec![0xfa, 0xce, 0xfe, 0xed]),
        FsType::RAW,
        PartType::SYSTEM,
        "386",
    )
}

fn part_prim_sys() -> ObjectInput {
    part(
        input("root.squashfs"),
        FsType::SQUASH,
        PartType::PRIM_SYS,
        "386",
    )
}

fn part_system_group2() -> ObjectInput {
    let mut o = part(input("root.ext3"), FsType::EXT3, PartType::SYSTEM, "amd64");
    o.group = 2;
    o
}

fn check(image: &str, mut opts: CreateOptions, objects: Vec<ObjectInput>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(image);
    opts.deterministic = true;
    create(&out, &opts, objects).unwrap();
    let got = std::fs::read(&out).unwrap();
    let want = std::fs::read(fixtures().join("images").join(image)).unwrap();
    assert_eq!(got.len(), want.len(), "{image}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("{image}: first difference at byte {i}");
    }
}

#[test]
fn rebuild_empty_images() {
    check("empty.sif", CreateOptions::default(), vec![]);
    let id = [
        0x3f, 0xa8, 0x02, 0xcc, 0x35, 0x8b, 0x45, 0xe3, 0xbc, 0xc0, 0x69, 0xdc, 0x7a, 0x45, 0xf9,
        0xf8,
    ];
    check(
        "empty-id.sif",
        CreateOptions {
            id: Some(id),
            ..Default::default()
        },
        vec![],
    );
    check(
        "empty-launch-script.sif",
        CreateOptions {
            launch_script: "#!/usr/bin/env run-script\n".into(),
            ..Default::default()
        },
        vec![],
    );
}

#[test]
fn rebuild_one_object_images() {
    check(
        "one-object-time.sif",
        CreateOptions {
            time: Some(1_593_475_316),
            ..Default::default()
        },
        vec![generic_json()],
    );
    check(
        "one-object-generic-json.sif",
        CreateOptions::default(),
        vec![generic_json()],
    );
    let mut crypt = ObjectInput::new(
        DataType::CRYPTO_MESSAGE,
        ObjectData::Bytes(vec![0xfe, 0xfe, 0xf0, 0xf0]),
    );
    crypt.metadata = Metadata::CryptoMessage {
        format: FormatType::OPENPGP,
        message: MessageType::CLEAR_SIGNATURE,
    };
    check(
        "one-object-crypt-message.sif",
        CreateOptions::default(),
        vec![crypt],
    );
    let mut sbom = ObjectInput::new(DataType::SBOM, input("sbom.cdx.json"));
    sbom.metadata = Metadata::Sbom(SbomFormat::from_name("cyclonedx-json").unwrap());
    check("one-object-sbom.sif", CreateOptions::default(), vec![sbom]);
    check(
        "one-object-oci-root-index.sif",
        CreateOptions::default(),
        vec![ObjectInput::new(
            DataType::OCI_ROOT_INDEX,
            input("index.json"),
        )],
    );
    check(
        "one-object-oci-blob.sif",
        CreateOptions::default(),
        vec![ObjectInput::new(
            DataType::OCI_BLOB,
            input("oci-config.json"),
        )],
    );
}

#[test]
fn rebuild_partition_images() {
    check(
        "one-group.sif",
        CreateOptions::default(),
        vec![part_system(), part_prim_sys()],
    );
    check(
        "two-groups.sif",
        CreateOptions::default(),
        vec![part_system(), part_prim_sys(), part_system_group2()],
    );
}
