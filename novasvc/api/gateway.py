# -*- test-case-name: tests.test_api_gateway -*-
"""
The RPC gateway behind C{POST /v1/rpc/{topic}}: one JSON request in, an
RPC call or cast out, one HTTP status and JSON payload back. What
C{novasvc-rpc} does from a shell, for HTTP clients; the HTTP layer (routes,
authentication, body parsing) mounts L{RPCGateway} and is not here.

The request body is a JSON object with these fields (C{null} is the same
as leaving a field out); any other field is refused:

  - C{method} (required): the remote method, a Python identifier of at
    most 255 characters that does not start with C{_};
  - C{args}: the method's keyword arguments, an object (default C{{}});
  - C{server}: one host of the topic (C{<topic>.<server>}), as
    C{prepare(server=)};
  - C{cast}: C{true} to send without waiting for the method (default
    C{false});
  - C{timeout}: B{seconds}, C{0 < timeout <= }L{MAX_TIMEOUT} (default: the
    configuration's C{rpc_response_timeout}); how long a call waits for its
    reply, and a cast for the broker to take it;
  - C{version}: the RPC API version asked for, C{"X.Y"} or C{"X.Y.Z"};
  - C{namespace}: the endpoint namespace;
  - C{fanout}: C{true} to cast to every server of the topic (needs C{cast},
    excludes C{server}).

The topic (from the URL) is 1 to L{TOPIC_MAX_LENGTH} of the characters
AMQP 0-9-1 allows in queue and exchange names (letters, digits, C{-},
C{_}, C{.}, C{:}), since a server makes the queues C{<topic>},
C{<topic>.<server>} and C{<topic>_fanout_<32 hex digits>} from it; the
routing key C{<topic>.<server>} must fit AMQP's 255 bytes.

L{RPCGateway.handle} answers (status, payload):

  - B{200} C{{"result": <the method's result>}} for a call;
  - B{202} C{{"accepted": true, "request_id": ...}} for a cast, once the
    broker confirmed that a queue took it;
  - B{400} C{BadRequest}: the body or topic is invalid (the message names
    the field);
  - B{403} C{Forbidden}: the request context is not an admin's;
  - B{404} C{NoSuchMethod}: the servers of the topic have no such public
    method (the server's C{NoSuchMethod}); C{UnsupportedVersion}: none
    at that version or in that namespace (the server's
    C{UnsupportedVersion}): a valid request naming something the servers
    do not have;
  - B{502} C{RemoteError}: the method raised; C{exc_type} is the remote
    exception's class name and C{message} its message (never the remote
    traceback);
  - B{503} C{UnroutableError}: no queue took the request (no server of the
    topic, or of that host, is consuming) within C{timeout} or
    C{kombu_missing_consumer_retry_timeout} seconds, whichever is shorter,
    or no queue can have the name C{<topic>.<server>} (over AMQP's 255
    bytes, so no server of that name can consume it: refused at once, not
    sent);
    C{DisconnectedError} / C{TransportError}: the broker connection was
    lost with the request (it is not sent again: it may or may not have
    run) or the broker did not take it (for a cast, within C{timeout});
    C{ServiceUnavailable}: the gateway is stopping; C{BrokerUnavailable}
    (C{"broker unavailable: ..."}): the transport is not connected, so the
    request is refused at once, before anything is sent;
  - B{504} C{MessagingTimeout}: no reply within C{timeout} seconds (the
    method may still run);
  - B{500} C{InternalError}: anything else; the traceback is logged once,
    the payload says only the request id.

Every error payload is C{{"error": {"code": <status>, "type": <name>,
"message": <text>}}}, plus C{field} for a C{BadRequest} and C{exc_type} for
a C{RemoteError}. Values a client chose are shortened in messages
(L{novasvc._text.quote}, L{novasvc._text.clip}).
"""

