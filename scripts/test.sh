#!/usr/bin/env bash
# Runs squashbox's test suite. As root on Debian it first installs the system packages the
# tests use (mksquashfs/unsquashfs, mkfs.ext3/e2fsck, fuse3/fusermount3, squashfuse, attr,
# util-linux's unshare/setpriv, passwd's useradd, uidmap's newuidmap/newgidmap).
#
# Tests that need something missing here (root for FUSE and kernel loop mounts, a tool, a
# filesystem with user xattrs) record one line in the skip log instead of passing silently;
# the end of the run prints how many were skipped and why, also when tests fail. With CI=true
# a missing prerequisite fails its test instead.
#
# usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for pkg in squashfs-tools e2fsprogs fuse3 squashfuse attr util-linux mount passwd uidmap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

# pjdfstest (the POSIX conformance suite, Rust port) for the overlay's conformance test.
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v pjdfstest >/dev/null; then
  echo "installing: pjdfstest (cargo install)"
  cargo install --locked --quiet pjdfstest --version 0.2.2
fi
# fsx (the file system exerciser, Rust port) for the ext3 driver's conformance test.
if ! command -v fsx >/dev/null; then
  echo "installing: fsx (cargo install)"
  cargo install --locked --quiet fsx --version 0.3.2
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export SQUASHBOX_SKIP_LOG="${SQUASHBOX_SKIP_LOG:-$target_dir/test-skips.log}"
mkdir -p "$(dirname "$SQUASHBOX_SKIP_LOG")"
: >"$SQUASHBOX_SKIP_LOG"

report_skips() {
  local status=$? tests
  # One line per skip: "BINARY::TEST: reason"; a test may record more than one.
  tests=$(sed 's/: .*//' "$SQUASHBOX_SKIP_LOG" | sort -u | grep -c . || true)
  echo
  echo "== ${tests} tests skipped ($(grep -c . "$SQUASHBOX_SKIP_LOG" || true) skip lines;" \
    "log: $SQUASHBOX_SKIP_LOG) =="
  awk '!seen[$0]++ { print "skipped: " $0 }' "$SQUASHBOX_SKIP_LOG"
  exit "$status"
}
trap report_skips EXIT

cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
