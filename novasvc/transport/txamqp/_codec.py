# -*- test-case-name: tests.test_transport_txamqp_spec -*-
"""
AMQP 0-9-1 frames for L{novasvc.transport.txamqp}: the machine description
txamqp needs (L{load_spec}, from novasvc's own C{amqp0-9-1.xml}) and the
encoding and decoding of frames with it.

txamqp (0.8) builds its methods, channels and dispatch from a spec file,
which it does not ship; novasvc ships one with the ids, names and field types
only. txamqp's own codec cannot be used with RabbitMQ as it is: its field
tables know strings and 32-bit integers only (the C{capabilities} client
property needs a nested table of booleans, and a dead-lettered message's
C{x-death} header holds arrays and timestamps), it counts the length of a
short string in characters rather than bytes, and it turns a message body
that happens to be valid UTF-8 into C{str}. So the frames are encoded and
decoded here, into and from txamqp's own C{Frame}, C{Method}, C{Header},
C{Body} and C{Heartbeat} objects, and txamqp does the rest (handshake,
channels, synchronous methods, heartbeats, dispatch).

Field tables are encoded as RabbitMQ and pika do: C{bool} C{t}, C{int} C{I}
(C{l} beyond 32 bits), C{float} C{d}, C{str} C{S}, C{bytes} C{x},
C{Decimal} C{D}, C{datetime} C{T}, C{dict} C{F}, C{list}/C{tuple} C{A},
C{None} C{V}; every type RabbitMQ sends is decoded.
"""

import calendar
import datetime
import decimal
import functools
import struct
from importlib import resources
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from txamqp import spec as txamqp_spec
from txamqp.connection import Body, Frame, Header, Heartbeat, Method

#: The spec file, package data of C{novasvc.transport}.
SPEC_FILE = "amqp0-9-1.xml"
#: What a client sends first to speak AMQP 0-9-1.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
_FRAME_END_BYTE = b"\xce"
_FRAME_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">HHQ")
_IDS = struct.Struct(">HH")
#: Bytes a frame adds to its payload (type, channel, size, frame end).
FRAME_OVERHEAD = 8


class ProtocolError(ValueError):
    """
    Bytes from the peer that are not AMQP 0-9-1 as novasvc knows it (a bad
    frame end, an unknown class or method id, a truncated field, an unknown
    field table type). The connection cannot go on after one.
    """


@functools.lru_cache(maxsize=None)
def load_spec() -> Any:
    """
    @return: txamqp's C{Spec} of novasvc's C{amqp0-9-1.xml}, loaded once.
    """
    data = resources.files("novasvc.transport.txamqp").joinpath(SPEC_FILE).read_bytes()
    return txamqp_spec.load_string(data, specfilename=SPEC_FILE)


# -- field values ------------------------------------------------------------------


def _text(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"expected str or bytes, not {type(value).__name__}")


def encode_shortstr(value: Any) -> bytes:
    """
    @raise ValueError: for more than 255 bytes (in UTF-8).
    """
    data = _text(value)
    if len(data) > 255:
        raise ValueError(f"an AMQP short string holds at most 255 bytes, not {len(data)}")
    return bytes((len(data),)) + data


def encode_longstr(value: Any) -> bytes:
    data = _text(value)
    return struct.pack(">I", len(data)) + data


def encode_table(table: Optional[Mapping[str, Any]]) -> bytes:
    """
    @param table: a field table (C{None} is the empty one).
    @raise TypeError: for a value of a type a field table cannot hold.
    """
    data = b"".join(encode_shortstr(key) + encode_value(value) for key, value in (table or {}).items())
    return struct.pack(">I", len(data)) + data


def encode_value(value: Any) -> bytes:
    """
    @return: one field value, its type octet first.
    @raise TypeError: for a type a field table cannot hold.
    """
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, int):
        if -2 ** 31 <= value < 2 ** 31:
            return b"I" + struct.pack(">i", value)
        return b"l" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"d" + struct.pack(">d", value)
    if isinstance(value, str):
        return b"S" + encode_longstr(value)
    if isinstance(value, (bytes, bytearray)):
        return b"x" + encode_longstr(value)
    if isinstance(value, decimal.Decimal):
        exponent = value.normalize().as_tuple().exponent
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return b"D" + struct.pack(">Bi", scale, int(value.scaleb(scale)))
    if isinstance(value, datetime.datetime):
        return b"T" + struct.pack(">Q", calendar.timegm(value.utctimetuple()))
    if isinstance(value, Mapping):
        return b"F" + encode_table(value)
    if isinstance(value, (list, tuple)):
        data = b"".join(encode_value(item) for item in value)
        return b"A" + struct.pack(">I", len(data)) + data
    if value is None:
        return b"V"
    raise TypeError(f"an AMQP field table cannot hold a {type(value).__name__}")


