# -*- test-case-name: tests.test_rpc_jsoncodec -*-
"""
The JSON codec of the wire format: JSON text that oslo.messaging peers read,
and the values they send read back exactly as oslo's own C{json} reads them.

One path: orjson (a dependency of novasvc) writes and reads every message it
handles exactly as the standard library does, and the standard library's
public C{json} module takes the rest, as oslo_serialization's
C{jsonutils.dumps} would (ASCII output, C{", "} and C{": "} separators, the
conversions of C{jsonutils.to_primitive}: datetimes, sets, UUIDs, bytes,
mappings, iterables, objects with C{to_dict()}). What goes to the standard
library, and why:

  - encoding: orjson writes a value made only of C{dict}, C{list},
    C{tuple}, C{str}, C{int}, C{bool}, C{None} and finite C{float} (exact
    types, nested at most 250 deep), without spaces. The standard library
    writes the whole value when it holds any other type (orjson would write
    a datetime or a dataclass its own way, and knows nothing of
    C{to_primitive}), a C{NaN} or infinity (orjson writes C{null}, oslo
    C{NaN}/C{Infinity}), and when orjson refuses it or writes something
    else: an C{int} beyond 64 bits, a non-C{str} key (oslo writes
    C{{"1": ...}}), a lone surrogate, a circular structure, or output that
    is not ASCII (oslo escapes it);
  - decoding: what orjson refuses (C{NaN}, C{Infinity}, lone surrogate
    escapes, nesting beyond 1024, UTF-16/32 or a UTF-8 BOM in bytes...) is
    decoded by the standard library, which gives its own value or raises
    its own error; so is text holding a run of 19 or more digits, since
    orjson reads an integer beyond 64 bits as a C{float} (a silent change
    of value).

The values are the same whoever wrote them; float text may differ (C{1e-7}
against C{1e-07}), never the value. The figures are in C{bench/RESULTS.md}
("One JSON path"); C{bench/jsoncodec.py} measures them.

L{dumps} and L{loads} are public through L{novasvc.rpc.wire}.
"""

import datetime
import decimal
import enum
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Union

import orjson

__all__ = ["dumps", "loads", "encode", "encode_lenient", "decode", "parse_raw", "string_bytes"]


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


#: The standard library's encoders, as C{jsonutils.dumps} (circular
#: structures refused, C{NaN} written as such).
_stdlib_encode: Callable[[Any], str] = json.JSONEncoder(default=_to_primitive).encode
_stdlib_encode_lenient: Callable[[Any], str] = json.JSONEncoder(default=_to_primitive_or_repr).encode
#: The standard library's decoder for C{str} (as C{json.loads}, which also
#: takes C{bytes}).
_stdlib_decode: Callable[[str], Any] = json.JSONDecoder().decode

_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_EncodeError = orjson.JSONEncodeError
_DecodeError = orjson.JSONDecodeError

#: How deep orjson is asked to nest (it refuses beyond 254).
_MAX_DEPTH = 250
_isfinite = math.isfinite
_LEAVES = frozenset((str, int, bool, type(None)))
_CONTAINERS = frozenset((dict, list, tuple))


def _plain(value: Any, depth: int = 0) -> bool:
    """
    @return: C{True} when C{value} is made only of C{dict}, C{list},
        C{tuple}, C{str}, C{int}, C{bool}, C{None} and finite C{float}
        (exact types), nested at most L{_MAX_DEPTH} deep: what orjson writes
        as the standard library does (or refuses).
    """
    kind = type(value)
    if kind is dict:
        items: Iterable[Any] = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind in _LEAVES or (kind is float and _isfinite(value))
    if depth >= _MAX_DEPTH:
        return False
    depth += 1
    for item in items:
        kind = type(item)
        if kind in _LEAVES:  # one set lookup: the values most messages hold
            continue
        if kind is float:
            if not _isfinite(item):
                return False
        elif kind in _CONTAINERS:
            if not _plain(item, depth):
                return False
        else:
            return False
    return True


#: Maps each byte to C{0} for a digit and a space otherwise, to find long
#: runs of digits with C-speed C{bytes} methods.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
#: The shortest run of digits that may be an integer beyond 64 bits.
_LONG_NUMBER = b"0" * 19


def _encoder(fallback: Callable[[Any], str]) -> Callable[[Any], str]:
    """
    @param fallback: the standard library's encoder, for what orjson does
        not write as it.
    @return: the encoder (see the module docstring).
    """

    def encode(value: Any) -> str:
        if _plain(value):
            try:
                data = _orjson_dumps(value)
            except _EncodeError:
                return fallback(value)
            if data.isascii():
                return data.decode("ascii")
        return fallback(value)

    return encode


def _reader(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """
    @param fallback: the standard library's decoder, for what orjson does
        not read as it.
    @return: the decoder (see the module docstring).
    """

    def read(text: Union[str, bytes]) -> Any:
        try:
            value = _orjson_loads(text)
        except _DecodeError:
            return fallback(text)
        data = text.encode("utf-8") if type(text) is str else text
        if _LONG_NUMBER in data.translate(_DIGITS):
            return fallback(text)
        return value

    return read


#: Encode to JSON text (ASCII), converting what JSON cannot hold as oslo's
#: C{to_primitive} does: L{dumps} without the call around it, for the hot
#: path (same errors).
encode: Callable[[Any], str] = _encoder(_stdlib_encode)
#: As L{encode}, but anything that cannot be converted is written as its
#: C{repr} (for failures, whose arguments may be anything).
encode_lenient: Callable[[Any], str] = _encoder(_stdlib_encode_lenient)
#: Decode JSON text (C{str} only): what L{loads} does, for the hot path;
#: C{json.JSONDecodeError} (a C{ValueError}) when the text is not JSON.
decode: Callable[[str], Any] = _reader(_stdlib_decode)
#: Decode JSON text (C{str}, or C{bytes} in UTF-8, -16 or -32), as the
#: standard library's C{json.loads} (same values, same errors).
loads: Callable[[Union[str, bytes]], Any] = _reader(json.loads)
#: orjson's own parser (C{str} or UTF-8 C{bytes}; raises
#: C{orjson.JSONDecodeError}, a C{ValueError}), without L{decode}'s guards:
#: only for reading values whose exactness does not matter, such as the
#: envelope around the message (L{novasvc.rpc._envelope}).
parse_raw: Callable[[Union[str, bytes]], Any] = _orjson_loads
#: orjson's own encoder, for a C{str}: its JSON string as UTF-8 C{bytes},
#: only C{"}, C{\\} and control characters escaped (so for ASCII text
#: without DEL, byte for byte what the standard library writes).
string_bytes: Callable[[str], bytes] = _orjson_dumps


def dumps(value: Any) -> str:
    """
    @param value: JSON values, or types the fallback converts.
    @return: the JSON text (ASCII).
    @rtype: C{str}
    @raise TypeError: for a value that cannot be converted.
    @raise ValueError: for a circular structure.
    """
    return encode(value)
