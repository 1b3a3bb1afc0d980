# -*- test-case-name: tests.test_transport_amqp -*-
"""
AMQP frames for the per-message methods, written straight to the Twisted
transport under pika's connection (L{FrameWriter}) and read straight from it
(L{FrameReader}).
"""

import struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from pika import frame, spec

_FRAME_HEAD = struct.Struct(">BHI").pack
_CONTENT_HEAD = struct.Struct(">HxxQ").pack
_METHOD_ID = struct.Struct(">I").pack
_ACK_ARGUMENTS = struct.Struct(">Q?").pack
_FRAME_END = b"\xce"
_FRAME_OVERHEAD = spec.FRAME_HEADER_SIZE + spec.FRAME_END_SIZE
_METHODS_MAX = 1024

_READ_HEAD = struct.Struct(">BHI").unpack_from
_READ_METHOD = struct.Struct(">I").unpack_from
_READ_TAG = struct.Struct(">QB").unpack_from
_READ_CONTENT = struct.Struct(">xxxxQH").unpack_from
_DELIVER = spec.Basic.Deliver.INDEX
_CONFIRMS = (spec.Basic.Ack.INDEX, spec.Basic.Nack.INDEX)
_ACK = spec.Basic.Ack.INDEX
_END = 0xCE
_CONTENT_TYPE_FLAG = spec.BasicProperties.FLAG_CONTENT_TYPE
_NAMES_MAX = 1024

#: C{handle(delivery_tag, body, content_type, exchange, routing_key,
#: redelivered)}: one C{basic.deliver} with its content.
DeliveryHandler = Callable[[int, bytes, Optional[str], str, str, bool], None]
#: C{handle(delivery_tag, multiple, ack)}: one publisher confirm
#: (C{basic.ack}, or C{basic.nack} with C{ack} false).
ConfirmHandler = Callable[[int, bool, bool], None]


