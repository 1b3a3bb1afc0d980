# -*- test-case-name: tests.test_tracing -*-
"""
Tracing of RPC with OpenTelemetry, the role Nova gives its C{ManagerMeta}
and osprofiler: with C{tracing.enabled}, every call and cast a client sends
and every request a server runs is a span, and the W3C trace context
travels in the request context, so the spans of one request link into one
trace across services.

What is a span (all named C{<topic>.<method>}):

  - the client's: a call is a C{CLIENT} span from the send until the reply
    (or the error) arrives; a cast or fanout cast is a C{PRODUCER} span until
    the broker confirmed it (OpenTelemetry's kind for a one-way message);
  - the server's: the run of a manager method, a C{SERVER} span for a call
    and a C{CONSUMER} span for a cast, ended when the method's result is
    ready (a C{Deferred} or coroutine: when it fires), with status C{ERROR}
    and the exception recorded when it raised. A request the dispatcher
    refuses (unknown or private method, unsupported version) is a span named
    C{<topic>} with the error.

The trace context travels as the context entries C{traceparent} and
C{tracestate} (C{_context_traceparent}, C{_context_tracestate} on the
wire), the keys oslo.messaging's own OpenTelemetry tracing injects into
the context: an oslo peer with tracing on continues our traces and we
continue its, and one without it passes the entries through like any other
context key. A client's span is the child of the current span (a manager
method making a call while it runs, or in a coroutine or C{inlineCallbacks}
it returned), else of the trace context its request context carries (the
server puts its span's there, so a call made later from a plain
C{Deferred} callback with the same context links too), else it starts a
trace. A C{traceparent} or C{tracestate} that is not a well-formed string
of at most 512 characters is ignored (the request starts a new trace) and
never logged.

This package imports nothing of OpenTelemetry: L{Tracing} (imported from
here on first use) does. A process without tracing enabled never imports
it.

Tracing is a hook handed to each client and server that should trace
(C{RPCClient(..., tracing=)}, C{RPCServer(..., tracing=)}), never process
state: a service with tracing on traces its own server and the clients its
manager makes with C{manager.tracing}, not every client of the process.

Layer: above the RPC layer (it reads L{novasvc.rpc.wire}'s context prefix),
beside L{novasvc.notify}; nothing below imports it: the core hands a tracing
hook to the clients and servers that use it.
"""

from novasvc._lazy import lazy_exports

__all__ = ["Tracing"]

_EXPORTS = {"Tracing": "novasvc.tracing._spans"}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
