#!/usr/bin/env bash
# Side-by-side overlay benchmark; see benches/overlay/README.md.
# usage: benches/overlay/run.sh [--reps N] [--workloads stat,copyup,...] [--markdown FILE]
exec /usr/bin/python3 -B "$(dirname "$0")/overlay_bench.py" "$@"
