//! Reader tests against the upstream corpus and Apptainer's own busybox images.

use squashbox_sif::{
    Arch, DataType, Error, FsType, PartType, Sif, check_arch_against, locate_partition,
};
use std::fs::File;
use std::path::PathBuf;

/// The in-repo upstream fixtures (`fixtures/upstream/`); missing ones fail the test.
fn fixtures() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/upstream");
    assert!(p.is_dir(), "in-repo fixtures missing: {}", p.display());
    p
}

fn e2e(name: &str) -> PathBuf {
    fixtures().join("apptainer-e2e").join(name)
}

fn corpus(name: &str) -> PathBuf {
    fixtures().join("apptainer-sif/images").join(name)
}

#[test]
fn busybox_amd64_primary_partition() {
    let f = File::open(e2e("busybox_amd64.sif")).unwrap();
    let loc = locate_partition(&f, None).unwrap().expect("is a SIF");
    assert_eq!((loc.id, loc.offset, loc.size), (4, 45056, 745472));
    assert_eq!(loc.fs_type, FsType::SQUASH.0);
    assert_eq!(loc.part_type, PartType::PRIM_SYS.0);
    assert_eq!(loc.arch.go_name(), "amd64");
    let sif = Sif::load(&f).unwrap();
    assert_eq!(sif.header.data_offset, 32768);
    let types: Vec<_> = sif.objects().map(|d| (d.id, d.data_type)).collect();
    assert_eq!(
        types,
        vec![
            (1, DataType::DEFFILE),
            (2, DataType::GENERIC_JSON),
            (3, DataType::GENERIC_JSON),
            (4, DataType::PARTITION),
            (5, DataType::SIGNATURE)
        ]
    );
    // The partition really is SquashFS.
    let mut magic = [0u8; 4];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut magic, loc.offset).unwrap();
    assert_eq!(&magic, b"hsqs");
    assert_eq!(
        squashbox_sif::probe_filesystem(&f, &loc).unwrap(),
        squashbox_sif::ProbedFs::Squashfs { compression: 1 }
    );
    // Selecting by ID works; a non-partition ID is an error.
    assert_eq!(locate_partition(&f, Some(4)).unwrap(), Some(loc));
    let err = locate_partition(&f, Some(2)).unwrap_err().to_string();
    assert!(err.contains("not a partition"), "{err}");
    assert!(locate_partition(&f, Some(9)).is_err());
}

#[test]
fn busybox_arm64_is_foreign_on_amd64() {
    let f = File::open(e2e("busybox_arm64.sif")).unwrap();
    let loc = locate_partition(&f, None).unwrap().expect("is a SIF");
    assert_eq!(loc.arch.go_name(), "arm64");
    let err = check_arch_against(loc.arch, Arch::from_go_name("amd64").unwrap()).unwrap_err();
    assert!(matches!(err, Error::ForeignArch { .. }));
    assert_eq!(err.to_string(), "image is arm64, host is amd64");
    check_arch_against(loc.arch, Arch::from_go_name("arm64").unwrap()).unwrap();
    // Against this machine: foreign unless we run on arm64.
    let host = Arch::host();
    assert_eq!(
        squashbox_sif::check_arch(&loc).is_ok(),
        host.go_name() == "arm64"
    );
    if cfg!(target_arch = "x86_64") {
        assert_eq!(host.go_name(), "amd64");
        let amd = File::open(e2e("busybox_amd64.sif")).unwrap();
        let amd_loc = locate_partition(&amd, None).unwrap().unwrap();
        squashbox_sif::check_arch(&amd_loc).unwrap();
    }
}

#[test]
fn bare_squashfs_is_not_a_sif() {
    let f = File::open(fixtures().join("apptainer-sif/input/root.squashfs")).unwrap();
    assert_eq!(locate_partition(&f, None).unwrap(), None);
}

#[test]
fn every_corpus_image_loads() {
    for entry in std::fs::read_dir(fixtures().join("apptainer-sif/images")).unwrap() {
        let path = entry.unwrap().path();
        let f = File::open(&path).unwrap();
        let sif = Sif::load(&f).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let used = sif.objects().count() as i64;
        assert_eq!(
            sif.header.descriptors_free,
            sif.header.descriptors_total - used
        );
    }
    let f = File::open(corpus("empty.sif")).unwrap();
    let err = locate_partition(&f, None).unwrap_err().to_string();
    assert!(err.contains("no primary system partition"), "{err}");
}

#[test]
fn corpus_partitions_probe() {
    use squashbox_sif::{ProbedFs, probe_filesystem};
    let f = File::open(corpus("two-groups.sif")).unwrap();
    let sif = Sif::load(&f).unwrap();
    let prim = sif.primary_rootfs().unwrap();
    assert!(matches!(
        probe_filesystem(&f, &prim).unwrap(),
        ProbedFs::Squashfs { .. }
    ));
    // The corpus "ext3" has no journal: Apptainer's strict check rejects it.
    let ext3 = sif.partition_by_id(3).unwrap();
    let e = probe_filesystem(&f, &ext3).unwrap_err().to_string();
    assert!(e.contains("without a journal"), "{e}");
    let raw = sif.partition_by_id(1).unwrap();
    let e = probe_filesystem(&f, &raw).unwrap_err().to_string();
    assert!(e.contains("neither SquashFS nor ext3"), "{e}");
}
