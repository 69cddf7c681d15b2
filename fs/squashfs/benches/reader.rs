//! Reader micro-benchmarks: decompression throughput per codec (cold reads of a file),
//! cached and uncached lookups, listing a 10k-entry directory, and cache hits from 1, 2 and
//! 8 threads. Needs mksquashfs (images are built in a temp dir at start).
//!
//! Run: cargo bench -p squashbox-squashfs --bench reader -- --warm-up-time 1 --measurement-time 3

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use squashbox_squashfs::{Image, OpenOptions};

const FILE_MB: usize = 8;

fn mksquashfs(src: &Path, img: &Path, args: &[&str]) -> bool {
    Command::new("mksquashfs")
        .arg(src)
        .arg(img)
        .args(["-noappend", "-quiet", "-no-progress"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

struct Fixture {
    _dir: tempfile::TempDir,
    codec_images: Vec<(String, PathBuf)>,
    dir_image: PathBuf,
    names: Vec<Vec<u8>>,
}

fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().ok()?;
    let src = dir.path().join("src");
    fs::create_dir_all(&src).ok()?;
    // Text-like data: compresses about 3:1, like binaries and libraries.
    let mut data = Vec::with_capacity(FILE_MB << 20);
    let mut x: u32 = 12345;
    while data.len() < FILE_MB << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let word = [
            "squash", "box ", "reader", "\n", "block", "cache ", "fuse", "0123",
        ][(x >> 24) as usize % 8];
        data.extend_from_slice(word.as_bytes());
        if x.is_multiple_of(7) {
            data.push((x >> 8) as u8);
        }
    }
    data.truncate(FILE_MB << 20);
    fs::write(src.join("data"), &data).ok()?;
    let mut codec_images = Vec::new();
    for (name, args) in [
        ("gzip", vec!["-comp", "gzip"]),
        ("lzma", vec!["-comp", "lzma"]),
        ("lzo", vec!["-comp", "lzo"]),
        ("xz", vec!["-comp", "xz"]),
        ("lz4", vec!["-comp", "lz4"]),
        ("zstd", vec!["-comp", "zstd"]),
        ("none", vec!["-noD"]),
    ] {
        let img = dir.path().join(format!("{name}.sqfs"));
        if !mksquashfs(&src, &img, &args) {
            return None;
        }
        codec_images.push((name.to_string(), img));
    }
    let dsrc = dir.path().join("dsrc");
    let big = dsrc.join("big");
    fs::create_dir_all(&big).ok()?;
    let mut names = Vec::new();
    for i in 0..10_000 {
        let n = format!("module_{i:05}.py");
        fs::write(big.join(&n), b"x").ok()?;
        names.push(n.into_bytes());
    }
    let dir_image = dir.path().join("dir.sqfs");
    if !mksquashfs(&dsrc, &dir_image, &["-comp", "zstd"]) {
        return None;
    }
    Some(Fixture {
        _dir: dir,
        codec_images,
        dir_image,
        names,
    })
}

fn open(p: &Path) -> Image {
    Image::open(p, &OpenOptions::default()).expect("open bench image")
}

fn benches(c: &mut Criterion) {
    let Some(fx) = fixture() else {
        eprintln!("skipped: mksquashfs not available");
        return;
    };

    // Decompression: read the whole 8 MiB file from a freshly opened image (every block
    // misses), 1 MiB at a time; blocks of one read decompress in parallel.
    let mut g = c.benchmark_group("decompress_read_8MiB");
    g.throughput(Throughput::Bytes((FILE_MB << 20) as u64));
    for (name, img) in &fx.codec_images {
        g.bench_function(name.as_str(), |b| {
            b.iter_batched(
                || {
                    let image = open(img);
                    let ino = image.lookup_path(b"data").unwrap().unwrap();
                    (image, ino, vec![0u8; 1 << 20])
                },
                |(image, ino, mut buf)| {
                    let mut off = 0;
                    while off < ino.size {
                        off += image.read(&ino, off, &mut buf).unwrap() as u64;
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();

    let image = open(&fx.dir_image);
    let big = image.lookup_path(b"big").unwrap().unwrap();
    let mut g = c.benchmark_group("lookup_10k_dir");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 7919) % fx.names.len();
            image.lookup(&big, &fx.names[i]).unwrap().unwrap()
        })
    });
    g.bench_function("uncached", |b| {
        b.iter_batched(
            || {
                let img = open(&fx.dir_image);
                let dir = img.lookup_path(b"big").unwrap().unwrap();
                i = (i + 7919) % fx.names.len();
                (img, dir, i)
            },
            |(img, dir, i)| img.lookup(&dir, &fx.names[i]).unwrap().unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("list_10k_dir");
    g.throughput(Throughput::Elements(fx.names.len() as u64));
    g.bench_function("read_dir", |b| {
        b.iter(|| {
            let mut n = 0;
            image
                .read_dir(&big, 0, &mut |_, _| {
                    n += 1;
                    true
                })
                .unwrap();
            assert_eq!(n, fx.names.len());
        })
    });
    g.finish();

    // Cache hits: 4 KiB reads of cached blocks from N threads (total hits per second).
    let (_, zimg) = fx.codec_images.iter().find(|(n, _)| n == "zstd").unwrap();
    let image = Arc::new(open(zimg));
    let ino = image.lookup_path(b"data").unwrap().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < ino.size {
        off += image.read(&ino, off, &mut buf).unwrap() as u64;
    }
    let mut g = c.benchmark_group("cache_hits_4KiB_reads");
    for threads in [1usize, 2, 8] {
        const PER_THREAD: u64 = 2000;
        g.throughput(Throughput::Elements(PER_THREAD * threads as u64));
        g.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for t in 0..threads {
                            let (image, ino) = (&image, &ino);
                            s.spawn(move || {
                                let mut b = [0u8; 4096];
                                for k in 0..PER_THREAD {
                                    let off = ((k * 40961 + t as u64 * 4096)
                                        % (FILE_MB as u64 * 256))
                                        * 4096;
                                    image.read(ino, off, &mut b).unwrap();
                                }
                            });
                        }
                    });
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(reader, benches);
criterion_main!(reader);
