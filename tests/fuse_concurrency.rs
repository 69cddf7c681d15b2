//! Concurrency: 64 threads read random ranges of random files through the mount and check
//! them against the source tree, while another thread keeps listing directories. Run once with
//! the default cache and once with a 1 MiB cache (constant eviction). Needs root.

#[path = "common/fuse.rs"]
mod fuse;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fuse::*;

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

fn files_and_dirs(root: &Path) -> (Vec<(PathBuf, u64)>, Vec<PathBuf>) {
    let (mut files, mut dirs) = (Vec::new(), vec![PathBuf::new()]);
    let mut i = 0;
    while i < dirs.len() {
        let d = dirs[i].clone();
        for e in std::fs::read_dir(root.join(&d)).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let rel = d.join(e.file_name());
            if ft.is_dir() {
                dirs.push(rel);
            } else if ft.is_file() {
                files.push((rel, e.metadata().unwrap().len()));
            }
        }
        i += 1;
    }
    (files, dirs)
}

fn hammer(src: &Path, mnt: &Path, label: &str) {
    let (files, dirs) = files_and_dirs(src);
    let files: Arc<Vec<(PathBuf, u64)>> = Arc::new(
        files
            .into_iter()
            .filter(|(p, _)| !p.starts_with("huge"))
            .collect(),
    );
    assert!(files.len() > 20, "too few files");
    let stop = Arc::new(AtomicBool::new(false));
    let listings = Arc::new(AtomicU64::new(0));
    let lister = {
        let (stop, listings, mnt) = (Arc::clone(&stop), Arc::clone(&listings), mnt.to_path_buf());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for d in &dirs {
                    let n = std::fs::read_dir(mnt.join(d))
                        .expect("readdir through the mount")
                        .count();
                    let _ = n;
                    listings.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let bytes = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..64u64)
        .map(|t| {
            let (files, src, mnt, bytes) = (
                Arc::clone(&files),
                src.to_path_buf(),
                mnt.to_path_buf(),
                Arc::clone(&bytes),
            );
            std::thread::spawn(move || {
                let mut rng =
                    Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x1234_5678_9abc_def1));
                for _ in 0..150 {
                    let (rel, size) = &files[rng.below(files.len() as u64) as usize];
                    let off = rng.below(size + 1);
                    let len = match rng.below(4) {
                        0 => rng.below(4096) + 1,
                        1 => rng.below(300_000) + 1,
                        _ => rng.below(64 * 1024) + 1,
                    } as usize;
                    let mut want = vec![0u8; len];
                    let mut got = vec![0u8; len];
                    let n1 = File::open(src.join(rel))
                        .unwrap()
                        .read_at(&mut want, off)
                        .unwrap();
                    let f = File::open(mnt.join(rel))
                        .unwrap_or_else(|e| panic!("open {}: {e}", rel.display()));
                    let mut n2 = 0;
                    while n2 < len {
                        let n = f
                            .read_at(&mut got[n2..], off + n2 as u64)
                            .unwrap_or_else(|e| panic!("read {}: {e}", rel.display()));
                        if n == 0 {
                            break;
                        }
                        n2 += n;
                    }
                    let mut n1 = n1;
                    // The source read may be short too: complete it the same way.
                    while n1 < len {
                        let n = File::open(src.join(rel))
                            .unwrap()
                            .read_at(&mut want[n1..], off + n1 as u64)
                            .unwrap();
                        if n == 0 {
                            break;
                        }
                        n1 += n;
                    }
                    assert_eq!(n1, n2, "{}: length at {off}+{len}", rel.display());
                    assert!(
                        want[..n1] == got[..n2],
                        "{}: bytes differ at {off}+{len}",
                        rel.display()
                    );
                    bytes.fetch_add(n2 as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("a reader thread failed");
    }
    stop.store(true, Ordering::Relaxed);
    lister.join().expect("the lister failed");
    println!(
        "{label}: {} bytes verified, {} listings",
        bytes.load(Ordering::Relaxed),
        listings.load(Ordering::Relaxed)
    );
}

/// VmRSS (KiB) of the squashbox server whose command line names `mnt`.
fn server_rss_kib(mnt: &Path) -> Option<u64> {
    let want = mnt.as_os_str().to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").ok()? {
        let p = e.ok()?.path();
        let Ok(cmd) = std::fs::read(p.join("cmdline")) else {
            continue;
        };
        let args: Vec<_> = cmd
            .split(|&b| b == 0)
            .map(String::from_utf8_lossy)
            .collect();
        if args.iter().any(|a| a.ends_with("squashbox")) && args.iter().any(|a| *a == want) {
            let status = std::fs::read_to_string(p.join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            return line.split_whitespace().nth(1)?.parse().ok();
        }
    }
    None
}

#[test]
fn sixty_four_readers_and_a_lister() {
    if skip_unless(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 11);
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &["-comp", "zstd"]);
    {
        let mnt = tmp.path().join("m1");
        let _g = mount_ours(&img, &mnt, &[]);
        hammer(&src, &mnt, "default cache");
    }
    {
        let mnt = tmp.path().join("m2");
        let _g = mount_ours(&img, &mnt, &["-o", "cache=1,threads=3"]);
        hammer(&src, &mnt, "1 MiB cache, 3 threads");
        // Memory stays bounded: RSS <= cache + 32 MiB after the storm.
        let rss = server_rss_kib(&mnt).expect("server process not found");
        println!("server RSS after the storm: {rss} KiB");
        assert!(
            rss <= (1 + 32) * 1024,
            "server RSS {rss} KiB exceeds cache (1 MiB) + 32 MiB"
        );
    }
}
