"""
Tests for L{novasvc.api.worker_metrics}: every worker's metrics at
C{/metrics}, each sample labelled with its worker.
"""

import os

from twisted.internet import task
from twisted.trial import unittest

from novasvc.api.worker_metrics import DUMP_INTERVAL, WorkerMetrics, aggregate, from_environ
from novasvc.metrics import Recorder


def _recorder(calls: int) -> Recorder:
    recorder = Recorder()
    metrics = recorder.rpc_server("echo", "h1")
    for _ in range(calls):
        metrics.request("echo", "ok", 0.001)
    return recorder


class AggregateTests(unittest.SynchronousTestCase):
    """
    Two workers, one directory.
    """

    def test_every_worker(self) -> None:
        """
        When two workers dump their metrics, then either one's /metrics
        text has both, each sample labelled with its worker; a worker's
        file is rewritten every DUMP_INTERVAL seconds.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        clock = task.Clock()
        first = WorkerMetrics(directory, 1, _recorder(2), clock)
        second_recorder = _recorder(5)
        second = WorkerMetrics(directory, 2, second_recorder, clock)
        first.start()
        second.start()
        self.addCleanup(first.stop)
        self.addCleanup(second.stop)
        text = aggregate(first.texts()).decode()
        self.assertIn('novasvc_rpc_requests_total{host="h1",method="echo",outcome="ok",'
                      'topic="echo",worker="1"} 2.0', text)
        self.assertIn('novasvc_rpc_requests_total{host="h1",method="echo",outcome="ok",'
                      'topic="echo",worker="2"} 5.0', text)
        self.assertEqual(text.count("# TYPE novasvc_rpc_requests_total counter"), 1)
        second_recorder.rpc_server("echo", "h1").request("echo", "ok", 0.001)
        clock.advance(DUMP_INTERVAL)
        self.assertIn('topic="echo",worker="2"} 6.0', aggregate(first.texts()).decode())

    def test_from_environ(self) -> None:
        """
        When the process is not an API worker, or its parent made no
        directory, then no aggregation; when it is worker 2 and the
        directory is named, then its metrics go to that directory as
        worker 2's.
        """
        self.assertIsNone(from_environ(Recorder(), task.Clock(), 2, {}))
        self.assertIsNone(from_environ(Recorder(), task.Clock(), None,
                                       {"NOVASVC_API_METRICS_DIR": "/tmp"}))
        directory = self.mktemp()
        os.makedirs(directory)
        metrics = from_environ(Recorder(), task.Clock(), 2, {"NOVASVC_API_METRICS_DIR": directory})
        metrics.dump()
        self.assertEqual(os.listdir(directory), ["worker-2.prom"])