def _unpack(fmt: str) -> Callable[[bytes, int], Tuple[Any, int]]:
    layout = struct.Struct(fmt)

    def decode(data: bytes, offset: int) -> Tuple[Any, int]:
        return layout.unpack_from(data, offset)[0], offset + layout.size

    return decode


def _decode_longbytes(data: bytes, offset: int) -> Tuple[bytes, int]:
    size, = struct.unpack_from(">I", data, offset)
    end = offset + 4 + size
    if end > len(data):
        raise ProtocolError("a long string runs past the end of its frame")
    return data[offset + 4:end], end


def _decode_longstr(data: bytes, offset: int) -> Tuple[Any, int]:
    raw, offset = _decode_longbytes(data, offset)
    try:
        return raw.decode("utf-8"), offset
    except UnicodeDecodeError:
        return raw, offset


def _decode_shortstr(data: bytes, offset: int) -> Tuple[str, int]:
    size = data[offset]
    end = offset + 1 + size
    if end > len(data):
        raise ProtocolError("a short string runs past the end of its frame")
    return data[offset + 1:end].decode("utf-8", "surrogateescape"), end


def _decode_bool(data: bytes, offset: int) -> Tuple[bool, int]:
    return data[offset] != 0, offset + 1


def _decode_decimal(data: bytes, offset: int) -> Tuple[decimal.Decimal, int]:
    scale, raw = struct.unpack_from(">Bi", data, offset)
    return decimal.Decimal(raw).scaleb(-scale), offset + 5


def _decode_timestamp(data: bytes, offset: int) -> Tuple[datetime.datetime, int]:
    seconds, = struct.unpack_from(">Q", data, offset)
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc), offset + 8


def _decode_array(data: bytes, offset: int) -> Tuple[List[Any], int]:
    raw, end = _decode_longbytes(data, offset)
    items: List[Any] = []
    position = 0
    while position < len(raw):
        item, position = decode_value(raw, position)
        items.append(item)
    return items, end


def decode_table(data: bytes, offset: int) -> Tuple[Dict[str, Any], int]:
    """
    @return: the field table at C{offset} and the offset after it.
    @raise ProtocolError: for an unknown value type or a truncated table.
    """
    raw, end = _decode_longbytes(data, offset)
    table: Dict[str, Any] = {}
    position = 0
    while position < len(raw):
        key, position = _decode_shortstr(raw, position)
        table[key], position = decode_value(raw, position)
    return table, end


_VALUE_DECODERS: Dict[int, Callable[[bytes, int], Tuple[Any, int]]] = {
    ord("t"): _decode_bool,
    ord("b"): _unpack(">b"),
    ord("B"): _unpack(">B"),
    ord("s"): _unpack(">h"),
    ord("U"): _unpack(">h"),
    ord("u"): _unpack(">H"),
    ord("I"): _unpack(">i"),
    ord("i"): _unpack(">I"),
    ord("l"): _unpack(">q"),
    ord("L"): _unpack(">q"),
    ord("f"): _unpack(">f"),
    ord("d"): _unpack(">d"),
    ord("D"): _decode_decimal,
    ord("S"): _decode_longstr,
    ord("x"): _decode_longbytes,
    ord("A"): _decode_array,
    ord("T"): _decode_timestamp,
    ord("F"): decode_table,
    ord("V"): lambda data, offset: (None, offset),
}


def decode_value(data: bytes, offset: int) -> Tuple[Any, int]:
    """
    @return: the field value at C{offset} (its type octet first) and the
        offset after it.
    @raise ProtocolError: for an unknown type or a truncated value.
    """
    try:
        decoder = _VALUE_DECODERS[data[offset]]
    except KeyError:
        raise ProtocolError(f"unknown field value type {chr(data[offset])!r}") from None
    except IndexError:
        raise ProtocolError("a field table runs past the end of its frame") from None
    return decoder(data, offset + 1)


