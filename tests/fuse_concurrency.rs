//! Concurrency: 64 threads read random ranges of random files through the mount with O_DIRECT
//! (so every read reaches the server, not the kernel's page cache) and check them against the
//! source tree, while another thread lists every directory, round after round, and checks each
//! listing against the source. The server counts the requests it answered (`-o print_stats`)
//! and the test asserts the counts cover what was issued. Run once with the default cache and
//! once with a 1 MiB cache (constant eviction). Needs root.

#[path = "common/fuse.rs"]
mod fuse;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fuse::*;

/// The lister lists every directory at least this many times, however fast the readers are.
const MIN_LISTING_ROUNDS: u64 = 4;
const READERS: u64 = 64;
const READS_PER_READER: u64 = 150;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Sorted names of a directory.
fn names(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut v = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<Vec<_>>>()?;
    v.sort();
    Ok(v)
}

/// Sorted names of a directory on the mount, read from the server: the kernel's cached copy
/// of the listing (the directory's page cache) is dropped first.
fn uncached_names(dir: &Path) -> std::io::Result<Vec<OsString>> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir)?;
    // SAFETY: fadvise on an fd we own; it only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    names(dir)
}

/// Each directory's expected listing (sorted names), by path relative to the root.
type Listings = BTreeMap<PathBuf, Vec<OsString>>;

/// Regular files (with sizes) and every directory's expected listing, from the source tree.
fn files_and_dirs(root: &Path) -> (Vec<(PathBuf, u64)>, Listings) {
    let (mut files, mut dirs) = (Vec::new(), BTreeMap::new());
    let mut todo = vec![PathBuf::new()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(root.join(&d)).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let rel = d.join(e.file_name());
            if ft.is_dir() {
                todo.push(rel);
            } else if ft.is_file() {
                files.push((rel, e.metadata().unwrap().len()));
            }
        }
        dirs.insert(d.clone(), names(&root.join(&d)).unwrap());
    }
    (files, dirs)
}

/// What one storm issued: reads that returned data, and directory listings.
struct Issued {
    reads: u64,
    listings: u64,
}

/// Read `len` bytes at `off` (fewer at EOF), in as many reads as it takes; returns the bytes
/// and how many reads returned data.
fn read_range(f: &File, off: u64, len: usize, what: &Path) -> (Vec<u8>, u64) {
    let mut buf = vec![0u8; len];
    let (mut n, mut reads) = (0, 0);
    while n < len {
        let k = f
            .read_at(&mut buf[n..], off + n as u64)
            .unwrap_or_else(|e| panic!("read {} at {}: {e}", what.display(), off + n as u64));
        if k == 0 {
            break;
        }
        n += k;
        reads += 1;
    }
    buf.truncate(n);
    (buf, reads)
}

