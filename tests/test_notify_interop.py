"""
Interoperability of L{novasvc.notify.Notifier} with an unmodified
oslo.messaging notification listener over the local RabbitMQ (each test in
its own vhost): every priority reaches the endpoint method of that name
with what was sent, both drivers, oslo's C{NotificationFilter}, pools and
requeue. The oslo side runs in a subprocess (C{tests/_oslo_notify_peer.py},
which can also run an oslo C{Notifier}) since it is blocking, threaded
code.
"""

import json
import os
import re
import sys
import uuid
from typing import Any, Dict, List

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import TestCase

from novasvc.context import RequestContext
from novasvc.notify import PRIORITIES, Notifier
from novasvc.notify.message import decode_notification
from tests._clients import AMQPTransport, on_txamqp
from tests._services import poll, require_service
from tests.test_rpc_interop import _peer_env, _require_oslo
from tests._vhosts import make_vhost
from tests.test_transport_amqp import FAST, Admin, rabbit_url

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_oslo_notify_peer.py")
_UUID_WITH_DASHES = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class _Listener(protocol.ProcessProtocol):
    """
    An oslo notification listener in a subprocess: C{ready} fires once it
    consumes, C{calls} holds one dict per endpoint call.
    """

    def __init__(self) -> None:
        self.ready: defer.Deferred = defer.Deferred()
        self.ended: defer.Deferred = defer.Deferred()
        self.calls: List[Dict[str, Any]] = []
        self.output = b""
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        self.output += data
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line == b"READY":
                if not self.ready.called:
                    self.ready.callback(None)
            elif line.startswith(b"{"):
                self.calls.append(json.loads(line))

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(AssertionError(f"the oslo listener ended: {self.output.decode()[-3000:]}"))
        self.ended.callback(None)


class _Interop:
    """
    A vhost per test, novasvc notifiers on it, oslo listeners on it.

    @cvar transport_class: the novasvc side's AMQP transport.
    """

    transport_class: Any = AMQPTransport
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        require_service("RabbitMQ", "127.0.0.1", 5672)
        _require_oslo()
        self.vhost = yield make_vhost(self)
        self.url = rabbit_url(self.vhost)
        self.topic = f"notify-{uuid.uuid4().hex[:8]}"

    def notifier(self, publisher_id: str = "volume.h1", **kwargs: Any) -> Notifier:
        transport = self.transport_class(self.url, reactor=reactor, **FAST)
        transport.start()
        self.addCleanup(transport.stop)
        kwargs.setdefault("topics", [self.topic])
        return Notifier(transport, publisher_id, clock=reactor, **kwargs)

    @defer.inlineCallbacks
    def listen(self, **spec: Any) -> Any:
        spec.setdefault("topics", [self.topic])
        listener = _Listener()
        oslo_url = f"rabbit://guest:guest@127.0.0.1:5672/{self.vhost}"
        process = reactor.spawnProcess(listener, sys.executable,
                                       [sys.executable, PEER, "listener", oslo_url, "openstack", json.dumps(spec)],
                                       env=_peer_env())

        def stop() -> defer.Deferred:
            process.closeStdin()
            return listener.ended

        self.addCleanup(stop)
        yield listener.ready
        return listener


