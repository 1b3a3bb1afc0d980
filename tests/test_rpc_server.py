"""
Tests for L{novasvc.rpc.server}, over the in-memory transport with a
L{task.Clock}.
"""

import json
from typing import Any, Dict, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twisted.internet import defer, task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc import wire
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import InvalidTarget, RemoteError
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.memory import MemoryBroker, MemoryTransport
from novasvc.transport.topology import Binding, Exchange, Queue

CONTROL = Exchange("openstack", "topic")


class RecordingTransport(MemoryTransport):
    """
    The memory transport, recording publishes and the consumers it made.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.published: List[tuple] = []
        self.consumers: List[Any] = []

    def publish(self, exchange, routing_key, body, content_type="application/json", expiration=None,
                mandatory=False):
        self.published.append((exchange, routing_key, body, content_type, expiration, mandatory))
        return super().publish(exchange, routing_key, body, content_type, expiration, mandatory)

    def consume(self, queue, on_message, prefetch=0):
        consumer = super().consume(queue, on_message, prefetch)
        self.consumers.append(consumer)
        return consumer


class Manager:
    """
    An endpoint that records what it is asked.
    """

    target = Target(version="1.2")
    rpc_hidden_names = frozenset({"init_host"})

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: List[tuple] = []
        self.pending: List[defer.Deferred] = []

    def echo(self, ctxt, value):
        self.calls.append(("echo", value))
        return {"server": self.name, "value": value}

    def note(self, ctxt, value):
        self.calls.append(("note", value))

    def slow(self, ctxt, value=None):
        self.calls.append(("slow", value))
        d: defer.Deferred = defer.Deferred()
        self.pending.append(d)
        return d

    def fail(self, ctxt):
        raise ValueError("it failed")

    def unencodable(self, ctxt):
        return object()

    def init_host(self, ctxt):
        self.calls.append(("init_host", None))


def _raise(error: Exception) -> Any:
    raise error


class _Harness:
    """
    A broker, a clock, a server on topic "svc" host "host1" and a client.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.client_transport = self.transport()
        self.client = RPCClient(self.client_transport, Target(topic="svc"), clock=self.clock)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def transport(self) -> RecordingTransport:
        return RecordingTransport(broker=self.broker, clock=self.clock)

    def make_server(self, host: str = "host1", manager: Any = None, **kwargs: Any):
        transport = self.transport()
        manager = manager or Manager(host)
        kwargs.setdefault("clock", self.clock)
        server = RPCServer(transport, Target(topic="svc", server=host), [manager], **kwargs)
        self.successResultOf(server.start())  # type: ignore[attr-defined]
        return server, manager, transport

    def publish(self, body: bytes, routing_key: str = "svc", content_type: Any = "application/json") -> None:
        self.successResultOf(self.client_transport.publish(CONTROL, routing_key, body, content_type))  # type: ignore

    def reply_queue(self, name: str = "reply_test") -> List[wire.Reply]:
        replies: List[wire.Reply] = []

        def collect(delivery):
            delivery.ack()
            replies.append(wire.decode_reply(delivery.body))

        self.client_transport.consume(Queue(name), collect)
        return replies

    def depth(self, queue: str) -> int:
        return len(self.broker.queues[queue].messages)

    def unacked(self, transport: RecordingTransport, queue: str) -> int:
        return sum(len(c.unacked) for c in transport.consumers if c.queue.name == queue)

    def events(self, level: LogLevel) -> List[dict]:
        return [e for e in self.log if e.get("log_level") == level and e.get("log_namespace", "").startswith(
            "novasvc.rpc")]