import math
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc._reactor import global_reactor_if_none
from novasvc.config import Config
from novasvc.context import RequestContext
from novasvc.exceptions import DisconnectedError, TransportError, UnroutableError
from novasvc.interfaces import ITransport
from novasvc.rpc import wire
from novasvc.rpc.client import UNROUTABLE_RETRY_INTERVAL, RPCClient
from novasvc._text import clip, quote
from novasvc.rpc.errors import InvalidTarget, MessagingTimeout, RPCVersionCapError
from novasvc.rpc.target import parse_version

__all__ = ["RPCGateway", "MAX_TIMEOUT", "TOPIC_MAX_LENGTH", "FIELDS"]

#: The longest C{timeout} a request may ask for, in B{seconds} (unless the
#: configuration's C{rpc_response_timeout} is longer).
MAX_TIMEOUT = 600.0
#: AMQP's limit on names and routing keys, in bytes.
_AMQP_NAME_MAX = 255
#: The longest topic: C{<topic>_fanout_<32 hex digits>} is a queue name.
TOPIC_MAX_LENGTH = _AMQP_NAME_MAX - len("_fanout_") - 32
#: The fields a request body may have.
FIELDS = ("method", "args", "server", "cast", "timeout", "version", "namespace", "fanout")

_TOPIC = re.compile(r"[A-Za-z0-9_.:-]+")
#: As the OpenAPI document's patterns (L{novasvc.api.openapi}).
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NAME = re.compile(r"[!-~]+")
_BODY_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}

_log = Logger()


def _kind(value: Any) -> str:
    """
    @return: what a JSON value is ("an object", "a string"...).
    """
    return _BODY_TYPES.get(type(value), type(value).__name__)


class _BadRequest(Exception):
    """
    The body or topic is invalid.

    @ivar field: the field at fault (C{"topic"} for the topic, C{"body"} for
        the whole body).
    @ivar message: what is wrong, with client values shortened.
    """

    def __init__(self, field: str, message: str) -> None:
        Exception.__init__(self, message)
        self.field = field
        self.message = message


@attrs.frozen
class _Request:
    """
    A valid request (see the module docstring for each field).
    """

    topic: str
    method: str
    args: Mapping[str, Any]
    timeout: float
    server: Optional[str] = None
    cast: bool = False
    version: Optional[str] = None
    namespace: Optional[str] = None
    fanout: bool = False


def _error(code: int, kind: str, message: str, **more: Any) -> Tuple[int, Dict[str, Any]]:
    """
    @return: C{(code, {"error": {"code", "type", "message", **more}})}.
    """
    return code, {"error": {"code": code, "type": kind, "message": message, **more}}


def _check_topic(topic: Any) -> str:
    if type(topic) is not str or not _TOPIC.fullmatch(topic) or len(topic) > TOPIC_MAX_LENGTH:
        raise _BadRequest("topic", f"the topic must be 1 to {TOPIC_MAX_LENGTH} letters, digits, '-', '_', '.' "
                                   f"or ':', not {quote(topic)}")
    return topic


def _check_name(body: Mapping[str, Any], field: str, limit: int = _AMQP_NAME_MAX) -> Optional[str]:
    """
    A server or namespace: C{None}, or 1 to C{limit} printable ASCII
    characters without white space.
    """
    value = body.get(field)
    if value is None:
        return None
    if type(value) is not str or len(value) > limit or not _NAME.fullmatch(value):
        raise _BadRequest(field, f"{field!r} must be 1 to {limit} printable ASCII characters without spaces, "
                                 f"not {quote(value)}")
    return value


def _check_flag(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field)
    if value is None:
        return False
    if type(value) is not bool:
        raise _BadRequest(field, f"{field!r} must be true or false, not {quote(value)}")
    return value


