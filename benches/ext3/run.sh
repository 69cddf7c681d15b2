#!/usr/bin/env bash
# Side-by-side ext3 benchmark; see benches/ext3/README.md.
# usage: benches/ext3/run.sh --tar TREE.tar [--contenders kernel,ours] [--markdown FILE]
exec /usr/bin/python3 -B "$(dirname "$0")/ext3_bench.py" "$@"