class TopologyTests(_Harness, SynchronousTestCase):
    """
    The queues and exchanges an RPC server declares (oslo §2-3).
    """

    def test_queues(self) -> None:
        """
        When a server starts, then it consumes <topic> and <topic>.<host> on
        the control exchange and a private fanout queue with x-expires
        1800000 ms bound to the <topic>_fanout exchange.
        """
        server, _, transport = self.make_server()
        topic, direct, fanout = (c.queue for c in transport.consumers)
        self.assertEqual(topic, Queue("svc", bindings=[Binding(CONTROL, "svc")]))
        self.assertEqual(direct, Queue("svc.host1", bindings=[Binding(CONTROL, "svc.host1")]))
        self.assertRegex(fanout.name, "^svc_fanout_[0-9a-f]{32}$")
        self.assertEqual(fanout.arguments_dict(), {"x-expires": 1800000})
        self.assertEqual(fanout.bindings, (Binding(Exchange("svc_fanout", "fanout", auto_delete=True), "svc"),))
        self.assertFalse(fanout.durable or fanout.auto_delete or fanout.exclusive)
        self.assertEqual(server.queues, (topic, direct, fanout))
        self.assertEqual(self.broker.exchanges["svc_fanout"].type, "fanout")

    def test_prefetch(self) -> None:
        """
        When a server starts, then each consumer's prefetch is max_inflight.
        """
        _, _, transport = self.make_server(max_inflight=7)
        self.assertEqual([c.prefetch for c in transport.consumers], [7, 7, 7])

    def test_invalid_target(self) -> None:
        """
        When the target has no topic or no server, then InvalidTarget.
        """
        self.assertRaises(InvalidTarget, RPCServer, self.transport(), Target(topic="t"), [])
        self.assertRaises(InvalidTarget, RPCServer, self.transport(), Target(server="h"), [])

    def test_bad_options(self) -> None:
        """
        When ack, max_inflight or duplicate_window is wrong, then ValueError.
        """
        target = Target(topic="t", server="h")
        self.assertRaises(ValueError, RPCServer, self.transport(), target, [], ack="sometimes")
        self.assertRaises(ValueError, RPCServer, self.transport(), target, [], max_inflight=0)
        self.assertRaises(ValueError, RPCServer, self.transport(), target, [], duplicate_window=-1)

    def test_start_twice(self) -> None:
        """
        When a started server is started again, then no more consumers are
        made.
        """
        server, _, transport = self.make_server()
        self.successResultOf(server.start())
        self.assertEqual(len(transport.consumers), 3)


class RoundTripTests(_Harness, SynchronousTestCase):
    """
    call, cast, fanout and direct-to-host with two servers.
    """

    def setUp(self) -> None:
        super().setUp()
        self.server1, self.manager1, _ = self.make_server("host1")
        self.server2, self.manager2, _ = self.make_server("host2")

    def test_call(self) -> None:
        """
        When a call goes to the topic, then one server runs it and its result
        comes back.
        """
        result = self.successResultOf(self.client.call({}, "echo", value=41))
        self.assertEqual(result["value"], 41)
        self.assertEqual(len(self.manager1.calls) + len(self.manager2.calls), 1)

    def test_topic_round_robin(self) -> None:
        """
        When several calls go to the topic, then both servers take some.
        """
        servers = {self.successResultOf(self.client.call({}, "echo", value=i))["server"] for i in range(4)}
        self.assertEqual(servers, {"host1", "host2"})

    def test_direct(self) -> None:
        """
        When calls and casts go to one host, then only that host runs them.
        """
        direct = self.client.prepare(server="host2")
        for i in range(3):
            self.assertEqual(self.successResultOf(direct.call({}, "echo", value=i))["server"], "host2")
        self.successResultOf(direct.cast({}, "note", value="x"))
        self.assertEqual(self.manager1.calls, [])
        self.assertEqual(self.manager2.calls[-1], ("note", "x"))

    def test_cast(self) -> None:
        """
        When a cast goes to the topic, then one server runs it and the
        Deferred fires with None.
        """
        self.assertIsNone(self.successResultOf(self.client.cast({}, "note", value=1)))
        self.assertEqual(self.manager1.calls + self.manager2.calls, [("note", 1)])

    def test_fanout(self) -> None:
        """
        When a fanout cast is sent, then every server runs it.
        """
        self.successResultOf(self.client.prepare(fanout=True).cast({}, "note", value="all"))
        self.assertEqual(self.manager1.calls, [("note", "all")])
        self.assertEqual(self.manager2.calls, [("note", "all")])

    def test_hidden_name(self) -> None:
        """
        When a lifecycle name or a private name is called, then the caller
        gets NoSuchMethod as a RemoteError and nothing runs.
        """
        for name in ("init_host", "_private", "__init__"):
            failure = self.failureResultOf(self.client.call({}, name), RemoteError)
            self.assertEqual(failure.value.exc_type, "NoSuchMethod")
        self.assertEqual(self.manager1.calls + self.manager2.calls, [])


