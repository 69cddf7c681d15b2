//! Writer semantics: add, delete (zero, compact), set-primary, deterministic times, capacity,
//! failed writes leaving the file untouched, and the selection helpers on edited images.

use squashbox_sif::{
    Arch, CreateOptions, DataType, DeleteOptions, EditOptions, Error, FsType, GO_ZERO_TIME, Link,
    Metadata, ObjectData, ObjectInput, PartType, Sif, add_object, create, delete_object,
    set_primary,
};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

fn rw(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(p).unwrap()
}

fn load(p: &Path) -> Sif {
    Sif::load(&File::open(p).unwrap()).unwrap()
}

fn part(bytes: &[u8], fs: FsType, pt: PartType, arch: &str, group: u32) -> ObjectInput {
    let mut o = ObjectInput::new(DataType::PARTITION, ObjectData::Bytes(bytes.to_vec()));
    o.metadata = Metadata::Partition {
        fs,
        part: pt,
        arch: Arch::from_go_name(arch).unwrap(),
    };
    o.group = group;
    o
}

fn new_image(dir: &Path, det: bool, objects: Vec<ObjectInput>) -> PathBuf {
    let p = dir.join("x.sif");
    let opts = CreateOptions {
        deterministic: det,
        ..Default::default()
    };
    create(&p, &opts, objects).unwrap();
    p
}

#[test]
fn add_places_aligned_and_unaligned_objects() {
    let dir = tempfile::tempdir().unwrap();
    let p = new_image(dir.path(), true, vec![]);
    let f = rw(&p);
    let mut j = ObjectInput::new(DataType::GENERIC_JSON, ObjectData::Bytes(b"{}".to_vec()));
    j.group = 0;
    assert_eq!(add_object(&f, j, &EditOptions::default()).unwrap(), 1);
    let sq = part(b"hsqs....", FsType::SQUASH, PartType::PRIM_SYS, "amd64", 1);
    assert_eq!(add_object(&f, sq, &EditOptions::default()).unwrap(), 2);
    let mut g = ObjectInput::new(DataType::GENERIC, ObjectData::Bytes(vec![7; 10]));
    g.alignment = Some(512);
    g.link = Link::Group(1);
    assert_eq!(add_object(&f, g, &EditOptions::default()).unwrap(), 3);
    let sif = load(&p);
    let o: Vec<_> = sif
        .objects()
        .map(|d| (d.id, d.offset, d.size, d.size_with_padding))
        .collect();
    assert_eq!(
        o,
        vec![
            (1, 32176, 2, 2),
            (2, 32768, 8, 8 + 32768 - 32178),
            (3, 33280, 10, 10 + 33280 - 32776)
        ]
    );
    assert_eq!(sif.object(1).unwrap().group_raw, 0xF000_0000);
    assert_eq!(sif.object(3).unwrap().link_raw, 0xF000_0001);
    assert_eq!(sif.object(3).unwrap().link(), Link::Group(1));
    assert_eq!(sif.header.arch.go_name(), "amd64");
    assert_eq!(sif.header.data_size, 33290 - 32176);
    assert_eq!(sif.header.descriptors_free, 45);
    // Deterministic images keep Go's zero time through edits.
    assert!(sif.header.is_deterministic());
    assert!(sif.objects().all(|d| d.created_at == GO_ZERO_TIME));
    // The primary partition is found; it is not foreign on an amd64 host.
    let loc = sif.primary_rootfs().unwrap();
    assert_eq!((loc.id, loc.offset, loc.size), (2, 32768, 8));
}

#[test]
fn edits_of_a_normal_image_take_the_given_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = new_image(dir.path(), false, vec![]);
    let created = load(&p).header.created_at;
    assert!(created > 1_700_000_000);
    let f = rw(&p);
    let o = ObjectInput::new(DataType::DEFFILE, ObjectData::Bytes(b"x".to_vec()));
    add_object(
        &f,
        o,
        &EditOptions {
            time: Some(2_000_000_000),
        },
    )
    .unwrap();
    let sif = load(&p);
    assert_eq!(sif.header.created_at, created);
    assert_eq!(sif.header.modified_at, 2_000_000_000);
    assert_eq!(sif.object(1).unwrap().created_at, 2_000_000_000);
}

