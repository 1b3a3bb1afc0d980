# -*- test-case-name: tests.test_rpc_wire -*-
"""
The oslo.messaging message format (see C{oslo-wire-protocol.md} §5, §6, §9):
the 2.0 envelope, request and reply bodies, and the serialization of remote
failures.

JSON is the standard library's, with a fallback for the types oslo's
C{jsonutils.to_primitive} handles (datetimes, sets, UUIDs, bytes, mappings,
iterables, objects with C{to_dict()}). Each message is JSON-encoded once and
decoded once in each direction; the envelope only adds the escaping of the
inner string (a single C-level call on the way out, one more parse on the way
in), since the envelope carries the inner message as a JSON I{string}.
"""

import datetime
import decimal
import enum
import importlib
import json
import traceback
import uuid
from os import urandom
from collections.abc import Iterable, Mapping
from json.decoder import scanstring
from json.encoder import encode_basestring_ascii
from typing import Any, Collection, Dict, List, Optional, Union

import attrs
from twisted.python.failure import Failure

from novasvc.rpc.errors import MalformedMessage, RemoteError

__all__ = [
    "ENVELOPE_VERSION",
    "CONTENT_TYPE",
    "CONTEXT_PREFIX",
    "Request",
    "Reply",
    "dumps",
    "loads",
    "new_id",
    "encode_envelope",
    "decode_body",
    "encode_request",
    "decode_request",
    "encode_reply",
    "decode_reply",
    "serialize_failure",
    "deserialize_failure",
]

#: The envelope version written (oslo.messaging's C{_RPC_ENVELOPE_VERSION}).
ENVELOPE_VERSION = "2.0"
#: The only content type a consumer accepts (kombu's JSON serializer).
CONTENT_TYPE = "application/json"

#: What a request's context entries start with (C{_context_user_id}, ...).
CONTEXT_PREFIX = "_context_"

_VERSION_KEY = "oslo.version"
_MESSAGE_KEY = "oslo.message"
_CONTEXT_PREFIX_LEN = len(CONTEXT_PREFIX)
_CLIENT_TIMEOUT_KEY = CONTEXT_PREFIX + "client_timeout"
#: How every 2.0 envelope begins, novasvc's and oslo.messaging's alike (both
#: write it with the standard library's default separators).
_ENVELOPE_HEAD = '{"oslo.version": "2.0", "oslo.message": "'
_ENVELOPE_HEAD_BYTES = _ENVELOPE_HEAD.encode("ascii")
_ENVELOPE_HEAD_LEN = len(_ENVELOPE_HEAD)


def new_id() -> str:
    """
    @return: a fresh message id: C{uuid4} hex, 32 characters (C{_msg_id},
        C{_unique_id}, queue-name suffixes), as oslo.messaging.
    """
    # uuid.uuid4().hex without building a UUID object (hot path): 16 random
    # bytes with the version (4) and variant (10xx) bits set.
    h = urandom(16).hex()
    return f"{h[:12]}4{h[13:16]}{_VARIANT[h[16]]}{h[17:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


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


_encode = _encoder(_to_primitive)
_encode_lenient = _encoder(_to_primitive_or_repr)


def dumps(value: Any) -> str:
    """
    @param value: JSON values, or types the fallback converts.
    @return: the JSON text (ASCII).
    @rtype: C{str}
    @raise TypeError: for a value that cannot be converted.
    @raise ValueError: for a circular structure.
    """
    return _encode(value)


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


_decode = _decoder()


def encode_envelope(message: Mapping[str, Any]) -> bytes:
    """
    Wrap a message in the 2.0 envelope: a JSON object whose
    C{"oslo.message"} is the inner message's JSON text.

    @param message: the inner message.
    @return: the body.
    @rtype: C{bytes}
    @raise TypeError: for values that cannot be encoded.
    """
    return (_ENVELOPE_HEAD[:-1] + encode_basestring_ascii(_encode(message)) + "}").encode("ascii")


