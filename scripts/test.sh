#!/usr/bin/env bash
# Runs squashbox's test suite. As root on Debian it first installs the system packages the
# tests use (mksquashfs/unsquashfs, mkfs.ext3/e2fsck, fuse3/fusermount3, squashfuse, attr).
# Tests that need root (kernel loop mounts as oracles, mknod, unprivileged-user setup) run
# only as root and print "skipped: ..." otherwise.
#
# usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for pkg in squashfs-tools e2fsprogs fuse3 squashfuse attr util-linux passwd; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

cargo build --workspace --all-targets
cargo test --workspace "$@"
