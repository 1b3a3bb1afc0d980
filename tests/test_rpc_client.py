"""
Tests for L{novasvc.rpc.client} (and the L{novasvc.rpc} facade), over the
in-memory transport with a L{task.Clock}.
"""

import json
from typing import Any, List

from twisted.internet import task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import novasvc.rpc
from novasvc.context import RequestContext, context_from_message
from novasvc.exceptions import TransportError
from novasvc.rpc import wire
from novasvc.rpc._reply_waiter import reply_waiter
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import (
    InvalidTarget,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    RPCVersionCapError,
)
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.memory import MemoryBroker
from novasvc.transport.topology import Binding, Exchange, Queue
from tests.test_rpc_server import Manager, RecordingTransport


_SVC_QUEUE = Queue("svc", bindings=[Binding(Exchange("openstack", "topic"), "svc")])


class ProbeError(Exception):
    """
    An application exception with kwargs.
    """

    def __init__(self, message: str = "probe", code: int = 0) -> None:
        super().__init__(message)
        self.kwargs = {"code": code}


class Endpoint(Manager):
    """
    The server test manager plus methods about contexts and errors.
    """

    def whoami(self, ctxt):
        values = ctxt.to_dict()  # read first: the server's context is read on first use
        return {"type": type(ctxt).__name__, "ctxt": values}

    def probe(self, ctxt):
        raise ProbeError("it broke", code=7)

    def builtin(self, ctxt):
        raise KeyError("missing")


class _Harness:
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.transport = RecordingTransport(broker=self.broker, clock=self.clock)
        self.client = RPCClient(self.transport, Target(topic="svc"), clock=self.clock)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def make_server(self, host: str = "host1", **kwargs: Any):
        transport = RecordingTransport(broker=self.broker, clock=self.clock)
        manager = Endpoint(host)
        server = RPCServer(transport, Target(topic="svc", server=host), [manager], clock=self.clock, **kwargs)
        self.successResultOf(server.start())  # type: ignore[attr-defined]
        return server, manager, transport

    def requests(self) -> List[tuple]:
        return [p for p in self.transport.published if p[0].name != ""]

    def sink(self, key: str = "svc", exchange: Exchange = Exchange("openstack", "topic")) -> List[bytes]:
        """
        A queue bound to C{exchange} with C{key} that takes requests and
        never answers.

        @return: the bodies it received.
        """
        bodies: List[bytes] = []
        queue = Queue(f"sink-{exchange.name}-{key}", bindings=[Binding(exchange, key)])
        self.transport.consume(queue, lambda d: (d.ack(), bodies.append(d.body)))
        return bodies

    def reply_queues(self) -> List[str]:
        return [name for name in self.broker.queues if name.startswith("reply_")]

    def debug_drops(self) -> List[dict]:
        return [e for e in self.log if e.get("log_level") == LogLevel.debug and "No call waiting" in e["log_format"]]


