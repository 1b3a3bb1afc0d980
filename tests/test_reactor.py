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
