"""
Tests for L{novasvc.rpc._serializing}: serializers in the RPC client, server
and dispatcher, over the in-memory transport with a L{task.Clock}.
"""

import json
from typing import Any, Dict, List, Optional

from twisted.internet import defer, task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.rpc import _serializing, wire
from novasvc.rpc.client import RPCClient
from novasvc.rpc.dispatcher import RPCDispatcher
from novasvc.rpc.errors import NoSuchMethod, RemoteError
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import NoOpSerializer, RequestContextSerializer
from novasvc.transport.memory import MemoryBroker
from novasvc.transport.topology import Binding, Exchange, Queue
from tests.test_rpc_server import RecordingTransport

CONTROL = Exchange("openstack", "topic")


class SerializerError(Exception):
    """
    What L{Tagging} raises when told to, or given a value it did not tag.
    """


class Tagging:
    """
    A strict serializer that records its calls: an entity travels as
    C{{"tag": <name>, "value": value}}, and deserializing anything else
    raises; a context travels with C{"via": <name>} added, and is
    deserialized into a L{Seen}.

    @ivar calls: C{(method, ctxt, value)} for each call.
    @ivar fail: the method names that raise L{SerializerError}.
    """

    def __init__(self, name: str = "t", fail: tuple = ()) -> None:
        self.name = name
        self.fail = fail
        self.calls: List[tuple] = []

    def _called(self, method: str, ctxt: Any, value: Any = None) -> None:
        self.calls.append((method, ctxt, value))
        if method in self.fail:
            raise SerializerError(f"{method} refused {value!r}")

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        self._called("serialize_entity", ctxt, entity)
        return {"tag": self.name, "value": entity}

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        self._called("deserialize_entity", ctxt, entity)
        if not (isinstance(entity, dict) and entity.get("tag") == self.name):
            raise SerializerError(f"not tagged {self.name!r}: {entity!r}")
        return entity["value"]

    def serialize_context(self, ctxt: Any) -> Any:
        self._called("serialize_context", ctxt)
        values = ctxt.to_dict() if isinstance(ctxt, RequestContext) else dict(ctxt or {})
        values["via"] = self.name
        return values

    def deserialize_context(self, ctxt: Any) -> Any:
        self._called("deserialize_context", ctxt)
        return Seen(ctxt)

    def methods(self) -> List[str]:
        return [call[0] for call in self.calls]


class Seen:
    """
    The context L{Tagging} deserializes: the entries it was given.
    """

    def __init__(self, entries: Dict[str, Any]) -> None:
        self.entries = entries


class Endpoint:
    """
    Methods that return what they got.
    """

    target = Target(version="1.1")

    def __init__(self) -> None:
        self.got: List[tuple] = []
        self.pending: List[defer.Deferred] = []

    def echo(self, ctxt, value):
        self.got.append((ctxt, value))
        return value

    def pair(self, ctxt, first, second):
        self.got.append((ctxt, (first, second)))
        return [first, second]

    def later(self, ctxt, value):
        self.got.append((ctxt, value))
        d: defer.Deferred = defer.Deferred()
        self.pending.append(d)
        return d

    def nothing(self, ctxt):
        self.got.append((ctxt, None))

    def fail(self, ctxt):
        raise ValueError("the method failed")

    def kind(self, ctxt):
        return type(ctxt).__name__


def _refuse(*args: Any) -> Any:
    raise AssertionError("a no-op serializer was called")


def _silent_noop(serializer: Any) -> Any:
    """
    @return: C{serializer} (a no-op one) with each of its four methods
        replaced by one that fails the test when called.
    """
    for name in ("serialize_entity", "deserialize_entity", "serialize_context", "deserialize_context"):
        setattr(serializer, name, _refuse)
    return serializer


