# -*- test-case-name: tests.test_transport_amqp -*-
"""
One consumer on one connection (L{ConsumerChannel}): its own AMQP channel
with its own C{basic.qos}, so a declare the broker refuses closes only that
channel and a prefetch limit applies to that consumer alone; and the
deliveries it hands out (L{AMQPDelivery}). The consumer that lives through
reconnections and makes one of these per connection is
L{novasvc.transport.amqp._consume.AMQPConsumer}.

Deliveries reach C{on_message} through a plain callback registered with
pika's C{basic_consume} or, on the transport's fast path, straight from the
connection's L{novasvc.transport.amqp._frames.FrameReader} (no
C{DeferredQueue} in between). A delivery settles
on the channel it came from; once that channel is gone (connection lost,
consumer restarted) settling it does nothing, because the broker has already
put the message back on its queue.

Acks are cheap: an ack made while the protocol is handling incoming data
(typically from C{on_message} itself) is held until that batch of frames is
handled, and if by then no other delivery of the channel is unsettled, one
C{basic.ack} with C{multiple} set acknowledges them all; otherwise each is
acked on its own, their frames in one socket write. Rejects are sent at
once. Held acks are sent before the channel or the connection is closed by
novasvc.
"""

from typing import Any, List, Optional, Sequence

from pika import exceptions as pika_errors
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from novasvc.interfaces import IDelivery
from novasvc.transport.amqp._channel import Channel, ChannelError, describe, open_channel
from novasvc.transport.amqp._frames import FrameWriter
from novasvc.transport.amqp._setup import SetupSteps
from novasvc.transport.topology import Queue

__all__ = ["AMQPDelivery", "ConsumerChannel"]

_log = Logger()


@implementer(IDelivery)
class AMQPDelivery:
    """
    One C{basic.deliver}; see L{IDelivery}.

    @ivar delivery_tag: the broker's tag, valid on its channel only.
    """

    __slots__ = ("_owner", "delivery_tag", "body", "content_type", "exchange", "routing_key",
                 "redelivered", "_settled")

    def __init__(self, owner: "ConsumerChannel", delivery_tag: int, body: bytes, content_type: Optional[str],
                 exchange: str, routing_key: str, redelivered: bool) -> None:
        self._owner = owner
        self.delivery_tag = delivery_tag
        self.body = body
        self.content_type = content_type
        self.exchange = exchange
        self.routing_key = routing_key
        self.redelivered = redelivered
        self._settled = False

    def ack(self) -> None:
        """
        C{basic.ack} on the channel it came from (nothing if that channel is
        gone, or if it was settled already).
        """
        if not self._settled:
            self._settled = True
            self._owner.settle(self.delivery_tag, None)

    def reject(self, requeue: bool) -> None:
        """
        C{basic.reject} on the channel it came from (nothing if that channel
        is gone, or if it was settled already).

        @param requeue: C{True} puts the message back on its queue.
        """
        if not self._settled:
            self._settled = True
            self._owner.settle(self.delivery_tag, bool(requeue))

    def __repr__(self) -> str:
        return (f"<AMQPDelivery {self.delivery_tag} from exchange {self.exchange!r} "
                f"key {self.routing_key!r}, {len(self.body)} bytes>")


