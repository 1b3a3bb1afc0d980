"""
Tests for L{novasvc.periodic._timer}: L{fuzzy_delay} and
L{PeriodicTaskService}.
"""

from typing import Any, List

from twisted.application.service import MultiService
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.periodic import PeriodicTaskService, fuzzy_delay, periodic_task
from tests._periodic import CONTEXT, Recorder, make, messages


class FakeRandInt:
    """
    Records C{randint} calls and returns C{result}.
    """

    def __init__(self, result: int) -> None:
        self.result = result
        self.calls: List[tuple] = []

    def randint(self, a: int, b: int) -> int:
        self.calls.append((a, b))
        return self.result



class FuzzyDelayTests(SynchronousTestCase):
    """
    Tests for L{fuzzy_delay}.
    """

    def test_zero(self) -> None:
        """
        When the fuzzy delay is 0, then there is no initial delay (C{None})
        and the random source is not used.
        """
        rng = FakeRandInt(7)
        self.assertIsNone(fuzzy_delay(0, rng))
        self.assertEqual(rng.calls, [])

    def test_random(self) -> None:
        """
        When the fuzzy delay is positive, then the result is
        C{rng.randint(0, int(delay))}.
        """
        rng = FakeRandInt(7)
        self.assertEqual(fuzzy_delay(60.9, rng), 7)
        self.assertEqual(rng.calls, [(0, 60)])

    def test_defaultSourceBounds(self) -> None:
        """
        When no random source is given, then the result stays within
        [0, delay].
        """
        for _ in range(20):
            self.assertTrue(0 <= fuzzy_delay(3) <= 3)

    def test_negative(self) -> None:
        """
        When the fuzzy delay is negative, then C{ValueError} is raised.
        """
        self.assertRaises(ValueError, fuzzy_delay, -1)


