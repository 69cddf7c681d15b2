//! A hostile image must not flood the log, nor hang the server through it. The server's stderr
//! is a pipe nobody reads while the mount of an image with one corrupt directory block is
//! walked several times (hundreds of failing lookups a walk): a server that logs every failure
//! fills the pipe and blocks its workers. The walks must finish in time, answer EIO where the
//! damage is and serve everything else, and the pipe must hold only a few lines in the end.
//! Needs root and mksquashfs.

#[path = "common/fuse.rs"]
mod fuse;

#[path = "common/damage.rs"]
mod damage;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use damage::*;
use fuse::*;

const WALKS: usize = 5;
/// All walks together, on a server that warns once per fault.
const WALK_LIMIT: Duration = Duration::from_secs(20);
/// "A few lines": one per kind of fault and node, and a summary of repeats.
const MAX_LOG_LINES: usize = 20;

/// Whatever the pipe holds now, without waiting for more.
fn drain_now(pipe: &mut std::process::ChildStderr) -> String {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl on a pipe fd we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(flags >= 0);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("reading the server's stderr: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn first_lines(text: &str) -> String {
    text.lines().take(8).collect::<Vec<_>>().join("\n")
}

#[test]
fn corrupt_directory_block_does_not_flood_or_block_the_log() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = make_source(tmp.path());
    let img = tmp.path().join("img.sqfs");
    mksquashfs(&src, &img, &["-comp", "gzip"]);
    break_block(&img, DIRECTORY_TABLE, 0);
    let mnt = tmp.path().join("m");
    // stderr is a pipe; its read end stays open in `guard.child` and nobody reads it.
    let mut guard = serve_foreground(&img, &mnt, &[]);

    let (tx, rx) = std::sync::mpsc::channel();
    let (s, m) = (src.clone(), mnt.clone());
    std::thread::spawn(move || {
        for round in 0..WALKS {
            let _gone = tx.send((round, walk_known(&s, &m)));
        }
    });
    let start = Instant::now();
    for _ in 0..WALKS {
        let left = WALK_LIMIT.saturating_sub(start.elapsed());
        let (round, answers) = match rx.recv_timeout(left) {
            Ok(r) => r,
            Err(e) => {
                let log = drain_now(guard.child.as_mut().unwrap().stderr.as_mut().unwrap());
                panic!(
                    "the walks did not finish in {WALK_LIMIT:?} ({e}); the server's stderr \
                     held {} lines, first:\n{}",
                    log.lines().count(),
                    first_lines(&log)
                );
            }
        };
        assert_eq!(
            answers[Path::new("a-victim")],
            Answer::Errno(libc::EIO),
            "walk {round}: listing a-victim/"
        );
        let mut eio = 0;
        for (p, a) in not_good(&answers) {
            assert!(
                p.starts_with("a-victim") && *a == Answer::Errno(libc::EIO),
                "walk {round}: {}: {a:?}",
                p.display()
            );
            eio += 1;
        }
        assert!(eio > 10, "walk {round}: only {eio} paths met the damage");
    }
    println!("{WALKS} walks in {:?}", start.elapsed());
    // The server still serves a good file correctly after all that.
    assert_eq!(
        std::fs::read(mnt.join("z-good/big")).unwrap(),
        std::fs::read(src.join("z-good/big")).unwrap()
    );
    let mut log = drain_now(guard.child.as_mut().unwrap().stderr.as_mut().unwrap());
    // Unmounting may add a summary of repeats; stop_server reads the rest to EOF.
    log += &stop_server(&mut guard);
    let lines = log.lines().count();
    println!("server stderr: {lines} lines:\n{}", first_lines(&log));
    assert!(
        lines <= MAX_LOG_LINES,
        "the server logged {lines} lines for one damaged block; first:\n{}",
        first_lines(&log)
    );
}
