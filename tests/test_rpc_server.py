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
from novasvc.exceptions import TransportError, UnroutableError
from novasvc.rpc import wire
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import InvalidTarget, RemoteError
from novasvc.rpc.server import RPCServer, server_queues
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


class RequestTooLarge(Exception):
    """
    An application error that is not a builtin.
    """


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

    def test_options(self) -> None:
        """
        When durable_queues, a control exchange and a TTL are given, then the
        topic queues and exchange are durable on that exchange and the fanout
        queue has that x-expires; a TTL of 0 gives no x-expires.
        """
        topic, direct, fanout = server_queues(Target(topic="t", server="h"), "nova", durable_queues=True,
                                              transient_queues_ttl=60)
        nova = Exchange("nova", "topic", durable=True)
        self.assertEqual((topic.durable, direct.durable, fanout.durable), (True, True, False))
        self.assertEqual(topic.bindings, (Binding(nova, "t"),))
        self.assertEqual(fanout.arguments_dict(), {"x-expires": 60000})
        queues = server_queues(Target(topic="t", server="h", exchange="own"), transient_queues_ttl=0)
        self.assertEqual(queues[0].bindings[0].exchange.name, "own")
        self.assertEqual(queues[2].arguments_dict(), {})

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

    def test_late_missing_reply_queue(self) -> None:
        """
        When the reply queue is missing, then the request is acknowledged and
        its slot freed once the first attempt came back unroutable; the reply
        is retried in the background every 0.25 s and abandoned after
        reply_retry_timeout (13 attempts for 3 s, as oslo), with one WARNING.
        """
        server, _, transport = self.make_server(reply_retry_timeout=3)
        self.publish(wire.encode_request("echo", {"value": 1}, {}, msg_id="m1", reply_q="reply_missing"))
        self.assertEqual((self.unacked(transport, "svc"), server.inflight, server.held_replies), (0, 0, 1))
        for _ in range(11):
            self.clock.advance(0.25)
        self.assertEqual(server.held_replies, 1)
        self.clock.advance(0.25)  # t = 3 s: the 13th attempt fails too
        attempts = [p for p in transport.published if p[1] == "reply_missing"]
        self.assertEqual(len(attempts), 13)
        self.assertTrue(all(p[0].name == "" and p[5] for p in attempts))
        self.assertEqual(server.held_replies, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len([e for e in self.events(LogLevel.warn) if e.get("reply_q") == "reply_missing"]), 1)

    def test_obsolete_reply_queue(self) -> None:
        """
        When a reply queue was abandoned, then a later reply to it is dropped
        at once.
        """
        _, _, transport = self.make_server(reply_retry_timeout=0)
        self.publish(wire.encode_request("echo", {"value": 1}, {}, msg_id="m1", reply_q="reply_missing"))
        self.publish(wire.encode_request("echo", {"value": 2}, {}, msg_id="m2", reply_q="reply_missing"))
        self.assertEqual(len([p for p in transport.published if p[1] == "reply_missing"]), 1)
        self.assertEqual(self.unacked(transport, "svc"), 0)

    def test_reply_queue_appears(self) -> None:
        """
        When the reply queue appears while the reply is retried, then the
        reply is delivered.
        """
        _, _, transport = self.make_server()
        self.publish(wire.encode_request("echo", {"value": 1}, {}, msg_id="m1", reply_q="reply_late"))
        self.clock.advance(0.25)
        replies = self.reply_queue("reply_late")
        self.clock.advance(0.25)
        self.assertEqual([r.result["value"] for r in replies], [1])
        self.assertEqual(self.unacked(transport, "svc"), 0)


