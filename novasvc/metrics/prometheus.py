# -*- test-case-name: tests.test_metrics_prometheus -*-
"""
A L{Recorder} in Prometheus's text format, through C{prometheus_client}
(C{pip install 'novasvc[api]'}): L{RecorderCollector} (a custom collector),
L{render} and L{MetricsResource}, a C{twisted.web} resource serving
C{GET /metrics}.

Importing this module imports C{prometheus_client} (an C{ImportError}
naming the C{api} extra when it is missing); nothing else in novasvc imports
this module, so a process that does not export metrics never loads it.

The metrics, each prefixed C{novasvc_} (see the README's "Metrics" section,
which a test holds equal to what L{render} emits):

  - C{novasvc_rpc_requests_total{topic,host,method,outcome}} (counter)
  - C{novasvc_rpc_dispatch_seconds{topic,host,method}} (histogram)
  - C{novasvc_rpc_inflight{topic,host}} (gauge)
  - C{novasvc_rpc_duplicates_dropped_total{topic,host}} (counter)
  - C{novasvc_rpc_malformed_rejected_total{topic,host}} (counter)
  - C{novasvc_broker_reconnects_total} (counter)
  - C{novasvc_report_state_total{outcome}} (counter)
  - C{novasvc_periodic_task_runs_total{task,outcome}} (counter)
  - C{novasvc_periodic_task_duration_seconds{task}} (histogram)
  - C{novasvc_notifications_sent_total{event_type,priority,outcome}}
    (counter)
  - C{novasvc_notifications_received_total{event_type,priority,outcome}}
    (counter)
  - C{novasvc_notification_listener_inflight} (gauge)

Every family is emitted, even before anything was recorded. A method has
its C{ok} and C{error} request series from its first request on, a refusal
series (C{no_such_method}, C{unsupported_version}) once one happened; the
method C{<unknown>} has refusal series only. An event type and priority
sent at least once have a series for each outcome (C{sent}, C{failed}); one
received has its C{handled}, C{requeued} and C{error} series, and
C{malformed} and C{duplicate} once counted; the event type C{<unknown>}
(malformed notifications) has its C{malformed} series only.
"""

from typing import Any, Iterator, Optional, Tuple

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as e:
    raise ImportError(f"exporting metrics needs prometheus_client: pip install 'novasvc[api]' ({e})") from e
from twisted.web.resource import Resource
from twisted.web.server import Request

from novasvc.metrics._listener import UNKNOWN
from novasvc.metrics._recorder import Recorder, get_recorder
from novasvc.metrics._values import ERROR, FAILED, OK, UNKNOWN_METHOD, Histogram

__all__ = ["RecorderCollector", "render", "MetricsResource", "CONTENT_TYPE"]

#: The C{Content-Type} of L{render}'s output (C{prometheus_client}'s).
CONTENT_TYPE: str = CONTENT_TYPE_LATEST
_ALWAYS = (OK, ERROR)
_ALWAYS_RECEIVED = ("handled", "requeued", "error")


def _buckets(histogram: Histogram) -> list:
    return [("+Inf" if bound == float("inf") else repr(bound), count)
            for bound, count in histogram.cumulative()]


class RecorderCollector(Collector):
    """
    A C{prometheus_client} collector reading a L{Recorder} at each
    collection.
    """

    def __init__(self, recorder: Recorder) -> None:
        """
        @param recorder: the recorder to read.
        """
        self._recorder = recorder

    def collect(self) -> Iterator[Metric]:
        """
        @return: the metric families listed in the module docstring.
        """
        recorder = self._recorder
        requests = CounterMetricFamily(
            "novasvc_rpc_requests", "RPC requests dispatched, by method and outcome (ok: the method returned; "
            "error: it raised; no_such_method, unsupported_version: the dispatcher refused it, method <unknown>).",
            labels=["topic", "host", "method", "outcome"])
        latency = HistogramMetricFamily(
            "novasvc_rpc_dispatch_seconds", "Seconds from the dispatch of an RPC request to its method's result.",
            labels=["topic", "host", "method"])
        inflight = GaugeMetricFamily(
            "novasvc_rpc_inflight", "RPC requests being handled now (dispatched, not yet settled).",
            labels=["topic", "host"])
        duplicates = CounterMetricFamily(
            "novasvc_rpc_duplicates_dropped", "RPC requests acknowledged without running: their _unique_id was "
            "already seen.", labels=["topic", "host"])
        malformed = CounterMetricFamily(
            "novasvc_rpc_malformed_rejected", "RPC messages rejected because they could not be decoded.",
            labels=["topic", "host"])
        for server in recorder.rpc_servers():
            where = [server.topic, server.host]
            for method, outcomes, histogram in server.methods():
                for outcome, count in outcomes.items():
                    # A method's ok and error series always; refusals once
                    # seen (the only series of the <unknown> method).
                    if count or (outcome in _ALWAYS and method != UNKNOWN_METHOD):
                        requests.add_metric(where + [method, outcome], count)
                latency.add_metric(where + [method], _buckets(histogram), histogram.sum)
            inflight.add_metric(where, server.inflight)
            duplicates.add_metric(where, server.duplicates)
            malformed.add_metric(where, server.malformed)
        yield from (requests, latency, inflight, duplicates, malformed)
        yield CounterMetricFamily("novasvc_broker_reconnects",
                                  "Connections to the AMQP broker made after a transport's first one.",
                                  value=recorder.broker_reconnects)
        reports = CounterMetricFamily("novasvc_report_state",
                                      "report_state ticks, by outcome (ok, failed).", labels=["outcome"])
        for outcome in (OK, FAILED):
            reports.add_metric([outcome], recorder.report_state_outcomes[outcome])
        yield reports
        runs = CounterMetricFamily("novasvc_periodic_task_runs", "Periodic task runs, by task and outcome "
                                   "(ok, failed).", labels=["task", "outcome"])
        durations = HistogramMetricFamily("novasvc_periodic_task_duration_seconds",
                                          "Seconds a periodic task ran (until its Deferred fired).",
                                          labels=["task"])
        for task, outcomes, histogram in recorder.periodic_tasks():
            for outcome, count in outcomes.items():
                runs.add_metric([task, outcome], count)
            durations.add_metric([task], _buckets(histogram), histogram.sum)
        yield from (runs, durations)
        yield _notifications_sent(recorder)
        yield from _notifications_received(recorder)
        if recorder.has_http:
            yield from _http(recorder.http)