def _unwrap(value: Any) -> Any:
    if type(value) is dict and _MESSAGE_KEY in value and _VERSION_KEY in value:
        version = value[_VERSION_KEY]
        try:
            major, minor = (int(p) for p in str(version).split(".")[:2])
        except ValueError:
            raise MalformedMessage(f"envelope version {version!r} is not a version")
        if major != 2 or minor > 0:
            raise MalformedMessage(f"unsupported envelope version {version!r} (this peer reads 2.0)")
        inner = value[_MESSAGE_KEY]
        if not isinstance(inner, str):
            raise MalformedMessage("the envelope's oslo.message is not a string")
        try:
            return json.loads(inner)
        except ValueError as e:
            raise MalformedMessage(f"the envelope's oslo.message is not JSON ({e})")
    return value


def decode_body(body: Union[bytes, str]) -> Dict[str, Any]:
    """
    Decode a message body: a 2.0 envelope, or a bare JSON object (the "1.0"
    format, as oslo.messaging accepts).

    @param body: the message body.
    @return: the inner message.
    @rtype: C{dict}
    @raise MalformedMessage: when the body is not JSON, the envelope version
        is not compatible with 2.0, or the message is not an object.
    """
    value = _decode_envelope_2_0(body)
    if value is None:
        value = _decode_any(body)
    if type(value) is not dict:
        raise MalformedMessage(f"the message is a JSON {type(value).__name__}, not an object")
    return value


def _decode_envelope_2_0(body: Union[bytes, str]) -> Any:
    """
    The fast path for the usual body, a 2.0 envelope written with the
    standard separators: read the inner message's string straight from the
    text instead of parsing the envelope object around it.

    @return: the inner message (any JSON value), or C{None} when the body is
        not of that form (the general path then decides).
    @raise MalformedMessage: when the inner message is not JSON.
    """
    if type(body) is bytes:
        if not body.startswith(_ENVELOPE_HEAD_BYTES):
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif type(body) is str and body.startswith(_ENVELOPE_HEAD):
        text = body
    else:
        return None
    try:
        inner, end = scanstring(text, _ENVELOPE_HEAD_LEN)
    except ValueError:
        return None
    if end != len(text) - 1 or text[end] != "}":
        return None
    try:
        return _decode(inner)
    except ValueError as e:
        raise MalformedMessage(f"the envelope's oslo.message is not JSON ({e})")


def _decode_any(body: Union[bytes, str]) -> Any:
    try:
        value = json.loads(body)
    except ValueError as e:  # includes UnicodeDecodeError
        raise MalformedMessage(f"the body is not JSON ({e})")
    return _unwrap(value)


# -- requests -----------------------------------------------------------------


@attrs.define(slots=True)
class Request:
    """
    A decoded request, server side (oslo-wire-protocol.md §6).

    @ivar method: the endpoint method name.
    @ivar args: the keyword arguments, a C{dict}.
    @ivar message: the decoded message's other entries, a C{dict}: those
        read into the attributes here are taken out, the context entries
        stay (with their L{CONTEXT_PREFIX}; see L{context}).
    @ivar namespace: C{str} or C{None}.
    @ivar version: C{str} or C{None} (a server reads C{None} as C{"1.0"}).
    @ivar msg_id: C{_msg_id}, C{None} for a cast.
    @ivar reply_q: C{_reply_q}, C{None} for a cast.
    @ivar timeout: the raw C{_timeout} (the call-monitor timeout), or C{None}.
    @ivar unique_id: C{_unique_id}, or C{None}.
    """

    method: str
    args: Dict[str, Any]
    message: Dict[str, Any]
    namespace: Optional[str] = None
    version: Optional[str] = None
    msg_id: Optional[str] = None
    reply_q: Optional[str] = None
    timeout: Any = None
    unique_id: Optional[str] = None

    @property
    def context(self) -> Dict[str, Any]:
        """
        The context entries, as oslo.messaging's C{unpack_context} makes
        them: C{_context_} prefixes stripped, and C{client_timeout} set from
        C{_timeout}. (The RPC server reads them from L{message} in one step
        with C{RequestContext.from_dict(message, prefix=CONTEXT_PREFIX)}.)

        @rtype: C{dict}
        """
        context = {key[_CONTEXT_PREFIX_LEN:]: value for key, value in self.message.items()
                   if key.startswith(CONTEXT_PREFIX)}
        context["client_timeout"] = self.timeout
        return context

    @property
    def is_call(self) -> bool:
        """
        C{True} when a reply is expected (both C{_msg_id} and C{_reply_q}).
        """
        return self.msg_id is not None and self.reply_q is not None


