"""
Interoperability of L{novasvc.rpc} with unmodified oslo.messaging peers over
the local RabbitMQ, in both directions. The oslo side runs in a subprocess
(C{tests/_oslo_peer.py}) since it is blocking, threaded code.
"""

import json
import os
import sys
import uuid

from twisted.internet import defer, protocol, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from novasvc.context import RequestContext
from novasvc.examples.echo import EchoError
from novasvc.core.manager import Manager
from novasvc.rpc._reply_waiter import reply_waiter
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import MessagingTimeout
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.url import TransportURL
from tests._clients import AMQPTransport, on_txamqp
from tests._services import poll, require_service

URL = "rabbit://guest:guest@127.0.0.1:5672/"
PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_oslo_peer.py")


def _peer_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return env


def _require_oslo():
    try:
        import oslo_messaging  # noqa: F401
    except ImportError as e:
        from tests._services import in_ci

        if in_ci():
            raise AssertionError(f"oslo.messaging is a test dependency: {e}")
        from unittest import SkipTest

        raise SkipTest(f"oslo.messaging is not installed: {e}")


class InteropManager(Manager):
    """
    The novasvc side: records casts, echoes calls with what it saw of the
    context, and raises on demand.
    """

    def __init__(self, *args, **kwargs):
        Manager.__init__(self, *args, **kwargs)
        self.casts = []

    def echo(self, ctxt, value):
        return {"value": value, "user_id": ctxt.user_id, "project_id": ctxt.project_id,
                "request_id": ctxt.request_id, "host": self.host}

    def record(self, ctxt, note):
        self.casts.append(note)

    def fail(self, ctxt, message):
        raise ValueError(message)

    def fail_typed(self, ctxt, message):
        raise EchoError(message, code=7)


@defer.inlineCallbacks
def _run_oslo(case, *actions):
    """
    Run C{actions} with an oslo client on C{case}'s exchange (each on
    C{case.topic} unless it names a topic).

    @return: a C{Deferred} firing with the client's output, one decoded
        line per action.
    """
    for action in actions:
        action.setdefault("topic", case.topic)
    out, err, code = yield getProcessOutputAndValue(
        sys.executable, [PEER, "client", URL, case.exchange, json.dumps(list(actions))],
        env=_peer_env())
    case.assertEqual(code, 0, err.decode())
    return [json.loads(line) for line in out.decode().splitlines()]


def _oslo_server(case, *extra, url=URL):
    """
    Run an oslo server for C{case.topic} on C{case.exchange}, host
    C{oslo-h}, stopped by C{case}'s cleanup.

    @param extra: more arguments for the peer (e.g. C{"wrap"}).
    @param url: its transport URL (its query sets oslo's rabbit options).
    @return: a C{Deferred} firing once it consumes.
    """
    peer = _PeerServer()
    process = reactor.spawnProcess(
        peer, sys.executable,
        [sys.executable, PEER, "server", url, case.exchange, case.topic, "oslo-h", *extra], env=_peer_env())

    def stop_peer():
        process.closeStdin()
        return peer.ended

    case.addCleanup(stop_peer)
    return peer.ready


class _Amqp:
    #: the AMQP transport of the novasvc side (see L{tests._clients}).
    transport_class = AMQPTransport

    def fresh_names(self):
        """
        Check that RabbitMQ and oslo.messaging are there, and choose an
        exchange and a topic of this test's own.
        """
        require_service("RabbitMQ", "127.0.0.1", 5672)
        _require_oslo()
        self.exchange = f"novasvc-interop-{uuid.uuid4().hex[:8]}"
        self.topic = f"interop-{uuid.uuid4().hex[:8]}"

    def transport(self):
        t = self.transport_class(TransportURL.parse(URL), reactor=reactor)
        t.start()
        self.addCleanup(t.stop)
        return t


