# -*- test-case-name: tests.test_tracing -*-
"""
L{Tracing}: the spans of RPC clients and servers, and the W3C trace context
they carry in the request context (see L{novasvc.tracing}).
"""

import re
from typing import Any, Dict, Mapping, Optional, Tuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from twisted.internet import defer
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc._text import clip
from novasvc._version import __version__
from novasvc.rpc.wire import CONTEXT_PREFIX
from novasvc.tracing._provider import exporter_factory, make_provider

__all__ = ["Tracing", "TRACEPARENT", "TRACESTATE", "HEADER_LIMIT", "RPC_SYSTEM"]

#: The context entries that carry the W3C trace context (the header names).
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: The most characters of a C{traceparent} or C{tracestate} read from a
#: context; a longer one is ignored.
HEADER_LIMIT = 512
#: The spans' C{rpc.system} attribute.
RPC_SYSTEM = "oslo_messaging"

_log = Logger()
_PROPAGATOR = TraceContextTextMapPropagator()
# A tracestate list member, as the W3C Trace Context grammar has it: a key
# (lower-case, optionally "tenant@vendor") "=" a value of printable ASCII
# without "," and "=", not ending with a space.
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_TRACESTATE_MEMBERS = 32


class Tracing:
    """
    The tracing of one process's RPC: L{client_span} for the RPC clients,
    L{invoke} for the RPC servers.

    @ivar service_name: the C{service.name} of the provider set up for the
        exporter.
    @ivar host: the host name, the servers' C{server.address} default and
        the provider's C{host.name}.
    @ivar exporter: C{"none"}, C{"console"} or C{"otlp"}.
    @ivar running: whether L{start} ran and L{stop} did not since: the
        clients given this tracing trace only then.
    @ivar tracer_provider: the C{TracerProvider} the spans go to; C{None}
        for the process's global one (OpenTelemetry's
        C{trace.get_tracer_provider()}, which follows a provider set later),
        until L{start} sets up the exporter's.
    """

    def __init__(self, service_name: str, host: str, exporter: str = "none", *,
                 tracer_provider: Any = None, reactor: Any = None) -> None:
        """
        @param service_name: see L{service_name}.
        @param host: see L{host}.
        @param exporter: C{"none"}: the spans go to C{tracer_provider}, or
            the global provider; C{"console"} or C{"otlp"}: L{start} sets up
            an OpenTelemetry SDK provider exporting there (and makes it the
            global one when none is set), unless C{tracer_provider} is given.
        @param tracer_provider: see L{tracer_provider}.
        @param reactor: the reactor whose thread pool shuts the exporter's
            provider down (flushing its spans) in L{stop}; without
            C{IReactorThreads} that runs in the calling thread.
        @raise novasvc.exceptions.ConfigError: when C{exporter} is unknown,
            or the packages it needs are not installed (the message says
            which to install).
        """
        self.service_name = service_name
        self.running = False
        self.host = host
        self.exporter = exporter
        self.tracer_provider = tracer_provider
        self._reactor = reactor
        self._made: Any = None
        self._tracer: Any = None
        self._make_exporter = exporter_factory(exporter)

    @classmethod
    def from_config(cls, config: Any, binary: str, host: str, reactor: Any = None) -> "Tracing":
        """
        @param config: a L{novasvc.config.TracingConfig}.
        @param binary: the service's binary, the default service name.
        @param host: the service's host.
        @param reactor: see L{__init__}.
        @rtype: L{Tracing}
        @raise novasvc.exceptions.ConfigError: see L{__init__}.
        """
        return cls(config.service_name or binary, host, config.exporter, reactor=reactor)

    @property
    def tracer(self) -> Any:
        """
        The OpenTelemetry C{Tracer} (instrumentation C{novasvc}) of
        L{tracer_provider}.
        """
        if self._tracer is None:
            provider = self.tracer_provider if self.tracer_provider is not None else trace.get_tracer_provider()
            self._tracer = provider.get_tracer("novasvc", __version__)
        return self._tracer

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """
        Set up the exporter's provider (when C{exporter} asks for one and no
        C{tracer_provider} was given); the clients given this tracing trace
        from now on.
        """
        if self._make_exporter is not None and self.tracer_provider is None:
            self._made = self.tracer_provider = make_provider(self._make_exporter, self.exporter,
                                                              self.service_name, self.host)
            self._tracer = None
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                trace.set_tracer_provider(self._made)
        self.running = True

    def stop(self) -> defer.Deferred:
        """
        Stop tracing the clients given this tracing; shut down the provider
        L{start} set up, which exports the spans it still holds.

        @return: a C{Deferred} firing with C{None} once that is done (it
            never fails; a failure is logged).
        """
        self.running = False
        made, self._made = self._made, None
        if made is None:
            return defer.succeed(None)
        self.tracer_provider = self._tracer = None
        reactor = self._reactor
        if IReactorThreads.providedBy(reactor):
            d = deferToThreadPool(reactor, reactor.getThreadPool(), made.shutdown)
        else:
            d = defer.maybeDeferred(made.shutdown)
        d.addErrback(lambda f: _log.failure("Shutting down the tracer provider failed", f))
        return d.addCallback(lambda _: None)

    # -- client side ------------------------------------------------------------

    def client_span(self, target: Any, kind: str, method: str, entries: Mapping[str, Any], prefixed: bool,
                    routing_key: str, msg_id: Optional[str] = None) -> Tuple[Mapping[str, Any], Any]:
        """
        Start the span of a request a client sends, and put its trace
        context into the request's context entries.

        @param target: the client's L{novasvc.rpc.target.Target}.
        @param kind: C{"call"}, C{"cast"} or C{"fanout"}.
        @param method: the remote method.
        @param entries: the request's context entries (not changed).
        @param prefixed: whether their keys start with C{_context_}.
        @param routing_key: where the request goes (C{messaging.destination.name}).
        @param msg_id: a call's C{_msg_id}.
        @return: the entries with C{traceparent} (and C{tracestate}) set, and
            the span to pass to L{follow}; C{entries} itself and C{None}
            when the span could not be made (logged).
        """
        try:
            prefix = CONTEXT_PREFIX if prefixed else ""
            parent = None  # the current context
            if not trace.get_current_span().get_span_context().is_valid:
                parent = _extract(entries, prefix)
            attributes: Dict[str, Any] = {
                "rpc.system": RPC_SYSTEM, "rpc.service": target.topic, "rpc.method": method,
                "messaging.operation": kind, "messaging.destination.name": routing_key,
            }
            if target.server:
                attributes["server.address"] = target.server
            if msg_id is not None:
                attributes["messaging.message.id"] = msg_id
            _optional(attributes, "openstack.request_id", entries.get(prefix + "request_id"))
            _optional(attributes, "rpc.oslo.namespace", target.namespace)
            _optional(attributes, "rpc.oslo.version", target.version)
            span = self.tracer.start_span(f"{target.topic}.{method}", context=parent,
                                          kind=SpanKind.CLIENT if kind == "call" else SpanKind.PRODUCER,
                                          attributes=attributes)
            entries = dict(entries)
            _inject(span, entries, prefix)
            return entries, span
        except Exception:
            _log.failure("Could not trace the RPC {kind} {method!r}", kind=kind, method=clip(method))
            return entries, None

    def follow(self, d: defer.Deferred, span: Any) -> defer.Deferred:
        """
        End C{span} when C{d} fires: with status C{ERROR} and the exception
        recorded when it fails.

        @return: C{d}, with the same result.
        """
        return d.addBoth(_end, span)

    # -- server side ------------------------------------------------------------

    def http_server_span(self, method: str, route: str, headers: Mapping[str, str],
                         attributes: Mapping[str, Any]) -> Any:
        """
        Start the C{SERVER} span of one HTTP request to the API, named
        C{"<method> <route template>"}: the child of a well-formed W3C
        C{traceparent} (and C{tracestate}) the client sent, else the root
        of a new trace. Pass it to L{inject} for the RPC requests made for
        it, and end it (C{span.end()}) once answered.

        @param headers: C{traceparent} and C{tracestate} as sent, if any.
        @return: the span, or C{None} when it could not be made (logged).
        """
        try:
            parent = _extract(headers, "")
            return self.tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER,
                                          attributes=dict(attributes))
        except Exception:
            _log.failure("Could not trace the HTTP request {method} {route}", method=clip(method),
                         route=route)
            return None

    @staticmethod
    def inject(span: Any, entries: Dict[str, Any]) -> None:
        """
        Write C{span}'s trace context into C{entries} (a request context's
        C{extra}), so that the client span of an RPC request made with that
        context is its child.
        """
        _inject(span, entries, "")


    def invoke(self, dispatcher: Any, ctxt: Any, request: Any, target: Any) -> Any:
        """
        Run a request's method, as C{dispatcher.invoke}, in a span: the
        child of the trace context the request's context carries, current
        while the method runs (and in the coroutine it returns), and put in
        C{ctxt} (as C{traceparent} and C{tracestate} in its C{extra}) for
        the calls the method makes with it.

        @param dispatcher: the L{novasvc.rpc.dispatcher.RPCDispatcher}.
        @param ctxt: the L{novasvc.context.RequestContext} built from the
            request; with a serializer, the request's context entries (a
            C{dict}, where the trace context is put, so that the context
            C{deserialize_context} makes of them carries it).
        @param request: the L{novasvc.rpc.wire.Request}.
        @param target: the server's target (topic and host).
        @return: what C{dispatcher.invoke} returns; a C{Deferred} result
            ends the span when it fires.
        @raise Exception: what C{dispatcher.invoke} raises (recorded).
        """
        call = request.is_call
        kind = SpanKind.SERVER if call else SpanKind.CONSUMER
        parent = _extract(request.message, CONTEXT_PREFIX)
        attributes: Dict[str, Any] = {
            "rpc.system": RPC_SYSTEM, "rpc.service": target.topic, "rpc.method": clip(request.method),
            "messaging.operation": "call" if call else "cast", "server.address": target.server,
        }
        _optional(attributes, "messaging.message.id", clip(request.msg_id))
        entries = ctxt if type(ctxt) is dict else None
        request_id = getattr(ctxt, "request_id", None) if entries is None else entries.get("request_id")
        _optional(attributes, "openstack.request_id", clip(request_id))
        _optional(attributes, "rpc.oslo.namespace", clip(request.namespace))
        _optional(attributes, "rpc.oslo.version", clip(request.version))
        tracer = self.tracer
        try:
            dispatcher.resolve(request.method, request.namespace, request.version)
        except Exception as e:
            # Refused: not named after a client's choice of method name.
            span = tracer.start_span(target.topic, context=parent, kind=kind, attributes=attributes)
            _end(Failure(e), span)
            raise
        span = tracer.start_span(f"{target.topic}.{request.method}", context=parent, kind=kind,
                                 attributes=attributes)
        current = trace.set_span_in_context(span, parent)
        extra = getattr(ctxt, "extra", None) if entries is None else entries
        if isinstance(extra, dict):
            _inject(span, extra, "")
        token = otel_context.attach(current)
        try:
            result = dispatcher.invoke(ctxt, request.method, request.args, request.namespace, request.version)
        except BaseException as e:
            _end(Failure(e), span)
            raise
        finally:
            otel_context.detach(token)
        if isinstance(result, defer.Deferred):
            return result.addBoth(_end, span)
        span.end()
        return result