def encode_request(method: str, args: Mapping[str, Any], context: Mapping[str, Any], *,
                   namespace: Optional[str] = None, version: Optional[str] = None,
                   msg_id: Optional[str] = None, reply_q: Optional[str] = None,
                   timeout: Optional[float] = None, unique_id: Optional[str] = None,
                   prefixed: bool = False) -> bytes:
    """
    Encode a request (§6) in the 2.0 envelope. It is a call when C{msg_id}
    is given (then C{_reply_q} and C{_timeout} are written too), a cast
    otherwise. The context is flattened into C{_context_<key>} entries; its
    C{client_timeout} key is not sent (the call-monitor timeout travels as
    C{_timeout}).

    @param method: the method name.
    @param args: keyword arguments (JSON values or what the fallback converts).
    @param context: the context C{dict} (e.g.
        L{novasvc.context.RequestContext.to_dict}).
    @param namespace: written only when not C{None}.
    @param version: written only when not C{None}.
    @param msg_id: the call's id.
    @param reply_q: the caller's reply queue (calls).
    @param timeout: the call-monitor timeout in seconds (calls), C{None} for
        none.
    @param unique_id: the duplicate-suppression id; a fresh one when C{None}.
    @param prefixed: C{True} when C{context}'s keys already start with
        L{CONTEXT_PREFIX} (e.g. C{RequestContext.to_dict(CONTEXT_PREFIX)}),
        saving a copy on the hot path.
    @return: the body.
    @rtype: C{bytes}
    @raise TypeError: for values that cannot be encoded.
    """
    message: Dict[str, Any] = {"method": method, "args": args}
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    if msg_id is not None:
        message["_msg_id"] = msg_id
        message["_reply_q"] = reply_q
        message["_timeout"] = timeout
    message["_unique_id"] = unique_id or new_id()
    if prefixed:
        message.update(context)
    else:
        message.update({CONTEXT_PREFIX + key: value for key, value in context.items()})
    message.pop(_CLIENT_TIMEOUT_KEY, None)
    return encode_envelope(message)


_STR_OR_NONE = (str, type(None))


def _malformed(reason: str, msg_id: Optional[str] = None, reply_q: Optional[str] = None) -> MalformedMessage:
    error = MalformedMessage(reason)
    error.msg_id, error.reply_q = msg_id, reply_q
    return error


def decode_request(body: Union[bytes, str], content_type: Optional[str] = CONTENT_TYPE) -> Request:
    """
    Decode and check a request, as an oslo.messaging RPC server reads it.

    @param body: the message body.
    @param content_type: the delivery's C{content_type}; oslo requires
        C{application/json} (parameters such as C{; charset=utf-8} are
        accepted).
    @rtype: L{Request}
    @raise MalformedMessage: for a wrong content type, a body that is not
        JSON or not an object, an unsupported envelope, a missing or
        non-string C{method}, C{args} that is not an object, or a
        C{namespace}/C{version}/C{_unique_id} that is not a string. Its
        C{msg_id} and C{reply_q} are set when those could be read, so the
        caller can still be answered.
    """
    if content_type is None or (
        content_type != CONTENT_TYPE and content_type.split(";", 1)[0].strip().lower() != CONTENT_TYPE
    ):
        raise _malformed(f"content type {content_type!r} is not {CONTENT_TYPE}")
    message = decode_body(body)
    pop = message.pop
    method = pop("method", None)
    args = pop("args", {})
    namespace = pop("namespace", None)
    version = pop("version", None)
    unique_id = pop("_unique_id", None)
    msg_id = pop("_msg_id", None)
    reply_q = pop("_reply_q", None)
    timeout = pop("_timeout", None)
    if type(msg_id) is not str or type(reply_q) is not str:
        msg_id = reply_q = None
    if type(method) is not str or not method:
        raise _malformed(f"method {method!r} is not a non-empty string", msg_id, reply_q)
    if args is None:
        args = {}
    elif type(args) is not dict:
        raise _malformed(f"args of {method!r} is a JSON {type(args).__name__}, not an object", msg_id, reply_q)
    if type(namespace) not in _STR_OR_NONE or type(version) not in _STR_OR_NONE or \
            type(unique_id) not in _STR_OR_NONE:
        for name, value in (("namespace", namespace), ("version", version), ("_unique_id", unique_id)):
            if value is not None and type(value) is not str:
                raise _malformed(f"{name} {value!r} is not a string", msg_id, reply_q)
    return Request(method, args, message, namespace, version, msg_id, reply_q, timeout, unique_id)


