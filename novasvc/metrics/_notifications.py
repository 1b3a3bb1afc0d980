# -*- test-case-name: tests.test_metrics_notifications -*-
"""
Notification counters: how many notifications went through one side
(L{novasvc.notify.Notifier} sending: L{novasvc.metrics.Recorder.notifier}),
by event type, priority and outcome.

The event type is chosen by application code, sometimes from what a client
sent, so it is a bounded label: past C{max_label_values} event types,
further ones count under L{novasvc.metrics.OTHER}, and a value is cut to
L{novasvc.metrics.LABEL_LIMIT} characters. The priority is one of oslo's
seven, checked by the notifier before it counts.

Public through L{novasvc.metrics}.
"""

from typing import Dict, List, Sequence, Tuple

from novasvc.metrics._values import FAILED, OTHER, label_value

__all__ = ["NotificationCounts", "SENT", "NOTIFIER_OUTCOMES"]

#: Outcome of a notification message the broker confirmed (or that a
#: non-messaging driver handled).
SENT = "sent"
#: The outcomes of the notifier's counts, in the order they are exported:
#: L{SENT}, L{novasvc.metrics.FAILED} (not sent: the broker stayed away
#: beyond the retries, refused it, or the notification could not be
#: encoded).
NOTIFIER_OUTCOMES = (SENT, FAILED)


class NotificationCounts:
    """
    Counts of notifications by event type, priority and outcome.

    @ivar outcomes: the outcomes counted, in export order (a C{tuple}).
    """

    __slots__ = ("outcomes", "_by_key", "_by_label", "_limit")

    def __init__(self, outcomes: Sequence[str], max_label_values: int) -> None:
        """
        @param outcomes: every outcome L{count} accepts.
        @param max_label_values: the most event type labels; further event
            types count under L{novasvc.metrics.OTHER}.
        """
        self.outcomes = tuple(outcomes)
        self._by_key: Dict[Tuple[str, str], Dict[str, int]] = {}
        self._by_label: Dict[str, None] = {}
        self._limit = max_label_values

    def count(self, event_type: str, priority: str, outcome: str) -> None:
        """
        Count one notification.

        @param event_type: e.g. C{"volume.create.end"}; bounded as the
            module docstring says.
        @param priority: the lower-case priority (C{"info"}...).
        @param outcome: one of L{outcomes}.
        @raise KeyError: for an outcome not in L{outcomes}.
        """
        label = label_value(event_type)
        if label not in self._by_label:
            if len(self._by_label) >= self._limit:
                label = OTHER
            else:
                self._by_label[label] = None
        key = (label, priority)
        counts = self._by_key.get(key)
        if counts is None:
            counts = self._by_key[key] = dict.fromkeys(self.outcomes, 0)
        if outcome not in counts:
            raise KeyError(f"unknown outcome {outcome!r} (expected one of {', '.join(self.outcomes)})")
        counts[outcome] += 1

    def counts(self) -> List[Tuple[str, str, Dict[str, int]]]:
        """
        @return: C{(event type label, priority, {outcome: count})} for each
            pair counted so far, sorted; every outcome is present.
        """
        return [(label, priority, dict(counts)) for (label, priority), counts in sorted(self._by_key.items())]
