#!/usr/bin/env bash
# Where the server and the client run, and what it costs: untar TREE.tar into a fresh 4 GiB
# ext3 image served by `squashbox ext3 mount -f`, wait for a commit, then rm -rf it, with the
# server and the client pinned by taskset. On a VM whose idle vCPUs halt at once, a FUSE
# round trip between two CPUs pays for waking a halted vCPU; on one CPU it does not.
# Prints one line per placement. Run as root.
#
# usage: benches/ext3/placement.sh SQUASHBOX TREE.tar [SERVER_CPUS:CLIENT_CPUS ...]
#        (default placements: 0,1:0,1 0:0 0:1)
set -euo pipefail
bin=$1 tar=$2; shift 2
[ $# -gt 0 ] || set -- 0,1:0,1 0:0 0:1
w=${WORK:-/dev/shm/squashbox-placement}
mkdir -p "$w/m"
poll=/sys/module/haltpoll/parameters/guest_halt_poll_ns
echo "# vCPU halt polling: $(cat "$poll" 2>/dev/null || echo 'not a haltpoll guest') ns"
now() { date +%s.%N; }
for p in "$@"; do
  server=${p%%:*} client=${p##*:}
  mkfs.ext3 -q -F "$w/img" 4G
  taskset -c "$server" "$bin" ext3 mount -f "$w/img" "$w/m" 2>"$w/server.log" &
  pid=$!
  for _ in $(seq 1 200); do grep -q " $(realpath "$w/m") " /proc/self/mountinfo && break; sleep 0.05; done
  mkdir "$w/m/t"
  t0=$(now); taskset -c "$client" tar -C "$w/m/t" -xf "$tar"; t1=$(now)
  sleep 6
  t2=$(now); taskset -c "$client" rm -rf "$w/m/t"; t3=$(now)
  umount "$w/m"
  wait "$pid"
  awk -v s="$server" -v c="$client" -v a="$t0" -v b="$t1" -v d="$t2" -v e="$t3" \
    'BEGIN { printf "server %s client %s untar %.2f rm %.2f\n", s, c, b - a, e - d }'
done
rm -f "$w/img"