class PeriodicTaskServiceTests(SynchronousTestCase):
    """
    Tests for L{PeriodicTaskService}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.calls: List[float] = []
        self.results: List[Any] = []

    def fake_run(self) -> Any:
        """
        The runner under test: record the clock, then return (or raise) the
        next of C{self.results}, 10 when none is left.
        """
        self.calls.append(self.clock.seconds())
        result = self.results.pop(0) if self.results else 10
        if isinstance(result, Exception):
            raise result
        return result

    def service(self, **kwargs: Any) -> PeriodicTaskService:
        """
        @return: a L{PeriodicTaskService} of L{fake_run} on the test clock,
            stopped at cleanup.
        """
        svc = PeriodicTaskService(self.fake_run, clock=self.clock, **kwargs)
        self.addCleanup(lambda: svc.running and svc.stopService())
        return svc

    def test_noInitialDelay(self) -> None:
        """
        When the initial delay is None or 0, then run is called when the
        service starts.
        """
        for delay in (None, 0):
            self.calls = []
            svc = self.service(initial_delay=delay)
            svc.startService()
            self.assertEqual(self.calls, [0])
            svc.stopService()

    def test_initialDelay(self) -> None:
        """
        When an initial delay is given, then the first call comes after it.
        """
        self.service(initial_delay=7).startService()
        self.clock.advance(6.9)
        self.assertEqual(self.calls, [])
        self.clock.advance(0.1)
        self.assertEqual(self.calls, [7])

    def test_fuzzyInitialDelay(self) -> None:
        """
        When started with fuzzy_delay's result, then the first call comes at
        that random time.
        """
        self.service(initial_delay=fuzzy_delay(60, FakeRandInt(42))).startService()
        self.clock.advance(41)
        self.assertEqual(self.calls, [])
        self.clock.advance(1)
        self.assertEqual(self.calls, [42])

    def test_sleepsIdleTime(self) -> None:
        """
        When run returns an idle time, then the next call comes after exactly
        that time (no maximum).
        """
        self.results = [3, 120, 1]
        self.service().startService()
        self.clock.advance(3)
        self.clock.advance(119)
        self.assertEqual(self.calls, [0, 3])
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(self.calls, [0, 3, 123, 124])

    def test_cappedByIntervalMax(self) -> None:
        """
        When the idle time exceeds interval_max, then the next call comes
        after interval_max.
        """
        self.results = [60, 2]
        self.service(interval_max=15).startService()
        self.clock.advance(15)
        self.clock.advance(2)
        self.assertEqual(self.calls, [0, 15, 17])

    def test_noneIdleWithMax(self) -> None:
        """
        When run returns None and there is a maximum, then the next call
        comes after interval_max, without error.
        """
        self.results = [None]
        self.service(interval_max=5).startService()
        self.clock.advance(5)
        self.assertEqual(self.calls, [0, 5])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_survivesRaisingRun(self) -> None:
        """
        When run raises, then the error is logged and the timer calls it
        again after interval_max (or 60 s without one), and logs once that
        it recovered.
        """
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.results = [RuntimeError("first"), RuntimeError("second"), 4]
        self.service().startService()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.clock.advance(60)
        self.assertEqual(self.flushLoggedErrors(RuntimeError), [])
        self.assertTrue(
            any("still failing (2 runs in a row)" in m for m in messages(observer, LogLevel.warn))
        )
        self.clock.advance(60)
        self.assertIn(
            "Periodic task runner recovered after 2 failed runs",
            messages(observer, LogLevel.info),
        )
        self.clock.advance(4)
        self.assertEqual(self.calls, [0, 60, 120, 124])

    def test_raisingRunWithMax(self) -> None:
        """
        When run raises and interval_max is set, then the next call comes
        after interval_max.
        """
        self.results = [RuntimeError("boom")]
        self.service(interval_max=7).startService()
        self.clock.advance(7)
        self.assertEqual(self.calls, [0, 7])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_badIdleValue(self) -> None:
        """
        When run returns something that is not a number (and no maximum is
        set), then it is logged as an error and the timer retries after 60 s.
        """
        self.results = ["soon"]
        self.service().startService()
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.clock.advance(60)
        self.assertEqual(self.calls, [0, 60])

    def test_stopCancels(self) -> None:
        """
        When the service stops, then the pending call is cancelled and run is
        never called again.
        """
        svc = self.service()
        svc.startService()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        svc.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1000)
        self.assertEqual(self.calls, [0])

    def test_stopDuringRun(self) -> None:
        """
        When run stops the service, then nothing is scheduled afterwards.
        """
        svc = PeriodicTaskService(lambda: svc.stopService() or 5, clock=self.clock)
        svc.startService()
        self.assertFalse(svc.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restart(self) -> None:
        """
        When the service is stopped and started again, then it calls run
        again with the initial delay.
        """
        svc = self.service(initial_delay=5)
        svc.startService()
        svc.stopService()
        svc.startService()
        self.clock.advance(5)
        self.assertEqual(self.calls, [5])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_badArguments(self) -> None:
        """
        When initial_delay is negative or interval_max is not positive, then
        C{ValueError} is raised.
        """
        self.assertRaises(ValueError, PeriodicTaskService, self.fake_run, initial_delay=-1)
        self.assertRaises(ValueError, PeriodicTaskService, self.fake_run, interval_max=0)

    def test_drivesRunner(self) -> None:
        """
        When the service drives a L{PeriodicTasks} runner under a parent
        service, then tasks run at their spacing and the timer wakes at the
        idle time the runner returned, capped by interval_max.
        """

        class T(Recorder):
            @periodic_task(spacing=30, run_immediately=True)
            def a(self, context):
                self.record("a")

        obj = make(T)
        obj.clock = self.clock
        parent = MultiService()
        PeriodicTaskService(
            lambda: obj.run_periodic_tasks(CONTEXT), clock=self.clock, interval_max=20
        ).setServiceParent(parent)
        parent.startService()
        self.addCleanup(parent.stopService)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [20])
        self.clock.advance(20)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [30])
        self.clock.advance(10)
        self.assertEqual(obj.ran, [("a", 0), ("a", 30)])