def _http(http: Any) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "novasvc_http_requests", "API requests answered, by route template, method and status.",
        labels=["route", "method", "status"])
    for labels, count in http.counts():
        requests.add_metric(list(labels), count)
    latency = HistogramMetricFamily(
        "novasvc_http_request_duration_seconds", "Seconds from an API request's request line to "
        "its answer, by route template and method.", labels=["route", "method"])
    for labels, histogram in http.latencies():
        latency.add_metric(list(labels), _buckets(histogram), histogram.sum)
    yield requests
    yield latency
    yield GaugeMetricFamily("novasvc_http_inflight", "API requests received and not yet answered.",
                            value=http.inflight)


def _notifications_sent(recorder: Recorder) -> Metric:
    sent = CounterMetricFamily(
        "novasvc_notifications_sent", "Notifications a Notifier sent, by event type, priority and outcome "
        "(sent: the broker confirmed it, or a log/test driver took it; failed: not sent, logged).",
        labels=["event_type", "priority", "outcome"])
    for event_type, priority, outcomes in recorder.notifier.counts():
        for outcome, count in outcomes.items():
            sent.add_metric([event_type, priority, outcome], count)
    return sent


def _notifications_received(recorder: Recorder) -> Iterator[Metric]:
    listeners = recorder.notification_listener
    received = CounterMetricFamily(
        "novasvc_notifications_received", "Notifications received by the listeners, by event type, priority and "
        "outcome (handled, requeued, error: acknowledged or given back as the endpoints said; malformed: "
        "rejected; duplicate: acknowledged without dispatch).", labels=["event_type", "priority", "outcome"])
    for event_type, priority, outcomes in listeners.counts():
        for outcome, count in outcomes.items():
            if count or (outcome in _ALWAYS_RECEIVED and event_type != UNKNOWN):
                received.add_metric([event_type, priority, outcome], count)
    yield received
    yield GaugeMetricFamily("novasvc_notification_listener_inflight",
                            "Notifications being handled now by the listeners (received, not yet settled).",
                            value=listeners.inflight)


def render(recorder: Optional[Recorder] = None) -> Tuple[bytes, str]:
    """
    The metrics of C{recorder} in Prometheus's text exposition format.

    @param recorder: the recorder; the process's (L{get_recorder}) when
        C{None}.
    @return: C{(body, content_type)}: the UTF-8 text and its
        C{Content-Type}.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(get_recorder() if recorder is None else recorder))
    return generate_latest(registry), CONTENT_TYPE


class MetricsResource(Resource):
    """
    A C{twisted.web} resource answering C{GET} (and C{HEAD}) with L{render}'s
    output; any other method gets C{405 Method Not Allowed}. It has no
    children: mount it at C{/metrics}.
    """

    isLeaf = True

    def __init__(self, recorder: Optional[Recorder] = None) -> None:
        """
        @param recorder: the recorder to serve; the process's
            (L{get_recorder}) when C{None}.
        """
        super().__init__()
        self._recorder = recorder

    def render(self, request: Request) -> bytes:
        """
        Answer C{GET} and C{HEAD}; any other method gets C{405} with
        C{Allow: GET, HEAD} (Twisted alone would answer 501 to a method its
        server does not know, such as C{DELETE}).
        """
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"Method Not Allowed: use GET\n"
        return super().render(request)

    def render_GET(self, request: Request) -> bytes:
        """
        @return: the metrics, with C{Content-Type} L{CONTENT_TYPE} and
            C{Cache-Control: no-store}.
        """
        body, content_type = render(self._recorder)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return body
