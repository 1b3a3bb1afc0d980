# -*- test-case-name: tests.test_rpc_reporting,tests.test_metrics_instrumentation -*-
"""
How the RPC server reports a request that failed: its count in the metrics
(L{count_failure}) and its log lines (L{call_failed}, L{cast_failed},
L{unencodable_result}).

A method the dispatcher refused is counted under the method label
C{<unknown>}: a client cannot create series. A call whose method raised is
one WARNING line (method, error class and message, C{_msg_id}, request id),
its traceback at DEBUG; a cast the dispatcher refused is one WARNING line
without a traceback. Values a client chose are cut by L{novasvc._text.clip}.
"""

from typing import Any, Optional

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from novasvc._text import ClippedTraceback, clip
from novasvc.interfaces import IDelivery
from novasvc.metrics import ERROR, NO_SUCH_METHOD, UNKNOWN_METHOD, UNSUPPORTED_VERSION
from novasvc.rpc import wire
from novasvc.rpc.errors import NoSuchMethod, UnsupportedVersion

__all__ = ["count_failure", "call_failed", "cast_failed", "unencodable_result"]

_log = Logger()
_REQUEST_ID = wire.CONTEXT_PREFIX + "request_id"


def count_failure(metrics: Any, dispatcher: Any, failure: Failure, request: wire.Request, seconds: float) -> None:
    """
    Count a request that failed after C{seconds} of dispatch.

    @param metrics: the server's metrics.
    @param dispatcher: the server's L{novasvc.rpc.dispatcher.RPCDispatcher}.
    """
    if failure.check(NoSuchMethod):
        metrics.request(UNKNOWN_METHOD, NO_SUCH_METHOD, seconds)
    elif failure.check(UnsupportedVersion):
        metrics.request(UNKNOWN_METHOD, UNSUPPORTED_VERSION, seconds)
    else:
        metrics.request(_method_label(dispatcher, request), ERROR, seconds)


def _method_label(dispatcher: Any, request: wire.Request) -> str:
    """
    @return: the request's method name when the dispatcher serves it (the
        error came from the method), else L{UNKNOWN_METHOD} (it came
        before: a context that could not be read).
    """
    try:
        dispatcher.resolve(request.method, request.namespace, request.version)
    except Exception:
        return UNKNOWN_METHOD
    return request.method


def call_failed(failure: Failure, request: wire.Request, doing: Optional[str]) -> None:
    """
    Log a call that failed (its error reply is sent apart).

    @param doing: what the serializer was doing when it raised C{failure},
        or C{None} when the method did.
    """
    fields = dict(method=clip(request.method), msg_id=clip(request.msg_id), request_id=_request_id(request))
    _log.warn("RPC call {method!r} failed{cause} with {error_class}: {error} (msg_id {msg_id}, "
              "request {request_id})", cause=_cause(doing), error_class=_class_name(failure.type),
              error=clip(failure.getErrorMessage()), **fields)
    _log.debug("Traceback of RPC call {method!r} (msg_id {msg_id}, request {request_id}):\n"
               "{traceback}", traceback=ClippedTraceback(failure), **fields)


def cast_failed(failure: Failure, delivery: IDelivery, request: wire.Request, doing: Optional[str]) -> None:
    """
    Log a cast that failed.

    @param doing: as for L{call_failed}.
    """
    request_id = _request_id(request)
    if doing is not None:
        # Not the method's failure: one line, the values it quotes cut.
        _log.error("Cast {method!r} from routing key {routing_key!r} failed{cause} with "
                   "{error_class}: {error} (request {request_id})", method=clip(request.method),
                   routing_key=clip(delivery.routing_key), cause=_cause(doing),
                   error_class=_class_name(failure.type), error=clip(failure.getErrorMessage()),
                   request_id=request_id)
        _log.debug("Traceback of cast {method!r} (request {request_id}):\n{traceback}",
                   method=clip(request.method), request_id=request_id, traceback=ClippedTraceback(failure))
    elif failure.check(NoSuchMethod) and request.method.endswith("_ignore_errors"):
        _log.debug("Cast {method!r}: {error}", method=clip(request.method), error=clip(failure.getErrorMessage()))
    elif failure.check(NoSuchMethod, UnsupportedVersion):
        # The dispatcher refused it, a client's mistake: its traceback
        # would say nothing.
        _log.warn("Cast {method!r} from routing key {routing_key!r} refused: {error_class}: "
                  "{error} (request {request_id})", method=clip(request.method),
                  routing_key=clip(delivery.routing_key), error_class=_class_name(failure.type),
                  error=clip(failure.getErrorMessage()), request_id=request_id)
    else:
        _log.failure("Exception during message handling: cast {method!r} from routing key "
                     "{routing_key!r} (request {request_id})", failure, level=LogLevel.error,
                     method=clip(request.method), routing_key=clip(delivery.routing_key), request_id=request_id)


def unencodable_result(failure: Failure, request: wire.Request) -> None:
    """
    Log a call whose result cannot be encoded (it gets an error reply).
    """
    _log.error("Result of RPC call {method!r} ({msg_id}, request {request_id}) cannot be encoded: {error}",
               method=clip(request.method), msg_id=clip(request.msg_id), request_id=_request_id(request),
               error=clip(failure.getErrorMessage()))


def _request_id(request: wire.Request) -> str:
    """
    @return: the request id of C{request}'s context, cut by L{clip}, or
        C{"-"} when it has none.
    """
    return clip(request.message.get(_REQUEST_ID) or "-")  # type: ignore[return-value]


def _cause(doing: Optional[str]) -> str:
    """
    @return: what a failure log line says of a serializer's failure: C{""}
        when it is the method's.
    """
    return "" if doing is None else f" (the serializer raised it {doing})"


def _class_name(cls: Any) -> str:
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", repr(cls))
    return name if module in (None, "builtins") else f"{module}.{name}"
