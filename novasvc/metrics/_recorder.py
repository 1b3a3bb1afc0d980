# -*- test-case-name: tests.test_metrics_recorder -*-
"""
The recorder: plain counters and histograms, written on the hot path with a
few dictionary and list operations, read by an exporter at scrape time.

Public through L{novasvc.metrics}.

Nothing here imports an exporter library; L{novasvc.metrics.prometheus}
reads a L{Recorder} when (and only when) metrics are exported. A recorder is
written and read in the reactor thread only (it takes no locks).
"""

import weakref
from bisect import bisect_left
from typing import Any, Dict, List, Tuple

from novasvc.metrics._http import HTTPMetrics
from novasvc.metrics._listener import NotificationListenerMetrics
from novasvc.metrics._notifications import NOTIFIER_OUTCOMES, NotificationCounts
from novasvc.metrics._values import (
    FAILED,
    OK,
    OTHER,
    RPC_BUCKETS,
    RPC_OUTCOMES,
    TASK_BUCKETS,
    UNKNOWN_METHOD,
    Histogram,
    label_value,
)

__all__ = ["RPCServerMetrics", "Recorder", "get_recorder"]

class _MethodStats:
    """
    One method's requests: a count per outcome and the dispatch latency.
    """

    __slots__ = ("outcomes", "latency")

    def __init__(self) -> None:
        self.outcomes = dict.fromkeys(RPC_OUTCOMES, 0)
        self.latency = Histogram(RPC_BUCKETS)


class RPCServerMetrics:
    """
    The metrics of the RPC servers of one topic and host (made by
    L{Recorder.rpc_server}); L{novasvc.rpc.server.RPCServer} writes them.

    @ivar topic: the topic, a label value.
    @ivar host: the server (host), a label value.
    @ivar duplicates: requests acknowledged without being run because their
        C{_unique_id} was seen, an C{int}.
    @ivar malformed: messages rejected because they could not be decoded,
        an C{int}.
    """

    __slots__ = ("topic", "host", "duplicates", "malformed", "_methods", "_by_label", "_limit", "_servers")

    def __init__(self, topic: str, host: str, max_label_values: int) -> None:
        self.topic = topic
        self.host = host
        self.duplicates = 0
        self.malformed = 0
        self._methods: Dict[str, _MethodStats] = {}
        self._by_label: Dict[str, _MethodStats] = {}
        self._limit = max_label_values
        self._servers: List[Any] = []

    def request(self, method: str, outcome: str, seconds: float) -> None:
        """
        Count one request and its dispatch latency (the hot path).

        @param method: the method label: the name of a method the dispatcher
            found, else L{UNKNOWN_METHOD}. Past C{max_label_values} method
            labels, further ones are counted under L{OTHER}; a name is cut
            to L{LABEL_LIMIT} characters.
        @param outcome: one of L{RPC_OUTCOMES}.
        @param seconds: from the start of the dispatch to the method's
            result, in B{seconds}.
        @raise KeyError: for an outcome not in L{RPC_OUTCOMES}.
        """
        stats = self._methods.get(method)
        if stats is None:
            stats = self._stats(method)
        stats.outcomes[outcome] += 1
        latency = stats.latency  # Histogram.observe, inlined
        latency.counts[bisect_left(latency.bounds, seconds)] += 1
        latency.sum += seconds

    def _stats(self, method: str) -> _MethodStats:
        label = label_value(method)
        stats = self._by_label.get(label)
        if stats is None:
            if len(self._by_label) >= self._limit and label != UNKNOWN_METHOD:
                stats = self._by_label.get(OTHER)
                if stats is None:
                    stats = self._by_label[OTHER] = _MethodStats()
                return stats  # not remembered by name: memory stays bounded
            stats = self._by_label[label] = _MethodStats()
        self._methods[method] = stats
        return stats

    def duplicate_dropped(self) -> None:
        """
        Count one request dropped as a duplicate.
        """
        self.duplicates += 1

    def malformed_rejected(self) -> None:
        """
        Count one malformed message rejected.
        """
        self.malformed += 1

    def watch(self, server: Any) -> None:
        """
        Read C{server.inflight} at scrape time (see L{inflight}). The server
        is held by a weak reference.

        @param server: an object with an C{inflight} C{int} attribute (an
            L{novasvc.rpc.server.RPCServer}). Servers garbage collected are
            forgotten.
        """
        self._servers = [ref for ref in self._servers if ref() is not None]
        self._servers.append(weakref.ref(server))

    @property
    def inflight(self) -> int:
        """
        The requests in flight now, summed over the live servers watched.
        """
        servers = [ref for ref in self._servers if ref() is not None]
        self._servers = servers
        total = 0
        for ref in servers:
            server = ref()
            if server is not None:
                total += server.inflight
        return total

    def methods(self) -> List[Tuple[str, Dict[str, int], Histogram]]:
        """
        @return: C{(method label, {outcome: count}, latency histogram)} for
            each method label, sorted by label.
        """
        return [(label, dict(stats.outcomes), stats.latency) for label, stats in sorted(self._by_label.items())]


class _TaskStats:
    __slots__ = ("outcomes", "duration")

    def __init__(self) -> None:
        self.outcomes = {OK: 0, FAILED: 0}
        self.duration = Histogram(TASK_BUCKETS)