fn hammer(src: &Path, mnt: &Path, label: &str) -> Issued {
    let (files, dirs) = files_and_dirs(src);
    let files: Arc<Vec<(PathBuf, u64)>> = Arc::new(
        files
            .into_iter()
            .filter(|(p, size)| !p.starts_with("huge") && *size > 0)
            .collect(),
    );
    assert!(files.len() > 20, "too few files");
    assert!(dirs.len() > 20, "too few directories");
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (stop, mnt) = (Arc::clone(&stop), mnt.to_path_buf());
        std::thread::spawn(move || {
            let (mut rounds, mut listings) = (0u64, 0u64);
            while rounds < MIN_LISTING_ROUNDS || !stop.load(Ordering::Relaxed) {
                for (d, want) in &dirs {
                    let got = uncached_names(&mnt.join(d)).unwrap_or_else(|e| {
                        panic!("readdir {} through the mount: {e}", d.display())
                    });
                    assert!(
                        &got == want,
                        "round {rounds}: listing of /{} differs: {} names, expected {}",
                        d.display(),
                        got.len(),
                        want.len()
                    );
                    listings += 1;
                }
                rounds += 1;
            }
            (rounds, listings)
        })
    };
    let bytes = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|t| {
            let (files, src, mnt, bytes, reads) = (
                Arc::clone(&files),
                src.to_path_buf(),
                mnt.to_path_buf(),
                Arc::clone(&bytes),
                Arc::clone(&reads),
            );
            std::thread::spawn(move || {
                let mut rng =
                    Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x1234_5678_9abc_def1));
                for _ in 0..READS_PER_READER {
                    let (rel, size) = &files[rng.below(files.len() as u64) as usize];
                    // Inside the file: every range reads at least one byte.
                    let off = rng.below(*size);
                    let len = match rng.below(4) {
                        0 => rng.below(4096) + 1,
                        1 => rng.below(300_000) + 1,
                        _ => rng.below(64 * 1024) + 1,
                    } as usize;
                    let (want, _) = read_range(&File::open(src.join(rel)).unwrap(), off, len, rel);
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECT)
                        .open(mnt.join(rel))
                        .unwrap_or_else(|e| panic!("open {} O_DIRECT: {e}", rel.display()));
                    let (got, n) = read_range(&f, off, len, rel);
                    assert_eq!(
                        got.len(),
                        want.len(),
                        "{}: length at {off}+{len}",
                        rel.display()
                    );
                    assert!(
                        got == want,
                        "{}: bytes differ at {off}+{len}",
                        rel.display()
                    );
                    bytes.fetch_add(got.len() as u64, Ordering::Relaxed);
                    reads.fetch_add(n, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("a reader thread failed");
    }
    stop.store(true, Ordering::Relaxed);
    let (rounds, listings) = lister.join().expect("the lister failed");
    let issued = Issued {
        reads: reads.load(Ordering::Relaxed),
        listings,
    };
    println!(
        "{label}: {} bytes verified in {} reads, {listings} listings in {rounds} rounds",
        bytes.load(Ordering::Relaxed),
        issued.reads
    );
    assert!(
        rounds >= MIN_LISTING_ROUNDS,
        "{label}: only {rounds} listing rounds"
    );
    assert!(
        issued.reads >= READERS * READS_PER_READER,
        "{label}: only {} reads returned data",
        issued.reads
    );
    issued
}

/// Check the server's request counters (its `-o print_stats` exit line) against what was issued.
fn check_served(stderr: &str, issued: &Issued, label: &str) {
    let served = requests_served(stderr).unwrap_or_else(|| {
        panic!("{label}: no 'squashbox: requests served:' line on the server's stderr: {stderr:?}")
    });
    println!("{label}: served {served:?}");
    let get = |k: &str| {
        *served
            .get(k)
            .unwrap_or_else(|| panic!("{label}: no {k}= counter in {served:?}"))
    };
    // O_DIRECT reads bypass the page cache: each read that returned data is at least one
    // FUSE read (the kernel may split a large one).
    assert!(
        get("read") >= issued.reads,
        "{label}: server answered {} reads, {} were issued with O_DIRECT",
        get("read"),
        issued.reads
    );
    // Directory contents are not cached by the kernel: every listing asks the server.
    assert!(
        get("readdir") + get("readdirplus") >= issued.listings,
        "{label}: server answered {} readdir + {} readdirplus for {} listings",
        get("readdir"),
        get("readdirplus"),
        issued.listings
    );
    let kinds: u64 = [
        "lookup",
        "getattr",
        "read",
        "readdir",
        "readdirplus",
        "readlink",
        "getxattr",
        "listxattr",
        "other",
    ]
    .iter()
    .map(|k| get(k))
    .sum();
    assert_eq!(
        get("total"),
        kinds,
        "{label}: total is not the sum of the kinds"
    );
}

#[test]
fn sixty_four_readers_and_a_lister() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 11);
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &["-comp", "zstd"]);
    {
        let mut g = serve_foreground(&img, &tmp.path().join("m1"), &["-o", "print_stats"]);
        let issued = hammer(&src, &g.path.clone(), "default cache");
        let err = stop_server(&mut g);
        check_served(&err, &issued, "default cache");
    }
    {
        let mut g = serve_foreground(
            &img,
            &tmp.path().join("m2"),
            &["-o", "cache=1,threads=3,print_stats"],
        );
        let issued = hammer(&src, &g.path.clone(), "1 MiB cache, 3 threads");
        // Memory stays bounded: RSS <= cache + 32 MiB after the storm.
        let rss = rss_kib(g.child.as_ref().unwrap().id());
        println!("server RSS after the storm: {rss} KiB");
        assert!(
            rss <= (1 + 32) * 1024,
            "server RSS {rss} KiB exceeds cache (1 MiB) + 32 MiB"
        );
        let err = stop_server(&mut g);
        check_served(&err, &issued, "1 MiB cache, 3 threads");
    }
}
