"""
Fault tests of L{novasvc.rpc.server} against the local RabbitMQ, each in its
own vhost: a dead client's calls beside live ones, and ten thousand bad
bodies. Each is bounded in time and checks its figures; the figures are also
written to the test log (C{_trial_temp/test.log}) as one INFO line.
"""

import json
import random
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple

from twisted.internet import defer, reactor, task
from twisted.logger import Logger, eventAsJSON, eventAsText, globalLogPublisher
from twisted.trial.unittest import TestCase

from novasvc.rpc import wire
from novasvc.rpc.client import RPCClient
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.topology import Exchange, Queue
from tests._clients import AMQPTransport, on_txamqp
from tests._services import poll
from tests.test_transport_amqp import FAST, RabbitFixture, rabbit_url, started

_log = Logger()
CONTROL = Exchange("openstack", "topic")
MIB = 1024 * 1024


class Manager:
    """
    The endpoint served: an echo, a note, a method that takes a while and
    one that raises.
    """

    def echo(self, ctxt: Any, value: Any = None) -> Any:
        return value

    def note(self, ctxt: Any, value: Any = None) -> None:
        return None

    def work(self, ctxt: Any, value: Any = None) -> defer.Deferred:
        return task.deferLater(reactor, 0.05, lambda: value)

    def fail(self, ctxt: Any, value: Any = None) -> None:
        raise ValueError("refused on purpose")


def _percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _event_size(event: Dict[str, Any]) -> int:
    """
    @return: the larger of an event's text (with its traceback, as a log
        file shows it) and its JSON (as C{twist --log-format=json} writes it),
        in bytes.
    """
    text = eventAsText(event, includeTraceback=True, includeTimestamp=False, includeSystem=False)
    return max(len(text.encode("utf-8")), len(eventAsJSON(event).encode("utf-8")))


