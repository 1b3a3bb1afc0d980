"""
Tests for the benchmark harness in C{bench/}: its pure parts (percentiles,
the dispatch clock, the report and its targets) in-process, and a smoke run
of C{bench/run.py} on tiny counts against the local RabbitMQ.
"""

import importlib.util
import os
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests._services import require_service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH, "RESULTS.md")

#: The smoke run's deadline, in seconds (it takes about 10 s).
SMOKE_DEADLINE = 55


def _load(name):
    """
    Import C{bench/<name>.py} under the name C{bench_<name>}.
    """
    spec = importlib.util.spec_from_file_location(f"bench{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_child = _load("_child")
_report = _load("_report")


def _run(**overrides):
    """
    One rep's measurements with plausible values, C{overrides} applied.
    """
    values = {"seq_p50_us": 1000.0, "seq_p99_us": 3000.0, "seq_rate": 900.0, "inflight_rate": 3000.0,
              "cast_publish_rate": 9000.0, "cast_dispatch_rate": 8000.0, "drain_rate": 9000.0,
              "cpu_calls": 1.0, "cpu_casts": 0.5, "rss_idle_mib": 35.0, "rss_mib": 40.0}
    values.update(overrides)
    return values


class PercentileTests(SynchronousTestCase):
    """
    Tests for C{_child.percentile} and C{_child.latency_summary}.
    """

    def test_nearest_rank(self):
        """
        When asked for the 50th and 99th percentiles of 1..100, then the
        50th and 99th values come back.
        """
        values = list(range(100, 0, -1))
        self.assertEqual((_child.percentile(values, 0.5), _child.percentile(values, 0.99)), (50, 99))

    def test_summary_units(self):
        """
        When latencies are given in seconds, then the summary has p50 and
        p99 in microseconds and the rate in calls per second of the sum.
        """
        summary = _child.latency_summary([0.001, 0.002, 0.001, 0.004])
        self.assertEqual(sorted(summary), ["p50_us", "p99_us", "rate"])
        self.assertAlmostEqual(summary["p50_us"], 1000.0)
        self.assertAlmostEqual(summary["p99_us"], 4000.0)
        self.assertAlmostEqual(summary["rate"], 500.0)

    def test_empty(self):
        """
        When there are no values, then C{ValueError} is raised.
        """
        self.assertRaises(ValueError, _child.percentile, [], 0.5)


class DispatchClockTests(SynchronousTestCase):
    """
    Tests for C{_child.DispatchClock}.
    """

    def test_reports_once_armed(self):
        """
        When armed for 3 hits, then hits before arming are ignored and the
        third hit after arming reports n, first and last, once.
        """
        reports = []
        clock = _child.DispatchClock(reports.append)
        clock.hit()
        clock.arm(3)
        for _ in range(5):
            clock.hit()
        self.assertEqual(len(reports), 1)
        report = reports[0]
        self.assertEqual((report["event"], report["n"]), ("dispatched", 3))
        self.assertLessEqual(report["first"], report["last"])


class ReportTests(SynchronousTestCase):
    """
    Tests for C{_report.render}.
    """

    def test_ratios_per_rep(self):
        """
        When novasvc is twice as slow as the floor in one rep and as fast in
        the other, then the ratio row shows the median and the range of the
        per-rep ratios.
        """
        runs = {"novasvc": [_run(seq_p50_us=2000.0), _run(seq_p50_us=1500.0)],
                "floor": [_run(seq_p50_us=1000.0), _run(seq_p50_us=1500.0)]}
        text = _report.render(runs, {"novasvc": "novasvc", "floor": "floor"})
        self.assertIn("| seq call p50 (lower is better) | 1.50× (1.00–2.00) |", text)

    def test_targets(self):
        """
        When novasvc's in-flight rate is 0.5× the floor's and its p50 equal,
        then the in-flight target is not met, the p50 one is, and those
        needing oslo.messaging or start-up figures are not measured.
        """
        runs = {"novasvc": [_run(inflight_rate=1500.0)], "floor": [_run()]}
        text = _report.render(runs, {"novasvc": "novasvc", "floor": "floor"})
        self.assertIn("| 64-in-flight calls/s ≥ 0.7× floor | 0.50× | **not met** |", text)
        self.assertIn("| seq call p50 ≤ 1.3× floor | 1.00× | **met** |", text)
        self.assertIn("| ≥ 5× oslo.messaging on (b) 64-in-flight calls/s | not measured | n/a |", text)
        self.assertIn("| `twistd novasvc` exec to consuming ≤ 1.0 s (bench/startup.py) | not measured | n/a |",
                      text)

    def test_startup_targets(self):
        """
        When start-up took 0.8 s, twistd's idle RSS is 60 MiB and the
        benchmark server's 35 MiB, then the start-up target is met, the RSS
        one for twistd is not and the one for the benchmark's server is.
        """
        startup = {"ready_s": _report.Summary([0.8]), "idle_rss_mib": _report.Summary([60.0])}
        text = _report.render({"novasvc": [_run()]}, {"novasvc": "novasvc"}, startup)
        self.assertIn("| `twistd novasvc` exec to consuming ≤ 1.0 s (bench/startup.py) | 0.800 s | **met** |",
                      text)
        self.assertIn("| idle server RSS ≤ 50 MiB (`twistd novasvc`, SQLite service store, bench/startup.py) "
                      "| 60.0 MiB | **not met** |", text)
        self.assertIn("| idle server RSS ≤ 50 MiB (the benchmark's server: memory service store) | 35.0 MiB "
                      "| **met** |", text)


class SmokeRunTests(SynchronousTestCase):
    """
    C{bench/run.py} end to end on tiny counts.
    """

    def test_quick_run(self):
        """
        When C{bench/run.py --quick} runs novasvc on pika and on txamqp and
        the floor on tiny counts with C{--output}, then it exits 0 within
        the deadline, prints the tables with the three columns, writes them
        to the output file and leaves C{bench/RESULTS.md} alone.
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        output = os.path.abspath(self.mktemp())
        before = os.stat(RESULTS).st_mtime_ns if os.path.exists(RESULTS) else None
        started = time.monotonic()
        process = subprocess.run(
            [sys.executable, os.path.join(BENCH, "run.py"), "--quick", "--count-scale", "0.25",
             "--systems", "novasvc,novasvc-txamqp,floor", "--startup-runs", "0", "--vhost", "none", "--output", output],
            cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_DEADLINE,
        )
        self.assertEqual(process.returncode, 0, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
        self.assertLess(time.monotonic() - started, SMOKE_DEADLINE)
        header = "| metric | novasvc (pika) | novasvc (txamqp) | floor (pika Twisted, by hand) |"
        self.assertIn(header, process.stdout)
        self.assertIn("| (a) sequential call p50, µs |", process.stdout)
        self.assertIn("| seq call p50 ≤ 1.3× floor |", process.stdout)
        with open(output, encoding="utf-8") as f:
            self.assertIn(header, f.read())
        after = os.stat(RESULTS).st_mtime_ns if os.path.exists(RESULTS) else None
        self.assertEqual(before, after)
