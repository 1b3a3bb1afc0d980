"""
Tests for L{novasvc.tracing}: spans of RPC clients and servers with the
OpenTelemetry SDK's in-memory exporter, over the memory transport, the real
RabbitMQ and an unmodified oslo.messaging peer.
"""

import json
import os
import subprocess
import sys
import uuid
from typing import Any, List
from unittest import mock

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from twisted.internet import defer, reactor, task
from twisted.internet.testing import EventLoggingObserver
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

import novasvc.tracing
from novasvc.config import Config, TracingConfig
from novasvc.context import RequestContext
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.echo import EchoManager
from novasvc.exceptions import ConfigError
from novasvc.rpc.client import RPCClient
from novasvc._text import QUOTE_LIMIT
from novasvc.rpc.errors import RemoteError
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.core.service import Service
from novasvc.tracing import Tracing
from novasvc.tracing._provider import exporter_factory
from novasvc.transport.memory import MemoryBroker, MemoryTransport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: A valid W3C traceparent from some other tracer (an oslo peer, an API).
FOREIGN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
FOREIGN_SPAN = "00f067aa0ba902b7"
FOREIGN = f"00-{FOREIGN_TRACE}-{FOREIGN_SPAN}-01"


def traceparent(span: Any) -> str:
    """
    @return: the W3C traceparent of an SDK span.
    """
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def _provider() -> Any:
    """
    @return: an SDK tracer provider and the in-memory exporter its spans go
        to as they end.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class Back:
    """
    The endpoint of service "b".
    """

    def __init__(self) -> None:
        self.pending: List[defer.Deferred] = []
        self.contexts: List[Any] = []

    def echo(self, ctxt, value):
        self.contexts.append(ctxt)
        return value

    def note(self, ctxt, value):
        self.contexts.append(ctxt)

    def fail(self, ctxt):
        raise ValueError("it failed")

    def slow(self, ctxt):
        d: defer.Deferred = defer.Deferred()
        self.pending.append(d)
        return d


class Front:
    """
    The endpoint of service "a", which calls service "b".
    """

    def __init__(self, back: RPCClient, clock: task.Clock) -> None:
        self.back = back
        self.clock = clock
        self.current: List[Any] = []

    def relay(self, ctxt, value):
        return self.back.call(ctxt, "echo", value=value)

    async def relay_later(self, ctxt, value):
        await task.deferLater(self.clock, 1, lambda: None)
        # A fresh context: only the current span can link the call.
        return await self.back.call(RequestContext(), "echo", value=value)

    def relay_from_callback(self, ctxt, value):
        def later(_):
            self.current.append(trace.get_current_span().get_span_context().is_valid)
            return self.back.call(ctxt, "echo", value=value)

        return task.deferLater(self.clock, 1, lambda: None).addCallback(later)


class _Harness:
    """
    Services "a" (host "host-a", L{Front}) and "b" (host "host-b", L{Back})
    over one memory broker, traced to an in-memory exporter; a client of
    "a".
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.provider, self.exporter = _provider()
        self.tracing = Tracing("test", "host-a", tracer_provider=self.provider)
        self.tracing.start()
        self.addCleanup(self.tracing.stop)
        self.back = Back()
        self.front = Front(self.rpc_client("b"), self.clock)
        self.serve("b", "host-b", self.back)
        self.serve("a", "host-a", self.front)
        self.client = self.rpc_client("a")

    def transport(self) -> MemoryTransport:
        return MemoryTransport(broker=self.broker, clock=self.clock)

    def rpc_client(self, topic: str) -> RPCClient:
        return RPCClient(self.transport(), Target(topic=topic), clock=self.clock, tracing=self.tracing)

    def serve(self, topic: str, host: str, endpoint: Any, tracing: Any = None) -> RPCServer:
        server = RPCServer(self.transport(), Target(topic=topic, server=host), [endpoint], clock=self.clock,
                           tracing=tracing or self.tracing)
        self.successResultOf(server.start())  # type: ignore[attr-defined]
        return server

    def spans(self) -> List[Any]:
        return list(self.exporter.get_finished_spans())

    def one(self, name: str, kind: SpanKind) -> Any:
        found = [s for s in self.spans() if s.name == name and s.kind == kind]
        self.assertEqual(len(found), 1, [(s.name, s.kind) for s in self.spans()])  # type: ignore[attr-defined]
        return found[0]

    def assertChild(self, child: Any, parent: Any) -> None:
        self.assertIsNotNone(child.parent)  # type: ignore[attr-defined]
        self.assertEqual(child.parent.span_id, parent.context.span_id)  # type: ignore[attr-defined]
        self.assertEqual(child.context.trace_id, parent.context.trace_id)  # type: ignore[attr-defined]


