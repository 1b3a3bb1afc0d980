"""
Tests for L{novasvc.periodic._runner}: L{PeriodicTasks}.
"""

from typing import List

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.periodic import DEFAULT_INTERVAL, PeriodicTasks, periodic_task
from tests._periodic import CONTEXT, Recorder, make, messages


class InitTests(SynchronousTestCase):
    """
    Tests for L{PeriodicTasks.__init__} and the state it creates.
    """

    def test_leftOverInitArguments(self) -> None:
        """
        When L{PeriodicTasks} gets constructor arguments nothing consumes,
        then it raises C{TypeError} naming the class.
        """

        class T(PeriodicTasks):
            pass

        with self.assertRaises(TypeError) as raised:
            T(1, x=2)
        self.assertIn("T()", str(raised.exception))

    def test_withoutInit(self) -> None:
        """
        When a subclass never calls C{PeriodicTasks.__init__}, then its tasks
        still run.
        """

        class T(PeriodicTasks):
            def __init__(self):
                self.ran = []

            @periodic_task(spacing=5, run_immediately=True)
            def a(self, context):
                self.ran.append(context)

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran, [CONTEXT])


class RunnerTests(SynchronousTestCase):
    """
    Tests for L{PeriodicTasks.run_periodic_tasks}: timing and bookkeeping.
    """

    def test_noTasks(self) -> None:
        """
        When there are no tasks, then a pass returns L{DEFAULT_INTERVAL}.
        """
        self.assertEqual(make(PeriodicTasks).run_periodic_tasks(CONTEXT), 60.0)

    def test_runImmediately(self) -> None:
        """
        When a task has run_immediately=True, then it runs at the first pass
        and the pass returns its spacing; without it, it runs one spacing
        after the first pass.
        """

        class T(Recorder):
            @periodic_task(spacing=10, run_immediately=True)
            def now(self, context):
                self.record("now")

            @periodic_task(spacing=10)
            def later(self, context):
                self.record("later")

        obj = make(T)
        obj.clock.advance(1000)  # Time before the first pass does not count.
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 10)
        self.assertEqual(obj.ran, [("now", 1000)])
        obj.clock.advance(10)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 10)
        self.assertEqual(obj.ran, [("now", 1000), ("now", 1010), ("later", 1010)])

    def test_contextPassed(self) -> None:
        """
        When a task runs, then it gets the context given to the runner.
        """

        class T(PeriodicTasks):
            @periodic_task(spacing=1, run_immediately=True)
            def a(self, context):
                self.got = context

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)
        self.assertIs(obj.got, CONTEXT)

    def test_idleTimeIsRemainingTime(self) -> None:
        """
        When tasks are not due, then the pass returns the least of their
        spacings and remaining times.
        """

        class T(Recorder):
            @periodic_task(spacing=30)
            def slow(self, context):
                self.record("slow")

            @periodic_task(spacing=50)
            def slower(self, context):
                self.record("slower")

        obj = make(T)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 30)
        obj.clock.advance(25)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 5)
        obj.clock.advance(5)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 20)
        self.assertEqual(obj.ran, [("slow", 30)])

    def test_idleTimeCappedAtDefault(self) -> None:
        """
        When every task has a spacing above 60 s, then a pass still returns
        at most L{DEFAULT_INTERVAL}.
        """

        class T(PeriodicTasks):
            @periodic_task(spacing=600)
            def rare(self, context):
                pass

        self.assertEqual(make(T).run_periodic_tasks(CONTEXT), DEFAULT_INTERVAL)

    def test_nearestBoundaryWhenLate(self) -> None:
        """
        When a pass comes late, then the next run is planned on the task's
        original grid (now minus the lateness modulo spacing), not a full
        spacing after the late run.
        """

        class T(Recorder):
            @periodic_task(spacing=10, run_immediately=True)
            def a(self, context):
                self.record("a")

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)  # t=0, last run 0.
        obj.clock.advance(23)
        obj.run_periodic_tasks(CONTEXT)  # t=23, boundary 20.
        obj.clock.advance(6)
        obj.run_periodic_tasks(CONTEXT)  # t=29: not due.
        self.assertEqual(obj.ran, [("a", 0), ("a", 23)])
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 1)
        obj.clock.advance(1)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran[-1], ("a", 30))

    def test_jitterBounds(self) -> None:
        """
        When a task has run before, then its next run is delayed by
        C{int(spacing * random() / 20)} whole seconds: 0 for the lowest
        random value, 4 (< 5 %) for the highest with spacing 100.
        """

        class T(Recorder):
            @periodic_task(spacing=100, run_immediately=True)
            def a(self, context):
                self.record("a")

        for value, jitter in [(0.0, 0), (0.5, 2), (0.999999, 4)]:
            obj = make(T, random_value=value)
            obj.run_periodic_tasks(CONTEXT)  # First run: no jitter.
            obj.clock.advance(100)
            obj.run_periodic_tasks(CONTEXT)  # Last run = 100 + jitter.
            self.assertEqual(obj.run_periodic_tasks(CONTEXT), 60)
            obj.clock.advance(99 + jitter)
            obj.run_periodic_tasks(CONTEXT)
            self.assertEqual(len(obj.ran), 2, f"random {value}")
            obj.clock.advance(1)
            obj.run_periodic_tasks(CONTEXT)
            self.assertEqual(obj.ran[-1], ("a", 200 + jitter), f"random {value}")

    def test_noJitterBelowTwentySeconds(self) -> None:
        """
        When the spacing is under 20 s, then the jitter is always 0.
        """

        class T(Recorder):
            @periodic_task(spacing=19, run_immediately=True)
            def a(self, context):
                self.record("a")

        obj = make(T, random_value=0.999999)
        for _ in range(3):
            obj.run_periodic_tasks(CONTEXT)
            obj.clock.advance(19)
        self.assertEqual(obj.ran, [("a", 0), ("a", 19), ("a", 38)])

    def test_externalTasks(self) -> None:
        """
        When run_external_periodic_tasks is False, then tasks declared
        external_process_ok are skipped and do not lower the idle time.
        """

        class T(Recorder):
            @periodic_task(spacing=5, run_immediately=True, external_process_ok=True)
            def external(self, context):
                self.record("external")

        obj = make(T)
        obj.run_external_periodic_tasks = False
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), DEFAULT_INTERVAL)
        self.assertEqual(obj.ran, [])
        obj.run_external_periodic_tasks = True
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 5)
        self.assertEqual(obj.ran, [("external", 0)])

    def test_defaultClockIsGlobalReactor(self) -> None:
        """
        When no clock was set, then C{clock} is the global reactor; once set,
        it is the one set.
        """
        from twisted.internet import reactor

        obj = PeriodicTasks()
        self.assertIs(obj.clock, reactor)
        clock = Clock()
        obj.clock = clock
        self.assertIs(obj.clock, clock)