class ReplyRetryTests(_Harness, SynchronousTestCase):
    """
    Replies to missing queues are retried in the background, within a budget,
    and never hold an in-flight slot.
    """

    def missing_call(self, reply_q: str = "reply_missing", method: str = "echo", value: Any = 1) -> None:
        self.publish(wire.encode_request(method, {"value": value}, {}, msg_id=wire.new_id(), reply_q=reply_q))

    def attempts(self, transport: RecordingTransport, reply_q: str = "reply_missing") -> int:
        return len([p for p in transport.published if p[1] == reply_q])

    def test_dead_caller_holds_no_slot(self) -> None:
        """
        When a caller's reply queue is missing and its calls fill
        max_inflight many times over, then each is acknowledged once its
        reply came back unroutable, and a live call is answered at once.
        """
        server, manager, transport = self.make_server(max_inflight=2)
        for i in range(10):
            self.missing_call(value=i)
        self.assertEqual((server.inflight, self.depth("svc"), self.unacked(transport, "svc")), (0, 0, 0))
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value="live"))["value"], "live")
        self.assertEqual(server.held_replies, 10)

    def test_slot_held_until_unroutable(self) -> None:
        """
        When the first attempt of a reply has not come back yet, then the
        request keeps its slot and stays unacknowledged; once it comes back
        unroutable, both are released.
        """
        server, _, transport = self.make_server()
        pending: List[defer.Deferred] = []
        transport.publish = lambda *args, **kwargs: pending.append(defer.Deferred()) or pending[-1]
        self.missing_call()
        self.assertEqual((server.inflight, self.unacked(transport, "svc")), (1, 1))
        pending[0].errback(UnroutableError("no queue"))
        self.assertEqual((server.inflight, self.unacked(transport, "svc"), server.held_replies), (0, 0, 1))

    def test_one_probe_per_missing_queue(self) -> None:
        """
        When several replies wait for the same missing queue, then later ones
        are held without a publish, and each retry sends one probe.
        """
        server, _, transport = self.make_server()
        for i in range(5):
            self.missing_call(value=i)
        self.assertEqual((self.attempts(transport), server.held_replies), (1, 5))
        self.clock.advance(0.25)
        self.clock.advance(0.25)
        self.assertEqual(self.attempts(transport), 3)

    def test_queue_appears(self) -> None:
        """
        When a missing reply queue appears while its replies are held, then
        they are all delivered, in order, at the next retry.
        """
        server, _, _ = self.make_server()
        for i in range(3):
            self.missing_call("reply_late", value=i)
        replies = self.reply_queue("reply_late")
        self.clock.advance(0.25)
        self.assertEqual([r.result["value"] for r in replies], [0, 1, 2])
        self.assertEqual(server.held_replies, 0)
        self.missing_call("reply_late", value=3)
        self.assertEqual(replies[-1].result["value"], 3)

    def test_gone_queue_dropped_at_once(self) -> None:
        """
        When a reply queue stayed missing for reply_retry_timeout, then it is
        remembered as gone for 60 s: further replies to it are dropped
        without a publish (a DEBUG line each, no more WARNING), the requests
        acknowledged; after that, a reply to it is tried again.
        """
        server, _, transport = self.make_server(reply_retry_timeout=1)
        self.missing_call()
        self.clock.advance(1)
        self.clock.advance(0.25)
        attempts = self.attempts(transport)
        self.assertEqual(server.held_replies, 0)
        warnings = len(self.events(LogLevel.warn))
        for i in range(3):
            self.missing_call(value=i)
        self.assertEqual(self.attempts(transport), attempts)
        self.assertEqual((self.depth("svc"), self.unacked(transport, "svc"), server.inflight), (0, 0, 0))
        self.assertEqual(len(self.events(LogLevel.warn)), warnings)
        self.assertEqual(len([e for e in self.events(LogLevel.debug) if "gone" in e["log_format"]]), 3)
        self.clock.advance(60)
        self.missing_call()
        self.assertEqual(self.attempts(transport), attempts + 1)

    def test_gone_queues_bounded(self) -> None:
        """
        When more than 1,000 reply queues are found gone, then the oldest is
        forgotten first: a reply to it is tried again, one to a recent one
        is not.
        """
        _, _, transport = self.make_server(reply_retry_timeout=0)
        for i in range(1001):
            self.missing_call(f"reply_gone_{i}")
        self.missing_call("reply_gone_0")
        self.missing_call("reply_gone_1000")
        self.assertEqual(self.attempts(transport, "reply_gone_0"), 2)
        self.assertEqual(self.attempts(transport, "reply_gone_1000"), 1)

    def test_budget_count(self) -> None:
        """
        When more replies wait for missing queues than reply_retry_max, then
        the extra ones are dropped with one WARNING, and the abandon line
        counts them.
        """
        server, _, _ = self.make_server(reply_retry_max=3, reply_retry_timeout=1)
        for i in range(5):
            self.missing_call(value=i)
        self.assertEqual(server.held_replies, 3)
        self.assertEqual(len([e for e in self.events(LogLevel.warn) if "budget" in e["log_format"]]), 1)
        self.clock.advance(1)
        self.clock.advance(0.25)
        [abandoned] = [e for e in self.events(LogLevel.warn) if e.get("reply_q") == "reply_missing"]
        self.assertEqual(abandoned["count"], 5)

    def test_budget_bytes(self) -> None:
        """
        When the replies held would pass reply_retry_bytes, then the one that
        does not fit is dropped, and its queue, found missing then, is given
        up at once.
        """
        server, _, _ = self.make_server(reply_retry_bytes=1500)
        self.missing_call("reply_a", value="x" * 1000)
        self.missing_call("reply_b", value="y" * 1000)
        self.assertEqual(server.held_replies, 1)
        self.assertEqual([e["reply_q"] for e in self.events(LogLevel.warn) if "reply_q" in e], ["reply_b"])

    def test_retry_transport_error(self) -> None:
        """
        When a retry fails for another reason than a missing queue, then the
        held replies are dropped with one ERROR line, and the queue is not
        taken for gone: the next reply to it is published.
        """
        server, _, transport = self.make_server()
        self.missing_call()
        self.missing_call()
        publish = transport.publish
        transport.publish = lambda *args, **kwargs: defer.fail(TransportError("connection lost"))
        self.clock.advance(0.25)
        self.assertEqual((server.held_replies, self.clock.getDelayedCalls()), (0, []))
        [error] = self.events(LogLevel.error)
        self.assertEqual(error["count"], 2)
        transport.publish = publish
        self.missing_call()
        self.assertEqual(self.attempts(transport), 2)

    def test_other_publish_error(self) -> None:
        """
        When a reply fails for another reason than a missing queue, then it
        is logged once at ERROR, not retried, and the request acknowledged.
        """
        server, _, transport = self.make_server()
        transport.publish = lambda *args, **kwargs: defer.fail(TransportError("x" * 10_000))
        self.missing_call()
        self.assertEqual((server.inflight, self.unacked(transport, "svc"), server.held_replies), (0, 0, 0))
        [error] = self.events(LogLevel.error)
        self.assertLess(len(formatEvent(error)), 1000)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wait_drops_held(self) -> None:
        """
        When the server is stopped and waited for while replies are held,
        then they are dropped with one WARNING and no timer is left; a reply
        found unroutable afterwards is given up at once.
        """
        server, manager, transport = self.make_server()
        self.missing_call()
        self.missing_call("reply_other", method="slow")
        waiting = server.wait(timeout=1)
        self.clock.advance(1)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertEqual(server.held_replies, 0)
        self.assertEqual(len([e for e in self.events(LogLevel.warn) if "stopped" in e["log_format"]]), 1)
        manager.pending[0].callback("late")
        self.assertEqual(self.attempts(transport, "reply_other"), 1)
        self.assertEqual((server.inflight, server.held_replies, self.clock.getDelayedCalls()), (0, 0, []))
        self.assertEqual(len([e for e in self.events(LogLevel.warn) if e.get("reply_q") == "reply_other"]), 1)


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