class ConsumerChannel:
    """
    One consumer on one connection: its channel, the declares it makes and
    its C{basic.consume}.

    @ivar channel: the L{Channel} once open.
    @ivar tag: the consumer tag while consuming, else C{None}.
    @ivar unsettled: deliveries handed out and not yet settled.
    @ivar draining: set by a cancel: deliver nothing more, and close the
        channel once L{unsettled} reaches zero.
    @ivar step: what set-up is doing now, for error messages.
    """

    def __init__(self, consumer: Any, protocol: Any) -> None:
        """
        @param consumer: the L{novasvc.transport.amqp._consume.AMQPConsumer}
            this channel consumes for.
        @param protocol: the protocol of the open connection.
        """
        self.consumer = consumer
        self.channel: Optional[Channel] = None
        self.tag: Optional[str] = None
        self.unsettled = 0
        self.draining = False
        self.step = "opening a channel"
        self._protocol = protocol
        self._held: List[int] = []
        self._failed = False
        self._writer: Optional[FrameWriter] = None
        self._steps = SetupSteps(consumer._owner.clock, f"Consumer of queue {consumer.queue.name!r}")

    # -- set-up -------------------------------------------------------------

    def start(self) -> defer.Deferred:
        """
        Open the channel, declare, bind, set the prefetch and consume.

        @return: a C{Deferred} firing with C{None} after this first attempt,
            whether it worked or not (a failure is logged and retried by the
            consumer).
        """
        return (open_channel(self._protocol.connection, self._closed)
                .addCallback(self._opened).addErrback(self._setup_failed))

    def _opened(self, channel: Channel) -> defer.Deferred:
        self.channel = channel
        self._writer = self._protocol.frame_writer(channel.raw)
        channel.raw.add_on_cancel_callback(self._broker_cancelled)
        if self.draining:
            channel.close()
            return defer.succeed(None)
        return self._subscribe()

    def _call(self, channel: Channel, method: str, **arguments: Any) -> defer.Deferred:
        # One synchronous method of the set-up, logged if it waits (see
        # SetupSteps); self.step says what it is.
        return self._steps.step(self.step, channel.call(method, **arguments))

    @defer.inlineCallbacks
    def _subscribe(self) -> Any:
        channel = self.channel
        assert channel is not None
        queue = self.consumer.queue
        # Consumed before: its bindings are on the broker already, unless
        # the queue is new; binding (which waits for every node of a
        # cluster) happens on a channel of its own, so that the consumer
        # starts without waiting for a node that is gone.
        bind_aside = self.consumer.was_active
        if queue.dead_letter is not None:
            yield self._declare_dead_letter(channel, queue.dead_letter, bind_aside)
            if self.draining:
                return
        seen = set()
        for binding in queue.bindings:
            exchange = binding.exchange
            if exchange.is_default or exchange.name in seen:
                continue
            seen.add(exchange.name)
            self.step = (f"declaring exchange {exchange.name!r} (type {exchange.type}, "
                         f"durable={exchange.durable}, auto_delete={exchange.auto_delete})")
            yield self._call(channel, "exchange_declare", exchange=exchange.name, exchange_type=exchange.type,
                             durable=exchange.durable, auto_delete=exchange.auto_delete)
            if self.draining:
                return
        self.step = (f"declaring queue {queue.name!r} (durable={queue.durable}, auto_delete={queue.auto_delete}, "
                     f"exclusive={queue.exclusive}, arguments={queue.arguments_dict()})")
        yield self._call(channel, "queue_declare", queue=queue.name, durable=queue.durable,
                         exclusive=queue.exclusive, auto_delete=queue.auto_delete,
                         arguments=queue.arguments_dict() or None)
        aside = self._bind_aside(queue) if bind_aside else None
        for binding in () if bind_aside else queue.bindings:
            if self.draining:
                return
            if binding.exchange.is_default:
                continue
            self.step = (f"binding queue {queue.name!r} to exchange {binding.exchange.name!r} "
                         f"with key {binding.routing_key!r}")
            yield self._call(channel, "queue_bind", queue=queue.name, exchange=binding.exchange.name,
                             routing_key=binding.routing_key)
        if self.draining:
            return
        self.step = f"setting prefetch {self.consumer.prefetch} for queue {queue.name!r}"
        yield self._call(channel, "basic_qos", prefetch_count=self.consumer.prefetch)
        if self.draining:
            return
        self.step = f"consuming queue {queue.name!r}"
        self.tag = yield self._steps.step(self.step, self._start_consuming(channel, queue))
        if self.draining:
            self._cancel_on_broker()
            return
        self._now_consuming(channel)
        if aside is not None:
            # This first attempt is over once the queue is bound again too
            # (the consumer already consumes).
            yield aside

    def _now_consuming(self, channel: Channel) -> None:
        """
        C{basic.consume-ok} came: deliveries of C{channel} reach L{handle}
        (on the fast path straight from the connection's frame reader), and
        the consumer is active.
        """
        reader = getattr(self._protocol, "frame_reader", None)
        if reader is not None and channel.raw.is_open:
            reader.consume(channel.raw.channel_number, self.tag, self.handle)
        self.consumer._activated(self)

    def _bind_aside(self, queue: Queue) -> Optional[defer.Deferred]:
        """
        Bind C{queue} as it says, on a channel opened for that and closed
        after; a failure is logged (the consumer goes on).

        @return: a C{Deferred} firing with C{None} once that is done (it
            never fails), or C{None} when there is nothing to bind.
        """
        bindings = [binding for binding in queue.bindings if not binding.exchange.is_default]
        if not bindings:
            return None
        steps = SetupSteps(self.consumer._owner.clock, f"Consumer of queue {queue.name!r}")

        @defer.inlineCallbacks
        def bind(channel: Channel) -> Any:
            try:
                for binding in bindings:
                    yield steps.step(f"binding it to exchange {binding.exchange.name!r} with key "
                                     f"{binding.routing_key!r}",
                                     channel.call("queue_bind", queue=queue.name, exchange=binding.exchange.name,
                                                  routing_key=binding.routing_key))
            finally:
                channel.close()

        def failed(failure: Any) -> None:
            if not self._protocol.lost:
                _log.warn("Could not bind queue {queue!r} again: {why}", queue=queue.name,
                          why=failure.getErrorMessage())

        return self.consumer._owner.open_channel(self._protocol).addCallback(bind).addErrback(failed)

    def _start_consuming(self, channel: Channel, queue: Queue, no_ack: bool = False) -> defer.Deferred:
        """
        Issue C{basic.consume} on C{channel}.

        @param no_ack: the broker acknowledges each delivery as it sends it.
        @return: a C{Deferred} firing with the consumer tag.
        """
        return channel.call("basic_consume", queue=queue.name, on_message_callback=self._deliver,
                            auto_ack=no_ack).addCallback(lambda frame: frame.method.consumer_tag)

    @defer.inlineCallbacks
    def _declare_dead_letter(self, channel: Channel, queue: Queue, bind_aside: bool) -> Any:
        # The queue keeping what the consumed queue dead-letters: its
        # exchanges, itself and its bindings, before the queue that names it.
        for binding in queue.bindings:
            exchange = binding.exchange
            self.step = f"declaring dead-letter exchange {exchange.name!r} (type {exchange.type})"
            yield self._call(channel, "exchange_declare", exchange=exchange.name, exchange_type=exchange.type,
                             durable=exchange.durable, auto_delete=exchange.auto_delete)
        self.step = f"declaring dead-letter queue {queue.name!r} (arguments={queue.arguments_dict()})"
        yield self._call(channel, "queue_declare", queue=queue.name, durable=queue.durable,
                         exclusive=queue.exclusive, auto_delete=queue.auto_delete,
                         arguments=queue.arguments_dict() or None)
        if bind_aside:
            self._bind_aside(queue)
            return
        for binding in queue.bindings:
            self.step = (f"binding dead-letter queue {queue.name!r} to exchange {binding.exchange.name!r} "
                         f"with key {binding.routing_key!r}")
            yield self._call(channel, "queue_bind", queue=queue.name, exchange=binding.exchange.name,
                             routing_key=binding.routing_key)

    def _setup_failed(self, failure: Any) -> None:
        if isinstance(failure.value, ChannelError):
            # The channel is closed; _closed decides whether to retry.
            return None
        self._failed = True
        _log.failure("Unexpected error while {step}", failure, step=self.step)
        if self.channel is not None:
            self.channel.close()
        return None

    # -- deliveries ---------------------------------------------------------

    def _deliver(self, _raw: Any, method: Any, properties: Any, body: bytes) -> None:
        self.handle(method.delivery_tag, body, properties.content_type, method.exchange, method.routing_key,
                    method.redelivered)

    def handle(self, delivery_tag: int, body: bytes, content_type: Optional[str], exchange: str,
               routing_key: str, redelivered: bool) -> None:
        """
        One C{basic.deliver} of this channel: hand it to C{on_message} (or
        put it back on its queue while draining).
        """
        if self.draining:
            try:
                self._reject(delivery_tag, True)
            except Exception:
                pass
            return
        self.unsettled += 1
        delivery = AMQPDelivery(self, delivery_tag, body, content_type, exchange, routing_key, redelivered)
        try:
            self.consumer.on_message(delivery)
        except Exception:
            _log.failure("on_message for queue {queue!r} raised; the message is rejected (not requeued)",
                         queue=self.consumer.queue.name)
            delivery.reject(False)

    def settle(self, delivery_tag: int, requeue: Optional[bool]) -> None:
        """
        Ack (C{requeue} C{None}) or reject one delivery of this channel.
        """
        self.unsettled -= 1
        channel = self.channel
        if channel is None or channel.is_closed:
            return
        if requeue is None and self._protocol.receiving:
            if not self._held:
                self._protocol.hold_acks(self)
            self._held.append(delivery_tag)
            return
        try:
            if requeue is None:
                self._ack((delivery_tag,), False)
            else:
                self._reject(delivery_tag, requeue)
        except Exception:
            # Closing: the broker requeues whatever is still unsettled.
            return
        if self.draining and not self.unsettled:
            self._close()

    def send_acks(self) -> None:
        """
        Send the acks held while the protocol was handling incoming data.
        """
        held, self._held = self._held, []
        channel = self.channel
        if not held or channel is None or channel.is_closed:
            return
        try:
            if self.unsettled == 0 and len(held) > 1:
                # Nothing else of this channel is unsettled: every delivery
                # up to the highest held tag is either held or settled.
                self._ack((max(held),), True)
            else:
                self._ack(held, False)
        except Exception:
            return
        if self.draining and not self.unsettled:
            self._close()

    def _ack(self, delivery_tags: Sequence[int], multiple: bool) -> None:
        # One write for all of them on the fast path (see FrameWriter), else
        # pika's basic_ack for each.
        channel = self.channel
        assert channel is not None
        if self._writer is not None and channel.raw.is_open:
            self._writer.acks(delivery_tags, multiple)
            return
        for delivery_tag in delivery_tags:
            channel.raw.basic_ack(delivery_tag, multiple=multiple)

    def _reject(self, delivery_tag: int, requeue: bool) -> None:
        # basic.reject on this channel.
        assert self.channel is not None
        self.channel.raw.basic_reject(delivery_tag, requeue)

    def _close(self) -> None:
        if self._held:
            self.send_acks()
        if self.channel is not None:
            self.channel.close()

    # -- cancel and close -----------------------------------------------------

    def cancel(self) -> defer.Deferred:
        """
        Stop consuming (C{basic.cancel}) and close the channel once every
        delivery handed out is settled.

        @return: a C{Deferred} firing with C{None} on C{basic.cancel-ok}, or
            at once when not consuming.
        """
        self.draining = True
        channel = self.channel
        if channel is None or channel.is_closed:
            return defer.succeed(None)
        if self.tag is None:
            self._close()
            return defer.succeed(None)
        return self._cancel_on_broker()

    def _cancel_on_broker(self) -> defer.Deferred:
        channel = self.channel
        assert channel is not None
        tag, self.tag = self.tag, None
        if not self._consuming(tag):
            if not self.unsettled:
                self._close()
            return defer.succeed(None)

        def cancelled(_: Any) -> None:
            if not self.unsettled:
                self._close()

        return channel.call("basic_cancel", consumer_tag=tag).addCallbacks(cancelled, lambda _: None)

    def _consuming(self, tag: Optional[str]) -> bool:
        # Whether the client library still counts tag as consuming on this
        # channel (not cancelled by the broker meanwhile).
        assert self.channel is not None
        return tag in self.channel.raw.consumer_tags

    def _broker_cancelled(self, frame: Any) -> None:
        self.broker_cancelled(frame.method.consumer_tag)

    def broker_cancelled(self, consumer_tag: str) -> None:
        """
        The broker's C{basic.cancel} for C{consumer_tag} (its queue was
        deleted): declare it again and consume, unless cancelling anyway.
        """
        if consumer_tag != self.tag:
            return
        self.tag = None
        self._unread()
        consumer = self.consumer
        if self.draining or consumer.current is not self:
            return
        _log.warn(
            "The broker cancelled the consumer of queue {queue!r} (was the queue deleted?); declaring it again",
            queue=consumer.queue.name,
        )
        self._subscribe().addErrback(self._setup_failed)

    def _unread(self) -> None:
        # The fast path's reader no longer hands this channel's deliveries
        # here.
        reader = getattr(self._protocol, "frame_reader", None)
        if reader is not None and self.channel is not None:
            reader.forget(self.channel.raw.channel_number)

    def _closed(self, _channel: Channel, reason: Optional[BaseException]) -> None:
        self._unread()
        consumer = self.consumer
        if consumer.current is not self:
            return
        consumer.current = None
        if self.draining or consumer.cancelled:
            return
        if isinstance(reason, pika_errors.ChannelClosedByBroker) or self._failed:
            # The broker refused something (the reason of a txamqp channel
            # is one of pika's exceptions too; see _txamqp_protocol).
            consumer._retry_later(f"{self.step}: {describe(reason)}")
        # Otherwise the connection went away; the next one restarts us.
