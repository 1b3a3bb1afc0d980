# -*- test-case-name: tests.test_transport_txamqp -*-
"""
Publishing and consuming for L{novasvc.transport.TxAMQPTransport}:
the pika transport's L{Publisher} and L{ConsumerChannel} (exchange declares
on the control channel, confirms and returns matched by L{Confirms}, the
declare-bind-qos-consume sequence, ack batching, broker-side cancels) with
txamqp's channels under them.

On the hot path (C{basic.publish} with its content, C{basic.ack}) the frames
are written in one piece (L{novasvc.transport.txamqp._codec}); txamqp's own
C{basic_publish} writes a frame at a time through a C{Deferred} chain per
message.
"""

import uuid
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from twisted.internet import defer

from novasvc.transport.amqp._consume import AMQPConsumer
from novasvc.transport.amqp._direct_reply import DirectReplyChannel, DirectReplyConsumer
from novasvc.transport.amqp._consumer_channel import ConsumerChannel
from novasvc.transport.amqp._publish import Publisher, SharedProperties
from novasvc.transport.txamqp._codec import FRAME_METHOD, content_frames, encode_method, encode_properties, frame
from novasvc.transport.txamqp._channel import TxChannel
from novasvc.transport.txamqp._protocol import TxAMQPProtocol
from novasvc.transport.topology import DIRECT_REPLY_TO, Queue

_METHODS_MAX = 1024


def _body(content: Any) -> bytes:
    # txamqp leaves an empty body as the empty str.
    body = content.body if content is not None else b""
    return body if isinstance(body, bytes) else body.encode("utf-8")


class TxPublisher(Publisher):
    """
    The publish channel of one txamqp connection, in confirm mode.
    """

    @classmethod
    def open(cls, protocol: TxAMQPProtocol, control: Callable[[], defer.Deferred],  # type: ignore[override]
             on_close: Callable[[Publisher, Optional[BaseException]], None]) -> defer.Deferred:
        """
        Open a channel on C{protocol} and turn on publisher confirms.

        @return: a C{Deferred} firing with the L{TxPublisher}, or failing with
            L{novasvc.transport.amqp._channel.ChannelError}.
        """
        def confirm(channel: TxChannel) -> defer.Deferred:
            publisher = cls(channel, control, on_close)  # type: ignore[arg-type]
            return channel.call("confirm_select").addCallback(lambda _: publisher)

        return protocol.open_channel().addCallback(confirm)

    def _attach(self, channel: TxChannel, writer: Any) -> None:  # type: ignore[override]
        # txamqp's channel: its frames are written here (see _write), never
        # by pika's FrameWriter (writer is None).
        channel.handler = self
        self._protocol = channel.protocol
        self._number = channel.number
        self._publish_method = channel.protocol.method("basic_publish")
        self._methods: Dict[Tuple[str, str, bool], bytes] = {}

    def _write(self, exchange: str, routing_key: str, body: bytes, properties: SharedProperties,
               mandatory: bool) -> None:
        key = (exchange, routing_key, mandatory)
        method = self._methods.get(key)
        if method is None:
            if len(self._methods) >= _METHODS_MAX:
                self._methods.clear()
            method = self._methods[key] = frame(
                FRAME_METHOD, self._number,
                encode_method(self._publish_method, (0, exchange, routing_key, mandatory, False)))
        if self.channel.is_closed or self._protocol.lost:
            raise ConnectionError("the publish channel is closed")
        data = method + content_frames(self._number, self._publish_method.klass.id, properties.encoded, body,
                                       self._protocol.frame_max)
        self._protocol.write(data)

    # -- what the delegate hands over --------------------------------------------

    def handle_return(self, message: Any) -> None:
        self.confirms.returned(message.exchange, message.routing_key, _body(message.content),
                               f"{message.reply_code} {message.reply_text}")

    def handle_confirm(self, delivery_tag: int, multiple: bool, ack: bool) -> None:
        self.confirms.confirmed(delivery_tag, multiple, ack)


class TxConsumerChannel(ConsumerChannel):
    """
    One consumer on one txamqp connection: its own channel, its declares and
    its C{basic.consume} (see L{ConsumerChannel}).
    """

    def start(self) -> defer.Deferred:
        return self._protocol.open_channel(self._closed).addCallback(self._opened).addErrback(self._setup_failed)

    def _opened(self, channel: TxChannel) -> defer.Deferred:  # type: ignore[override]
        self.channel = channel  # type: ignore[assignment]
        channel.handler = self
        self._ack_method = self._protocol.method("basic_ack")
        if self.draining:
            channel.close()
            return defer.succeed(None)
        return self._subscribe()

    def _start_consuming(self, channel: TxChannel, queue: Queue,  # type: ignore[override]
                         no_ack: bool = False) -> defer.Deferred:
        tag = f"novasvc.{uuid.uuid4().hex}"
        return channel.call("basic_consume", queue=queue.name, consumer_tag=tag, no_ack=no_ack).addCallback(
            lambda reply: reply.consumer_tag)

    def _consuming(self, tag: Optional[str]) -> bool:
        return tag is not None and self.channel is not None and not self.channel.is_closed

    def _reject(self, delivery_tag: int, requeue: bool) -> None:
        self.channel.send("basic_reject", delivery_tag, requeue)  # type: ignore[union-attr]

    def _ack(self, delivery_tags: Sequence[int], multiple: bool) -> None:
        channel = self.channel
        assert channel is not None
        if channel.is_closed or self._protocol.lost:
            raise ConnectionError("the channel is closed")
        method, number = self._ack_method, channel.raw.id
        self._protocol.write(b"".join(frame(FRAME_METHOD, number, encode_method(method, (tag, multiple)))
                                      for tag in delivery_tags))

    # -- what the delegate hands over --------------------------------------------

    def handle_deliver(self, message: Any) -> None:
        content = message.content
        properties = content.properties if content is not None else {}
        self.handle(message.delivery_tag, _body(content), properties.get("content-type"), message.exchange,
                    message.routing_key, message.redelivered)


class _TxDirectReplyChannel(DirectReplyChannel, TxConsumerChannel):
    """
    The channel of a L{TxDirectReplyConsumer}: the probe's frames are
    written here, and its return comes through the delegate.
    """

    def _send_probe(self, channel: TxChannel, routing_key: str, body: bytes) -> None:  # type: ignore[override]
        method = self._protocol.method("basic_publish")
        properties = encode_properties(method.klass, {"reply-to": DIRECT_REPLY_TO})
        self._protocol.write(frame(FRAME_METHOD, channel.number, encode_method(method, (0, "", routing_key, True, False)))
                             + content_frames(channel.number, method.klass.id, properties, body,
                                              self._protocol.frame_max))

    def handle_return(self, message: Any) -> None:
        content = message.content
        properties = content.properties if content is not None else {}
        self.returned(properties.get("reply-to"), _body(content))


class TxDirectReplyConsumer(DirectReplyConsumer):
    """
    A consumer of the direct reply-to pseudo-queue on the txamqp transport.
    """

    channel_class = _TxDirectReplyChannel


class TxAMQPConsumer(AMQPConsumer):
    """
    A subscription of L{novasvc.transport.TxAMQPTransport}; see
    L{novasvc.interfaces.IConsumer}.
    """

    channel_class = TxConsumerChannel

    def __repr__(self) -> str:
        return f"<TxAMQPConsumer of queue {self.queue.name!r}>"