class DuplicateTests(_Harness, SynchronousTestCase):
    """
    Duplicate suppression by _unique_id.
    """

    def test_duplicate_cast(self) -> None:
        """
        When the same request arrives twice, then the method runs once, the
        copy is acknowledged with one ERROR log, and nothing stays queued.
        """
        _, manager, transport = self.make_server()
        body = wire.encode_request("note", {"value": 1}, {}, unique_id="u" * 32)
        self.publish(body)
        self.publish(body)
        self.assertEqual(manager.calls, [("note", 1)])
        self.assertEqual((self.depth("svc"), self.unacked(transport, "svc")), (0, 0))
        errors = [e for e in self.events(LogLevel.error) if e.get("unique_id") == "u" * 32]
        self.assertEqual(len(errors), 1)

    def test_duplicate_call_no_reply(self) -> None:
        """
        When a call is repeated with the same _unique_id, then only one reply
        is sent.
        """
        self.make_server()
        replies = self.reply_queue()
        body = wire.encode_request("echo", {"value": 1}, {}, msg_id="m1", reply_q="reply_test", unique_id="dup")
        self.publish(body)
        self.publish(body)
        self.assertEqual(len(replies), 1)

    def test_copy_waits_for_running_original(self) -> None:
        """
        When a copy of a request arrives while the original still runs (late
        ack), then it is not run and stays unacknowledged; once the original
        is acknowledged, the copy is acknowledged too, with one ERROR line.
        """
        _, manager, transport = self.make_server()
        body = wire.encode_request("slow", {"value": 1}, {}, unique_id="u1")
        self.publish(body)
        self.publish(body)
        self.assertEqual(manager.calls, [("slow", 1)])
        self.assertEqual(self.unacked(transport, "svc"), 2)
        self.assertEqual(self.events(LogLevel.error), [])
        manager.pending[0].callback(None)
        self.assertEqual((self.depth("svc"), self.unacked(transport, "svc")), (0, 0))
        self.assertEqual(len([e for e in self.events(LogLevel.error) if e.get("unique_id") == "u1"]), 1)
        self.publish(body)
        self.assertEqual((manager.calls, self.unacked(transport, "svc")), ([("slow", 1)], 0))

    def test_copy_of_call_waits(self) -> None:
        """
        When a copy of a call arrives while the original runs, then the
        caller gets one reply, after which both messages are acknowledged.
        """
        _, manager, transport = self.make_server()
        replies = self.reply_queue()
        body = wire.encode_request("slow", {}, {}, msg_id="m1", reply_q="reply_test", unique_id="u1")
        self.publish(body)
        self.publish(body)
        manager.pending[0].callback("done")
        self.assertEqual([r.result for r in replies], ["done"])
        self.assertEqual(self.unacked(transport, "svc"), 0)

    def test_copy_survives_a_crash(self) -> None:
        """
        When the server's connection closes while a copy waits for its
        original, then both go back to the queue: the request is not lost.
        """
        _, manager, transport = self.make_server()
        body = wire.encode_request("slow", {"value": 1}, {}, unique_id="u1")
        self.publish(body)
        self.publish(body)
        self.successResultOf(transport.stop())
        self.assertEqual(self.depth("svc"), 2)

    def test_copy_requeued_when_original_not_completed(self) -> None:
        """
        When the original could not be completed (rejected after an
        unexpected error), then the copy waiting for it goes back to the
        broker and runs, and its caller gets the reply.
        """
        _, manager, transport = self.make_server()
        replies = self.reply_queue()
        body = wire.encode_request("slow", {}, {}, msg_id="m1", reply_q="reply_test", unique_id="u1")
        self.publish(body)
        self.publish(body)
        publish = transport.publish
        transport.publish = lambda *args, **kwargs: _raise(RuntimeError("broken publish"))
        manager.pending[0].callback("first")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(manager.pending), 2)
        transport.publish = publish
        manager.pending[1].callback("second")
        self.assertEqual([r.result for r in replies], ["second"])
        self.assertEqual((self.depth("svc"), self.unacked(transport, "svc")), (0, 0))

    def test_early_copy_dropped(self) -> None:
        """
        When ack is early and a copy arrives while the original runs, then
        the copy is acknowledged at once as a duplicate (at-most-once, as
        oslo).
        """
        _, manager, transport = self.make_server(ack="early")
        body = wire.encode_request("slow", {"value": 1}, {}, unique_id="u1")
        self.publish(body)
        self.publish(body)
        self.assertEqual((len(manager.calls), self.unacked(transport, "svc")), (1, 0))
        self.assertEqual(len(self.events(LogLevel.error)), 1)

    def test_long_unique_ids(self) -> None:
        """
        When requests carry _unique_ids of a megabyte, then a repeated one is
        still a duplicate, a different one is not, and what the window keeps
        of each is short.
        """
        server, manager, _ = self.make_server()
        first, second = "u" * 1_000_000, "u" * 999_999 + "v"
        for unique_id in (first, first, second):
            self.publish(wire.encode_request("note", {"value": unique_id[-1]}, {}, unique_id=unique_id))
        self.assertEqual(manager.calls, [("note", "u"), ("note", "v")])
        self.assertEqual(len(server._duplicates.seen), 2)
        self.assertLess(max(len(unique_id) for unique_id in server._duplicates.seen), 200)

    def test_no_unique_id(self) -> None:
        """
        When requests have no _unique_id, then they are never duplicates.
        """
        _, manager, _ = self.make_server()
        body = json.dumps({"method": "note", "args": {"value": 1}}).encode()
        self.publish(body)
        self.publish(body)
        self.assertEqual(manager.calls, [("note", 1), ("note", 1)])

    def test_window(self) -> None:
        """
        When more ids than the window arrive, then the oldest is forgotten
        and accepted again.
        """
        _, manager, _ = self.make_server(duplicate_window=2)
        for uid in ("a", "b", "c", "a", "c"):
            self.publish(wire.encode_request("note", {"value": uid}, {}, unique_id=uid))
        self.assertEqual([c[1] for c in manager.calls], ["a", "b", "c", "a"])

    def test_disabled(self) -> None:
        """
        When duplicate_window is 0, then nothing is a duplicate.
        """
        _, manager, _ = self.make_server(duplicate_window=0)
        body = wire.encode_request("note", {"value": 1}, {}, unique_id="x")
        self.publish(body)
        self.publish(body)
        self.assertEqual(len(manager.calls), 2)


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


