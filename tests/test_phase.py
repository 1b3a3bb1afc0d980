"""
Tests for L{novasvc._phase}.
"""

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from novasvc._phase import Shared


class SharedTests(SynchronousTestCase):
    def test_every_observer_gets_the_result(self):
        """
        When an operation ends, then every observer, earlier or later, gets
        its result, and none can change what another gets.
        """
        d = defer.Deferred()
        shared = Shared(d)
        early = shared.observe()
        early.addCallback(lambda _: "changed")
        d.callback("done")
        self.assertEqual(self.successResultOf(early), "changed")
        self.assertEqual(self.successResultOf(shared.observe()), "done")
        self.assertTrue(shared.called)

    def test_failure_reaches_each_observer(self):
        """
        When an operation fails, then each observer fails with it.
        """
        d = defer.Deferred()
        shared = Shared(d)
        first, second = shared.observe(), shared.observe()
        d.errback(ValueError("boom"))
        self.failureResultOf(first, ValueError)
        self.failureResultOf(second, ValueError)

    def test_cancel_detaches_and_calls_the_canceller(self):
        """
        When an observer is cancelled, then it fails with CancelledError,
        the canceller is called, and the operation's later result does not
        reach it twice.
        """
        cancelled = []
        d = defer.Deferred()
        shared = Shared(d, canceller=lambda: cancelled.append(True))
        waiter = shared.observe()
        waiter.cancel()
        self.failureResultOf(waiter, defer.CancelledError)
        d.callback(None)
        self.assertEqual(cancelled, [True])
