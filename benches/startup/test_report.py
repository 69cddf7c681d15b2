"""Checks the start-up benchmark's statistics, ratios and goal logic without running
anything: python3 -B -m unittest benches/startup/test_report.py"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402


def res(**totals):
    return {k: {"total": v, "steps": {"exec": v}, "errors": []} for k, v in totals.items()}


class Report(unittest.TestCase):
    def test_p95_is_nearest_rank(self):
        v = [i / 1000 for i in range(1, 51)]  # 1..50 ms
        self.assertEqual(report.p95(v), 0.048)
        self.assertEqual(report.p95([0.5]), 0.5)
        self.assertEqual(report.p95([3, 1, 2]), 3)
        self.assertEqual(report.summary([0.03, 0.01, 0.02]), (0.02, 0.03, 0.01))
        self.assertIsNone(report.summary([]))

    def test_ratios_are_peer_median_over_ours(self):
        r = res(**{"ours-ro": [0.02, 0.02, 0.03], "peers-ro": [0.05, 0.06, 0.07],
                   "ours-tmpfs": [0.025], "peers-overlay": [0.1]})
        rows = {row[0]: row for row in report.startup_rows(r)}
        self.assertAlmostEqual(rows["ours-ro"][6], 3.0)
        self.assertAlmostEqual(rows["ours-tmpfs"][6], 4.0)
        self.assertIsNone(rows["peers-ro"][6])
        self.assertNotIn("ours-ext3", rows)

    def test_goals(self):
        r = res(**{"ours-ro": [0.031], "peers-ro": [0.03], "ours-tmpfs": [0.05],
                   "peers-overlay": [0.09], "ours-ext3": [0.04]})
        storm = {"4": {"bare": [{"cold": 10.0, "warm": 4.0, "wall": 15.0}],
                       "container": [{"cold": 10.4, "warm": 4.3, "wall": 15.1}]}}
        g = {goal: (verdict, fig) for goal, verdict, fig in report.goals(r, storm)}
        self.assertEqual(g["read-only start <= 30 ms median"], ("MISSED", "31.0 ms"))
        self.assertEqual(g["read-only start faster than the assembled peers"][0], "MISSED")
        self.assertEqual(g["ours-tmpfs: at least 2x faster than the assembled peers"][0],
                         "MISSED")  # 1.8x
        self.assertEqual(g["ours-ext3: at least 2x faster than the assembled peers"][0], "MET")
        self.assertEqual(
            g["import storm P=4 cold in the container within 5% of the bare mount"],
            ("MET", "1.040x"))
        self.assertEqual(
            g["import storm P=4 warm in the container within 5% of the bare mount"][0],
            "MISSED")

    def test_failures_are_counted_and_failed_storms_left_out(self):
        r = res(**{"ours-ro": [0.02], "peers-ro": []})
        r["peers-ro"]["errors"] = ["bwrap: exit 1", "bwrap: exit 1"]
        md = report.markdown(r, {"1": {"bare": [{"cold": 1.0, "warm": 1.0, "wall": 2.0}],
                                       "container": [{"error": "exit 255", "wall": 0.1}]}})
        self.assertIn("| 2 of 2 |", md)
        self.assertIn("| P=1, cold (caches dropped) | 1.00 s | - | - | 0 |", md)
        g = {goal: v for goal, v, _ in report.goals(r, {})}
        self.assertNotIn("read-only start faster than the assembled peers", g)


if __name__ == "__main__":
    unittest.main()
