//! Hostile input: mutated headers and descriptors of the corpus give clear errors, never a
//! panic, and never an allocation sized by an unchecked count.

use squashbox_sif::{DESCRIPTOR_SIZE, Error, Sif, siftool};
use std::path::PathBuf;

/// A corpus image from the in-repo upstream fixtures; a missing one fails the test.
fn image(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/upstream/apptainer-sif/images")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("in-repo fixture {}: {e}", p.display()))
}

fn put_i64(b: &mut [u8], off: usize, v: i64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Descriptor `slot`'s byte offset in a default-layout image.
fn desc(slot: usize) -> usize {
    4096 + slot * DESCRIPTOR_SIZE
}

fn err_of(bytes: &[u8]) -> String {
    match Sif::load(bytes) {
        Ok(_) => panic!("hostile image was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_magic_is_not_a_sif() {
    let mut b = image("one-group.sif");
    b[32] = b'X';
    assert!(matches!(Sif::load(&b), Err(Error::NotSif(_))));
    assert!(matches!(Sif::load(&b[..100]), Err(Error::NotSif(_))));
}

#[test]
fn bad_version() {
    let mut b = image("one-group.sif");
    b[43] = b'2';
    assert!(err_of(&b).contains("unsupported SIF version \"02\""));
}

#[test]
fn descriptors_total_far_beyond_the_file() {
    let mut b = image("one-group.sif");
    put_i64(&mut b, 88, 1 << 40);
    assert!(err_of(&b).contains("implausibly large"), "{}", err_of(&b));
    put_i64(&mut b, 88, 1000);
    put_i64(&mut b, 104, 1000 * 585);
    assert!(
        err_of(&b).contains("past the end of the file"),
        "{}",
        err_of(&b)
    );
    put_i64(&mut b, 88, -1);
    assert!(err_of(&b).contains("negative"));
    put_i64(&mut b, 88, i64::MAX);
    assert!(err_of(&b).contains("implausibly large"));
}

#[test]
fn descriptor_table_offset_and_sizes() {
    let mut b = image("one-group.sif");
    put_i64(&mut b, 96, 64);
    assert!(err_of(&b).contains("inside the 128-byte header"));
    let mut b = image("one-group.sif");
    put_i64(&mut b, 104, 28_081);
    assert!(err_of(&b).contains("DescriptorsSize"));
    let mut b = image("one-group.sif");
    put_i64(&mut b, 112, 100);
    assert!(err_of(&b).contains("DataOffset"));
    let mut b = image("one-group.sif");
    put_i64(&mut b, 80, 49);
    assert!(err_of(&b).contains("DescriptorsFree"));
}

#[test]
fn object_past_eof() {
    let mut b = image("one-group.sif");
    put_i64(&mut b, desc(1) + 25, 1 << 30);
    let e = err_of(&b);
    assert!(
        e.contains("past the end of the file") && e.contains("object ID 2"),
        "{e}"
    );
    let mut b = image("one-group.sif");
    put_i64(&mut b, desc(1) + 17, i64::MAX - 2);
    assert!(err_of(&b).contains("past the end"));
    let mut b = image("one-group.sif");
    put_i64(&mut b, desc(0) + 25, -5);
    assert!(err_of(&b).contains("negative"));
}

#[test]
fn overlapping_objects() {
    let mut b = image("one-group.sif");
    // Object 1 (4 bytes at 32768) grown into object 2 at 36864.
    put_i64(&mut b, desc(0) + 25, 5000);
    let e = err_of(&b);
    assert!(e.contains("objects 1") && e.contains("overlap"), "{e}");
    // An object placed over the descriptor table.
    let mut b = image("one-group.sif");
    put_i64(&mut b, desc(0) + 17, 4200);
    assert!(err_of(&b).contains("descriptor table"));
}

#[test]
fn duplicate_and_zero_ids() {
    let mut b = image("one-group.sif");
    b[desc(1) + 5..desc(1) + 9].copy_from_slice(&1u32.to_le_bytes());
    assert!(err_of(&b).contains("duplicate object ID 1"));
    b[desc(1) + 5..desc(1) + 9].copy_from_slice(&0u32.to_le_bytes());
    assert!(err_of(&b).contains("ID 0"));
}

#[test]
fn unterminated_name_and_garbage_extra_do_not_panic() {
    let mut b = image("one-group.sif");
    // A full 128-byte name with no NUL is allowed (Go accepts it) and printed whole.
    for i in 0..128 {
        b[desc(0) + 73 + i] = b'a';
    }
    // Invalid UTF-8 in the name, unknown types and arch codes everywhere else.
    b[desc(1) + 73] = 0xff;
    b[desc(1)..desc(1) + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    b[desc(0) + 201 + 8..desc(0) + 201 + 11].copy_from_slice(b"zz\0");
    let sif = Sif::load(&b).unwrap();
    assert_eq!(sif.object(1).unwrap().name_str().len(), 128);
    let list = siftool::list(&sif);
    assert!(list.contains("Unknown data-type"), "{list}");
    assert!(list.contains("/unknown)"), "{list}");
    for id in 1..=2 {
        siftool::info(&sif, id).unwrap();
    }
}

/// Flip every byte of the header and of the first two descriptors to a few hostile values:
/// loading and printing must never panic.
#[test]
fn byte_mutations_never_panic() {
    let base = image("two-groups-signed-pgp.sif");
    let mut positions: Vec<usize> = (0..128).collect();
    positions.extend(desc(0)..desc(0) + 73);
    positions.extend(desc(3)..desc(3) + 73);
    positions.extend(desc(3) + 201..desc(3) + 230);
    let (mut opened, mut rejected) = (0, 0);
    for &p in &positions {
        for v in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            let mut b = base.clone();
            b[p] = v;
            let what = format!("byte {p} = {v:#04x}");
            match Sif::load(&b) {
                Ok(sif) => {
                    opened += 1;
                    assert!(siftool::header(&sif).contains("Version:"), "{what}");
                    let list = siftool::list(&sif);
                    let objects: Vec<_> = sif.objects().collect();
                    // One line per object under the three title lines.
                    assert_eq!(list.lines().count(), objects.len() + 3, "{what}: {list}");
                    for d in &objects {
                        let info = siftool::info(&sif, d.id).unwrap_or_else(|e| {
                            panic!("{what}: info {} of a loaded image: {e}", d.id)
                        });
                        assert!(info.contains("ID:"), "{what}: {info}");
                        // Load validated every object to lie inside the file.
                        let data = sif
                            .read_data(&b, d)
                            .unwrap_or_else(|e| panic!("{what}: data of object {}: {e}", d.id));
                        assert_eq!(data.len() as i64, d.size, "{what}: object {}", d.id);
                    }
                    match sif.primary_rootfs() {
                        Ok(loc) => assert!(
                            loc.offset + loc.size <= b.len() as u64,
                            "{what}: primary partition {loc:?} past the end"
                        ),
                        Err(e) => assert!(!e.to_string().is_empty(), "{what}"),
                    }
                    for loc in sif.overlay_partitions() {
                        assert!(
                            loc.offset + loc.size <= b.len() as u64,
                            "{what}: overlay {loc:?} past the end"
                        );
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        !msg.is_empty() && !msg.contains('\n'),
                        "{what}: error not one line: {msg:?}"
                    );
                    rejected += 1;
                }
            }
        }
    }
    eprintln!("{opened} mutations opened, {rejected} rejected");
    // The set holds both harmless changes (names, times) and fatal ones (magic, counts).
    assert!(rejected > 100, "only {rejected} mutations rejected");
    assert!(opened > 100, "only {opened} mutations opened");
}