class CallTests(_Harness, SynchronousTestCase):
    """
    Calls and their replies.
    """

    def test_result(self) -> None:
        """
        When a call is answered, then its Deferred fires with the result.
        """
        self.make_server()
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value=[1, "a"])),
                         {"server": "host1", "value": [1, "a"]})

    def test_request_on_the_wire(self) -> None:
        """
        When a call is sent, then it goes to the control exchange with the
        topic as routing key, expiration = the timeout in ms, mandatory,
        with the §6 keys including the client's reply queue.
        """
        self.sink()
        self.client.prepare(namespace="ns", version="1.1", timeout=7).call({"user_id": "u"}, "echo", value=1)
        ((exchange, key, body, content_type, expiration, mandatory),) = self.requests()
        self.assertEqual((exchange, key, content_type, expiration, mandatory),
                         (Exchange("openstack", "topic"), "svc", "application/json", 7000, True))
        inner = json.loads(json.loads(body)["oslo.message"])
        self.assertEqual((inner["method"], inner["args"], inner["namespace"], inner["version"], inner["_timeout"]),
                         ("echo", {"value": 1}, "ns", "1.1", None))
        self.assertEqual(inner["_reply_q"], self.reply_queues()[0])
        self.assertRegex(inner["_msg_id"], "^[0-9a-f]{32}$")
        self.assertEqual(inner["_context_user_id"], "u")

    def test_default_timeout(self) -> None:
        """
        When no timeout is set, then rpc_response_timeout (60 s) is the
        expiration.
        """
        self.client.call({}, "echo", value=1)
        self.assertEqual(self.requests()[0][4], 60000)
        client = RPCClient(self.transport, Target(topic="svc"), rpc_response_timeout=5, clock=self.clock)
        client.call({}, "echo", value=1)
        self.assertEqual(self.requests()[1][4], 5000)

    def test_exchange(self) -> None:
        """
        When a control exchange or a target exchange is set, then requests go
        there.
        """
        self.sink(exchange=Exchange("nova", "topic"))
        self.sink(exchange=Exchange("own", "topic"))
        client = RPCClient(self.transport, Target(topic="svc"), control_exchange="nova", clock=self.clock)
        self.successResultOf(client.cast({}, "note", value=1))
        self.successResultOf(client.prepare(exchange="own").cast({}, "note", value=1))
        self.assertEqual([p[0].name for p in self.requests()], ["nova", "own"])

    def test_direct(self) -> None:
        """
        When the target names a server, then the routing key is
        <topic>.<server>.
        """
        self.client.prepare(server="host9").call({}, "echo", value=1)
        self.assertEqual(self.requests()[0][1], "svc.host9")

    def test_unencodable_argument(self) -> None:
        """
        When an argument cannot be encoded, then the call fails with
        TypeError and nothing is sent.
        """
        self.failureResultOf(self.client.call({}, "echo", value=object()), TypeError)
        self.failureResultOf(self.client.cast({}, "echo", value=object()), TypeError)
        self.assertEqual(self.requests(), [])

    def test_request_expires(self) -> None:
        """
        When a request waits on the broker longer than its timeout, then it
        expires there and never runs.
        """
        _, manager, _ = self.make_server(max_inflight=1)
        first = self.client.call({}, "slow", value=1)
        second = self.client.prepare(timeout=1).call({}, "slow", value=2)
        self.clock.advance(1)
        self.failureResultOf(second, MessagingTimeout)
        manager.pending[0].callback("one")
        self.assertEqual(self.successResultOf(first), "one")
        self.assertEqual(manager.calls, [("slow", 1)])


class ContextTests(_Harness, SynchronousTestCase):
    """
    The context reaches the endpoint.
    """

    def test_request_context(self) -> None:
        """
        When a RequestContext is sent, then the endpoint gets a
        RequestContext with the same fields, extras and token.
        """
        self.make_server()
        ctxt = RequestContext("u1", "p1", request_id="req-abc", roles=["member"], auth_token="tok",
                              extra={"trace_info": {"base_id": "b"}})
        result = self.successResultOf(self.client.call(ctxt, "whoami"))
        got = result["ctxt"]
        self.assertEqual(result["type"], "RequestContext")
        self.assertEqual((got["user_id"], got["project_id"], got["request_id"], got["roles"], got["auth_token"]),
                         ("u1", "p1", "req-abc", ["member"], "tok"))
        self.assertEqual(got["trace_info"], {"base_id": "b"})
        self.assertIsNone(got["client_timeout"])
        self.assertEqual(RequestContext.from_dict(got).timestamp, ctxt.timestamp)

    def test_dict_context(self) -> None:
        """
        When a plain dict is sent, then the endpoint gets a RequestContext
        built from it, unknown keys kept.
        """
        self.make_server()
        got = self.successResultOf(self.client.call({"user_id": "u", "custom": 1}, "whoami"))["ctxt"]
        self.assertEqual((got["user_id"], got["custom"]), ("u", 1))

    def test_none_context(self) -> None:
        """
        When no context is given, then the endpoint still gets one.
        """
        self.make_server()
        self.assertEqual(self.successResultOf(self.client.call(None, "whoami"))["type"], "RequestContext")

    def test_unread_server_context(self) -> None:
        """
        When a method passes on the context the server made for it, before
        reading it, then it is sent as the context it was made from.
        """
        self.make_server()
        ctxt = RequestContext("u1", "p1", roles=["member"], extra={"custom": 1})
        unread = context_from_message(ctxt.to_dict(wire.CONTEXT_PREFIX), wire.CONTEXT_PREFIX, None)
        result = self.successResultOf(self.client.call(unread, "whoami"))
        self.assertEqual(result["ctxt"], ctxt.to_dict())

    def test_bad_context(self) -> None:
        """
        When the context is neither a context nor a dict, then TypeError.
        """
        self.failureResultOf(self.client.call(42, "echo", value=1), TypeError)  # type: ignore[arg-type]