class AckTests(_Harness, SynchronousTestCase):
    """
    Late and early acknowledgement, seen on the broker.
    """

    def test_late(self) -> None:
        """
        When ack is late, then a request stays unacknowledged while its
        method runs and is acknowledged once the reply is sent.
        """
        server, manager, transport = self.make_server()
        d = self.client.call({}, "slow")
        self.assertEqual(self.unacked(transport, "svc"), 1)
        self.assertEqual(server.inflight, 1)
        manager.pending[0].callback("done")
        self.assertEqual(self.successResultOf(d), "done")
        self.assertEqual(self.unacked(transport, "svc"), 0)
        self.assertEqual(server.inflight, 0)

    def test_early(self) -> None:
        """
        When ack is early, then a request is acknowledged before its method
        runs.
        """
        server, manager, transport = self.make_server(ack="early")
        d = self.client.call({}, "slow")
        self.assertEqual(manager.calls, [("slow", None)])
        self.assertEqual(self.unacked(transport, "svc"), 0)
        self.assertEqual(server.inflight, 1)
        manager.pending[0].callback("done")
        self.assertEqual(self.successResultOf(d), "done")

    def test_late_cast_after_method(self) -> None:
        """
        When a slow cast runs under late ack, then it is acknowledged only
        when the method finished.
        """
        _, manager, transport = self.make_server()
        self.successResultOf(self.client.cast({}, "slow"))
        self.assertEqual(self.unacked(transport, "svc"), 1)
        manager.pending[0].callback(None)
        self.assertEqual(self.unacked(transport, "svc"), 0)


class InflightTests(_Harness, SynchronousTestCase):
    """
    At most max_inflight methods run at once.
    """

    def test_bound(self) -> None:
        """
        When more requests arrive than max_inflight, then only max_inflight
        run, the rest wait on the broker, and each finished one lets the next
        in.
        """
        server, manager, _ = self.make_server(max_inflight=2)
        for i in range(5):
            self.successResultOf(self.client.cast({}, "slow", value=i))
        self.assertEqual((len(manager.pending), server.inflight, self.depth("svc")), (2, 2, 3))
        manager.pending[0].callback(None)
        self.assertEqual((len(manager.pending), server.inflight, self.depth("svc")), (3, 2, 2))

    def test_bound_across_queues(self) -> None:
        """
        When requests arrive on the topic and the host queue, then the bound
        still holds; the waiting one runs when a slot frees, and stop() gives
        it back to the broker when it has not started.
        """
        server, manager, transport = self.make_server(max_inflight=1)
        self.successResultOf(self.client.cast({}, "slow", value="topic"))
        self.successResultOf(self.client.prepare(server="host1").cast({}, "slow", value="host"))
        self.successResultOf(self.client.prepare(server="host1").cast({}, "slow", value="host2"))
        self.assertEqual((len(manager.pending), server.inflight), (1, 1))
        self.assertEqual(self.unacked(transport, "svc.host1"), 1)
        manager.pending[0].callback(None)
        self.assertEqual(manager.calls, [("slow", "topic"), ("slow", "host")])
        self.successResultOf(server.stop())
        self.assertEqual(self.depth("svc.host1"), 1)
        self.assertEqual(self.unacked(transport, "svc.host1"), 1)  # the running one

    def test_synchronous_backlog(self) -> None:
        """
        When waiting requests complete synchronously, then each is served in
        turn and the server ends idle.
        """
        server, manager, _ = self.make_server(max_inflight=1)
        gate = self.client.prepare(server="host1")
        self.successResultOf(self.client.cast({}, "slow", value="first"))
        for i in range(3):
            self.successResultOf(gate.cast({}, "note", value=i))
        manager.pending[0].callback(None)
        self.assertEqual([c for c in manager.calls if c[0] == "note"], [("note", 0), ("note", 1), ("note", 2)])
        self.assertEqual(server.inflight, 0)


