"""
Tests for L{novasvc.metrics._notifications}: the notification counters of
a recorder (L{novasvc.metrics.Recorder.notifier}).
"""

from twisted.trial.unittest import SynchronousTestCase

from novasvc.metrics import FAILED, LABEL_LIMIT, NOTIFIER_OUTCOMES, OTHER, SENT, NotificationCounts, Recorder


class NotificationCountsTests(SynchronousTestCase):
    """
    L{NotificationCounts}.
    """

    def test_counts(self) -> None:
        """
        When notifications are counted, then each event type and priority
        pair has a count per outcome, every outcome present, sorted.
        """
        counts = NotificationCounts(NOTIFIER_OUTCOMES, 10)
        counts.count("vol.b", "info", SENT)
        counts.count("vol.a", "error", FAILED)
        counts.count("vol.b", "info", SENT)
        self.assertEqual(counts.counts(), [("vol.a", "error", {SENT: 0, FAILED: 1}),
                                           ("vol.b", "info", {SENT: 2, FAILED: 0})])

    def test_bounded(self) -> None:
        """
        When more event types than the limit are counted, then the further
        ones count under <other> (whatever their priority), a known one
        keeps its label, and a long one is cut to LABEL_LIMIT characters.
        """
        counts = NotificationCounts(NOTIFIER_OUTCOMES, 2)
        for event_type in ("a", "x" * 500, "c", "d", "a"):
            counts.count(event_type, "info", SENT)
        counts.count("e", "warn", FAILED)
        labels = {(label, priority): outcomes for label, priority, outcomes in counts.counts()}
        self.assertEqual(labels[("a", "info")][SENT], 2)
        self.assertEqual(labels[("x" * LABEL_LIMIT + "...", "info")][SENT], 1)
        self.assertEqual(labels[(OTHER, "info")][SENT], 2)
        self.assertEqual(labels[(OTHER, "warn")][FAILED], 1)
        self.assertEqual(len(labels), 4)

    def test_unknown_outcome(self) -> None:
        """
        When an outcome outside the counter's is given, then KeyError.
        """
        self.assertRaises(KeyError, NotificationCounts(NOTIFIER_OUTCOMES, 2).count, "e", "info", "lost")

    def test_recorder(self) -> None:
        """
        When a recorder is made, then its notifier counts have the outcomes
        sent and failed, its label limit, and stay the same object.
        """
        recorder = Recorder(max_label_values=1)
        self.assertIs(recorder.notifier, recorder.notifier)
        self.assertEqual(recorder.notifier.outcomes, (SENT, FAILED))
        recorder.notifier.count("a", "info", SENT)
        recorder.notifier.count("b", "info", SENT)
        self.assertEqual([label for label, _, _ in recorder.notifier.counts()], [OTHER, "a"])


class _Listener:
    def __init__(self, inflight: int) -> None:
        self.inflight = inflight


class NotificationListenerMetricsTests(SynchronousTestCase):
    """
    L{novasvc.metrics.NotificationListenerMetrics}: what the listeners
    received, and how many they are handling.
    """

    def test_counts(self) -> None:
        """
        When notifications are counted, then each event type and priority
        has a count per listener outcome; an unknown outcome is a KeyError.
        """
        from novasvc.metrics import LISTENER_OUTCOMES

        metrics = Recorder().notification_listener
        self.assertEqual(LISTENER_OUTCOMES, ("handled", "requeued", "error", "malformed", "duplicate"))
        metrics.count("vol.a", "info", "handled")
        metrics.count("vol.a", "info", "requeued")
        metrics.count("<unknown>", "<unknown>", "malformed")
        self.assertEqual(metrics.counts(), [
            ("<unknown>", "<unknown>", dict.fromkeys(LISTENER_OUTCOMES, 0) | {"malformed": 1}),
            ("vol.a", "info", dict.fromkeys(LISTENER_OUTCOMES, 0) | {"handled": 1, "requeued": 1}),
        ])
        self.assertRaises(KeyError, metrics.count, "vol.a", "info", "sent")

    def test_recorder(self) -> None:
        """
        When a recorder's listener metrics are read twice, then they are the
        same object, bounded by the recorder's label limit.
        """
        recorder = Recorder(max_label_values=1)
        self.assertIs(recorder.notification_listener, recorder.notification_listener)
        recorder.notification_listener.count("a", "info", "handled")
        recorder.notification_listener.count("b", "info", "handled")
        self.assertEqual([label for label, _, _ in recorder.notification_listener.counts()], [OTHER, "a"])

    def test_inflight(self) -> None:
        """
        When listeners are watched, then inflight sums theirs at read time,
        and forgets those garbage collected.
        """
        metrics = Recorder().notification_listener
        first, second = _Listener(2), _Listener(3)
        metrics.watch(first)
        metrics.watch(second)
        self.assertEqual(metrics.inflight, 5)
        second.inflight = 0
        del first
        self.assertEqual(metrics.inflight, 0)
        self.assertEqual(len(metrics._listeners), 1)
