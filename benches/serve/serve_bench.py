#!/usr/bin/env python3
"""Side-by-side benchmark of squashbox's FUSE server against the kernel's SquashFS driver,
squashfuse and squashfuse_ll (Debian bookworm 0.1.105 and the multithreaded 0.5.2).

See benches/serve/README.md. Run as root (kernel loop mount, drop_caches)."""

import argparse
import collections
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbench import contenders as cont  # noqa: E402
from sbench import image, proc, profile, report, workloads  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALL_PEERS = os.path.join(REPO, "benches", "install-peers.sh")
MOUNT_ROW = "mount (until stat answers)"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/var/tmp/squashbox-bench",
                    help="cache/work dir for the image and the mount point")
    ap.add_argument("--python", default=None,
                    help="CPython whose interpreter and stdlib go into the image (a path or a "
                    "name on PATH; shims and venvs resolve to the real install). Default: "
                    "python3 on PATH, else the interpreter running this script")
    ap.add_argument("--contenders",
                    default="kernel,squashfuse,squashfuse_ll,squashfuse_ll-0.5.2,squashbox",
                    help="comma list; also available: squashbox_ll (the drop-in argv)")
    ap.add_argument("--workloads", default=",".join(workloads.ALL),
                    help="comma list of " + ",".join(workloads.ALL))
    ap.add_argument("--procs", default="1,2,4,8,16", help="import storm process counts")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (median reported)")
    ap.add_argument("--import-reps", type=int, default=None,
                    help="repetitions of the import storm (default: --reps)")
    ap.add_argument("--timeout", type=float, default=300, help="per workload command, seconds")
    ap.add_argument("--fio-runtime", type=int, default=10, help="seconds per fio run")
    ap.add_argument("--fio-files", type=int, default=16, help="how many of the largest files")
    ap.add_argument("--squashbox", default=os.path.join(REPO, "target/release/squashbox"))
    ap.add_argument("--squashbox-opts", default="", help="-o options for squashbox, e.g. "
                    "threads=2,cache=256")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=BINARY[:OPTS]",
                    help="also run another squashbox build (or the same with other -o "
                    "options) as contender squashbox-NAME; repeatable")
    ap.add_argument("--peers", default=None, help="install-peers prefix (default: the "
                    "installer's, $XDG_DATA_HOME or ~/.local/share, /squashbox-peers)")
    ap.add_argument("--install-peers", default=INSTALL_PEERS,
                    help="script run once to fill --peers if it lacks squashfuse_ll 0.5.2 "
                    "('' to never); default benches/install-peers.sh")
    ap.add_argument("--profile", metavar="CONTENDER", help="perf-record that contender's "
                    "server (the whole machine for 'kernel') in every session; reports go to "
                    "WORK/perf/. Profiled timings are not comparable: use a separate run")
    ap.add_argument("--count-requests", action="store_true", help="count the FUSE requests "
                    "each FUSE session gets, by opcode (perf tracepoint); printed as a second "
                    "table. Adds a little perf overhead: use a separate run")
    ap.add_argument("--markdown", help="also write the table (and run details) as Markdown")
    ap.add_argument("--json", help="also write raw measurements as JSON")
    a = ap.parse_args(argv)
    if a.import_reps is None:
        a.import_reps = a.reps
    a.peers = a.peers or default_peers()
    if a.python is None:
        a.python = image.default_python()
    else:
        real, why = image.real_cpython(a.python)
        if why:
            ap.error(f"--python: {why}")
        a.python = real
    a.procs = [int(x) for x in a.procs.split(",") if x]
    a.contenders = [x for x in a.contenders.split(",") if x]
    a.workloads = [x for x in a.workloads.split(",") if x]
    a.variants = []
    for v in a.variant:
        name, _, rest = v.partition("=")
        path, _, opts = rest.partition(":")
        if not name or not path:
            ap.error(f"--variant wants NAME=BINARY[:OPTS], got {v!r}")
        a.variants.append((name, os.path.abspath(path), opts))
        a.contenders.append(f"squashbox-{name}")
    bad = [w for w in a.workloads if w not in workloads.ALL]
    if bad:
        ap.error(f"unknown workload(s): {', '.join(bad)}")
    return a


def default_peers():
    """install-peers.sh's own default prefix, so every benchmark shares one install."""
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    return os.path.join(data, "squashbox-peers")


