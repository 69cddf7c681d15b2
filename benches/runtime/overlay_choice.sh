#!/usr/bin/env bash
# Which overlay should a container root use: squashbox's in-process overlay (image and upper
# in one FUSE server), or the kernel's overlayfs (allowed in a user namespace) over a
# squashbox FUSE mount of the image? Issue 10 asks to measure both and default to the faster.
#
# Runs every measurement inside `unshare --user --map-root-user --mount`, as an unprivileged
# container does, with a fresh mount and a fresh tmpfs upper each time; the two modes are
# interleaved, REPS times. Workloads: a stat walk of the merged tree, the import storm of
# benches/serve (4 processes), and copy-up (touch) of every .py under one package.
#
# usage: benches/runtime/overlay_choice.sh SQUASHBOX IMAGE [REPS] [PACKAGE_DIR]
#   IMAGE: a python prefix image such as benches/serve's python-stack.sqfs
#   PACKAGE_DIR: directory (inside the image) whose .py files are copied up
#                (default lib/python3.11/site-packages/sympy)
set -euo pipefail
sb=$(realpath "$1")
img=$(realpath "$2")
reps=${3:-3}
pkg=${4:-lib/python3.11/site-packages/sympy}
work=$(mktemp -d /tmp/overlay-choice.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/mpl"

cat >"$work/one.sh" <<'INNER'
#!/usr/bin/env bash
# In a fresh user and mount namespace: mount, run one workload, print seconds.
set -euo pipefail
mode=$1 sb=$2 img=$3 work=$4 wl=$5 pkg=$6
mkdir -p "$work/t" "$work/img" "$work/m"
mount -t tmpfs tmpfs "$work/t"
mkdir "$work/t/u" "$work/t/w"
if [ "$mode" = kernel ]; then
  "$sb" mount "$img" "$work/img"
  mount -t overlay overlay \
    -o "lowerdir=$work/img,upperdir=$work/t/u,workdir=$work/t/w,userxattr" "$work/m"
else
  "$sb" overlay mount --lower "$img" --upper "$work/t/u" --work "$work/t/w" "$work/m"
fi
m=$work/m
export PATH=/usr/bin:/bin LD_LIBRARY_PATH=$m/lib PYTHONHOME=$m PYTHONDONTWRITEBYTECODE=1 \
  PYTHONNOUSERSITE=1 MPLBACKEND=Agg MPLCONFIGDIR=$work/mpl OMP_NUM_THREADS=1 \
  OPENBLAS_NUM_THREADS=1 LC_ALL=C.UTF-8
py=$(ls "$m"/bin/python3.[0-9]* | head -1)
stmt="import numpy, scipy, scipy.stats, scipy.linalg, scipy.optimize, pandas, sympy, matplotlib, matplotlib.pyplot"
t0=$(date +%s.%N)
case $wl in
  stat) find "$m" -printf '%s %m\n' >/dev/null ;;
  import) for i in 1 2 3 4; do "$py" -c "$stmt" & done; wait ;;
  copyup) find "$m/$pkg" -name '*.py' -exec touch {} + ;;
esac
t1=$(date +%s.%N)
echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}'
umount "$m"
[ "$mode" = kernel ] && umount "$work/img"
umount "$work/t"
INNER
chmod +x "$work/one.sh"

printf '%-8s %-7s %s\n' workload mode seconds
for rep in $(seq "$reps"); do
  for wl in stat import copyup; do
    for mode in kernel inproc; do
      s=$(unshare --user --map-root-user --mount "$work/one.sh" "$mode" "$sb" "$img" "$work" "$wl" "$pkg")
      printf '%-8s %-7s %s\n' "$wl" "$mode" "$s"
    done
  done
done