class CallTests(_Harness, SynchronousTestCase):
    """
    Calls: a CLIENT span and its SERVER child.
    """

    def test_call(self) -> None:
        """
        When a call is made, then there is a CLIENT span and a SERVER span
        named <topic>.<method>, the server's the child of the client's, with
        the RPC attributes.
        """
        ctxt = RequestContext("u1", "p1", request_id="req-42")
        self.assertEqual(self.successResultOf(self.client.call(ctxt, "relay", value=1)), 1)
        client = [s for s in self.spans() if s.name == "a.relay" and s.kind == SpanKind.CLIENT][0]
        server = self.one("a.relay", SpanKind.SERVER)
        self.assertChild(server, client)
        self.assertIsNone(client.parent)
        self.assertEqual(server.status.status_code, StatusCode.UNSET)
        self.assertEqual(client.attributes["rpc.system"], "oslo_messaging")
        self.assertEqual(client.attributes["rpc.service"], "a")
        self.assertEqual(client.attributes["rpc.method"], "relay")
        self.assertEqual(client.attributes["messaging.operation"], "call")
        self.assertEqual(client.attributes["messaging.destination.name"], "a")
        self.assertEqual(client.attributes["openstack.request_id"], "req-42")
        self.assertEqual(dict(server.attributes), {
            "rpc.system": "oslo_messaging", "rpc.service": "a", "rpc.method": "relay",
            "messaging.operation": "call", "server.address": "host-a",
            "messaging.message.id": client.attributes["messaging.message.id"],
            "openstack.request_id": "req-42",
        })

    def test_directed_call(self) -> None:
        """
        When a call goes to one host, then the client span names it as
        server.address and its routing key as the destination.
        """
        self.successResultOf(self.client.prepare(server="host-a", version="1.0").call({}, "relay", value=2))
        client = [s for s in self.spans() if s.name == "a.relay" and s.kind == SpanKind.CLIENT][0]
        self.assertEqual(client.attributes["server.address"], "host-a")
        self.assertEqual(client.attributes["messaging.destination.name"], "a.host-a")
        self.assertEqual(client.attributes["rpc.oslo.version"], "1.0")

    def test_raising_method(self) -> None:
        """
        When the method raises, then the SERVER span has status ERROR and
        the exception recorded, and so has the CLIENT span.
        """
        client = self.rpc_client("b")
        self.failureResultOf(client.call({}, "fail"), ValueError)
        server = self.one("b.fail", SpanKind.SERVER)
        self.assertEqual(server.status.status_code, StatusCode.ERROR)
        self.assertEqual(server.status.description, "ValueError: it failed")
        [event] = server.events
        self.assertEqual(event.name, "exception")
        self.assertEqual(event.attributes["exception.type"], "ValueError")
        self.assertEqual(event.attributes["exception.message"], "it failed")
        self.assertEqual(self.one("b.fail", SpanKind.CLIENT).status.status_code, StatusCode.ERROR)

    def test_deferred_result(self) -> None:
        """
        When the method returns a Deferred, then its SERVER span ends when
        the Deferred fires, not when it is returned.
        """
        d = self.rpc_client("b").call({}, "slow")
        self.assertEqual(self.spans(), [])
        self.back.pending[0].callback("done")
        self.assertEqual(self.successResultOf(d), "done")
        self.assertEqual(self.one("b.slow", SpanKind.SERVER).status.status_code, StatusCode.UNSET)

    def test_failed_deferred(self) -> None:
        """
        When the method's Deferred fails, then its SERVER span ends then, with
        status ERROR.
        """
        d = self.rpc_client("b").call({}, "slow")
        self.back.pending[0].errback(KeyError("gone"))
        self.failureResultOf(d, KeyError)
        self.assertEqual(self.one("b.slow", SpanKind.SERVER).status.status_code, StatusCode.ERROR)

    def test_long_error_message_clipped(self) -> None:
        """
        When the recorded error message is long, then the span holds it cut
        as log lines cut a client's values.
        """
        d = self.rpc_client("b").call({}, "slow")
        self.back.pending[0].errback(ValueError("x" * 10000))
        self.failureResultOf(d, ValueError)
        [event] = self.one("b.slow", SpanKind.SERVER).events
        self.assertLess(len(event.attributes["exception.message"]), QUOTE_LIMIT + 50)

    def test_refused_method(self) -> None:
        """
        When the method is unknown, then the SERVER span is named after the
        topic alone (not the client's method name), with status ERROR and
        the method name cut in rpc.method.
        """
        name = "no_such_" + "x" * 1000
        failure = self.failureResultOf(self.rpc_client("b").call({}, name), RemoteError)
        self.assertEqual(failure.value.exc_type, "NoSuchMethod")
        server = self.one("b", SpanKind.SERVER)
        self.assertEqual(server.status.status_code, StatusCode.ERROR)
        self.assertLess(len(server.attributes["rpc.method"]), QUOTE_LIMIT + 50)
        self.assertEqual(server.events[0].attributes["exception.type"], "novasvc.rpc.errors.NoSuchMethod")

    def test_call_not_sent(self) -> None:
        """
        When a call cannot even be encoded, then its CLIENT span ends with
        status ERROR.
        """
        self.failureResultOf(self.rpc_client("b").call({}, "echo", value=object()), TypeError)
        self.assertEqual(self.one("b.echo", SpanKind.CLIENT).status.status_code, StatusCode.ERROR)


