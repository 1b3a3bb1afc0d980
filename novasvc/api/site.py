# -*- test-case-name: tests.test_api_site -*-
"""
L{build_site}: the API's C{twisted.web} site, from an L{APIContext}: the
application and its filters as C{api.app} and C{api.filters} name them, the
request limits, JSON errors, and one access log line per request.

Limits, checked before the excess is read and never buffered:

  - a request target longer than C{api.max_url_len} bytes gets 414;
  - a C{Content-Length} over C{api.max_body_size} gets 413 as soon as the
    headers are in (no C{100 Continue} is sent); a chunked body is counted
    as it arrives and gets 413 once it passes the limit.

Either way the error is the API's JSON error, the connection closes after
it, and what the client still sends is read and dropped for at most
C{api.linger} seconds, so that the client reads the answer rather than a
reset.

The site also takes from the C{api:} section the read deadlines and the
cap on connections of L{novasvc.api._deadlines} (C{api.header_timeout},
C{api.body_timeout}, C{api.max_connections}), the requests handled at once
of L{novasvc.api.observe} (C{api.max_in_flight}, C{api.max_waiting}) and
the C{Retry-After} of its 503s (C{api.retry_after}).

The access log line (Twisted's C{Site} log formatter, to the process log)
gives the client, the method, the path (clipped), the status, the duration,
the request id and the name of the token used: never the token or the
C{Authorization} header.
"""

import io
import re
from typing import Any, Optional
from urllib.parse import unquote_to_bytes

import attrs
from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import IResource

from novasvc.api._deadlines import ReadDeadlines
from novasvc.api.context import APIContext, request_info
from novasvc.api.errors import JSON_TYPE, error_payload, json_body, render_error, status_title
from novasvc.api.request_id import SAFE_REQUEST_ID
from novasvc.config.api import BODY_TIMEOUT, HEADER_TIMEOUT, LINGER, MAX_CONNECTIONS, RETRY_AFTER
from novasvc.config.loader import load_object
from novasvc.exceptions import ConfigError, LoadError
from novasvc._text import clip

__all__ = ["APISite", "build_site", "load_resource"]

_log = Logger()

#: Bytes a refused connection drops before it closes anyway.
_LINGER_BYTES = 1 << 20
#: The method, spaces and C{HTTP/1.1} around the request target.
_REQUEST_LINE_OVERHEAD = 64
#: Bodies up to this size are kept in memory, larger ones in a file.
_IN_MEMORY = 1 << 20


@attrs.frozen
class _Limits:
    max_url_len: int
    max_body_size: int


def _printable(data: bytes) -> str:
    text = data.decode("latin-1")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


#: Query parameter names whose values the access log never shows.
_SECRET_NAME = re.compile(rb"token|auth|key|secret|passw|credential|session", re.IGNORECASE)


def _redacted(uri: bytes) -> bytes:
    """
    @return: C{uri} with the value of each query parameter whose name looks
        like a secret (C{?access_token=...}) replaced by C{<redacted>}.
    """
    path, mark, query = uri.partition(b"?")
    if not mark:
        return uri
    pairs = []
    for pair in query.split(b"&"):
        name, equals, _ = pair.partition(b"=")
        if equals and _SECRET_NAME.search(unquote_to_bytes(name)):
            pair = name + b"=<redacted>"
        pairs.append(pair)
    return path + b"?" + b"&".join(pairs)


def _access_line(timestamp: Optional[str], request: "_APIRequest") -> str:
    """
    The access log line of a request (a Twisted C{IAccessLogFormatter}).
    """
    info = request_info(request)
    principal = info.principal
    address = request.getClientAddress()
    client = getattr(address, "host", None) or getattr(address, "name", None) or "-"
    if isinstance(client, bytes):
        client = client.decode("utf-8", "replace")
    seconds = request.elapsed()
    return (f'API {client} "{clip(_printable(request.method))} {clip(_printable(_redacted(request.uri)))}" '
            f'{request.code} {request.sentLength} {seconds:.3f}s request_id={info.request_id} '
            f'user={principal.name if principal else "-"}')


