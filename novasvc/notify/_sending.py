# -*- test-case-name: tests.test_notify_drivers -*-
"""
One notification message on its way to one routing key: the queue named
after the key declared (L{novasvc.interfaces.ITransport.declare_queue}),
then the message published, and both tried again as oslo's C{retry}
allows when the connection was the problem.

What C{retry} means here (oslo.messaging's values): C{None} or C{-1} tries
until the message is sent or the transport stops, C{0} tries once, C{N}
tries N + 1 times. A try fails with L{DisconnectedError} when the
transport had no connection within its C{publish_wait} (30 s by default)
or lost the connection before the broker confirmed; the next try starts at
once after the first such failure, then after 1, 2, 4... seconds (at most
L{novasvc.rpc.client.RESEND_DELAY_MAX}). Any other failure (the broker
refused the queue or the message, the transport is stopped) is final.
"""

from typing import Any, Optional

from twisted.internet import defer
from twisted.python.failure import Failure

from novasvc.exceptions import DisconnectedError, TransportError
from novasvc.interfaces import ITransport
from novasvc.transport.topology import Exchange, Queue

__all__ = ["send", "retries_left"]


def retries_left(retry: Optional[int], tries: int) -> bool:
    """
    @param retry: oslo's C{retry} (C{None} or C{-1}: no limit).
    @param tries: how many tries were made.
    @return: whether another try is allowed.
    """
    return retry is None or retry < 0 or tries <= retry


class _Sending:
    """
    The tries of one message (see the module docstring).
    """

    def __init__(self, transport: ITransport, exchange: Exchange, queue: Queue, routing_key: str, body: bytes,
                 retry: Optional[int], clock: Any) -> None:
        self._transport = transport
        self._exchange = exchange
        self._queue = queue
        self._routing_key = routing_key
        self._body = body
        self._retry = retry
        self._clock = clock
        self._tries = 0
        self._timer: Any = None
        # Cancelling stops the tries; a try under way ends unheard.
        self.deferred: defer.Deferred = defer.Deferred(lambda _: self._stop_timer())

    def start(self) -> defer.Deferred:
        self._try()
        return self.deferred

    def _try(self) -> None:
        self._timer = None
        if self.deferred.called:
            return
        self._tries += 1
        transport = self._transport
        try:
            d = transport.declare_queue(self._queue)
            d.addCallback(lambda _: transport.publish(self._exchange, self._routing_key, self._body))
        except Exception:
            self._failed(Failure())
            return
        d.addCallbacks(self._sent, self._failed)

    def _sent(self, _: Any) -> None:
        if not self.deferred.called:
            self.deferred.callback(None)

    def _failed(self, failure: Failure) -> None:
        if self.deferred.called:
            return
        tries = self._tries
        if failure.check(DisconnectedError) and retries_left(self._retry, tries):
            # Imported here: a service that only serves never loads the RPC
            # client's resend module (tests.test_process_tap's import cost check).
            from novasvc.rpc._resend import RESEND_DELAY_MAX

            delay = 0.0 if tries == 1 else min(2.0 ** (tries - 2), RESEND_DELAY_MAX)
            self._timer = self._clock.callLater(delay, self._try)
            return
        if tries > 1 and isinstance(failure.value, TransportError):
            failure = Failure(type(failure.value)(f"{failure.value} (after {tries} tries, retry={self._retry})"))
        self.deferred.errback(failure)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()


def send(transport: ITransport, exchange: Exchange, queue: Queue, routing_key: str, body: bytes,
         retry: Optional[int], clock: Any) -> defer.Deferred:
    """
    Declare C{queue}, then publish C{body} to C{exchange} with
    C{routing_key}, trying again as C{retry} allows (see the module
    docstring).

    @param clock: C{IReactorTime} for the waits between tries.
    @return: a C{Deferred} firing with C{None} once the broker confirmed
        the message, failing with the last try's error; cancelling it
        stops the tries.
    """
    return _Sending(transport, exchange, queue, routing_key, body, retry, clock).start()
