#!/usr/bin/env bash
# Side-by-side FUSE server benchmark; see benches/serve/README.md.
# usage: benches/serve/run.sh [--reps N] [--procs 1,4] [--workloads find,import] ...
exec /usr/bin/python3 -B "$(dirname "$0")/serve_bench.py" "$@"
