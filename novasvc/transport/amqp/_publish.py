# -*- test-case-name: tests.test_transport_amqp -*-
"""
The publishing side of one AMQP connection: a channel in publisher-confirm
mode whose C{basic.ack}/C{basic.nack}/C{basic.return} frames settle the
C{Deferred} each publish returned.

This is the hot path, so it stays flat: one socket write (L{FrameWriter}, on
the fast path; else pika's C{basic_publish}),
one C{Deferred} and one C{dict} entry per message, confirms read by the
connection's L{FrameReader} on the fast path, message properties shared
between messages that use the same content type and expiration, and no
logging per message. Exchanges are declared once per connection on a separate control
channel, so a declare the broker refuses (a C{PRECONDITION_FAILED} type or
durability mismatch closes the channel that asked) fails only the publishes
that named that exchange, never the confirms pending on this channel.
"""

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from pika import spec
from twisted.internet import defer
from twisted.logger import Logger

from novasvc.exceptions import DisconnectedError, TransportError, UnroutableError
from novasvc.transport.amqp._channel import Channel, describe, open_channel
from novasvc.transport.amqp._frames import FrameReader, FrameWriter
from novasvc.transport.topology import Exchange

_log = Logger()

_PROPERTIES: Dict[Tuple[Optional[str], Optional[int]], "SharedProperties"] = {}
_PROPERTIES_MAX = 256


class SharedProperties(spec.BasicProperties):
    """
    Message properties shared by many messages, with their AMQP encoding made
    once (L{encoded}); pika only reads them.

    @ivar encoded: the property flags and list, as a content header carries
        them after the class id, weight and body size.
    """

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.encoded = b"".join(super().encode())


def message_properties(content_type: Optional[str], expiration: Optional[int]) -> SharedProperties:
    """
    The properties oslo.messaging's rabbit driver sends (C{content_encoding}
    C{utf-8}, C{delivery_mode} 2) for this content type and expiration,
    shared between messages (pika only reads them).

    @param content_type: the C{content_type} property, or C{None}.
    @param expiration: the per-message TTL in B{milliseconds}, or C{None}.
    @raise ValueError: for a negative or non-integer C{expiration}.
    """
    key = (content_type, expiration)
    properties = _PROPERTIES.get(key)
    if properties is None:
        if expiration is not None and (
            isinstance(expiration, bool) or not isinstance(expiration, int) or expiration < 0
        ):
            raise ValueError(f"expiration must be a whole number of milliseconds >= 0, not {expiration!r}")
        if len(_PROPERTIES) >= _PROPERTIES_MAX:
            _PROPERTIES.clear()
        properties = _PROPERTIES[key] = SharedProperties(
            content_type=content_type,
            content_encoding="utf-8",
            delivery_mode=2,
            expiration=None if expiration is None else str(expiration),
        )
    return properties