class NestedTests(_Harness, SynchronousTestCase):
    """
    A method of service "a" calls service "b": one trace.
    """

    def assertNested(self, method: str) -> None:
        spans = self.spans()
        self.assertEqual(len(spans), 4, [s.name for s in spans])
        self.assertEqual(len({s.context.trace_id for s in spans}), 1)
        outer_client = self.one(f"a.{method}", SpanKind.CLIENT)
        outer_server = self.one(f"a.{method}", SpanKind.SERVER)
        inner_client = self.one("b.echo", SpanKind.CLIENT)
        inner_server = self.one("b.echo", SpanKind.SERVER)
        self.assertChild(outer_server, outer_client)
        self.assertChild(inner_client, outer_server)
        self.assertChild(inner_server, inner_client)

    def test_nested_call(self) -> None:
        """
        When a manager method of "a" calls "b" while it runs, then the four
        spans are one trace: client, a's server, a's client, b's server,
        each the child of the one before.
        """
        self.assertEqual(self.successResultOf(self.client.call(RequestContext(), "relay", value=3)), 3)
        self.assertNested("relay")

    def test_nested_in_coroutine(self) -> None:
        """
        When a coroutine method of "a" calls "b" after waiting, with a new
        context, then the call still links into the trace (the span stays
        current in the coroutine).
        """
        d = self.client.call(RequestContext(), "relay_later", value=4)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 4)
        self.assertNested("relay_later")

    def test_nested_from_callback(self) -> None:
        """
        When a method of "a" calls "b" from a plain Deferred callback, where
        no span is current, with the request's context, then the call links
        into the trace through the context's traceparent.
        """
        d = self.client.call(RequestContext(), "relay_from_callback", value=5)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 5)
        self.assertEqual(self.front.current, [False])
        self.assertNested("relay_from_callback")

    def test_server_span_in_context(self) -> None:
        """
        When a method runs, then its context carries its SERVER span as
        traceparent (not the caller's), which an oslo peer would read.
        """
        self.successResultOf(self.rpc_client("b").call(RequestContext(), "echo", value=1))
        server = self.one("b.echo", SpanKind.SERVER)
        sent = self.back.contexts[0].extra["traceparent"]
        self.assertEqual(sent, traceparent(server))

    def test_with_serializer(self) -> None:
        """
        When the server has a serializer, then its SERVER span is the
        client span's child, carries the request id, and the context the
        serializer makes carries the SERVER span as traceparent.
        """
        from novasvc.rpc.serializer import RequestContextSerializer

        back = Back()
        server = RPCServer(self.transport(), Target(topic="s", server="host-s"), [back], clock=self.clock,
                           tracing=self.tracing, serializer=RequestContextSerializer())
        self.successResultOf(server.start())
        client = RPCClient(self.transport(), Target(topic="s"), clock=self.clock,
                           serializer=RequestContextSerializer(), tracing=self.tracing)
        self.successResultOf(client.call(RequestContext(request_id="req-s"), "echo", value=1))
        outer = self.one("s.echo", SpanKind.CLIENT)
        inner = self.one("s.echo", SpanKind.SERVER)
        self.assertChild(inner, outer)
        self.assertEqual(inner.attributes["openstack.request_id"], "req-s")
        ctxt = back.contexts[0]
        self.assertIsInstance(ctxt, RequestContext)
        self.assertEqual(ctxt.extra["traceparent"], traceparent(inner))

    def test_foreign_parent(self) -> None:
        """
        When the caller's context carries a trace context from another
        tracer (an oslo peer's or an API's) and no span is current, then the
        CLIENT span continues that trace.
        """
        self.successResultOf(self.rpc_client("b").call({"traceparent": FOREIGN}, "echo", value=1))
        client = self.one("b.echo", SpanKind.CLIENT)
        self.assertEqual(f"{client.context.trace_id:032x}", FOREIGN_TRACE)
        self.assertEqual(f"{client.parent.span_id:016x}", FOREIGN_SPAN)

    def test_current_span_wins(self) -> None:
        """
        When a span is current and the context carries another trace
        context, then the CLIENT span is the current span's child, and the
        request carries the client span's trace context, not the stale one.
        """
        tracer = self.provider.get_tracer("test")
        with tracer.start_as_current_span("outer") as outer:
            self.successResultOf(self.rpc_client("b").call({"traceparent": FOREIGN, "tracestate": "k=v"},
                                                           "echo", value=1))
        client = self.one("b.echo", SpanKind.CLIENT)
        self.assertChild(client, outer)
        extra = self.back.contexts[0].extra
        self.assertNotIn(FOREIGN_TRACE, extra["traceparent"])

    def test_caller_dict_unchanged(self) -> None:
        """
        When the context is a caller's dict, then the client does not write
        the trace context into it.
        """
        ctxt = {"user_id": "u"}
        self.successResultOf(self.rpc_client("b").call(ctxt, "echo", value=1))
        self.assertEqual(ctxt, {"user_id": "u"})
        self.assertIn("traceparent", self.back.contexts[0].extra)