class ErrorTests(_Harness, SynchronousTestCase):
    """
    Remote errors and client-side checks.
    """

    def test_allowed_module(self) -> None:
        """
        When the remote exception's module is allowed, then the caller gets
        that class (as <Class>_Remote) with its kwargs.
        """
        self.make_server()
        client = RPCClient(self.transport, Target(topic="svc"), allowed_remote_exmods=[__name__], clock=self.clock)
        error = self.failureResultOf(client.call({}, "probe"), ProbeError).value
        self.assertEqual(type(error).__name__, "ProbeError_Remote")
        self.assertEqual(error.kwargs, {"code": 7})
        self.assertTrue(str(error).startswith("it broke\n"))

    def test_not_allowed(self) -> None:
        """
        When the module is not allowed, then RemoteError.
        """
        self.make_server()
        error = self.failureResultOf(self.client.call({}, "probe"), RemoteError).value
        self.assertTrue(str(error).startswith("Remote error: ProbeError it broke"))

    def test_builtin(self) -> None:
        """
        When a builtin exception is raised remotely, then the caller gets the
        same builtin class.
        """
        self.make_server()
        error = self.failureResultOf(self.client.call({}, "builtin"), KeyError).value
        self.assertTrue(error.args[0].startswith("'missing'\nTraceback"))

    def test_dispatcher_errors(self) -> None:
        """
        When novasvc.rpc.errors is allowed, then NoSuchMethod comes back as
        such; otherwise as a RemoteError; an unsupported version as
        UnsupportedVersion.
        """
        self.make_server()
        client = RPCClient(self.transport, Target(topic="svc"), allowed_remote_exmods=["novasvc.rpc.errors"],
                           clock=self.clock)
        self.assertEqual(self.failureResultOf(client.call({}, "missing"), NoSuchMethod).value.method, "missing")
        remote = self.failureResultOf(self.client.prepare(version="2.0").call({}, "echo", value=1), RemoteError)
        self.assertEqual(remote.value.exc_type, "UnsupportedVersion")

    def test_wrong_arguments(self) -> None:
        """
        When the arguments do not fit the method, then the caller gets a
        clear TypeError.
        """
        self.make_server()
        error = self.failureResultOf(self.client.call({}, "echo", valu=1), TypeError).value
        self.assertIn("cannot take the arguments", str(error))

    def test_fanout_call(self) -> None:
        """
        When a call targets fanout, then InvalidTarget and nothing is sent.
        """
        self.failureResultOf(self.client.prepare(fanout=True).call({}, "echo"), InvalidTarget)
        self.assertEqual(self.requests(), [])

    def test_no_topic(self) -> None:
        """
        When the target has no topic, then call and cast fail with
        InvalidTarget.
        """
        client = RPCClient(self.transport, Target(), clock=self.clock)
        self.failureResultOf(client.call({}, "echo"), InvalidTarget)
        self.failureResultOf(client.cast({}, "echo"), InvalidTarget)

    def test_version_cap(self) -> None:
        """
        When the version is above the cap, then RPCVersionCapError and
        nothing is sent; can_send_version follows the same rule.
        """
        client = RPCClient(self.transport, Target(topic="svc", version="1.2"), version_cap="1.1", clock=self.clock)
        error = self.failureResultOf(client.call({}, "echo"), RPCVersionCapError).value
        self.assertEqual((error.version, error.version_cap), ("1.2", "1.1"))
        self.failureResultOf(client.cast({}, "echo"), RPCVersionCapError)
        self.assertEqual(self.requests(), [])
        self.assertFalse(client.can_send_version())
        self.assertTrue(client.can_send_version("1.1"))
        self.assertFalse(client.can_send_version("2.0"))
        self.assertTrue(client.prepare(version=None).can_send_version())
        self.assertTrue(client.prepare(version_cap=None).can_send_version("9.9"))

    def test_bad_versions(self) -> None:
        """
        When a target version or cap is not a version, then the client
        refuses it at once.
        """
        self.assertRaises(InvalidTarget, self.client.prepare, version="one")
        self.assertRaises(ValueError, RPCClient, self.transport, Target(topic="t"), version_cap="x")

    def test_transport_error(self) -> None:
        """
        When the transport is stopped, then cast and call fail with
        TransportError.
        """
        self.successResultOf(self.transport.stop())
        self.failureResultOf(self.client.cast({}, "echo"), TransportError)
        self.failureResultOf(self.client.call({}, "echo"), TransportError)
        self.assertEqual(reply_waiter(self.transport, None).pending, {})

    def test_transport_raises(self) -> None:
        """
        When the transport raises instead of failing a Deferred, then the
        call fails with that error and stops waiting.
        """

        class Raising(RecordingTransport):
            def publish(self, *args, **kwargs):
                raise TransportError("down")

        transport = Raising(broker=self.broker, clock=self.clock)
        client = RPCClient(transport, Target(topic="svc"), clock=self.clock)
        self.failureResultOf(client.call({}, "echo"), TransportError)
        self.assertEqual(reply_waiter(transport, None).pending, {})
        self.clock.advance(60)


