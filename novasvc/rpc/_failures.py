# -*- test-case-name: tests.test_rpc_failures -*-
"""
Remote failures in the oslo.messaging format (see C{oslo-wire-protocol.md}
§9.1): the exception a server sends in a reply's C{failure}, and the one a
client rebuilds from it.

Public through L{novasvc.rpc.wire}.
"""

import importlib
import json
import traceback
from collections.abc import Mapping
from typing import Collection, Dict, List, Optional, Tuple, Union

from twisted.python.failure import Failure

from novasvc.rpc._jsoncodec import encode_lenient
from novasvc._text import QUOTE_LIMIT, clip, quote
from novasvc.rpc.errors import RemoteError

__all__ = ["serialize_failure", "deserialize_failure", "remote_origin"]

_REMOTE_SUFFIX = "_Remote"
_BUILTIN_MODULES = ("builtins", "exceptions")
#: The attribute L{deserialize_failure} sets on the exceptions it rebuilds.
_ORIGIN = "_remote_origin"


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


def serialize_failure(error: Union[BaseException, Failure], clipped: bool = False) -> str:
    """
    Serialize an exception for a reply's C{failure} (§9.1): the JSON text of
    C{{class, module, message, tb, args, kwargs}}. A re-raised remote
    exception (class and module both ending in C{_Remote}) is sent under its
    original names, as oslo.messaging's C{serialize_remote_exception}. Values
    of C{args}/C{kwargs} that JSON cannot hold are sent as their C{repr};
    when even that fails (a structure nested too deeply or circular), every
    C{args}/C{kwargs} value is sent as its shortened C{repr}
    (L{novasvc._text.quote}). It never raises.

    @param error: the exception, or a L{Failure} wrapping it.
    @param clipped: for an exception that may quote a client's values
        without bound (a serializer's): its message, each traceback line and
        each text in C{args}/C{kwargs} are cut by
        L{novasvc._text.clip}, and any other value whose JSON is longer
        than L{novasvc._text.QUOTE_LIMIT} is sent as its shortened
        C{repr}.
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
        message = quote(value)
    data = {
        "class": name,
        "module": module,
        "message": message,
        "tb": _format_traceback(error),
        "args": list(getattr(value, "args", ())),
        "kwargs": dict(kwargs),
    }
    if clipped:
        data["message"] = clip(message)
        data["tb"] = [clip(line) for line in data["tb"]]
        data["args"] = [_bounded(arg) for arg in data["args"]]
        data["kwargs"] = {clip(str(key)): _bounded(arg) for key, arg in data["kwargs"].items()}
    try:
        return encode_lenient(data)
    except Exception:
        data["args"] = [quote(arg) for arg in data["args"]]
        data["kwargs"] = {str(key): quote(arg) for key, arg in data["kwargs"].items()}
        return encode_lenient(data)


def _bounded(value: object) -> object:
    """
    @return: C{value} cut for a clipped failure: a text by L{clip}; a
        number, a boolean or C{None} as it is; anything else as it is when
        its JSON is short, as its shortened C{repr} otherwise.
    """
    if type(value) is str:
        return clip(value)
    if value is None or type(value) in (int, float, bool):
        return value
    try:
        if len(encode_lenient(value)) <= QUOTE_LIMIT:
            return value
    except Exception:
        pass
    return quote(value)


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

    L{remote_origin} tells what it returns from a local exception.

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
    else:
        try:
            error._remote_text = remote_text  # type: ignore[attr-defined]
            error.__class__ = _remote_class(cls)
        except (TypeError, AttributeError):
            error.args = (remote_text,) + tuple(error.args[1:])
    # Every exception instance has a __dict__ (BaseException's).
    setattr(error, _ORIGIN, (name, message))
    return error


def remote_origin(error: BaseException) -> Optional[Tuple[str, str]]:
    """
    Tell a remote exception (one that L{deserialize_failure} made from a
    reply) from a local one, whatever its class: a rebuilt builtin such as
    C{ValueError} is otherwise the same class as a local one.

    @param error: any exception.
    @return: C{(class name, message)} as the server sent them (the message
        without the remote traceback; neither shortened) for a
        L{RemoteError} or an exception L{deserialize_failure} rebuilt;
        C{None} for any other exception.
    """
    if isinstance(error, RemoteError):
        return (str(error.exc_type), "" if error.value is None else str(error.value))
    origin = getattr(error, _ORIGIN, None)
    if type(origin) is tuple:
        return origin
    return None
