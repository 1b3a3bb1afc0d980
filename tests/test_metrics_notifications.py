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
