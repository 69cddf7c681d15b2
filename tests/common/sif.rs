//! Shared helpers for the `sif_*` integration tests (helper "sif").
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The in-repo upstream fixtures (`fixtures/upstream/`); missing ones fail the test.
pub fn fixtures() -> PathBuf {
    let p = squashbox_fixtures::upstream_dir();
    assert!(p.is_dir(), "in-repo fixtures missing: {}", p.display());
    p
}

/// A corpus image from `apptainer-sif/images`.
pub fn corpus(name: &str) -> PathBuf {
    fixtures().join("apptainer-sif/images").join(name)
}

/// A payload from `apptainer-sif/input`.
pub fn input(name: &str) -> PathBuf {
    fixtures().join("apptainer-sif/input").join(name)
}

/// One of Apptainer's e2e images.
pub fn e2e(name: &str) -> PathBuf {
    fixtures().join("apptainer-e2e").join(name)
}

/// Run `squashbox sif ARGS...`.
pub fn sif<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_squashbox"))
        .arg("sif")
        .args(args)
        .output()
        .expect("run squashbox")
}

/// Run `squashbox sif ARGS...`, require success and return stdout.
pub fn sif_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    let out = sif(args);
    assert!(
        out.status.success(),
        "squashbox sif {:?} failed: {}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Like [`sif_ok`], as text.
pub fn sif_text<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    String::from_utf8(sif_ok(args)).expect("utf-8 output")
}

/// Run `squashbox sif ARGS...`, require a clean failure (exit 1, no panic, a one-line
/// message) and return stderr.
pub fn sif_err<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = sif(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure, got success");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_ne!(out.status.code(), Some(101), "panic exit: {err}");
    assert!(!err.trim().is_empty(), "no error message");
    err
}

/// Copy a read-only fixture into `dir` as a writable file.
pub fn writable_copy(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join(src.file_name().unwrap());
    std::fs::copy(src, &dst).unwrap();
    let mut perm = std::fs::metadata(&dst).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&dst, perm).unwrap();
    dst
}