#[test]
fn delete_frees_the_slot_and_optionally_zeroes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let p = new_image(
        dir.path(),
        true,
        vec![
            part(&[1; 100], FsType::RAW, PartType::SYSTEM, "386", 1),
            part(&[2; 100], FsType::SQUASH, PartType::PRIM_SYS, "arm64", 1),
        ],
    );
    let len = std::fs::metadata(&p).unwrap().len();
    assert_eq!(len, 36864 + 100);
    let f = rw(&p);
    // Plain delete (siftool del): slot zeroed and freed, arch reset, DataSize kept.
    delete_object(&f, 2, &DeleteOptions::default()).unwrap();
    let sif = load(&p);
    assert_eq!(sif.header.arch, Arch::UNKNOWN);
    assert_eq!(sif.header.descriptors_free, 47);
    assert_eq!(sif.header.data_size, 36964 - 32176);
    assert_eq!(sif.slots[1], squashbox_sif::Descriptor::default());
    assert_eq!(std::fs::metadata(&p).unwrap().len(), len);
    // The freed slot and its ID are reused; the data goes where the old object was.
    let id = add_object(
        &f,
        part(&[3; 10], FsType::EXT3, PartType::OVERLAY, "386", 1),
        &EditOptions::default(),
    )
    .unwrap();
    assert_eq!(id, 2);
    assert_eq!(load(&p).object(2).unwrap().offset, 36864);
    // Zero + compact: data wiped, file truncated after the last remaining object.
    delete_object(
        &f,
        2,
        &DeleteOptions {
            zero: true,
            compact: true,
            ..Default::default()
        },
    )
    .unwrap();
    let sif = load(&p);
    assert_eq!(sif.header.data_size, 32768 + 100 - 32176);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 32868);
    delete_object(
        &f,
        1,
        &DeleteOptions {
            zero: true,
            compact: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 32176);
    assert_eq!(load(&p).objects().count(), 0);
    assert!(matches!(
        delete_object(&f, 1, &DeleteOptions::default()),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn set_primary_demotes_the_old_primary() {
    let dir = tempfile::tempdir().unwrap();
    let p = new_image(
        dir.path(),
        true,
        vec![
            part(&[1; 8], FsType::SQUASH, PartType::PRIM_SYS, "amd64", 1),
            part(&[2; 8], FsType::EXT3, PartType::SYSTEM, "riscv64", 1),
            part(&[3; 8], FsType::RAW, PartType::DATA, "amd64", 0),
        ],
    );
    let f = rw(&p);
    set_primary(&f, 2, &EditOptions::default()).unwrap();
    let sif = load(&p);
    assert_eq!(
        sif.object(1).unwrap().partition().unwrap().1,
        PartType::SYSTEM
    );
    assert_eq!(
        sif.object(2).unwrap().partition().unwrap().1,
        PartType::PRIM_SYS
    );
    assert_eq!(sif.header.arch.go_name(), "riscv64");
    assert_eq!(sif.primary_rootfs().unwrap().id, 2);
    // Only System partitions can be promoted; a data partition is refused untouched.
    let before = std::fs::read(&p).unwrap();
    assert!(set_primary(&f, 3, &EditOptions::default()).is_err());
    assert!(set_primary(&f, 9, &EditOptions::default()).is_err());
    assert!(std::fs::read(&p).unwrap() == before);
    assert_eq!(
        sif.data_partitions()
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>(),
        vec![3]
    );
}

#[test]
fn overlay_outside_the_primary_group_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let p = new_image(
        dir.path(),
        true,
        vec![
            part(&[1; 8], FsType::SQUASH, PartType::PRIM_SYS, "amd64", 1),
            part(&[2; 8], FsType::EXT3, PartType::OVERLAY, "amd64", 1),
            part(&[3; 8], FsType::EXT3, PartType::OVERLAY, "amd64", 2),
            part(&[4; 8], FsType::EXT3, PartType::OVERLAY, "amd64", 0),
        ],
    );
    let ids: Vec<u32> = load(&p).overlay_partitions().iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![2]);
    // A primary with no group accepts every overlay.
    let dir2 = tempfile::tempdir().unwrap();
    let p2 = new_image(
        dir2.path(),
        true,
        vec![
            part(&[1; 8], FsType::SQUASH, PartType::PRIM_SYS, "amd64", 0),
            part(&[3; 8], FsType::EXT3, PartType::OVERLAY, "amd64", 2),
        ],
    );
    assert_eq!(load(&p2).overlay_partitions().len(), 1);
}

#[test]
fn rejected_writes_leave_the_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        deterministic: true,
        descriptors_total: 1,
        ..Default::default()
    };
    let p = dir.path().join("small.sif");
    create(
        &p,
        &opts,
        vec![ObjectInput::new(
            DataType::DEFFILE,
            ObjectData::Bytes(vec![1]),
        )],
    )
    .unwrap();
    let before = std::fs::read(&p).unwrap();
    let f = rw(&p);
    let o = ObjectInput::new(DataType::DEFFILE, ObjectData::Bytes(vec![2]));
    let e = add_object(&f, o, &EditOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no free descriptor slot"), "{e}");
    let missing = ObjectInput::new(DataType::DEFFILE, ObjectData::File("/nonexistent/x".into()));
    assert!(add_object(&f, missing, &EditOptions::default()).is_err());
    assert!(std::fs::read(&p).unwrap() == before);

    // create: a bad request leaves an existing file alone and no temp file behind.
    let long = CreateOptions {
        launch_script: "#".repeat(32),
        ..Default::default()
    };
    assert!(create(&p, &long, vec![]).is_err());
    let bad = ObjectInput::new(DataType::DEFFILE, ObjectData::File("/nonexistent/x".into()));
    assert!(create(&p, &CreateOptions::default(), vec![bad]).is_err());
    assert!(std::fs::read(&p).unwrap() == before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // A second primary partition is refused.
    let dir2 = tempfile::tempdir().unwrap();
    let p2 = new_image(
        dir2.path(),
        true,
        vec![part(&[1], FsType::SQUASH, PartType::PRIM_SYS, "amd64", 1)],
    );
    let before = std::fs::read(&p2).unwrap();
    let again = part(&[2], FsType::SQUASH, PartType::PRIM_SYS, "amd64", 1);
    assert!(add_object(&rw(&p2), again, &EditOptions::default()).is_err());
    assert!(std::fs::read(&p2).unwrap() == before);
}
