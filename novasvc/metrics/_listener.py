# -*- test-case-name: tests.test_metrics_recorder -*-
"""
The metrics of a process's notification listeners
(L{novasvc.notify.listener}): notifications received by event type,
priority and outcome, and those in flight.

Public through L{novasvc.metrics}; made by L{novasvc.metrics.Recorder}.
"""

import weakref
from typing import Any, Dict, List, Set, Tuple

from novasvc.metrics._recorder import OTHER, _label

__all__ = ["NotificationListenerMetrics", "NOTIFICATION_OUTCOMES", "UNKNOWN"]

#: The outcomes of a notification received, in the order they are exported:
#: acknowledged after the endpoints returned; an endpoint asked to requeue
#: it; an endpoint raised; rejected because it could not be decoded;
#: acknowledged without dispatch because its C{_unique_id} was seen.
NOTIFICATION_OUTCOMES = ("handled", "requeued", "error", "malformed", "duplicate")
#: The event type and priority labels of a notification that could not be
#: decoded.
UNKNOWN = "<unknown>"


class NotificationListenerMetrics:
    """
    Notifications received by the listeners of a process (made by
    L{novasvc.metrics.Recorder.notification_listener}).

    Event types are labels chosen by publishers: past C{max_label_values}
    of them, further ones count under L{novasvc.metrics.OTHER} and are not
    remembered, so the memory used stays bounded.
    """

    __slots__ = ("_series", "_by_label", "_types", "_limit", "_listeners")

    def __init__(self, max_label_values: int) -> None:
        """
        @param max_label_values: the most event type labels.
        """
        self._series: Dict[Tuple[str, str], Dict[str, int]] = {}
        self._by_label: Dict[Tuple[str, str], Dict[str, int]] = {}
        self._types: Set[str] = set()
        self._limit = max_label_values
        self._listeners: List[Any] = []

    def received(self, event_type: str, priority: str, outcome: str) -> None:
        """
        Count one notification (the hot path).

        @param event_type: its event type (L{UNKNOWN} when malformed).
        @param priority: its priority, lower case (L{UNKNOWN} when
            malformed).
        @param outcome: one of L{NOTIFICATION_OUTCOMES}.
        @raise KeyError: for another outcome.
        """
        counts = self._series.get((event_type, priority))
        if counts is None:
            counts = self._counts(event_type, priority)
        counts[outcome] += 1

    def _counts(self, event_type: str, priority: str) -> Dict[str, int]:
        label = _label(event_type)
        known = label in self._types or label == UNKNOWN
        if not known and len(self._types) >= self._limit:
            label = OTHER
        key = (label, _label(priority))
        counts = self._by_label.get(key)
        if counts is None:
            counts = self._by_label[key] = dict.fromkeys(NOTIFICATION_OUTCOMES, 0)
        if label is OTHER:
            return counts  # not remembered by name: memory stays bounded
        if label != UNKNOWN:
            self._types.add(label)
        self._series[(event_type, priority)] = counts
        return counts

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

    def series(self) -> List[Tuple[str, str, Dict[str, int]]]:
        """
        @return: C{(event type label, priority label, {outcome: count})}
            for each pair seen, sorted.
        """
        return [(event_type, priority, dict(counts))
                for (event_type, priority), counts in sorted(self._by_label.items())]
