"""
Tests for L{novasvc.api.gateway}: the in-memory broker with a real
L{RPCServer} and a L{task.Clock}, then the same over the local RabbitMQ.
"""

import json
from typing import Any, Dict, List, Tuple

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.api.gateway import FIELDS, MAX_TIMEOUT, TOPIC_MAX_LENGTH, RPCGateway
from novasvc.config import Config
from novasvc.context import RequestContext
from novasvc.exceptions import DisconnectedError
from novasvc._text import QUOTE_LIMIT
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.memory import MemoryBroker, MemoryTransport


class AppError(Exception):
    """
    An application exception the gateway cannot rebuild.
    """


class GatewayManager:
    """
    The endpoint behind the gateway: it echoes, records casts, tells what
    context it saw, raises, and waits on demand.
    """

    target = Target(version="1.2")

    def __init__(self, host: str) -> None:
        self.host = host
        self.casts: List[Any] = []
        self.pending: List[defer.Deferred] = []

    def echo(self, ctxt, value):
        return {"value": value, "host": self.host}

    def note(self, ctxt, value=None):
        self.casts.append(value)

    def whoami(self, ctxt):
        return {"request_id": ctxt.request_id, "user_id": ctxt.user_id, "is_admin": ctxt.is_admin}

    def fail(self, ctxt, message):
        raise ValueError(message)

    def fail_app(self, ctxt):
        raise AppError("the application broke")

    def slow(self, ctxt):
        d: defer.Deferred = defer.Deferred()
        self.pending.append(d)
        return d


def admin(**kwargs: Any) -> RequestContext:
    """
    @return: an admin context (the HTTP layer makes it from the request).
    """
    return RequestContext("admin-user", "admin-project", is_admin=True, **kwargs)


class _Harness:
    """
    A broker, a clock, servers on topic C{svc} and a gateway.
    """

    config = Config(rpc_response_timeout=30, kombu_missing_consumer_retry_timeout=10)

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.managers: Dict[str, GatewayManager] = {}
        self.gateway_transport = self.make_transport()
        self.gateway = RPCGateway(self.gateway_transport, self.config, clock=self.clock)

    def make_transport(self) -> MemoryTransport:
        return MemoryTransport(broker=self.broker, clock=self.clock)

    def serve(self, host: str = "host1") -> GatewayManager:
        manager = self.managers[host] = GatewayManager(host)
        server = RPCServer(self.make_transport(), Target(topic="svc", server=host), [manager], clock=self.clock)
        self.successResultOf(server.start())  # type: ignore[attr-defined]
        return manager

    def answer(self, body: Any, topic: str = "svc", context: Any = None) -> Tuple[int, Dict[str, Any]]:
        """
        @return: the gateway's answer, which must be there already and be
            JSON-able.
        """
        d = self.gateway.handle(topic, body, admin() if context is None else context)
        status, payload = self.successResultOf(d)  # type: ignore[attr-defined]
        json.dumps(payload)
        return status, payload

    def error(self, body: Any, topic: str = "svc", context: Any = None) -> Tuple[int, Dict[str, Any]]:
        """
        @return: the status and the C{error} object of an error answer.
        """
        status, payload = self.answer(body, topic, context)
        self.assertEqual(list(payload), ["error"], payload)  # type: ignore[attr-defined]
        self.assertEqual(payload["error"]["code"], status)  # type: ignore[attr-defined]
        return status, payload["error"]


