"""
Tests for L{novasvc.metrics._http}.
"""

from twisted.trial import unittest

from novasvc.metrics import Recorder


class HTTPMetricsTests(unittest.SynchronousTestCase):
    """
    L{novasvc.metrics._http.HTTPMetrics}, through L{Recorder.http}.
    """

    def test_counts(self) -> None:
        """
        When requests start and finish, then they are counted by route,
        method and status, timed by route and method, in flight between;
        an unknown method counts as <other>.
        """
        recorder = Recorder()
        self.assertFalse(recorder.has_http)
        http = recorder.http
        self.assertTrue(recorder.has_http)
        for _ in range(3):
            http.started()
        self.assertEqual(http.inflight, 3)
        http.finished("/v1/services", "GET", 200, 0.002)
        http.finished("/v1/services", "GET", 200, 0.2)
        http.finished("/", "BREW", 405, 0.001)
        self.assertEqual(http.inflight, 0)
        self.assertEqual(http.counts(), [(("/", "<other>", "405"), 1),
                                         (("/v1/services", "GET", "200"), 2)])
        [(_, other), (key, histogram)] = http.latencies()
        self.assertEqual((key, histogram.count), (("/v1/services", "GET"), 2))
        self.assertAlmostEqual(histogram.sum, 0.202)
