#!/usr/bin/env python3
"""Draws docs/benchmarks.svg and the README's results table from the tables in
docs/benchmarks.md: ratios to the kernel (ours beside the peers) for the FUSE server, the
overlay and ext3, and the container start-up times. Python 3 standard library only.

usage: benches/chart/make_chart.py [--doc docs/benchmarks.md] [--svg docs/benchmarks.svg]
                                   [--readme README.md]

--readme rewrites the part of README.md between `<!-- bench-table:start -->` and
`<!-- bench-table:end -->` with the table; without it the table goes to stdout.
Each panel is the table under a `## ` heading that starts with the panel's prefix: the one
right after a `<!-- chart -->` line in that section, else the first; columns are picked by
their header text. A missing section or column is an error."""

import argparse
import math
import os
import re
import sys
from xml.sax.saxutils import escape

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (heading prefix, title, reference column or None, [(header, legend label, ours?)],
#  row filter, unit). With a reference column, values are ratios to it (time rows: value /
#  reference; a "(N.NNx)" in the cell, which the harnesses write as time ratios, wins).
PANELS = [
    ("## FUSE server vs kernel", "SquashFS FUSE server (time / kernel squashfs)", "kernel",
     [("squashfuse_ll 0.1.105", "squashfuse_ll 0.1.105", False),
      ("squashfuse_ll 0.5.2 (MT)", "squashfuse_ll 0.5.2", False),
      ("squashbox", "squashbox", True)],
     lambda row: not row.startswith("peak server RSS"), "ratio"),
    ("## Overlay:", "Overlay over the image (time / kernel overlayfs)", "kernel",
     [("fo-1.14", "fuse-overlayfs 1.14", False),
      ("ours-stack", "squashbox overlay", True)], lambda row: True, "ratio"),
    ("## ext3:", "ext3 overlay image (time / kernel ext3)", "kernel ext3",
     [("fuse2fs 1.47.2", "fuse2fs 1.47.2", False), ("ours", "squashbox ext3", True)],
     lambda row: "RSS" not in row, "ratio"),
    ("## Container start-up", "Container start-up, `exec IMAGE /bin/true` (median ms)", None,
     [("median", "median", True)], lambda row: True, "ms"),
]
PEER_COLOURS = ["#9ecae1", "#6baed6", "#c6dbef"]
OURS_COLOUR = "#e6550d"


def sections(text):
    """{heading line: body} for every `## ` heading."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            cur = line.strip()
            out[cur] = []
        elif cur:
            out[cur].append(line)
    return out


CHART_MARK = "<!-- chart -->"


def chart_table(lines):
    """The table right after a `<!-- chart -->` line in `lines`, else the first table."""
    for i, line in enumerate(lines):
        if line.strip() == CHART_MARK:
            return first_table(lines[i + 1:])
    return first_table(lines)


def first_table(lines):
    """The first Markdown table in `lines`: (header cells, [row cells])."""
    rows = []
    for line in lines:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    if len(rows) < 3:
        return None
    return rows[0], [r for r in rows[2:] if len(r) == len(rows[0])]


NUM = re.compile(r"(-?\d+(?:\.\d+)?)\s*(ms|s|MiB/s|MiB)?")
RATIO = re.compile(r"\((\d+(?:\.\d+)?)x\)")


def seconds(cell):
    """The number in a cell, in seconds for times (ms converted); None for '-' or text."""
    m = NUM.search(cell.replace("**", ""))
    if not m or cell.strip() in ("-", ""):
        return None
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "ms" else v


def ratio_cell(cell, ref_cell):
    """A cell's ratio to the reference column: its own "(N.NNx)" if it has one, else the
    quotient of the two numbers."""
    m = RATIO.search(cell)
    if m:
        return float(m.group(1))
    v, ref = seconds(cell), seconds(ref_cell)
    if v is None or not ref:
        return None
    return v / ref


def panel_data(doc, panel):
    """[(row label, [(legend label, value, ours?)])] for one panel."""
    prefix, _, ref, cols, keep, unit = panel
    secs = sections(doc)
    heading = next((h for h in secs if h.startswith(prefix)), None)
    if heading is None:
        raise SystemExit(f"make_chart: no section starting with {prefix!r}")
    table = chart_table(secs[heading])
    if table is None:
        raise SystemExit(f"make_chart: no table under {heading!r}")
    header, rows = table
    # The start-up table's first column is the contender; its rows become the bars.
    if unit == "ms":
        col = header.index("median")
        bars = []
        for r in rows:
            name = re.sub(r"^`([^`]*)`:?\s*", "", r[0]) or r[0]
            if len(name) > 48:  # keep labels inside the margin: drop "(tmpfs upper)" etc.
                name = re.sub(r"\s*\([^)]*\)", "", name)
            v = seconds(r[col])
            if v is not None:
                bars.append((name, v * 1000, r[0].startswith("`ours")))
        return [("", bars)]
    try:
        idx = [(header.index(h), label, ours) for h, label, ours in cols]
        ref_i = header.index(ref)
    except ValueError as e:
        raise SystemExit(f"make_chart: {heading}: column missing ({e}); header {header}")
    out = []
    for r in rows:
        if not keep(r[0]):
            continue
        vals = [(label, ratio_cell(r[i], r[ref_i]), ours) for i, label, ours in idx]
        vals = [(label, v, ours) for label, v, ours in vals if v is not None]
        if vals:
            out.append((r[0], vals))
    return out


def svg(panels):
    """The chart: one block of horizontal grouped bars per panel; ratio panels on a log
    scale with the kernel at 1.0."""
    width, left, right, bar, gap = 980, 330, 40, 9, 8
    plot_w = width - left - right
    parts, y = [], 20
    ratios = [v for _, unit, data, _ in panels if unit == "ratio"
              for _, vals in data for _, v, _ in vals]
    lo = min([0.1] + [v / 1.2 for v in ratios])
    hi = max([2.0] + [v * 1.2 for v in ratios])
    for (title, unit, data, legend) in panels:
        note = "(shorter is better)"
        parts.append(f'<text x="10" y="{y + 14}" font-size="15" font-weight="bold">'
                     f'{escape(title)}<tspan dx="8" font-weight="normal" font-size="11">'
                     f'{note}</tspan></text>')
        y += 26
        # Legend.
        lx = left
        for label, colour in legend:
            parts.append(f'<rect x="{lx}" y="{y}" width="12" height="12" fill="{colour}"/>'
                         f'<text x="{lx + 16}" y="{y + 10}" font-size="11">{escape(label)}'
                         f'</text>')
            lx += 30 + 7 * len(label)
        y += 20
        values = [v for _, vals in data for _, v, _ in vals]
        if unit == "ratio":  # one log scale for every ratio panel
            scale = (lambda v: left + plot_w * (math.log10(v) - math.log10(lo))
                     / (math.log10(hi) - math.log10(lo)))
            ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if lo <= t <= hi]
            base = scale(1.0)
        else:
            top_v = max(values) * 1.15
            scale = (lambda v, top_v=top_v: left + plot_w * v / top_v)
            step = 10 ** math.floor(math.log10(top_v / 2)) if top_v > 0 else 1
            ticks = [step * i for i in range(0, int(top_v / step) + 1)]
            base = left
        top = y
        for row, vals in data:
            h = len(vals) * bar
            if row:
                parts.append(f'<text x="{left - 8}" y="{y + h / 2 + 4}" font-size="11" '
                             f'text-anchor="end">{escape(row)}</text>')
            for label, v, ours in vals:
                colour = dict(legend).get(label, OURS_COLOUR if ours else PEER_COLOURS[0])
                x0, x1 = sorted((base, scale(v)))
                fmt = f"{v:.2f}x" if unit == "ratio" else f"{v:.1f} ms"
                if not row:  # start-up: each bar is labelled with its contender
                    parts.append(f'<text x="{left - 8}" y="{y + bar}" font-size="11" '
                                 f'text-anchor="end">{escape(label)}</text>')
                parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" '
                             f'height="{bar - 1}" fill="{colour}"><title>{escape(row)} '
                             f'{escape(label)}: {fmt}</title></rect>')
                parts.append(f'<text x="{max(x0, x1) + 3:.1f}" y="{y + bar - 1}" '
                             f'font-size="8" fill="#444">{fmt}</text>')
                y += bar if row else bar + 8
            y += gap
        for t in ticks:
            x = scale(t)
            parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y}" '
                         f'stroke="{"#000" if (unit == "ratio" and t == 1) else "#ddd"}" '
                         f'stroke-width="{1.2 if (unit == "ratio" and t == 1) else 0.6}"/>')
            lab = (f"{t:g}x" + (" kernel" if t == 1 else "")) if unit == "ratio" else f"{t:g}"
            parts.append(f'<text x="{x:.1f}" y="{y + 12}" font-size="10" '
                         f'text-anchor="middle">{lab}</text>')
        y += 40
    body = "\n".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
            f'viewBox="0 0 {width} {y}" font-family="sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


def legend_of(panel):
    _, _, _, cols, _, unit = panel
    if unit == "ms":
        return [("squashbox", OURS_COLOUR), ("assembled peers", PEER_COLOURS[0])]
    out, k = [], 0
    for _, label, ours in cols:
        out.append((label, OURS_COLOUR if ours else PEER_COLOURS[k % len(PEER_COLOURS)]))
        k += 0 if ours else 1
    return out


def table(all_data):
    """The README's table: one line per panel row, ours and the peers' ratios."""
    lines = []
    for panel, data in all_data:
        title, unit = panel[1], panel[5]
        if unit == "ms":
            lines += ["", f"**{title}**", "", "| contender | median |", "|---|---|"]
            for _, vals in data:
                for label, v, _ in vals:
                    lines.append(f"| {label} | {v:.1f} ms |")
            continue
        labels = [label for _, label, _ in panel[3]]
        lines += ["", f"**{title}**", "", "| workload | " + " | ".join(labels) + " |",
                  "|---|" + "---|" * len(labels)]
        for row, vals in data:
            got = {label: v for label, v, _ in vals}
            cells = []
            for label, ours in [(lab, o) for _, lab, o in panel[3]]:
                v = got.get(label)
                c = "-" if v is None else f"{v:.2f}x"
                cells.append(f"**{c}**" if ours and v is not None else c)
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines).lstrip("\n") + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc", default=os.path.join(REPO, "docs", "benchmarks.md"))
    ap.add_argument("--svg", default=os.path.join(REPO, "docs", "benchmarks.svg"))
    ap.add_argument("--readme", help="README to update between the bench-table markers")
    a = ap.parse_args(argv)
    with open(a.doc) as f:
        doc = f.read()
    all_data = [(p, panel_data(doc, p)) for p in PANELS]
    drawn = [(p[1], p[5], data, legend_of(p)) for p, data in all_data]
    with open(a.svg, "w") as f:
        f.write(svg(drawn))
    text = table(all_data)
    if a.readme:
        with open(a.readme) as f:
            readme = f.read()
        start, end = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
        if start not in readme or end not in readme:
            raise SystemExit(f"make_chart: {a.readme} lacks the {start} / {end} markers")
        head, rest = readme.split(start, 1)
        _, tail = rest.split(end, 1)
        with open(a.readme, "w") as f:
            f.write(head + start + "\n" + text + end + tail)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
