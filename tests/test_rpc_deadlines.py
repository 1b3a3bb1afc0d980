"""
Tests for L{novasvc.rpc._deadlines}.
"""

from typing import List

from twisted.internet import task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.rpc._deadlines import _SLACK, Deadlines


class DeadlinesTests(SynchronousTestCase):
    """
    L{Deadlines} calls back what is due, with one timer.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.deadlines = Deadlines(self.clock)
        self.fired: List[str] = []

    def add(self, seconds: float, name: str) -> list:
        return self.deadlines.add(seconds, lambda: self.fired.append(name), self.clock.seconds())

    def test_due(self) -> None:
        """
        When a deadline's seconds have passed, then its callback is called
        once, not before.
        """
        self.add(3, "a")
        self.clock.advance(2.9)
        self.assertEqual(self.fired, [])
        self.clock.advance(0.1)
        self.assertEqual(self.fired, ["a"])
        self.clock.advance(10)
        self.assertEqual((self.fired, len(self.deadlines)), (["a"], 0))

    def test_exact_time(self) -> None:
        """
        When the clock reaches a deadline exactly (0.1 + 0.2 seconds, not
        0.3 in floats), then it is due.
        """
        self.clock.advance(0.1)
        self.add(0.2, "a")
        self.clock.advance(0.2)
        self.assertEqual(self.fired, ["a"])

    def test_one_timer(self) -> None:
        """
        When many deadlines are watched, then one timer watches them, set
        for the earliest; they expire in order as the clock reaches each.
        """
        for i in range(5):
            self.add(10, f"late{i}")
            self.clock.advance(1)
        self.add(2, "early")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 7)
        self.clock.advance(2)
        self.assertEqual(self.fired, ["early"])
        self.clock.advance(3)
        self.assertEqual(self.fired, ["early", "late0"])
        self.clock.advance(4)
        self.assertEqual(self.fired, ["early", "late0", "late1", "late2", "late3", "late4"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """
        When a deadline is cancelled, then its callback is not called; once
        every deadline is cancelled, no timer is left.
        """
        first, second = self.add(1, "a"), self.add(2, "b")
        self.deadlines.cancel(first)
        self.deadlines.cancel(first)
        self.clock.advance(1)
        self.assertEqual(self.fired, [])
        self.deadlines.cancel(second)
        self.assertEqual((self.clock.getDelayedCalls(), len(self.deadlines)), ([], 0))
        self.clock.advance(5)
        self.assertEqual(self.fired, [])

    def test_cancelled_do_not_pile_up(self) -> None:
        """
        When deadlines keep being added and cancelled while one stays, then
        the cancelled ones held stay bounded, and the one left still fires.
        """
        self.add(100, "kept")
        for _ in range(10 * _SLACK):
            self.deadlines.cancel(self.add(100, "cancelled"))
        self.assertLessEqual(self.deadlines._size, 1 + _SLACK + 1)
        self.clock.advance(100)
        self.assertEqual(self.fired, ["kept"])

    def test_callback_error(self) -> None:
        """
        When a callback raises, then the error is logged, and the other
        deadlines due and the later ones still fire.
        """
        log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        self.deadlines.add(1, lambda: 1 / 0, 0)
        self.add(1, "a")
        self.add(2, "b")
        self.clock.advance(1)
        self.assertEqual(self.fired, ["a"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(len(log), 1)
        self.clock.advance(1)
        self.assertEqual(self.fired, ["a", "b"])

    def test_added_while_firing(self) -> None:
        """
        When a callback adds a deadline or cancels one, then the timer is
        set for what is left.
        """
        other = self.add(5, "other")

        def again() -> None:
            self.fired.append("first")
            self.deadlines.cancel(other)
            self.add(1, "second")

        self.deadlines.add(1, again, 0)
        self.clock.advance(1)
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [2])
        self.clock.advance(5)
        self.assertEqual(self.fired, ["first", "second"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
