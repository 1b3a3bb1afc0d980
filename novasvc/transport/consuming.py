# -*- test-case-name: tests.test_transport_consuming -*-
"""
What the consumers of deliveries above the transport share (the RPC server,
the notification listeners): settling a delivery without raising, the
deliveries that wait while the work in flight is at its bound
(L{Backlog}), and the waiters of a C{wait()} that fire once nothing is in
flight (L{Drain}).
"""

from collections import deque
from typing import Any, Callable, List, Optional, Union

from twisted.internet import defer
from twisted.logger import Logger, LogLevel

from novasvc.interfaces import IDelivery

__all__ = ["settle", "gather", "Backlog", "Drain"]

_log = Logger()


def settle(method: Callable[..., Any], *args: Any) -> None:
    """
    Call a delivery's C{ack} or C{reject}: an error (a lost channel) is
    logged, never raised.
    """
    try:
        method(*args)
    except Exception:
        _log.failure("Settling a delivery failed", level=LogLevel.error)


def gather(deferreds: List[defer.Deferred]) -> defer.Deferred:
    """
    @return: a C{Deferred} firing with C{None} once all of C{deferreds}
        succeeded, or failing with the first failure (itself, not a
        C{FirstError}).
    """
    d = defer.gatherResults(deferreds, consumeErrors=True)
    d.addCallbacks(lambda _: None, lambda f: f.value.subFailure if f.check(defer.FirstError) else f)
    return d


class Backlog(deque):
    """
    The deliveries received while the work in flight is at its bound,
    oldest first (a C{deque}, so that testing it is as cheap as testing
    one).
    """

    __slots__ = ("_pulling",)

    def __init__(self) -> None:
        super().__init__()
        self._pulling = False

    def pull(self, room: Callable[[], bool], process: Callable[[IDelivery], None],
             unexpected: Callable[[IDelivery], None]) -> None:
        """
        Process waiting deliveries, oldest first, while C{room()} says there
        is room. A loop, not recursion: deliveries processed synchronously
        would otherwise nest a stack level each; a call made while pulling
        returns at once.

        @param process: handles one delivery.
        @param unexpected: called with a delivery C{process} raised on.
        """
        if self._pulling:
            return
        self._pulling = True
        try:
            while self and room():
                delivery = self.popleft()
                try:
                    process(delivery)
                except Exception:
                    unexpected(delivery)
        finally:
            self._pulling = False

    def give_back(self) -> None:
        """
        Reject every waiting delivery with requeue (the broker gives it to
        another consumer).
        """
        while self:
            settle(self.popleft().reject, True)


class Drain:
    """
    The waiters of C{wait()}: each fires C{True} once nothing is in flight,
    or C{False} after its timeout.

    @ivar waiters: the C{Deferred}s waiting (a C{list}: test it before
        calling L{drained}, on the per-message path).
    """

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: List[defer.Deferred] = []

    def wait(self, running: int, timeout: Optional[float], clock: Any,
             timed_out: Callable[[], None]) -> Union[bool, defer.Deferred]:
        """
        @param running: how much is in flight now.
        @param timeout: the most B{seconds} to wait, or C{None}.
        @param clock: C{IReactorTime} for the timeout.
        @param timed_out: called (to log what is left) when the timeout
            passes first.
        @return: C{True} when nothing is in flight, else a C{Deferred}
            firing with C{True} at L{drained} or C{False} at the timeout.
        """
        if running == 0:
            return True
        d: defer.Deferred = defer.Deferred()
        self.waiters.append(d)
        if timeout is not None:
            call = clock.callLater(timeout, self._timed_out, d, timed_out)
            d.addBoth(_cancel_call, call)
        return d

    def _timed_out(self, d: defer.Deferred, timed_out: Callable[[], None]) -> None:
        if d in self.waiters:
            self.waiters.remove(d)
            timed_out()
            d.callback(False)

    def drained(self) -> None:
        """
        Nothing is in flight any more: fire every waiter with C{True}.
        """
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(True)


def _cancel_call(result: object, call: Any) -> object:
    if call.active():
        call.cancel()
    return result