class _APIRequest(server.Request):
    """
    A request that counts its body against C{api.max_body_size}, answers a
    processing failure with a JSON 500, and does not name the server
    software.
    """

    _refused = False
    _received = 0

    def __init__(self, channel: "_APIChannel", *args: Any, **kwargs: Any) -> None:
        server.Request.__init__(self, channel, *args, **kwargs)
        self._limits: _Limits = channel.site.limits
        self._clock = channel.site.reactor
        self._started = self._clock.seconds()

    def elapsed(self) -> float:
        """
        @return: B{seconds} since the request line arrived.
        """
        return self._clock.seconds() - self._started

    def gotLength(self, length: Optional[int]) -> None:
        if length is None and self._limits.max_body_size <= _IN_MEMORY:
            self.content = io.BytesIO()  # chunked, and bounded: no temporary file
            return
        server.Request.gotLength(self, length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limits.max_body_size:
            self.channel.refuse(self, 413, f"the request body is over "
                                f"{self._limits.max_body_size} bytes")
            return
        server.Request.handleContentChunk(self, data)

    def refuse(self, code: int, message: str) -> None:
        """
        Answer with an error at once, before the request was read whole,
        and close the connection after it.
        """
        self._refused = True
        given = self.requestHeaders.getRawHeaders(b"x-request-id", [None])[0]
        if given is not None and SAFE_REQUEST_ID.fullmatch(given):
            request_info(self).request_id = given.decode("ascii")
        body = json_body(error_payload(code, message))
        self.setResponseCode(code, status_title(code).encode("ascii"))
        self.setHeader(b"Content-Type", JSON_TYPE)
        self.setHeader(b"Content-Length", b"%d" % len(body))
        self.setHeader(b"Connection", b"close")
        self.setHeader(b"X-Request-Id", request_info(self).request_id.encode("ascii"))
        self.write(body)
        self.finish()

    def process(self) -> None:
        observer = self.channel.site.observer
        if observer is None:
            server.Request.process(self)
            return
        if not observer.admit(self, lambda: server.Request.process(self)):
            given = self.requestHeaders.getRawHeaders(b"x-request-id", [None])[0]
            if given is not None and SAFE_REQUEST_ID.fullmatch(given):
                request_info(self).request_id = given.decode("ascii")
            self.setHeader(b"X-Request-Id", request_info(self).request_id.encode("ascii"))
            self.setHeader(b"Retry-After", b"%d" % self.channel.site.retry_after)
            self.write(render_error(self, 503, f"the API is busy ({observer.in_flight} requests "
                                    f"handled, {len(observer.waiting)} waiting); retry later"))
            self.finish()

    def finish(self) -> None:
        observer = self.channel.site.observer if self.channel is not None else None
        if observer is None:
            server.Request.finish(self)
            return
        with observer.spending():
            server.Request.finish(self)

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self.responseHeaders.removeHeader(b"server")
        server.Request.write(self, data)

    def processingFailed(self, reason: Failure) -> Any:
        request_id = request_info(self).request_id
        _log.failure("Error handling {method} {path} (request {request_id})", reason,
                     method=clip(_printable(self.method)), path=clip(_printable(self.path or b"")),
                     request_id=request_id)
        body = json_body(error_payload(500, f"internal error (request {request_id}); "
                                       "the server's log has the details"))
        self.setResponseCode(500)
        self.setHeader(b"Content-Type", JSON_TYPE)
        self.setHeader(b"Content-Length", b"%d" % len(body))
        self.write(body)
        self.finish()
        return reason


class _APIChannel(ReadDeadlines, http.HTTPChannel):
    """
    An HTTP/1.1 channel that refuses a long request target (414) or a large
    body (413) before reading it, then drops the rest of the connection's
    input for a short while before closing.
    """

    _refused = False
    _dropped = 0
    _linger_call: Any = None

    def __init__(self, limits: _Limits) -> None:
        http.HTTPChannel.__init__(self)
        self._limits = limits
        self.MAX_LENGTH = max(self.MAX_LENGTH, limits.max_url_len + _REQUEST_LINE_OVERHEAD)
        self.totalHeadersSize = self.totalHeadersSize + limits.max_url_len

    def _in_request_line(self) -> bool:
        # HTTPChannel keeps the request line's parts until the body is in.
        return "_command" not in self.__dict__

    def refuse(self, request: _APIRequest, code: int, message: str) -> None:
        """
        Answer C{request} with an error now and close after it.
        """
        if self._refused:
            return
        self._refused = True
        self.persistent = False
        if not self._in_request_line():
            request.method, request.uri = self._command, self._path
            request.clientproto = self._version
        request.path = request.uri.split(b"?", 1)[0]
        request.refuse(code, message)

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        first = self._in_request_line()
        http.HTTPChannel.lineReceived(self, line)
        if (first and not self._refused and not self._in_request_line()
                and len(self._path) > self._limits.max_url_len):
            self.refuse(self.requests[-1], 414, self._too_long())

    def _too_long(self) -> str:
        return f"the request target is over {self._limits.max_url_len} bytes"

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._refused:
            return
        if not self._in_request_line():
            self.refuse(self.requests[-1], 431, f"a header line is over {self.MAX_LENGTH} bytes")
            return
        request = self.requestFactory(self, len(self.requests))
        self.requests.append(request)
        method, _, rest = line.partition(b" ")
        request.method, request.uri = method[:16], rest[:256]
        request.clientproto = b"HTTP/1.1"
        self.refuse(request, 414, self._too_long())

    def allHeadersReceived(self) -> None:
        if self._refused:
            return
        self.deadlines_headers_done()
        if self.length is not None and self.length > self._limits.max_body_size:
            self.refuse(self.requests[-1], 413, f"the request body is {self.length} bytes; "
                        f"the most is {self._limits.max_body_size}")
            return
        http.HTTPChannel.allHeadersReceived(self)

    def _respondToBadRequestAndDisconnect(self) -> None:
        # HTTPChannel's answer to a request it cannot parse (a bad request
        # line or header), in the API's JSON shape.
        body = json_body(error_payload(400, "the request is not valid HTTP/1.1"))
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))
        self.loseConnection()

    def allContentReceived(self) -> None:
        self.deadlines_body_done()
        if not self._refused:
            http.HTTPChannel.allContentReceived(self)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            self._drop(data)
            return
        http.HTTPChannel.rawDataReceived(self, data)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            self._drop(data)
            return
        self.deadlines_data()
        observer = self.site.observer
        if observer is None:
            http.HTTPChannel.dataReceived(self, data)
            return
        with observer.spending():
            http.HTTPChannel.dataReceived(self, data)

    def _drop(self, data: bytes) -> None:
        self._dropped += len(data)
        if self._dropped > _LINGER_BYTES:
            self._close_now()

    def loseConnection(self) -> None:
        if not self._refused:
            http.HTTPChannel.loseConnection(self)
            return
        # Say we are done writing, keep reading (and dropping) for a while:
        # closing with unread input would reset the connection, and the
        # client could lose the answer.
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is None or not ITCPTransport.providedBy(self.transport):
            http.HTTPChannel.loseConnection(self)
            return
        self._networkProducer.unregisterProducer()
        half_close()
        if self._linger_call is None:
            self._linger_call = self.callLater(self.site.linger, self._close_now)

    def _close_now(self) -> None:
        call, self._linger_call = self._linger_call, None
        if call is not None and call.active():
            call.cancel()
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionMade(self) -> None:
        http.HTTPChannel.connectionMade(self)
        if not self.deadlines_connected():
            return
        if self.site.connections is not None:
            self.site.connections.opened(self)

    def requestDone(self, request: _APIRequest) -> None:
        self.deadlines_request_done()
        if self.site.closing:
            self.persistent = False  # the API stops: no next request here
        http.HTTPChannel.requestDone(self, request)

    def connectionLost(self, reason: Failure) -> None:
        call, self._linger_call = self._linger_call, None
        if call is not None and call.active():
            call.cancel()
        http.HTTPChannel.connectionLost(self, reason)
        self.deadlines_lost()
        if self.site.connections is not None and not self._over_capacity:
            self.site.connections.closed(self)


