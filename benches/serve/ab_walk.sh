#!/bin/bash
# A/B of two (or more) squashbox builds on metadata walks, interleaved ABBA, a fresh mount per
# walk (so the kernel's FUSE caches start empty), as root. Per walk it prints one line:
#   BIN WORKLOAD wall_ms server_cpu_ms server_wait_ms find_cpu_ms server_ctx_switches
# and at the end the median of each column per build and workload, and each build's ratio to
# the first. Server CPU is the run time of all its threads and server wait the time they sat
# runnable waiting for a CPU (both from /proc/PID/task/*/schedstat, in ns); find's CPU is
# utime+stime. CPU times barely move with other load on the machine; wall time and wait do,
# so read the wall medians with the wait and the spread in mind.
# usage: benches/serve/ab_walk.sh [-c] [-n REPS] [-w find,stat] IMAGE BIN_A BIN_B [BIN...]
#   -c  cold: drop the page cache (the image's pages too) before each walk
set -euo pipefail
cold=0 reps=10 wls=find,stat
while getopts cn:w: o; do
  case $o in
    c) cold=1 ;;
    n) reps=$OPTARG ;;
    w) wls=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 3 ] || { echo "usage: $0 [-c] [-n REPS] [-w find,stat] IMAGE BIN_A BIN_B [BIN...]" >&2; exit 2; }
img=$1
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT

walk() { # BIN WORKLOAD
  local bin=$1 wl=$2 m pid s e run wait fcpu ctx
  m=$(mktemp -d)
  "$bin" mount -f "$img" "$m" 2>/dev/null &
  pid=$!
  for _ in $(seq 250); do mountpoint -q "$m" && break; sleep 0.02; done
  if [ "$cold" = 1 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi
  local fmt
  case $wl in
    find) fmt='' ;;
    stat) fmt='%s %m %U %T@\n' ;;
    *) echo "unknown workload $wl" >&2; exit 2 ;;
  esac
  s=$(date +%s%N)
  if [ -n "$fmt" ]; then
    fcpu=$( { /usr/bin/time -f '%U %S' find "$m" -printf "$fmt" > /dev/null; } 2>&1 )
  else
    fcpu=$( { /usr/bin/time -f '%U %S' find "$m" > /dev/null; } 2>&1 )
  fi
  e=$(date +%s%N)
  read -r run wait < <(cat /proc/"$pid"/task/*/schedstat | awk '{r += $1; w += $2} END {print r, w}')
  ctx=$(cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}')
  printf '%s %s %d %d %d %d %d\n' "$bin" "$wl" $(((e - s) / 1000000)) \
    $((run / 1000000)) $((wait / 1000000)) \
    "$(echo "$fcpu" | awk '{printf "%d", ($1 + $2) * 1000}')" "$ctx" |
    tee -a "$out"
  "$bin" unmount "$m"
  wait "$pid" 2>/dev/null || true
  rmdir "$m"
}

for r in $(seq "$reps"); do
  bins=("$@")
  if [ $((r % 2)) = 0 ]; then # ABBA: every other repetition runs the builds in reverse
    mapfile -t bins < <(printf '%s\n' "$@" | tac)
  fi
  for wl in ${wls//,/ }; do
    for b in "${bins[@]}"; do walk "$b" "$wl"; done
  done
done

echo "medians over $reps walks (wall_ms server_cpu_ms server_wait_ms find_cpu_ms ctx_switches;"
echo "wall ratio to $1, and in how many walks of its pair it was the slower):"
/usr/bin/python3 - "$out" "$1" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
base = sys.argv[2]
med = {}
for b, wl in dict.fromkeys((r[0], r[1]) for r in rows):
    cols = [[int(r[i]) for r in rows if r[0] == b and r[1] == wl] for i in range(2, 7)]
    med[b, wl] = ([statistics.median(c) for c in cols], cols[0])
for (b, wl), (m, walls) in med.items():
    ref = med.get((base, wl))
    ratio = ""
    if ref and ref[0][0]:
        slower = sum(x > y for x, y in zip(walls, ref[1]))
        ratio = f"  wall x{m[0] / ref[0][0]:.2f} (slower in {slower} of {len(walls)})"
    print(f"{wl:5s} {b}: " + " ".join(f"{v:.0f}" for v in m) + ratio)
EOF
