# -*- test-case-name: tests.test_rpc_jsoncodec -*-
"""
The JSON codec of the wire format: JSON text that oslo.messaging peers read,
and the values they send read back exactly as oslo's own C{json} reads them.

Two paths, the same values on the wire:

  - B{stdlib}: the standard library's JSON (ASCII output, C{", "} and
    C{": "} separators, as oslo_serialization's C{jsonutils.dumps}), with a
    fallback for the types oslo's C{jsonutils.to_primitive} handles
    (datetimes, sets, UUIDs, bytes, mappings, iterables, objects with
    C{to_dict()}); it calls the C encoder and scanner directly when the
    interpreter has them (the hot path encodes and decodes every message).
  - B{orjson} (a dependency of novasvc), used when importable: the same JSON
    values, written without spaces. It only ever handles what it reads and
    writes exactly as the stdlib path does; everything else goes to the
    stdlib path, so the values, the errors and the oslo-compatible
    extensions stay the stdlib's:

      - encoding: a value made only of C{dict}, C{list}, C{tuple}, C{str},
        C{int}, C{bool}, C{None} and finite C{float} (exact types, nested
        at most 250 deep) is written by orjson; any other type (datetimes,
        sets, subclasses, objects...: C{to_primitive}'s conversions), a
        C{NaN} or infinity (orjson would write C{null}, the stdlib and oslo
        write C{NaN}/C{Infinity}), an C{int} beyond 64 bits, a non-C{str}
        key (the stdlib writes C{{"1": ...}}), a lone surrogate, a circular
        structure, or output that is not ASCII (the stdlib escapes it, as
        oslo) is written by the stdlib path;
      - decoding: what orjson refuses (C{NaN}, C{Infinity}, lone surrogate
        escapes, nesting beyond 1024, UTF-16/32 or a UTF-8 BOM in bytes...)
        is decoded by the stdlib path, which gives its own value or raises
        its own error; text holding a run of 19 or more digits is
        decoded by the stdlib path too, since orjson reads an integer beyond
        64 bits as a C{float} (a silent change of value).

    Float text may differ (C{1e-07} against C{1e-7}), never the value.

Measured with C{bench/jsoncodec.py} (CPU microseconds per operation,
CPython 3.11.7, orjson 3.13.0, on the loaded 2-core bench machine: median of
3 runs, each the best of 7 repeats of 20,000): a call request with a 26-key
context and a 100-byte argument (1,355 bytes in its envelope), its reply
(303 bytes); the whole wire step includes the envelope (the second JSON
level, written and read by the stdlib in both paths) and the checks of
L{novasvc.rpc.wire}:

  ===============================================  ======  ======
  per operation                                    stdlib  orjson
  ===============================================  ======  ======
  encode request (inner JSON)                       4.49    1.60
  decode request (inner JSON)                       3.16    2.27
  encode reply (inner JSON)                         1.16    0.35
  decode reply (inner JSON)                         0.91    0.76
  request: wire.encode_request + decode_request    17.06   12.83
  reply: wire.encode_reply + decode_reply           5.00    3.87
  ===============================================  ======  ======

About 5 µs of CPU less per call, split between client and server; the
guards above cost about 1 µs of each orjson encode (the type walk) and
decode (the digit scan).

The path is chosen once, at import: L{BACKEND_VARIABLE} (C{NOVASVC_JSON})
set to C{stdlib} forces the stdlib path (CI runs the codec, RPC and interop
suites that way: C{tox -e json-stdlib}); C{orjson} requires orjson; unset,
empty or C{auto} takes orjson when it is importable. L{BACKEND} names the
path taken.

L{dumps} and L{loads} are public through L{novasvc.rpc.wire}.
"""

import datetime
import decimal
import enum
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any, Callable, Optional, Union

from novasvc._text import quote

__all__ = ["BACKEND", "BACKEND_VARIABLE", "dumps", "loads", "encode", "encode_lenient", "decode"]

#: The environment variable choosing the path: C{stdlib}, C{orjson}, or
#: C{auto} (the default: orjson when importable).
BACKEND_VARIABLE = "NOVASVC_JSON"


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


# -- the stdlib path ----------------------------------------------------------


def _encoder(default: Any) -> Callable[[Any], str]:
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


def _decoder() -> Callable[[str], Any]:
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


# -- the orjson path ----------------------------------------------------------

#: How deep the orjson path nests (orjson refuses beyond 254).
_MAX_DEPTH = 250
_isfinite = math.isfinite


