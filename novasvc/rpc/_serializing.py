# -*- test-case-name: tests.test_rpc_serializing -*-
"""
What the RPC client and server do with a serializer (L{novasvc.rpc.serializer}),
at the places oslo.messaging's C{RPCClient} and C{RPCDispatcher} do it:

  - the client serializes the context (C{serialize_context}) and each
    keyword argument (C{serialize_entity(ctxt, value)}, with the caller's
    context) before encoding a request, and deserializes a call's result
    (C{deserialize_entity(ctxt, result)});
  - the server hands the request's context entries, as a C{dict} (the
    C{_context_} prefixes stripped, C{client_timeout} set from C{_timeout}:
    what oslo.messaging passes), to C{deserialize_context}, deserializes each
    argument with what that returned, calls the method with them, and
    serializes its result (C{serialize_entity(ctxt, result)}), once the
    dispatcher found the method (a refused request never reaches the
    serializer).

Failures never go through a serializer. An exception a serializer raises on
the server is marked with what it was doing (L{stage}), so that the server
can tell it from the method's own: it fails that one request (a call gets
it in its error reply, with the values it quotes cut by
L{novasvc._text.clip}; a cast is one log line).

A serializer that is C{None} or a no-op (L{novasvc.rpc.serializer.is_noop}) is
not used at all: L{active} returns C{None} for it, and the client and server
then take their usual path.
"""

from typing import Any, Dict, Mapping, Optional, Tuple

from twisted.python.failure import Failure

from novasvc._text import quote
from novasvc.rpc.serializer import check_serializer, is_noop

__all__ = ["active", "serialize_request", "deserialize_result", "deserialize_request", "serialize_result",
           "stage"]

#: The attribute marking an exception a serializer raised on the server,
#: holding what it was doing.
_STAGE = "_novasvc_serializer_stage"


def active(serializer: Optional[Any]) -> Optional[Any]:
    """
    @param serializer: what a client or server was given.
    @return: C{serializer}, or C{None} when it is C{None} or a no-op (then
        nothing is called).
    @raise TypeError: when C{serializer} lacks one of the four methods, or
        is a class (an instance is needed).
    """
    if is_noop(serializer):
        return None
    return check_serializer(serializer)


# -- client side --------------------------------------------------------------


def serialize_request(serializer: Any, ctxt: Any, kwargs: Mapping[str, Any]) -> Tuple[Any, Dict[str, Any]]:
    """
    @param serializer: the client's serializer.
    @param ctxt: the caller's context.
    @param kwargs: the call's keyword arguments.
    @return: the context to send (what C{serialize_context} returned: a
        C{dict} or an object with C{to_dict}) and the serialized arguments.
    @raise Exception: whatever the serializer raised.
    """
    serialize = serializer.serialize_entity
    args = {name: serialize(ctxt, value) for name, value in kwargs.items()}
    return serializer.serialize_context(ctxt), args


def deserialize_result(result: Any, serializer: Any, ctxt: Any) -> Any:
    """
    A callback of a call's C{Deferred}.

    @param result: the result the reply carried.
    @param serializer: the client's serializer.
    @param ctxt: the caller's context.
    @return: C{serializer.deserialize_entity(ctxt, result)}.
    """
    return serializer.deserialize_entity(ctxt, result)


# -- server side --------------------------------------------------------------


def deserialize_request(serializer: Any, entries: Dict[str, Any], args: Mapping[str, Any]
                        ) -> Tuple[Any, Dict[str, Any]]:
    """
    @param serializer: the server's serializer.
    @param entries: the request's context entries (see
        L{novasvc.rpc.wire.Request.context}).
    @param args: the request's keyword arguments, as received.
    @return: the context and the arguments the method is called with.
    @raise Exception: whatever the serializer raised, marked (see L{stage}).
    """
    try:
        ctxt = serializer.deserialize_context(entries)
    except Exception as e:
        _mark(e, "deserializing the context")
        raise
    deserialize = serializer.deserialize_entity
    values = {}
    for name, value in args.items():
        try:
            values[name] = deserialize(ctxt, value)
        except Exception as e:
            _mark(e, f"deserializing the argument {quote(name)}")
            raise
    return ctxt, values


def serialize_result(result: Any, serializer: Any, ctxt: Any) -> Any:
    """
    A method's result as it is sent (also a callback of a method's
    C{Deferred}).

    @param result: what the method returned.
    @param serializer: the server's serializer.
    @param ctxt: the context the method was given.
    @return: C{serializer.serialize_entity(ctxt, result)}.
    @raise Exception: whatever the serializer raised, marked (see L{stage}).
    """
    try:
        return serializer.serialize_entity(ctxt, result)
    except Exception as e:
        _mark(e, "serializing the result")
        raise


def _mark(error: Exception, doing: str) -> None:
    try:
        setattr(error, _STAGE, doing)
    except Exception:
        pass  # an exception refusing attributes is reported as the method's


def stage(failure: Failure) -> Optional[str]:
    """
    @param failure: a request's failure, on the server.
    @return: what the serializer was doing when it raised it (e.g.
        C{"deserializing the argument 'volume'"}), or C{None} when the
        serializer did not raise it.
    """
    doing = getattr(failure.value, _STAGE, None)
    return doing if isinstance(doing, str) else None