class CastTests(_Harness, SynchronousTestCase):
    """
    Casts and fanout casts: a PRODUCER span and CONSUMER children.
    """

    def test_cast(self) -> None:
        """
        When a cast is sent, then there is a PRODUCER span and a CONSUMER span
        for its run, linked.
        """
        self.successResultOf(self.rpc_client("b").cast(RequestContext(), "note", value=1))
        producer = self.one("b.note", SpanKind.PRODUCER)
        consumer = self.one("b.note", SpanKind.CONSUMER)
        self.assertChild(consumer, producer)
        self.assertEqual(producer.attributes["messaging.operation"], "cast")
        self.assertEqual(consumer.attributes["messaging.operation"], "cast")
        self.assertNotIn("messaging.message.id", consumer.attributes)

    def test_fanout(self) -> None:
        """
        When a fanout cast is sent to two servers, then each run is a
        CONSUMER child of the one PRODUCER span.
        """
        self.serve("b", "host-b2", self.back)
        self.successResultOf(self.rpc_client("b").prepare(fanout=True).cast({}, "note", value=1))
        producer = self.one("b.note", SpanKind.PRODUCER)
        self.assertEqual(producer.attributes["messaging.operation"], "fanout")
        self.assertEqual(producer.attributes["messaging.destination.name"], "b_fanout")
        consumers = [s for s in self.spans() if s.kind == SpanKind.CONSUMER]
        self.assertEqual(sorted(s.attributes["server.address"] for s in consumers), ["host-b", "host-b2"])
        for consumer in consumers:
            self.assertChild(consumer, producer)


