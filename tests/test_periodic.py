"""
Tests for L{novasvc.periodic}.
"""

from typing import Any, List, Optional

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.periodic import (
    DEFAULT_INTERVAL,
    PeriodicTasks,
    PeriodicTaskService,
    fuzzy_delay,
    periodic_task,
)

CONTEXT = object()


class FixedRandom:
    """
    A random source that always returns C{value}.
    """

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


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


def make(cls: type, random_value: float = 0.0) -> Any:
    """
    @return: an instance of C{cls} on a fresh L{Clock}, with a random source
        fixed at C{random_value}.
    """
    obj = cls()
    obj.clock = Clock()
    obj._periodic_random = FixedRandom(random_value)
    return obj


def messages(observer: EventLoggingObserver, level: Optional[LogLevel] = None) -> List[str]:
    """
    @return: the formatted text of the events C{observer} saw (at C{level}
        only, when given).
    """
    return [formatEvent(e) for e in observer if level is None or e["log_level"] == level]


class Recorder(PeriodicTasks):
    """
    Base for test classes: C{self.ran} lists (task name, clock seconds).
    """

    def __init__(self) -> None:
        super().__init__()
        self.ran: List[tuple] = []

    def record(self, name: str) -> None:
        self.ran.append((name, self.clock.seconds()))


class DecoratorTests(SynchronousTestCase):
    """
    Tests for L{periodic_task}.
    """

    def setUp(self) -> None:
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_onlyAnnotates(self) -> None:
        """
        When a function is decorated, bare or with arguments, then the same
        function object is returned and still callable directly.
        """

        def f(self, context):
            return 42

        self.assertIs(periodic_task(f), f)
        self.assertIs(periodic_task(spacing=5)(f), f)
        self.assertEqual(f(None, None), 42)

    def test_bareUsesDefaultInterval(self) -> None:
        """
        When a task is decorated bare (spacing 0), then it is registered with
        a spacing of L{DEFAULT_INTERVAL}: it first runs 60 s after the first
        pass, and the pass returns 60.
        """

        class T(Recorder):
            @periodic_task
            def tick(self, context):
                self.record("tick")

        self.assertEqual(DEFAULT_INTERVAL, 60)
        obj = make(T)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), 60)
        obj.clock.advance(59)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran, [])
        obj.clock.advance(1)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran, [("tick", 60)])

    def test_negativeSpacingNeverRegistered(self) -> None:
        """
        When a task has a negative spacing, then it is never registered (not
        even with run_immediately) and an INFO event says why.
        """

        class T(Recorder):
            @periodic_task(spacing=-1, run_immediately=True)
            def never(self, context):
                self.record("never")

        obj = make(T)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), DEFAULT_INTERVAL)
        self.assertEqual(obj.ran, [])
        self.assertIn(
            "Periodic task T.never is not registered: its spacing is negative (-1.0 s)",
            messages(self.observer, LogLevel.info),
        )

    def test_disabledNeverRegistered(self) -> None:
        """
        When a task has enabled=False, then it is never registered and an
        INFO event says it is disabled.
        """

        class T(Recorder):
            @periodic_task(spacing=1, run_immediately=True, enabled=False)
            def off(self, context):
                self.record("off")

        obj = make(T)
        self.assertEqual(obj.run_periodic_tasks(CONTEXT), DEFAULT_INTERVAL)
        self.assertEqual(obj.ran, [])
        self.assertIn(
            "Periodic task T.off is not registered: it is disabled",
            messages(self.observer, LogLevel.info),
        )

    def test_name(self) -> None:
        """
        When a name is given, then the task is logged and tracked under it.
        """

        class T(Recorder):
            @periodic_task(spacing=1, run_immediately=True, name="custom")
            def f(self, context):
                raise RuntimeError("boom")

        obj = make(T)
        observer = self.observer
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("Error during T.custom", messages(observer, LogLevel.error))

    def test_badArguments(self) -> None:
        """
        When the decorator gets positional arguments other than one callable,
        a non-numeric or infinite spacing, or an empty name, then it raises.
        """
        self.assertRaises(TypeError, periodic_task, 5)
        self.assertRaises(TypeError, periodic_task, lambda s, c: None, lambda s, c: None)
        self.assertRaises(TypeError, periodic_task, spacing="10")
        self.assertRaises(TypeError, periodic_task, spacing=True)
        self.assertRaises(ValueError, periodic_task, spacing=float("inf"))
        self.assertRaises(TypeError, periodic_task, name="")