class ErrorTests(_Harness, SynchronousTestCase):
    """
    Exceptions in methods.
    """

    def test_cast_exception_logged(self) -> None:
        """
        When a cast raises, then the exception is logged with the request
        id of its context, the message is acknowledged and the server goes
        on.
        """
        _, _, transport = self.make_server()
        self.successResultOf(self.client.cast(RequestContext(request_id="req-cast"), "fail"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        [error] = self.events(LogLevel.error)
        self.assertEqual(formatEvent(error), "Exception during message handling: cast 'fail' from routing key "
                                             "'svc' (request req-cast)")
        self.assertEqual(self.unacked(transport, "svc"), 0)
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value=1))["value"], 1)

    def test_call_exception_replied(self) -> None:
        """
        When a call raises, then the caller gets the error and nothing is
        logged as an error.
        """
        self.make_server()
        failure = self.failureResultOf(self.client.call({}, "fail"), ValueError)
        self.assertTrue(str(failure.value).startswith("it failed"))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_call_failure_logged_once(self) -> None:
        """
        When a called method raises, then one WARNING names the method, the
        error class and message, the msg_id and the request id, the
        traceback is logged at DEBUG only, and nothing counts as an error.
        """
        self.make_server()
        self.failureResultOf(self.client.call({"request_id": "req-42"}, "fail"), ValueError)
        [warning] = self.events(LogLevel.warn)
        text = formatEvent(warning)
        self.assertRegex(text, r"^RPC call 'fail' failed with ValueError: it failed \(msg_id [0-9a-f]{32}, "
                               r"request req-42\)$")
        [debug] = self.events(LogLevel.debug)
        self.assertIn("Traceback", formatEvent(debug))
        self.assertIn("it failed", formatEvent(debug))
        self.assertEqual(self.events(LogLevel.error) + self.events(LogLevel.info), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_call_failure_request_context(self) -> None:
        """
        When a method called with a L{RequestContext} raises, then the
        WARNING line gives that context's request id.
        """
        self.make_server()
        ctxt = RequestContext("u", "p")
        self.failureResultOf(self.client.call(ctxt, "fail"), ValueError)
        [warning] = self.events(LogLevel.warn)
        self.assertTrue(formatEvent(warning).endswith(f"request {ctxt.request_id})"), formatEvent(warning))

    def test_call_failure_class_path(self) -> None:
        """
        When a called method raises an exception that is not a builtin,
        then the warning gives its module and class name.
        """
        manager = Manager("host1")
        manager.fail = lambda ctxt: _raise(RequestTooLarge("no room"))  # type: ignore[method-assign]
        self.make_server(manager=manager)
        self.failureResultOf(self.client.call({}, "fail"))
        [warning] = self.events(LogLevel.warn)
        self.assertIn("failed with tests.test_rpc_server.RequestTooLarge: no room", formatEvent(warning))

    def test_client_values_clipped(self) -> None:
        """
        When a call names a method of 100,000 characters and a request id of
        as many, then the warning shows 200 of each and says how long they
        were, and the DEBUG traceback stays short too.
        """
        self.make_server()
        huge = "m" * 100_000
        self.failureResultOf(self.client.call({"request_id": "r" * 100_000}, huge))
        [warning] = self.events(LogLevel.warn)
        text = formatEvent(warning)
        self.assertLess(len(text), 1000)
        self.assertIn("m" * 200 + "... (100000 characters)", text)
        self.assertIn("r" * 200 + "... (100000 characters)", text)
        self.assertNotIn("m" * 201, text)
        [debug] = self.events(LogLevel.debug)
        self.assertLess(len(formatEvent(debug)), 5000)

    def test_refused_cast(self) -> None:
        """
        When a cast names a missing method of 100,000 characters, then one
        WARNING line without a traceback names the error, with the name cut
        to 200 characters, and nothing is logged as an error.
        """
        self.make_server()
        self.successResultOf(self.client.cast({"request_id": "req-refused"}, "c" * 100_000))
        [warning] = self.events(LogLevel.warn)
        text = formatEvent(warning)
        self.assertNotIn("log_failure", warning)
        self.assertTrue(text.endswith("(request req-refused)"), text)
        self.assertIn("c" * 200 + "... (100000 characters)", text)
        self.assertIn("refused: novasvc.rpc.errors.NoSuchMethod", text)
        self.assertLess(len(text), 1000)
        self.assertEqual(self.events(LogLevel.error) + self.events(LogLevel.debug), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_refused_cast_kinds(self) -> None:
        """
        When casts name a private method, a lifecycle hook or an unsupported
        version, then each is one WARNING line without a traceback.
        """
        self.make_server()
        self.successResultOf(self.client.cast({}, "_private"))
        self.successResultOf(self.client.cast({}, "init_host"))
        self.successResultOf(self.client.prepare(version="9.0").cast({}, "note", value=1))
        warnings = self.events(LogLevel.warn)
        self.assertEqual(len(warnings), 3)
        self.assertIn("UnsupportedVersion", formatEvent(warnings[2]))
        self.assertFalse(any("log_failure" in event for event in warnings))
        self.assertEqual(self.events(LogLevel.error), [])

    def test_refused_call_reply_short(self) -> None:
        """
        When a call names a missing method of a megabyte, then its error
        reply and its WARNING line stay short (under 4 KiB and 1,000
        characters).
        """
        self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_request("m" * 1_000_000, {"v" * 1_000_000: 1}, {}, msg_id="m1",
                                         reply_q="reply_test"))
        [reply] = replies
        self.assertEqual(json.loads(reply.failure)["class"], "NoSuchMethod")
        self.assertLess(len(reply.failure), 4096)
        [warning] = self.events(LogLevel.warn)
        self.assertLess(len(formatEvent(warning)), 1000)

    def test_success_not_logged(self) -> None:
        """
        When calls and casts succeed, then the server logs nothing at all.
        """
        self.make_server()
        self.successResultOf(self.client.call({}, "echo", value=1))
        self.successResultOf(self.client.cast({}, "note", value=2))
        self.assertEqual([e for e in self.log if e.get("log_namespace", "").startswith("novasvc.rpc")], [])

    def test_ignore_errors(self) -> None:
        """
        When a cast names a missing method ending in _ignore_errors, then
        nothing is logged as an error.
        """
        self.make_server()
        self.successResultOf(self.client.cast({}, "missing_ignore_errors"))
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.events(LogLevel.error), [])

    def test_unencodable_result(self) -> None:
        """
        When a call's result cannot be encoded, then the caller gets a
        TypeError.
        """
        server, _, _ = self.make_server()
        failure = self.failureResultOf(self.client.call({}, "unencodable"), TypeError)
        self.assertIn("not JSON serializable", str(failure.value))
        self.assertEqual(server.inflight, 0)