class FrameWriter:
    """
    Writes the frames of the two methods sent for every message on one
    channel, byte for byte as pika makes them: C{basic.publish} (method,
    content header, body frames of at most the connection's frame size) with
    what repeats between messages made once (the method frame of an exchange
    and routing key, the encoded properties), and C{basic.ack}; the frames of
    one call go to the socket in one write instead of one per frame.

    This is the transport's fast path; whether it is taken is decided once
    per process by L{novasvc.transport.pika._internals.verdict} (otherwise
    the callers use pika's C{basic_publish} and C{basic_ack}). It uses
    pika's public connection attributes only (C{params.frame_max} as
    negotiated, and the C{bytes_sent} and C{frames_sent} counters, kept as
    pika keeps them) and writes with the Twisted transport's C{write}, as
    pika's adapter does. The tests check the bytes against pika's own
    frames.
    """

    def __init__(self, connection: Any, channel_number: int, write: Callable[[bytes], None]) -> None:
        """
        @param connection: pika's C{Connection}, open (its frame size
            negotiated).
        @param write: the Twisted transport's C{write} (pika's adapter writes
            to the same).
        """
        self._connection = connection
        self._emit = write
        self._channel_number = channel_number
        self._step = connection.params.frame_max - _FRAME_OVERHEAD
        self._header_head = _FRAME_HEAD(spec.FRAME_HEADER, channel_number, 0)[:3]
        self._body_head = _FRAME_HEAD(spec.FRAME_BODY, channel_number, 0)[:3]
        self._methods: Dict[Tuple[str, str, bool], bytes] = {}
        self._ack_head = _FRAME_HEAD(spec.FRAME_METHOD, channel_number, 13) + _METHOD_ID(spec.Basic.Ack.INDEX)

    @classmethod
    def for_channel(cls, raw: Any, write: Callable[[bytes], None]) -> Optional["FrameWriter"]:
        """
        @param raw: an open pika C{Channel}.
        @param write: the Twisted transport's C{write}.
        @return: its writer, or C{None} when pika's connection does not have
            the expected counters and frame size.
        """
        connection = getattr(raw, "connection", None)
        frame_max = getattr(getattr(connection, "params", None), "frame_max", None)
        if not (type(frame_max) is int and frame_max > _FRAME_OVERHEAD
                and type(getattr(connection, "bytes_sent", None)) is int
                and type(getattr(connection, "frames_sent", None)) is int):
            return None
        return cls(connection, raw.channel_number, write)

    def frames(self, exchange: str, routing_key: str, body: bytes, properties: Any,
               mandatory: bool) -> Tuple[bytes, int]:
        """
        @return: the message's frames as one C{bytes}, and how many frames.
        @raise ValueError: for an exchange or routing key longer than 255
            bytes (from pika's encoder).
        @raise TypeError: for a body that is not C{bytes}.
        """
        if type(body) is not bytes:
            raise TypeError(f"the body must be bytes, not {type(body).__name__}")
        key = (exchange, routing_key, mandatory)
        method = self._methods.get(key)
        if method is None:
            if len(self._methods) >= _METHODS_MAX:
                self._methods.clear()
            method = self._methods[key] = frame.Method(
                self._channel_number,
                spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            ).marshal()
        length = len(body)
        header = _CONTENT_HEAD(spec.BasicProperties.INDEX, length) + properties.encoded
        parts = [method, self._header_head, struct.pack(">I", len(header)), header, _FRAME_END]
        step = self._step
        for start in range(0, length, step):
            chunk = body[start:start + step] if length > step else body
            parts += (self._body_head, struct.pack(">I", len(chunk)), chunk, _FRAME_END)
        return b"".join(parts), 2 + -(-length // step)

    def write(self, exchange: str, routing_key: str, body: bytes, properties: Any,
              mandatory: bool) -> None:
        """
        Publish one message (see L{frames}).

        @param properties: pika C{BasicProperties} with their encoding in an
            C{encoded} attribute (the publisher's shared properties).
        """
        data, count = self.frames(exchange, routing_key, body, properties, mandatory)
        self._send(data, count)

    def acks(self, delivery_tags: Sequence[int], multiple: bool = False) -> None:
        """
        Acknowledge deliveries of this channel (C{basic.ack}), one frame per
        tag, all in one write.

        @param multiple: sets the C{multiple} bit of every frame.
        """
        head, end, pack = self._ack_head, _FRAME_END, _ACK_ARGUMENTS
        data = b"".join([head + pack(tag, multiple) + end for tag in delivery_tags])
        self._send(data, len(delivery_tags))

    def _send(self, data: bytes, frames: int) -> None:
        # Counted in pika's statistics as its own methods count them.
        connection = self._connection
        connection.bytes_sent += len(data)
        connection.frames_sent += frames
        self._emit(data)


class _Content:
    """
    A delivery whose content is still arriving.
    """

    __slots__ = ("handle", "delivery_tag", "redelivered", "exchange", "routing_key", "content_type",
                 "remaining", "parts")

    def __init__(self, handle: Optional[DeliveryHandler], delivery_tag: int, redelivered: bool, exchange: str,
                 routing_key: str) -> None:
        self.handle = handle
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        self.content_type: Optional[str] = None
        self.remaining = -1
        self.parts: List[bytes] = []


class FrameReader:
    """
    Reads the frames that arrive for every message, ahead of pika: the
    C{basic.deliver} frames (method, content header, body) of the consumers
    and the publisher confirms (C{basic.ack}, C{basic.nack}) of the channels
    registered with L{consume} and L{confirm} go straight to their handlers;
    every other frame (channel 0, other methods, C{basic.return} and its
    content, heartbeats, frames of channels not registered) goes to pika's
    C{data_received}, in the order received: pika has handled every frame
    before a registered one is handed out. Only whole frames reach pika.

    This is the read half of the transport's fast path (see L{FrameWriter};
    whether it is taken is decided once per process by
    L{novasvc.transport.pika._internals.verdict}). It keeps pika's public
    C{bytes_received} and C{frames_received} counters as pika keeps them (its
    heartbeat checker reads C{bytes_received}). A frame that does not end
    with the frame-end octet turns the reader off for the connection: that
    frame and all later data go to pika, which closes the connection as it
    does for any malformed frame.

    @ivar broken: C{True} once a malformed frame turned the reader off.
    """

    def __init__(self, connection: Any, pass_on: Callable[[bytes], None]) -> None:
        """
        @param connection: pika's C{Connection} (for its counters).
        @param pass_on: pika's C{data_received}: takes the frames the reader
            does not handle.
        """
        self._connection = connection
        self._pass_on = pass_on
        self._buffer = b""
        self._consumers: Dict[int, Tuple[bytes, DeliveryHandler]] = {}
        self._confirms: Dict[int, ConfirmHandler] = {}
        self._content: Dict[int, _Content] = {}
        self._names: Dict[bytes, str] = {}
        self.broken = False

    def consume(self, channel_number: int, consumer_tag: str, handle: DeliveryHandler) -> None:
        """
        Hand the deliveries of C{consumer_tag} on channel C{channel_number}
        to C{handle} (deliveries of another consumer tag go to pika).
        """
        self._consumers[channel_number] = (consumer_tag.encode("utf-8"), handle)

    def confirm(self, channel_number: int, handle: ConfirmHandler) -> None:
        """
        Hand the publisher confirms of channel C{channel_number} to
        C{handle}.
        """
        self._confirms[channel_number] = handle

    def forget(self, channel_number: int) -> None:
        """
        Stop handling channel C{channel_number} (closed, or no longer
        consuming): its later frames go to pika, and the content of a
        delivery still arriving is read and dropped (the broker puts an
        unsettled delivery back on its queue when the channel closes).
        """
        self._consumers.pop(channel_number, None)
        self._confirms.pop(channel_number, None)
        content = self._content.get(channel_number)
        if content is not None:
            content.handle = None

    def data_received(self, data: bytes) -> None:
        """
        Read the frames in C{data} (and in what an earlier call left
        incomplete).
        """
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if self.broken:
            self._pass_on(data)
            return
        size = len(data)
        position = passed = handled = frames = 0
        consumers, confirms, content, pass_on = self._consumers, self._confirms, self._content, self._pass_on
        try:
            while size - position > 7:
                kind, channel, length = _READ_HEAD(data, position)
                start = position + 7
                end = start + length
                if end >= size:
                    break
                if data[end] != _END:
                    self.broken = True
                    break
                following = end + 1
                taken: Any = None
                if kind == 1:
                    if channel in consumers or channel in confirms:
                        method = _READ_METHOD(data, start)[0]
                        if method == _DELIVER:
                            consumer = consumers.get(channel)
                            if consumer is not None:
                                taken = self._deliver(data, start + 4, consumer)
                        elif method in _CONFIRMS:
                            taken = confirms.get(channel)
                elif kind == 2 or kind == 3:
                    taken = content.get(channel)
                    if taken is not None and kind == 3 and taken.remaining < 0:
                        # A body before its header: pika's to refuse.
                        taken = None
                if taken is None:
                    position = following
                    continue
                # A frame the reader takes: what pika is to have before it is
                # passed on first.
                if passed < position:
                    pass_on(data[passed:position])
                handled += following - position
                frames += 1
                position = passed = following
                if kind == 1:
                    if method == _DELIVER:
                        # Most often its content header and its one body
                        # frame are here already: hand it out at once.
                        whole = self._whole(data, following, size, channel, taken)
                        if whole:
                            handled += whole - position
                            frames += 2 if taken.parts[0] else 1
                            position = passed = whole
                            taken.handle(taken.delivery_tag, taken.parts[0], taken.content_type, taken.exchange,
                                         taken.routing_key, taken.redelivered)
                        else:
                            content[channel] = taken
                    else:
                        tag, bits = _READ_TAG(data, start + 4)
                        taken(tag, bool(bits & 1), method == _ACK)
                    continue
                delivery = taken
                if kind == 2:
                    body_size, flags = _READ_CONTENT(data, start)
                    if flags & _CONTENT_TYPE_FLAG:
                        delivery.content_type = self._name(data, start + 14)
                    delivery.remaining = body_size
                else:
                    delivery.parts.append(data[start:end])
                    delivery.remaining -= length
                if delivery.remaining <= 0:
                    del content[channel]
                    handle = delivery.handle
                    if handle is not None:
                        parts = delivery.parts
                        body = parts[0] if len(parts) == 1 else b"".join(parts)
                        handle(delivery.delivery_tag, body, delivery.content_type, delivery.exchange,
                               delivery.routing_key, delivery.redelivered)
        finally:
            connection = self._connection
            connection.bytes_received += handled
            connection.frames_received += frames
        if self.broken:
            pass_on(data[passed:])
            return
        if passed < position:
            pass_on(data[passed:position])
        if position < size:
            self._buffer = data[position:]

    def _whole(self, data: bytes, position: int, size: int, channel: int, delivery: _Content) -> int:
        # When the content header of delivery at position, and its body in
        # one frame (or none, for an empty body), are both in data: read
        # them into delivery and return where the next frame starts, else 0.
        if size - position < 22:
            return 0
        kind, number, length = _READ_HEAD(data, position)
        end = position + 7 + length
        if kind != 2 or number != channel or end >= size or data[end] != _END:
            return 0
        body_size, flags = _READ_CONTENT(data, position + 7)
        if body_size:
            start = end + 1
            if size - start < 8:
                return 0
            kind, number, length = _READ_HEAD(data, start)
            following = start + 7 + length
            if kind != 3 or number != channel or length != body_size or following >= size \
                    or data[following] != _END:
                return 0
            delivery.parts.append(data[start + 7:following])
            end = following
        else:
            delivery.parts.append(b"")
        if flags & _CONTENT_TYPE_FLAG:
            delivery.content_type = self._name(data, position + 21)
        delivery.remaining = 0
        return end + 1

    def _deliver(self, data: bytes, offset: int, consumer: Tuple[bytes, DeliveryHandler]) -> Optional[_Content]:
        # The arguments of basic.deliver at offset: its delivery, waiting for
        # content, or None for another consumer tag (pika's to handle).
        length = data[offset]
        offset += 1
        if data[offset:offset + length] != consumer[0]:
            return None
        offset += length
        tag, redelivered = _READ_TAG(data, offset)
        offset += 9
        exchange = self._name(data, offset)
        routing_key = self._name(data, offset + 1 + data[offset])
        return _Content(consumer[1], tag, bool(redelivered & 1), exchange, routing_key)

    def _name(self, data: bytes, offset: int) -> Any:
        # The short string at offset, decoded as pika decodes it (UTF-8, or
        # the bytes themselves when they are not UTF-8); the few names a
        # connection sees are remembered.
        raw = data[offset + 1:offset + 1 + data[offset]]
        name = self._names.get(raw)
        if name is None:
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw
            if len(self._names) >= _NAMES_MAX:
                self._names.clear()
            self._names[raw] = name
        return name