class DirectReplyToTests(_Harness, SynchronousTestCase):
    """
    Replies to a caller's direct reply-to name.
    """

    def test_direct_reply_to_not_mandatory(self) -> None:
        """
        When a call names a direct reply-to name as its C{_reply_q}, then its
        reply is published to the default exchange with that routing key
        without the mandatory flag, and a reply to a reply queue with it.
        """
        _, _, transport = self.make_server()
        for reply_q in ("amq.rabbitmq.reply-to.g1h2AA.abc==", "reply_test"):
            self.publish(wire.encode_request("echo", {"value": 1}, {}, msg_id="m1", reply_q=reply_q))
        replies = [(exchange.name, key, mandatory) for exchange, key, _, _, _, mandatory in transport.published]
        self.assertEqual(replies, [("", "amq.rabbitmq.reply-to.g1h2AA.abc==", False), ("", "reply_test", True)])


class MalformedTests(_Harness, SynchronousTestCase):
    """
    Bad bodies are rejected without requeue and the consumer goes on.
    """

    def _check_rejected_then_serving(self, transport, routing_key="svc") -> None:
        self.assertEqual((self.depth(routing_key), self.unacked(transport, routing_key)), (0, 0))
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value="next"))["value"], "next")

    def test_kinds(self) -> None:
        """
        When a body is not JSON, not an object, has no method, has args that
        are not an object, or has an unsupported envelope, then it is
        rejected without requeue, logged once with its routing key, and a
        good call still succeeds.
        """
        _, manager, transport = self.make_server()
        bodies = [
            b"\x00not json",
            b"[1, 2, 3]",
            b'"a string"',
            json.dumps({"args": {}}).encode(),
            json.dumps({"method": "echo", "args": [1]}).encode(),
            wire.encode_envelope({"method": "echo", "args": "x"}),
            json.dumps({"oslo.version": "3.0", "oslo.message": "{}"}).encode(),
        ]
        for body in bodies:
            before = len(self.events(LogLevel.error))
            self.publish(body)
            errors = self.events(LogLevel.error)[before:]
            self.assertEqual(len(errors), 1, body)
            self.assertEqual(errors[0]["routing_key"], "svc")
            self._check_rejected_then_serving(transport)
        self.assertEqual(len(manager.calls), len(bodies))

    def test_content_type(self) -> None:
        """
        When the content type is missing or not JSON, then the request is
        rejected even though its body is good.
        """
        _, manager, transport = self.make_server()
        for content_type in (None, "text/plain"):
            self.publish(wire.encode_request("note", {"value": 1}, {}), content_type=content_type)
            self._check_rejected_then_serving(transport)
        self.assertNotIn(("note", 1), manager.calls)

    def test_call_gets_error_reply(self) -> None:
        """
        When a malformed call has a readable _msg_id and _reply_q, then the
        caller gets a MalformedMessage failure reply.
        """
        _, _, transport = self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_envelope({"method": "echo", "args": [1], "_msg_id": "m1", "_reply_q": "reply_test"}))
        self.assertEqual(len(replies), 1)
        self.assertEqual(replies[0].msg_id, "m1")
        self.assertEqual(json.loads(replies[0].failure)["class"], "MalformedMessage")
        self._check_rejected_then_serving(transport)

    def test_nested_too_deeply(self) -> None:
        """
        When a body is nested deeper than the parser can go, then it takes
        the malformed path: one ERROR line without a traceback, rejected
        without requeue, and the consumer keeps consuming.
        """
        _, _, transport = self.make_server()
        deep = "[" * 100_000 + "]" * 100_000
        self.publish(json.dumps({"oslo.version": "2.0", "oslo.message": '{"method": "echo", "args": {"value": '
                                 + deep + '}}'}).encode())
        [error] = self.events(LogLevel.error)
        self.assertNotIn("log_failure", error)
        self.assertIn("nested too deeply", formatEvent(error))
        self.assertEqual(self.flushLoggedErrors(), [])
        self._check_rejected_then_serving(transport)

    def test_huge_values_short(self) -> None:
        """
        When a malformed call carries a method of a megabyte, then its ERROR
        line stays under 1,000 characters and its error reply under 8 KiB.
        """
        _, _, transport = self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_envelope({"method": "m" * 1_000_000, "args": ["a" * 1_000_000], "_msg_id": "m1",
                                           "_reply_q": "reply_test"}))
        [error] = self.events(LogLevel.error)
        self.assertLess(len(formatEvent(error)), 1000)
        [reply] = replies
        self.assertLess(len(reply.failure), 8192)
        self._check_rejected_then_serving(transport)

    def test_wrong_content_type_call_answered(self) -> None:
        """
        When a call arrives with a content type that is not JSON, then it is
        rejected and its caller still gets a MalformedMessage reply.
        """
        _, _, transport = self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_request("echo", {"value": 1}, {}, msg_id="m1", reply_q="reply_test"),
                     content_type="text/plain")
        [reply] = replies
        self.assertEqual(json.loads(reply.failure)["class"], "MalformedMessage")
        self._check_rejected_then_serving(transport)

    def test_unexpected_bug(self) -> None:
        """
        When the per-message path hits an unexpected error, then it is logged,
        the message is rejected and the consumer keeps consuming.
        """
        _, _, transport = self.make_server()
        original = wire.decode_request

        def broken(*args):
            wire.decode_request = original
            raise RuntimeError("bug")

        wire.decode_request = broken
        self.addCleanup(setattr, wire, "decode_request", original)
        self.successResultOf(self.client.cast({}, "note", value=1))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self._check_rejected_then_serving(transport)


