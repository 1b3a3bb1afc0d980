# -*- test-case-name: tests.test_transport_amqp,tests.test_metrics_prometheus -*-
"""
L{AMQPTransport}: the L{ITransport} for RabbitMQ, on pika's Twisted adapter.

One AMQP connection per transport, kept up by Twisted's own
L{twisted.application.internet.ClientService} with
L{twisted.application.internet.backoffPolicy} (what both RabbitMQ transports
share is in L{novasvc.transport.amqp._base}): a broker that is absent at
start or lost later is logged (WARNING, URL with the password hidden) and
retried, round-robin over the URL's hosts, each with its own credentials,
and over TLS when the URL or the configuration asks for it (never plain TCP
then; see L{novasvc.transport.amqp._connect}). On every (re)connection the
transport opens

  - a B{publish channel} in publisher-confirm mode: every C{publish()}
    returns a C{Deferred} that fires on the broker's C{basic.ack};
  - a B{control channel} for exchange declares made on behalf of publishes
    and for C{delete_queue()}, so a declare the broker refuses (which closes
    the channel that asked) never fails unrelated publishes;
  - B{one channel per consumer}, on which the consumer's exchanges, queue and
    bindings are declared, its C{basic.qos} prefetch set and its
    C{basic.consume} issued. A refused declare is logged with the names and
    retried for that consumer alone, with the same backoff.

Consuming L{novasvc.transport.topology.DIRECT_REPLY_TO} consumes RabbitMQ's
direct reply-to pseudo-queue instead of declaring a queue (see
L{novasvc.transport.amqp._direct_reply}).

Deliveries reach C{on_message} through a plain callback on pika's channel;
acks made while a batch of incoming frames is handled go out as one
C{basic.ack} with C{multiple} when that is safe (see
L{novasvc.transport.amqp._consumer_channel}). A delivery settled after its channel is
gone (reconnection) is ignored: the broker has requeued it.

Publishing while not connected: the publish waits for the connection for at
most C{publish_wait} seconds (default 30; the longest reconnect delay is
C{retry_max}, 30 s by default, so one full retry fits), then fails with
L{DisconnectedError}. C{publish_wait=0} fails at once. Publishes sent but
not yet confirmed when the connection drops fail with L{DisconnectedError}:
the broker may or may not have the message, and the transport does not send
it again (that choice belongs to the caller; L{novasvc.rpc.client.RPCClient}
sends the same bytes again, as its C{retry} allows). L{AMQPTransport.stop} waits (within
C{close_timeout}) for the confirms of publishes already sent before closing;
after it, every publish fails at once.

What of pika is used beyond its documented API (the C{_impl} connection
of C{TwistedProtocolConnection}; on the B{fast path}, the frames of
C{basic.publish} and C{basic.ack} written directly) and the check that
decides, once per process, between the fast path and pika's public
C{basic_publish}/C{basic_ack} (C{NOVASVC_PIKA_FAST_PATH=0} forces the
latter): see L{novasvc.transport.pika._internals}.

Metrics (L{novasvc.metrics}): every connection fully set up after the first
one since L{AMQPTransport.start} counts as a broker reconnection (in
L{novasvc.transport.amqp._base}, for both clients).
"""

from typing import Any, Callable

from twisted.internet import defer
from zope.interface import implementer

from novasvc.exceptions import TransportError
from novasvc.interfaces import IDelivery, ITransport
from novasvc.transport.amqp._base import BaseAMQPTransport, Session
from novasvc.transport.amqp._channel import open_channel
from novasvc.transport.amqp._connect import RoundRobinEndpoint
from novasvc.transport.pika._direct_reply import PikaDirectReplyConsumer
from novasvc.transport.pika._connect import AMQPProtocol, AMQPProtocolFactory, connection_parameters
from novasvc.transport.amqp._consume import AMQPConsumer
from novasvc.transport.amqp._publish import Publisher
from novasvc.transport.pika._internals import verdict
from novasvc.transport.topology import DIRECT_REPLY_TO, Queue
from novasvc.transport.url import TransportURL

__all__ = ["AMQPTransport"]


@implementer(ITransport)
class AMQPTransport(BaseAMQPTransport):
    """
    An L{ITransport} talking to RabbitMQ (AMQP 0-9-1) through pika's Twisted
    adapter; see the module docstring for the channels it uses and what
    happens while the broker is away, and L{BaseAMQPTransport.__init__} for
    its options.

    @ivar fast_path: C{True} when this process writes the frames of
        C{basic.publish} and C{basic.ack} itself, C{False} when it uses
        pika's C{basic_publish} and C{basic_ack} (see
        L{novasvc.transport.pika._internals}); said in the log line of each
        connection.
    """

    client = "pika"

    def __init__(self, url: TransportURL, **options: Any) -> None:
        """
        @param url: see L{BaseAMQPTransport.__init__}, as the C{options}.
        @raise ConfigError: see L{BaseAMQPTransport.__init__}.
        @raise TransportError: for a pika release the transport cannot use
            at all (see L{novasvc.transport.pika._internals.connection_of}).
        """
        super().__init__(url, **options)
        self._pika = verdict()
        self.fast_path = self._pika.fast_path

    def _client_description(self) -> str:
        return self._pika.describe()

    def _client_factory(self, endpoint: RoundRobinEndpoint) -> AMQPProtocolFactory:
        per_host = [connection_parameters(self.url, self._heartbeat, self.connection_name, index)
                    for index in range(len(self.url.hosts))]
        return AMQPProtocolFactory(lambda: per_host[endpoint.index], self._clock, self._hooks, self.fast_path)

    def _client_handshake(self, protocol: AMQPProtocol) -> defer.Deferred:
        ready = protocol.ready
        if ready is None:
            ready = defer.succeed(None) if protocol.connection.is_open else defer.fail(TransportError("not open"))
        return ready

    def _client_channel(self, protocol: AMQPProtocol) -> defer.Deferred:
        return open_channel(protocol.connection)

    def _client_publisher(self, session: Session) -> defer.Deferred:
        protocol = session.protocol
        return Publisher.open(protocol.connection, session.control, self._publisher_closed, protocol.frame_writer,
                              protocol.frame_reader)

    def _client_consumer(self, queue: Queue, on_message: Callable[[IDelivery], None], prefetch: int) -> Any:
        if queue.name == DIRECT_REPLY_TO:
            return PikaDirectReplyConsumer(self._hooks, on_message)
        return AMQPConsumer(self._hooks, queue, on_message, prefetch)