class _Harness:
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.transport = RecordingTransport(broker=self.broker, clock=self.clock)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def client(self, serializer: Any = None, **kwargs: Any) -> RPCClient:
        return RPCClient(self.transport, Target(topic="svc"), clock=self.clock, serializer=serializer, **kwargs)

    def serve(self, serializer: Any = None, endpoint: Optional[Endpoint] = None, **kwargs: Any):
        endpoint = endpoint or Endpoint()
        transport = RecordingTransport(broker=self.broker, clock=self.clock)
        server = RPCServer(transport, Target(topic="svc", server="h1"), [endpoint], clock=self.clock,
                           serializer=serializer, **kwargs)
        self.successResultOf(server.start())  # type: ignore[attr-defined]
        return server, endpoint, transport

    def requests(self) -> List[Dict[str, Any]]:
        """
        @return: the decoded messages of the requests the client published.
        """
        return [json.loads(json.loads(p[2])["oslo.message"]) for p in self.transport.published
                if p[0].name != ""]

    def sink(self) -> None:
        """
        Bind a queue that takes the requests to "svc" and never answers.
        """
        self.transport.consume(Queue("sink", bindings=[Binding(CONTROL, "svc")]), lambda d: d.ack())

    def publish(self, body: bytes) -> None:
        self.successResultOf(self.transport.publish(CONTROL, "svc", body))  # type: ignore[attr-defined]

    def replies(self, name: str = "reply_test") -> List[wire.Reply]:
        replies: List[wire.Reply] = []

        def collect(delivery):
            delivery.ack()
            replies.append(wire.decode_reply(delivery.body))

        self.transport.consume(Queue(name), collect)
        return replies

    def settled(self, transport: RecordingTransport) -> bool:
        """
        @return: whether the server's queues hold nothing, acknowledged or
            not.
        """
        return (not any(c.unacked for c in transport.consumers)
                and not any(q.messages for n, q in self.broker.queues.items() if n.startswith("svc")))

    def logged(self, level: LogLevel, since: int = 0) -> List[str]:
        """
        @return: the text of the events logged at C{level} or above, from
            the C{since}-th event on.
        """
        return [formatEvent(e) for e in list(self.log)[since:]
                if e.get("log_level") is not None and e["log_level"] >= level]


