"""Turns raw measurements into the side-by-side table (text and Markdown) and the goal check."""

import statistics

RSS_PREFIX = "peak server RSS: "


def is_rss(row):
    """Rows of the server's peak resident memory (MiB) during one kind of workload."""
    return row.startswith(RSS_PREFIX)


def is_rate(row):
    """Throughput rows (higher is better) end in MiB/s."""
    return row.endswith("MiB/s")


def fmt_value(row, v):
    if is_rate(row):
        return f"{v:.0f} MiB/s"
    if is_rss(row):
        return f"{v:.0f} MiB"
    if v < 1:
        return f"{v * 1000:.0f} ms"
    return f"{v:.2f} s"


def ratio(row, v, base):
    """Contender relative to the kernel as a time ratio (< 1 means faster than the kernel)."""
    if base is None or v is None or is_rss(row) or base == 0 or v == 0:
        return None
    return base / v if is_rate(row) else v / base


def medians(results):
    """{row: {contender: median}} from {row: {contender: [values]}}."""
    return {row: {c: statistics.median(vs) for c, vs in cols.items() if vs}
            for row, cols in results.items()}


def table(results, fails, contenders, baseline="kernel"):
    """Rows of cells: header, then one row per measurement, 'value (ratio)' per contender."""
    med = medians(results)
    header = ["workload"] + [c.label for c in contenders]
    rows = [header]
    for row in results:
        base = med[row].get(baseline)
        cells = [row.removesuffix(" MiB/s")]
        for c in contenders:
            v = med[row].get(c.name)
            nfail = fails.get((row, c.name), 0)
            if v is None:
                cells.append("FAIL" if nfail else "-")
                continue
            r = ratio(row, v, base)
            cell = fmt_value(row, v)
            if r is not None and c.name != baseline:
                cell += f" ({r:.2f}x)"
            if nfail:
                cell += f" [{nfail} failed]"
            cells.append(cell)
        rows.append(cells)
    return rows


def as_text(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_markdown(rows):
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def goals(results, ours="squashbox", baseline="kernel",
          peers=("squashfuse_ll", "squashfuse_ll-0.5.2"), rss_limit=None):
    """Checks issue 4's goals for `ours`; returns lines 'MET/MISSED goal: detail'."""
    med = medians(results)
    lines = []

    def check(label, rows, limit):
        for row in rows:
            v, b = med[row].get(ours), med[row].get(baseline)
            r = ratio(row, v, b)
            if r is None:
                lines.append(f"n/a    {label}: {row}: no {ours if v is None else baseline} value")
            else:
                ok = "MET   " if r <= limit else "MISSED"
                lines.append(f"{ok} {label}: {row}: {r:.2f}x kernel (goal <= {limit}x)")

    check("warm import", [r for r in med if r.startswith("import") and r.endswith("warm")], 1.05)
    check("cold import", [r for r in med if r.startswith("import") and r.endswith("cold")], 1.0)
    check("find", [r for r in med if r.startswith("find (names)")], 1.2)
    check("read all", [r for r in med if r.startswith("read all")], 1.0)
    if rss_limit is not None:
        peak = max((v for row, cols in results.items() if is_rss(row)
                    for c, vs in cols.items() if c == ours for v in vs), default=None)
        if peak is not None:
            ok = "MET   " if peak <= rss_limit else "MISSED"
            lines.append(f"{ok} memory: peak server RSS {peak:.0f} MiB (goal <= cache + 32 = "
                         f"{rss_limit} MiB)")
    for row in med:
        if is_rss(row):
            continue
        v = med[row].get(ours)
        for p in peers:
            pv = med[row].get(p)
            if v is None or pv is None:
                continue
            better = v > pv if is_rate(row) else v < pv
            if not better:
                r = ratio(row, v, pv)
                lines.append(f"MISSED faster than {p}: {row}: {r:.2f}x of its time")
    measured = any(ours in c for c in med.values())
    if measured and not any(line.startswith("MISSED faster") for line in lines):
        lines.append(f"MET    faster than {', '.join(peers)} on every row measured")
    return lines


def _k(n):
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def request_table(requests, contenders, top=4):
    """Rows: one per workload, 'total (OP n, ...)' per FUSE contender."""
    fuse = [c for c in contenders if any(c.name in v for v in requests.values())]
    rows = [["workload"] + [c.label for c in fuse]]
    for wl, per in requests.items():
        cells = [wl]
        for c in fuse:
            counts = per.get(c.name)
            if not counts:
                cells.append("-")
                continue
            ops = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
            cells.append(f"{_k(sum(counts.values()))} (" +
                         ", ".join(f"{op} {_k(n)}" for op, n in ops) + ")")
        rows.append(cells)
    return rows
