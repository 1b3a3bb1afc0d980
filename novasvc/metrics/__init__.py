# -*- test-case-name: tests.test_metrics_recorder -*-
"""
Metrics of a novasvc process: RPC requests by method and outcome, dispatch
latency, requests in flight, duplicates dropped, malformed messages
rejected, broker reconnections, report_state outcomes, periodic task runs
and durations, notifications sent and received by event type, priority and
outcome.

L{Recorder} holds them as plain Python counters, cheap enough for the
per-message path (a few dictionary and list operations per request). Every
instrumented object (L{novasvc.rpc.server.RPCServer},
L{novasvc.transport.AMQPTransport},
L{novasvc.core.servicegroup.ReportStateService}, the periodic runner
L{novasvc.periodic.PeriodicTasks}, L{novasvc.notify.Notifier}, the
notification listeners of L{novasvc.notify.listener}) writes to the
process's recorder,
L{get_recorder}, unless it was given its own.

Exporting is separate: L{novasvc.metrics.prometheus} renders a recorder in
Prometheus's text format with C{prometheus_client} (C{pip install
'novasvc[api]'}), which nothing imports unless metrics are exported.

Layer: just above the base modules; it imports nothing else of novasvc, so the
transport, the RPC layer and the periodic runner may all count into it.
"""

from novasvc.metrics._notifications import NOTIFIER_OUTCOMES, SENT, NotificationCounts
from novasvc.metrics._recorder import Recorder, RPCServerMetrics, get_recorder
from novasvc.metrics._values import (
    ERROR,
    FAILED,
    LABEL_LIMIT,
    NO_SUCH_METHOD,
    OK,
    OTHER,
    RPC_BUCKETS,
    RPC_OUTCOMES,
    TASK_BUCKETS,
    UNKNOWN_METHOD,
    UNSUPPORTED_VERSION,
    Histogram,
)
from novasvc.metrics._listener import LISTENER_OUTCOMES, NotificationListenerMetrics

__all__ = [
    "Recorder",
    "RPCServerMetrics",
    "Histogram",
    "get_recorder",
    "OK",
    "ERROR",
    "NO_SUCH_METHOD",
    "UNSUPPORTED_VERSION",
    "FAILED",
    "RPC_OUTCOMES",
    "UNKNOWN_METHOD",
    "OTHER",
    "LABEL_LIMIT",
    "RPC_BUCKETS",
    "TASK_BUCKETS",
    "NotificationCounts",
    "SENT",
    "NOTIFIER_OUTCOMES",
    "NotificationListenerMetrics",
    "LISTENER_OUTCOMES",
]