class CastTests(_Harness, SynchronousTestCase):
    """
    Casts on the wire.
    """

    def test_topic_cast(self) -> None:
        """
        When a cast is sent, then it has no expiration, no reply fields and
        is mandatory.
        """
        self.sink()
        self.successResultOf(self.client.cast({}, "note", value=1))
        ((exchange, key, body, _, expiration, mandatory),) = self.requests()
        self.assertEqual((exchange.name, key, expiration, mandatory), ("openstack", "svc", None, True))
        inner = json.loads(json.loads(body)["oslo.message"])
        self.assertNotIn("_msg_id", inner)
        self.assertNotIn("_reply_q", inner)

    def test_fanout_cast(self) -> None:
        """
        When a fanout cast is sent, then it goes to the <topic>_fanout
        exchange (fanout, auto-delete) with an empty routing key, mandatory.
        """
        self.sink("", Exchange("svc_fanout", "fanout", auto_delete=True))
        self.successResultOf(self.client.prepare(fanout=True).cast({}, "note", value=1))
        ((exchange, key, _, _, expiration, mandatory),) = self.requests()
        self.assertEqual((exchange, key, expiration, mandatory),
                         (Exchange("svc_fanout", "fanout", auto_delete=True), "", None, True))

    def test_prepare(self) -> None:
        """
        When a client is prepared, then the changes apply to the new client
        only and None resets a field.
        """
        direct = self.client.prepare(server="h", timeout=5, version="1.1")
        self.assertEqual(direct.target, Target(topic="svc", server="h", version="1.1"))
        self.assertEqual((direct.timeout, self.client.timeout), (5, None))
        self.assertEqual(direct.prepare(server=None).target, Target(topic="svc", version="1.1"))
        self.assertEqual(self.client.target, Target(topic="svc"))


class FromConfigTests(SynchronousTestCase):
    """
    L{RPCClient.from_config}.
    """

    def test_settings(self) -> None:
        """
        When a client is made from a configuration, then it takes the
        broker settings from it, keyword arguments beat them, and the target
        is empty unless given.
        """
        from novasvc.config import Config

        config = Config(control_exchange="nova", rpc_response_timeout=7, allowed_remote_exmods=("m",),
                        kombu_missing_consumer_retry_timeout=3, transient_queues_ttl=30, durable_queues=True)
        transport = RecordingTransport(broker=MemoryBroker(), clock=task.Clock())
        client = RPCClient.from_config(transport, config, retry=0)
        self.assertEqual((client.target, client._control_exchange, client._rpc_response_timeout,
                          client.allowed_remote_exmods, client.missing_consumer_retry_timeout, client._ttl,
                          client._durable, client.retry, client.timeout),
                         (Target(), "nova", 7.0, ("m",), 3.0, 30, True, 0, None))
        other = RPCClient.from_config(transport, config, Target(topic="t"), allowed_remote_exmods=())
        self.assertEqual((other.target, other.allowed_remote_exmods), (Target(topic="t"), ()))


class FacadeTests(SynchronousTestCase):
    """
    The novasvc.rpc facade.
    """

    def test_exports(self) -> None:
        """
        When novasvc.rpc is imported, then every name of __all__ is there and
        the main classes are the implementation's.
        """
        for name in novasvc.rpc.__all__:
            self.assertTrue(hasattr(novasvc.rpc, name), name)
        self.assertIs(novasvc.rpc.RPCClient, RPCClient)
        self.assertIs(novasvc.rpc.RPCServer, RPCServer)
        self.assertIn("MessagingTimeout", novasvc.rpc.__all__)
        self.assertLessEqual(set(novasvc.rpc.__all__), set(dir(novasvc.rpc)))
        self.assertRaises(AttributeError, getattr, novasvc.rpc, "NoSuchThing")

    def test_client_on_first_use(self) -> None:
        """
        When a server's modules are imported through the package, then the
        client is not, until C{RPCClient} is looked up, and it does not load
        L{novasvc.tracing} (a hook handed to it, not a module it reads).
        """
        import os
        import subprocess
        import sys

        code = ("import sys; from novasvc.rpc import RPCServer, Target, wire; "
                "loaded = lambda: [m for m in ('novasvc.rpc.client', 'novasvc.tracing') if m in sys.modules]; "
                "print(loaded()); from novasvc.rpc import RPCClient; print(loaded())")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=root).stdout
        self.assertEqual(out.splitlines(), ["[]", "['novasvc.rpc.client']"])