class OsloClientToNovasvcTests(_Amqp, TestCase):
    timeout = 120

    def setUp(self):
        self.fresh_names()
        self.managers = {}
        return defer.gatherResults([self.serve("h1"), self.serve("h2")])

    def serve(self, host):
        manager = self.managers[host] = InteropManager(host=host, service_name=self.topic)
        server = RPCServer(self.transport(), Target(topic=self.topic, server=host), [manager],
                           control_exchange=self.exchange, clock=reactor)
        self.addCleanup(server.wait, 10)
        return server.start()

    def run_oslo(self, *actions):
        return _run_oslo(self, *actions)

    @defer.inlineCallbacks
    def test_call_results_and_context(self):
        """
        When an oslo RPCClient calls a novasvc server (topic, then directed to
        a host), then it gets the results, and the method saw the caller's
        context.
        """
        ctxt = {"user_id": "u1", "project_id": "p1", "request_id": "req-abc"}
        results = yield self.run_oslo(
            {"op": "call", "method": "echo", "args": {"value": [1, {"a": "b"}]}, "ctxt": ctxt},
            {"op": "call", "method": "echo", "args": {"value": 2}, "server": "h2", "ctxt": ctxt},
        )
        first, second = results
        self.assertEqual(first["ok"]["value"], [1, {"a": "b"}])
        self.assertEqual((first["ok"]["user_id"], first["ok"]["project_id"], first["ok"]["request_id"]),
                         ("u1", "p1", "req-abc"))
        self.assertEqual((second["ok"]["value"], second["ok"]["host"]), (2, "h2"))

    @defer.inlineCallbacks
    def test_exceptions(self):
        """
        When the novasvc method raises, then the oslo client re-raises a
        builtin as itself, an allowed module's error as its class, and an
        unknown method as oslo's RemoteError naming NoSuchMethod.
        """
        builtin, allowed, unknown = yield self.run_oslo(
            {"op": "call", "method": "fail", "args": {"message": "bad value"}},
            {"op": "call", "method": "fail_typed", "args": {"message": "typed"},
             "exmods": ["novasvc.examples.echo"]},
            {"op": "call", "method": "no_such_thing"},
        )
        self.assertEqual(builtin["error"], "ValueError")
        self.assertIn("bad value", builtin["message"])
        self.assertIn("EchoError", allowed["mro"])
        self.assertIn("typed", allowed["message"])
        self.assertEqual(unknown["error"], "RemoteError")
        self.assertIn("NoSuchMethod", unknown["message"])

    @defer.inlineCallbacks
    def test_cast_and_fanout(self):
        """
        When an oslo client casts, then exactly one novasvc server runs it;
        when it fanout-casts, then both servers run it.
        """
        results = yield self.run_oslo(
            {"op": "cast", "method": "record", "args": {"note": "one"}},
            {"op": "cast", "method": "record", "args": {"note": "all"}, "fanout": True},
        )
        self.assertEqual(results, [{"ok": None}, {"ok": None}])

        def delivered():
            notes = self.managers["h1"].casts + self.managers["h2"].casts
            return sorted(notes) == ["all", "all", "one"]

        yield poll(delivered, "both fanout copies and the single cast arrived")


class _PeerServer(protocol.ProcessProtocol):
    def __init__(self):
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.output = b""

    def outReceived(self, data):
        self.output += data
        if b"READY" in self.output and not self.ready.called:
            self.ready.callback(None)

    def errReceived(self, data):
        self.output += data

    def processEnded(self, reason):
        if not self.ready.called:
            self.ready.errback(AssertionError(f"oslo server ended: {self.output.decode()}"))
        self.ended.callback(None)


class _ToOslo(_Amqp):
    """
    An oslo server (with C{peer_arguments}) and C{self.client}, a novasvc
    client of it (with C{serializer()}'s serializer).
    """

    timeout = 120
    peer_arguments = ()
    peer_url = URL

    def serializer(self):
        return None

    @defer.inlineCallbacks
    def setUp(self):
        self.fresh_names()
        yield _oslo_server(self, *self.peer_arguments, url=self.peer_url)
        self.client = RPCClient(self.transport(), Target(topic=self.topic, version="1.3"),
                                control_exchange=self.exchange, timeout=20, clock=reactor,
                                serializer=self.serializer())


