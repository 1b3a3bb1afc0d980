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
from json.encoder import encode_basestring_ascii
from typing import Any, Collection, Dict, List, Optional, Tuple, Union

import attrs
from twisted.python.failure import Failure

from novasvc.rpc.errors import MalformedMessage, RemoteError

__all__ = [
    "ENVELOPE_VERSION",
    "CONTENT_TYPE",
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

_VERSION_KEY = "oslo.version"
_MESSAGE_KEY = "oslo.message"
_CONTEXT_PREFIX = "_context_"
_CONTEXT_PREFIX_LEN = len(_CONTEXT_PREFIX)


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


_encode = json.JSONEncoder(default=_to_primitive).encode
_encode_lenient = json.JSONEncoder(default=_to_primitive_or_repr).encode


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


def encode_envelope(message: Mapping[str, Any]) -> bytes:
    """
    Wrap a message in the 2.0 envelope: a JSON object whose
    C{"oslo.message"} is the inner message's JSON text.

    @param message: the inner message.
    @return: the body.
    @rtype: C{bytes}
    @raise TypeError: for values that cannot be encoded.
    """
    inner = _encode(message)
    return ('{"oslo.version": "2.0", "oslo.message": ' + encode_basestring_ascii(inner) + "}").encode("ascii")


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
    try:
        value = json.loads(body)
    except ValueError as e:  # includes UnicodeDecodeError
        raise MalformedMessage(f"the body is not JSON ({e})")
    value = _unwrap(value)
    if type(value) is not dict:
        raise MalformedMessage(f"the message is a JSON {type(value).__name__}, not an object")
    return value


# -- requests -----------------------------------------------------------------


@attrs.define(slots=True)
class Request:
    """
    A decoded request, server side (oslo-wire-protocol.md §6).

    @ivar method: the endpoint method name.
    @ivar args: the keyword arguments, a C{dict}.
    @ivar context: the context entries: C{_context_} prefixes stripped, and
        C{client_timeout} set from C{_timeout} (as oslo.messaging's
        C{unpack_context}).
    @ivar namespace: C{str} or C{None}.
    @ivar version: C{str} or C{None} (a server reads C{None} as C{"1.0"}).
    @ivar msg_id: C{_msg_id}, C{None} for a cast.
    @ivar reply_q: C{_reply_q}, C{None} for a cast.
    @ivar timeout: the raw C{_timeout} (the call-monitor timeout), or C{None}.
    @ivar unique_id: C{_unique_id}, or C{None}.
    """

    method: str
    args: Dict[str, Any]
    context: Dict[str, Any]
    namespace: Optional[str] = None
    version: Optional[str] = None
    msg_id: Optional[str] = None
    reply_q: Optional[str] = None
    timeout: Any = None
    unique_id: Optional[str] = None

    @property
    def is_call(self) -> bool:
        """
        C{True} when a reply is expected (both C{_msg_id} and C{_reply_q}).
        """
        return self.msg_id is not None and self.reply_q is not None


def encode_request(method: str, args: Mapping[str, Any], context: Mapping[str, Any], *,
                   namespace: Optional[str] = None, version: Optional[str] = None,
                   msg_id: Optional[str] = None, reply_q: Optional[str] = None,
                   timeout: Optional[float] = None, unique_id: Optional[str] = None) -> bytes:
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
    message.update({_CONTEXT_PREFIX + key: value for key, value in context.items()})
    message.pop(_CONTEXT_PREFIX + "client_timeout", None)
    return encode_envelope(message)


def _reply_address(message: Mapping[str, Any]) -> Tuple[Optional[str], Optional[str]]:
    msg_id = message.get("_msg_id")
    reply_q = message.get("_reply_q")
    if type(msg_id) is not str or type(reply_q) is not str:
        return None, None
    return msg_id, reply_q


def _malformed(reason: str, message: Optional[Mapping[str, Any]] = None) -> MalformedMessage:
    error = MalformedMessage(reason)
    if message is not None:
        error.msg_id, error.reply_q = _reply_address(message)
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
    method = message.get("method")
    if type(method) is not str or not method:
        raise _malformed(f"method {method!r} is not a non-empty string", message)
    args = message.get("args", {})
    if args is None:
        args = {}
    elif type(args) is not dict:
        raise _malformed(f"args of {method!r} is a JSON {type(args).__name__}, not an object", message)
    namespace = message.get("namespace")
    version = message.get("version")
    unique_id = message.get("_unique_id")
    for name, value in (("namespace", namespace), ("version", version), ("_unique_id", unique_id)):
        if value is not None and type(value) is not str:
            raise _malformed(f"{name} {value!r} is not a string", message)
    msg_id, reply_q = _reply_address(message)
    timeout = message.get("_timeout")
    context = {key[_CONTEXT_PREFIX_LEN:]: value for key, value in message.items()
               if key.startswith(_CONTEXT_PREFIX)}
    context["client_timeout"] = timeout
    return Request(method, args, context, namespace, version, msg_id, reply_q, timeout, unique_id)


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
