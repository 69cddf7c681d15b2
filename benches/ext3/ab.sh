#!/usr/bin/env bash
# Interleaved A/B of ext3 servers on the rows that move most: for each repetition and each
# contender in turn, a fresh 4 GiB mkfs.ext3 image, untar of TREE.tar, rm -rf of it, then
# 1024 random 4 KiB writes with fsync each (the fio job of run.sh). A contender is `kernel`
# (loop mount) or a command run as `CMD IMAGE MOUNTPOINT` that serves in the foreground, e.g.
# a two-line wrapper around `squashbox ext3 mount -f` or `fuse2fs -f ... -o allow_other`.
# Prints one line per run (seconds). Run as root.
#
# usage: benches/ext3/ab.sh REPS TREE.tar CONTENDER...
set -euo pipefail
reps=$1 tar=$2; shift 2
w=${WORK:-/var/tmp/squashbox-bench/ext3/ab}
mkdir -p "$w/m"
poll=/sys/module/haltpoll/parameters/guest_halt_poll_ns
echo "# vCPU halt polling: $(cat "$poll" 2>/dev/null || echo 'not a haltpoll guest') ns"
mounted() { grep -q " $(realpath "$w/m") " /proc/self/mountinfo; }
now() { date +%s.%N; }
for r in $(seq 1 "$reps"); do
  for c in "$@"; do
    mkfs.ext3 -q -F "$w/img" 4G
    pid=
    if [ "$c" = kernel ]; then
      mount -o loop -t ext3 "$w/img" "$w/m"
    else
      "$c" "$w/img" "$w/m" 2>"$w/server.log" &
      pid=$!
      for _ in $(seq 1 200); do mounted && break; sleep 0.05; done
    fi
    mkdir "$w/m/t"
    t0=$(now); tar -C "$w/m/t" -xf "$tar"
    t1=$(now); rm -rf "$w/m/t"
    t2=$(now)
    fio --name=r --filename="$w/m/rand" --size=64m --io_size=4m --rw=randwrite --bs=4k \
      --fsync=1 --ioengine=psync --output=/dev/null
    t3=$(now)
    umount "$w/m"
    [ -z "$pid" ] || wait "$pid"
    awk -v c="$(basename "$c")" -v r="$r" -v a="$t0" -v b="$t1" -v d="$t2" -v e="$t3" \
      'BEGIN { printf "%s rep%d untar %.2f rm %.2f randfsync %.2f\n", c, r, b - a, d - b, e - d }'
  done
done