class CallMonitorTests(_Harness, SynchronousTestCase):
    """
    Heartbeats while a monitored call runs.
    """

    def test_heartbeats(self) -> None:
        """
        When a call carries _timeout 4, then an ending-false heartbeat is sent
        every 2 s while the method runs, and none after the final reply.
        """
        _, manager, _ = self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_request("slow", {}, {}, msg_id="m1", reply_q="reply_test", timeout=4))
        self.clock.advance(1.9)
        self.assertEqual(replies, [])
        self.clock.advance(0.1)
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(r.is_heartbeat and r.msg_id == "m1" for r in replies))
        manager.pending[0].callback("done")
        self.clock.advance(10)
        self.assertEqual(len(replies), 4)
        self.assertEqual((replies[-1].ending, replies[-1].result), (True, "done"))

    def test_client_timeout_in_context(self) -> None:
        """
        When a call carries _timeout, then the endpoint sees it as the
        context's client_timeout.
        """
        seen = []

        class Spy:
            def look(self, ctxt):
                seen.append(ctxt.client_timeout)

        self.make_server(manager=Spy())
        self.successResultOf(self.client.prepare(call_monitor_timeout=30).call({}, "look"))
        self.successResultOf(self.client.call({}, "look"))
        self.assertEqual(seen, [30, None])

    def test_unusable_timeout(self) -> None:
        """
        When _timeout is too small or not a number, then no heartbeat is sent
        and a warning is logged.
        """
        _, manager, _ = self.make_server()
        replies = self.reply_queue()
        for i, timeout in enumerate((1, "x")):
            self.publish(wire.encode_request("slow", {}, {}, msg_id=f"m{i}", reply_q="reply_test", timeout=timeout))
        self.clock.advance(10)
        self.assertEqual(replies, [])
        self.assertEqual(len([e for e in self.events(LogLevel.warn) if "timeout" in e]), 2)


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
