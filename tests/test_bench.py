"""
Tests for the benchmark harness in C{bench/}: its pure parts (percentiles,
the dispatch clock, the report and its targets) in-process; the
oslo-protocol floor (C{bench/_oslo_protocol.py}) against novasvc's wire
format and, on the local RabbitMQ, against a real novasvc RPC server and
client; a smoke run of C{bench/run.py} on tiny counts and of
C{bench/jsoncodec.py}.
"""

import contextlib
import importlib.util
import io
import os
import subprocess
import sys

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.context import RequestContext
from novasvc.core.manager import Manager
from novasvc.rpc import wire
from novasvc.rpc.client import RPCClient
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport
from tests._services import poll, require_service
from tests._vhosts import make_vhost
from tests.test_transport_amqp import rabbit_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH, "RESULTS.md")

#: Seconds after which a smoke run counts as hung (it takes about 15 s on
#: an idle machine; how fast it is belongs to bench/, not to the tests).
SMOKE_DEADLINE = 600


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
_oslo_protocol = _load("_oslo_protocol")


def _run(**overrides):
    """
    One rep's measurements with plausible values, C{overrides} applied.
    """
    values = {"seq_p50_us": 1000.0, "seq_p99_us": 3000.0, "seq_rate": 900.0, "inflight_rate": 3000.0,
              "cast_publish_rate": 9000.0, "cast_dispatch_rate": 8000.0, "drain_rate": 9000.0,
              "cpu_calls": 1.0, "cpu_casts": 0.5, "client_cpu_calls": 1.0, "rss_idle_mib": 35.0, "rss_mib": 40.0}
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

    def test_tally_of_part_of_a_batch(self):
        """
        When armed for 10 hits and hit 4 times (one worker's share of a
        batch), then nothing is reported and the tally says 4 hits, from
        the first to the latest; after a new arm it says 0.
        """
        reports = []
        clock = _child.DispatchClock(reports.append)
        clock.arm(10)
        for _ in range(4):
            clock.hit()
        tally = clock.tally()
        self.assertEqual(reports, [])
        self.assertEqual((tally["event"], tally["n"]), ("tally", 4))
        self.assertLessEqual(tally["first"], tally["last"])
        self.assertGreater(tally["first"], 0.0)
        clock.arm(10)
        self.assertEqual(clock.tally()["n"], 0)

    def test_combine_tallies(self):
        """
        When two workers dispatched 3 and 5 casts and a third none, then
        the combined tally is 8 casts from the earliest first to the latest
        last dispatch, the idle worker's zero times left out.
        """
        total = _child.combine_tallies([
            {"n": 3, "first": 10.0, "last": 12.0},
            {"n": 5, "first": 9.5, "last": 11.0},
            {"n": 0, "first": 0.0, "last": 0.0},
        ])
        self.assertEqual(total, {"n": 8, "first": 9.5, "last": 12.0})


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
        When novasvc's in-flight rate is 0.8× the floor's and its p50 equal,
        then the in-flight target (0.85×) is not met, the p50 one is, and
        those needing oslo.messaging or start-up figures are not measured.
        """
        runs = {"novasvc": [_run(inflight_rate=2400.0)], "floor": [_run()]}
        text = _report.render(runs, {"novasvc": "novasvc", "floor": "floor"})
        self.assertIn("| 64-in-flight calls/s ≥ 0.85× floor | 0.80× | **not met** |", text)
        self.assertIn("| seq call p50 ≤ 1.1× floor | 1.00× | **met** |", text)
        self.assertIn("| ≥ 10× oslo.messaging on (b) 64-in-flight calls/s | not measured | n/a |", text)
        self.assertIn("| `twistd novasvc` exec to consuming ≤ 0.7 s (bench/startup.py) | not measured | n/a |",
                      text)

    def test_issue_12_targets(self):
        """
        When novasvc's server CPU per call is 1.1× the floor's, per cast
        1.2×, its client CPU per call 1.2×, its p50 1.2×, and it is 12× and
        9× oslo.messaging on in-flight calls and cast dispatch, then the
        targets of issue #12 read met, not met, not met, not met, met, not
        met.
        """
        runs = {"novasvc": [_run(cpu_calls=1.1, cpu_casts=0.6, client_cpu_calls=1.2, seq_p50_us=1200.0,
                                 inflight_rate=3000.0, cast_dispatch_rate=7200.0)],
                "floor": [_run()],
                "oslo": [_run(inflight_rate=250.0, cast_dispatch_rate=800.0)]}
        text = _report.render(runs, {"novasvc": "novasvc", "floor": "floor", "oslo": "oslo"})
        for row in ("| server CPU per call ≤ 1.15× floor | 1.10× | **met** |",
                    "| server CPU per cast ≤ 1.15× floor | 1.20× | **not met** |",
                    "| client CPU per call ≤ 1.15× floor | 1.20× | **not met** |",
                    "| seq call p50 ≤ 1.1× floor | 1.20× | **not met** |",
                    "| ≥ 10× oslo.messaging on (b) 64-in-flight calls/s | 12.00× | **met** |",
                    "| ≥ 10× oslo.messaging on (c) cast dispatch msg/s | 9.00× | **not met** |"):
            self.assertIn(row, text)

    def test_ratios_to_both_floors(self):
        """
        When the four systems were measured, then the ratio table divides
        novasvc and oslo.messaging by each floor, in adjacent columns, and
        the oslo-protocol floor by the floor.
        """
        runs = {"novasvc": [_run(inflight_rate=3000.0)], "floor": [_run(inflight_rate=6000.0)],
                "floor-oslo": [_run(inflight_rate=2000.0)], "oslo": [_run(inflight_rate=300.0)]}
        titles = {"novasvc": "novasvc", "floor": "floor", "floor-oslo": "oslo-protocol floor", "oslo": "oslo"}
        text = _report.render(runs, titles)
        self.assertIn("| ratio | novasvc ÷ floor | novasvc ÷ oslo-protocol floor | oslo-protocol floor ÷ floor "
                      "| oslo ÷ floor | oslo ÷ oslo-protocol floor |", text)
        self.assertIn("| 64-in-flight calls/s | 0.50× | 1.50× | 0.33× | 0.05× | 0.15× |", text)

    def test_startup_targets(self):
        """
        When start-up took 0.65 s, twistd's idle RSS is 60 MiB and the
        benchmark server's 35 MiB, then the start-up target (0.7 s) is met,
        the RSS one for twistd is not and the one for the benchmark's server
        is; a start-up of 0.75 s does not meet it.
        """
        startup = {"ready_s": _report.Summary([0.65]), "idle_rss_mib": _report.Summary([60.0])}
        text = _report.render({"novasvc": [_run()]}, {"novasvc": "novasvc"}, startup)
        self.assertIn("| `twistd novasvc` exec to consuming ≤ 0.7 s (bench/startup.py) | 0.650 s | **met** |",
                      text)
        slow = _report.render({"novasvc": [_run()]}, {"novasvc": "novasvc"},
                              dict(startup, ready_s=_report.Summary([0.75])))
        self.assertIn("| `twistd novasvc` exec to consuming ≤ 0.7 s (bench/startup.py) | 0.750 s | **not met** |",
                      slow)
        self.assertIn("| idle server RSS ≤ 50 MiB (`twistd novasvc`, SQLite service store, bench/startup.py) "
                      "| 60.0 MiB | **not met** |", text)
        self.assertIn("| idle server RSS ≤ 50 MiB (the benchmark's server: memory service store) | 35.0 MiB "
                      "| **met** |", text)


class WorkersReportTests(SynchronousTestCase):
    """
    Tests for C{_report.limit} and the report's table of novasvc with 1 and
    2 workers.
    """

    def test_limit(self):
        """
        When the broker keeps 0.9 core busy, then it is the limit whatever
        the server does; else a server at 0.8 core per worker is; else a
        client at 0.8 core; else the three together at 80% of the machine's
        cores; else none; a missing value gives n/a.
        """
        self.assertEqual(_report.limit(1.9, 0.5, 0.9, 2, 2), "broker")
        self.assertEqual(_report.limit(0.85, 0.3, 0.5, 1, 2), "server")
        self.assertEqual(_report.limit(0.85, 0.3, 0.5, 2, 2), "machine")
        self.assertEqual(_report.limit(1.2, 0.8, 0.5, 2, 4), "client")
        self.assertEqual(_report.limit(0.4, 0.3, 0.5, 2, 4), "none (latency)")
        self.assertEqual(_report.limit(float("nan"), 0.3, 0.5, 1, 2), "n/a")

    def test_workers_table(self):
        """
        When novasvc ran with 1 and 2 workers, then the report has a row
        per system and phase with the rate, the cores busy and the limit;
        with novasvc alone, no such table.
        """
        cores = {"server_cores_calls": 0.5, "client_cores_calls": 0.4, "broker_cores_calls": 0.95,
                 "server_cores_casts": 0.9, "client_cores_casts": 0.2, "broker_cores_casts": 0.5}
        runs = {"novasvc": [_run(**cores)],
                "novasvc-2w": [_run(**dict(cores, server_cores_casts=1.0, inflight_rate=3100.0))]}
        text = _report.render(runs, {"novasvc": "novasvc", "novasvc-2w": "novasvc, 2 workers"})
        self.assertIn("### Workers and the broker", text)
        self.assertIn("| novasvc | (b) calls/s | 3,000 | 0.50 | 0.40 | 0.95 | broker |", text)
        self.assertIn("| novasvc | (c) cast dispatch msg/s | 8,000 | 0.90 | 0.20 | 0.50 | server |", text)
        self.assertIn("| novasvc, 2 workers | (b) calls/s | 3,100 | 0.50 | 0.40 | 0.95 | broker |", text)
        self.assertIn("| novasvc, 2 workers | (c) cast dispatch msg/s | 8,000 | 1.00 | 0.20 | 0.50 |", text)
        alone = _report.render({"novasvc": [_run(**cores)]}, {"novasvc": "novasvc"})
        self.assertNotIn("### Workers and the broker", alone)


def _load_run():
    """
    Import C{bench/run.py}, which finds its helpers on C{sys.path}.
    """
    sys.path.insert(0, BENCH)
    try:
        return _load("run")
    finally:
        sys.path.remove(BENCH)


class SystemsTests(SynchronousTestCase):
    """
    The systems C{bench/run.py} can run.
    """

    def test_novasvc_on_pika_public_api(self):
        """
        When novasvc-public is asked for, then it runs novasvc's scripts with
        NOVASVC_PIKA_FAST_PATH=0, while novasvc runs them with the fast path
        forced on and the floor as it is; systems keep their order.
        """
        run = _load_run()
        self.assertEqual(run.parse_args(["--systems", "floor,novasvc-public,novasvc"]).systems,
                         ["novasvc", "novasvc-public", "floor"])
        env = {"PATH": "/bin", "NOVASVC_PIKA_FAST_PATH": "0"}
        self.assertEqual(run.child_setup("novasvc-public", {"PATH": "/bin"}),
                         run.Setup("novasvc", {"PATH": "/bin", "NOVASVC_PIKA_FAST_PATH": "0"}))
        self.assertEqual(run.child_setup("novasvc", env),
                         run.Setup("novasvc", {"PATH": "/bin", "NOVASVC_PIKA_FAST_PATH": "1"}))
        self.assertEqual(run.child_setup("floor", env), run.Setup("floor", env))
        self.assertEqual(run.child_setup("floor-oslo", env), run.Setup("floor-oslo", env, 1, {}))

    def test_novasvc_with_two_workers(self):
        """
        When novasvc-2w is asked for, then it runs two servers of novasvc's
        scripts with the fast path forced on, after novasvc-public and before
        the floor; a system runs one server with no extra settings unless
        its setup says otherwise.
        """
        run = _load_run()
        self.assertEqual(run.parse_args(["--systems", "floor,novasvc-2w,novasvc-public"]).systems,
                         ["novasvc-public", "novasvc-2w", "floor"])
        setup = run.child_setup("novasvc-2w", {"PATH": "/bin"})
        self.assertEqual((setup.scripts, setup.env, setup.workers, setup.settings),
                         ("novasvc", {"PATH": "/bin", "NOVASVC_PIKA_FAST_PATH": "1"}, 2, {}))
        for system in ("novasvc", "novasvc-public", "floor", "floor-oslo", "oslo"):
            self.assertEqual(run.child_setup(system, {}).workers, 1, system)
            self.assertEqual(run.child_setup(system, {}).settings, {}, system)

    def test_novasvc_on_txamqp(self):
        """
        When novasvc-txamqp is asked for, then it runs novasvc's scripts,
        with the environment as it is and C{amqp_client: txamqp} in their
        settings; it runs after novasvc on pika, before the floors.
        """
        run = _load_run()
        self.assertEqual(run.parse_args(["--systems", "floor-oslo,novasvc-txamqp,floor,novasvc"]).systems,
                         ["novasvc", "novasvc-txamqp", "floor", "floor-oslo"])
        env = {"PATH": "/bin"}
        self.assertEqual(run.child_setup("novasvc-txamqp", env),
                         run.Setup("novasvc", env, 1, {"amqp_client": "txamqp"}))

    def test_children_run_the_checkout(self):
        """
        When bench/run.py is in a checkout, then its children get the
        checkout first on PYTHONPATH, whatever novasvc is installed (e.g.
        editable, from another worktree).
        """
        run = _load_run()
        self.assertEqual(run._checkout(), [ROOT])
        self.assertEqual(run.child_env(run._checkout())["PYTHONPATH"].split(os.pathsep)[0], ROOT)


class PikaPathTests(SynchronousTestCase):
    """
    Tests for C{bench/pika_path.py}.
    """

    def test_measures_both_paths(self):
        """
        When run on a few messages, then it gives the CPU microseconds per
        publish, ack, delivery read and confirm read on the fast path and on
        pika's public API, and prints them as a table.
        """
        pika_path = _load("pika_path")
        result = pika_path.measure(n=50, reps=1, payload=10)
        self.assertEqual(sorted(result), ["ack_fast", "ack_public", "confirm_fast", "confirm_public", "deliver_fast",
                                          "deliver_public", "publish_fast", "publish_public"])
        self.assertTrue(all(value >= 0 for value in result.values()), result)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(pika_path.main(["--n", "20", "--reps", "1"]), 0)
        self.assertIn("| | fast path | pika's public API | public ÷ fast |", out.getvalue())
        for what in ("publish", "ack", "deliver", "confirm"):
            self.assertRegex(out.getvalue(), rf"\| {what} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+× \|")


class SmokeRunTests(SynchronousTestCase):
    """
    C{bench/run.py} end to end on tiny counts.
    """

    def test_quick_run(self):
        """
        When C{bench/run.py --quick} runs novasvc on pika and on txamqp and
        both floors on tiny counts with C{--output}, then it exits 0,
        prints the tables with the four columns and the
        ratios of both clients to both floors, writes them to the output
        file and leaves C{bench/RESULTS.md} alone.
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        output = os.path.abspath(self.mktemp())
        before = os.stat(RESULTS).st_mtime_ns if os.path.exists(RESULTS) else None
        process = subprocess.run(
            [sys.executable, os.path.join(BENCH, "run.py"), "--quick", "--count-scale", "0.25",
             "--systems", "novasvc,novasvc-txamqp,floor,floor-oslo", "--startup-runs", "0", "--vhost", "none",
             "--output", output],
            cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_DEADLINE,
        )
        self.assertEqual(process.returncode, 0, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
        header = ("| metric | novasvc (pika) | novasvc (txamqp) | floor (pika Twisted, by hand) "
                  "| oslo-protocol floor (pika Twisted, by hand) |")
        self.assertIn(header, process.stdout)
        self.assertIn("| (a) sequential call p50, µs |", process.stdout)
        self.assertIn("| ratio | novasvc (pika) ÷ floor | novasvc (pika) ÷ oslo-protocol floor "
                      "| novasvc (txamqp) ÷ floor | novasvc (txamqp) ÷ oslo-protocol floor |", process.stdout)
        self.assertIn("| seq call p50 ≤ 1.1× floor |", process.stdout)
        with open(output, encoding="utf-8") as f:
            self.assertIn(header, f.read())
        after = os.stat(RESULTS).st_mtime_ns if os.path.exists(RESULTS) else None
        self.assertEqual(before, after)

    def test_quick_run_two_workers(self):
        """
        When C{bench/run.py --quick} runs novasvc with 1 and 2 workers on
        tiny counts, then it exits 0 and the report has both columns and
        the table of workers and the broker with a row per system and phase.
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        output = os.path.abspath(self.mktemp())
        process = subprocess.run(
            [sys.executable, os.path.join(BENCH, "run.py"), "--quick", "--count-scale", "0.25",
             "--systems", "novasvc,novasvc-2w", "--startup-runs", "0", "--vhost", "none", "--output", output],
            cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_DEADLINE,
        )
        self.assertEqual(process.returncode, 0, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
        with open(output, encoding="utf-8") as f:
            report = f.read()
        self.assertIn("| metric | novasvc (pika) | novasvc (pika), 2 workers |", report)
        self.assertIn("### Workers and the broker", report)
        for system in ("novasvc (pika)", "novasvc (pika), 2 workers"):
            for phase in ("(b) calls/s", "(c) cast dispatch msg/s"):
                self.assertIn(f"| {system} | {phase} | ", report)

    def test_jsoncodec(self):
        """
        When C{bench/jsoncodec.py} runs once on tiny counts, then it exits 0
        and prints a row per operation with its figure.
        """
        process = subprocess.run(
            [sys.executable, os.path.join(BENCH, "jsoncodec.py"), "--runs", "1", "--number", "50", "--repeat", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_DEADLINE,
        )
        self.assertEqual(process.returncode, 0, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
        self.assertIn("| operation | µs |", process.stdout)
        self.assertIn("| request: wire.encode_request + decode_request |", process.stdout)


class SerializerBenchTests(SynchronousTestCase):
    """
    C{bench/serializer.py}: the RPC server's CPU per call with each
    serializer.
    """

    def test_smoke(self):
        """
        When C{bench/serializer.py} runs once per variant on tiny counts
        against this checkout's HEAD as the baseline, then it exits 0 and
        prints a row per variant with its ratio to the baseline.
        """
        process = subprocess.run(
            [sys.executable, os.path.join(BENCH, "serializer.py"), "--baseline", "HEAD", "--runs", "1",
             "--number", "20", "--repeat", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_DEADLINE,
        )
        self.assertEqual(process.returncode, 0, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
        self.assertIn("| server | µs per call | ÷ baseline (min–max) |", process.stdout)
        for label in ("| baseline commit, no serializer | ", "| no serializer | ", "| NoOpSerializer() | ",
                      "| RequestContextSerializer() | ", "| entity-mapping serializer | "):
            self.assertIn(label, process.stdout)


class ContextBenchTests(SynchronousTestCase):
    """
    C{bench/context.py}: the RPC server's CPU per call, context read or not.
    """

    def test_smoke(self):
        """
        When C{bench/context.py} runs once per variant on tiny counts
        against this checkout's HEAD as the baseline, then it exits 0 and
        prints a row per tree and method.
        """
        process = subprocess.run(
            [sys.executable, os.path.join(BENCH, "context.py"), "--baseline", "HEAD", "--runs", "1",
             "--number", "20", "--repeat", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_DEADLINE,
        )
        self.assertEqual(process.returncode, 0, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
        for tree in ("baseline", "this", "eager"):
            for method in ("ignores", "reads"):
                self.assertIn(f"| {tree} | {method} | ", process.stdout)


class NotificationsBenchTests(SynchronousTestCase):
    """
    C{bench/notifications.py} end to end on tiny counts.
    """

    def test_quick_run(self):
        """
        When C{bench/notifications.py} runs one rep of 50 notifications with
        C{--output}, then it exits 0 and its report has a row per
        measurement and the three ratios to oslo.messaging, also written to
        the file.
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        output = os.path.abspath(self.mktemp())
        process = subprocess.run(
            [sys.executable, os.path.join(BENCH, "notifications.py"), "--count", "50", "--reps", "1",
             "--output", output], cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_DEADLINE,
        )
        self.assertEqual(process.returncode, 0, f"stdout:\n{process.stdout}\nstderr:\n{process.stderr}")
        for row in ("| sent/s: novasvc Notifier, all at once | ", "| sent/s: novasvc Notifier, one after the other | ",
                    "| sent/s: oslo.messaging Notifier | ", "| received/s: novasvc NotificationListener | ",
                    "| received/s: oslo.messaging listener | ", "| sent/s, all at once | ",
                    "| sent/s, one after the other | ", "| received/s | ", "| CPU per notification received | "):
            self.assertIn(row, process.stdout)
        with open(output, encoding="utf-8") as f:
            self.assertEqual(f.read(), process.stdout.rstrip("\n") + "\n")


class NotificationsReadmeTests(SynchronousTestCase):
    """
    The README's figures of C{bench/notifications.py} are those of
    C{bench/NOTIFICATIONS.md}.
    """

    def test_figures(self):
        """
        When the README's "Listening" section quotes the benchmark, then
        its rates (two significant figures), ratios (one decimal) and CPU
        seconds (two decimals) are the medians of bench/NOTIFICATIONS.md.
        """
        import re
        from decimal import ROUND_HALF_UP, Decimal

        with open(os.path.join(BENCH, "NOTIFICATIONS.md"), encoding="utf-8") as f:
            report = f.read()
        medians = {title: (Decimal(rate.replace(",", "")), Decimal(cpu)) for title, rate, cpu in
                   re.findall(r"^\| (sent/s: [^|]+|received/s: [^|]+) \| ([\d,]+) \([^)]*\) \| ([\d.]+) \|$",
                              report, re.M)}
        ratios = {title: Decimal(value) for title, value in
                  re.findall(r"^\| ((?:sent|received)/s[^|]*|CPU per [^|]*) \| ([\d.]+) \| [\d., ]+ \|$", report,
                             re.M)}

        def rate(title):
            value = medians[title][0]
            step = Decimal(10) ** (len(str(int(value))) - 2)
            return f"{int((value / step).quantize(Decimal(1), ROUND_HALF_UP) * step):,}"

        def one(value):
            return str(value.quantize(Decimal("0.1"), ROUND_HALF_UP))

        def cpu(title):
            return str(medians[title][1].quantize(Decimal("0.01"), ROUND_HALF_UP))

        with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
            readme = " ".join(f.read().split())
        listener, oslo_listener = "received/s: novasvc NotificationListener", "received/s: oslo.messaging listener"
        sent_all, sent_one = "sent/s: novasvc Notifier, all at once", "sent/s: novasvc Notifier, one after the other"
        sent_oslo = "sent/s: oslo.messaging Notifier"
        self.assertIn(f"at {rate(listener)} a second against {rate(oslo_listener)} for oslo.messaging's "
                      f"({one(ratios['received/s'])} times as fast, {cpu(listener)} against {cpu(oslo_listener)} "
                      "CPU seconds per 1,000)", readme)
        self.assertIn(f"sent {rate(sent_all)} a second all at once against oslo's {rate(sent_oslo)} "
                      f"({one(ratios['sent/s, all at once'])} times), or {rate(sent_one)} one after the other",
                      readme)
        self.assertIn(f"as oslo's blocking call does ({one(ratios['sent/s, one after the other'])} times)", readme)
        self.assertIn(f"novasvc's listener spent {one(ratios['CPU per notification received'])} times less CPU than "
                      f"oslo's, its notifier {one(ratios['CPU per notification sent, all at once'])} times less",
                      readme)


class OsloProtocolFormatTests(SynchronousTestCase):
    """
    The oslo-protocol floor writes and reads the messages novasvc's wire
    format does.
    """

    def test_request_keys(self):
        """
        When the floor and novasvc encode a call and a cast with the same 26
        context entries, then the inner messages have the same keys, the
        context as 25 C{_context_*} entries and C{client_timeout} as
        C{_timeout}.
        """
        context = _oslo_protocol.context_entries()
        self.assertEqual(len(context), 26)
        self.assertEqual(set(context), set(RequestContext(user_id="u", project_id="p").to_dict()))
        for msg_id in ("a" * 32, None):
            mine = _oslo_protocol.request_message("echo", {"value": 1}, context, msg_id, "reply_q" if msg_id else None)
            theirs = wire.decode_body(wire.encode_request("echo", {"value": 1}, context, msg_id=msg_id,
                                                          reply_q="reply_q" if msg_id else None))
            self.assertEqual(set(mine), set(theirs))
            self.assertEqual(len([key for key in mine if key.startswith("_context_")]), 25)

    def test_bodies_cross(self):
        """
        When the floor encodes a request, then novasvc's wire decodes its
        method, args and context; when novasvc encodes a reply, then the
        floor decodes the same C{_msg_id}, result and C{ending}.
        """
        context = _oslo_protocol.context_entries()
        body = _oslo_protocol.encode_body(
            _oslo_protocol.request_message("echo", {"value": "v"}, context, "m" * 32, "reply_q"))
        self.assertTrue(body.startswith(b'{"oslo.version": "2.0", "oslo.message": "'))
        request = wire.decode_request(body)
        self.assertEqual((request.method, request.args, request.msg_id, request.reply_q),
                         ("echo", {"value": "v"}, "m" * 32, "reply_q"))
        self.assertEqual(request.context, context)
        reply = _oslo_protocol.decode_body(wire.encode_reply("m" * 32, {"x": [1]}))
        self.assertEqual((reply["_msg_id"], reply["result"], reply["failure"], reply["ending"]),
                         ("m" * 32, {"x": [1]}, None, True))


class _Recorder(Manager):
    """
    The novasvc side: echoes what it saw, records casts.
    """

    def __init__(self, *args, **kwargs):
        Manager.__init__(self, *args, **kwargs)
        self.casts = []

    def echo(self, ctxt, value):
        return {"value": value, "user_id": ctxt.user_id, "project_id": ctxt.project_id,
                "request_id": ctxt.request_id, "roles": list(ctxt.roles)}

    def record(self, ctxt, note):
        self.casts.append((note, ctxt.user_id))


class _Endpoint:
    """
    The oslo-protocol floor's side: echoes what it saw, records casts.
    """

    def __init__(self):
        self.casts = []

    def echo(self, ctxt, value):
        return {"value": value, "user_id": ctxt["user_id"], "request_id": ctxt["request_id"]}

    def record(self, ctxt, note):
        self.casts.append((note, ctxt["user_id"]))


class OsloProtocolInteropTests(TestCase):
    """
    The oslo-protocol floor against a real novasvc RPC server and client on
    the local RabbitMQ, in a vhost of its own: it speaks the protocol.
    """

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)
        self.vhost = yield make_vhost(self)
        self.url = f"rabbit://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.exchange, self.topic = "bench-interop", "bench-interop-topic"

    def novasvc_transport(self):
        transport = AMQPTransport(rabbit_url(self.vhost), reactor=reactor)
        transport.start()
        self.addCleanup(transport.stop)
        return transport

    @defer.inlineCallbacks
    def by_hand(self):
        connection, channel = yield _oslo_protocol.connect(reactor, self.url)
        self.addCleanup(connection.close)
        return channel

    @defer.inlineCallbacks
    def test_client_to_novasvc_server(self):
        """
        When the floor's client calls and casts a novasvc RPCServer, then the
        call returns what the manager made of the value and the context (26
        entries), and the cast reaches the manager with its context.
        """
        manager = _Recorder(host="h1", service_name=self.topic)
        server = RPCServer(self.novasvc_transport(), Target(topic=self.topic, server="h1"), [manager],
                           control_exchange=self.exchange, clock=reactor)
        self.addCleanup(server.wait, 10)
        yield server.start()
        context = _oslo_protocol.context_entries(user_id="u-floor", project_id="p-floor")
        client = _oslo_protocol.Client((yield self.by_hand()), self.exchange, self.topic, context)
        yield client.start()
        result = yield client.call("echo", value=[1, "two"])
        self.assertEqual(result, {"value": [1, "two"], "user_id": "u-floor", "project_id": "p-floor",
                                  "request_id": context["request_id"], "roles": ["member", "reader"]})
        yield client.cast("record", note="cast")
        yield poll(lambda: manager.casts == [("cast", "u-floor")], "the cast reached the manager")

    @defer.inlineCallbacks
    def test_novasvc_client_to_server(self):
        """
        When a novasvc RPCClient calls and casts the floor's server, then
        the call returns the floor's echo of the value and the context, and
        the cast reaches the floor's endpoint.
        """
        endpoint = _Endpoint()
        server = _oslo_protocol.Server((yield self.by_hand()), self.exchange, self.topic, "h1", endpoint)
        yield server.start()
        client = RPCClient(self.novasvc_transport(), Target(topic=self.topic), control_exchange=self.exchange,
                           timeout=30, clock=reactor)
        ctxt = RequestContext(user_id="u-novasvc", project_id="p")
        result = yield client.call(ctxt, "echo", value={"a": 1})
        self.assertEqual(result, {"value": {"a": 1}, "user_id": "u-novasvc", "request_id": ctxt.request_id})
        yield client.cast(ctxt, "record", note="cast")
        yield poll(lambda: endpoint.casts == [("cast", "u-novasvc")], "the cast reached the floor's endpoint")


class ServicesScaleTests(SynchronousTestCase):
    """
    Tests for the pure parts of C{bench/services_scale.py}.
    """

    def test_defaults(self):
        """
        When run without options, then it simulates 5,000 services reporting
        every 10 seconds and serves the API with 1 then 2 workers.
        """
        scale = _load("services_scale")
        args = scale.parse_args([])
        self.assertEqual((args.services, args.interval, args.workers), (5000, 10.0, [1, 2]))

    def test_percentile(self):
        """
        When asked for the 50th and 99th percentiles of 1..100, then the
        nearest-rank values 50 and 99 come back.
        """
        scale = _load("services_scale")
        values = list(range(100, 0, -1))
        self.assertEqual((scale.percentile(values, 0.5), scale.percentile(values, 0.99)), (50, 99))