class ClientTests(_Harness, SynchronousTestCase):
    """
    A client's serializer, as oslo.messaging's client uses it.
    """

    def test_call(self) -> None:
        """
        When a client with a serializer calls, then each argument goes
        through serialize_entity with the caller's context, the context
        through serialize_context, and the result through
        deserialize_entity with the caller's context.
        """
        self.serve(Tagging("c"))
        serializer = Tagging("c")
        ctxt = RequestContext("u1", "p1", request_id="req-1")
        result = self.successResultOf(self.client(serializer).call(ctxt, "pair", first=1, second=[2]))
        self.assertEqual(result, [1, [2]])
        sent = self.requests()[0]
        self.assertEqual(sent["args"], {"first": {"tag": "c", "value": 1}, "second": {"tag": "c", "value": [2]}})
        self.assertEqual((sent["_context_via"], sent["_context_user_id"], sent["_context_request_id"]),
                         ("c", "u1", "req-1"))
        self.assertEqual(sorted(serializer.methods()), ["deserialize_entity", "serialize_context",
                                                        "serialize_entity", "serialize_entity"])
        for method, given, _ in serializer.calls:
            self.assertIs(given, ctxt, method)
        self.assertEqual(serializer.calls[-1][2], {"tag": "c", "value": [1, [2]]})

    def test_call_result(self) -> None:
        """
        When a call is answered, then its Deferred fires with what
        deserialize_entity made of the result.
        """
        self.serve()
        result = self.successResultOf(self.client(Tagging("c")).call({}, "echo", value="v"))
        self.assertEqual(result, "v")

    def test_cast(self) -> None:
        """
        When a client with a serializer casts (also fanout), then the
        arguments and the context are serialized, and deserialize_entity is
        never called.
        """
        self.serve()
        serializer = Tagging("c")
        client = self.client(serializer)
        self.successResultOf(client.cast({"user_id": "u2"}, "echo", value=3))
        self.successResultOf(client.prepare(fanout=True).cast(None, "echo", value=4))
        first, second = self.requests()
        self.assertEqual((first["args"], first["_context_via"], first["_context_user_id"]),
                         ({"value": {"tag": "c", "value": 3}}, "c", "u2"))
        self.assertEqual((second["args"], second["_context_via"]), ({"value": {"tag": "c", "value": 4}}, "c"))
        self.assertNotIn("deserialize_entity", serializer.methods())

    def test_context_object(self) -> None:
        """
        When serialize_context returns an object with to_dict (a
        RequestContext), then its entries are sent.
        """
        self.sink()
        serializer = RequestContextSerializer()
        self.successResultOf(self.client(serializer).cast({"user_id": "u3", "extra_key": 1}, "echo", value=1))
        sent = self.requests()[0]
        self.assertEqual((sent["_context_user_id"], sent["_context_extra_key"]), ("u3", 1))

        class Returning(RequestContextSerializer):
            def serialize_context(self, ctxt: Any) -> Any:
                return RequestContext("u4", request_id="req-4")

        self.successResultOf(self.client(Returning()).cast({}, "echo", value=1))
        sent = self.requests()[1]
        self.assertEqual((sent["_context_user_id"], sent["_context_request_id"]), ("u4", "req-4"))

    def test_failure_untouched(self) -> None:
        """
        When the remote method raises, then the caller gets its error as
        without a serializer, and deserialize_entity is not called.
        """
        self.serve()
        serializer = Tagging("c")
        self.failureResultOf(self.client(serializer).call({}, "fail"), ValueError)
        self.failureResultOf(self.client(serializer).call({}, "no_such_method"), RemoteError)
        self.assertNotIn("deserialize_entity", serializer.methods())

    def test_raising_before_sending(self) -> None:
        """
        When serialize_entity or serialize_context raises, then the call's or
        cast's Deferred fails with its error and nothing is published.
        """
        self.sink()
        for fail in ("serialize_entity", "serialize_context"):
            client = self.client(Tagging("c", fail=(fail,)))
            for send in (client.call, client.cast, client.prepare(fanout=True).cast):
                failure = self.failureResultOf(send({}, "echo", value=1), SerializerError)
                self.assertIn(fail, str(failure.value))
        self.assertEqual(self.requests(), [])
        self.assertEqual([name for name in self.broker.queues if name.startswith("reply_")], [])

    def test_raising_on_the_result(self) -> None:
        """
        When deserialize_entity raises on a call's result, then the call's
        Deferred fails with its error.
        """
        self.serve()
        failure = self.failureResultOf(self.client(Tagging("c", fail=("deserialize_entity",))).call(
            {}, "echo", value=1), SerializerError)
        self.assertIn("deserialize_entity refused", str(failure.value))

    def test_prepare(self) -> None:
        """
        When a client is prepared, then it keeps the serializer unless
        prepare is given another (or None: then it has none).
        """
        self.sink()
        first, second = Tagging("a"), Tagging("b")
        client = self.client(first)
        self.assertIs(client.prepare(server="h1").serializer, first)
        other = client.prepare(serializer=second)
        self.assertIs(other.serializer, second)
        self.assertIs(client.serializer, first)
        plain = client.prepare(serializer=None)
        self.assertIsNone(plain.serializer)
        self.successResultOf(client.prepare(version="1.1").cast({}, "echo", value=1))
        self.successResultOf(other.cast({}, "echo", value=2))
        self.successResultOf(plain.cast({}, "echo", value=3))
        self.assertEqual([r["args"]["value"] for r in self.requests()],
                         [{"tag": "a", "value": 1}, {"tag": "b", "value": 2}, 3])
        self.assertRaises(TypeError, client.prepare, serializer=object())

    def test_noop_skipped(self) -> None:
        """
        When a client has a NoOpSerializer (novasvc's or oslo.messaging's),
        then it is never called and requests are as without one.
        """
        import oslo_messaging

        self.serve()
        for noop in (NoOpSerializer(), oslo_messaging.NoOpSerializer()):
            client = self.client(_silent_noop(noop))
            self.assertEqual(self.successResultOf(client.call({"user_id": "u"}, "echo", value=[1])), [1])
            self.successResultOf(client.cast(RequestContext("u"), "nothing"))
        self.assertEqual(self.requests()[0]["args"], {"value": [1]})

    def test_not_a_serializer(self) -> None:
        """
        When a client is given a class or an object without the four
        methods, then TypeError names what is missing.
        """
        self.assertRaises(TypeError, self.client, Tagging)
        error = self.assertRaises(TypeError, self.client, object())
        self.assertIn("serialize_entity", str(error))


