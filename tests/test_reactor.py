"""
Tests for L{novasvc._reactor}.
"""

import twisted.internet
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import novasvc._reactor
from novasvc._reactor import global_reactor_if_none


class GlobalReactorIfNoneTests(SynchronousTestCase):
    """
    Tests for L{global_reactor_if_none}.
    """

    def test_given(self) -> None:
        """
        When a reactor or clock is given, then it is returned as is.
        """
        clock = Clock()
        self.assertIs(global_reactor_if_none(clock), clock)

    def test_none(self) -> None:
        """
        When C{None} or nothing is given, then the global reactor is
        returned.
        """
        from twisted.internet import reactor

        self.assertIs(global_reactor_if_none(None), reactor)
        self.assertIs(global_reactor_if_none(), reactor)

    def test_lookedUpWhenCalled(self) -> None:
        """
        When called without a reactor, then the global reactor is looked up
        at that moment, and the module holds no reference to it.
        """
        # Install the global reactor first, so that there is one to patch.
        from twisted.internet import reactor  # noqa: F401

        stand_in = object()
        self.patch(twisted.internet, "reactor", stand_in)
        self.assertIs(global_reactor_if_none(), stand_in)
        self.assertNotIn("reactor", vars(novasvc._reactor))


class AtMostTests(SynchronousTestCase):
    """
    L{novasvc._reactor.at_most}.
    """

    def test_fires_with_the_deferred(self) -> None:
        """
        When the Deferred fires (even with a failure) before the bound, then
        the wait fires with C{None} at once, its timer is gone, and the
        failure is consumed (never logged as unhandled).
        """
        from twisted.internet import defer

        from novasvc._reactor import at_most

        clock = Clock()
        d: defer.Deferred = defer.Deferred()
        waited = at_most(clock, d, 2.0)
        self.assertNoResult(waited)
        d.errback(ValueError("no"))
        self.assertIsNone(self.successResultOf(waited))
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertIsNone(self.successResultOf(d))

    def test_bound(self) -> None:
        """
        When the Deferred does not fire, then the wait fires with C{None}
        after the bound, not before; C{0} or C{None} means no bound (the
        Deferred itself).
        """
        from twisted.internet import defer

        from novasvc._reactor import at_most

        clock = Clock()
        d: defer.Deferred = defer.Deferred()
        waited = at_most(clock, d, 2.0)
        clock.advance(1.9)
        self.assertNoResult(waited)
        clock.advance(0.1)
        self.assertIsNone(self.successResultOf(waited))
        d.callback(1)
        self.assertIs(at_most(clock, d, 0), d)
        self.assertIs(at_most(clock, d, None), d)
