# -*- test-case-name: tests.test_rpc_envelope -*-
"""
The oslo.messaging 2.0 envelope (see C{oslo-wire-protocol.md} §5): a JSON
object whose C{"oslo.message"} is the inner message's JSON I{string}.

Each message is JSON-encoded once and decoded once in each direction; the
envelope only adds the escaping of the inner string (a single C-level call on
the way out, one more parse on the way in), both orjson's through the JSON
codec: the inner text is quoted by orjson when it is byte for byte what the
standard library writes (ASCII without DEL: only C{"} and C{\\} escaped),
and the envelope is parsed by orjson, whose reading of its C{"oslo.message"}
string is exact (the codec's guards are about numbers, and the envelope's
only other value is its version string). Anything else takes the standard
library's C{json}.

Public through L{novasvc.rpc.wire}.
"""

import json
from collections.abc import Mapping
from typing import Any, Dict, Union

from novasvc.rpc._jsoncodec import decode, encode, parse_raw, string_bytes
from novasvc._text import clip, quote
from novasvc.rpc.errors import MalformedMessage

__all__ = ["ENVELOPE_VERSION", "CONTENT_TYPE", "encode_envelope", "decode_body"]

#: The envelope version written (oslo.messaging's C{_RPC_ENVELOPE_VERSION}).
ENVELOPE_VERSION = "2.0"
#: The only content type a consumer accepts (kombu's JSON serializer).
CONTENT_TYPE = "application/json"

_VERSION_KEY = "oslo.version"
_MESSAGE_KEY = "oslo.message"
#: How every 2.0 envelope begins, up to its message's opening quote,
#: novasvc's and oslo.messaging's alike (both write it with the standard
#: library's default separators).
_ENVELOPE_OPEN = '{"oslo.version": "2.0", "oslo.message": '
_ENVELOPE_OPEN_BYTES = _ENVELOPE_OPEN.encode("ascii")


def encode_envelope(message: Mapping[str, Any]) -> bytes:
    """
    Wrap a message in the 2.0 envelope: a JSON object whose
    C{"oslo.message"} is the inner message's JSON text.

    @param message: the inner message.
    @return: the body.
    @rtype: C{bytes}
    @raise TypeError: for values that cannot be encoded.
    """
    inner = encode(message)  # ASCII, whoever wrote it
    if "\x7f" not in inner:
        return _ENVELOPE_OPEN_BYTES + string_bytes(inner) + b"}"
    return (_ENVELOPE_OPEN + json.dumps(inner) + "}").encode("ascii")


def _unwrap(value: Any) -> Any:
    if type(value) is dict and _MESSAGE_KEY in value and _VERSION_KEY in value:
        version = value[_VERSION_KEY]
        try:
            major, minor = (int(p) for p in str(version).split(".")[:2])
        except ValueError:
            raise MalformedMessage(f"envelope version {quote(version)} is not a version")
        if major != 2 or minor > 0:
            raise MalformedMessage(f"unsupported envelope version {quote(version)} (this peer reads 2.0)")
        inner = value[_MESSAGE_KEY]
        if not isinstance(inner, str):
            raise MalformedMessage("the envelope's oslo.message is not a string")
        try:
            return json.loads(inner)
        except Exception as e:
            raise _undecodable("the envelope's oslo.message", e)
    return value


def _undecodable(what: str, error: Exception) -> MalformedMessage:
    """
    @param what: the text that could not be decoded.
    @param error: why: the parser's C{ValueError} (not JSON, bad UTF-8, an
        integer of too many digits), a C{RecursionError} (nested too deeply)
        or anything else the parser raised.
    @return: the L{MalformedMessage} to raise instead, its reason short
        whatever the body.
    """
    if isinstance(error, RecursionError):
        return MalformedMessage(f"{what} is nested too deeply to decode")
    if isinstance(error, ValueError):
        return MalformedMessage(f"{what} is not JSON ({clip(str(error))})")
    return MalformedMessage(f"{what} cannot be decoded ({type(error).__name__}: {clip(str(error))})")


def decode_body(body: Union[bytes, str]) -> Dict[str, Any]:
    """
    Decode a message body: a 2.0 envelope, or a bare JSON object (the "1.0"
    format, as oslo.messaging accepts).

    @param body: the message body.
    @return: the inner message.
    @rtype: C{dict}
    @raise MalformedMessage: when the body is not JSON (or is nested too
        deeply to decode, or anything else stops the parser), the envelope
        version is not compatible with 2.0, or the message is not an object.
    """
    value = _decode_parsed_2_0(body)
    if value is None:
        value = _decode_any(body)
    if type(value) is not dict:
        raise MalformedMessage(f"the message is a JSON {type(value).__name__}, not an object")
    return value


def _decode_parsed_2_0(body: Union[bytes, str]) -> Any:
    """
    The fast path: the envelope parsed by orjson (bytes need no decoding
    first, and its string unescaping is faster than the standard
    library's).

    @return: the inner message (any JSON value), or C{None} when the body is
        not a version 2.0 envelope with a string message that orjson reads
        (L{_decode_any} then decides).
    @raise MalformedMessage: when the inner message cannot be decoded.
    """
    try:
        outer = parse_raw(body)
    except Exception:
        return None
    if type(outer) is not dict or outer.get(_VERSION_KEY) != ENVELOPE_VERSION:
        return None
    inner = outer.get(_MESSAGE_KEY)
    if type(inner) is not str:
        return None
    try:
        return decode(inner)
    except Exception as e:
        raise _undecodable("the envelope's oslo.message", e)


def _decode_any(body: Union[bytes, str]) -> Any:
    try:
        value = json.loads(body)
    except Exception as e:
        raise _undecodable("the body", e)
    return _unwrap(value)