class ServerTests(_Harness, SynchronousTestCase):
    """
    A server's serializer, as oslo.messaging's dispatcher uses it.
    """

    def test_context_entries(self) -> None:
        """
        When a request arrives, then deserialize_context gets the context
        entries as a dict (prefixes stripped, client_timeout from _timeout),
        as oslo.messaging passes them, and the method gets what it returned.
        """
        serializer = Tagging("s")
        _, endpoint, _ = self.serve(serializer)
        replies = self.replies()
        self.publish(wire.encode_request("nothing", {}, {"user_id": "u1", "custom": [1]}, msg_id="m1",
                                         reply_q="reply_test", timeout=30))
        self.publish(wire.encode_request("nothing", {}, {"user_id": "u2"}))
        (method, entries, _), (_, cast_entries, _) = [c for c in serializer.calls if c[0] == "deserialize_context"]
        self.assertEqual(entries, {"user_id": "u1", "custom": [1], "client_timeout": 30})
        self.assertEqual(cast_entries, {"user_id": "u2", "client_timeout": None})
        self.assertIsInstance(entries, dict)
        seen = [ctxt for ctxt, _ in endpoint.got]
        self.assertEqual([type(c) for c in seen], [Seen, Seen])
        self.assertEqual(seen[0].entries, entries)
        self.assertEqual(replies[0].result, {"tag": "s", "value": None})

    def test_arguments_and_result(self) -> None:
        """
        When a call arrives, then each argument goes through
        deserialize_entity and the result through serialize_entity, both
        with the context the method got; the reply carries the serialized
        result.
        """
        serializer = Tagging("s")
        self.serve(serializer)
        client = self.client(Tagging("s"))
        result = self.successResultOf(client.call({}, "pair", first="a", second={"b": 1}))
        self.assertEqual(result, ["a", {"b": 1}])
        calls = [c for c in serializer.calls if c[0] != "deserialize_context"]
        self.assertEqual(sorted((c[0], json.dumps(c[2])) for c in calls), [
            ("deserialize_entity", json.dumps({"tag": "s", "value": "a"})),
            ("deserialize_entity", json.dumps({"tag": "s", "value": {"b": 1}})),
            ("serialize_entity", json.dumps(["a", {"b": 1}])),
        ])
        contexts = {id(c[1]) for c in calls}
        self.assertEqual(len(contexts), 1)
        self.assertIsInstance(calls[0][1], Seen)

    def test_deferred_result(self) -> None:
        """
        When the method returns a Deferred, then its result is serialized
        once it fires.
        """
        serializer = Tagging("s")
        _, endpoint, _ = self.serve(serializer)
        d = self.client(Tagging("s")).call({}, "later", value=5)
        self.assertNoResult(d)
        self.assertNotIn("serialize_entity", serializer.methods())
        endpoint.pending[0].callback({"done": 5})
        self.assertEqual(self.successResultOf(d), {"done": 5})
        self.assertEqual(serializer.calls[-1][0], "serialize_entity")

    def test_coroutine_result(self) -> None:
        """
        When the method is a coroutine, then its result is serialized.
        """
        class Async(Endpoint):
            async def echo(self, ctxt, value):
                return value

        self.serve(Tagging("s"), Async())
        self.assertEqual(self.successResultOf(self.client(Tagging("s")).call({}, "echo", value=7)), 7)

    def test_failure_untouched(self) -> None:
        """
        When the method raises, then the caller gets the method's error as
        without a serializer, and serialize_entity is not called.
        """
        serializer = Tagging("s")
        self.serve(serializer)
        self.failureResultOf(self.client(Tagging("s")).call({}, "fail"), ValueError)
        self.assertNotIn("serialize_entity", serializer.methods())

    def test_refused_never_serialized(self) -> None:
        """
        When the dispatcher refuses a request (unknown method, unsupported
        version), then the serializer is never called.
        """
        serializer = Tagging("s")
        self.serve(serializer)
        client = self.client(None, allowed_remote_exmods=["novasvc.rpc.errors"])
        self.failureResultOf(client.call({}, "no_such"), NoSuchMethod)
        self.failureResultOf(client.prepare(version="2.0").call({}, "echo", value=1))
        self.assertEqual(serializer.calls, [])

    def test_raising_on_a_call(self) -> None:
        """
        When the serializer raises deserializing the context or an argument
        or serializing the result, then the call gets an error reply
        carrying its exception's class and message, one WARNING line says
        so, the request is acknowledged and the server keeps serving.
        """
        for fail in ("deserialize_context", "deserialize_entity", "serialize_entity"):
            server, _, transport = self.serve(Tagging("s", fail=(fail,)))
            client = self.client(Tagging("s"))
            since = len(self.log)
            failure = self.failureResultOf(client.call({}, "echo", value=1), RemoteError)
            self.assertEqual(failure.value.exc_type, "SerializerError")
            self.assertIn(f"{fail} refused", failure.value.value)
            self.assertTrue(self.settled(transport))
            warnings = self.logged(LogLevel.warn, since)
            self.assertEqual(len(warnings), 1, warnings)
            self.assertIn("failed (the serializer raised it", warnings[0])
            self.successResultOf(server.wait())
            server, _, _ = self.serve(Tagging("s"))
            self.assertEqual(self.successResultOf(client.call({}, "echo", value=2)), 2)
            self.successResultOf(server.wait())

    def test_raising_names_the_stage(self) -> None:
        """
        When the serializer raises, then the log line says what it was
        doing (deserializing the context, which argument, or serializing
        the result).
        """
        expected = {"deserialize_context": "deserializing the context",
                    "deserialize_entity": "deserializing the argument 'value'",
                    "serialize_entity": "serializing the result"}
        for fail, doing in expected.items():
            server, _, _ = self.serve(Tagging("s", fail=(fail,)))
            self.failureResultOf(self.client(Tagging("s")).call({}, "echo", value=1))
            self.assertIn(doing, self.logged(LogLevel.warn)[-1])
            self.successResultOf(server.wait())

    def test_raising_on_a_deferred_result(self) -> None:
        """
        When serialize_entity raises on the result of a Deferred, then the
        call gets the error reply.
        """
        _, endpoint, transport = self.serve(Tagging("s", fail=("serialize_entity",)))
        d = self.client(Tagging("s")).call({}, "later", value=1)
        endpoint.pending[0].callback("late")
        failure = self.failureResultOf(d, RemoteError)
        self.assertEqual(failure.value.exc_type, "SerializerError")
        self.assertTrue(self.settled(transport))

    def test_raising_on_a_cast(self) -> None:
        """
        When the serializer raises on a cast, then one ERROR line (no
        traceback) names the method, the stage and the error, cut to a few
        hundred characters; the request is acknowledged and the next one
        served.
        """
        for fail in ("deserialize_context", "deserialize_entity"):
            server, endpoint, transport = self.serve(Tagging("s", fail=(fail,)))
            since = len(self.log)
            self.successResultOf(self.client(Tagging("s")).cast({}, "echo", value="x" * 10000))
            lines = self.logged(LogLevel.warn, since)
            self.assertEqual(len(lines), 1, lines)
            self.assertEqual(self.logged(LogLevel.error, since), lines)
            self.assertIn("'echo'", lines[0])
            self.assertIn("SerializerError", lines[0])
            self.assertIn("the serializer raised it deserializing", lines[0])
            self.assertNotIn("Traceback", lines[0])
            self.assertLess(len(lines[0]), 1000)
            self.assertTrue(self.settled(transport))
            self.assertEqual(endpoint.got, [])
            self.successResultOf(server.wait())
        server, endpoint, _ = self.serve(Tagging("s"))
        self.successResultOf(self.client(Tagging("s")).cast({}, "echo", value=2))
        self.assertEqual(endpoint.got[0][1], 2)

    def test_error_reply_bounded(self) -> None:
        """
        When the serializer's exception quotes a long client value, then the
        error reply's message, traceback lines and arguments are cut.
        """
        class Quoting(Tagging):
            def deserialize_entity(self, ctxt, entity):
                raise SerializerError(f"cannot read {entity!r}", {"nested": entity}, 7)

        self.serve(Quoting("s"))
        replies = self.replies()
        self.publish(wire.encode_request("echo", {"value": "v" * 100000}, {}, msg_id="m", reply_q="reply_test"))
        failure = json.loads(replies[0].failure)
        self.assertEqual(failure["class"], "SerializerError")
        self.assertLess(len(failure["message"]), 300)
        self.assertLess(max(len(line) for line in failure["tb"]), 300)
        self.assertLess(len(json.dumps(failure)), 20000)
        self.assertEqual(failure["args"][2], 7)
        self.assertIsInstance(failure["args"][1], str)

    def test_noop_skipped(self) -> None:
        """
        When a server has a NoOpSerializer (novasvc's or oslo.messaging's),
        then it is never called, and the method gets a RequestContext.
        """
        import oslo_messaging

        for noop in (NoOpSerializer(), oslo_messaging.NoOpSerializer()):
            server, endpoint, _ = self.serve(_silent_noop(noop))
            self.assertFalse(server.dispatcher.serializing)
            self.assertEqual(self.successResultOf(self.client().call({"user_id": "u"}, "echo", value=1)), 1)
            self.assertIsInstance(endpoint.got[0][0], RequestContext)
            self.assertEqual(endpoint.got[0][0].user_id, "u")
            self.successResultOf(server.wait())

    def test_request_context_serializer(self) -> None:
        """
        When the server has a RequestContextSerializer, then the method
        gets a RequestContext read from the entries, client_timeout
        included.
        """
        _, endpoint, _ = self.serve(RequestContextSerializer())
        client = self.client(RequestContextSerializer(), call_monitor_timeout=30)
        self.assertEqual(self.successResultOf(client.call(RequestContext("u9", request_id="r"), "echo", value=1)), 1)
        ctxt = endpoint.got[0][0]
        self.assertIsInstance(ctxt, RequestContext)
        self.assertEqual((ctxt.user_id, ctxt.request_id, ctxt.client_timeout), ("u9", "r", 30))

    def test_serializer_with_dispatcher(self) -> None:
        """
        When a server is given a dispatcher, then it uses the dispatcher's
        serializer; another one beside it is refused.
        """
        serializer = Tagging("s")
        dispatcher = RPCDispatcher([Endpoint()], serializer)
        target = Target(topic="svc", server="h1")
        server = RPCServer(self.transport, target, dispatcher, clock=self.clock)
        self.assertIs(server.serializer, serializer)
        self.assertIs(RPCServer(self.transport, target, dispatcher, serializer=serializer).serializer, serializer)
        self.assertRaises(ValueError, RPCServer, self.transport, target, dispatcher, serializer=Tagging())
        self.assertIsNone(RPCServer(self.transport, target, [Endpoint()]).serializer)
        self.assertRaises(TypeError, RPCServer, self.transport, target, [Endpoint()], serializer=Tagging)


