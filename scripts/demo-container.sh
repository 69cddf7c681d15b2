#!/usr/bin/env bash
# The README's main command: builds squashbox (release) and runs the Apptainer SIF the repo
# ships (fixtures/upstream/apptainer-e2e/busybox_amd64.sif) as a container, as whoever runs
# this script (a plain user is the point: no setuid, no root, no helper processes):
# what the host allows (doctor), the image's metadata (inspect), its runscript (run), a
# command (exec), a writable tmpfs that forgets, an ext3 overlay that remembers, start-up
# times, and the foreign-architecture refusal.
#
# If this host does not let you run containers (no usable /dev/fuse, user namespaces off),
# it says why and runs the image-tools demo (scripts/demo.sh) instead.
#
# usage: scripts/demo-container.sh [IMAGE]     (a SIF, a SquashFS image or a sandbox dir)
#   SQUASHBOX=/path/to/squashbox skips the build and uses that binary (e.g. a static build).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-fixtures/upstream/apptainer-e2e/busybox_amd64.sif}
if [ -n "${SQUASHBOX:-}" ]; then
  sb=$SQUASHBOX
else
  cargo build --release -p squashbox
  sb=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/squashbox
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '\n== %s\n' "$*"; }

say "squashbox doctor (what this host allows, as $(id -un))"
"$sb" doctor || true

say "squashbox exec $image /bin/true"
if ! err=$("$sb" exec "$image" /bin/true 2>&1); then
  echo "$err"
  echo
  echo "This host does not let $(id -un) run a container yet: see the doctor's lines above"
  echo "(a 'no' says what to do). Running the image-tools demo instead, which needs nothing."
  exec scripts/demo.sh "$image"
fi
echo "ok: exit 0"

say "squashbox inspect $image"
"$sb" inspect "$image" || true

say "squashbox run $image echo ... (the image's runscript)"
"$sb" run "$image" echo "hello from the busybox container, as uid $(id -u)"

say "squashbox exec $image sh -c 'id; what is /'"
"$sb" exec "$image" sh -c 'id; echo "/ is: $(grep " / / " /proc/self/mountinfo | sed "s/.* - //" | cut -d" " -f1-2)"; busybox | head -1'

say "--writable-tmpfs: writes go to a tmpfs and are gone at exit"
"$sb" exec --writable-tmpfs "$image" sh -c 'echo written > /scratch && cat /scratch'
"$sb" exec "$image" sh -c 'test -e /scratch && echo "still there?!" || echo "next run: /scratch is gone"'

say "an ext3 overlay image (squashbox overlay create): writes persist"
"$sb" overlay create --size 64 "$work/overlay.img"
"$sb" exec --overlay "$work/overlay.img" "$image" sh -c 'date > /kept && echo "wrote /kept: $(cat /kept)"'
"$sb" exec --overlay "$work/overlay.img" "$image" sh -c 'echo "next run: /kept says $(cat /kept)"'
"$sb" exec "$image" sh -c 'test -e /kept && echo "without the overlay: /kept?!" || echo "without the overlay: no /kept"'

say "start-up: 10 x squashbox exec $image /bin/true"
start=$(date +%s%N)
for _ in 1 2 3 4 5 6 7 8 9 10; do "$sb" exec "$image" /bin/true; done
echo "mean $(( ($(date +%s%N) - start) / 10000000 )) ms per container (start, run, tear down);"
echo "benches/startup/run.sh compares it with squashfuse_ll + bwrap (docs/benchmarks.md)"

arm=fixtures/upstream/apptainer-e2e/busybox_arm64.sif
if [ "$image" != "$arm" ] && [ -f "$arm" ] && [ "$(uname -m)" != aarch64 ]; then
  say "a foreign-architecture image fails before anything is mounted (exit 255)"
  "$sb" exec "$arm" /bin/true || echo "exit $?"
fi
