#!/usr/bin/env bash
# The crash loop of issue 9, against one FUSE ext3 server: N times, mount a fresh 1 GiB
# mkfs.ext3 image, start an untar into it, SIGKILL the server at a random moment (0.5-3.5 s
# in), detach the dead mount, remount the image with the same server (ours replays its
# journal there; fuse2fs has none to replay) and unmount it, then run `e2fsck -fn`. Prints
# one line per iteration and a summary: images with errors ("Fix? no", or e2fsck exit status
# 4 and up) and remounts that failed or hung (20 s). Run as root.
#
# usage: benches/ext3/crash_loop.sh --server ours|fuse2fs-1.47.2|fuse2fs-1.47.0 --tar T.tar
#        [--squashbox BIN] [--iters N] [--work DIR]
set -uo pipefail
server=ours tar= bin=target/release/squashbox iters=10 work=/var/tmp/squashbox-bench/ext3/crash
peers="${XDG_DATA_HOME:-$HOME/.local/share}/squashbox-peers/bin"
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=$2; shift 2 ;;
    --tar) tar=$2; shift 2 ;;
    --squashbox) bin=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$tar" ] || { echo "--tar is required" >&2; exit 2; }
mkdir -p "$work/m"
img=$work/img
mounted() { grep -q " $(realpath "$work/m") " /proc/self/mountinfo; }
serve() {
  case "$server" in
    ours) "$bin" ext3 mount -f "$img" "$work/m" 2>/dev/null & ;;
    fuse2fs-1.47.2) "$peers/fuse2fs-1.47.2" -f "$img" "$work/m" -o allow_other 2>/dev/null & ;;
    fuse2fs-1.47.0) /usr/bin/fuse2fs -f "$img" "$work/m" -o allow_other 2>/dev/null & ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
  esac
  pid=$!
  for _ in $(seq 1 400); do mounted && return 0; sleep 0.05; done
  return 1
}
bad=0 hung=0
for i in $(seq 1 "$iters"); do
  mkfs.ext3 -q -F "$img" 1G
  serve || { echo "iteration $i: first mount failed" >&2; exit 1; }
  mkdir "$work/m/t"
  tar -C "$work/m/t" -xf "$tar" 2>/dev/null &
  tpid=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.5 + 3 * rand() }')"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null
  umount -l "$work/m" 2>/dev/null || fusermount3 -u -z "$work/m" 2>/dev/null
  wait "$tpid" 2>/dev/null
  remount=ok
  if serve; then
    umount "$work/m"
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  else
    remount=failed-or-hung; hung=$((hung + 1))
  fi
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  mounted && umount -l "$work/m"
  out=$(e2fsck -fn "$img" 2>&1); rc=$?
  verdict=clean
  if [ $rc -ge 4 ] || grep -q "Fix? no" <<<"$out"; then verdict=errors; bad=$((bad + 1)); fi
  echo "iteration $i: remount $remount; e2fsck -fn exit $rc, $verdict"
done
echo "$server: $bad of $iters images with errors after SIGKILL mid-untar; $hung remounts failed or hung"