#: Spec type -> encoder, for the types of method fields and properties.
_ENCODERS: Dict[str, Callable[[Any], bytes]] = {
    "octet": struct.Struct(">B").pack,
    "short": struct.Struct(">H").pack,
    "long": struct.Struct(">I").pack,
    "longlong": struct.Struct(">Q").pack,
    "timestamp": lambda value: struct.pack(">Q", value if isinstance(value, int)
                                           else calendar.timegm(value.utctimetuple())),
    "shortstr": encode_shortstr,
    "longstr": encode_longstr,
    "table": encode_table,
}
_DECODERS: Dict[str, Callable[[bytes, int], Tuple[Any, int]]] = {
    "octet": _unpack(">B"),
    "short": _unpack(">H"),
    "long": _unpack(">I"),
    "longlong": _unpack(">Q"),
    "timestamp": _unpack(">Q"),
    "shortstr": _decode_shortstr,
    "longstr": _decode_longstr,
    "table": decode_table,
}


# -- methods and content headers ------------------------------------------------------


def encode_arguments(fields: Sequence[Any], values: Sequence[Any]) -> bytes:
    """
    @param fields: txamqp C{Field}s (a method's, in order).
    @param values: one value per field; consecutive C{bit} fields share
        octets, the first in the lowest bit.
    @raise ValueError: for a short string over 255 bytes.
    @raise TypeError: for a value of the wrong type.
    """
    out: List[bytes] = []
    bits = count = 0
    for field, value in zip(fields, values):
        if field.type == "bit":
            if value:
                bits |= 1 << count
            count += 1
            if count == 8:
                out.append(bytes((bits,)))
                bits = count = 0
            continue
        if count:
            out.append(bytes((bits,)))
            bits = count = 0
        try:
            out.append(_ENCODERS[field.type](value))
        except struct.error as e:
            raise ValueError(f"{field.name}: {e}") from None
    if count:
        out.append(bytes((bits,)))
    return b"".join(out)


def encode_method(method: Any, values: Sequence[Any]) -> bytes:
    """
    @param method: a txamqp C{Method} of L{load_spec}.
    @return: the payload of its method frame.
    """
    return _IDS.pack(method.klass.id, method.id) + encode_arguments(method.fields, values)


def decode_method(spec: Any, payload: bytes) -> Method:
    """
    @return: txamqp's C{Method} payload for a method frame's payload.
    @raise ProtocolError: for an unknown class or method, or a truncated
        argument.
    """
    try:
        class_id, method_id = _IDS.unpack_from(payload, 0)
        method = spec.classes.byid[class_id].methods.byid[method_id]
    except (KeyError, struct.error):
        raise ProtocolError(f"unknown AMQP method in a frame starting {payload[:4]!r}") from None
    values: List[Any] = []
    offset, bits, count = 4, 0, 8
    try:
        for field in method.fields:
            if field.type == "bit":
                if count == 8:
                    bits, offset, count = payload[offset], offset + 1, 0
                values.append(bool(bits >> count & 1))
                count += 1
                continue
            count = 8
            value, offset = _DECODERS[field.type](payload, offset)
            values.append(value)
    except (IndexError, struct.error):
        raise ProtocolError(f"truncated arguments of {method.klass.name}.{method.name}") from None
    return Method(method, *values)


def encode_properties(klass: Any, properties: Mapping[str, Any]) -> bytes:
    """
    @param klass: a txamqp C{Class} with properties (C{basic}).
    @param properties: values by the spec's field name (C{"content-type"});
        C{None} or absent ones are not sent.
    @return: the property flags and list, as a content header carries them
        after the class id, weight and body size (what pika's
        C{BasicProperties.encode} makes).
    """
    words: List[int] = []
    values: List[bytes] = []
    word, bit = 0, 15
    for field in klass.fields:
        if bit == 0:
            words.append(word | 1)
            word, bit = 0, 15
        value = properties.get(field.name)
        if value is not None:
            word |= 1 << bit
            if field.type == "bit":
                raise TypeError("bit properties are not supported")
            values.append(_ENCODERS[field.type](value))
        bit -= 1
    words.append(word)
    return struct.pack(f">{len(words)}H", *words) + b"".join(values)