def _check_method(body: Mapping[str, Any]) -> str:
    method = body.get("method")
    if method is None:
        raise _BadRequest("method", "'method' is required: the name of the remote method")
    if type(method) is not str:
        raise _BadRequest("method", f"'method' must be a string, not {_kind(method)}: {quote(method)}")
    if len(method) > _AMQP_NAME_MAX:
        raise _BadRequest("method", f"'method' must be at most {_AMQP_NAME_MAX} characters, not {quote(method)}")
    if method.startswith("_"):
        raise _BadRequest("method", f"'method' must not start with '_' (private methods cannot be called): "
                                    f"{quote(method)}")
    if not _METHOD.fullmatch(method):
        raise _BadRequest("method", f"'method' must be a method name (an ASCII Python identifier), "
                                    f"not {quote(method)}")
    return method


def _check_args(body: Mapping[str, Any]) -> Mapping[str, Any]:
    args = body.get("args")
    if args is None:
        return {}
    if type(args) is not dict:
        raise _BadRequest("args", f"'args' must be an object of keyword arguments, not {_kind(args)}")
    for key in args:
        if type(key) is not str:
            raise _BadRequest("args", f"the names in 'args' must be strings, not {quote(key)}")
    try:
        wire.dumps(args)
    except (TypeError, ValueError, RecursionError) as e:
        raise _BadRequest("args", f"'args' cannot be sent as JSON: {clip(str(e))}") from None
    return args


def _check_timeout(body: Mapping[str, Any], default: float, limit: float) -> float:
    timeout = body.get("timeout")
    if timeout is None:
        return default
    if type(timeout) not in (int, float) or not math.isfinite(timeout) or not 0 < timeout <= limit:
        raise _BadRequest("timeout", f"'timeout' must be a number of seconds above 0 and at most {limit:g}, "
                                     f"not {quote(timeout)}")
    return float(timeout)


def _check_version(body: Mapping[str, Any]) -> Optional[str]:
    version = body.get("version")
    if version is None:
        return None
    try:
        parse_version(version)
    except ValueError:
        raise _BadRequest("version", f"'version' must be 'X.Y' or 'X.Y.Z' (integers), not {quote(version)}"
                          ) from None
    return version  # type: ignore[no-any-return]


