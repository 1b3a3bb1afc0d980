# -*- test-case-name: tests.test_metrics_http -*-
"""
The API's HTTP metrics: requests by route template, method and status, a
latency histogram by route template and method, and the requests in flight.
Labels come from a fixed set (the route templates of the application, the
HTTP methods), never from what a client wrote.
"""

from typing import Dict, List, Tuple

from novasvc.metrics._values import Histogram

__all__ = ["HTTP_BUCKETS", "HTTP_METHODS", "HTTPMetrics"]

#: Upper bounds, in B{seconds}, of the request latency buckets.
HTTP_BUCKETS: Tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                   1.0, 2.5, 5.0, 10.0, 30.0)
#: The methods counted by name; any other is C{"<other>"}.
HTTP_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})


class HTTPMetrics:
    """
    The counts of one process's API.

    @ivar inflight: requests received and not yet answered, an C{int}.
    """

    def __init__(self) -> None:
        self.inflight = 0
        self._counts: Dict[Tuple[str, str, str], int] = {}
        self._latency: Dict[Tuple[str, str], Histogram] = {}

    def started(self) -> None:
        self.inflight += 1

    def finished(self, route: str, method: str, status: int, seconds: float) -> None:
        """
        Count one answered request.

        @param route: its route template (C{/v1/services/{service_id}}).
        @param method: its HTTP method (another than L{HTTP_METHODS} counts
            as C{<other>}).
        @param status: the HTTP status sent.
        @param seconds: B{seconds} from its request line to its answer.
        """
        self.inflight -= 1
        if method not in HTTP_METHODS:
            method = "<other>"
        key = (route, method, str(status))
        self._counts[key] = self._counts.get(key, 0) + 1
        histogram = self._latency.get((route, method))
        if histogram is None:
            histogram = self._latency[(route, method)] = Histogram(HTTP_BUCKETS)
        histogram.observe(seconds)

    def counts(self) -> List[Tuple[Tuple[str, str, str], int]]:
        """
        @return: C{((route, method, status), count)}, sorted.
        """
        return sorted(self._counts.items())

    def latencies(self) -> List[Tuple[Tuple[str, str], Histogram]]:
        """
        @return: C{((route, method), histogram)}, sorted.
        """
        return sorted(self._latency.items(), key=lambda item: item[0])
