"""Checks the chart script's Markdown parsing and ratios on a small made-up document:
python3 -B -m unittest benches/chart/test_make_chart.py"""

import os
import sys
import unittest
import xml.dom.minidom

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_chart as mc  # noqa: E402

DOC = """# Benchmarks

## FUSE server vs kernel, squashfuse, squashfuse_ll

text

| workload | kernel | squashfuse 0.1.105 | squashfuse_ll 0.1.105 | squashfuse_ll 0.5.2 (MT) | squashbox |
|---|---|---|---|---|---|
| find (names) | 96 ms | 1.19 s (12.32x) | 481 ms (4.99x) | 335 ms (3.47x) | 313 ms (3.25x) |
| fio randread 4k, 4 jobs | 313 MiB/s | 11 MiB/s (28.18x) | 12 MiB/s (27.04x) | 30 MiB/s (10.53x) | 175 MiB/s (1.79x) |
| peak server RSS: find | - | 3 MiB | 3 MiB | 4 MiB | 6 MiB |

| other | table |
|---|---|
| not | this one |

## Overlay: kernel overlay and ours

| workload | kernel | fo-1.14 | ours-stack |
|---|---|---|---|
| stat walk | 0.80 (1.00x) | 14.30 (17.91x) | 1.19 (1.49x) |

## ext3: kernel ext3 and ours

| workload | kernel ext3 | fuse2fs 1.47.2 | ours |
|---|---|---|---|
| untar | 4.40 | 17.04 | 11.98 |
| server peak RSS (MiB) | - | 14.3 | 25.2 |

## Container start-up (issue 10)

| contender | median | p95 |
|---|---|---|
| `ours-ro`: squashbox exec (read-only) | 32.5 ms | 64.9 ms |
| `peers-ro`: squashfuse_ll 0.5.2 + bwrap | 47.8 ms | 84.1 ms |
"""


class Chart(unittest.TestCase):
    def test_cells(self):
        self.assertEqual(mc.seconds("96 ms"), 0.096)
        self.assertEqual(mc.seconds("1.19 s (12.32x)"), 1.19)
        self.assertIsNone(mc.seconds("-"))
        self.assertEqual(mc.ratio_cell("481 ms (4.99x)", "96 ms"), 4.99)
        self.assertAlmostEqual(mc.ratio_cell("17.04", "4.40"), 17.04 / 4.40)
        self.assertIsNone(mc.ratio_cell("14.3", "-"))

    def test_panels_take_the_first_table_and_chosen_columns(self):
        fuse = mc.panel_data(DOC, mc.PANELS[0])
        self.assertEqual([r for r, _ in fuse], ["find (names)", "fio randread 4k, 4 jobs"])
        self.assertEqual(fuse[1][1], [("squashfuse_ll 0.1.105", 27.04, False),
                                      ("squashfuse_ll 0.5.2", 10.53, False),
                                      ("squashbox", 1.79, True)])
        ext3 = mc.panel_data(DOC, mc.PANELS[2])
        self.assertEqual(len(ext3), 1)  # the RSS row is left out
        self.assertAlmostEqual(ext3[0][1][1][1], 11.98 / 4.40)
        start = mc.panel_data(DOC, mc.PANELS[3])
        self.assertEqual(start, [("", [("squashbox exec (read-only)", 32.5, True),
                                       ("squashfuse_ll 0.5.2 + bwrap", 47.8, False)])])

    def test_a_marked_table_wins_over_the_first(self):
        later = """

### A later run

<!-- chart -->
| workload | kernel ext3 | fuse2fs 1.47.2 | ours |
|---|---|---|---|
| untar | 2.00 | 10.00 | 4.00 |
"""
        doc = DOC.replace("## Container start-up", later + "\n## Container start-up")
        ext3 = mc.panel_data(doc, mc.PANELS[2])
        self.assertEqual([r for r, _ in ext3], ["untar"])
        self.assertAlmostEqual(ext3[0][1][1][1], 2.0)
        self.assertAlmostEqual(ext3[0][1][0][1], 5.0)

    def test_missing_section_or_column_is_an_error(self):
        with self.assertRaises(SystemExit):
            mc.panel_data(DOC.replace("## Overlay:", "## Overlays"), mc.PANELS[1])
        with self.assertRaises(SystemExit):
            mc.panel_data(DOC.replace("fo-1.14", "fo-1.15"), mc.PANELS[1])

    def test_svg_is_well_formed_and_table_marks_ours(self):
        data = [(p, mc.panel_data(DOC, p)) for p in mc.PANELS]
        svg = mc.svg([(p[1], p[5], d, mc.legend_of(p)) for p, d in data])
        xml.dom.minidom.parseString(svg)
        self.assertIn("1.79x", svg)
        table = mc.table(data)
        self.assertIn("| find (names) | 4.99x | 3.47x | **3.25x** |", table)
        self.assertIn("| squashbox exec (read-only) | 32.5 ms |", table)


if __name__ == "__main__":
    unittest.main()