class APISite(server.Site):
    """
    The API's site: L{_APIRequest}s on L{_APIChannel}s (HTTP/1.1 only), no
    form parsing of bodies, and the access log line of L{_access_line}.

    @ivar limits: the request limits.
    @ivar closing: C{True} once the API stops: connections close after
        their current request.
    @ivar connections: what keeps track of the open connections (see
        L{novasvc.api.service}), or C{None}.
    @ivar header_timeout: B{seconds} a request's headers may take to arrive
        (from its first byte); L{ReadDeadlines}.
    @ivar body_timeout: B{seconds} its body may take after the headers.
    @ivar max_connections: open connections accepted; more get 503.
    @ivar retry_after: B{seconds} its 503s tell the client to wait.
    @ivar linger: B{seconds} a refused connection reads and drops what the
        client still sends before it closes.
    @ivar open_connections: connections open now.
    @ivar observer: the L{novasvc.api.observe.Observer} of its requests
        (metrics, spans, the limit of requests in flight), or C{None}.
    """

    requestFactory = _APIRequest
    noisy = False
    closing = False
    connections: Any = None
    observer: Any = None
    open_connections = 0

    def __init__(self, resource: IResource, *, max_url_len: int, max_body_size: int,
                 reactor: Any, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 retry_after: int = RETRY_AFTER, linger: float = LINGER) -> None:
        server.Site.__init__(self, resource, parsePOSTFormSubmission=False,
                             logFormatter=_access_line, reactor=reactor)
        self.limits = _Limits(max_url_len=max_url_len, max_body_size=max_body_size)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.retry_after = retry_after
        self.linger = linger

    def protocol(self) -> _APIChannel:  # type: ignore[override]
        return _APIChannel(self.limits)

    def acceptableProtocols(self) -> list:
        return [b"http/1.1"]