class AddPeriodicTaskTests(SynchronousTestCase):
    """
    Tests for L{PeriodicTasks.add_periodic_task}.
    """

    def test_addFunction(self) -> None:
        """
        When a decorated function is added to one instance, then it runs on
        that instance as C{f(self, context)}, and not on other instances.
        """
        calls = []

        @periodic_task(spacing=5, run_immediately=True)
        def extra(self, context):
            calls.append((self, context))

        obj, other = make(PeriodicTasks), make(PeriodicTasks)
        self.assertTrue(obj.add_periodic_task(extra))
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 5)
        self.assertEqual(other.run_periodic_tasks(CONTEXT), DEFAULT_INTERVAL)
        self.assertEqual(calls, [(obj, CONTEXT)])

    def test_addBoundMethod(self) -> None:
        """
        When a decorated bound method is added, then it is called with the
        context only.
        """

        class Source:
            def __init__(self):
                self.calls = []

            @periodic_task(spacing=5, run_immediately=True)
            def tick(self, context):
                self.calls.append(context)

        source = Source()
        obj = make(PeriodicTasks)
        obj.add_periodic_task(source.tick)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(source.calls, [CONTEXT])

    def test_addNotFirstPass(self) -> None:
        """
        When a task without run_immediately is added after the runner
        started, then it first runs one spacing after the next pass.
        """
        calls = []

        @periodic_task(spacing=5)
        def extra(self, context):
            calls.append(self.clock.seconds())

        obj = make(PeriodicTasks)
        obj.run_periodic_tasks(CONTEXT)
        obj.clock.advance(100)
        obj.add_periodic_task(extra)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 5)
        obj.clock.advance(5)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(calls, [105])

    def test_addDisabled(self) -> None:
        """
        When a disabled task is added, then it returns C{False} and the task
        never runs.
        """

        @periodic_task(enabled=False, run_immediately=True)
        def off(self, context):
            raise AssertionError("must not run")

        obj = make(PeriodicTasks)
        self.assertFalse(obj.add_periodic_task(off))
        obj.run_periodic_tasks(CONTEXT)

    def test_addUndecorated(self) -> None:
        """
        When an undecorated function is added, then C{TypeError} is raised.
        """
        self.assertRaises(TypeError, make(PeriodicTasks).add_periodic_task, lambda s, c: None)

    def test_addDuplicateName(self) -> None:
        """
        When a task of an existing name is added, then C{ValueError} is
        raised.
        """

        class T(PeriodicTasks):
            @periodic_task
            def a(self, context):
                pass

        @periodic_task(name="a")
        def other(self, context):
            pass

        self.assertRaises(ValueError, make(T).add_periodic_task, other)