class PrioritiesInteropTests(_Interop, TestCase):
    """
    What an oslo listener's endpoint gets of what a novasvc notifier sends.
    """

    @defer.inlineCallbacks
    def test_every_priority(self) -> Any:
        """
        When a notification of each priority is sent (messagingv2), then
        the oslo endpoint method of that name gets it with the publisher
        id, event type, payload, the metadata the notifier made (message_id
        a uuid4 with dashes, timestamp) and the redacted context, as the
        novasvc decoder reads it.
        """
        listener = yield self.listen()
        notifier = self.notifier(driver=["messagingv2", "test"])
        ctxt = RequestContext(user_id="u1", project_id="p1", request_id="req-1", auth_token="s3cret")
        for n, priority in enumerate(PRIORITIES):
            result = yield getattr(notifier, priority)(ctxt, f"volume.{priority}", {"n": n, "tags": ["a"]})
            self.assertIsNone(result)
        yield poll(lambda: len(listener.calls) == len(PRIORITIES), "every priority at the oslo endpoint")
        kept = {n.priority: n for n in notifier.driver("test").notifications}
        expected_ctxt = {**ctxt.redacted_copy().to_dict(), "client_timeout": None}
        for call in listener.calls:
            priority = call["priority"]
            self.assertEqual((call["publisher_id"], call["event_type"], call["payload"]),
                             ("volume.h1", f"volume.{priority}", {"n": PRIORITIES.index(priority), "tags": ["a"]}))
            self.assertEqual(call["metadata"], kept[priority].metadata)
            self.assertRegex(call["metadata"]["message_id"], _UUID_WITH_DASHES)
            self.assertRegex(call["metadata"]["timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")
            self.assertEqual(call["ctxt"], expected_ctxt)
            self.assertIsNone(call["ctxt"]["auth_token"])
            self.assertEqual(call["result"], "handled")
        self.assertEqual(sorted(call["priority"] for call in listener.calls), sorted(PRIORITIES))

    @defer.inlineCallbacks
    def test_decoded_alike(self) -> Any:
        """
        When the same notification is read by the oslo listener and by
        decode_notification, then both see the same context, publisher id,
        event type, payload and metadata (plain-dict context: dropped).
        """
        listener = yield self.listen()
        notifier = self.notifier(topics=[self.topic, f"{self.topic}-copy"])
        yield notifier.warn({"user_id": "dropped"}, "volume.resize", {"size": 2})
        yield poll(lambda: listener.calls, "the notification at the oslo endpoint")
        admin = Admin(self.vhost)
        self.addCleanup(admin.close)
        _method, properties, body = admin.get(f"{self.topic}-copy.warn")
        decoded = decode_notification(body, properties.content_type)
        [call] = listener.calls
        self.assertEqual((call["ctxt"], call["publisher_id"], call["event_type"], call["payload"], call["metadata"]),
                         (decoded.context, decoded.publisher_id, decoded.event_type, decoded.payload,
                          decoded.metadata))
        self.assertEqual(call["ctxt"], {"client_timeout": None})

    @defer.inlineCallbacks
    def test_messaging_driver(self) -> Any:
        """
        When the driver is messaging (no envelope), then the oslo endpoint
        gets the notification too.
        """
        listener = yield self.listen()
        notifier = self.notifier(driver="messaging")
        yield notifier.error({}, "volume.fail", {"why": "disk"})
        yield poll(lambda: listener.calls, "the bare notification at the oslo endpoint")
        [call] = listener.calls
        self.assertEqual((call["priority"], call["event_type"], call["payload"]), ("error", "volume.fail",
                                                                                    {"why": "disk"}))

    @defer.inlineCallbacks
    def test_sent_before_listener(self) -> Any:
        """
        When notifications are sent before any listener exists, then they
        wait in the queue the notifier declared, and an oslo listener
        started later gets them.
        """
        notifier = self.notifier()
        yield notifier.info({}, "early.one", {})
        yield notifier.sample({}, "early.two", {})
        listener = yield self.listen()
        yield poll(lambda: len(listener.calls) == 2, "both early notifications")
        self.assertEqual(sorted(call["event_type"] for call in listener.calls), ["early.one", "early.two"])


TxAMQPPrioritiesInteropTests = on_txamqp(PrioritiesInteropTests)


class ListenerFeaturesInteropTests(_Interop, TestCase):
    """
    oslo's listener features on what a novasvc notifier sends: filters,
    pools, requeue.
    """

    @defer.inlineCallbacks
    def test_filter_rule(self) -> Any:
        """
        When the oslo endpoint has a NotificationFilter on publisher_id,
        event_type, context and payload, then only the notifications
        matching all four reach it.
        """
        listener = yield self.listen(filter={"publisher_id": r"^volume\.", "event_type": r"^volume\.create",
                                             "context": {"user_id": "^u1$"}, "payload": {"state": "^ok$"}})
        ctxt, other = RequestContext(user_id="u1"), RequestContext(user_id="u2")
        volume, compute = self.notifier("volume.h1"), self.notifier("compute.h1")
        yield volume.info(ctxt, "volume.create.end", {"state": "ok", "n": 1})
        yield compute.info(ctxt, "volume.create.end", {"state": "ok", "n": 2})
        yield volume.info(ctxt, "volume.delete.end", {"state": "ok", "n": 3})
        yield volume.info(other, "volume.create.end", {"state": "ok", "n": 4})
        yield volume.info(ctxt, "volume.create.end", {"state": "error", "n": 5})
        yield volume.info(ctxt, "volume.create.end", {"state": "ok", "n": 6})
        yield poll(lambda: len(listener.calls) >= 2, "the two matching notifications")
        self.assertEqual(sorted(call["payload"]["n"] for call in listener.calls), [1, 6])

    @defer.inlineCallbacks
    def test_pools(self) -> Any:
        """
        When two oslo listeners share pool A and a third is in pool B, then
        pool B's gets every notification and pool A's two share them, each
        once; the queue the notifier declared, C{<topic>.info}, which no
        pool consumes, keeps every notification.
        """
        first = yield self.listen(pool=f"{self.topic}-a", name="a1")
        second = yield self.listen(pool=f"{self.topic}-a", name="a2")
        alone = yield self.listen(pool=f"{self.topic}-b", name="b")
        notifier = self.notifier()
        for n in range(10):
            yield notifier.info({}, "volume.tick", {"n": n})
        yield poll(lambda: len(alone.calls) == 10 and len(first.calls) + len(second.calls) == 10,
                   "ten notifications in each pool")
        shared = sorted(call["payload"]["n"] for call in first.calls + second.calls)
        self.assertEqual(shared, list(range(10)))
        self.assertTrue(first.calls and second.calls, (len(first.calls), len(second.calls)))
        self.assertEqual(sorted(call["payload"]["n"] for call in alone.calls), list(range(10)))
        admin = Admin(self.vhost)
        self.addCleanup(admin.close)
        self.assertEqual(admin.message_count(f"{self.topic}.info"), 10)  # nobody consumes the default queue

    @defer.inlineCallbacks
    def test_requeue(self) -> Any:
        """
        When the oslo endpoint asks for a requeue (allow_requeue on), then
        it gets the same notification again and handles it.
        """
        listener = yield self.listen(allow_requeue=True, requeue_once=True)
        yield self.notifier().critical({}, "volume.lost", {"id": 1})
        yield poll(lambda: len(listener.calls) == 2, "the notification, then again after the requeue")
        first, again = listener.calls
        self.assertEqual((first["result"], again["result"]), ("requeue", "handled"))
        self.assertEqual(first["metadata"], again["metadata"])
        self.assertEqual(again["payload"], {"id": 1})