class ShutdownTests(_Harness, SynchronousTestCase):
    """
    stop() and wait().
    """

    def test_stop(self) -> None:
        """
        When a server is stopped, then new requests stay on the broker.
        """
        server, manager, _ = self.make_server()
        self.successResultOf(server.stop())
        self.successResultOf(self.client.cast({}, "note", value=1))
        self.assertEqual((manager.calls, self.depth("svc")), ([], 1))

    def test_drain(self) -> None:
        """
        When stop and wait are called with a call in flight, then wait fires
        (True) only after it finished and its reply went out, and the fanout
        queue is deleted.
        """
        server, manager, _ = self.make_server()
        d = self.client.call({}, "slow")
        self.successResultOf(server.stop())
        waiting = server.wait()
        self.assertNoResult(waiting)
        self.successResultOf(self.client.cast({}, "note", value=2))
        self.assertEqual(self.depth("svc"), 1)
        self.assertIn(server.queues[2].name, self.broker.queues)
        manager.pending[0].callback("finished")
        self.assertEqual(self.successResultOf(d), "finished")
        self.assertIs(self.successResultOf(waiting), True)
        self.assertNotIn(server.queues[2].name, self.broker.queues)

    def test_wait_timeout(self) -> None:
        """
        When wait's timeout passes first, then it fires False, logs a warning,
        deletes the fanout queue and leaves the running request unsettled; if
        it finishes later, it is still acknowledged.
        """
        server, manager, transport = self.make_server()
        self.successResultOf(self.client.cast({}, "slow"))
        waiting = server.wait(timeout=5)
        self.clock.advance(4.9)
        self.assertNoResult(waiting)
        self.clock.advance(0.1)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertNotIn(server.queues[2].name, self.broker.queues)
        self.assertEqual(self.unacked(transport, "svc"), 1)
        self.assertEqual(len([e for e in self.events(LogLevel.warn) if e.get("count") == 1]), 1)
        manager.pending[0].callback(None)
        self.assertEqual(self.unacked(transport, "svc"), 0)

    def test_wait_timeout_stops_the_call_monitor(self) -> None:
        """
        When wait's timeout passes while a monitored call still runs, then
        its heartbeat timer stops with it: no delayed call is left and
        nothing more is published, even after the transport stopped.
        """
        server, manager, transport = self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_request("slow", {}, {}, msg_id="m1", reply_q="reply_test", timeout=4))
        self.clock.advance(2)
        self.assertEqual(len(replies), 1)
        waiting = server.wait(timeout=1)
        self.clock.advance(1)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(transport.stop())
        self.clock.advance(10)
        self.assertEqual(len(replies), 1)

    def test_second_stop_and_wait_share_the_first(self) -> None:
        """
        When stop and wait are called again while the first ones are under
        way, then they wait for those (one drain, one fanout deletion).
        """
        server, manager, _ = self.make_server()
        self.successResultOf(self.client.cast({}, "slow"))
        first = server.wait()
        second = server.wait()
        stopping = server.stop()
        self.successResultOf(stopping)
        self.assertNoResult(first)
        self.assertNoResult(second)
        manager.pending[0].callback(None)
        self.assertIs(self.successResultOf(first), True)
        self.assertIs(self.successResultOf(second), True)

    def test_wait_timeout_then_close(self) -> None:
        """
        When wait's timeout passed and the transport then closes, then the
        unfinished request goes back to its queue, marked redelivered.
        """
        server, _, transport = self.make_server()
        self.successResultOf(self.client.cast({}, "slow"))
        waiting = server.wait(timeout=1)
        self.clock.advance(1)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertEqual(self.depth("svc"), 0)
        self.successResultOf(transport.stop())
        self.assertEqual(self.depth("svc"), 1)
        self.assertTrue(self.broker.queues["svc"].messages[0].redelivered)

    def test_wait_idle(self) -> None:
        """
        When wait is called on an idle started server, then it stops it and
        fires True at once.
        """
        server, manager, _ = self.make_server()
        self.assertIs(self.successResultOf(server.wait(timeout=1)), True)
        self.successResultOf(self.client.cast({}, "note", value=1))
        self.assertEqual(manager.calls, [])


