# -*- test-case-name: tests.test_transport_amqp -*-
"""
The consuming side of both RabbitMQ transports: one L{AMQPConsumer} per
C{consume()} call, living through reconnections. On each connection it
makes one L{novasvc.transport.amqp._consumer_channel.ConsumerChannel} (its
own channel, declares and C{basic.consume}; the deliveries and their acks
are there too); a set-up the broker refuses is retried with the transport's
backoff.
"""

from typing import Any, Callable, List, Optional, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from novasvc.interfaces import IConsumer, IDelivery
from novasvc.transport.amqp._consumer_channel import ConsumerChannel
from novasvc.transport.topology import Queue

__all__ = ["AMQPConsumer", "ConsumerOwner"]

_log = Logger()


class ConsumerOwner(Protocol):
    """
    What a consumer needs from its transport.
    """

    @property
    def clock(self) -> Any:
        """
        The C{IReactorTime} for retry timers.
        """

    def current_protocol(self) -> Any:
        """
        @return: the L{novasvc.transport.pika._connect.AMQPProtocol} whose
            open connection consumers should use, or C{None}.
        """

    def consumer_retry_delay(self, failures: int) -> float:
        """
        @return: seconds to wait before the next set-up attempt after
            C{failures} failed ones in a row.
        """

    def forget_consumer(self, consumer: "AMQPConsumer") -> None:
        """
        Stop restoring C{consumer} on reconnection.
        """

    def open_channel(self, protocol: Any) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with a new channel on C{protocol}'s
            connection, the caller's to close.
        """


@implementer(IConsumer)
class AMQPConsumer:
    """
    A subscription of L{novasvc.transport.AMQPTransport}; see
    L{IConsumer}.

    @ivar queue: the L{Queue} consumed.
    @ivar on_message: the callback given to C{consume()}.
    @ivar prefetch: the C{basic.qos} prefetch count (0: no limit).
    @ivar current: the L{ConsumerChannel} on the current connection, if any.
    @ivar cancelled: C{True} once cancelled (or its transport stopped).
    @ivar was_active: C{True} once it has consumed on some connection.
    @ivar renamed: C{None}, or called with C{(old name, new name)} when a
        reconnection to another host renews the queue (see
        L{novasvc.transport.topology.Queue.renew_prefix}); L{queue} is the
        new one by then.
    @ivar activated: C{None}, or called (without arguments) each time the
        consumer starts consuming on a channel: after every reconnection
        too, unlike L{whenActive}.
    @ivar stopped: C{None}, or called (without arguments) once when the
        consumer stops for good (cancelled, or its transport stopped):
        nothing more will be delivered.
    @cvar channel_class: the L{ConsumerChannel} (sub)class it makes on each
        connection.
    """

    channel_class = ConsumerChannel

    def __init__(self, owner: ConsumerOwner, queue: Queue, on_message: Callable[[IDelivery], None],
                 prefetch: int) -> None:
        self.queue = queue
        self.on_message = on_message
        self.prefetch = prefetch
        self.current: Optional[ConsumerChannel] = None
        self.cancelled = False
        self._owner = owner
        self._active = False
        self.renamed: Optional[Callable[[str, str], None]] = None
        self.stopped: Optional[Callable[[], None]] = None
        self.activated: Optional[Callable[[], None]] = None
        self._waiters: List[defer.Deferred] = []
        self._failures = 0
        self._retry: Any = None

    def __repr__(self) -> str:
        return f"<AMQPConsumer of queue {self.queue.name!r}>"

    def whenActive(self) -> defer.Deferred:
        """
        See L{IConsumer.whenActive}. Fails with C{CancelledError} if the
        consumer is cancelled (or its transport stopped) before it ever
        became active.
        """
        if self._active:
            return defer.succeed(None)
        if self.cancelled:
            return defer.fail(defer.CancelledError(f"the consumer of queue {self.queue.name!r} was cancelled"))
        d: defer.Deferred = defer.Deferred(lambda d: self._waiters.remove(d) if d in self._waiters else None)
        self._waiters.append(d)
        return d

    def cancel(self) -> defer.Deferred:
        """
        See L{IConsumer.cancel}.
        """
        if self.cancelled:
            return defer.succeed(None)
        self._owner.forget_consumer(self)
        self._shutdown()
        current, self.current = self.current, None
        if current is None:
            return defer.succeed(None)
        return current.cancel()

    # -- driven by the transport -------------------------------------------------

    @property
    def was_active(self) -> bool:
        return self._active

    def attach(self, protocol: Any, renew: bool = False) -> defer.Deferred:
        """
        Start consuming on a new connection.

        @param protocol: the L{novasvc.transport.pika._connect.AMQPProtocol}
            of the open connection.
        @param renew: the connection is to another host than the previous
            one: a queue with a C{renew_prefix} that was consumed before is
            replaced by a new one (see L{renamed}).
        @return: a C{Deferred} firing with C{None} after the first attempt.
        """
        self._cancel_retry()
        if renew and self._active and self.queue.renew_prefix is not None:
            self._renew()
        current = self.current = self.channel_class(self, protocol)
        return current.start()

    def _renew(self) -> None:
        old, self.queue = self.queue, self.queue.renewed()
        _log.info("Connected to another broker host: consuming the new queue {new!r} instead of {old!r}",
                  new=self.queue.name, old=old.name)
        renamed = self.renamed
        if renamed is not None:
            try:
                renamed(old.name, self.queue.name)
            except Exception:
                _log.failure("Unexpected error while renaming queue {old!r}", old=old.name)

    def detach(self) -> None:
        """
        The connection is gone: forget its channel (its deliveries go stale).
        """
        self._cancel_retry()
        self.current = None

    def _shutdown(self) -> None:
        """
        Deliver nothing more, stop retrying, fail the C{whenActive} waiters.
        """
        self.cancelled = True
        self._cancel_retry()
        if self.current is not None:
            self.current.draining = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(defer.CancelledError(f"the consumer of queue {self.queue.name!r} was cancelled"))
        stopped, self.stopped = self.stopped, None
        if stopped is not None:
            stopped()

    # -- driven by ConsumerChannel ---------------------------------------------

    def _activated(self, channel: ConsumerChannel) -> None:
        self._failures = 0
        activated = self.activated
        if activated is not None:
            try:
                activated()
            except Exception:
                _log.failure("Unexpected error after consuming queue {queue!r}", queue=self.queue.name)
        if self._active:
            return
        self._active = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _retry_later(self, why: str) -> None:
        delay = self._owner.consumer_retry_delay(self._failures)
        self._failures += 1
        _log.error("Cannot consume queue {queue!r}: {why}; retrying in {delay:.1f} seconds",
                   queue=self.queue.name, why=why, delay=delay)
        self._cancel_retry()
        self._retry = self._owner.clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        protocol = self._owner.current_protocol()
        if protocol is not None and not self.cancelled and self.current is None:
            self.attach(protocol)

    def _cancel_retry(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None and retry.active():
            retry.cancel()
