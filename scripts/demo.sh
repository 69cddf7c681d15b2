#!/usr/bin/env bash
# The README's main command: builds squashbox (release) and runs it on the demo image the
# repo ships (fixtures/demo.sqfs): superblock facts, a long listing, a file, an extract, and
# a FUSE mount (as root, or as a plain user through fusermount3) that is listed, read and
# unmounted.
#
# usage: scripts/demo.sh [IMAGE]     (IMAGE may be a bare SquashFS or a SIF)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-fixtures/demo.sqfs}
cargo build --release -p squashbox
sb=target/release/squashbox
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== squashbox squashfs info $image"
$sb squashfs info "$image"
echo "== squashbox squashfs ls -l $image"
$sb squashfs ls -l "$image"
echo "== squashbox squashfs cat $image /README"
$sb squashfs cat "$image" /README || true
echo "== squashbox squashfs extract $image $work/root"
$sb squashfs extract "$image" "$work/root"
echo "extracted $(find "$work/root" | wc -l) entries"

echo "== squashbox mount $image $work/mnt (multithreaded FUSE server)"
mkdir -p "$work/mnt"
if $sb mount "$image" "$work/mnt"; then
  trap '$sb unmount "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT
  ls -la "$work/mnt"
  echo "-- $work/mnt/.singularity.d/runscript:"
  cat "$work/mnt/.singularity.d/runscript"
  echo "-- files under the mount: $(find "$work/mnt" | wc -l); bytes: $(cat $(find "$work/mnt" -type f) | wc -c)"
  $sb unmount "$work/mnt"
  echo "unmounted"
else
  echo "mount failed (no usable /dev/fuse or fusermount3 here?); the image tools above still ran"
fi
