"""
Tests for L{novasvc.core.lifecycle}.
"""

from twisted.application.service import Service
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from novasvc._phase import Phase
from novasvc.exceptions import LifecycleError
from novasvc.core.lifecycle import AsyncMultiService


class _Recorder(Service):
    def __init__(self, name, log, start=None, stop=None):
        self.setName(name)
        self.log = log
        self.start_d = start
        self.stop_d = stop

    def startService(self):
        Service.startService(self)
        self.log.append(("start", self.name))
        return self.start_d

    def stopService(self):
        Service.stopService(self)
        self.log.append(("stop", self.name))
        return self.stop_d


class AsyncMultiServiceTests(SynchronousTestCase):
    def test_start_waits_for_each_child(self):
        """
        When a child's start returns an unfired Deferred, then the next child
        is not started until it fires, and the parent's start fires last.
        """
        log, gate = [], defer.Deferred()
        parent = AsyncMultiService()
        _Recorder("a", log, start=gate).setServiceParent(parent)
        _Recorder("b", log).setServiceParent(parent)
        d = parent.startService()
        self.assertEqual(log, [("start", "a")])
        self.assertNoResult(d)
        gate.callback(None)
        self.assertEqual(log, [("start", "a"), ("start", "b")])
        self.assertIsNone(self.successResultOf(d))

    def test_start_failure_stops_the_sequence(self):
        """
        When a child's start fails, then later children are not started and the
        parent's start Deferred fails with that error.
        """
        log = []
        parent = AsyncMultiService()
        _Recorder("a", log, start=defer.fail(ValueError("boom"))).setServiceParent(parent)
        _Recorder("b", log).setServiceParent(parent)
        self.failureResultOf(parent.startService(), ValueError)
        self.assertEqual(log, [("start", "a")])

    def test_stop_in_reverse_order_waiting(self):
        """
        When the parent stops, then children stop in reverse order, each after
        the previous one's stop Deferred fired.
        """
        log, gate = [], defer.Deferred()
        parent = AsyncMultiService()
        _Recorder("a", log).setServiceParent(parent)
        _Recorder("b", log, stop=gate).setServiceParent(parent)
        parent.startService()
        del log[:]
        d = parent.stopService()
        self.assertEqual(log, [("stop", "b")])
        self.assertNoResult(d)
        gate.callback(None)
        self.assertEqual(log, [("stop", "b"), ("stop", "a")])
        self.successResultOf(d)

    def test_stop_failure_is_logged_and_others_stop(self):
        """
        When a child's stop fails, then the error is logged and the remaining
        children are still stopped.
        """
        log = []
        parent = AsyncMultiService()
        _Recorder("a", log).setServiceParent(parent)
        _Recorder("b", log, stop=defer.fail(RuntimeError("stuck"))).setServiceParent(parent)
        parent.startService()
        self.successResultOf(parent.stopService())
        self.assertIn(("stop", "a"), log)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_stop_skips_children_that_never_started(self):
        """
        When a start failed part-way, then stopping does not stop the children
        that never started.
        """
        log = []
        parent = AsyncMultiService()
        _Recorder("a", log, start=defer.fail(ValueError("boom"))).setServiceParent(parent)
        _Recorder("b", log).setServiceParent(parent)
        self.failureResultOf(parent.startService(), ValueError)
        self.successResultOf(parent.stopService())
        self.assertNotIn(("stop", "b"), log)

    def test_add_service_while_running_starts_it(self):
        """
        When a child is added to a running parent, then it is started and
        addService returns its start Deferred.
        """
        log, gate = [], defer.Deferred()
        parent = AsyncMultiService()
        parent.startService()
        d = parent.addService(_Recorder("late", log, start=gate))
        self.assertEqual(log, [("start", "late")])
        self.assertNoResult(d)
        gate.callback(None)
        self.successResultOf(d)

    def test_stop_during_start_cancels_it(self):
        """
        When the parent stops while a child's start is still under way,
        then that start is cancelled, the later children never start, the
        parent's start fails with C{CancelledError}, and the child that was
        starting is stopped.
        """
        log, cancelled = [], []
        gate = defer.Deferred(cancelled.append)
        parent = AsyncMultiService()
        _Recorder("a", log).setServiceParent(parent)
        _Recorder("b", log, start=gate).setServiceParent(parent)
        _Recorder("c", log).setServiceParent(parent)
        started = parent.startService()
        self.successResultOf(parent.stopService())
        self.assertEqual(cancelled, [gate])
        self.failureResultOf(started, defer.CancelledError)
        self.assertEqual(log, [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")])

    def test_stop_after_start_cancels_nothing(self):
        """
        When the parent stops after its start finished, then the start
        C{Deferred} keeps its result.
        """
        parent = AsyncMultiService()
        _Recorder("a", []).setServiceParent(parent)
        started = parent.startService()
        self.successResultOf(parent.stopService())
        self.assertIsNone(self.successResultOf(started))


class PhaseTests(SynchronousTestCase):
    """
    The phase table of L{AsyncMultiService}.
    """

    def running_parent(self, log, stop=None):
        parent = AsyncMultiService()
        _Recorder("a", log).setServiceParent(parent)
        _Recorder("b", log, stop=stop).setServiceParent(parent)
        self.successResultOf(parent.startService())
        self.assertIs(parent.phase, Phase.RUNNING)
        return parent

    def test_second_stop_waits_for_the_first(self):
        """
        When a parent is stopped again while its first stop waits for a
        child, then no second chain starts (the lower child is not stopped
        early) and both stops fire once the first one is done.
        """
        log, gate = [], defer.Deferred()
        parent = self.running_parent(log, stop=gate)
        first = parent.stopService()
        second = parent.stopService()
        self.assertEqual(log[2:], [("stop", "b")])
        self.assertIs(parent.phase, Phase.STOPPING)
        self.assertNoResult(first)
        self.assertNoResult(second)
        gate.callback(None)
        self.assertEqual(log[2:], [("stop", "b"), ("stop", "a")])
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))
        self.assertIs(parent.phase, Phase.STOPPED)

    def test_stop_when_stopped(self):
        """
        When a stopped parent is stopped, then nothing is stopped again.
        """
        log = []
        parent = self.running_parent(log)
        self.successResultOf(parent.stopService())
        self.successResultOf(parent.stopService())
        self.assertEqual([entry for entry in log if entry[0] == "stop"], [("stop", "b"), ("stop", "a")])

    def test_start_while_starting(self):
        """
        When a parent is started again while its start waits for a child,
        then no child starts twice and both starts fire together.
        """
        log, gate = [], defer.Deferred()
        parent = AsyncMultiService()
        _Recorder("a", log, start=gate).setServiceParent(parent)
        first, second = parent.startService(), parent.startService()
        self.assertNoResult(second)
        gate.callback(None)
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(log, [("start", "a")])
        self.successResultOf(parent.startService())
        self.assertEqual(log, [("start", "a")])

    def test_start_while_stopping_refused(self):
        """
        When a parent is started while it stops, then the start fails with
        L{LifecycleError} and the stop goes on; after the stop, a start
        works.
        """
        log, gate = [], defer.Deferred()
        parent = self.running_parent(log, stop=gate)
        stopping = parent.stopService()
        self.failureResultOf(parent.startService(), LifecycleError)
        gate.callback(None)
        self.successResultOf(stopping)
        self.assertFalse(parent.running)
        self.successResultOf(parent.startService())
        self.assertIs(parent.phase, Phase.RUNNING)

    def test_cancel_start_by_its_deferred(self):
        """
        When the caller cancels the start's Deferred, then the child being
        started has its start cancelled and later children do not start.
        """
        log, gate = [], defer.Deferred()
        parent = AsyncMultiService()
        _Recorder("a", log, start=gate).setServiceParent(parent)
        _Recorder("b", log).setServiceParent(parent)
        d = parent.startService()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(log, [("start", "a")])
