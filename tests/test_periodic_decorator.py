"""
Tests for L{novasvc.periodic._decorator}: the L{periodic_task} decorator and
how L{PeriodicTasks} subclasses collect their tasks.
"""

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.periodic import DEFAULT_INTERVAL, PeriodicTasks, periodic_task
from tests._periodic import CONTEXT, Recorder, make, messages


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
