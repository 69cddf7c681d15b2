#!/bin/bash
# A/B of two squashbox builds by the server's own CPU time (utime + stime of the whole server
# process, from /proc/PID/stat) and wall time, for the same cold workloads, alternating.
# CPU time barely moves with other load on the machine, so this compares builds where wall
# times are too noisy. As root (drop_caches).
# usage: benches/serve/ab_server_cpu.sh BEFORE_BIN AFTER_BIN IMAGE [REPS]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BEFORE_BIN AFTER_BIN IMAGE [REPS]" >&2; exit 2; }
before=$1 after=$2 img=$3 reps=${4:-3}
tck=$(getconf CLK_TCK)
run() { # BIN NAME WORKLOAD
  local bin=$1 name=$2 wl=$3 m
  m=$(mktemp -d)
  "$bin" mount -f "$img" "$m" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do mountpoint -q "$m" && break; sleep 0.1; done
  sync; echo 3 > /proc/sys/vm/drop_caches
  local s e ut st
  s=$(date +%s.%N)
  case $wl in
    readall) tar -cf - -C "$m" . | cat > /dev/null ;;
    stat) find "$m" -printf '%s %m %U %T@\n' > /dev/null ;;
  esac
  e=$(date +%s.%N)
  read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
  printf '%s %s wall=%.2f cpu=%.2f\n' "$name" "$wl" "$(echo "$e - $s" | bc)" \
    "$(echo "($ut + $st) / $tck" | bc -l)"
  "$bin" unmount "$m"; wait "$pid" 2>/dev/null || true; rmdir "$m"
}
for _ in $(seq "$reps"); do
  for wl in readall stat; do
    run "$before" before "$wl"
    run "$after" after "$wl"
  done
done
