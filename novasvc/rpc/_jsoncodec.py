# -*- test-case-name: tests.test_rpc_jsoncodec -*-
"""
The JSON codec of the wire format: the standard library's JSON, with a
fallback for the types oslo's C{jsonutils.to_primitive} handles (datetimes,
sets, UUIDs, bytes, mappings, iterables, objects with C{to_dict()}), calling
the C encoder and scanner directly when the interpreter has them (the hot
path encodes and decodes every message).

L{dumps} and L{loads} are public through L{novasvc.rpc.wire}.
"""

import datetime
import decimal
import enum
import json
import uuid
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = ["dumps", "loads", "encode", "encode_lenient", "decode"]


def _to_primitive(value: Any) -> Any:
    """
    The C{default} of the JSON encoder: turn what the standard library cannot
    encode into JSON values, as oslo_serialization's C{to_primitive}.

    @raise TypeError: for anything else.
    """
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, decimal.Decimal):
        return str(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable) and not isinstance(value, str):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _to_primitive_or_repr(value: Any) -> Any:
    try:
        return _to_primitive(value)
    except Exception:
        return repr(value)


def _encoder(default: Any) -> Any:
    """
    What C{json.JSONEncoder(default=default).encode} does (ASCII output,
    standard separators, circular structures refused), calling the C
    encoder directly when the interpreter has it: the hot path encodes two
    messages per call.
    """
    make = json.encoder.c_make_encoder
    if make is None:
        return json.JSONEncoder(default=default).encode

    def encode(value: Any) -> str:
        if type(value) is str:
            return encode_basestring_ascii(value)
        return "".join(make({}, default, encode_basestring_ascii, None, ": ", ", ", False, False, True)(value, 0))

    return encode


#: Encode to JSON text (ASCII), converting what the standard library cannot
#: encode as oslo's C{to_primitive} does: L{dumps} without the call around it,
#: for the hot path (same errors).
encode = _encoder(_to_primitive)
#: As L{encode}, but anything that cannot be converted is written as its
#: C{repr} (for failures, whose arguments may be anything).
encode_lenient = _encoder(_to_primitive_or_repr)


def dumps(value: Any) -> str:
    """
    @param value: JSON values, or types the fallback converts.
    @return: the JSON text (ASCII).
    @rtype: C{str}
    @raise TypeError: for a value that cannot be converted.
    @raise ValueError: for a circular structure.
    """
    return encode(value)


#: Decode JSON text (C{str} or UTF-8 C{bytes}): the standard library's
#: C{json.loads}, named here so callers use one JSON module.
loads = json.loads


def _decoder() -> Any:
    """
    What C{json.JSONDecoder().decode} does, calling the C scanner directly
    when the interpreter has it (leading and trailing whitespace allowed).
    """
    decoder = json.JSONDecoder()
    make = json.scanner.c_make_scanner
    if make is None:
        return decoder.decode
    scan = make(decoder)
    space = json.decoder.WHITESPACE.match

    def decode(text: str) -> Any:
        try:
            value, end = scan(text, space(text, 0).end())
        except StopIteration as e:
            raise json.JSONDecodeError("Expecting value", text, e.value) from None
        end = space(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
        return value

    return decode


#: Decode JSON text (C{str} only): what C{loads} does, without its checks;
#: C{json.JSONDecodeError} (a C{ValueError}) when the text is not JSON.
decode = _decoder()