# -- replies ------------------------------------------------------------------


@attrs.define(slots=True)
class Reply:
    """
    A decoded reply, client side (§9).

    @ivar msg_id: the C{_msg_id} it answers.
    @ivar result: the return value (or C{None}).
    @ivar failure: the failure's JSON text (§9.1), or C{None}.
    @ivar ending: C{True} on a final reply, C{False} on a call-monitor
        heartbeat, C{None} when the key is absent (servers before
        oslo.messaging 4.0 sent a data message without it, then an ending
        one).
    """

    msg_id: str
    result: Any = None
    failure: Optional[str] = None
    ending: Optional[bool] = None

    @property
    def is_heartbeat(self) -> bool:
        """
        C{True} for a call-monitor heartbeat (C{ending} false, no result, no
        failure).
        """
        return self.ending is False and self.result is None and self.failure is None


def encode_reply(msg_id: str, result: Any = None, failure: Optional[str] = None, ending: bool = True) -> bytes:
    """
    Encode a reply (§9) in the 2.0 envelope, with a fresh C{_unique_id}.

    @param msg_id: the request's C{_msg_id}.
    @param result: the return value (JSON values or what the fallback
        converts).
    @param failure: the text made by L{serialize_failure}, or C{None}.
    @param ending: C{False} for a call-monitor heartbeat.
    @rtype: C{bytes}
    @raise TypeError: when C{result} cannot be encoded.
    """
    return encode_envelope(
        {"result": result, "failure": failure, "ending": ending, "_msg_id": msg_id, "_unique_id": new_id()}
    )


def decode_reply(body: Union[bytes, str]) -> Reply:
    """
    @param body: a reply body (enveloped or bare).
    @rtype: L{Reply}
    @raise MalformedMessage: when it is not a JSON object with a string
        C{_msg_id}, or C{failure} is neither C{None} nor a string.
    """
    message = decode_body(body)
    msg_id = message.get("_msg_id")
    if type(msg_id) is not str:
        raise MalformedMessage(f"reply _msg_id {msg_id!r} is not a string")
    failure = message.get("failure")
    if failure is not None and not isinstance(failure, str):
        raise MalformedMessage(f"reply failure of {msg_id} is not a string")
    ending = message.get("ending")
    return Reply(msg_id, message.get("result"), failure, None if ending is None else bool(ending))


# -- failures -----------------------------------------------------------------

_REMOTE_SUFFIX = "_Remote"
_BUILTIN_MODULES = ("builtins", "exceptions")


def _format_traceback(error: Union[BaseException, Failure]) -> List[str]:
    try:
        if isinstance(error, Failure):
            value = error.value
            tb = value.__traceback__ or error.getTracebackObject()
            return traceback.format_exception(error.type, value, tb)
        return traceback.format_exception(type(error), error, error.__traceback__)
    except Exception:
        if isinstance(error, Failure):
            return error.getTraceback().splitlines(True)
        return traceback.format_exception_only(type(error), error)