class Confirms:
    """
    Publisher-confirm book-keeping for one channel: which C{Deferred} each
    publish sequence number settles.

    RabbitMQ numbers the publishes of a channel in confirm mode from 1; a
    C{basic.ack} or C{basic.nack} names one number or, with C{multiple}, every
    number up to it. A mandatory message that no queue took comes back as
    C{basic.return} (exchange, routing key, body) I{before} its C{basic.ack}.

    The cost of a confirm is in the publishes it settles, never in the span
    of numbers it names: the numbers not settled yet are kept in publish
    order (L{_order}), so a multiple ack pops them from the front, and a
    single ack drops the settled numbers it uncovers at the front. Returns
    come in publish order too, so each is matched by walking forward from
    the previous one (L{_unreturned}): every mandatory publish is passed over
    at most once.
    """

    def __init__(self) -> None:
        self.sequence = 0
        self._pending: Dict[int, defer.Deferred] = {}
        self._order: Deque[int] = deque()
        self._mandatory: Dict[int, Tuple[str, str, bytes]] = {}
        self._unreturned: Deque[int] = deque()
        self._returned: Dict[int, str] = {}
        self._drain_waiters: List[defer.Deferred] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, exchange: str, routing_key: str, body: bytes, mandatory: bool) -> defer.Deferred:
        """
        Count one publish just written to the channel.

        @return: the C{Deferred} its confirm settles.
        """
        self.sequence = sequence = self.sequence + 1
        d = self._pending[sequence] = defer.Deferred()
        self._order.append(sequence)
        if mandatory:
            self._mandatory[sequence] = (exchange, routing_key, body)
            self._unreturned.append(sequence)
        return d

    def returned(self, exchange: str, routing_key: str, body: bytes, reply_text: str) -> None:
        """
        A C{basic.return} arrived: mark the publish it belongs to, the first
        mandatory publish after the previous return with this exchange,
        routing key and body (those passed over were routed).
        """
        key = (exchange, routing_key, body)
        mandatory, unreturned = self._mandatory, self._unreturned
        for position, sequence in enumerate(unreturned):
            if mandatory.get(sequence) == key:
                for _ in range(position + 1):
                    unreturned.popleft()
                self._returned[sequence] = reply_text
                return

    def confirmed(self, delivery_tag: int, multiple: bool, ack: bool) -> None:
        """
        A C{basic.ack} (C{ack} true) or C{basic.nack} arrived: settle what it
        names. Returned messages fail with L{UnroutableError}, nacked ones
        with L{TransportError}, the others succeed with C{None}.
        """
        pending, order = self._pending, self._order
        if multiple:
            while order and order[0] <= delivery_tag:
                tag = order.popleft()
                d = pending.pop(tag, None)
                if d is not None:
                    self._settle(tag, d, ack)
        else:
            d = pending.pop(delivery_tag, None)
            if d is not None:
                self._settle(delivery_tag, d, ack)
            while order and order[0] not in pending:
                order.popleft()
        unreturned = self._unreturned
        while unreturned and unreturned[0] not in pending:
            unreturned.popleft()
        if self._drain_waiters and not pending:
            self._drained()

    def _settle(self, tag: int, d: defer.Deferred, ack: bool) -> None:
        mandatory = self._mandatory
        if mandatory:
            sent = mandatory.pop(tag, None)
            if sent is not None and self._returned:
                reply = self._returned.pop(tag, None)
                if reply is not None:
                    d.errback(UnroutableError(
                        f"no queue took the message published to exchange {sent[0]!r} "
                        f"with routing key {sent[1]!r} ({reply})"
                    ))
                    return
        if ack:
            d.callback(None)
        else:
            d.errback(TransportError("the broker refused the message (basic.nack)"))

    def when_drained(self) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with C{None} once no publish awaits its
            confirm (at once if none does).
        """
        if not self._pending:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drain_waiters.append(d)
        return d

    def _drained(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for d in waiters:
            d.callback(None)

    def fail_all(self, error: Exception) -> None:
        """
        Fail every publish not confirmed yet (the channel or connection
        closed: the broker may or may not have the message).
        """
        pending, self._pending = self._pending, {}
        self._order.clear()
        self._mandatory.clear()
        self._unreturned.clear()
        self._returned.clear()
        for d in pending.values():
            d.errback(error)
        self._drained()


class Publisher:
    """
    The publish channel of one connection.

    Make one with L{Publisher.open}; use it while L{is_usable}.

    @ivar channel: the L{Channel}, in confirm mode.
    @ivar confirms: its L{Confirms}.
    """

    def __init__(self, channel: Channel, control: Callable[[], defer.Deferred],
                 on_close: Callable[["Publisher", Optional[BaseException]], None],
                 writer: Optional[FrameWriter] = None) -> None:
        self.channel = channel
        self.confirms = Confirms()
        self._control = control
        self._declared: Set[str] = set()
        self._declaring: Dict[str, List[Tuple[tuple, defer.Deferred]]] = {}
        self._on_close = on_close
        self._reader: Optional[FrameReader] = None
        self._attach(channel, writer)
        channel.add_on_close(self._closed)

    def _attach(self, channel: Channel, writer: Optional[FrameWriter]) -> None:
        # What the client library needs: the frame writer (None: pika's
        # basic_publish), and the callback of basic.return.
        self._raw = channel.raw
        self._basic_publish = channel.raw.basic_publish
        self._writer = writer
        channel.raw.add_on_return_callback(self._on_return)

    @classmethod
    def open(cls, connection: Any, control: Callable[[], defer.Deferred],
             on_close: Callable[["Publisher", Optional[BaseException]], None],
             frame_writer: Callable[[Any], Optional[FrameWriter]] = lambda raw: None,
             frame_reader: Optional[FrameReader] = None) -> defer.Deferred:
        """
        Open a channel on C{connection} and turn on publisher confirms.

        @param connection: the open pika C{Connection}.
        @param control: returns a C{Deferred} firing with the L{Channel} to
            declare exchanges on.
        @param on_close: called with C{(publisher, reason)} when the channel
            closes.
        @param frame_writer: gives the L{FrameWriter} for a pika channel, or
            C{None} to publish with pika's C{basic_publish} (see
            L{novasvc.transport.pika._connect.AMQPProtocol.frame_writer}).
        @param frame_reader: the connection's L{FrameReader} on the fast
            path: the channel's confirms are read there.
        @return: a C{Deferred} firing with the L{Publisher}, or failing with
            L{novasvc.transport.amqp._channel.ChannelError}.
        """
        publisher: List[Publisher] = []

        def confirm(channel: Channel) -> defer.Deferred:
            publisher.append(cls(channel, control, on_close, frame_writer(channel.raw)))
            return channel.call("confirm_delivery", ack_nack_callback=publisher[0]._on_confirm).addCallback(
                read_confirms, channel)

        def read_confirms(result: Any, channel: Channel) -> Any:
            if frame_reader is not None and channel.raw.is_open:
                publisher[0]._reader = frame_reader
                frame_reader.confirm(channel.raw.channel_number, publisher[0].confirms.confirmed)
            return result

        return open_channel(connection).addCallback(confirm).addCallback(lambda _: publisher[0])

    @property
    def is_usable(self) -> bool:
        """
        C{True} while the channel is open.
        """
        return self.channel.is_usable

    def publish(self, exchange: Exchange, routing_key: str, body: bytes, content_type: Optional[str],
                expiration: Optional[int], mandatory: bool) -> defer.Deferred:
        """
        Publish one message; see L{novasvc.interfaces.ITransport.publish}.

        @raise ValueError: (as the C{Deferred}'s failure) for a bad
            C{expiration}; C{TypeError} for a body that is not C{bytes}.
        """
        name = exchange.name
        if name and name not in self._declared:
            return self._declare_then_publish(exchange, routing_key, body, content_type, expiration, mandatory)
        try:
            self._write(name, routing_key, body, message_properties(content_type, expiration), mandatory)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        except Exception as e:
            return defer.fail(DisconnectedError(f"cannot publish: {describe(e)}"))
        return self.confirms.add(name, routing_key, body, mandatory)

    def _write(self, exchange: str, routing_key: str, body: bytes, properties: SharedProperties,
               mandatory: bool) -> None:
        # Send one basic.publish with its content; raise on failure
        # (TypeError for a body that is not bytes).
        if self._writer is not None and self._raw.is_open:
            self._writer.write(exchange, routing_key, body, properties, mandatory)
        elif type(body) is not bytes:
            # As the writer: pika's basic_publish would encode a str.
            raise TypeError(f"the body must be bytes, not {type(body).__name__}")
        else:
            self._basic_publish(exchange, routing_key, body, properties, mandatory)

    def _declare_then_publish(self, exchange: Exchange, *rest: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        name = exchange.name
        waiting = self._declaring.get(name)
        if waiting is not None:
            waiting.append(((exchange,) + rest, d))
            return d
        self._declaring[name] = [((exchange,) + rest, d)]

        def declare(channel: Channel) -> defer.Deferred:
            return channel.call(
                "exchange_declare", exchange=name, exchange_type=exchange.type,
                durable=exchange.durable, auto_delete=exchange.auto_delete,
            )

        declaring = self._control()
        declaring.addCallback(declare)
        declaring.addCallbacks(self._declared_ok, self._declare_failed,
                               callbackArgs=(exchange,), errbackArgs=(exchange,))
        return d

    def _declared_ok(self, _frame: Any, exchange: Exchange) -> None:
        self._declared.add(exchange.name)
        for args, d in self._declaring.pop(exchange.name, ()):
            self.publish(*args).chainDeferred(d)

    def _declare_failed(self, failure: Any, exchange: Exchange) -> None:
        # Refused by the broker (e.g. a durability mismatch): sending again
        # will not help. Lost with the connection: it may.
        by_broker = getattr(failure.value, "by_broker", False)
        error = (TransportError if by_broker else DisconnectedError)(
            f"cannot declare exchange {exchange.name!r} (type {exchange.type}, durable={exchange.durable}, "
            f"auto_delete={exchange.auto_delete}): {describe(getattr(failure.value, 'reason', None) or failure.value)}"
        )
        if by_broker:
            _log.warn("{error}", error=str(error))
        for _args, d in self._declaring.pop(exchange.name, ()):
            d.errback(error)

    def _on_return(self, _raw: Any, method: Any, _properties: Any, body: bytes) -> None:
        self.confirms.returned(method.exchange, method.routing_key, body, f"{method.reply_code} {method.reply_text}")

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        self.confirms.confirmed(method.delivery_tag, method.multiple, method.NAME == "Basic.Ack")

    def _closed(self, _channel: Channel, reason: Optional[BaseException]) -> None:
        # The owner first stops publishing here, so that a publish made again
        # from a failed one's errback waits for the next channel.
        if self._reader is not None:
            self._reader.forget(self._raw.channel_number)
        self._on_close(self, reason)
        self.confirms.fail_all(
            DisconnectedError(f"the publish channel closed before the broker confirmed: {describe(reason)}"))