class BadHeaderTests(_Harness, SynchronousTestCase):
    """
    Trace context a client sends that cannot be used.
    """

    def call_untraced(self, ctxt: Any) -> None:
        """
        Call "b" with C{ctxt} sent as it is (no client tracing), and check
        that nothing is logged and the call works.
        """
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        untraced = RPCClient(self.transport(), Target(topic="b"), clock=self.clock)
        with self.assertNoLogs(level="WARNING"):
            self.assertEqual(self.successResultOf(untraced.call(ctxt, "echo", value=7)), 7)
        self.assertEqual([e for e in observer if e["log_level"] >= LogLevel.warn], [])

    def test_garbage_traceparent(self) -> None:
        """
        When the traceparent is garbage, oversized or not a string, then
        each call works, logs nothing, and its SERVER span starts a new
        trace.
        """
        for garbage in ("garbage", "00-" + "f" * 2000, 42, {"a": "b"}, ["x"],
                        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                        f"ff-{FOREIGN_TRACE}-{FOREIGN_SPAN}-01"):
            self.exporter.clear()
            self.call_untraced({"traceparent": garbage, "tracestate": garbage})
            server = self.one("b.echo", SpanKind.SERVER)
            self.assertIsNone(server.parent, garbage)

    def test_garbage_tracestate(self) -> None:
        """
        When the traceparent is valid and the tracestate is not, then the
        SERVER span is still the traceparent's child, without trace state,
        and nothing is logged.
        """
        for garbage in ("no equals sign", "UPPER=1", "a=1,a=2", "k=" + "v" * 600,
                        ",".join(f"k{i}=v" for i in range(33)), 7):
            self.exporter.clear()
            self.call_untraced({"traceparent": FOREIGN, "tracestate": garbage})
            server = self.one("b.echo", SpanKind.SERVER)
            self.assertEqual(f"{server.parent.span_id:016x}", FOREIGN_SPAN)
            self.assertEqual(len(server.context.trace_state), 0)

    def test_valid_tracestate(self) -> None:
        """
        When the tracestate is valid, then the SERVER span keeps it.
        """
        self.call_untraced({"traceparent": FOREIGN, "tracestate": "congo=t61rcWkgMzE, rojo@x=00f0"})
        server = self.one("b.echo", SpanKind.SERVER)
        self.assertEqual(dict(server.context.trace_state), {"congo": "t61rcWkgMzE", "rojo@x": "00f0"})