class AsyncTaskTests(SynchronousTestCase):
    """
    Tests for tasks returning Deferreds or coroutines.
    """

    def test_slowTaskDoesNotOverlap(self) -> None:
        """
        When a task's Deferred has not fired when it is due again, then it is
        skipped (and stays due) while other tasks keep running; once it
        fires, the next pass runs it again.
        """

        class T(Recorder):
            def __init__(self):
                super().__init__()
                self.pending: List[Deferred] = []

            @periodic_task(spacing=10, run_immediately=True)
            def slow(self, context):
                self.record("slow")
                d = Deferred()
                self.pending.append(d)
                return d

            @periodic_task(spacing=10, run_immediately=True)
            def fast(self, context):
                self.record("fast")

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)
        obj.clock.advance(10)
        obj.run_periodic_tasks(CONTEXT)
        obj.clock.advance(10)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran, [("slow", 0), ("fast", 0), ("fast", 10), ("fast", 20)])
        obj.pending[0].callback(None)
        obj.clock.advance(1)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran[-1], ("slow", 21))
        self.assertEqual(len(obj.pending), 2)

    def test_coroutineTask(self) -> None:
        """
        When a task is a coroutine function, then its coroutine runs, and it
        counts as running until it finishes.
        """

        class T(Recorder):
            def __init__(self):
                super().__init__()
                self.gate = Deferred()

            @periodic_task(spacing=1, run_immediately=True)
            async def coro(self, context):
                self.record("start")
                await self.gate
                self.record("end")

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)
        obj.clock.advance(1)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran, [("start", 0)])
        waiting = obj.wait_for_periodic_tasks()
        self.assertNoResult(waiting)
        obj.gate.callback(None)
        self.assertEqual(obj.ran, [("start", 0), ("end", 1)])
        self.assertIsNone(self.successResultOf(waiting))

    def test_asyncFailureLogged(self) -> None:
        """
        When a task's Deferred fails, then the failure is logged as
        "Error during <Class>.<task>" and the task runs again when due.
        """

        class T(Recorder):
            @periodic_task(spacing=1, run_immediately=True)
            async def broken(self, context):
                self.record("broken")
                raise ValueError("async boom")

        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        obj = make(T)
        obj.run_periodic_tasks(CONTEXT, raise_on_error=True)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertIn("Error during T.broken", messages(observer, LogLevel.error))
        obj.clock.advance(1)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(len(obj.ran), 2)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_waitWhenIdle(self) -> None:
        """
        When no task is running, then wait_for_periodic_tasks fires at once.
        """
        self.assertIsNone(self.successResultOf(make(PeriodicTasks).wait_for_periodic_tasks()))

    def test_waitForAll(self) -> None:
        """
        When two tasks are running, then wait_for_periodic_tasks fires only
        after both finished, even if one fails.
        """

        class T(PeriodicTasks):
            def __init__(self):
                self.a, self.b = Deferred(), Deferred()

            @periodic_task(spacing=1, run_immediately=True)
            def task_a(self, context):
                return self.a

            @periodic_task(spacing=1, run_immediately=True)
            def task_b(self, context):
                return self.b

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)
        waiting = obj.wait_for_periodic_tasks()
        obj.a.callback("ignored")
        self.assertNoResult(waiting)
        obj.b.errback(RuntimeError("late failure"))
        self.assertIsNone(self.successResultOf(waiting))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_cancelWait(self) -> None:
        """
        When a wait is cancelled, then it fails with C{CancelledError} and
        the task finishing later does not disturb it.
        """

        class T(PeriodicTasks):
            def __init__(self):
                self.d = Deferred()

            @periodic_task(spacing=1, run_immediately=True)
            def a(self, context):
                return self.d

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)
        waiting = obj.wait_for_periodic_tasks()
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        obj.d.callback(None)
        self.assertIsNone(self.successResultOf(obj.wait_for_periodic_tasks()))


