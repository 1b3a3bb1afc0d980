# -*- test-case-name: tests.test_transport_direct_reply -*-
"""
A consumer of RabbitMQ's direct reply-to pseudo-queue
(L{novasvc.transport.topology.DIRECT_REPLY_TO}), what both RabbitMQ
transports share of it (L{DirectReplyConsumer}, L{DirectReplyChannel}):
C{transport.consume(Queue(DIRECT_REPLY_TO), ...)}.

Nothing is declared: on each connection its channel issues C{basic.consume}
with automatic acknowledgement (no-ack), then learns the channel's reply-to
name the only way AMQP tells it, by publishing one probe message with
C{reply_to: amq.rabbitmq.reply-to} and the mandatory flag to a routing key
no queue has; the broker returns it unroutable with C{reply_to} rewritten to
the channel's name (C{amq.rabbitmq.reply-to.<opaque>}). Only then is the
consumer active. The name changes with every channel: the consumer's
C{renamed(old, new)} hears each change, and C{renamed(old, DIRECT_REPLY_TO)}
when the channel is gone (the connection was lost, or the consumer
cancelled), since whatever is sent to the old name from then on is dropped
by the broker.

Deliveries are settled already (the broker acknowledged them as it sent
them): their C{ack} and C{reject} do nothing, and nothing goes back to a
queue when the channel closes.

Each client library says how to consume without acknowledgement
(C{_start_consuming(channel, queue, no_ack=True)}), how to publish the probe
(C{_send_probe}), and hands the returned probe to L{DirectReplyChannel.returned}.
"""

import uuid
from typing import Any, Callable, Optional

from twisted.internet import defer
from twisted.logger import Logger

from novasvc.exceptions import TransportError
from novasvc.interfaces import IDelivery
from novasvc.transport.amqp._channel import Channel
from novasvc.transport.amqp._consume import AMQPConsumer, ConsumerOwner
from novasvc.transport.amqp._consumer_channel import AMQPDelivery, ConsumerChannel
from novasvc.transport.topology import DIRECT_REPLY_TO, Queue

__all__ = ["DirectReplyChannel", "DirectReplyConsumer", "PROBE_TIMEOUT"]

_log = Logger()

#: B{Seconds} the broker has to return the probe that names the channel;
#: past that the channel is closed and the consumer tries again later.
PROBE_TIMEOUT = 5.0


class DirectReplyChannel(ConsumerChannel):
    """
    The channel of a L{DirectReplyConsumer} on one connection; a client
    library's subclass gives C{_send_probe} and calls L{returned}.
    """

    _naming: Optional[defer.Deferred] = None
    _token = b""

    @defer.inlineCallbacks
    def _subscribe(self) -> Any:
        channel = self.channel
        assert channel is not None
        self.step = f"consuming {DIRECT_REPLY_TO!r}"
        self.tag = yield self._steps.step(self.step, self._start_consuming(channel, Queue(DIRECT_REPLY_TO),
                                                                           no_ack=True))
        if self.draining:
            self._cancel_on_broker()
            return
        self.step = "learning the channel's direct reply-to name"
        name = yield self._steps.step(self.step, self._probe(channel))
        if self.draining:
            self._cancel_on_broker()
            return
        self.consumer._named(name)
        self._now_consuming(channel)

    def _probe(self, channel: Channel) -> defer.Deferred:
        """
        Publish the probe that comes back with the channel's name.

        @return: a C{Deferred} firing with the name, or failing with
            L{TransportError} when it did not come back within
            L{PROBE_TIMEOUT} seconds (the channel is then closed).
        """
        token = self._token = uuid.uuid4().hex.encode()
        named = self._naming = defer.Deferred()

        def timed_out() -> None:
            if not named.called:
                named.errback(TransportError(f"the broker did not name the direct reply-to channel within "
                                             f"{PROBE_TIMEOUT:g} seconds"))

        def over(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        timer = self.consumer._owner.clock.callLater(PROBE_TIMEOUT, timed_out)
        named.addBoth(over)
        self._send_probe(channel, f"novasvc.reply-to-probe.{token.decode()}", token)
        return named

    def _send_probe(self, channel: Channel, routing_key: str, body: bytes) -> None:
        """
        Publish C{body} to the default exchange with C{routing_key}, the
        mandatory flag and C{reply_to: amq.rabbitmq.reply-to}, on
        C{channel}; the client library hands its return to L{returned}.
        """
        raise NotImplementedError()

    def returned(self, reply_to: Optional[str], body: bytes) -> None:
        """
        A message of this channel came back unroutable: when it is the
        probe, C{reply_to} is the channel's name.
        """
        named = self._naming
        if (named is not None and not named.called and body == self._token
                and (reply_to or "").startswith(DIRECT_REPLY_TO + ".")):
            named.callback(reply_to)

    def handle(self, delivery_tag: int, body: bytes, content_type: Optional[str], exchange: str,
               routing_key: str, redelivered: bool) -> None:
        """
        One reply: hand it to C{on_message} already settled (nothing is
        handed out while draining: a reply cannot be put back).
        """
        if self.draining:
            return
        delivery = AMQPDelivery(self, delivery_tag, body, content_type, exchange, routing_key, redelivered)
        delivery._settled = True
        try:
            self.consumer.on_message(delivery)
        except Exception:
            _log.failure("on_message for {queue!r} raised; the reply is dropped", queue=DIRECT_REPLY_TO)


class DirectReplyConsumer(AMQPConsumer):
    """
    A consumer of the direct reply-to pseudo-queue; see the module
    docstring. L{queue} is C{Queue(<the channel's name>)} while active, and
    C{Queue(DIRECT_REPLY_TO)} otherwise.

    @cvar channel_class: the client library's L{DirectReplyChannel}.
    """

    def __init__(self, owner: ConsumerOwner, on_message: Callable[[IDelivery], None]) -> None:
        super().__init__(owner, Queue(DIRECT_REPLY_TO), on_message, 0)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} as {self.queue.name!r}>"

    def attach(self, protocol: Any, renew: bool = False) -> defer.Deferred:
        """
        Consume on a new connection (there is no queue to renew: every
        channel has a name of its own).
        """
        return super().attach(protocol, False)

    def detach(self) -> None:
        """
        The connection is gone, and with it the channel's name.
        """
        super().detach()
        self._named(DIRECT_REPLY_TO)

    def _shutdown(self) -> None:
        self._named(DIRECT_REPLY_TO)
        super()._shutdown()

    def _named(self, name: str) -> None:
        old = self.queue.name
        if name == old:
            return
        self.queue = Queue(name)
        renamed = self.renamed
        if renamed is not None:
            try:
                renamed(old, name)
            except Exception:
                _log.failure("Unexpected error while renaming {old!r}", old=old)