class CallTests(_Harness, SynchronousTestCase):
    """
    Calls and casts that succeed.
    """

    def test_call(self) -> None:
        """
        When a call's method returns, then 200 and the result.
        """
        self.serve()
        self.assertEqual(self.answer({"method": "echo", "args": {"value": [1, {"a": "b"}]}}),
                         (200, {"result": {"value": [1, {"a": "b"}], "host": "host1"}}))

    def test_readme_example(self) -> None:
        """
        When the README's request reaches the echo service, then its answer
        is the README's.
        """
        from novasvc.examples.echo import EchoManager

        manager = EchoManager(host="host1", service_name="echo")
        server = RPCServer(self.make_transport(), Target(topic="echo", server="host1"), [manager], clock=self.clock)
        self.successResultOf(server.start())
        status, payload = self.answer(json.loads('{"method": "echo", "args": {"value": 1}}'), topic="echo")
        self.assertEqual((status, json.dumps(payload)), (200, '{"result": 1}'))

    def test_server(self) -> None:
        """
        When the body names a server, then that server runs the call.
        """
        self.serve("host1")
        self.serve("host2")
        for _ in range(3):
            status, payload = self.answer({"method": "echo", "args": {"value": 1}, "server": "host2"})
            self.assertEqual((status, payload["result"]["host"]), (200, "host2"))

    def test_cast(self) -> None:
        """
        When the body asks for a cast, then 202 once the broker took it, and
        the method ran.
        """
        manager = self.serve()
        status, payload = self.answer({"method": "note", "args": {"value": "hello"}, "cast": True},
                                      context=admin(request_id="req-cast"))
        self.assertEqual((status, payload), (202, {"accepted": True, "request_id": "req-cast"}))
        self.assertEqual(manager.casts, ["hello"])

    def test_fanout(self) -> None:
        """
        When a cast is fanout, then every server of the topic runs it.
        """
        one, two = self.serve("host1"), self.serve("host2")
        status, _ = self.answer({"method": "note", "args": {"value": 3}, "cast": True, "fanout": True})
        self.assertEqual((status, one.casts, two.casts), (202, [3], [3]))

    def test_context(self) -> None:
        """
        When the HTTP layer gives a context, then the method sees its request
        id and user.
        """
        self.serve()
        status, payload = self.answer({"method": "whoami"}, context=admin(request_id="req-from-http"))
        self.assertEqual((status, payload["result"]),
                         (200, {"request_id": "req-from-http", "user_id": "admin-user", "is_admin": True}))

    def test_version_and_namespace(self) -> None:
        """
        When the body asks for a version the endpoint serves and the default
        namespace (null), then the call goes through.
        """
        self.serve()
        status, _ = self.answer({"method": "echo", "args": {"value": 1}, "version": "1.1", "namespace": None})
        self.assertEqual(status, 200)

    def test_one_client(self) -> None:
        """
        When the gateway has sent nothing, then it made no reply queue; after
        several calls, there is one.
        """
        self.serve()
        self.assertEqual([q for q in self.broker.queues if q.startswith("reply_")], [])
        for value in range(3):
            self.assertEqual(self.answer({"method": "echo", "args": {"value": value}})[0], 200)
        self.assertEqual(len([q for q in self.broker.queues if q.startswith("reply_")]), 1)


class RemoteErrorTests(_Harness, SynchronousTestCase):
    """
    What the server answers with an error.
    """

    def test_builtin(self) -> None:
        """
        When the method raises a builtin exception, then 502 with its class
        and message, without the remote traceback.
        """
        self.serve()
        status, error = self.error({"method": "fail", "args": {"message": "bad value"}})
        self.assertEqual((status, error), (502, {"code": 502, "type": "RemoteError", "message": "bad value",
                                                 "exc_type": "ValueError"}))

    def test_application(self) -> None:
        """
        When the method raises an application exception, then 502 with its
        class name.
        """
        self.serve()
        status, error = self.error({"method": "fail_app"})
        self.assertEqual((status, error["exc_type"], error["message"]), (502, "AppError", "the application broke"))

    def test_long_message(self) -> None:
        """
        When the remote message is huge, then the answer carries it cut.
        """
        self.serve()
        status, error = self.error({"method": "fail", "args": {"message": "x" * 100000}})
        self.assertEqual(status, 502)
        self.assertLess(len(error["message"]), QUOTE_LIMIT + 40)
        self.assertIn("100000 characters", error["message"])

    def test_no_such_method(self) -> None:
        """
        When the servers have no such method, then 404 NoSuchMethod.
        """
        self.serve()
        status, error = self.error({"method": "frobnicate"})
        self.assertEqual((status, error["type"]), (404, "NoSuchMethod"))
        self.assertIn("frobnicate", error["message"])

    def test_unsupported_version(self) -> None:
        """
        When no endpoint serves the version asked for (a valid request
        naming what the servers do not have), then 404 UnsupportedVersion.
        """
        self.serve()
        status, error = self.error({"method": "echo", "args": {"value": 1}, "version": "2.0"})
        self.assertEqual((status, error["type"]), (404, "UnsupportedVersion"))
        self.assertIn("2.0", error["message"])

    def test_server_name_too_long(self) -> None:
        """
        When C{<topic>.<server>} is over AMQP's 255 bytes, so that no queue
        can have that name, then 503 UnroutableError at once, as for a
        server that is not consuming, and nothing is sent.
        """
        self.serve()
        # The answer is there at once (self.error): a request sent with no
        # consumer would wait kombu_missing_consumer_retry_timeout (10 s).
        status, error = self.error({"method": "echo", "args": {"value": 1}, "server": "h" * 252})
        self.assertEqual((status, error["type"]), (503, "UnroutableError"))
        self.assertIn("no queue can have that name", error["message"])
        self.assertIn("not sent", error["message"])
        self.assertLess(len(error["message"]), 2 * QUOTE_LIMIT + 200)

    def test_wrong_arguments(self) -> None:
        """
        When the arguments do not fit the method, then 502 with the remote
        TypeError.
        """
        self.serve()
        status, error = self.error({"method": "echo", "args": {"nope": 1}})
        self.assertEqual((status, error["exc_type"]), (502, "TypeError"))


