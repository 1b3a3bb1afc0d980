"""
Interoperability of the novasvc notification listeners
(L{novasvc.notify.listener}) with an unmodified oslo.messaging C{Notifier}
(and listener) over the local RabbitMQ, each test in its own vhost: every
priority and both drivers reach the endpoint method of that name with what
oslo sent; filters; a pool shared with an oslo listener; requeue; batches.
The oslo side runs in a subprocess (C{tests/_oslo_notify_peer.py}).
"""

import json
import sys
from typing import Any, Dict, List

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from novasvc.metrics import Recorder
from novasvc.notify.listener import (
    NotificationFilter,
    NotificationListener,
    NotificationResult,
    get_batch_notification_listener,
    get_notification_listener,
)
from novasvc.notify.message import PRIORITIES
from novasvc.rpc.target import Target
from tests._clients import on_txamqp
from tests._services import poll
from tests.test_notify_interop import _UUID_WITH_DASHES, PEER, _Interop
from tests.test_rpc_interop import _peer_env
from tests.test_transport_amqp import FAST, Admin


class Recording:
    """
    A novasvc endpoint with a method per priority, recording what it gets;
    C{answer(call)} says what to return.
    """

    def __init__(self, answer: Any = None, filter_rule: Any = None) -> None:
        self.calls: List[Dict[str, Any]] = []
        self._answer = answer
        if filter_rule is not None:
            self.filter_rule = filter_rule
        for priority in PRIORITIES:
            setattr(self, priority, self._method(priority))

    def _method(self, priority: str) -> Any:
        def method(ctxt, publisher_id, event_type, payload, metadata):
            call = {"priority": priority, "ctxt": ctxt, "publisher_id": publisher_id, "event_type": event_type,
                    "payload": payload, "metadata": metadata}
            self.calls.append(call)
            return self._answer(call) if self._answer is not None else None

        return method