class NovasvcClientToOsloTests(_ToOslo, TestCase):
    """
    A novasvc client calls an oslo server.
    """

    @defer.inlineCallbacks
    def test_call_result_and_context(self):
        """
        When a novasvc RPCClient calls an oslo RPCServer, then it gets the
        result, and the oslo endpoint saw the context keys.
        """
        ctxt = RequestContext(user_id="u1", project_id="p1", request_id="req-xyz")
        result = yield self.client.call(ctxt, "echo", value={"n": 1})
        self.assertEqual(result["value"], {"n": 1})
        self.assertEqual((result["ctxt"]["user_id"], result["ctxt"]["project_id"],
                          result["ctxt"]["request_id"]), ("u1", "p1", "req-xyz"))
        direct = yield self.client.prepare(server="oslo-h").call({}, "echo", value=3)
        self.assertEqual(direct["value"], 3)

    @defer.inlineCallbacks
    def test_exception(self):
        """
        When the oslo endpoint raises ValueError, then the novasvc caller gets
        a ValueError carrying the message.
        """
        with self.assertRaises(ValueError) as raised:
            yield self.client.call({}, "fail", message="from oslo")
        self.assertIn("from oslo", str(raised.exception))

    @defer.inlineCallbacks
    def test_timeout(self):
        """
        When the oslo method outlasts the call timeout, then the novasvc
        caller gets MessagingTimeout naming the method.
        """
        with self.assertRaises(MessagingTimeout) as raised:
            yield self.client.prepare(timeout=1).call({}, "sleep", seconds=3)
        self.assertIn("sleep", str(raised.exception))


class NovasvcDirectReplyToOsloTests(_ToOslo, TestCase):
    """
    A novasvc client calls an oslo server while its replies come through
    direct reply-to (as after a failover, before its new reply queue is
    consumed).
    """

    # oslo stops sending a returned reply again after 2 s, so that the peer
    # stops at once at cleanup.
    peer_url = URL + "?kombu_missing_consumer_retry_timeout=2"

    @defer.inlineCallbacks
    def test_reply_through_direct_reply_to(self):
        """
        When the call names the client's direct reply-to name, then the oslo
        server's reply reaches it, and, RabbitMQ 3.10 having returned the
        mandatory reply, oslo sends copies, which the client drops.
        """
        waiter = reply_waiter(self.client._transport, None)
        seen = []
        on_reply = waiter._on_reply
        waiter._on_reply = lambda delivery: (seen.append(delivery.body), on_reply(delivery))
        waiter._consumer = object()  # a reply queue that is never consumed
        waiter._start_bridge()
        yield poll(lambda: waiter.bridge_name is not None, "the direct reply-to name known")
        result = yield self.client.call({}, "echo", value=7)
        self.assertEqual(result["value"], 7)
        yield poll(lambda: len(seen) >= 2, "oslo sent the reply again")
        waiter._consumer = None
        waiter._cancel_bridge()


TxAMQPOsloClientToNovasvcTests = on_txamqp(OsloClientToNovasvcTests)
TxAMQPNovasvcClientToOsloTests = on_txamqp(NovasvcClientToOsloTests)


class WrapSerializer:
    """
    The novasvc twin of C{_oslo_peer.WrapSerializer}: values travel as
    C{{"wrapped": value, "by": "novasvc"}}, and anything else is refused
    when read, as is the value C{"poison"}; a context leaves with
    C{"serialized_by": "novasvc"} and arrives with C{"deserialized_by":
    "novasvc"} added.
    """

    def serialize_entity(self, ctxt, entity):
        return {"wrapped": entity, "by": "novasvc"}

    def deserialize_entity(self, ctxt, entity):
        if not isinstance(entity, dict) or "wrapped" not in entity:
            raise ValueError(f"not wrapped: {entity!r}")
        if entity["wrapped"] == "poison":
            raise ValueError("refusing to read 'poison'")
        return entity["wrapped"]

    def serialize_context(self, ctxt):
        values = ctxt.to_dict() if isinstance(ctxt, RequestContext) else dict(ctxt or {})
        return dict(values, serialized_by="novasvc")

    def deserialize_context(self, ctxt):
        return dict(ctxt, deserialized_by="novasvc")


