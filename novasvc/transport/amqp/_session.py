# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
What an AMQP transport keeps per connection (L{Session}: the protocol, the
publisher, the control channel) and what it shows of itself to its
protocol and consumers (L{TransportHooks}).
"""

from typing import Any, Callable, List, Optional

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["Session", "TransportHooks"]


class Session:
    """
    What belongs to one open AMQP connection: the protocol, the publisher,
    and the control channel (opened on first use, reopened after the broker
    closes it).
    """

    def __init__(self, protocol: Any, open_channel: Callable[[], defer.Deferred]) -> None:
        """
        @param protocol: the connection's protocol (see L{BaseAMQPTransport}).
        @param open_channel: opens a channel on it; returns a C{Deferred}
            firing with a channel.
        """
        self.protocol = protocol
        self.publisher: Any = None
        self._open_channel = open_channel
        self._control: Any = None
        self._opening: Optional[List[defer.Deferred]] = None

    @property
    def alive(self) -> bool:
        """
        C{True} until the TCP connection is lost.
        """
        return not self.protocol.lost

    def open_channel(self) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with a newly opened channel, the
            caller's to close.
        """
        return self._open_channel()

    def control(self) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with the open control channel.
        """
        channel = self._control
        if channel is not None and not channel.is_closed:
            return defer.succeed(channel)
        d: defer.Deferred = defer.Deferred()
        if self._opening is not None:
            self._opening.append(d)
            return d
        self._opening = [d]
        self._open_channel().addBoth(self._control_opened)
        return d

    def _control_opened(self, result: Any) -> None:
        if not isinstance(result, Failure):
            self._control = result
        waiting, self._opening = self._opening or [], None
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)


class TransportHooks:
    """
    The transport as its protocol and consumers see it (kept off the
    transport's public surface): its clock, its current connection, the
    consumers' retry delay, and what the protocol tells it.
    """

    def __init__(self, transport: Any) -> None:
        """
        @param transport: the L{novasvc.transport.amqp._base.BaseAMQPTransport}.
        """
        self._transport = transport

    @property
    def clock(self) -> Any:
        return self._transport._clock

    def current_protocol(self) -> Any:
        session = self._transport._session
        return session.protocol if session is not None and session.alive else None

    def consumer_retry_delay(self, failures: int) -> float:
        return self._transport._policy(failures)

    def open_channel(self, protocol: Any) -> defer.Deferred:
        return self._transport._client_channel(protocol)

    def forget_consumer(self, consumer: Any) -> None:
        self._transport._consumers.pop(consumer, None)

    def protocol_connected(self, protocol: Any) -> None:
        self._transport._protocol_connected(protocol)

    def protocol_lost(self, protocol: Any, reason: Failure) -> None:
        self._transport._protocol_lost(protocol, reason)