class DisabledTests(SynchronousTestCase):
    """
    Without tracing: no spans, no OpenTelemetry.
    """

    def test_no_spans(self) -> None:
        """
        When no tracing is installed and the server has none, then calls and
        casts make no span and send no trace context.
        """
        provider, exporter = _provider()
        clock = task.Clock()
        broker = MemoryBroker()
        back = Back()
        server = RPCServer(MemoryTransport(broker=broker, clock=clock), Target(topic="b", server="h"), [back],
                           clock=clock)
        self.successResultOf(server.start())
        client = RPCClient(MemoryTransport(broker=broker, clock=clock), Target(topic="b"), clock=clock)
        self.successResultOf(client.call(RequestContext(), "echo", value=1))
        self.successResultOf(client.cast(RequestContext(), "note", value=1))
        self.assertEqual(exporter.get_finished_spans(), ())
        self.assertNotIn("traceparent", back.contexts[0].extra)

    def test_no_import(self) -> None:
        """
        When a service is built, started, called and stopped with tracing
        off (the default), then no OpenTelemetry module is imported.
        """
        code = "\n".join([
            "import sys",
            "from twisted.internet import task",
            "from novasvc.config import Config",
            "from novasvc.db.memory import MemoryServiceStore",
            "from novasvc.examples.echo import EchoManager",
            "from novasvc.rpc.client import RPCClient",
            "from novasvc.rpc.target import Target",
            "from novasvc.core.service import Service",
            "from novasvc.transport.memory import MemoryBroker, MemoryTransport",
            "clock = task.Clock()",
            "broker = MemoryBroker()",
            "s = Service.create(manager=EchoManager, config=Config(host='h'),",
            "                   store=MemoryServiceStore(), transport=MemoryTransport(broker=broker, clock=clock),",
            "                   clock=clock)",
            "s.startService()",
            "client = RPCClient(MemoryTransport(broker=broker, clock=clock), Target(topic='echo'), clock=clock)",
            "results = []",
            "client.call({}, 'echo', value=1).addCallback(results.append)",
            "client.cast({}, 'echo', value=2)",
            "s.stopService()",
            "clock.advance(100)",
            "print(json.dumps([results, sorted(m for m in sys.modules if m.startswith('opentelemetry'))]))",
        ])
        out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
        self.assertEqual(json.loads(out), [[1], []])


