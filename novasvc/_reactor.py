# -*- test-case-name: tests.test_reactor -*-
"""
The one fallback to Twisted's global reactor, for the classes that take an
injected reactor or clock and use the global reactor when given none; and
L{at_most}, a wait with a bound on an injected clock.

Only L{novasvc.process.tap.makeService} takes the global reactor on purpose; every
other module goes through L{global_reactor_if_none}, which looks the global
reactor up when it is called, never when a module is imported.
"""

from typing import Any, Optional, TypeVar, overload

from twisted.internet import defer

__all__ = ["global_reactor_if_none", "at_most"]

_R = TypeVar("_R")


@overload
def global_reactor_if_none(reactor: None = None) -> Any: ...


@overload
def global_reactor_if_none(reactor: _R) -> _R: ...


def global_reactor_if_none(reactor: Optional[object] = None) -> Any:
    """
    The reactor (or clock) given, else the global one.

    @param reactor: the injected reactor or clock (for instance an
        L{IReactorTime <twisted.internet.interfaces.IReactorTime>} such as
        L{twisted.internet.task.Clock}), or C{None}.
    @return: C{reactor} itself when it is not C{None}; otherwise
        C{twisted.internet.reactor}, looked up now (the first lookup in a
        process installs Twisted's default reactor when none is installed
        yet).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor


def at_most(clock: Any, d: defer.Deferred, seconds: Optional[float]) -> defer.Deferred:
    """
    Wait for C{d}, but not longer than C{seconds}.

    @param clock: the C{IReactorTime} that times the bound.
    @param d: what to wait for; it is not cancelled, and its result (a
        failure too) is consumed, not passed on.
    @param seconds: the bound in B{seconds}; C{None} or C{0}: none, C{d}
        itself is returned.
    @return: a C{Deferred} firing with C{None} when C{d} fires (with
        anything) or after C{seconds}, whichever comes first.
    """
    if not seconds:
        return d
    done: defer.Deferred = defer.Deferred()
    timer = clock.callLater(seconds, lambda: done.called or done.callback(None))

    def fired(_: Any) -> None:
        if timer.active():
            timer.cancel()
        if not done.called:
            done.callback(None)

    d.addBoth(fired)
    return done
