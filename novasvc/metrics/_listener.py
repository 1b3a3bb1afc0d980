# -*- test-case-name: tests.test_metrics_notifications -*-
"""
The metrics of a process's notification listeners
(L{novasvc.notify.listener}): notifications received by event type,
priority and outcome (L{novasvc.metrics.NotificationCounts}: event types
bounded), and those in flight.

Public through L{novasvc.metrics}; made by
L{novasvc.metrics.Recorder.notification_listener}.
"""

import weakref
from typing import Any, Dict, List, Tuple

from novasvc.metrics._notifications import NotificationCounts

__all__ = ["NotificationListenerMetrics", "LISTENER_OUTCOMES", "UNKNOWN"]

#: The outcomes of a notification received, in the order they are exported:
#: acknowledged after the endpoints returned; an endpoint asked to requeue
#: it; an endpoint raised (both given back or acknowledged as the listener's
#: C{allow_requeue} says); rejected because it could not be decoded;
#: acknowledged without dispatch because its C{_unique_id} was seen.
LISTENER_OUTCOMES = ("handled", "requeued", "error", "malformed", "duplicate")
#: The event type and priority labels of a notification that could not be
#: decoded.
UNKNOWN = "<unknown>"


class NotificationListenerMetrics:
    """
    Notifications received by the listeners of a process.

    @ivar received: the counts, a L{NotificationCounts} with the outcomes
        L{LISTENER_OUTCOMES}.
    """

    __slots__ = ("received", "_listeners")

    def __init__(self, max_label_values: int) -> None:
        """
        @param max_label_values: the most event type labels.
        """
        self.received = NotificationCounts(LISTENER_OUTCOMES, max_label_values)
        self._listeners: List[Any] = []

    def count(self, event_type: str, priority: str, outcome: str) -> None:
        """
        Count one notification (see L{NotificationCounts.count}).

        @param event_type: its event type (L{UNKNOWN} when malformed).
        @param priority: its lower-case priority (L{UNKNOWN} when
            malformed).
        @param outcome: one of L{LISTENER_OUTCOMES}.
        """
        self.received.count(event_type, priority, outcome)

    def counts(self) -> List[Tuple[str, str, Dict[str, int]]]:
        """
        @return: C{(event type label, priority, {outcome: count})} for each
            pair counted so far, sorted.
        """
        return self.received.counts()

    def watch(self, listener: Any) -> None:
        """
        Read C{listener.inflight} at scrape time (see L{inflight}); the
        listener is held by a weak reference.
        """
        self._listeners = [ref for ref in self._listeners if ref() is not None]
        self._listeners.append(weakref.ref(listener))

    @property
    def inflight(self) -> int:
        """
        The notifications being handled now, summed over the live
        listeners watched.
        """
        total = 0
        live = []
        for ref in self._listeners:
            listener = ref()
            if listener is not None:
                live.append(ref)
                total += listener.inflight
        self._listeners = live
        return total