def _plain(value: Any, depth: int = 0) -> bool:
    """
    @return: C{True} when C{value} is made only of C{dict}, C{list},
        C{tuple}, C{str}, C{int}, C{bool}, C{None} and finite C{float}
        (exact types), nested at most L{_MAX_DEPTH} deep: what orjson writes
        as the stdlib does.
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


_LEAVES = frozenset((str, int, bool, type(None)))
_CONTAINERS = frozenset((dict, list, tuple))


#: Maps each byte to C{0} for a digit and a space otherwise, to find long
#: runs of digits with C-speed C{bytes} methods.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
#: The shortest run of digits that may be an integer beyond 64 bits.
_LONG_NUMBER = b"0" * 19


def _orjson_codec(orjson: Any, stdlib: "_Codec") -> "_Codec":
    """
    @param orjson: the C{orjson} module.
    @param stdlib: the stdlib path, for what orjson does not handle exactly
        as it.
    @return: the orjson path (see the module docstring).
    """
    dumps, parse, refused = orjson.dumps, orjson.loads, (orjson.JSONEncodeError, orjson.JSONDecodeError)

    def encoder(fallback: Callable[[Any], str]) -> Callable[[Any], str]:
        def encode(value: Any) -> str:
            if _plain(value):
                try:
                    data = dumps(value)
                except refused:
                    return fallback(value)
                if data.isascii():
                    return data.decode("ascii")
            return fallback(value)

        return encode

    def reader(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def read(text: Union[str, bytes]) -> Any:
            try:
                value = parse(text)
            except refused:
                return fallback(text)
            data = text.encode("utf-8") if type(text) is str else text
            if _LONG_NUMBER in data.translate(_DIGITS):
                return fallback(text)
            return value

        return read

    return _Codec("orjson", encoder(stdlib.encode), encoder(stdlib.encode_lenient), reader(stdlib.decode),
                  reader(stdlib.loads), parse, dumps)


# -- choosing -----------------------------------------------------------------


class _Codec:
    """
    One path's functions (see the module-level names of the same names).

    @ivar name: C{"stdlib"} or C{"orjson"}.
    @ivar parse_raw: orjson's own C{loads} (no guard, no fallback), or
        C{None} on the stdlib path.
    @ivar string_bytes: orjson's own C{dumps}, or C{None} on the stdlib
        path.
    """

    def __init__(self, name: str, encode: Callable[[Any], str], encode_lenient: Callable[[Any], str],
                 decode: Callable[[str], Any], loads: Callable[[Union[str, bytes]], Any],
                 parse_raw: Optional[Callable[[Union[str, bytes]], Any]] = None,
                 string_bytes: Optional[Callable[[str], bytes]] = None) -> None:
        self.name = name
        self.encode = encode
        self.encode_lenient = encode_lenient
        self.decode = decode
        self.loads = loads
        self.parse_raw = parse_raw
        self.string_bytes = string_bytes


def _stdlib_codec() -> _Codec:
    return _Codec("stdlib", _encoder(_to_primitive), _encoder(_to_primitive_or_repr), _decoder(), json.loads)


def _import_orjson() -> Optional[Any]:
    try:
        import orjson
    except ImportError:
        return None
    return orjson


def _choose(environ: Mapping[str, str], import_orjson: Callable[[], Optional[Any]] = _import_orjson) -> _Codec:
    """
    @param environ: the environment, for L{BACKEND_VARIABLE}.
    @param import_orjson: returns the C{orjson} module, or C{None} when it
        is not installed.
    @return: the path L{BACKEND_VARIABLE} asks for.
    @raise ValueError: when L{BACKEND_VARIABLE} names no path.
    @raise ImportError: when it asks for orjson and orjson is not installed.
    """
    wanted = environ.get(BACKEND_VARIABLE, "").strip().lower() or "auto"
    if wanted not in ("auto", "orjson", "stdlib"):
        raise ValueError(f"{BACKEND_VARIABLE} is {quote(wanted)}: expected auto, orjson or stdlib")
    stdlib = _stdlib_codec()
    if wanted == "stdlib":
        return stdlib
    orjson = import_orjson()
    if orjson is None:
        if wanted == "orjson":
            raise ImportError(f"{BACKEND_VARIABLE}=orjson but orjson is not installed (pip install orjson)")
        return stdlib
    return _orjson_codec(orjson, stdlib)


_codec = _choose(os.environ)

#: The path taken: C{"orjson"} or C{"stdlib"}.
BACKEND: str = _codec.name

#: Encode to JSON text (ASCII), converting what JSON cannot hold as oslo's
#: C{to_primitive} does: L{dumps} without the call around it, for the hot
#: path (same errors).
encode: Callable[[Any], str] = _codec.encode
#: As L{encode}, but anything that cannot be converted is written as its
#: C{repr} (for failures, whose arguments may be anything).
encode_lenient: Callable[[Any], str] = _codec.encode_lenient
#: Decode JSON text (C{str} only): what L{loads} does, for the hot path;
#: C{json.JSONDecodeError} (a C{ValueError}) when the text is not JSON.
decode: Callable[[str], Any] = _codec.decode
#: Decode JSON text (C{str}, or C{bytes} in UTF-8, -16 or -32), as the
#: standard library's C{json.loads} (same values, same errors).
loads: Callable[[Union[str, bytes]], Any] = _codec.loads
#: On the orjson path, orjson's own parser (C{str} or UTF-8 C{bytes}; raises
#: C{orjson.JSONDecodeError}, a C{ValueError}), without L{decode}'s guards:
#: only for reading values whose exactness does not matter, such as the
#: envelope around the message (L{novasvc.rpc._envelope}). C{None} on the
#: stdlib path.
parse_raw: Optional[Callable[[Union[str, bytes]], Any]] = _codec.parse_raw
#: On the orjson path, orjson's own encoder, for a C{str}: its JSON string
#: as UTF-8 C{bytes}, only C{"}, C{\\} and control characters escaped
#: (so for ASCII text without DEL, byte for byte the stdlib's
#: C{encode_basestring_ascii}). C{None} on the stdlib path.
string_bytes: Optional[Callable[[str], bytes]] = _codec.string_bytes


def dumps(value: Any) -> str:
    """
    @param value: JSON values, or types the fallback converts.
    @return: the JSON text (ASCII).
    @rtype: C{str}
    @raise TypeError: for a value that cannot be converted.
    @raise ValueError: for a circular structure.
    """
    return encode(value)