class ServiceTests(SynchronousTestCase):
    """
    L{Service} with C{tracing.enabled}.
    """

    def make(self, tracing: TracingConfig) -> Service:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        return Service.create(manager=EchoManager, config=Config(host="h1", tracing=tracing),
                              store=MemoryServiceStore(), transport=MemoryTransport(broker=self.broker,
                                                                                  clock=self.clock),
                              clock=self.clock, periodic_enable=False)

    def test_disabled(self) -> None:
        """
        When tracing is off (the default), then the service has no tracing.
        """
        self.assertIsNone(self.make(TracingConfig()).tracing)

    def test_enabled(self) -> None:
        """
        When tracing is enabled, then while the service runs its manager's
        methods are SERVER spans and the clients given its tracing (as its
        manager's) trace, other clients of the process do not; once it
        stopped none does.
        """
        service = self.make(TracingConfig(enabled=True))
        self.assertEqual(service.tracing.service_name, "novasvc-echo")
        provider, exporter = _provider()
        service.tracing.tracer_provider = provider
        self.successResultOf(service.startService())
        self.assertIs(service.manager.tracing, service.tracing)
        other = RPCClient(MemoryTransport(broker=self.broker, clock=self.clock), Target(topic="echo"),
                          clock=self.clock)
        self.assertEqual(self.successResultOf(other.call({}, "echo", value=0)), 0)
        exporter.clear()
        client = RPCClient(MemoryTransport(broker=self.broker, clock=self.clock), Target(topic="echo"),
                           clock=self.clock, tracing=service.manager.tracing)
        self.assertEqual(self.successResultOf(client.call({}, "echo", value=1)), 1)
        names = sorted((s.name, s.kind.name) for s in exporter.get_finished_spans())
        self.assertEqual(names, [("echo.echo", "CLIENT"), ("echo.echo", "SERVER")])
        server = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER][0]
        self.assertEqual(server.attributes["server.address"], "h1")
        self.successResultOf(service.stopService())
        exporter.clear()
        self.assertFalse(service.tracing.running)

    def test_service_name(self) -> None:
        """
        When tracing.service_name is set, then it names the service.
        """
        service = self.make(TracingConfig(enabled=True, service_name="volume-east"))
        self.assertEqual(service.tracing.service_name, "volume-east")

    def test_console_exporter(self) -> None:
        """
        When tracing.exporter is console, then each span is printed to
        standard output as one line of JSON, with the service name; the call spans
        are there once the service stopped.
        """
        code = "\n".join([
            "from twisted.internet import task",
            "from novasvc.config import Config, TracingConfig",
            "from novasvc.db.memory import MemoryServiceStore",
            "from novasvc.examples.echo import EchoManager",
            "from novasvc.rpc.client import RPCClient",
            "from novasvc.rpc.target import Target",
            "from novasvc.core.service import Service",
            "from novasvc.transport.memory import MemoryBroker, MemoryTransport",
            "clock = task.Clock()",
            "broker = MemoryBroker()",
            "config = Config(host='h', tracing=TracingConfig(enabled=True, exporter='console'))",
            "s = Service.create(manager=EchoManager, config=config, store=MemoryServiceStore(),",
            "                   transport=MemoryTransport(broker=broker, clock=clock), clock=clock,",
            "                   periodic_enable=False)",
            "s.startService()",
            "client = RPCClient(MemoryTransport(broker=broker, clock=clock), Target(topic='echo'), clock=clock,",
            "                   tracing=s.manager.tracing)",
            "client.call({}, 'echo', value=1)",
            "s.stopService()",
            "clock.advance(100)",
        ])
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout
        decoder = json.JSONDecoder()
        spans, at = [], 0
        while out[at:].strip():
            at = len(out) - len(out[at:].lstrip())
            span, at = decoder.raw_decode(out, at)
            spans.append(span)
        self.assertEqual(sorted((s["name"], s["kind"]) for s in spans),
                         [("echo.echo", "SpanKind.CLIENT"), ("echo.echo", "SpanKind.SERVER")])
        self.assertEqual(len(out.splitlines()), 2, "one line per span (one twistd log event)")
        self.assertEqual({s["resource"]["attributes"]["service.name"] for s in spans}, {"novasvc-echo"})

    def test_missing_exporter(self) -> None:
        """
        When tracing.exporter asks for a package that is not installed, then
        the service cannot be built, with a ConfigError naming the package.
        """
        with mock.patch.dict(sys.modules, {"opentelemetry.exporter.otlp.proto.http.trace_exporter": None,
                                           "opentelemetry.exporter.otlp.proto.grpc.trace_exporter": None}):
            error = self.assertRaises(ConfigError, self.make, TracingConfig(enabled=True, exporter="otlp"))
        self.assertIn("pip install opentelemetry-exporter-otlp-proto-http", str(error))
        with mock.patch.dict(sys.modules, {"opentelemetry.sdk.trace": None}):
            error = self.assertRaises(ConfigError, exporter_factory, "console")
        self.assertIn("pip install opentelemetry-sdk", str(error))

    def test_global_provider(self) -> None:
        """
        When the exporter is none and no provider is given, then the spans
        go to the process's global tracer provider.
        """
        provider, exporter = _provider()
        self.patch(trace, "get_tracer_provider", lambda: provider)
        tracing = Tracing("s", "h")
        tracing.start()
        self.addCleanup(tracing.stop)
        clock = task.Clock()
        client = RPCClient(MemoryTransport(clock=clock), Target(topic="t"), clock=clock,
                           missing_consumer_retry_timeout=0, tracing=tracing)
        self.failureResultOf(client.cast({}, "nobody"))
        self.assertEqual([(s.name, s.status.status_code) for s in exporter.get_finished_spans()],
                         [("t.nobody", StatusCode.ERROR)])

    def test_unknown_exporter(self) -> None:
        """
        When the exporter is not one of none, console, otlp, then Tracing
        refuses it.
        """
        self.assertRaises(ConfigError, Tracing, "s", "h", "zipkin")


