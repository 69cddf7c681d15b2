#!/usr/bin/env bash
# Container start-up benchmark (issue 10); see benches/startup/README.md. Run as root.
# usage: benches/startup/run.sh [--runs 50] [--procs 1,4] [--markdown FILE] [--json FILE] ...
exec /usr/bin/python3 -B "$(dirname "$0")/startup_bench.py" "$@"