class ErrorTests(SynchronousTestCase):
    """
    Tests for synchronous task failures.
    """

    class T(Recorder):
        @periodic_task(spacing=5, run_immediately=True)
        def first(self, context):
            self.record("first")

        @periodic_task(spacing=5, run_immediately=True)
        def broken(self, context):
            self.record("broken")
            raise RuntimeError("boom")

        @periodic_task(spacing=5, run_immediately=True)
        def last(self, context):
            self.record("last")

    def test_failureIsolated(self) -> None:
        """
        When a task raises, then the error is logged with the class and task
        name and the other tasks still run; the pass returns normally.
        """
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        obj = make(self.T)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 5)
        self.assertEqual([n for n, _ in obj.ran], ["first", "broken", "last"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("Error during T.broken", messages(observer, LogLevel.error))

    def test_failureRequestId(self) -> None:
        """
        When a task run with a request context raises, at once or later
        from its Deferred, then the error line gives the context's request
        id; with a context that has none, the line has no request part.
        """

        class Late(Recorder):
            @periodic_task(spacing=1, run_immediately=True)
            async def broken_later(self, context):
                raise ValueError("async boom")

        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        make(self.T).run_periodic_tasks(RequestContext(request_id="req-periodic"))
        make(Late).run_periodic_tasks(RequestContext(request_id="req-later"))
        make(self.T).run_periodic_tasks(CONTEXT)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError, ValueError)), 3)
        self.assertEqual(messages(observer, LogLevel.error), [
            "Error during T.broken (request req-periodic)",
            "Error during Late.broken_later (request req-later)",
            "Error during T.broken",
        ])

    def test_raiseOnError(self) -> None:
        """
        When raise_on_error is set and a task raises, then the exception
        propagates and later tasks do not run in that pass.
        """
        obj = make(self.T)
        self.assertRaises(RuntimeError, obj.run_periodic_tasks, CONTEXT, raise_on_error=True)
        self.assertEqual([n for n, _ in obj.ran], ["first", "broken"])
        self.assertEqual(self.flushLoggedErrors(RuntimeError), [])
