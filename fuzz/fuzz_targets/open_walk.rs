//! Fuzz target: open the input bytes as a SquashFS image and walk everything reachable
//! (listings, lookups, inodes, file data, symlinks, xattrs) with bounded work. Any panic,
//! hang or runaway allocation is a bug in the reader.
#![no_main]

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;

use libfuzzer_sys::fuzz_target;
use squashbox_squashfs::{Image, InodeKind, OpenOptions};

const MAX_ENTRIES: usize = 2000;
const MAX_FILE_BYTES: u64 = 1 << 20;

fn memfile(bytes: &[u8]) -> File {
    // SAFETY: memfd_create with a static NUL-terminated name; the fd is owned by the File.
    let mut f = unsafe {
        let fd = libc::memfd_create(c"fuzz".as_ptr(), 0);
        assert!(fd >= 0, "memfd_create failed");
        File::from_raw_fd(fd)
    };
    f.write_all(bytes).expect("write memfd");
    f
}

fn walk(image: &Image) {
    let Ok(root) = image.root() else { return };
    let mut visited = HashSet::new();
    let mut stack = vec![root];
    let mut seen = 0;
    let mut buf = vec![0u8; 64 << 10];
    while let Some(dir) = stack.pop() {
        if !visited.insert(dir.inode_ref) {
            continue;
        }
        let mut entries = Vec::new();
        let _ = image.read_dir(&dir, 0, &mut |e, _| {
            entries.push(e);
            entries.len() < MAX_ENTRIES
        });
        for e in entries {
            seen += 1;
            if seen > MAX_ENTRIES {
                return;
            }
            let _ = image.lookup(&dir, &e.name);
            let Ok(ino) = image.inode(e.inode_ref) else { continue };
            let _ = image.xattrs(&ino);
            match ino.kind {
                InodeKind::Directory => stack.push(ino),
                InodeKind::File => {
                    let mut off = 0;
                    while off < ino.size.min(MAX_FILE_BYTES) {
                        match image.read(&ino, off, &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => off += n as u64,
                        }
                    }
                }
                InodeKind::Symlink => {
                    let _ = image.readlink(&ino);
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let file = memfile(data);
    let opts = OpenOptions { cache_bytes: 4 << 20, metadata_cache_bytes: 1 << 20, offset: 0 };
    if let Ok(image) = Image::from_file(file, "fuzz-input", &opts) {
        walk(&image);
    }
});