class _ContextReader:
    """
    An endpoint whose method reads every field of its context and passes
    the context on (as a manager calling another service does).
    """

    def __init__(self) -> None:
        self.errors: List[Exception] = []

    def read(self, ctxt: Any, value: Any = None) -> Any:
        try:
            for field in ("user_id", "roles", "timestamp", "is_admin", "client_timeout", "service_catalog"):
                getattr(ctxt, field)
            written = ctxt.to_dict()
            json.dumps(written)
            RequestContext.from_dict(written).to_dict()
        except Exception as e:
            self.errors.append(e)
        return value


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=5)
_FIELDS = ["method", "args", "namespace", "version", "_msg_id", "_reply_q", "_unique_id", "_timeout",
           "_context_roles", "_context_timestamp", "_context_is_admin", "_context_user_id",
           "_context_service_catalog", "_context_request_id", "_context_tenant"]


class WireBoundaryTests(_Harness, SynchronousTestCase):
    """
    No request's own fields make the server fail it by accident.
    """

    @settings(max_examples=200, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(changes=st.dictionaries(st.sampled_from(_FIELDS), _ANY_JSON, max_size=4), envelope=st.booleans())
    def test_fuzzed_fields(self, changes: Dict[str, Any], envelope: bool) -> None:
        """
        When any envelope or message field, or context entry, of a call has
        any JSON value, then the server settles it, is left with nothing in
        flight and logs no unexpected error, and a method that reads its
        context and passes it on never fails doing so.
        """
        reader = _ContextReader()
        server, _, transport = self.make_server(manager=reader)
        self.addCleanup(lambda: self.successResultOf(transport.stop()))
        message = {"method": "read", "args": {"value": 1}, "_msg_id": "m1", "_reply_q": "reply_test",
                   "_unique_id": wire.new_id(), "_context_user_id": "u1"}
        message.update(changes)
        body = json.dumps(message).encode()
        if envelope:
            body = json.dumps({"oslo.version": "2.0", "oslo.message": body.decode()}).encode()
        self.publish(body)
        self.clock.advance(120)
        self.assertEqual(server.inflight, 0)
        self.assertEqual(self.unacked(transport, "svc"), 0)
        unexpected = [e for e in self.events(LogLevel.error) + self.events(LogLevel.critical)
                      if "Unexpected" in e.get("log_format", "") or "bug" in e.get("log_format", "")]
        self.assertEqual(unexpected, [])
        self.assertEqual(reader.errors, [])
        self.flushLoggedErrors()  # a cast refused with its traceback (wrong arguments) is logged so