def install_peers(a):
    """Runs the installer into --peers when squashfuse_ll 0.5.2 is wanted and missing."""
    if os.path.exists(os.path.join(a.peers, "bin", "squashfuse_ll")) or not a.install_peers \
            or "squashfuse_ll-0.5.2" not in a.contenders:
        return
    if not os.path.exists(a.install_peers):
        log(f"no installer at {a.install_peers}; squashfuse_ll 0.5.2 will be skipped")
        return
    log(f"installing peers into {a.peers} with {a.install_peers}")
    r = subprocess.run(["bash", a.install_peers, a.peers], stdout=sys.stderr)
    if r.returncode != 0:
        log(f"installing peers failed (exit {r.returncode}); squashfuse_ll 0.5.2 is skipped")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}"


class Runner:
    """Runs every (repetition, workload, contender) on a fresh mount and collects values."""

    def __init__(self, args, img, meta, chosen):
        self.args, self.img, self.meta, self.chosen = args, img, meta, chosen
        self.mnt = os.path.join(args.work, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        self.results = collections.OrderedDict()
        self.fails = collections.Counter()
        self.errors = []
        self.mount_failures = collections.Counter()
        self.ctx = None
        self.requests = collections.OrderedDict()

    def record(self, row, name, value):
        self.results.setdefault(row, collections.OrderedDict())
        self.results[row].setdefault(name, []).append(value)

    def prepare(self):
        """Untimed: one mount to list the fio files and warm matplotlib's font cache."""
        m, why = None, []
        for c in self.chosen:
            try:
                m = c.mount(self.img, self.mnt, "bin")
                break
            except Exception as e:  # noqa: BLE001 - try the next contender
                why.append(f"{c.name}: {e}")
        if m is None:
            sys.exit("no contender could mount the image: " + "; ".join(why))
        try:
            files = workloads.largest_files(self.mnt, self.args.fio_files)
            self.ctx = workloads.Ctx(self.args, self.meta, self.mnt, files)
            workloads.run_import(self.ctx, m, 1, cold=False)
        finally:
            m.unmount()

    def session(self, c, rows_hint, fn, rss_row):
        """Mounts with contender c, runs fn(ctx, mounted) -> {row: value}, unmounts."""
        if self.mount_failures[c.name] >= 2:
            for r in rows_hint:
                self.fails[(r, c.name)] += 1
            return
        for r in rows_hint:
            self.results.setdefault(r, collections.OrderedDict())
        try:
            m = c.mount(self.img, self.mnt, "bin")
        except Exception as e:  # noqa: BLE001 - any mount failure is reported, not fatal
            self.mount_failures[c.name] += 1
            self.errors.append(f"{c.name}: mount failed: {e}")
            log(f"  {c.name}: mount failed: {e}")
            for r in rows_hint:
                self.fails[(r, c.name)] += 1
            return
        self.record(MOUNT_ROW, c.name, m.mount_seconds)
        prof = None
        if self.args.profile == c.name:
            self.nprof = getattr(self, "nprof", 0) + 1
            prof = profile.Profiler(self.args.work, m, f"{self.nprof}-{rows_hint[0][:24]}")
        counter = None
        if self.args.count_requests and m.server is not None:
            counter = profile.RequestCounter(self.args.work, m)
        try:
            vals = fn(self.ctx, m)
            for r, v in vals.items():
                self.record(r, c.name, v)
            log(f"  {c.name:22s} " + ", ".join(
                f"{r}: {report.fmt_value(r, v)}" for r, v in vals.items()))
        except Exception as e:  # noqa: BLE001 - a failed workload is a table cell, not a crash
            why = f"server died: {cont.log_tail(m.log)}; " if not m.alive() else ""
            self.errors.append(f"{c.name}: {'/'.join(rows_hint)}: {why}{e}")
            log(f"  {c.name}: FAILED {why}{e}")
            for r in rows_hint:
                self.fails[(r, c.name)] += 1
        if prof is not None:
            log(f"  perf report: {prof.stop()}")
        if counter is not None:
            self.requests.setdefault(rss_row, {})[c.name] = counter.stop()
        rss = m.peak_rss_mib()
        if rss is not None:
            self.record(f"{report.RSS_PREFIX}{rss_row}", c.name, rss)
        m.unmount()

    def run(self):
        a = self.args
        for rep in range(max(a.reps, a.import_reps)):
            k = rep % len(self.chosen)
            order = self.chosen[k:] + self.chosen[:k]
            log(f"repetition {rep + 1}/{a.reps}, order: {', '.join(c.name for c in order)}, "
                f"load {os.getloadavg()[0]:.2f}")
            for wl in a.workloads:
                if (wl == "import" and rep >= a.import_reps) or (wl != "import" and
                                                                 rep >= a.reps):
                    continue
                if wl == "import":
                    self.run_imports(order)
                    continue
                rows, fn = workloads.SIMPLE[wl]
                log(f" {wl}")
                for c in order:
                    self.session(c, rows, fn, wl)

    def run_imports(self, order):
        for p in self.args.procs:
            cold, warm = f"import storm P={p}, cold", f"import storm P={p}, warm"
            log(f" import P={p}")

            def fn(ctx, m, p=p, cold=cold, warm=warm):
                out = {cold: workloads.run_import(ctx, m, p, cold=True)}
                out[warm] = workloads.run_import(ctx, m, p, cold=False)
                return out
            for c in order:
                self.session(c, [cold, warm], fn, "import storm")

    def ordered_results(self):
        """Rows in a stable order: mount, simple workloads, imports, RSS."""
        def key(row):
            if row == MOUNT_ROW:
                return (0, 0, row)
            if row.startswith("import storm"):
                p = int(row.split("P=")[1].split(",")[0])
                return (2, p, row.endswith("warm"))
            if report.is_rss(row):
                return (3, 0, row)
            return (1, 0, "")
        rows = sorted(self.results, key=key)
        return collections.OrderedDict((r, self.results[r]) for r in rows)


def main(argv):
    a = parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    img, meta = image.ensure_image(a.work, a.python)
    install_peers(a)
    known = {c.name: c for c in cont.all_contenders(a)}
    chosen, notes = [], []
    for name in a.contenders:
        c = known.get(name)
        if c is None:
            sys.exit(f"unknown contender {name!r}; known: {', '.join(known)}")
        try:
            c.check()
            chosen.append(c)
        except cont.Unavailable as e:
            notes.append(f"skipped {name}: {e}")
            log(notes[-1])
    if not chosen:
        sys.exit("no contender available")
    if os.geteuid() != 0 and "import" in a.workloads:
        sys.exit("the cold import storm needs root (drop_caches); drop 'import' or run as root")
    runner = Runner(a, img, meta, chosen)
    load0, busy0, ours0, t0 = os.getloadavg(), proc.cpu_busy_seconds(), \
        proc.children_cpu_seconds(), time.time()
    try:
        runner.prepare()
        runner.run()
    finally:
        cont.force_unmount(runner.mnt)
    wall = time.time() - t0
    foreign = (proc.cpu_busy_seconds() - busy0) - (proc.children_cpu_seconds() - ours0)
    results = runner.ordered_results()
    rows = report.table(results, runner.fails, chosen)
    goal_lines = []
    sb = known.get("squashbox")
    if sb in chosen:
        goal_lines = report.goals(results, rss_limit=sb.cache_mib() + 32)
    mismatch = {n: d for n, d in runner.ctx.digests.items()
                if d != runner.ctx.digests.get(chosen[0].name)}
    foreign_pct = max(0.0, 100 * foreign / wall / os.cpu_count())
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    details = [
        f"date: {started:%Y-%m-%d %H:%M} UTC; wall {wall / 60:.1f} min",
        f"machine: {machine()}",
        f"load: loadavg {load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; CPU used "
        f"by other processes during the run ~{foreign_pct:.0f}% of the machine",
        f"image: {meta['files']} files, {meta['dirs']} dirs, {meta['bytes'] / 2**20:.0f} MiB "
        f"-> {meta['image_bytes'] / 2**20:.0f} MiB squashfs ({' '.join(meta['mksquashfs'])}); "
        f"CPython {meta['pyver']} + {versions}",
        f"repetitions: {a.reps}, import storm {a.import_reps} (median shown); ratio = time / "
        f"kernel time (MiB/s rows: kernel MiB/s / MiB/s), so < 1.00x is faster than the kernel",
        "command: " + " ".join(shlex.quote(x) for x in ["benches/serve/run.sh"] + argv),
    ] + notes + [f"error: {e}" for e in runner.errors[:20]] + \
        [f"sha256 digest list of {n} differs from {chosen[0].name}'s!" for n in mismatch]
    print()
    print(report.as_text(rows))
    req_rows = report.request_table(runner.requests, chosen) if runner.requests else None
    if req_rows:
        print("\nFUSE requests per session (last repetition), total and top opcodes:")
        print(report.as_text(req_rows))
    print()
    for line in details + goal_lines:
        print(line)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(report.as_markdown(rows) + "\n\n")
            if req_rows:
                f.write("FUSE requests per session (last repetition), total and top opcodes:"
                        "\n\n" + report.as_markdown(req_rows) + "\n\n")
            f.write("\n".join(f"- {line}" for line in details) + "\n")
            if goal_lines:
                f.write("\nGoals (issue 4):\n\n" + "\n".join(f"- {g}" for g in goal_lines)
                        + "\n")
    if a.json:
        with open(a.json, "w") as f:
            fails = {f"{r}|{c}": n for (r, c), n in runner.fails.items()}
            json.dump({"results": results, "fuse_requests": runner.requests, "fails": fails,
                       "details": details, "meta": meta}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
