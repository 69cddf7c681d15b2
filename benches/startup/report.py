"""Turns the start-up benchmark's raw times into tables (text and Markdown) and checks the
goals of issue 10. Python 3 standard library only; tested by test_report.py."""

import math
import statistics

# Contender -> (label, the assembled peer it is compared with).
CONTENDERS = {
    "ours-ro": ("squashbox exec (read-only)", "peers-ro"),
    "ours-tmpfs": ("squashbox exec --writable-tmpfs", "peers-overlay"),
    "ours-ext3": ("squashbox exec --overlay ext3.img", "peers-overlay"),
    "peers-ro": ("squashfuse_ll 0.5.2 + bwrap + fusermount3 -u", None),
    "peers-overlay": ("squashfuse_ll 0.5.2 + fuse-overlayfs 1.14 (tmpfs upper) + bwrap", None),
}
READ_ONLY_GOAL_S = 0.030
WRITABLE_SPEEDUP_GOAL = 2.0
STORM_GOAL = 1.05


def p95(values):
    """Nearest-rank 95th percentile: the smallest value with at least 95% of them at or
    below it (the 48th of 50)."""
    v = sorted(values)
    return v[max(0, math.ceil(0.95 * len(v)) - 1)]


def summary(values):
    """(median, p95, min) of a non-empty list, else None."""
    if not values:
        return None
    return statistics.median(values), p95(values), min(values)


def ms(v):
    return "-" if v is None else f"{v * 1000:.1f} ms"


def startup_rows(res):
    """Table rows: (contender, label, runs, median, p95, min, peer/ours ratio, failures,
    steps) for each contender in `res` ({name: {"total": [...], "steps": {...}, ...}})."""
    rows = []
    for name, (label, peer) in CONTENDERS.items():
        if name not in res:
            continue
        r = res[name]
        s = summary(r["total"])
        ratio = None
        if s and peer and res.get(peer, {}).get("total"):
            ratio = statistics.median(res[peer]["total"]) / s[0]
        steps = {k: statistics.median(v) for k, v in r.get("steps", {}).items() if v}
        rows.append((name, label, len(r["total"]), *(s or (None, None, None)), ratio,
                     len(r.get("errors", [])), steps))
    return rows


def storm_rows(storm):
    """Rows for the import storm: (procs, phase, bare median, container median, ratio,
    runs) from {procs: {"bare": [res...], "container": [res...]}}."""
    rows = []
    for procs in sorted(storm, key=int):
        modes = storm[procs]
        for phase in ("cold", "warm", "wall"):
            b = [x[phase] for x in modes.get("bare", []) if phase in x and "error" not in x]
            c = [x[phase] for x in modes.get("container", []) if phase in x and "error" not in x]
            mb = statistics.median(b) if b else None
            mc = statistics.median(c) if c else None
            ratio = mc / mb if mb and mc else None
            rows.append((int(procs), phase, mb, mc, ratio, min(len(b), len(c))))
    return rows


def goals(res, storm):
    """[(goal, MET|MISSED|UNKNOWN, detail)]."""
    out = []
    rows = {r[0]: r for r in startup_rows(res)}
    ro = rows.get("ours-ro")
    if ro and ro[3] is not None:
        ok = ro[3] <= READ_ONLY_GOAL_S
        out.append(("read-only start <= 30 ms median", "MET" if ok else "MISSED", ms(ro[3])))
        if ro[6] is not None:
            out.append(("read-only start faster than the assembled peers",
                        "MET" if ro[6] > 1 else "MISSED", f"peers take {ro[6]:.2f}x"))
    else:
        out.append(("read-only start <= 30 ms median", "UNKNOWN", "no successful run"))
    for name in ("ours-tmpfs", "ours-ext3"):
        r = rows.get(name)
        goal = f"{name}: at least 2x faster than the assembled peers"
        if r and r[6] is not None:
            out.append((goal, "MET" if r[6] >= WRITABLE_SPEEDUP_GOAL else "MISSED",
                        f"peers take {r[6]:.2f}x"))
        elif r:
            out.append((goal, "UNKNOWN", f"{r[7]} failed runs" if r[7] else "no peer time"))
    for procs, phase, _, _, ratio, _ in storm_rows(storm or {}):
        if phase == "wall":
            continue
        goal = f"import storm P={procs} {phase} in the container within 5% of the bare mount"
        if ratio is None:
            out.append((goal, "UNKNOWN", "a side failed"))
        else:
            out.append((goal, "MET" if ratio <= STORM_GOAL else "MISSED", f"{ratio:.3f}x"))
    return out


def markdown(res, storm):
    """The Markdown tables: start-up, its steps, the storm, the goals."""
    lines = ["| contender | median | p95 | min | assembled peers' median / this | failed |",
             "|---|---|---|---|---|---|"]
    for name, label, n, med, p, mn, ratio, fails, _ in startup_rows(res):
        rt = "-" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"| `{name}`: {label} | {ms(med)} | {ms(p)} | {ms(mn)} | {rt} | "
                     f"{fails} of {n + fails} |")
    lines += ["", "Median time of each step (a contender's steps run one after another):", "",
              "| contender | steps |", "|---|---|"]
    for name, _, _, _, _, _, _, _, steps in startup_rows(res):
        if steps:
            lines.append(f"| `{name}` | " + ", ".join(f"{k} {ms(v)}" for k, v in steps.items())
                         + " |")
    if storm:
        lines += ["", "| import storm | bare `squashbox mount` | in `squashbox exec` | "
                  "container / bare | runs |", "|---|---|---|---|---|"]
        for procs, phase, mb, mc, ratio, n in storm_rows(storm):
            what = {"cold": "cold (caches dropped)", "warm": "warm (same mount again)",
                    "wall": "whole command (mount or start, cold + warm, unmount)"}[phase]
            rt = "-" if ratio is None else f"{ratio:.3f}x"
            sec = (lambda v: "-" if v is None else f"{v:.2f} s")
            lines.append(f"| P={procs}, {what} | {sec(mb)} | {sec(mc)} | {rt} | {n} |")
    lines += ["", "| goal | result | figure |", "|---|---|---|"]
    lines += [f"| {g} | {r} | {d} |" for g, r, d in goals(res, storm)]
    return "\n".join(lines) + "\n"
