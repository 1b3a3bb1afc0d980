# -*- test-case-name: tests.test_phase -*-
"""
The phases every long-lived object of novasvc goes through, and the one
helper they share: L{Shared}, one start or stop under way that several
callers wait for.

The table all of them follow (each object's docstring repeats its own row
when it differs)::

    phase     start()                      stop()
    --------  ---------------------------  -------------------------------
    STOPPED   -> STARTING                  done at once
    STARTING  the start under way          cancel the start, -> STOPPING
    RUNNING   done at once                 -> STOPPING
    STOPPING  refused (L{LifecycleError})  the stop under way
    (a start that ends goes STARTING -> RUNNING, failed or not: whatever
    did start is stopped by the next stop; a stop that ends goes
    STOPPING -> STOPPED, and a new start may follow)
"""

import enum
from typing import Any, Callable, List, Optional

from twisted.internet import defer
from twisted.python.failure import Failure

from novasvc.exceptions import LifecycleError

__all__ = ["Phase", "Shared", "refuse_start", "answer_repeated_start"]


class Phase(enum.Enum):
    """
    Where an object is in its lifecycle.
    """

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class Shared:
    """
    The outcome of one operation under way (a start or a stop), given to
    every caller that asks for it: each L{observe} returns a new
    C{Deferred} with the same result, so that no caller can change what
    another one gets.

    @ivar called: whether the operation has ended.
    """

    def __init__(self, d: defer.Deferred, canceller: Optional[Callable[[], Any]] = None) -> None:
        """
        @param d: the operation's C{Deferred}; its result is consumed here
            (a failure reaches each observer instead).
        @param canceller: called when an observer is cancelled (C{None}:
            cancelling an observer only detaches it).
        """
        self.called = False
        self._result: Any = None
        self._waiters: List[defer.Deferred] = []
        self._canceller = canceller
        d.addBoth(self._fired)

    def _fired(self, result: Any) -> None:
        self.called, self._result = True, result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._give(waiter)
        if isinstance(result, Failure) and not waiters:
            result.cleanFailure()

    def _give(self, waiter: defer.Deferred) -> None:
        if waiter.called:
            return  # cancelled meanwhile
        if isinstance(self._result, Failure):
            waiter.errback(self._result)
        else:
            waiter.callback(self._result)

    def observe(self) -> defer.Deferred:
        """
        @return: a new C{Deferred} firing with the operation's result (at
            once if it has ended).
        """
        def cancel(waiter: defer.Deferred) -> None:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if self._canceller is not None:
                self._canceller()

        waiter: defer.Deferred = defer.Deferred(cancel)
        if self.called:
            self._give(waiter)
        else:
            self._waiters.append(waiter)
        return waiter


def refuse_start(owner: Any) -> defer.Deferred:
    """
    @return: a failed C{Deferred} saying that C{owner} cannot start while
        it stops.
    """
    return defer.fail(LifecycleError(f"{owner!r} is stopping: start it again once its stop has fired"))


def answer_repeated_start(owner: Any, phase: Phase, start: Optional[Shared]) -> Optional[defer.Deferred]:
    """
    What C{startService} answers when its owner is not stopped: while
    starting, that start's outcome (L{Shared.observe}); while running,
    C{None} at once; while stopping, L{refuse_start}'s failure.

    @param owner: the service asked to start, named in the refusal.
    @param phase: its phase.
    @param start: its start under way, if any.
    @return: that C{Deferred}, or C{None} when the owner should start.
    """
    if phase is Phase.STARTING and start is not None:
        return start.observe()
    if phase is Phase.RUNNING:
        return defer.succeed(None)
    if phase is Phase.STOPPING:
        return refuse_start(owner)
    return None