def load_resource(path: str, what: str, *args: Any) -> IResource:
    """
    Call the factory C{path} names with C{args}.

    @param what: C{"api.app"} or C{"api.filters[N]"}, for the message.
    @return: the resource it returns.
    @raise ConfigError: when the path cannot be imported or the result is
        not an C{IResource}.
    """
    try:
        factory = load_object(path)
    except LoadError as e:
        hint = " (the API needs klein: pip install 'novasvc[api]')" if "klein" in str(e) else ""
        raise ConfigError(f"{what}: {e}{hint}") from None
    resource = factory(*args)
    if not IResource.providedBy(resource):
        raise ConfigError(f"{what}: {path} returned {type(resource).__name__}, not an IResource")
    return resource


def build_site(context: APIContext) -> APISite:
    """
    Build the API's site: C{api.app} called with C{context}, wrapped by each
    of C{api.filters} (the first outermost), behind the request limits.
    This is all a worker process needs to serve the API.

    @param context: the L{APIContext}; C{context.clock} is the reactor the
        site uses for timeouts and durations.
    @return: the L{APISite}.
    @raise ConfigError: when the application or a filter cannot be loaded,
        or does not return an C{IResource}.
    """
    api = context.config.api
    resource = load_resource(api.app, "api.app", context)
    for index in reversed(range(len(api.filters))):
        resource = load_resource(api.filters[index], f"api.filters[{index}]", resource, context)
    site = APISite(resource, max_url_len=api.max_url_len, max_body_size=api.max_body_size,
                   reactor=context.clock, header_timeout=api.header_timeout,
                   body_timeout=api.body_timeout, max_connections=api.max_connections,
                   retry_after=api.retry_after, linger=api.linger)
    from novasvc.api.observe import Observer
    from novasvc.metrics import get_recorder

    recorder = context.recorder if context.recorder is not None else get_recorder()
    site.observer = Observer(recorder, context.clock, max_in_flight=api.max_in_flight,
                             max_waiting=api.max_waiting,
                             tracing=getattr(context, "tracing", None))
    return site