def decode_header(spec: Any, payload: bytes) -> Header:
    """
    @return: txamqp's C{Header} payload (properties by the spec's field
        names) for a content header frame's payload.
    @raise ProtocolError: for an unknown class or truncated properties.
    """
    try:
        class_id, weight, size = _CONTENT_HEAD.unpack_from(payload, 0)
        klass = spec.classes.byid[class_id]
        offset, present = 12, []
        while True:
            flags, = struct.unpack_from(">H", payload, offset)
            offset += 2
            present.extend(bool(flags >> bit & 1) for bit in range(15, 0, -1))
            if not flags & 1:
                break
        properties: Dict[str, Any] = {}
        for field, given in zip(klass.fields, present):
            if given:
                properties[str(field.name)], offset = _DECODERS[field.type](payload, offset)
    except (KeyError, IndexError, struct.error):
        raise ProtocolError("a bad content header") from None
    return Header(klass, weight, size, **properties)


# -- frames ---------------------------------------------------------------------------------


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """
    @return: one whole frame.
    """
    return _FRAME_HEAD.pack(frame_type, channel, len(payload)) + payload + _FRAME_END_BYTE


def pack_frame(item: Frame) -> bytes:
    """
    @param item: a txamqp C{Frame} (method, content header, body or
        heartbeat).
    @return: its bytes.
    """
    payload = item.payload
    if isinstance(payload, Method):
        return frame(FRAME_METHOD, item.channel, encode_method(payload.method, payload.args))
    if isinstance(payload, Header):
        head = _CONTENT_HEAD.pack(payload.klass.id, payload.weight, payload.size)
        return frame(FRAME_HEADER, item.channel, head + encode_properties(payload.klass, payload.properties))
    if isinstance(payload, Body):
        return frame(FRAME_BODY, item.channel, _text(payload.content))
    if isinstance(payload, Heartbeat):
        return frame(FRAME_HEARTBEAT, item.channel, b"")
    raise TypeError(f"cannot send a {type(payload).__name__} frame")


def content_frames(channel: int, class_id: int, encoded_properties: bytes, body: bytes, frame_max: int) -> bytes:
    """
    @param encoded_properties: from L{encode_properties} (or pika's).
    @param frame_max: the connection's largest frame in bytes (0: no
        limit).
    @return: the content header frame and the body frames of a message.
    """
    if type(body) is not bytes:
        raise TypeError(f"the body must be bytes, not {type(body).__name__}")
    size = len(body)
    parts = [frame(FRAME_HEADER, channel, _CONTENT_HEAD.pack(class_id, 0, size) + encoded_properties)]
    step = frame_max - FRAME_OVERHEAD if frame_max else size or 1
    for start in range(0, size, step):
        parts.append(frame(FRAME_BODY, channel, body[start:start + step] if size > step else body))
    return b"".join(parts)


class FrameReader:
    """
    Cuts the bytes a connection receives into frames, decoded to txamqp's
    C{Frame} objects.
    """

    def __init__(self, spec: Any) -> None:
        self._spec = spec
        self._buffer = b""

    def feed(self, data: bytes) -> List[Frame]:
        """
        @return: the frames completed by C{data}, in order (the rest is
            kept for the next call).
        @raise ProtocolError: for bytes that are not AMQP frames.
        """
        buffer = self._buffer + data if self._buffer else data
        frames: List[Frame] = []
        offset, end = 0, len(buffer)
        head = _FRAME_HEAD.unpack_from
        while end - offset >= FRAME_OVERHEAD:
            frame_type, channel, size = head(buffer, offset)
            stop = offset + 7 + size
            if stop >= end:
                break
            if buffer[stop] != FRAME_END:
                raise ProtocolError(f"frame end expected, got {buffer[stop]:#x}")
            frames.append(Frame(channel, self._decode(frame_type, buffer[offset + 7:stop])))
            offset = stop + 1
        self._buffer = buffer[offset:] if offset else buffer
        return frames

    def _decode(self, frame_type: int, payload: bytes) -> Any:
        if frame_type == FRAME_METHOD:
            return decode_method(self._spec, payload)
        if frame_type == FRAME_HEADER:
            return decode_header(self._spec, payload)
        if frame_type == FRAME_BODY:
            return Body(payload)
        if frame_type == FRAME_HEARTBEAT:
            return Heartbeat()
        raise ProtocolError(f"unknown frame type {frame_type}")