class CollectionTests(SynchronousTestCase):
    """
    Tests for how L{PeriodicTasks} subclasses collect their tasks.
    """

    def test_inheritanceAndOrder(self) -> None:
        """
        When a subclass adds tasks, then it runs its parent's tasks first, in
        definition order, then its own; the parent is not affected.
        """

        class Parent(Recorder):
            @periodic_task(spacing=10, run_immediately=True)
            def b(self, context):
                self.record("b")

            @periodic_task(spacing=10, run_immediately=True)
            def a(self, context):
                self.record("a")

        class Child(Parent):
            @periodic_task(spacing=10, run_immediately=True)
            def c(self, context):
                self.record("c")

        child = make(Child)
        child.run_periodic_tasks(CONTEXT)
        self.assertEqual([n for n, _ in child.ran], ["b", "a", "c"])
        parent = make(Parent)
        parent.run_periodic_tasks(CONTEXT)
        self.assertEqual([n for n, _ in parent.ran], ["b", "a"])

    def test_override(self) -> None:
        """
        When a subclass redefines a task's attribute with the decorator, then
        only the new definition runs (with its spacing), in the parent's
        position.
        """

        class Parent(Recorder):
            @periodic_task(spacing=10, run_immediately=True)
            def a(self, context):
                self.record("parent a")

            @periodic_task(spacing=10, run_immediately=True)
            def b(self, context):
                self.record("b")

        class Child(Parent):
            @periodic_task(spacing=3, run_immediately=True)
            def a(self, context):
                self.record("child a")

        child = make(Child)
        self.assertEqual(child.run_periodic_tasks(CONTEXT), 3)
        self.assertEqual([n for n, _ in child.ran], ["child a", "b"])

    def test_overrideWithoutDecoratorOrDisabled(self) -> None:
        """
        When a subclass redefines a task's attribute without the decorator,
        or with enabled=False, then the inherited task no longer runs.
        """

        class Parent(Recorder):
            @periodic_task(spacing=10, run_immediately=True)
            def a(self, context):
                self.record("a")

            @periodic_task(spacing=10, run_immediately=True)
            def b(self, context):
                self.record("b")

        class Child(Parent):
            def a(self, context):
                self.record("plain a")

            @periodic_task(enabled=False)
            def b(self, context):
                self.record("disabled b")

        child = make(Child)
        self.assertEqual(child.run_periodic_tasks(CONTEXT), DEFAULT_INTERVAL)
        self.assertEqual(child.ran, [])

    def test_plainMixin(self) -> None:
        """
        When a class that is not a L{PeriodicTasks} holds decorated methods
        and is mixed in, then its tasks are collected too.
        """

        class Mixin:
            @periodic_task(spacing=5, run_immediately=True)
            def from_mixin(self, context):
                self.record("from_mixin")

        class T(Mixin, Recorder):
            pass

        obj = make(T)
        obj.run_periodic_tasks(CONTEXT)
        self.assertEqual(obj.ran, [("from_mixin", 0)])

    def test_duplicateName(self) -> None:
        """
        When two attributes declare the same task name, then defining the
        class raises C{TypeError} naming both.
        """
        with self.assertRaises(TypeError) as raised:

            class T(PeriodicTasks):
                @periodic_task(name="same")
                def a(self, context):
                    pass

                @periodic_task(name="same")
                def b(self, context):
                    pass

        self.assertIn("'same'", str(raised.exception))
        self.assertIn("'a'", str(raised.exception))
        self.assertIn("'b'", str(raised.exception))

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

    def test_raiseOnError(self) -> None:
        """
        When raise_on_error is set and a task raises, then the exception
        propagates and later tasks do not run in that pass.
        """
        obj = make(self.T)
        self.assertRaises(RuntimeError, obj.run_periodic_tasks, CONTEXT, raise_on_error=True)
        self.assertEqual([n for n, _ in obj.ran], ["first", "broken"])
        self.assertEqual(self.flushLoggedErrors(RuntimeError), [])


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
