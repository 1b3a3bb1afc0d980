# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_memory -*-
"""
Publishes made while a transport (an AMQP one, or the memory twin while its
broker is away) has no connection: each is held for
at most C{publish_wait} seconds, sent once a connection is set up, or failed
with L{DisconnectedError} when the wait is over (or at once when the wait is
0), or with the transport's error when it stops.
"""

from collections import deque
from typing import Any, Callable, Deque, List

from twisted.internet import defer

from novasvc.exceptions import DisconnectedError

__all__ = ["HeldPublishes"]


class HeldPublishes:
    """
    The publishes waiting for a connection, first made first sent.
    """

    def __init__(self, clock: Callable[[], Any], wait: float, url: str, problem: Callable[[], str]) -> None:
        """
        @param clock: gives the C{IReactorTime} for the timers (looked up
            only when a publish is held).
        @param wait: how long, in B{seconds}, a publish waits; 0 fails it at
            once.
        @param url: the transport URL (password hidden), for the errors.
        @param problem: says why there is no connection, for the errors.
        """
        self._clock = clock
        self._wait = wait
        self._url = url
        self._problem = problem
        self._held: Deque[List[Any]] = deque()

    def hold(self, args: tuple) -> defer.Deferred:
        """
        Hold one publish.

        @param args: the arguments of the transport's C{publish()}.
        @return: a C{Deferred} firing as the publish does once sent, or
            failing with L{DisconnectedError} if no connection comes within
            the wait. Cancelling it drops the publish.
        """
        if self._wait <= 0:
            return defer.fail(DisconnectedError(f"not connected to {self._url}: {self._problem()}"))
        entry: List[Any] = [args, None, None]

        def cancel(_: defer.Deferred) -> None:
            self._drop(entry)

        entry[1] = defer.Deferred(cancel)
        entry[2] = self._clock().callLater(self._wait, self._timed_out, entry)
        self._held.append(entry)
        return entry[1]

    def send(self, publish: Callable[..., defer.Deferred]) -> None:
        """
        Send every held publish, in order.

        @param publish: the transport's C{publish()}.
        """
        held, self._held = self._held, deque()
        for args, d, timer in held:
            if timer.active():
                timer.cancel()
            publish(*args).chainDeferred(d)

    def fail(self, error: Exception) -> None:
        """
        Fail every held publish with C{error}.
        """
        held, self._held = self._held, deque()
        for _args, d, timer in held:
            if timer.active():
                timer.cancel()
            d.errback(error)

    def _drop(self, entry: List[Any]) -> None:
        try:
            self._held.remove(entry)
        except ValueError:
            return
        if entry[2].active():
            entry[2].cancel()

    def _timed_out(self, entry: List[Any]) -> None:
        try:
            self._held.remove(entry)
        except ValueError:
            return
        entry[1].errback(DisconnectedError(
            f"not connected to {self._url} within {self._wait} seconds: {self._problem()}"
        ))
