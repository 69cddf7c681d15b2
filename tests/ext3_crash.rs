//! Crash loop: an untar and an fsync-ing writer run on `squashbox ext3 mount`, the server is
//! killed with SIGKILL at a random moment; then three copies of the image are recovered three
//! ways (our next mount and unmount; the kernel's ext3, which replays the journal itself;
//! `e2fsck -fy`) and each must end `e2fsck -fn` clean with every fsync'd write intact.
//!
//! CI runs 5 iterations; `SQUASHBOX_EXT3_CRASH_ITERS=30 cargo test -p squashbox --test
//! ext3_crash` runs the 30. Needs root, mkfs.ext3, e2fsck, debugfs and tar.

#[path = "common/ext3.rs"]
mod ext3;
#[path = "common/fuse.rs"]
mod fuse;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use ext3::*;
use fuse::*;
use squashbox_fixtures::prereq;

const CHUNK: usize = 4096;

fn chunk(i: u64) -> Vec<u8> {
    (0..CHUNK)
        .map(|j| (i as u8).wrapping_mul(7) ^ (j as u8))
        .collect()
}

/// A small xorshift generator seeded from the clock (the seed is printed for reruns).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every chunk up to `last` (the last one recorded as fsync'd) reads back intact.
fn assert_fsynced_intact(img: &Path, last: i64, what: &str) {
    if last < 0 {
        return;
    }
    let out = Command::new("debugfs")
        .args(["-R", "cat /log"])
        .arg(img)
        .output()
        .unwrap();
    let data = out.stdout;
    for i in 0..=last as u64 {
        let at = i as usize * CHUNK;
        assert!(
            data.len() >= at + CHUNK && data[at..at + CHUNK] == chunk(i)[..],
            "{what}: fsync'd chunk {i} of {last} lost ({} bytes in /log)",
            data.len()
        );
    }
}

fn serve(img: &Path, mnt: &Path) -> MountGuard {
    let mut guard = MountGuard::new(mnt);
    guard.child = Some(
        Command::new(bin())
            .args(["ext3", "mount", "-f"])
            .arg(img)
            .arg(mnt)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(20), || is_mounted(mnt)),
        "not mounted"
    );
    guard
}

fn one_iteration(dir: &Path, tarball: &Path, rng: &mut Rng, n: usize) {
    let img = dir.join("img");
    let st = Command::new("mkfs.ext3")
        .args(["-q", "-F"])
        .arg(&img)
        .arg("96M")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mnt = dir.join("m");
    std::fs::create_dir_all(&mnt).unwrap();
    let mut guard = serve(&img, &mnt);
    std::fs::create_dir(mnt.join("t")).unwrap();
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(mnt.join("t"))
        .arg("-xf")
        .arg(tarball)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let last = Arc::new(AtomicI64::new(-1));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (last, stop, path) = (Arc::clone(&last), Arc::clone(&stop), mnt.join("log"));
        std::thread::spawn(move || {
            let Ok(f) = File::create(&path) else { return };
            if f.sync_all().is_err()
                || File::open(path.parent().unwrap())
                    .and_then(|d| d.sync_all())
                    .is_err()
            {
                return;
            }
            for i in 0.. {
                if stop.load(Ordering::Relaxed)
                    || f.write_all_at(&chunk(i), i * CHUNK as u64).is_err()
                    || f.sync_data().is_err()
                {
                    return;
                }
                last.store(i as i64, Ordering::SeqCst);
            }
        })
    };
    let delay = 200 + rng.next() % 1800;
    std::thread::sleep(Duration::from_millis(delay));
    let child = guard.child.as_mut().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let last = last.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    force_unmount(&mnt);
    let _ = tar.kill();
    let _ = tar.wait();
    let _ = writer.join();
    drop(guard);
    eprintln!(
        "iteration {n}: killed after {delay} ms, {} chunks fsync'd",
        last + 1
    );

    // 1. Our next mount replays, then unmounts clean.
    let a = dir.join("a");
    std::fs::copy(&img, &a).unwrap();
    let mut g = serve(&a, &mnt);
    let (ok, out) = run_timeout(
        Command::new(bin()).arg("unmount").arg(&mnt),
        Duration::from_secs(20),
    );
    assert!(ok, "unmount: {out}");
    let child = g.child.as_mut().unwrap();
    assert!(wait_for(Duration::from_secs(10), || child
        .try_wait()
        .unwrap()
        .is_some()));
    drop(g);
    assert_fsck_clean(&a, "after our remount");
    assert_fsynced_intact(&a, last, "after our remount");

    // 2. The kernel's ext3 replays the journal.
    let b = dir.join("b");
    std::fs::copy(&img, &b).unwrap();
    let out = Command::new("mount")
        .args(["-o", "loop", "-t", "ext3"])
        .arg(&b)
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kernel mount after the crash: {out:?}"
    );
    let _ = Command::new("umount").arg(&mnt).status();
    assert_fsck_clean(&b, "after the kernel's mount");
    assert_fsynced_intact(&b, last, "after the kernel's mount");

    // 3. e2fsck -fy replays and repairs what it must (an interrupted untar needs nothing).
    let c = dir.join("c");
    std::fs::copy(&img, &c).unwrap();
    let (rc, text) = e2fsck(&c, "-fy");
    assert!(rc <= 1, "e2fsck -fy rc {rc}: {text}");
    assert_fsck_clean(&c, "after e2fsck -fy");
    assert_fsynced_intact(&c, last, "after e2fsck -fy");
    for p in [&img, &a, &b, &c] {
        let _ = std::fs::remove_file(p);
    }
}

fn tarball(dir: &Path) -> PathBuf {
    // A real source tree: this repository's crates (sources only).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tar = dir.join("src.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--exclude=target", "-cf"])
        .arg(&tar)
        .args(["fs", "cli", "fixtures/src", "runtime"])
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

#[test]
fn kill_9_at_random_moments_loses_nothing_fsynced() {
    if !prereq::require_root("FUSE and loop mounts")
        || !prereq::require_tools(&["mkfs.ext3", "e2fsck", "debugfs", "tar"])
    {
        return;
    }
    let iters: usize = std::env::var("SQUASHBOX_EXT3_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash loop: {iters} iterations, seed {seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let tar = tarball(tmp.path());
    for n in 0..iters {
        one_iteration(tmp.path(), &tar, &mut rng, n);
    }
    let _ = std::io::stderr().flush();
}