class _ListenerInterop(_Interop):
    """
    novasvc listeners and oslo notifiers on the test's vhost.
    """

    def novasvc_listener(self, endpoints: List[Any], factory: Any = get_notification_listener,
                         **kwargs: Any) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with a started novasvc listener on the
            test's topic (stopped and drained at cleanup).
        """
        transport = self.transport_class(self.url, reactor=reactor, **FAST)
        transport.start()
        self.addCleanup(transport.stop)
        kwargs.setdefault("metrics", Recorder())
        listener = factory(transport, [Target(topic=self.topic)], endpoints, clock=reactor, **kwargs)
        self.addCleanup(listener.wait, 10)
        return listener.start().addCallback(lambda _: listener)

    @defer.inlineCallbacks
    def oslo_notify(self, *actions: Dict[str, Any]) -> Any:
        """
        Send with an oslo Notifier (in a subprocess) on the test's topic.
        """
        for action in actions:
            action.setdefault("topics", [self.topic])
        url = f"rabbit://guest:guest@127.0.0.1:5672/{self.vhost}"
        out, err, code = yield getProcessOutputAndValue(
            sys.executable, [PEER, "notifier", url, "openstack", json.dumps(list(actions))], env=_peer_env())
        self.assertEqual(code, 0, err.decode()[-3000:])
        results = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual(results, [{"ok": None}] * len(actions), err.decode()[-3000:])


class OsloNotifierTests(_ListenerInterop, TestCase):
    """
    What a novasvc listener's endpoint gets of what an oslo notifier sends.
    """

    @defer.inlineCallbacks
    def test_every_priority(self) -> Any:
        """
        When an oslo notifier (messagingv2) sends a notification of each
        priority with an oslo.context RequestContext, then the novasvc
        endpoint method of that name gets it: the redacted context's
        entries (with client_timeout, as oslo's listener hands them), the
        publisher id, event type, payload, and metadata (message_id a uuid4
        with dashes, timestamp).
        """
        endpoint = Recording()
        yield self.novasvc_listener([endpoint])
        context = {"user": "u1", "project_id": "p1", "request_id": "req-1", "auth_token": "s3cret"}
        yield self.oslo_notify(*[{"priority": p, "event_type": f"volume.{p}", "payload": {"n": n, "tags": ["a"]},
                                  "publisher_id": "volume.h1", "context": context}
                                 for n, p in enumerate(PRIORITIES)])
        yield poll(lambda: len(endpoint.calls) == len(PRIORITIES), "every priority at the novasvc endpoint")
        self.assertEqual(sorted(call["priority"] for call in endpoint.calls), sorted(PRIORITIES))
        for call in endpoint.calls:
            priority = call["priority"]
            self.assertEqual((call["publisher_id"], call["event_type"], call["payload"]),
                             ("volume.h1", f"volume.{priority}", {"n": PRIORITIES.index(priority), "tags": ["a"]}))
            self.assertRegex(call["metadata"]["message_id"], _UUID_WITH_DASHES)
            self.assertRegex(call["metadata"]["timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")
            ctxt = call["ctxt"]
            self.assertEqual((ctxt["user"], ctxt["project_id"], ctxt["request_id"]), ("u1", "p1", "req-1"))
            self.assertIsNone(ctxt["client_timeout"])
            self.assertIsNone(ctxt.get("auth_token"))

    @defer.inlineCallbacks
    def test_messaging_driver(self) -> Any:
        """
        When the oslo notifier's driver is messaging (no envelope), then the
        novasvc endpoint gets every priority too; a plain-dict context is
        dropped by oslo, so ctxt holds client_timeout only.
        """
        endpoint = Recording()
        yield self.novasvc_listener([endpoint])
        yield self.oslo_notify(*[{"priority": p, "event_type": f"bare.{p}", "payload": {"p": p},
                                  "driver": "messaging", "ctxt": {"user_id": "dropped"}} for p in PRIORITIES])
        yield poll(lambda: len(endpoint.calls) == len(PRIORITIES), "every bare notification")
        for call in endpoint.calls:
            self.assertEqual((call["event_type"], call["payload"]), (f"bare.{call['priority']}",
                                                                      {"p": call["priority"]}))
            self.assertEqual(call["ctxt"], {"client_timeout": None})
            self.assertEqual(call["publisher_id"], "oslo.peer")

    @defer.inlineCallbacks
    def test_sent_before_listener(self) -> Any:
        """
        When oslo sends before the novasvc listener exists, then the
        notification waits in the queue oslo's notifier declared, which
        the novasvc listener then consumes.
        """
        yield self.oslo_notify({"event_type": "early", "payload": {}})
        endpoint = Recording()
        listener = yield self.novasvc_listener([endpoint])
        self.assertIsInstance(listener, NotificationListener)
        yield poll(lambda: endpoint.calls, "the early notification")
        self.assertEqual(endpoint.calls[0]["event_type"], "early")


TxAMQPOsloNotifierTests = on_txamqp(OsloNotifierTests)


class ListenerFeaturesTests(_ListenerInterop, TestCase):
    """
    The novasvc listener's features on what an oslo notifier sends:
    filters, a pool shared with an oslo listener, requeue, batches.
    """

    @defer.inlineCallbacks
    def test_filters(self) -> Any:
        """
        When the novasvc endpoint has a NotificationFilter on publisher_id,
        event_type, context and payload, then only what oslo sent that
        matches all four reaches it; everything is acknowledged.
        """
        endpoint = Recording(filter_rule=NotificationFilter(
            publisher_id=r"^volume\.", event_type=r"^volume\.create", context={"user": "^u1$"},
            payload={"state": "^ok$"}))
        listener = yield self.novasvc_listener([endpoint])
        ok, other = {"user": "u1"}, {"user": "u2"}
        sends = [("volume.h1", "volume.create.end", ok, "ok"), ("compute.h1", "volume.create.end", ok, "ok"),
                 ("volume.h1", "volume.delete.end", ok, "ok"), ("volume.h1", "volume.create.end", other, "ok"),
                 ("volume.h1", "volume.create.end", ok, "error"), ("volume.h1", "volume.create.end", ok, "ok")]
        yield self.oslo_notify(*[{"publisher_id": p, "event_type": e, "context": c, "payload": {"state": s, "n": n}}
                                 for n, (p, e, c, s) in enumerate(sends)])
        yield poll(lambda: listener.inflight == 0 and len(endpoint.calls) >= 2, "the two matching notifications")
        admin = Admin(self.vhost)
        self.addCleanup(admin.close)
        yield poll(lambda: admin.message_count(f"{self.topic}.info") == 0, "every notification acknowledged")
        self.assertEqual(sorted(call["payload"]["n"] for call in endpoint.calls), [0, 5])

    @defer.inlineCallbacks
    def test_pool_shared_with_oslo(self) -> Any:
        """
        When a novasvc listener and an oslo listener are in the same pool,
        then they consume the one queue named after the pool: each
        notification reaches exactly one of them, and each gets some.
        """
        pool = f"{self.topic}-pool"
        endpoint = Recording()
        listener = yield self.novasvc_listener([endpoint], pool=pool)
        self.assertEqual([q.name for q in listener.queues], [pool])
        oslo = yield self.listen(pool=pool, name="oslo")
        count = 40
        yield self.oslo_notify(*[{"event_type": "volume.tick", "payload": {"n": n}} for n in range(count)])
        yield poll(lambda: len(endpoint.calls) + len(oslo.calls) == count, "every notification in the pool")
        seen = sorted([call["payload"]["n"] for call in endpoint.calls] +
                      [call["payload"]["n"] for call in oslo.calls])
        self.assertEqual(seen, list(range(count)))
        self.assertTrue(endpoint.calls and oslo.calls, (len(endpoint.calls), len(oslo.calls)))

    @defer.inlineCallbacks
    def test_requeue(self) -> Any:
        """
        When the novasvc endpoint returns REQUEUE once and the listener
        allows requeues, then the broker gives the notification back and
        the endpoint handles it the second time; without allow_requeue, a
        REQUEUE is acknowledged (the next notification comes, the first
        does not come again).
        """
        asked: List[str] = []

        def once(call: Dict[str, Any]) -> Any:
            key = call["metadata"]["message_id"]
            if key in asked:
                return None
            asked.append(key)
            return NotificationResult.REQUEUE

        endpoint = Recording(once)
        yield self.novasvc_listener([endpoint], allow_requeue=True)
        yield self.oslo_notify({"priority": "critical", "event_type": "volume.lost", "payload": {"id": 1}})
        yield poll(lambda: len(endpoint.calls) == 2, "the notification, then again after the requeue")
        first, again = endpoint.calls
        self.assertEqual(first["metadata"], again["metadata"])
        self.assertEqual(again["payload"], {"id": 1})

    @defer.inlineCallbacks
    def test_requeue_not_allowed(self) -> Any:
        """
        When the listener does not allow requeues (the default), then a
        REQUEUE is acknowledged.
        """
        endpoint = Recording(lambda call: NotificationResult.REQUEUE if call["event_type"] == "first" else None)
        yield self.novasvc_listener([endpoint])
        yield self.oslo_notify({"event_type": "first"}, {"event_type": "second"})
        yield poll(lambda: "second" in [call["event_type"] for call in endpoint.calls], "the second notification")
        self.assertEqual([call["event_type"] for call in endpoint.calls], ["first", "second"])

    @defer.inlineCallbacks
    def test_batch(self) -> Any:
        """
        When a batch listener (batch_size 5, batch_timeout 0.5 s) gets 12
        notifications from oslo, then its endpoint gets them in batches of
        at most 5 message dicts, the last one after the timeout.
        """
        batches: List[List[Dict[str, Any]]] = []

        class Batch:
            def info(self, messages):
                batches.append(messages)

        yield self.novasvc_listener([Batch()], factory=get_batch_notification_listener, batch_size=5,
                                    batch_timeout=0.5)
        yield self.oslo_notify(*[{"event_type": "volume.tick", "payload": {"n": n}} for n in range(12)])
        yield poll(lambda: sum(len(b) for b in batches) == 12, "twelve notifications in batches")
        self.assertTrue(all(1 <= len(b) <= 5 for b in batches), [len(b) for b in batches])
        self.assertEqual(sorted(m["payload"]["n"] for b in batches for m in b), list(range(12)))
        self.assertEqual(set(batches[0][0]), {"ctxt", "publisher_id", "event_type", "payload", "metadata"})

