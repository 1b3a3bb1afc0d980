"""
Tests for L{novasvc.transport.amqp._direct_reply}: consuming RabbitMQ's
direct reply-to pseudo-queue through both RabbitMQ transports, on the local
broker (a vhost per test).
"""

from typing import Any, List, Tuple

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests._clients import AMQPTransport, on_txamqp
from novasvc.transport.topology import DEFAULT_EXCHANGE, DIRECT_REPLY_TO, Queue, is_direct_reply_to
from tests._services import poll
from tests._vhosts import make_vhost
from tests.test_transport_amqp import FAST, rabbit_url, started


class DirectReplyTests(TestCase):
    """
    A consumer of C{amq.rabbitmq.reply-to} on the pika transport (and, as
    L{TxAMQPDirectReplyTests}, on the txamqp one).
    """

    transport_class = AMQPTransport

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.vhost = yield make_vhost(self)
        self.client = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        self.server = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        yield poll(lambda: self.client.is_connected and self.server.is_connected, "both transports connected")
        self.got: List[bytes] = []
        self.names: List[Tuple[str, str]] = []
        self.consumer = self.client.consume(Queue(DIRECT_REPLY_TO), self._delivered)
        self.consumer.renamed = lambda old, new: self.names.append((old, new))  # type: ignore[attr-defined]
        yield self.consumer.whenActive()

    def _delivered(self, delivery: Any) -> None:
        delivery.ack()
        delivery.ack()
        self.got.append(delivery.body)

    @defer.inlineCallbacks
    def test_named_and_delivered(self) -> Any:
        """
        When the consumer is active, then it has the channel's direct
        reply-to name, and messages another connection publishes to the
        default exchange with that name (without the mandatory flag) reach
        it, acknowledged by the broker (acking them does nothing, and the
        channel stays open).
        """
        name = self.consumer.queue.name
        self.assertTrue(is_direct_reply_to(name), name)
        self.assertEqual(self.names, [(DIRECT_REPLY_TO, name)])
        for n in range(3):
            yield self.server.publish(DEFAULT_EXCHANGE, name, b"reply %d" % n)
        yield poll(lambda: len(self.got) == 3, "three replies delivered")
        self.assertEqual(self.got, [b"reply 0", b"reply 1", b"reply 2"])
        yield self.server.publish(DEFAULT_EXCHANGE, name, b"reply 3")
        yield poll(lambda: len(self.got) == 4, "the channel still delivers")

    @defer.inlineCallbacks
    def test_renamed_on_reconnection(self) -> Any:
        """
        When the connection is lost, then the consumer hears at once that its
        name is gone, and after the reconnection it has a new name, to which
        messages are delivered again.
        """
        first = self.consumer.queue.name
        self.client._protocol.transport.abortConnection()
        yield poll(lambda: len(self.names) >= 3, "renamed twice more")
        self.assertEqual(self.names[1], (first, DIRECT_REPLY_TO))
        second = self.names[2][1]
        self.assertEqual(self.names[2][0], DIRECT_REPLY_TO)
        self.assertTrue(is_direct_reply_to(second) and second != first, second)
        yield self.server.publish(DEFAULT_EXCHANGE, second, b"again")
        yield poll(lambda: self.got == [b"again"], "delivered to the new name")

    @defer.inlineCallbacks
    def test_cancel(self) -> Any:
        """
        When the consumer is cancelled, then it hears that its name is gone
        and its channel closes.
        """
        name = self.consumer.queue.name
        channel = self.consumer.current.channel
        yield self.consumer.cancel()
        self.assertEqual(self.names[-1], (name, DIRECT_REPLY_TO))
        yield poll(lambda: channel.is_closed, "the channel closed")


TxAMQPDirectReplyTests = on_txamqp(DirectReplyTests)
