"""
Tests for L{novasvc.metrics} (the recorder, L{novasvc.metrics._recorder}).
"""

import gc
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from novasvc.metrics import (
    ERROR,
    FAILED,
    LABEL_LIMIT,
    NO_SUCH_METHOD,
    OK,
    OTHER,
    RPC_BUCKETS,
    RPC_OUTCOMES,
    UNKNOWN_METHOD,
    UNSUPPORTED_VERSION,
    Histogram,
    Recorder,
    get_recorder,
)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Server:
    """
    Stands for an RPC server: only C{inflight}.
    """

    def __init__(self, inflight: int) -> None:
        self.inflight = inflight


class HistogramTests(SynchronousTestCase):
    """
    L{Histogram} counts observations in Prometheus's C{le} buckets.
    """

    def test_buckets(self) -> None:
        """
        When values are observed, then each goes into the first bucket whose
        bound is at least the value (a value equal to a bound goes into
        that bucket), one above every bound into C{+Inf}; the cumulative
        counts and the sum follow.
        """
        histogram = Histogram((0.1, 1.0, 10.0))
        for value in (0.0, 0.1, 0.5, 1.0, 11.0):
            histogram.observe(value)
        self.assertEqual(histogram.counts, [2, 2, 0, 1])
        self.assertEqual(histogram.cumulative(), [(0.1, 2), (1.0, 4), (10.0, 4), (float("inf"), 5)])
        self.assertEqual(histogram.count, 5)
        self.assertAlmostEqual(histogram.sum, 12.6)

    def test_bounds_checked(self) -> None:
        """
        When the bounds are empty, not ascending or repeated, then
        C{ValueError}.
        """
        for bounds in ((), (1.0, 0.5), (1.0, 1.0)):
            self.assertRaises(ValueError, Histogram, bounds)


class RPCServerMetricsTests(SynchronousTestCase):
    """
    L{Recorder.rpc_server} and the L{novasvc.metrics.RPCServerMetrics} it
    makes.
    """

    def test_requests(self) -> None:
        """
        When requests are counted, then each method has a count per outcome
        and a latency histogram with the RPC buckets.
        """
        metrics = Recorder().rpc_server("svc", "host1")
        metrics.request("echo", OK, 0.002)
        metrics.request("echo", OK, 0.004)
        metrics.request("echo", ERROR, 2.0)
        metrics.request(UNKNOWN_METHOD, NO_SUCH_METHOD, 0.0)
        metrics.request(UNKNOWN_METHOD, UNSUPPORTED_VERSION, 0.0)
        methods = {label: (outcomes, histogram) for label, outcomes, histogram in metrics.methods()}
        self.assertEqual(sorted(methods), ["<unknown>", "echo"])
        outcomes, histogram = methods["echo"]
        self.assertEqual(outcomes, {OK: 2, ERROR: 1, NO_SUCH_METHOD: 0, UNSUPPORTED_VERSION: 0})
        self.assertEqual(histogram.bounds, RPC_BUCKETS)
        self.assertEqual(histogram.count, 3)
        self.assertAlmostEqual(histogram.sum, 2.006)
        self.assertEqual(methods["<unknown>"][0], {OK: 0, ERROR: 0, NO_SUCH_METHOD: 1, UNSUPPORTED_VERSION: 1})
        self.assertEqual(set(RPC_OUTCOMES), {OK, ERROR, NO_SUCH_METHOD, UNSUPPORTED_VERSION})

    def test_unknown_outcome(self) -> None:
        """
        When an outcome outside the fixed set is counted, then C{KeyError}:
        no new series.
        """
        metrics = Recorder().rpc_server("svc", "host1")
        self.assertRaises(KeyError, metrics.request, "echo", "weird", 0.0)

    def test_method_labels_bounded(self) -> None:
        """
        When more method names than C{max_label_values} are counted, then
        the first ones keep their label and every further one counts under
        C{<other>}, which holds no name; C{<unknown>} always has its own.
        """
        metrics = Recorder(max_label_values=3).rpc_server("svc", "host1")
        for i in range(1000):
            metrics.request(f"method{i}", OK, 0.0)
        metrics.request(UNKNOWN_METHOD, NO_SUCH_METHOD, 0.0)
        metrics.request("method1", OK, 0.0)
        labels = {label: outcomes[OK] for label, outcomes, _ in metrics.methods()}
        self.assertEqual(labels, {"method0": 1, "method1": 2, "method2": 1, OTHER: 997, UNKNOWN_METHOD: 0})
        self.assertLessEqual(len(metrics._methods), 4)

    def test_default_label_bound(self) -> None:
        """
        When a recorder is made without C{max_label_values}, then a server
        keeps 256 method labels and a recorder 256 task labels, the rest
        under C{<other>}.
        """
        recorder = Recorder()
        metrics = recorder.rpc_server("svc", "host1")
        for i in range(300):
            metrics.request(f"method{i}", OK, 0.0)
            recorder.periodic_task_run(f"M.task{i}", 0.0, False)
        labels = [label for label, _, _ in metrics.methods()]
        self.assertEqual((len(labels), labels.count(OTHER)), (257, 1))
        tasks = [label for label, _, _ in recorder.periodic_tasks()]
        self.assertEqual((len(tasks), tasks.count(OTHER)), (257, 1))

    def test_method_label_clipped(self) -> None:
        """
        When a method name is longer than L{LABEL_LIMIT}, then its label is
        cut to that many characters and ends with C{"..."}; names that
        differ only beyond the cut share it.
        """
        metrics = Recorder().rpc_server("svc", "host1")
        metrics.request("m" * 5000, OK, 0.0)
        metrics.request("m" * 6000, OK, 0.0)
        [(label, outcomes, _)] = metrics.methods()
        self.assertEqual(label, "m" * LABEL_LIMIT + "...")
        self.assertEqual(outcomes[OK], 2)

    def test_same_server(self) -> None:
        """
        When the metrics of one topic and host are asked twice, then they
        are the same object; topic and host are clipped.
        """
        recorder = Recorder()
        self.assertIs(recorder.rpc_server("svc", "host1"), recorder.rpc_server("svc", "host1"))
        self.assertIsNot(recorder.rpc_server("svc", "host1"), recorder.rpc_server("svc", "host2"))
        long = recorder.rpc_server("t" * 500, "host1")
        self.assertEqual(long.topic, "t" * LABEL_LIMIT + "...")
        self.assertEqual([(m.topic, m.host) for m in recorder.rpc_servers()],
                         [("svc", "host1"), ("svc", "host2"), (long.topic, "host1")])

    def test_duplicates_and_malformed(self) -> None:
        """
        When duplicates and malformed messages are counted, then their
        counters say how many.
        """
        metrics = Recorder().rpc_server("svc", "host1")
        metrics.duplicate_dropped()
        metrics.duplicate_dropped()
        metrics.malformed_rejected()
        self.assertEqual((metrics.duplicates, metrics.malformed), (2, 1))

    def test_inflight(self) -> None:
        """
        When servers are watched, then C{inflight} is the sum of their
        C{inflight} now, and a server that was garbage collected no longer
        counts.
        """
        metrics = Recorder().rpc_server("svc", "host1")
        first, second = _Server(2), _Server(3)
        metrics.watch(first)
        metrics.watch(second)
        self.assertEqual(metrics.inflight, 5)
        first.inflight = 0
        self.assertEqual(metrics.inflight, 3)
        del second
        gc.collect()
        self.assertEqual(metrics.inflight, 0)
        self.assertEqual(len(metrics._servers), 1)
        for _ in range(100):
            metrics.watch(_Server(1))
        self.assertEqual(len(metrics._servers), 2)


