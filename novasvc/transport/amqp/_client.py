# -*- test-case-name: tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
What a RabbitMQ transport asks of its AMQP client library (L{ClientLibrary}):
the part of L{novasvc.transport.amqp._base.BaseAMQPTransport} that
L{novasvc.transport.AMQPTransport} and
L{novasvc.transport.TxAMQPTransport} each fill in.
"""

from typing import Any, Callable

from twisted.internet import defer

from novasvc.interfaces import IDelivery
from novasvc.transport.amqp._connect import RoundRobinEndpoint
from novasvc.transport.amqp._session import Session
from novasvc.transport.topology import Queue

__all__ = ["ClientLibrary"]


class ClientLibrary:
    """
    The C{_client_*} methods a transport built on
    L{novasvc.transport.amqp._base.BaseAMQPTransport} implements, and its
    L{client} name.

    The protocol a subclass's factory builds must call the hooks it is given
    (C{protocol_connected(protocol)} once TCP is up, C{protocol_lost(protocol,
    reason)} once it is down) and offer C{lost} (C{bool}), C{when_lost()},
    C{abort(why)}, C{close()}, C{describe_loss(reason)} and C{unwrapped()}
    (see L{novasvc.transport.pika._connect.AMQPProtocol}).

    @cvar client: the client library's name, for the logs (C{"pika"}).
    """

    client = "?"

    def _client_description(self) -> str:
        """
        @return: the client library as the connection's log line names it
            (e.g. C{"pika 1.4.4, fast path"}); L{client} by default.
        """
        return self.client

    def _client_factory(self, endpoint: RoundRobinEndpoint) -> Any:
        """
        @param endpoint: the endpoint connecting; its C{index} is the host
            of the URL being connected to (each may have its own
            credentials).
        @return: the protocol factory for Twisted's C{ClientService}.
        """
        raise NotImplementedError()

    def _client_handshake(self, protocol: Any) -> defer.Deferred:
        """
        @return: a C{Deferred} firing once the AMQP connection is open, or
            failing when it cannot be.
        """
        raise NotImplementedError()

    def _client_channel(self, protocol: Any) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with a newly opened channel.
        """
        raise NotImplementedError()

    def _client_publisher(self, session: Session) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with a publisher in confirm mode, which
            calls the transport's C{_publisher_closed} when its channel
            closes.
        """
        raise NotImplementedError()

    def _client_consumer(self, queue: Queue, on_message: Callable[[IDelivery], None], prefetch: int) -> Any:
        """
        @return: a consumer (not attached yet), made with the transport's
            C{_hooks}.
        """
        raise NotImplementedError()

    def _client_close(self, protocol: Any) -> None:
        """
        Begin closing the connection (AMQP C{connection.close}); the protocol
        sends held acks first.
        """
        protocol.close()