class TimeoutTests(_Harness, SynchronousTestCase):
    """
    Calls without a reply in time.
    """

    def test_timeout(self) -> None:
        """
        When no reply comes within the body's timeout, then 504 then, not
        before.
        """
        self.serve()
        d = self.gateway.handle("svc", {"method": "slow", "timeout": 2.5}, admin())
        self.clock.advance(2.4)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        status, payload = self.successResultOf(d)
        self.assertEqual((status, payload["error"]["type"]), (504, "MessagingTimeout"))
        self.assertIn("2.5 s", payload["error"]["message"])

    def test_default_timeout(self) -> None:
        """
        When the body gives no timeout, then the configuration's
        rpc_response_timeout applies.
        """
        self.serve()
        d = self.gateway.handle("svc", {"method": "slow"}, admin())
        self.clock.advance(29.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d)[0], 504)

    def test_late_reply(self) -> None:
        """
        When the reply comes within the timeout, then 200 with it.
        """
        manager = self.serve()
        d = self.gateway.handle("svc", {"method": "slow"}, admin())
        self.clock.advance(5)
        manager.pending[0].callback("done")
        self.assertEqual(self.successResultOf(d), (200, {"result": "done"}))

    def test_max_timeout(self) -> None:
        """
        When the longest timeout allowed is shorter than
        rpc_response_timeout, then it is raised to it; a longer one is 400.
        """
        self.serve()
        gateway = RPCGateway(self.gateway_transport, self.config, clock=self.clock, max_timeout=5)
        answers = [self.successResultOf(gateway.handle("svc", {"method": "note", "cast": True, "timeout": timeout},
                                                       admin()))[0] for timeout in (30, 30.5)]
        self.assertEqual(answers, [202, 400])
        self.assertRaises(ValueError, RPCGateway, self.gateway_transport, self.config, max_timeout=0)


class _FailingTransport(MemoryTransport):
    """
    The memory transport, but publishing requests (not replies) fails with
    C{error} or, when C{error} is C{None}, is never confirmed.
    """

    error: Any = None

    def publish(self, exchange, routing_key, body, *args: Any, **kwargs: Any):
        if exchange.name == "":
            return super().publish(exchange, routing_key, body, *args, **kwargs)
        if self.error is None:
            return defer.Deferred()
        if isinstance(self.error, type) and issubclass(self.error, ZeroDivisionError):
            raise self.error("a bug")
        return defer.fail(self.error)