class SerializingManager(Manager):
    """
    The novasvc side with a serializer: reports what it got.
    """

    def __init__(self, *args, **kwargs):
        Manager.__init__(self, *args, **kwargs)
        self.casts = []

    def echo(self, ctxt, value):
        return {"value": value, "ctxt": {key: ctxt.get(key) for key in
                                         ("user_id", "serialized_by", "deserialized_by")}}

    def record(self, ctxt, note):
        self.casts.append((note, ctxt.get("serialized_by"), ctxt.get("deserialized_by")))


class OsloSerializerToNovasvcTests(_Amqp, TestCase):
    """
    An oslo client with a serializer calls a novasvc server with its twin.
    """

    timeout = 120

    def setUp(self):
        self.fresh_names()
        self.manager = SerializingManager(host="h1", service_name=self.topic)
        server = RPCServer(self.transport(), Target(topic=self.topic, server="h1"), [self.manager],
                           control_exchange=self.exchange, clock=reactor, serializer=WrapSerializer())
        self.addCleanup(server.wait, 10)
        return server.start()

    @defer.inlineCallbacks
    def test_both_ends(self):
        """
        When an oslo client with a serializer calls and casts to a novasvc
        server with the twin serializer, then the method gets the oslo
        context as the novasvc serializer deserialized it and the arguments
        unwrapped, and the oslo client reads the result the novasvc server
        wrapped.
        """
        call, cast = yield _run_oslo(
            self,
            {"op": "call", "method": "echo", "args": {"value": [1, {"a": "b"}]}, "ctxt": {"user_id": "u1"},
             "serializer": "wrap"},
            {"op": "cast", "method": "record", "args": {"note": "n"}, "serializer": "wrap"},
        )
        self.assertEqual(call, {"ok": {"value": [1, {"a": "b"}], "ctxt": {
            "user_id": "u1", "serialized_by": "oslo", "deserialized_by": "novasvc"}}})
        self.assertEqual(cast, {"ok": None})
        yield poll(lambda: self.manager.casts, "the cast arrived")
        self.assertEqual(self.manager.casts, [("n", "oslo", "novasvc")])

    @defer.inlineCallbacks
    def test_refused(self):
        """
        When the novasvc server's serializer refuses an argument, then the
        oslo caller gets its exception (a builtin: as itself, with its
        message), and the server serves the next call.
        """
        refused, unwrapped, served = yield _run_oslo(
            self,
            {"op": "call", "method": "echo", "args": {"value": "poison"}, "serializer": "wrap"},
            {"op": "call", "method": "echo", "args": {"value": 1}},
            {"op": "call", "method": "echo", "args": {"value": 2}, "serializer": "wrap"},
        )
        self.assertEqual(refused["error"], "ValueError")
        self.assertIn("refusing to read 'poison'", refused["message"])
        self.assertEqual(unwrapped["error"], "ValueError")
        self.assertIn("not wrapped: 1", unwrapped["message"])
        self.assertEqual(served["ok"]["value"], 2)


class NovasvcSerializerToOsloTests(_ToOslo, TestCase):
    """
    A novasvc client with a serializer calls an oslo server with its twin.
    """

    peer_arguments = ("wrap",)

    def serializer(self):
        return WrapSerializer()

    @defer.inlineCallbacks
    def test_both_ends(self):
        """
        When a novasvc client with a serializer calls an oslo server with
        the twin serializer, then the oslo endpoint gets the value unwrapped
        and the context as oslo deserialized the one novasvc serialized, and
        the novasvc caller reads the result the oslo server wrapped.
        """
        result = yield self.client.call(RequestContext(user_id="u1"), "echo", value={"n": 1})
        self.assertEqual(result["value"], {"n": 1})
        self.assertEqual((result["ctxt"]["user_id"], result["ctxt"]["serialized_by"],
                          result["ctxt"]["deserialized_by"]), ("u1", "novasvc", "oslo"))

    @defer.inlineCallbacks
    def test_refused(self):
        """
        When the oslo server's serializer refuses an argument (an unwrapped
        one, from a client without serializer), then the novasvc caller gets
        a ValueError saying so.
        """
        plain = self.client.prepare(serializer=None)
        with self.assertRaises(ValueError) as raised:
            yield plain.call({}, "echo", value=1)
        self.assertIn("not wrapped", str(raised.exception))
        result = yield self.client.call({}, "echo", value=2)
        self.assertEqual(result["value"], 2)
