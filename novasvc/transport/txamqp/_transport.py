# -*- test-case-name: tests.test_transport_txamqp -*-
"""
L{TxAMQPTransport}: the L{ITransport} for RabbitMQ on txamqp, for those who
choose txamqp (C{amqp_client: txamqp}; see L{novasvc.transport.get_transport})
beside the default, pika's L{novasvc.transport.AMQPTransport}.

It behaves as the pika transport does, and shares its code for all that is
not the client library (L{novasvc.transport.amqp._base}): one connection
kept up by Twisted's C{ClientService} with the same backoff policy,
round-robin over the URL's hosts, each with its own credentials, TLS through
Twisted's endpoints when the URL or the configuration asks for it; on every
(re)connection a publish channel in publisher-confirm mode (mandatory
returns fail with L{novasvc.exceptions.UnroutableError}), a control channel
for exchange declares and queue deletes, and one channel per consumer, on
which its exchanges, queue (durable, auto-delete, exclusive, arguments such
as C{x-expires}) and bindings are declared again, its prefetch set and its
C{basic.consume} issued with manual acknowledgement. Publishes made while
disconnected wait up to C{publish_wait} seconds; publishes not confirmed
when the connection drops fail with L{novasvc.exceptions.DisconnectedError}.
A consumer the broker cancels (its queue deleted) declares its queue again
and consumes it; a declare the broker refuses is logged and retried with
backoff; heartbeats (txamqp's) drop a connection whose broker went silent.

txamqp (0.8) needs a machine description of AMQP; novasvc ships its own
(C{amqp0-9-1.xml}) and encodes frames itself (see
L{novasvc.transport.txamqp._codec} for why). Install with
C{pip install 'novasvc[txamqp]'}; nothing else is needed.
"""

from typing import Any, Callable

from twisted.internet import defer
from zope.interface import implementer

from novasvc.interfaces import IDelivery, ITransport
from novasvc.transport.amqp._base import BaseAMQPTransport, Session
from novasvc.transport.amqp._connect import RoundRobinEndpoint
from novasvc.transport.txamqp._flow import TxAMQPConsumer, TxDirectReplyConsumer, TxPublisher
from novasvc.transport.txamqp._protocol import TxAMQPProtocol, TxAMQPProtocolFactory, txamqp_version
from novasvc.transport.topology import DIRECT_REPLY_TO, Queue

__all__ = ["TxAMQPTransport"]


@implementer(ITransport)
class TxAMQPTransport(BaseAMQPTransport):
    """
    An L{ITransport} talking to RabbitMQ (AMQP 0-9-1) through txamqp; see
    the module docstring, and L{BaseAMQPTransport.__init__} for its options
    (the same as L{novasvc.transport.AMQPTransport}'s).
    """

    client = "txamqp"

    def _client_description(self) -> str:
        return f"txamqp {txamqp_version()}"

    def _client_factory(self, endpoint: RoundRobinEndpoint) -> TxAMQPProtocolFactory:
        return TxAMQPProtocolFactory(lambda: self.url.login(endpoint.index), self.url.virtual_host,
                                     self._heartbeat, self.connection_name, self._clock, self._hooks)

    def _client_handshake(self, protocol: TxAMQPProtocol) -> defer.Deferred:
        return protocol.handshake()

    def _client_channel(self, protocol: TxAMQPProtocol) -> defer.Deferred:
        return protocol.open_channel()

    def _client_publisher(self, session: Session) -> defer.Deferred:
        return TxPublisher.open(session.protocol, session.control, self._publisher_closed)

    def _client_consumer(self, queue: Queue, on_message: Callable[[IDelivery], None], prefetch: int) -> Any:
        if queue.name == DIRECT_REPLY_TO:
            return TxDirectReplyConsumer(self._hooks, on_message)
        return TxAMQPConsumer(self._hooks, queue, on_message, prefetch)

    def _client_close(self, protocol: TxAMQPProtocol) -> None:
        protocol.shut_down()