class RecorderTests(SynchronousTestCase):
    """
    The process-wide events of L{Recorder}.
    """

    def test_max_label_values(self) -> None:
        """
        When C{max_label_values} is below 1, then C{ValueError}.
        """
        self.assertRaises(ValueError, Recorder, max_label_values=0)

    def test_broker_and_report_state(self) -> None:
        """
        When reconnections and report_state outcomes are counted, then
        their counters say how many.
        """
        recorder = Recorder()
        recorder.broker_reconnect()
        recorder.report_state_succeeded()
        recorder.report_state_succeeded()
        recorder.report_state_failed()
        self.assertEqual(recorder.broker_reconnects, 1)
        self.assertEqual(recorder.report_state_outcomes, {OK: 2, FAILED: 1})

    def test_periodic_tasks(self) -> None:
        """
        When periodic task runs are counted, then each task has its ok and
        failed counts and a duration histogram; past C{max_label_values}
        tasks further ones count under C{<other>}, and long names are
        clipped.
        """
        recorder = Recorder(max_label_values=2)
        recorder.periodic_task_run("M.a", 0.5, False)
        recorder.periodic_task_run("M.a", 2.0, True)
        recorder.periodic_task_run("M." + "b" * 300, 1.0, False)
        recorder.periodic_task_run("M.c", 1.0, False)
        recorder.periodic_task_run("M.d", 1.0, True)
        tasks = {label: (outcomes, histogram) for label, outcomes, histogram in recorder.periodic_tasks()}
        self.assertEqual(sorted(tasks), ["<other>", "M.a", ("M." + "b" * 300)[:LABEL_LIMIT] + "..."])
        self.assertEqual(tasks["M.a"][0], {OK: 1, FAILED: 1})
        self.assertEqual(tasks["M.a"][1].sum, 2.5)
        self.assertEqual(tasks["<other>"][0], {OK: 1, FAILED: 1})

    def test_process_recorder(self) -> None:
        """
        When the process's recorder is asked twice, then it is the same
        L{Recorder}.
        """
        self.assertIsInstance(get_recorder(), Recorder)
        self.assertIs(get_recorder(), get_recorder())


class LazyImportTests(SynchronousTestCase):
    """
    Recording never loads C{prometheus_client}.
    """

    def test_no_exporter_imported(self) -> None:
        """
        When a process imports the service, the RPC server, the AMQP
        transport and the metrics package and records a request, then
        C{prometheus_client} is not loaded.
        """
        code = (
            "import sys\n"
            "import novasvc.core.service, novasvc.rpc.server, novasvc.transport.pika._transport, novasvc.metrics\n"
            "novasvc.metrics.get_recorder().rpc_server('t', 'h').request('m', 'ok', 0.0)\n"
            "print(sorted(name for name in sys.modules if name.startswith('prometheus_client')))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=_ROOT).stdout
        self.assertEqual(out.strip(), "[]")