def _optional(attributes: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        attributes[key] = value if isinstance(value, str) else clip(value)


def _extract(entries: Mapping[str, Any], prefix: str) -> Context:
    """
    @return: the OpenTelemetry context of the trace context in C{entries}
        (an empty one when there is none, or it is not a well-formed string
        of at most L{HEADER_LIMIT} characters); an unusable C{tracestate}
        alone is dropped. Nothing is logged.
    """
    traceparent = entries.get(prefix + TRACEPARENT)
    if type(traceparent) is not str or len(traceparent) > HEADER_LIMIT:
        return Context()
    carrier = {TRACEPARENT: traceparent}
    tracestate = entries.get(prefix + TRACESTATE)
    if type(tracestate) is str and _usable_tracestate(tracestate):
        carrier[TRACESTATE] = tracestate
    return _PROPAGATOR.extract(carrier)


def _usable_tracestate(text: str) -> bool:
    """
    @return: whether C{text} is a W3C C{tracestate} OpenTelemetry reads
        without complaint: at most L{HEADER_LIMIT} characters, at most 32
        well-formed members, no key twice.
    """
    if len(text) > HEADER_LIMIT:
        return False
    keys = set()
    for member in text.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        if _TRACESTATE_MEMBER.fullmatch(member) is None:
            return False
        key = member.partition("=")[0]
        if key in keys:
            return False
        keys.add(key)
    return len(keys) <= _TRACESTATE_MEMBERS


def _inject(span: Any, entries: Dict[str, Any], prefix: str) -> None:
    """
    Write C{span}'s trace context into C{entries}, replacing (or removing)
    what they carried.
    """
    carrier: Dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    for key in (TRACEPARENT, TRACESTATE):
        value = carrier.get(key)
        if value is None:
            entries.pop(prefix + key, None)
        else:
            entries[prefix + key] = value


def _end(result: Any, span: Any) -> Any:
    """
    End C{span}; a L{Failure} C{result} sets its status to C{ERROR} and is
    recorded as its exception (the message cut by
    L{novasvc._text.clip}).

    @return: C{result}.
    """
    try:
        if isinstance(result, Failure):
            error = result.value
            try:
                message = clip(str(error)) or ""
            except Exception:
                message = f"<{type(error).__name__}>"
            span.record_exception(error, attributes={"exception.message": message})
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"))
        span.end()
    except Exception:
        _log.failure("Could not end an RPC span")
    return result