class _Broker(TestCase):
    """
    A vhost per test (with an admin connection to look at its queues), the
    log events of the test, and a server on topic C{svc} host C{host1} with
    its own connection.

    @cvar transport_class: the AMQP transport used (see L{tests._clients}).
    """

    timeout = 120
    transport_class = AMQPTransport

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        fixture = yield RabbitFixture.create(self)
        self.vhost, self.admin = fixture.vhost, fixture.admin
        self.events: List[Dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def transport(self) -> Any:
        return started(self, rabbit_url(self.vhost), self.transport_class, **FAST)

    @defer.inlineCallbacks
    def serve(self, **kwargs: Any) -> Any:
        self.server_transport = self.transport()
        self.server = RPCServer(self.server_transport, Target(topic="svc", server="host1"), [Manager()],
                                clock=reactor, **kwargs)
        yield self.server.start()
        self.addCleanup(self.server.wait, 5)
        return self.server

    def server_events(self) -> List[Dict[str, Any]]:
        return [e for e in self.events if e.get("log_namespace", "").startswith("novasvc.rpc")]


class DeadClientTests(_Broker):
    """
    A client whose reply queue is gone does not stall live callers.
    """

    @defer.inlineCallbacks
    def test_dead_client_64_calls(self) -> Any:
        """
        When a dead client's 64 calls (their _reply_q does not exist) arrive
        just before live calls, then all 64 are settled within 2 s while
        their replies wait in the background, every live call succeeds with
        a p99 under 1 s, and the dead queue gets one reply probe per retry
        rather than one per reply.
        """
        server = yield self.serve()
        published: Dict[str, int] = {}
        publish = self.server_transport.publish

        def counting(exchange: Any, routing_key: str, *args: Any, **kwargs: Any) -> defer.Deferred:
            published[routing_key] = published.get(routing_key, 0) + 1
            return publish(exchange, routing_key, *args, **kwargs)

        self.server_transport.publish = counting
        client = RPCClient(self.transport(), Target(topic="svc"), timeout=5, clock=reactor)
        self.assertEqual((yield client.call({}, "echo", value="warm")), "warm")

        dead_queue = f"reply_dead_{uuid.uuid4().hex}"
        dead = self.transport()
        started_at = reactor.seconds()
        yield defer.gatherResults([
            dead.publish(CONTROL, "svc", wire.encode_request("work", {"value": i}, {}, msg_id=wire.new_id(),
                                                             reply_q=dead_queue))
            for i in range(64)
        ])
        settled = poll(lambda: server.held_replies == 64, "the 64 dead calls settled, their replies held",
                       timeout=10)
        settled.addCallback(lambda _: reactor.seconds() - started_at)
        latencies: List[float] = []

        @defer.inlineCallbacks
        def live_caller(n: int) -> Any:
            for i in range(n):
                begin = time.perf_counter()
                result = yield client.call({}, "work", value=i)
                latencies.append(time.perf_counter() - begin)
                self.assertEqual(result, i)

        yield defer.gatherResults([live_caller(50) for _ in range(8)])
        settled_after = yield settled
        # A live call's reply reaches its caller before the server has its
        # confirm and acks the request: wait for the last ones to settle.
        yield poll(lambda: (server.inflight, self.admin.message_count("svc")) == (0, 0),
                   "every request settled and acknowledged", timeout=10)
        elapsed = reactor.seconds() - started_at
        probes = published.get(dead_queue, 0)
        p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
        _log.info("dead client: {count} live calls, p50 {p50:.3f} s, p99 {p99:.3f} s, max {max:.3f} s; 64 dead "
                  "calls settled within {settled:.2f} s; {probes} publishes to the dead queue in {elapsed:.2f} s",
                  count=len(latencies), p50=p50, p99=p99, max=max(latencies), settled=settled_after,
                  probes=probes, elapsed=elapsed)
        self.assertEqual(len(latencies), 400)
        self.assertLess(p99, 1.0)
        self.assertLess(settled_after, 2.0)
        self.assertLessEqual(probes, 64 + elapsed / 0.25 + 2)
        warnings = [e for e in self.server_events() if e["log_level"].name in ("warn", "error", "critical")]
        self.assertEqual(warnings, [])


# -- ten thousand bad bodies ---------------------------------------------------------

#: What a generated message is: its body, content type and routing key, and
#: the msg_id the server must answer on the live reply queue (None: no answer
#: is expected, the message is not call-shaped or its reply queue is gone).
_Message = Tuple[bytes, Optional[str], str, Optional[str]]

_PRIVATE = ["_private", "__init__", "__class__", "__dict__", "__reduce__", "init_host", "target", "periodic_tasks",
            "cleanup_host", "_Manager__x"]


class _Generator:
    """
    A seeded generator of bad (and a few good) request bodies.
    """

    def __init__(self, seed: int, live_queue: str, dead_queues: List[str]) -> None:
        self.rng = random.Random(seed)
        self.live = live_queue
        self.dead = dead_queues
        self.huge = "h" * MIB

    def text(self, size: int = 20) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz_ .\u00e9\u4e2d\"\\{}[]")
                       for _ in range(self.rng.randint(0, size)))

    def deep(self, depth: int) -> str:
        return "[" * depth + "]" * depth

    def wrong(self) -> Any:
        return self.rng.choice([5, -1.5, True, None, [], [1, "a"], {}, {"k": "v"}, "", self.text()])

    def call_fields(self, live: Optional[bool] = None) -> Tuple[Dict[str, Any], Optional[str]]:
        """
        @return: the reply fields of a call (to the live queue or a dead one)
            or none (a cast), and the msg_id an answer is expected for.
        """
        kind = self.rng.random()
        if live is True or (live is None and kind < 0.6):
            msg_id = wire.new_id()
            return {"_msg_id": msg_id, "_reply_q": self.live, "_timeout": None}, msg_id
        if live is None and kind < 0.8:
            return {"_msg_id": wire.new_id(), "_reply_q": self.rng.choice(self.dead)}, None
        return {}, None

    def message(self, fields: Dict[str, Any], envelope: bool = True) -> bytes:
        fields.setdefault("_unique_id", wire.new_id())
        if envelope:
            return wire.encode_envelope(fields)
        return json.dumps(fields).encode()

    def generate(self, count: int) -> Iterator[_Message]:
        kinds = [
            (self.random_bytes, 10), (self.not_json, 8), (self.not_object, 6), (self.bad_envelope, 6),
            (self.wrong_types, 16), (self.megabyte, 1), (self.nested, 6), (self.private_or_unknown, 12),
            (self.missing_reply_queue, 8), (self.content_type, 6), (self.bad_arguments, 8), (self.odd_values, 6),
            (self.good, 8),
        ]
        functions = [k for k, _ in kinds]
        weights = [w for _, w in kinds]
        for _ in range(count):
            yield self.rng.choices(functions, weights)[0]()

    # Each kind returns one _Message.

    def random_bytes(self) -> _Message:
        body = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 300)))
        return body, "application/json", "svc", None

    def not_json(self) -> _Message:
        body = self.rng.choice([b"{", b"nope", b'{"method": ', b'{"oslo.version": "2.0", "oslo.message": "{',
                                b"\xff\xfe{}", b'{"method": "echo"} trailing', self.text(200).encode("utf-8")])
        return body, "application/json", self.rng.choice(["svc", "svc.host1"]), None

    def not_object(self) -> _Message:
        value = self.rng.choice([[1, 2], "text", 42, None, True, [{"method": "echo"}]])
        body = wire.encode_envelope(value) if self.rng.random() < 0.5 else json.dumps(value).encode()
        return body, "application/json", "svc", None

    def bad_envelope(self) -> _Message:
        body = self.rng.choice([
            {"oslo.version": "3.0", "oslo.message": "{}"},
            {"oslo.version": self.wrong(), "oslo.message": "{}"},
            {"oslo.version": "2.0", "oslo.message": self.wrong()},
            {"oslo.version": "2.0", "oslo.message": "[1]"},
            {"oslo.version": "2.0", "oslo.message": "{nope"},
        ])
        return json.dumps(body).encode(), "application/json", "svc", None

    def wrong_types(self) -> _Message:
        fields, msg_id = self.call_fields()
        field = self.rng.choice(["method", "args", "namespace", "version", "_unique_id", "_msg_id", "_reply_q"])
        message: Dict[str, Any] = {"method": "echo", "args": {"value": 1}, **fields}
        value = self.wrong()
        if field == "method" and type(value) is str and value:
            value = 7
        if field == "args" and (type(value) is dict or value is None):
            value = [1]
        if field in ("namespace", "version", "_unique_id") and (type(value) is str or value is None):
            value = 3
        if field in ("_msg_id", "_reply_q"):
            if type(value) is str:
                value = 3
            # The reply address is unreadable: no answer, the request is a
            # cast of echo (or malformed if nothing else is wrong: it is not).
            msg_id = None
        message[field] = value
        if field in ("_msg_id", "_reply_q"):
            message.setdefault("_unique_id", wire.new_id())
        return self.message(message, self.rng.random() < 0.8), "application/json", "svc", msg_id

    def megabyte(self) -> _Message:
        fields, msg_id = self.call_fields(live=self.rng.random() < 0.7)
        where = self.rng.choice(["method", "version", "namespace", "arg_name", "arg_value", "bad_args",
                                 "unique_id", "reply_q"])
        message: Dict[str, Any] = {"method": "echo", "args": {"value": 1}, **fields}
        if where == "method":
            message["method"] = self.huge
        elif where == "version":
            message["version"] = self.huge
        elif where == "namespace":
            message["namespace"] = self.huge
        elif where == "arg_name":
            message["args"] = {self.huge: 1}
        elif where == "arg_value":
            message["args"] = {"value": self.huge}
        elif where == "bad_args":
            message["args"] = [self.huge]
        elif where == "unique_id":
            message["_unique_id"] = self.huge[:-32] + wire.new_id()
        else:
            message["_msg_id"], message["_reply_q"] = wire.new_id(), self.huge
            msg_id = None  # no queue can have that name
        return self.message(message), "application/json", "svc", msg_id

    def nested(self) -> _Message:
        fields, msg_id = self.call_fields(live=True)
        depth = self.rng.choice([self.rng.randint(1, 300), self.rng.randint(300, 3000), 200_000])
        inner = ('{"method": "echo", "args": {"value": ' + self.deep(depth) + "}, "
                 + json.dumps(fields)[1:])
        if depth > 600:
            msg_id = None  # undecodable: the reply address cannot be read
        if self.rng.random() < 0.5:
            body = json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode()
        else:
            body = inner.encode()
        return body, "application/json", "svc", msg_id

    def private_or_unknown(self) -> _Message:
        fields, msg_id = self.call_fields()
        method = self.rng.choice(_PRIVATE + ["missing", "missing_ignore_errors", self.text(40) or "x"])
        message = {"method": method, "args": {}, **fields}
        if self.rng.random() < 0.2:
            message["version"] = self.rng.choice(["9.0", "1.x", "", "1.0.0.0", "0.1"])
        if self.rng.random() < 0.1:
            message["namespace"] = "nowhere"
        return self.message(message), "application/json", self.rng.choice(["svc", "svc.host1"]), msg_id

    def missing_reply_queue(self) -> _Message:
        message = {"method": self.rng.choice(["echo", "fail", "missing", "_private"]), "args": {"value": 1},
                   "_msg_id": wire.new_id(), "_reply_q": self.rng.choice(self.dead)}
        return self.message(message), "application/json", "svc", None

    def content_type(self) -> _Message:
        fields, msg_id = self.call_fields(live=True)
        content_type = self.rng.choice([None, "text/plain", "application/octet-stream", "", "application/jsonx"])
        return self.message({"method": "echo", "args": {"value": 1}, **fields}), content_type, "svc", msg_id

    def bad_arguments(self) -> _Message:
        fields, msg_id = self.call_fields()
        args = self.rng.choice([{"nope": 1}, {"value": 1, "extra": 2}, {f"a{i}": i for i in range(2000)},
                                {"ctxt": 1}, {"": 1}, {self.text(30): None}])
        return self.message({"method": self.rng.choice(["echo", "note"]), "args": args, **fields}), \
            "application/json", "svc", msg_id

    def odd_values(self) -> _Message:
        fields, msg_id = self.call_fields()
        message: Dict[str, Any] = {"method": "echo", "args": {"value": 1}, **fields}
        choice = self.rng.randint(0, 4)
        if choice == 0:
            body = self.message(message)[:-1] + b"," + b'"big": ' + b"9" * 5000 + b"}"
            return body, "application/json", "svc", None  # too many digits: undecodable
        if choice == 1:
            message["_timeout"] = self.rng.choice([self.huge[:10_000], [1, 2], -5, 1e308, "x", {"a": 1}])
        elif choice == 2:
            message.update({"_context_roles": self.wrong(), "_context_timestamp": self.wrong(),
                            "_context_request_id": self.wrong(), "_context_" + self.text(10): self.wrong()})
        elif choice == 3:
            message["method"] = "fail"
        else:
            message["args"] = None
        return self.message(message), "application/json", "svc", msg_id

    def good(self) -> _Message:
        fields, msg_id = self.call_fields()
        message = {"method": self.rng.choice(["echo", "note"]), "args": {"value": self.text()}, **fields}
        return self.message(message), "application/json; charset=utf-8", "svc", msg_id