def _parse(topic: Any, body: Any, default_timeout: float, max_timeout: float) -> _Request:
    """
    Validate a request.

    @return: the L{_Request}.
    @raise _BadRequest: naming the first field found invalid.
    """
    topic = _check_topic(topic)
    if type(body) is not dict:
        raise _BadRequest("body", f"the request body must be a JSON object, not {_kind(body)}")
    unknown = [key for key in body if key not in FIELDS]
    if unknown:
        names = ", ".join(quote(key) for key in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise _BadRequest(clip(str(unknown[0])) or "body", f"unknown field {names}{more}; the fields are "
                                                          f"{', '.join(FIELDS)}")
    request = _Request(topic=topic, method=_check_method(body), args=_check_args(body),
                       server=_check_name(body, "server"), cast=_check_flag(body, "cast"),
                       timeout=_check_timeout(body, default_timeout, max_timeout), version=_check_version(body),
                       namespace=_check_name(body, "namespace"), fanout=_check_flag(body, "fanout"))
    if request.fanout and not request.cast:
        raise _BadRequest("fanout", "'fanout' needs 'cast': true (a call needs one server to reply)")
    if request.fanout and request.server is not None:
        raise _BadRequest("fanout", "'fanout' and 'server' exclude each other")
    return request


def _nameless(request: _Request) -> bool:
    """
    @return: whether the request names a server whose queue
        C{<topic>.<server>} no broker can have (over AMQP's 255 bytes).
    """
    return (request.server is not None
            and len(f"{request.topic}.{request.server}".encode()) > _AMQP_NAME_MAX)


class RPCGateway:
    """
    Send the RPC requests of HTTP clients and turn their outcome into an
    HTTP status and a JSON payload (see the module docstring).

    One L{RPCClient} serves every request (made on the first one; its reply
    queue is the transport's, shared). Remote exceptions are never rebuilt
    as the application's classes (no C{allowed_remote_exmods}): they are
    reported by class name. A request lost with the broker connection is
    not sent again (C{retry=0}): the HTTP client gets a 503 and decides.
    """

    def __init__(self, transport: ITransport, config: Config, clock: Any = None, *,
                 max_timeout: float = MAX_TIMEOUT, tracing: Any = None) -> None:
        """
        @param transport: the broker connection, started and stopped by the
            owner.
        @param config: for C{rpc_response_timeout} (the default timeout),
            C{control_exchange}, C{durable_queues}, C{transient_queues_ttl}
            and C{kombu_missing_consumer_retry_timeout}.
        @param clock: C{IReactorTime} for timeouts; the global reactor when
            C{None}.
        @param max_timeout: the longest C{timeout} a request may ask for, in
            B{seconds}; raised to C{rpc_response_timeout} if shorter.
        @param tracing: the L{novasvc.tracing.Tracing} making each request
            an RPC client span (a child of its HTTP server span), or
            C{None}.
        @raise ValueError: when C{max_timeout} is not a positive number.
        """
        if not (isinstance(max_timeout, (int, float)) and math.isfinite(max_timeout) and max_timeout > 0):
            raise ValueError(f"max_timeout must be a positive number of seconds, not {max_timeout!r}")
        self._transport = transport
        self._config = config
        self._clock = clock
        self._default_timeout = float(config.rpc_response_timeout)
        self._max_timeout = max(float(max_timeout), self._default_timeout)
        self._client: Optional[RPCClient] = None
        self._tracing = tracing
        self._in_flight = 0
        self._idle: List[defer.Deferred] = []
        self._stopping = False

    def _get_client(self) -> RPCClient:
        if self._client is None:
            self._clock = global_reactor_if_none(self._clock)
            self._client = RPCClient.from_config(self._transport, self._config, clock=self._clock,
                                                 allowed_remote_exmods=(), retry=0, tracing=self._tracing)
        return self._client

    def handle(self, topic: str, body: Any, context: RequestContext) -> "defer.Deferred[Tuple[int, Dict[str, Any]]]":
        """
        Validate and send one request.

        @param topic: the topic, from the URL.
        @param body: the decoded JSON body (see the module docstring).
        @param context: the caller's context, sent with the request; it
            must be an admin's (C{is_admin}).
        @return: a C{Deferred} firing with C{(HTTP status, JSON-able
            payload)}; it never fails. Cancelling it stops waiting for the
            reply or the broker (the request may still run).
        """
        if self._stopping:
            return defer.succeed(_error(503, "ServiceUnavailable", "the RPC gateway is stopping"))
        if not getattr(context, "is_admin", False):
            return defer.succeed(_error(403, "Forbidden", "the RPC gateway is for admins only"))
        try:
            request = _parse(topic, body, self._default_timeout, self._max_timeout)
        except _BadRequest as e:
            return defer.succeed(_error(400, "BadRequest", e.message, field=e.field))
        if _nameless(request):
            return defer.succeed(_error(503, "UnroutableError", f"no server consumes topic "
                                        f"{quote(request.topic)}, server {quote(request.server)}: "
                                        f"no queue can have that name (over {_AMQP_NAME_MAX} "
                                        "bytes); the request was not sent"))
        if not getattr(self._transport, "is_connected", True):
            # Refused before sending: it cannot have run, so no "may still run".
            return defer.succeed(_error(503, "BrokerUnavailable", "broker unavailable: not "
                                        "connected to the message broker; the request was "
                                        "not sent"))
        try:
            d = self._send(request, context)
        except Exception:
            d = defer.fail()
        self._in_flight += 1
        d.addCallbacks(self._succeeded, self._failed, callbackArgs=(request, context),
                       errbackArgs=(request, context))
        return d.addBoth(self._settled)

    def _send(self, request: _Request, context: RequestContext) -> defer.Deferred:
        client = self._get_client().prepare(topic=request.topic, server=request.server, fanout=request.fanout,
                                            namespace=request.namespace, version=request.version,
                                            timeout=request.timeout)
        if not request.cast:
            return client.call(context, request.method, **request.args)
        # So that a cast no queue takes fails as unroutable before its
        # timeout, which says only that the broker did not take it.
        client.missing_consumer_retry_timeout = min(client.missing_consumer_retry_timeout,
                                                    max(0.0, request.timeout - UNROUTABLE_RETRY_INTERVAL))
        d = client.cast(context, request.method, **request.args)
        return d.addTimeout(request.timeout, self._clock)

    def _settled(self, result: Any) -> Any:
        self._in_flight -= 1
        if not self._in_flight:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
        return result

    def _succeeded(self, result: Any, request: _Request, context: RequestContext) -> Tuple[int, Dict[str, Any]]:
        if request.cast:
            return 202, {"accepted": True, "request_id": clip(getattr(context, "request_id", None))}
        return 200, {"result": result}

    def _failed(self, failure: Failure, request: _Request, context: RequestContext) -> Tuple[int, Dict[str, Any]]:
        answer = self._answer(failure, request, context)
        _log.debug("RPC gateway: {method} on topic {topic}: {code} {type}", method=quote(request.method),
                   topic=request.topic, code=answer[0], type=answer[1]["error"]["type"])
        return answer

    def _answer(self, failure: Failure, request: _Request, context: RequestContext) -> Tuple[int, Dict[str, Any]]:
        """
        @return: the status and payload for a request that failed.
        """
        origin = wire.remote_origin(failure.value)
        if origin is not None:
            exc_type, message = origin
            if exc_type == "NoSuchMethod":
                return _error(404, "NoSuchMethod", clip(message) or "no such method")
            if exc_type == "UnsupportedVersion":
                return _error(404, "UnsupportedVersion", clip(message) or "unsupported version")
            return _error(502, "RemoteError", clip(message), exc_type=clip(exc_type))
        where = f"topic {quote(request.topic)}"
        if request.server is not None:
            where = f"{where}, server {quote(request.server)}"
        if failure.check(MessagingTimeout):
            return _error(504, "MessagingTimeout", f"no reply to {quote(request.method)} from {where} within "
                                                   f"{request.timeout:g} s")
        if failure.check(UnroutableError):
            return _error(503, "UnroutableError", f"no server consumes {where}: no queue took the request")
        if failure.check(DisconnectedError):
            return _error(503, "DisconnectedError", "the broker connection was lost with the request, which was "
                                                    "not sent again (it may or may not have been delivered)")
        if failure.check(TransportError):
            return _error(503, "TransportError", f"the message broker did not take the request: "
                                                 f"{clip(failure.getErrorMessage())}")
        if failure.check(defer.TimeoutError):
            return _error(503, "TransportError", f"the message broker did not take the cast within "
                                                 f"{request.timeout:g} s")
        if failure.check(defer.CancelledError):
            return _error(503, "ServiceUnavailable", "the request was cancelled")
        if failure.check(InvalidTarget, RPCVersionCapError):
            return _error(400, "BadRequest", clip(failure.getErrorMessage()) or "invalid target", field="topic")
        request_id = clip(getattr(context, "request_id", None))
        _log.failure("RPC gateway: unexpected error sending {method} to topic {topic} (request {request_id})",
                     failure, method=quote(request.method), topic=request.topic, request_id=request_id)
        return _error(500, "InternalError", f"internal error (request {request_id}); see the API service's log")

    def stop(self) -> defer.Deferred:
        """
        Refuse new requests (503) and wait for those in flight, each bounded
        by its timeout.

        @return: a C{Deferred} firing with C{None} once every request in
            flight has its answer.
        """
        self._stopping = True
        if not self._in_flight:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._idle.append(d)
        return d
