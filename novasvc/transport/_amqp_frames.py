# -*- test-case-name: tests.test_transport_amqp -*-
"""
AMQP frames for the per-message methods, written straight to the Twisted
transport under pika's connection: see L{FrameWriter}.
"""

import struct
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from pika import frame, spec

_FRAME_HEAD = struct.Struct(">BHI").pack
_CONTENT_HEAD = struct.Struct(">HxxQ").pack
_METHOD_ID = struct.Struct(">I").pack
_ACK_ARGUMENTS = struct.Struct(">Q?").pack
_FRAME_END = b"\xce"
_FRAME_OVERHEAD = spec.FRAME_HEADER_SIZE + spec.FRAME_END_SIZE
_METHODS_MAX = 1024


class FrameWriter:
    """
    Writes the frames of the two methods sent for every message on one
    channel, byte for byte as pika makes them: C{basic.publish} (method,
    content header, body frames of at most the connection's frame size) with
    what repeats between messages made once (the method frame of an exchange
    and routing key, the encoded properties), and C{basic.ack}; the frames of
    one call go to the socket in one write instead of one per frame.

    This is the transport's fast path; whether it is taken is decided once
    per process by L{novasvc.transport._pika_internals.verdict} (otherwise
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