def serialize_failure(error: Union[BaseException, Failure]) -> str:
    """
    Serialize an exception for a reply's C{failure} (§9.1): the JSON text of
    C{{class, module, message, tb, args, kwargs}}. A re-raised remote
    exception (class and module both ending in C{_Remote}) is sent under its
    original names, as oslo.messaging's C{serialize_remote_exception}. Values
    of C{args}/C{kwargs} that JSON cannot hold are sent as their C{repr}.

    @param error: the exception, or a L{Failure} wrapping it.
    @return: JSON text.
    @rtype: C{str}
    """
    value = error.value if isinstance(error, Failure) else error
    cls = type(value)
    name, module = cls.__name__, cls.__module__
    if name.endswith(_REMOTE_SUFFIX) and module.endswith(_REMOTE_SUFFIX):
        name, module = name[: -len(_REMOTE_SUFFIX)], module[: -len(_REMOTE_SUFFIX)]
    kwargs = getattr(value, "kwargs", None)
    if not isinstance(kwargs, Mapping):
        kwargs = {}
    try:
        message = str(value)
    except Exception:
        message = repr(value)
    data = {
        "class": name,
        "module": module,
        "message": message,
        "tb": _format_traceback(error),
        "args": list(getattr(value, "args", ())),
        "kwargs": dict(kwargs),
    }
    return _encode_lenient(data)


_remote_classes: Dict[type, type] = {}


def _remote_class(cls: type) -> type:
    """
    The dynamic C{<Class>_Remote} subclass (module C{<module>_Remote}) whose
    C{str()} is the message and the remote traceback; made once per class.
    """
    remote = _remote_classes.get(cls)
    if remote is None:

        def __str__(self: BaseException) -> str:
            return self._remote_text  # type: ignore[attr-defined, no-any-return]

        remote = type(cls.__name__ + _REMOTE_SUFFIX, (cls,), {"__str__": __str__,
                                                              "__module__": cls.__module__ + _REMOTE_SUFFIX})
        _remote_classes[cls] = remote
    return remote


def deserialize_failure(data: str, allowed_remote_exmods: Collection[str] = ()) -> Exception:
    """
    Rebuild a remote exception from a reply's C{failure} text, as
    oslo.messaging's C{deserialize_remote_exception}:

      - module C{builtins} (or C{exceptions}) is always allowed; the class is
        rebuilt as itself (built-in types cannot be re-classed) with its first
        argument replaced by the message, a newline and the remote traceback;
      - a module in C{allowed_remote_exmods}: the class is imported and built
        as C{cls(*args, **kwargs)}, then re-classed to a dynamic subclass
        C{<Class>_Remote} in module C{<module>_Remote} whose C{str()} is the
        message, a newline and the remote traceback (so C{except Class}
        still works);
      - anything else, or any problem along the way (no such module or
        class, not an C{Exception}, constructor refusing the arguments):
        L{RemoteError}.

    @param data: the JSON text made by L{serialize_failure}.
    @param allowed_remote_exmods: module names whose exceptions may be rebuilt.
    @return: the exception to raise (never raises itself).
    @rtype: C{Exception}
    """
    try:
        failure = json.loads(data)
    except (TypeError, ValueError):
        return RemoteError("MalformedFailure", str(data), [])
    if type(failure) is not dict:
        return RemoteError("MalformedFailure", str(data), [])
    name = str(failure.get("class") or "Exception")
    module = str(failure.get("module") or "")
    message = str(failure.get("message", ""))
    tb = failure.get("tb") or []
    if isinstance(tb, str):
        tb = [tb]
    elif not isinstance(tb, list):
        tb = []
    tb = [str(line) for line in tb]
    remote_text = message + "\n" + "".join(tb)
    if module in _BUILTIN_MODULES:
        module = "builtins"
    elif module not in allowed_remote_exmods:
        return RemoteError(name, message, tb)
    args = failure.get("args") or []
    kwargs = failure.get("kwargs") or {}
    try:
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"{module}.{name} is not an Exception class")
        error = cls(*args, **kwargs)
    except Exception:
        return RemoteError(name, message, tb)
    if module == "builtins":
        error.args = (remote_text,) + tuple(error.args[1:])
        return error
    try:
        error._remote_text = remote_text  # type: ignore[attr-defined]
        error.__class__ = _remote_class(cls)
    except (TypeError, AttributeError):
        error.args = (remote_text,) + tuple(error.args[1:])
    return error