class DispatcherTests(SynchronousTestCase):
    """
    L{RPCDispatcher} with a serializer, without a server.
    """

    def test_dispatch(self) -> None:
        """
        When dispatch is given the context entries, then the method gets
        the deserialized context and arguments, and the Deferred fires with
        the serialized result.
        """
        serializer = Tagging("s")
        endpoint = Endpoint()
        d = RPCDispatcher([endpoint], serializer).dispatch({"user_id": "u"}, "echo",
                                                           {"value": {"tag": "s", "value": 3}})
        self.assertEqual(self.successResultOf(d), {"tag": "s", "value": 3})
        self.assertEqual(endpoint.got[0][0].entries, {"user_id": "u"})

    def test_dispatch_raising(self) -> None:
        """
        When the serializer raises, then dispatch's Deferred fails with its
        own exception, marked with what it was doing.
        """
        d = RPCDispatcher([Endpoint()], Tagging("s")).dispatch({}, "echo", {"value": "untagged"})
        failure = self.failureResultOf(d, SerializerError)
        self.assertEqual(_serializing.stage(failure), "deserializing the argument 'value'")

    def test_arguments_checked_after(self) -> None:
        """
        When the deserialized arguments do not fit the method, then the
        TypeError names the method, as without a serializer.
        """
        d = RPCDispatcher([Endpoint()], Tagging("s")).dispatch({}, "echo", {"wrong": {"tag": "s", "value": 1}})
        self.assertIn("'echo'", str(self.failureResultOf(d, TypeError).value))