class RabbitMQTests(TestCase):
    """
    Over the local RabbitMQ: a nested call across two services is one
    trace; an unmodified oslo.messaging peer passes our trace context
    through and we continue its.
    """

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        from novasvc.transport import AMQPTransport
        from tests._vhosts import make_vhost
        from tests.test_transport_amqp import rabbit_url

        vhost = yield make_vhost(self)
        self.url = rabbit_url(vhost)
        self.exchange = f"tracing-{uuid.uuid4().hex[:8]}"
        self.provider, self.exporter = _provider()
        self.tracing = Tracing("test", "host-a", tracer_provider=self.provider)
        self.tracing.start()
        self.addCleanup(self.tracing.stop)

        def transport():
            t = AMQPTransport(self.url, reactor=reactor)
            t.start()
            self.addCleanup(t.stop)
            return t

        self.transport = transport
        self.back = Back()
        self.front = Front(self.rpc_client("b"), reactor)
        yield self.serve("b", "host-b", self.back)
        yield self.serve("a", "host-a", self.front)

    def rpc_client(self, topic: str) -> RPCClient:
        return RPCClient(self.transport(), Target(topic=topic), control_exchange=self.exchange, clock=reactor,
                         timeout=30, tracing=self.tracing)

    def serve(self, topic, host, endpoint):
        server = RPCServer(self.transport(), Target(topic=topic, server=host), [endpoint],
                           control_exchange=self.exchange, clock=reactor, tracing=self.tracing)
        self.addCleanup(server.wait, 10)
        return server.start()

    @defer.inlineCallbacks
    def test_nested_call(self):
        """
        When a method of "a" calls "b" from a coroutine after a wait, over
        RabbitMQ, then the four spans are one trace, each the child of the
        one before.
        """
        result = yield self.rpc_client("a").call(RequestContext(), "relay_later", value=9)
        self.assertEqual(result, 9)
        spans = {(s.name, s.kind): s for s in self.exporter.get_finished_spans()}
        self.assertEqual(len(spans), 4, list(spans))
        chain = [spans[("a.relay_later", SpanKind.CLIENT)], spans[("a.relay_later", SpanKind.SERVER)],
                 spans[("b.echo", SpanKind.CLIENT)], spans[("b.echo", SpanKind.SERVER)]]
        self.assertIsNone(chain[0].parent)
        for parent, child in zip(chain, chain[1:]):
            self.assertEqual(child.parent.span_id, parent.context.span_id)
            self.assertEqual(child.context.trace_id, parent.context.trace_id)

    @defer.inlineCallbacks
    def test_oslo_peer(self):
        """
        When an oslo.messaging client calls our server with a traceparent in
        its context, then our SERVER span continues that trace; and when
        our client calls an oslo server, the oslo endpoint gets our CLIENT
        span's traceparent in its context, next to the usual keys.
        """
        from tests.test_rpc_interop import PEER, _peer_env, _PeerServer, _require_oslo

        _require_oslo()
        url = f"rabbit://guest:guest@127.0.0.1:5672/{self.url.virtual_host}"
        actions = [{"op": "call", "topic": "b", "method": "echo", "args": {"value": 1},
                    "ctxt": {"request_id": "req-oslo", "traceparent": FOREIGN}}]
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, [PEER, "client", url, self.exchange, json.dumps(actions)], env=_peer_env())
        self.assertEqual(code, 0, err.decode())
        self.assertEqual(json.loads(out.decode().splitlines()[0]), {"ok": 1})
        server = [s for s in self.exporter.get_finished_spans() if s.kind == SpanKind.SERVER][0]
        self.assertEqual(f"{server.context.trace_id:032x}", FOREIGN_TRACE)
        self.assertEqual(f"{server.parent.span_id:016x}", FOREIGN_SPAN)
        self.assertEqual(server.attributes["openstack.request_id"], "req-oslo")

        self.exporter.clear()
        peer = _PeerServer()
        process = reactor.spawnProcess(peer, sys.executable,
                                       [sys.executable, PEER, "server", url, self.exchange, "peer", "oslo-h"],
                                       env=_peer_env())

        def stop_peer():
            process.closeStdin()
            return peer.ended

        self.addCleanup(stop_peer)
        yield peer.ready
        result = yield self.rpc_client("peer").prepare(version="1.3").call(
            RequestContext("u1", "p1", request_id="req-ours"), "echo", value=2)
        client = [s for s in self.exporter.get_finished_spans() if s.kind == SpanKind.CLIENT][0]
        self.assertEqual(result["value"], 2)
        self.assertEqual(result["ctxt"]["traceparent"], traceparent(client))
        self.assertEqual((result["ctxt"]["user_id"], result["ctxt"]["request_id"]), ("u1", "req-ours"))