class BadInputTests(_Broker):
    """
    Ten thousand generated bad bodies, published to a real server.
    """

    @defer.inlineCallbacks
    def test_ten_thousand_bad_bodies(self) -> Any:
        """
        When 10,000 bodies from a seeded generator (random bytes, not JSON,
        wrong types, megabyte strings, deep nesting, unknown and private
        methods, missing reply queues, wrong content types, bad arguments)
        are published, then the consumer stays alive, every call-shaped
        message with a live reply queue is answered, nothing is left on the
        broker, no unexpected error is logged, and the largest log event and
        error reply are under 8 KiB.
        """
        server = yield self.serve()
        client_transport = self.transport()
        live_queue = f"reply_live_{uuid.uuid4().hex}"
        replies: Dict[str, wire.Reply] = {}
        reply_sizes: List[int] = []

        def collect(delivery: Any) -> None:
            delivery.ack()
            reply = wire.decode_reply(delivery.body)
            if reply.failure is not None:
                reply_sizes.append(len(delivery.body))
            replies[reply.msg_id] = reply

        yield client_transport.consume(Queue(live_queue, auto_delete=True), collect).whenActive()
        generator = _Generator(20261123, live_queue, [f"reply_dead_{i}_{uuid.uuid4().hex}" for i in range(20)])
        expected: List[str] = []
        began = time.perf_counter()
        pending: List[defer.Deferred] = []
        for body, content_type, routing_key, msg_id in generator.generate(10_000):
            if msg_id is not None:
                expected.append(msg_id)
            pending.append(client_transport.publish(CONTROL, routing_key, body, content_type))
            if len(pending) >= 500:
                yield defer.gatherResults(pending)
                pending = []
        yield defer.gatherResults(pending)
        published_in = time.perf_counter() - began
        yield poll(lambda: all(m in replies for m in expected), "every call-shaped message answered", timeout=60)
        yield poll(lambda: server.inflight == 0 and all(self.admin.message_count(q.name) == 0
                                                        for q in server.queues[:2]),
                   "the queues drained", timeout=30)
        handled_in = time.perf_counter() - began

        client = RPCClient(client_transport, Target(topic="svc"), timeout=5, clock=reactor)
        self.assertEqual((yield client.call({}, "echo", value="alive")), "alive")

        # Nothing left: once the server's connection closes, anything
        # unsettled would be back on its queue.
        yield self.server.wait(5)
        yield self.server_transport.stop()
        for queue in self.server.queues[:2]:
            self.assertEqual(self.admin.message_count(queue.name), 0, queue.name)

        server_events = self.server_events()
        unexpected = [e for e in server_events if "Unexpected" in e.get("log_format", "")]
        self.assertEqual(unexpected, [])
        # The only tracebacks logged are those of casts whose method raised
        # (the endpoint's fail, or arguments that do not fit).
        failures = [e for e in server_events if "log_failure" in e]
        self.assertTrue(all(e["log_format"].startswith("Exception during message handling: cast")
                            for e in failures))
        self.flushLoggedErrors(TypeError, ValueError)
        largest_event = max(_event_size(e) for e in self.events)
        largest_reply = max(reply_sizes)
        levels: Dict[str, int] = {}
        for event in server_events:
            levels[event["log_level"].name] = levels.get(event["log_level"].name, 0) + 1
        _log.info("10,000 bad bodies: published in {published:.1f} s, handled in {handled:.1f} s; {answered} "
                  "call-shaped answered ({errors} with a failure); largest log event {event} bytes, largest "
                  "error reply {reply} bytes; server log events by level {levels}",
                  published=published_in, handled=handled_in, answered=len(expected), errors=len(reply_sizes),
                  event=largest_event, reply=largest_reply, levels=levels)
        self.assertGreater(len(expected), 2000)
        self.assertLess(largest_event, 8192)
        self.assertLess(largest_reply, 8192)


TxAMQPDeadClientTests = on_txamqp(DeadClientTests)
TxAMQPBadInputTests = on_txamqp(BadInputTests)