class Recorder:
    """
    A process's metrics: RPC servers (per topic and host), broker
    reconnections, report_state outcomes, periodic task runs and
    notifications sent.

    Each event is one method call costing a few dictionary and list
    operations; gauges (requests in flight) are read from their owners at
    scrape time, not tracked per message.

    @ivar broker_reconnects: successful AMQP connections after the first one
        of a started transport, an C{int}.
    @ivar report_state_outcomes: C{{"ok": count, "failed": count}} of
        report_state ticks (a tick without a service row yet counts neither).
    """

    def __init__(self, max_label_values: int = 256) -> None:
        """
        @param max_label_values: the most method labels per RPC server, the
            most task labels, and the most event type labels of
            notifications; further values count under L{OTHER}.
        @raise ValueError: when it is below 1.
        """
        if int(max_label_values) < 1:
            raise ValueError(f"max_label_values must be at least 1, not {max_label_values!r}")
        self._limit = int(max_label_values)
        self._servers: Dict[Tuple[str, str], RPCServerMetrics] = {}
        self._tasks: Dict[str, _TaskStats] = {}
        self.broker_reconnects = 0
        self.report_state_outcomes = {OK: 0, FAILED: 0}
        self._notifier: Any = None
        self._notification_listener: Any = None
        self._http: Any = None

    @property
    def notifier(self) -> Any:
        """
        The notifications sent, a L{novasvc.metrics.NotificationCounts}
        with the outcomes C{sent} and C{failed} (made on first use).
        """
        counts = self._notifier
        if counts is None:
            counts = self._notifier = NotificationCounts(NOTIFIER_OUTCOMES, self._limit)
        return counts

    @property
    def notification_listener(self) -> Any:
        """
        The notifications received by the process's listeners, which they
        all share: a L{novasvc.metrics.NotificationListenerMetrics} (made on
        first use).
        """
        metrics = self._notification_listener
        if metrics is None:
            metrics = self._notification_listener = NotificationListenerMetrics(self._limit)
        return metrics

    @property
    def http(self) -> Any:
        """
        The API's HTTP requests, a L{novasvc.metrics._http.HTTPMetrics}
        (made on first use).
        """
        metrics = self._http
        if metrics is None:
            metrics = self._http = HTTPMetrics()
        return metrics

    @property
    def has_http(self) -> bool:
        """
        @return: whether an API counted requests in this recorder.
        """
        return self._http is not None

    # -- writers --------------------------------------------------------------

    def rpc_server(self, topic: str, host: str) -> RPCServerMetrics:
        """
        The metrics of the RPC servers of C{topic} on C{host}: servers of
        the same topic and host share them.

        @param topic: from the configuration, cut to L{LABEL_LIMIT}.
        @param host: from the configuration, cut to L{LABEL_LIMIT}.
        @return: an L{RPCServerMetrics}.
        """
        key = (label_value(topic), label_value(host))
        metrics = self._servers.get(key)
        if metrics is None:
            metrics = self._servers[key] = RPCServerMetrics(key[0], key[1], self._limit)
        return metrics

    def broker_reconnect(self) -> None:
        """
        Count one reconnection to the broker.
        """
        self.broker_reconnects += 1

    def report_state_succeeded(self) -> None:
        """
        Count one report_state tick that wrote the heartbeat.
        """
        self.report_state_outcomes[OK] += 1

    def report_state_failed(self) -> None:
        """
        Count one report_state tick that failed (database unreachable, row
        deleted...).
        """
        self.report_state_outcomes[FAILED] += 1

    def periodic_task_run(self, name: str, seconds: float, failed: bool) -> None:
        """
        Count one run of a periodic task.

        @param name: the task, C{"<Class>.<task>"}; past C{max_label_values}
            task names further ones count under L{OTHER}.
        @param seconds: how long it ran, in B{seconds} (for a C{Deferred} or
            coroutine: until it fired).
        @param failed: whether it raised or its C{Deferred} failed.
        """
        stats = self._tasks.get(name)
        if stats is None:
            stats = self._task_stats(name)
        stats.outcomes[FAILED if failed else OK] += 1
        stats.duration.observe(seconds)

    def _task_stats(self, name: str) -> _TaskStats:
        label = label_value(name)
        stats = self._tasks.get(label)
        if stats is None:
            if len(self._tasks) >= self._limit:
                label = OTHER
                stats = self._tasks.get(OTHER)
            if stats is None:
                stats = self._tasks[label] = _TaskStats()
        return stats

    # -- readers --------------------------------------------------------------

    def rpc_servers(self) -> List[RPCServerMetrics]:
        """
        @return: the L{RPCServerMetrics} of every topic and host, sorted.
        """
        return [metrics for _, metrics in sorted(self._servers.items())]

    def periodic_tasks(self) -> List[Tuple[str, Dict[str, int], Histogram]]:
        """
        @return: C{(task label, {"ok": count, "failed": count}, duration
            histogram)} for each task label, sorted by label.
        """
        return [(label, dict(stats.outcomes), stats.duration) for label, stats in sorted(self._tasks.items())]


_RECORDER = Recorder()


def get_recorder() -> Recorder:
    """
    @return: the process's L{Recorder}, the one every instrumented object
        writes to unless it was given its own.
    """
    return _RECORDER

