"""Unit tests of the table and goal logic and of finding the image's CPython, no mounts needed:
python3 -B -m unittest benches/serve/test_report.py"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbench import image, report  # noqa: E402


class C:
    def __init__(self, name):
        self.name = self.label = name


RESULTS = {
    "find (names)": {"kernel": [0.10, 0.12, 0.11], "squashfuse_ll": [0.3], "squashbox": [0.13]},
    "read all files (tar)": {"kernel": [5.0], "squashbox": [4.0], "squashfuse_ll": [9.0]},
    "fio randread 4k, 4 jobs MiB/s": {"kernel": [200.0], "squashbox": [50.0],
                                      "squashfuse_ll": [10.0]},
    "import storm P=4, warm": {"kernel": [5.0], "squashbox": [5.5], "squashfuse_ll": [5.2]},
    "import storm P=4, cold": {"kernel": [7.0], "squashbox": [6.0], "squashfuse_ll": [7.5]},
    report.RSS_PREFIX + "readall": {"squashbox": [80.0, 120.0], "squashfuse_ll": [3.0]},
}


class ReportTest(unittest.TestCase):
    def test_ratio_is_a_time_ratio_for_rates_too(self):
        self.assertAlmostEqual(report.ratio("x", 2.0, 1.0), 2.0)
        self.assertAlmostEqual(report.ratio("x MiB/s", 50.0, 200.0), 4.0)
        self.assertIsNone(report.ratio(report.RSS_PREFIX + "x", 1.0, 1.0))

    def test_table_shows_median_and_ratio(self):
        rows = report.table(RESULTS, {}, [C("kernel"), C("squashbox")])
        find = next(r for r in rows if r[0] == "find (names)")
        self.assertEqual(find[1], "110 ms")
        self.assertEqual(find[2], "130 ms (1.18x)")
        fio = next(r for r in rows if r[0].startswith("fio"))
        self.assertEqual(fio[2], "50 MiB/s (4.00x)")

    def test_failures_are_visible(self):
        rows = report.table({"find (names)": {"kernel": [0.1]}}, {("find (names)", "x"): 2},
                            [C("kernel"), C("x")])
        self.assertEqual(rows[1][2], "FAIL")

    def test_goals(self):
        lines = report.goals(RESULTS, rss_limit=96)
        text = "\n".join(lines)
        self.assertIn("MET    find: find (names): 1.18x", text)
        self.assertIn("MISSED warm import: import storm P=4, warm: 1.10x", text)
        self.assertIn("MET    cold import", text)
        self.assertIn("MET    read all", text)
        self.assertIn("MISSED memory: peak server RSS 120 MiB", text)
        self.assertIn("MISSED faster than squashfuse_ll: import storm P=4, warm", text)
        self.assertNotIn("faster than squashfuse_ll: fio", text)

    def test_markdown_has_one_row_per_measurement(self):
        md = report.as_markdown(report.table(RESULTS, {}, [C("kernel"), C("squashbox")]))
        self.assertEqual(len(md.splitlines()), 2 + len(RESULTS))


class PythonTest(unittest.TestCase):
    def test_running_interpreter_resolves_to_its_real_install(self):
        real, why = image.real_cpython(sys.executable)
        self.assertIsNone(why)
        ver = "%d.%d" % sys.version_info[:2]
        # the base install (not a venv or shim), the binary named pythonX.Y, beside its stdlib
        self.assertEqual(real, os.path.join(sys.base_prefix, "bin", "python" + ver))
        self.assertTrue(os.path.samefile(
            os.path.join(os.path.dirname(os.path.dirname(real)), "lib", "python" + ver),
            os.path.dirname(os.__file__)))

    def test_unusable_pythons_say_why(self):
        real, why = image.real_cpython("no-such-python-squashbox")
        self.assertIsNone(real)
        self.assertIn("not found on PATH", why)
        real, why = image.real_cpython("/bin/false")
        self.assertIsNone(real)
        self.assertIn("does not run", why)


if __name__ == "__main__":
    unittest.main()
