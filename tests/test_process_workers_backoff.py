"""
Tests for L{novasvc.process.workers._backoff}.
"""

from twisted.trial.unittest import SynchronousTestCase

from novasvc.process.workers import Backoff


class BackoffTests(SynchronousTestCase):
    """
    L{Backoff.delay}: 1 s, doubling to 30 s, back to 1 s after a stable run.
    """

    def test_first(self) -> None:
        """
        When a worker that was never restarted ends, then the delay is the
        first one, however long it ran.
        """
        backoff = Backoff()
        self.assertEqual(backoff.delay(None, 0.0), 1.0)
        self.assertEqual(backoff.delay(None, 59.0), 1.0)

    def test_doubles_to_maximum(self) -> None:
        """
        When a worker keeps ending soon after each restart, then each delay
        doubles the previous one, up to 30 s.
        """
        backoff, delays, previous = Backoff(), [], None
        for _ in range(8):
            previous = backoff.delay(previous, 0.5)
            delays.append(previous)
        self.assertEqual(delays, [1, 2, 4, 8, 16, 30, 30, 30])

    def test_stable_run_resets(self) -> None:
        """
        When a worker ran for C{stable_after} seconds before it ended, then
        the delay starts again from the first.
        """
        backoff = Backoff(first=0.5, maximum=10, stable_after=60)
        self.assertEqual(backoff.delay(8.0, 60.0), 0.5)
        self.assertEqual(backoff.delay(8.0, 59.9), 10.0)

    def test_refused(self) -> None:
        """
        When the settings cannot give a sequence of delays, then
        L{ValueError} says which.
        """
        self.assertIn("first", str(self.assertRaises(ValueError, Backoff, first=0)))
        self.assertIn("maximum", str(self.assertRaises(ValueError, Backoff, first=5, maximum=1)))
        self.assertIn("stable_after", str(self.assertRaises(ValueError, Backoff, stable_after=-1)))