class HelperTests(SynchronousTestCase):
    """
    The module's helpers.
    """

    def test_active(self) -> None:
        """
        When active is given None or a no-op serializer, then it returns
        None; a serializer, then itself; a class or an incomplete object,
        then TypeError.
        """
        import oslo_messaging

        self.assertIsNone(_serializing.active(None))
        self.assertIsNone(_serializing.active(NoOpSerializer()))
        self.assertIsNone(_serializing.active(oslo_messaging.NoOpSerializer()))
        serializer = Tagging()
        self.assertIs(_serializing.active(serializer), serializer)
        self.assertRaises(TypeError, _serializing.active, Tagging)
        self.assertRaises(TypeError, _serializing.active, object())

    def test_stage(self) -> None:
        """
        When a failure was not raised by a serializer on the server, then
        stage is None; when it was, its stage.
        """
        self.assertIsNone(_serializing.stage(Failure(ValueError("x"))))
        try:
            _serializing.serialize_result(1, Tagging(fail=("serialize_entity",)), None)
        except SerializerError:
            failure = Failure()
        self.assertEqual(_serializing.stage(failure), "serializing the result")

    def test_argument_name_quoted(self) -> None:
        """
        When an argument with a long name fails to deserialize, then the
        stage quotes the name cut.
        """
        try:
            _serializing.deserialize_request(Tagging(), {}, {"n" * 5000: 1})
        except SerializerError:
            failure = Failure()
        self.assertLess(len(_serializing.stage(failure) or ""), 300)