class BrokerTests(_Harness, SynchronousTestCase):
    """
    Requests the broker does not deliver.
    """

    def test_unroutable_call(self) -> None:
        """
        When no server consumes the topic, then a call gets 503
        UnroutableError after kombu_missing_consumer_retry_timeout.
        """
        d = self.gateway.handle("nobody", {"method": "echo"}, admin())
        self.clock.pump([0.25] * 39)
        self.assertNoResult(d)
        self.clock.pump([0.25] * 2)
        status, payload = self.successResultOf(d)
        self.assertEqual((status, payload["error"]["type"]), (503, "UnroutableError"))
        self.assertIn("'nobody'", payload["error"]["message"])

    def test_unroutable_call_timeout(self) -> None:
        """
        When no server consumes the topic and the timeout is shorter, then
        503 UnroutableError at the timeout.
        """
        d = self.gateway.handle("nobody", {"method": "echo", "timeout": 1}, admin())
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d)[1]["error"]["type"], "UnroutableError")

    def test_unroutable_server(self) -> None:
        """
        When the server named does not consume the topic, then 503 (another
        server does not run it).
        """
        manager = self.serve()
        d = self.gateway.handle("svc", {"method": "note", "args": {"value": 1}, "cast": True, "server": "gone",
                                        "timeout": 2}, admin())
        self.clock.pump([0.25] * 8)
        status, payload = self.successResultOf(d)
        self.assertEqual((status, payload["error"]["type"], manager.casts), (503, "UnroutableError", []))
        self.assertIn("'gone'", payload["error"]["message"])

    def test_unroutable_cast(self) -> None:
        """
        When no server consumes the topic, then a cast gets 503
        UnroutableError within its timeout.
        """
        d = self.gateway.handle("nobody", {"method": "note", "cast": True, "timeout": 3}, admin())
        self.clock.pump([0.25] * 12)
        self.assertEqual(self.successResultOf(d)[1]["error"]["type"], "UnroutableError")

    def test_not_confirmed(self) -> None:
        """
        When the broker does not confirm a cast within its timeout, then 503.
        """
        transport = _FailingTransport(broker=self.broker, clock=self.clock)
        gateway = RPCGateway(transport, self.config, clock=self.clock)
        d = gateway.handle("svc", {"method": "note", "cast": True, "timeout": 4}, admin())
        self.clock.advance(3.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        status, payload = self.successResultOf(d)
        self.assertEqual((status, payload["error"]["type"]), (503, "TransportError"))

    def test_disconnected(self) -> None:
        """
        When the request is lost with the broker connection, then 503 at
        once: it is not sent again.
        """
        self.serve()
        transport = _FailingTransport(broker=self.broker, clock=self.clock)
        transport.error = DisconnectedError("connection lost")
        gateway = RPCGateway(transport, self.config, clock=self.clock)
        for body in ({"method": "echo", "args": {"value": 1}}, {"method": "note", "cast": True}):
            status, payload = self.successResultOf(gateway.handle("svc", body, admin()))
            self.assertEqual((status, payload["error"]["type"]), (503, "DisconnectedError"))

    def test_stopped_transport(self) -> None:
        """
        When the transport is stopped, then 503 BrokerUnavailable at once.
        """
        self.serve()
        self.successResultOf(self.gateway_transport.stop())
        status, error = self.error({"method": "note", "cast": True})
        self.assertEqual((status, error["type"]), (503, "BrokerUnavailable"))

    def test_not_connected_fails_fast(self) -> None:
        """
        When the transport is not connected, then a call and a cast get 503
        BrokerUnavailable at once, saying the request was not sent (never
        that it may still run), and nothing reaches the servers.
        """
        manager = self.serve()

        class Disconnected(MemoryTransport):
            is_connected = False

        gateway = RPCGateway(Disconnected(broker=self.broker, clock=self.clock), self.config,
                             clock=self.clock)
        for body in ({"method": "echo", "args": {"value": 1}}, {"method": "note", "cast": True}):
            status, payload = self.successResultOf(gateway.handle("svc", body, admin()))
            self.assertEqual((status, payload["error"]["type"]), (503, "BrokerUnavailable"))
            self.assertEqual(payload["error"]["message"], "broker unavailable: not connected "
                             "to the message broker; the request was not sent")
        self.assertEqual(manager.casts, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unexpected(self) -> None:
        """
        When something unexpected fails, then 500 with a generic message
        naming the request id, and the traceback is logged once.
        """
        transport = _FailingTransport(broker=self.broker, clock=self.clock)
        transport.error = ZeroDivisionError
        gateway = RPCGateway(transport, self.config, clock=self.clock)
        status, payload = self.successResultOf(gateway.handle("svc", {"method": "note", "cast": True},
                                                              admin(request_id="req-500")))
        self.assertEqual((status, payload["error"]["type"]), (500, "InternalError"))
        self.assertIn("req-500", payload["error"]["message"])
        self.assertNotIn("a bug", payload["error"]["message"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class ValidationTests(_Harness, SynchronousTestCase):
    """
    Bad requests: 400 naming the field, nothing sent.
    """

    def setUp(self) -> None:
        _Harness.setUp(self)
        self.manager = self.serve()

    def assertBad(self, body: Any, field: str, topic: str = "svc") -> str:
        status, error = self.error(body, topic)
        self.assertEqual((status, error["type"], error["field"]), (400, "BadRequest", field), error)
        self.assertLess(len(error["message"]), 2 * QUOTE_LIMIT + 200, error["message"])
        self.assertEqual(self.manager.casts, [])
        return error["message"]

    def test_body(self) -> None:
        """
        When the body is not an object, then 400 for the body.
        """
        for body in ([], "echo", None, 3):
            self.assertIn("JSON object", self.assertBad(body, "body"))

    def test_unknown_fields(self) -> None:
        """
        When the body has fields the gateway does not know, then 400 naming
        them and the known ones.
        """
        message = self.assertBad({"method": "note", "cast": True, "metod": 1}, "metod")
        self.assertIn("'metod'", message)
        self.assertIn(", ".join(FIELDS), message)
        body = {f"extra{i}": i for i in range(20)}
        self.assertIn("and 15 more", self.assertBad(body, "extra0"))

    def test_each_field(self) -> None:
        """
        When one field is wrong, then 400 names that field.
        """
        base = {"method": "note", "cast": True}
        cases = [
            ({"method": 3}, "method"),
            ({"method": ""}, "method"),
            ({"method": "_private"}, "method"),
            ({"method": "no such"}, "method"),
            ({"args": [1]}, "args"),
            ({"args": "x"}, "args"),
            ({"server": ""}, "server"),
            ({"server": 5}, "server"),
            ({"server": "two words"}, "server"),
            ({"server": "h" * 256}, "server"),
            ({"cast": "yes"}, "cast"),
            ({"cast": 1}, "cast"),
            ({"timeout": 0}, "timeout"),
            ({"timeout": -1}, "timeout"),
            ({"timeout": "5"}, "timeout"),
            ({"timeout": True}, "timeout"),
            ({"timeout": float("nan")}, "timeout"),
            ({"timeout": float("inf")}, "timeout"),
            ({"timeout": MAX_TIMEOUT + 1}, "timeout"),
            ({"version": "one"}, "version"),
            ({"version": 1.0}, "version"),
            ({"namespace": ""}, "namespace"),
            ({"namespace": ["x"]}, "namespace"),
            ({"fanout": "yes"}, "fanout"),
            ({"fanout": True, "cast": False}, "fanout"),
            ({"fanout": True, "server": "host1"}, "fanout"),
        ]
        for change, field in cases:
            self.assertBad({**base, **change}, field)
        self.assertBad({"cast": True, "args": {}}, "method")

    def test_args_not_json(self) -> None:
        """
        When args cannot be encoded (a caller that is not the JSON layer),
        then 400 for args.
        """
        self.assertBad({"method": "note", "cast": True, "args": {"value": object()}}, "args")
        self.assertBad({"method": "note", "cast": True, "args": {1: "x"}}, "args")

    def test_topic(self) -> None:
        """
        When the topic has characters AMQP names do not allow, or is too
        long, then 400 for the topic, shortened.
        """
        for topic in ("", "a b", "svc/x", "svc#", "svc*", "t" * (TOPIC_MAX_LENGTH + 1), "é"):
            self.assertBad({"method": "note", "cast": True}, "topic", topic=topic)
        message = self.assertBad({"method": "note"}, "topic", topic="<" * 100000)
        self.assertIn("100000 characters", message)

    def test_topic_names(self) -> None:
        """
        When the topic uses every character allowed, at the longest, then it
        is accepted (no queue takes it).
        """
        topic = ("Ab1-_.:" * 40)[:TOPIC_MAX_LENGTH]
        d = self.gateway.handle(topic, {"method": "note", "cast": True, "timeout": 1}, admin())
        self.clock.pump([0.25] * 4)
        self.assertEqual(self.successResultOf(d)[1]["error"]["type"], "UnroutableError")

    def test_huge_method(self) -> None:
        """
        When the method name is huge, then the 400 message quotes it cut
        and says how long it was.
        """
        message = self.assertBad({"method": "a" * 100000}, "method")
        self.assertIn("100000 characters", message)
        self.assertLess(len(message), QUOTE_LIMIT + 100)

    def test_nulls(self) -> None:
        """
        When optional fields are null, then their defaults apply.
        """
        body = {"method": "note", "args": None, "server": None, "cast": True, "timeout": None, "version": None,
                "namespace": None, "fanout": None}
        self.assertEqual(self.answer(body)[0], 202)
        self.assertEqual(self.manager.casts, [None])


class AccessTests(_Harness, SynchronousTestCase):
    """
    Who may use the gateway, and when.
    """

    def test_not_admin(self) -> None:
        """
        When the context is not an admin's, then 403 and nothing is sent.
        """
        manager = self.serve()
        for context in (RequestContext("user", "project"), None):
            d = self.gateway.handle("svc", {"method": "note", "cast": True}, context)  # type: ignore[arg-type]
            status, payload = self.successResultOf(d)
            self.assertEqual((status, payload["error"]["type"]), (403, "Forbidden"))
        self.assertEqual(manager.casts, [])

    def test_stop(self) -> None:
        """
        When the gateway stops, then new requests get 503 and the stop waits
        for the requests in flight.
        """
        manager = self.serve()
        self.successResultOf(RPCGateway(self.gateway_transport, self.config, clock=self.clock).stop())
        in_flight = self.gateway.handle("svc", {"method": "slow"}, admin())
        stopped = self.gateway.stop()
        self.assertNoResult(stopped)
        status, error = self.error({"method": "echo", "args": {"value": 1}})
        self.assertEqual((status, error["type"]), (503, "ServiceUnavailable"))
        manager.pending[0].callback(1)
        self.assertEqual(self.successResultOf(in_flight), (200, {"result": 1}))
        self.successResultOf(stopped)


class RabbitMQTests(TestCase):
    """
    The gateway over the local RabbitMQ, in a vhost of its own.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_call_cast_errors(self) -> Any:
        """
        When the gateway and a server use RabbitMQ, then a call returns its
        result, a cast runs, an unknown method is 404 and a topic nobody
        consumes is 503.
        """
        from novasvc.transport import AMQPTransport
        from tests._services import poll
        from tests._vhosts import make_vhost
        from tests.test_transport_amqp import rabbit_url

        vhost = yield make_vhost(self)
        transports = []
        for _ in range(2):
            transport = AMQPTransport(rabbit_url(vhost), reactor=reactor)
            transport.start()
            self.addCleanup(transport.stop)
            transports.append(transport)
        manager = GatewayManager("host1")
        server = RPCServer(transports[0], Target(topic="svc", server="host1"), [manager], clock=reactor)
        yield server.start()
        self.addCleanup(server.stop)
        gateway = RPCGateway(transports[1], Config(kombu_missing_consumer_retry_timeout=1), clock=reactor)
        self.addCleanup(gateway.stop)
        answer = yield gateway.handle("svc", {"method": "whoami"}, admin(request_id="req-rabbit"))
        self.assertEqual(answer, (200, {"result": {"request_id": "req-rabbit", "user_id": "admin-user",
                                                   "is_admin": True}}))
        answer = yield gateway.handle("svc", {"method": "note", "args": {"value": 7}, "cast": True}, admin())
        self.assertEqual(answer[0], 202)
        yield poll(lambda: manager.casts == [7], "the cast ran")
        status, payload = yield gateway.handle("svc", {"method": "nope", "timeout": 10}, admin())
        self.assertEqual((status, payload["error"]["type"]), (404, "NoSuchMethod"))
        status, payload = yield gateway.handle("nobody", {"method": "echo", "timeout": 10}, admin())
        self.assertEqual((status, payload["error"]["type"]), (503, "UnroutableError"))

    @defer.inlineCallbacks
    def test_topics_shared_across_exchanges(self) -> Any:
        """
        When two deployments on one virtual host use different control
        exchanges but the same topic, then they share the topic's queue:
        calls sent on one exchange are served by the other deployment's
        server too (as with oslo.messaging; the README says to isolate them
        with virtual hosts).
        """
        from novasvc.rpc.client import RPCClient
        from novasvc.transport import AMQPTransport
        from tests._vhosts import make_vhost
        from tests.test_transport_amqp import rabbit_url

        vhost = yield make_vhost(self)
        transports = []
        for _ in range(3):
            transport = AMQPTransport(rabbit_url(vhost), reactor=reactor)
            transport.start()
            self.addCleanup(transport.stop)
            transports.append(transport)
        managers = {"a": GatewayManager("host-a"), "b": GatewayManager("host-b")}
        for transport, (exchange, manager) in zip(transports, managers.items()):
            server = RPCServer(transport, Target(topic="svc", server=manager.host, exchange=exchange),
                               [manager], clock=reactor)
            yield server.start()
            self.addCleanup(server.stop)
        client = RPCClient(transports[2], Target(topic="svc", exchange="b"), clock=reactor)
        hosts = set()
        for n in range(12):
            answer = yield client.call({}, "echo", value=n)
            hosts.add(answer["host"])
        self.assertEqual(hosts, {"host-a", "host-b"})
