"""
Tests for L{novasvc.notify.notifier}: L{Notifier} on the memory transport
with a L{task.Clock} (priorities, topics, drivers, prepare, serializer,
context, failures, configuration). The tries against a broker that is away
are in C{tests.test_notify_drivers}; oslo's own listener reads what it sends
in C{tests.test_notify_interop}.
"""

import json
from typing import Any, List

import attrs
from twisted.internet import defer, task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

import novasvc.notify
from novasvc.config import Config, NotificationsConfig
from novasvc.context import RequestContext
from novasvc.metrics import FAILED, SENT, Recorder
from novasvc.notify import INotificationDriver, MessageDeliveryFailure, Notifier, PRIORITIES, TestDriver
from novasvc.notify.message import decode_notification
from novasvc.rpc.serializer import RequestContextSerializer
from novasvc.transport.memory import MemoryBroker, MemoryTransport


def _messages(broker: MemoryBroker, queue: str) -> List[Any]:
    state = broker.queues.get(queue)
    return [] if state is None else list(state.messages)


def _inner(body: bytes) -> dict:
    outer = json.loads(body)
    return json.loads(outer["oslo.message"]) if "oslo.message" in outer else outer


class _Case(SynchronousTestCase):
    """
    A memory broker and transport, a clock and a recorder per test.
    """

    def setUp(self) -> None:
        self.broker = MemoryBroker()
        self.clock = task.Clock()
        self.transport = MemoryTransport(broker=self.broker, clock=self.clock)
        self.recorder = Recorder()
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def notifier(self, *args: Any, **kwargs: Any) -> Notifier:
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("metrics", self.recorder)
        return Notifier(self.transport, *args, **kwargs)

    def sent(self, queue: str) -> List[dict]:
        return [_inner(message.body) for message in _messages(self.broker, queue)]

    def errors(self) -> List[str]:
        return [formatEvent(event) for event in self.logged if event["log_level"].name == "error"]


class PriorityTests(_Case):
    """
    One method per priority, each routed C{<topic>.<priority>}.
    """

    def test_every_priority(self) -> None:
        """
        When each priority method is called, then its Deferred fires with
        None and one message waits in the queue C{notifications.<priority>}
        (declared by the notifier), with the priority upper case, the event
        type, payload and publisher id.
        """
        notifier = self.notifier("volume.h1")
        for priority in PRIORITIES:
            self.assertIsNone(self.successResultOf(
                getattr(notifier, priority)({}, f"volume.{priority}", {"p": priority})))
        for priority in PRIORITIES:
            [message] = self.sent(f"notifications.{priority}")
            self.assertEqual((message["priority"], message["event_type"], message["payload"],
                              message["publisher_id"]),
                             (priority.upper(), f"volume.{priority}", {"p": priority}, "volume.h1"))

    def test_warning_is_warn(self) -> None:
        """
        When warning is called, then it sends at priority warn, as oslo's
        alias.
        """
        notifier = self.notifier("p")
        self.successResultOf(notifier.warning({}, "e", {}))
        self.assertEqual([m["priority"] for m in self.sent("notifications.warn")], ["WARN"])

    def test_control_exchange(self) -> None:
        """
        When notifications are sent, then they go to the control exchange
        (default openstack), a non-durable topic exchange, and the queue
        bound to it with the routing key is named after the key; with
        durable queues both are durable.
        """
        self.successResultOf(self.notifier("p").info({}, "e", {}))
        exchange = self.broker.exchanges["openstack"]
        self.assertEqual((exchange.type, exchange.durable, exchange.auto_delete), ("topic", False, False))
        state = self.broker.queues["notifications.info"]
        self.assertEqual(state.bindings, {("openstack", "notifications.info")})
        self.assertFalse(state.spec.durable)
        broker = MemoryBroker()
        transport = MemoryTransport(broker=broker, clock=self.clock)
        durable = Notifier(transport, "p", control_exchange="nova", durable_queues=True, clock=self.clock)
        self.successResultOf(durable.error({}, "e", {}))
        self.assertTrue(broker.exchanges["nova"].durable)
        self.assertTrue(broker.queues["notifications.error"].spec.durable)

    def test_no_publisher(self) -> None:
        """
        When a notifier has no publisher id, then publisher_id is null.
        """
        self.successResultOf(self.notifier().info({}, "e", {}))
        self.assertIsNone(self.sent("notifications.info")[0]["publisher_id"])


class TopicsAndDriversTests(_Case):
    """
    Topics, the messaging drivers, the list of drivers.
    """

    def test_topics(self) -> None:
        """
        When a notifier has two topics, then each gets the notification,
        with the same message_id and timestamp and its own _unique_id.
        """
        self.successResultOf(self.notifier("p", topics=["a", "b"]).info({}, "e", {"x": 1}))
        [first], [second] = self.sent("a.info"), self.sent("b.info")
        self.assertEqual((first["message_id"], first["timestamp"]), (second["message_id"], second["timestamp"]))
        self.assertNotEqual(first["_unique_id"], second["_unique_id"])
        self.assertEqual(self.notifier().topics, ("notifications",))

    def test_envelope_or_bare(self) -> None:
        """
        When the driver is messagingv2 (the default), then the body is the
        2.0 envelope; when it is messaging, then the message is bare.
        """
        self.successResultOf(self.notifier("p").info({}, "v2", {}))
        self.successResultOf(self.notifier("p", driver="messaging").info({}, "v1", {}))
        bodies = [json.loads(m.body) for m in _messages(self.broker, "notifications.info")]
        self.assertEqual(bodies[0]["oslo.version"], "2.0")
        self.assertEqual(bodies[1]["event_type"], "v1")
        self.assertNotIn("oslo.message", bodies[1])

    def test_several_drivers(self) -> None:
        """
        When a notifier has a list of drivers (names and objects), then
        each gets every notification, in order; driver() finds one by name.
        """
        own = TestDriver()
        notifier = self.notifier("p", driver=["test", "messaging", own])
        self.successResultOf(notifier.critical({}, "e", {"n": 1}))
        self.assertEqual([d.name for d in notifier.drivers], ["test", "messaging", "test"])
        self.assertEqual(len(notifier.driver("test").notifications), 1)
        self.assertIs(notifier.driver("test"), notifier.drivers[0])
        self.assertEqual([n.payload for n in own.notifications], [{"n": 1}])
        self.assertEqual(len(self.sent("notifications.critical")), 1)
        self.assertRaises(KeyError, notifier.driver, "log")

    def test_test_driver(self) -> None:
        """
        When the test driver is used, then it keeps each notification with
        its fields, lower-case priority, context and metadata, and clear()
        forgets them; nothing reaches the broker.
        """
        notifier = self.notifier("vol.h", driver="test")
        self.successResultOf(notifier.sample(RequestContext(user_id="u"), "cpu", {"load": 7}))
        [kept] = notifier.driver("test").notifications
        self.assertEqual((kept.publisher_id, kept.event_type, kept.priority, kept.payload, kept.context["user_id"]),
                         ("vol.h", "cpu", "sample", {"load": 7}, "u"))
        self.assertEqual(sorted(kept.metadata), ["message_id", "timestamp"])
        self.assertEqual(self.broker.queues, {})
        notifier.driver("test").clear()
        self.assertEqual(notifier.driver("test").notifications, [])

    def test_drivers_provide_interface(self) -> None:
        """
        When the named drivers are made, then each provides
        INotificationDriver.
        """
        notifier = self.notifier(driver=["messagingv2", "messaging", "log", "noop", "test"])
        for driver in notifier.drivers:
            self.assertTrue(verifyObject(INotificationDriver, driver))

    def test_is_enabled(self) -> None:
        """
        When a notifier has no driver or only noop drivers, then it is not
        enabled (and sends nothing); any other driver enables it.
        """
        self.assertFalse(self.notifier(driver=[]).is_enabled())
        self.assertFalse(self.notifier(driver="noop").is_enabled())
        self.assertFalse(self.notifier(driver=["noop", "noop"]).is_enabled())
        self.assertTrue(self.notifier(driver=["noop", "log"]).is_enabled())
        self.assertTrue(self.notifier().is_enabled())
        self.successResultOf(self.notifier(driver=[]).info({}, "e", {}))
        self.successResultOf(self.notifier(driver="noop").info({}, "e", {}))
        self.assertEqual(self.broker.queues, {})

    def test_bad_arguments(self) -> None:
        """
        When a driver name is unknown, the topics are empty, a string or
        hold a non-string, retry is not None or an integer >= -1, or a
        messaging driver has no transport, then ValueError.
        """
        self.assertRaises(ValueError, self.notifier, driver="routing")
        self.assertRaises(ValueError, self.notifier, driver=[object()])
        for topics in ([], "notifications", [""], [3]):
            self.assertRaises(ValueError, self.notifier, topics=topics)
        for retry in (-2, 1.5, True, "3"):
            self.assertRaises(ValueError, self.notifier, retry=retry)
        self.assertRaises(ValueError, Notifier, None, driver="messagingv2")
        self.assertTrue(Notifier(None, driver=["log", "test"]).is_enabled())


class PrepareTests(_Case):
    """
    L{Notifier.prepare}.
    """

    def test_prepare(self) -> None:
        """
        When a notifier is prepared with another publisher id or retry,
        then the new one sends with them and shares the drivers; the first
        is unchanged; an argument not given is kept.
        """
        base = self.notifier("a", driver="test", retry=3)
        other = base.prepare(publisher_id="b")
        self.assertEqual((other.publisher_id, other.retry), ("b", 3))
        self.assertEqual(base.prepare(retry=0).publisher_id, "a")
        self.assertEqual(base.prepare(retry=None).retry, None)
        self.assertIs(other.drivers, base.drivers)
        self.successResultOf(other.info({}, "e", {}))
        self.successResultOf(base.info({}, "e", {}))
        self.assertEqual([n.publisher_id for n in base.driver("test").notifications], ["b", "a"])
        self.assertRaises(ValueError, base.prepare, retry=-5)


class WithDriverTests(_Case):
    """
    L{Notifier.with_driver}.
    """

    def test_with_driver(self) -> None:
        """
        When a driver is added, then the new notifier sends through the old
        drivers and the added one, with the same publisher id, retry and
        serializer; the first notifier is unchanged.
        """
        from novasvc.notify.drivers import TestDriver

        base = self.notifier("a", driver="messagingv2", retry=2, serializer=_Recording())
        kept = TestDriver()
        added = base.with_driver(kept)
        self.assertEqual((added.publisher_id, added.retry), ("a", 2))
        self.assertEqual([d.name for d in added.drivers], ["messagingv2", "test"])
        self.assertEqual([d.name for d in base.drivers], ["messagingv2"])
        self.successResultOf(added.info({}, "e", {"k": 1}))
        self.assertEqual(len(self.sent("notifications.info")), 1)
        [notification] = kept.notifications
        self.assertEqual((notification.event_type, notification.payload), ("e", {"serialized": {"k": 1}}))


@attrs.define
class _NoRedaction:
    user_id: str = "u"


class _Recording:
    """
    A serializer that records its calls and marks what it returns.
    """

    def __init__(self) -> None:
        self.calls: List[Any] = []

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        self.calls.append(("entity", ctxt, entity))
        return {"serialized": entity}

    def serialize_context(self, ctxt: Any) -> Any:
        self.calls.append(("context", ctxt))
        return {"from_serializer": True, **(ctxt.to_dict() if hasattr(ctxt, "to_dict") else ctxt)}

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def deserialize_context(self, ctxt: Any) -> Any:
        return ctxt


class ContextAndSerializerTests(_Case):
    """
    What travels of the context, and the serializer's part.
    """

    def context_of(self, ctxt: Any, **kwargs: Any) -> dict:
        notifier = self.notifier("p", **kwargs)
        self.successResultOf(notifier.info(ctxt, "e", {}))
        body = _messages(self.broker, "notifications.info")[-1].body
        return {k: v for k, v in _inner(body).items() if k.startswith("_context_")}

    def test_dict_or_none_dropped(self) -> None:
        """
        When the context is a plain dict or None, then no _context_ key is
        sent, as oslo's notifier drops it.
        """
        self.assertEqual(self.context_of({"user_id": "u", "auth_token": "secret"}), {})
        self.assertEqual(self.context_of(None), {})

    def test_request_context_redacted(self) -> None:
        """
        When the context is a RequestContext, then its redacted copy
        travels: its entries without the auth token, and without the
        RPC server's client_timeout.
        """
        ctxt = RequestContext(user_id="u1", project_id="p1", request_id="req-1", auth_token="s3cret",
                              client_timeout=30)
        sent = self.context_of(ctxt)
        self.assertEqual((sent["_context_user_id"], sent["_context_project_id"], sent["_context_request_id"]),
                         ("u1", "p1", "req-1"))
        self.assertIsNone(sent["_context_auth_token"])
        self.assertNotIn("_context_client_timeout", sent)
        self.assertEqual(ctxt.auth_token, "s3cret")

    def test_no_redacted_copy_dropped_and_warned_once(self) -> None:
        """
        When the context is an object without redacted_copy, then it is
        dropped and one warning says so, however many notifications.
        """
        notifier = self.notifier("p", driver="test")
        for _ in range(3):
            self.successResultOf(notifier.info(_NoRedaction(), "e", {}))
        self.assertEqual([n.context for n in notifier.driver("test").notifications], [{}, {}, {}])
        warnings = [formatEvent(e) for e in self.logged if "redacted_copy" in formatEvent(e)]
        self.assertEqual(len(warnings), 1)
        self.assertIn("_NoRedaction", warnings[0])

    def test_serializer(self) -> None:
        """
        When a notifier has a serializer, then the payload goes through
        serialize_entity with the caller's context, and the context
        through serialize_context of its redacted copy.
        """
        serializer = _Recording()
        ctxt = RequestContext(user_id="u", auth_token="tok")
        notifier = self.notifier("p", driver="test", serializer=serializer)
        self.successResultOf(notifier.audit(ctxt, "e", [1]))
        (kind, entity_ctxt, entity), (kind2, context_arg) = serializer.calls
        self.assertEqual((kind, kind2, entity), ("entity", "context", [1]))
        self.assertIs(entity_ctxt, ctxt)
        self.assertIsNone(context_arg.auth_token)
        [kept] = notifier.driver("test").notifications
        self.assertEqual(kept.payload, {"serialized": [1]})
        self.assertTrue(kept.context["from_serializer"])

    def test_request_context_serializer(self) -> None:
        """
        When the serializer is RequestContextSerializer, then the context
        travels as its to_dict() (redacted); a dict context is still
        dropped.
        """
        sent = self.context_of(RequestContext(user_id="u9", auth_token="t"), serializer=RequestContextSerializer())
        self.assertEqual((sent["_context_user_id"], sent["_context_auth_token"]), ("u9", None))
        self.assertEqual(self.context_of({"user_id": "x"}, serializer=RequestContextSerializer()), {})


class _Stopped(MemoryTransport):
    pass


@implementer(INotificationDriver)
class _Exploding:
    name = "exploding"

    def notify(self, notification: Any, retry: Any) -> defer.Deferred:
        raise RuntimeError("boom " + "x" * 3000)


class FailureTests(_Case):
    """
    A send never fails: what could not be sent is logged and counted.
    """

    def test_transport_stopped(self) -> None:
        """
        When the transport is stopped, then the send's Deferred still fires
        with None, one ERROR line names the event type, priority,
        publisher and routing key, and the message counts as failed.
        """
        self.successResultOf(self.transport.stop())
        notifier = self.notifier("vol.h1", topics=["a", "b"])
        self.assertIsNone(self.successResultOf(notifier.error({}, "volume.fail", {})))
        errors = self.errors()
        self.assertEqual(len(errors), 2)
        self.assertIn("volume.fail (error) from vol.h1 was not sent (messagingv2 to a.error)", errors[0])
        self.assertIn("stopped", errors[0])
        self.assertEqual(self.recorder.notifier.counts(), [("volume.fail", "error", {SENT: 0, FAILED: 2})])

    def test_not_encodable(self) -> None:
        """
        When the payload cannot be encoded, then nothing is published, the
        Deferred fires with None and the failure is logged and counted.
        """
        notifier = self.notifier("p")
        self.assertIsNone(self.successResultOf(notifier.info({}, "e", {"x": object()})))
        self.assertEqual(self.sent("notifications.info"), [])
        [error] = self.errors()
        self.assertIn("TypeError", error)
        self.assertEqual(self.recorder.notifier.counts(), [("e", "info", {SENT: 0, FAILED: 1})])

    def test_serializer_raises(self) -> None:
        """
        When the serializer raises, then the Deferred fires with None, one
        ERROR line says so, and nothing is sent.
        """
        class Broken(_Recording):
            def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
                raise ValueError("cannot")

        notifier = self.notifier("p", serializer=Broken())
        self.successResultOf(notifier.info({}, "e", {}))
        [error] = self.errors()
        self.assertIn("(serializer): ValueError: cannot", error)
        self.assertEqual(self.broker.queues, {})

    def test_bounded_log_line(self) -> None:
        """
        When a driver raises with a long text and the event type is long,
        then the log line stays short, and other drivers still send.
        """
        notifier = self.notifier("p", driver=[_Exploding(), "test"])
        self.successResultOf(notifier.info({}, "e" * 10000, {}))
        [error] = self.errors()
        self.assertLess(len(error), 800)
        self.assertIn("RuntimeError: boom", error)
        self.assertEqual(len(notifier.driver("test").notifications), 1)

    def test_deliver_fails(self) -> None:
        """
        When deliver is used, then a failure is a MessageDeliveryFailure
        listing each message not sent, and nothing is logged; a priority
        outside oslo's seven or an event type that is not a string is a
        ValueError.
        """
        self.successResultOf(self.transport.stop())
        notifier = self.notifier("p", topics=["a", "b"])
        failure = self.failureResultOf(notifier.deliver({}, "e", {}, "INFO"), MessageDeliveryFailure)
        self.assertEqual([where for where, _ in failure.value.failures], ["messagingv2 to a.info",
                                                                          "messagingv2 to b.info"])
        self.assertEqual(self.errors(), [])
        self.failureResultOf(notifier.deliver({}, "e", {}, "loud"), ValueError)
        self.failureResultOf(notifier.deliver({}, 3, {}, "info"), ValueError)
        self.assertIsNone(self.successResultOf(self.notifier("p", driver="test").deliver({}, "e", {})))


class MetricsTests(_Case):
    """
    The notifications sent, counted in the recorder.
    """

    def test_counted(self) -> None:
        """
        When notifications are sent, then each message counts as sent under
        its event type and priority (twice on two topics); the log driver
        counts too, noop and test do not.
        """
        self.successResultOf(self.notifier("p", topics=["a", "b"]).info({}, "vol.create", {}))
        self.successResultOf(self.notifier("p", driver=["log", "noop", "test"]).warn({}, "vol.create", {}))
        self.assertEqual(self.recorder.notifier.counts(), [("vol.create", "info", {SENT: 2, FAILED: 0}),
                                                            ("vol.create", "warn", {SENT: 1, FAILED: 0})])

    def test_event_types_bounded(self) -> None:
        """
        When more event types than max_label_values are sent, then the
        further ones count under <other>.
        """
        recorder = Recorder(max_label_values=2)
        notifier = self.notifier("p", metrics=recorder)
        for event_type in ("a", "b", "c", "d", "a"):
            self.successResultOf(notifier.info({}, event_type, {}))
        self.assertEqual(recorder.notifier.counts(), [("<other>", "info", {SENT: 2, FAILED: 0}),
                                                       ("a", "info", {SENT: 2, FAILED: 0}),
                                                       ("b", "info", {SENT: 1, FAILED: 0})])

    def test_process_recorder(self) -> None:
        """
        When no recorder is given, then the process's counts the
        notifications.
        """
        from novasvc.metrics import get_recorder

        before = dict((e, c) for e, p, c in get_recorder().notifier.counts() if e == "process.count.check")
        notifier = Notifier(self.transport, "p", clock=self.clock)
        self.successResultOf(notifier.info({}, "process.count.check", {}))
        after = dict((e, c) for e, p, c in get_recorder().notifier.counts() if e == "process.count.check")
        self.assertEqual(after["process.count.check"][SENT] - before.get("process.count.check", {SENT: 0})[SENT], 1)


class FromConfigTests(_Case):
    """
    L{Notifier.from_config}.
    """

    def make(self, versioned: bool = False, **section: Any) -> Notifier:
        config = Config(notifications=NotificationsConfig(**section), control_exchange="nova")
        return Notifier.from_config(self.transport, config, "svc.h1", versioned=versioned, clock=self.clock,
                                    metrics=self.recorder)

    def test_default_off(self) -> None:
        """
        When the configuration says nothing, then neither notifier is
        enabled (no driver, as oslo's default), and nothing is sent.
        """
        for versioned in (False, True):
            notifier = self.make(versioned)
            self.assertFalse(notifier.is_enabled())
            self.successResultOf(notifier.info({}, "e", {}))
        self.assertEqual(self.broker.queues, {})

    def test_unversioned(self) -> None:
        """
        When a driver is configured with the format unversioned, then the
        unversioned notifier sends on the topics, on the control exchange,
        with the configured retry; the versioned one is noop.
        """
        notifier = self.make(driver=("messagingv2",), retry=2, notification_format="unversioned")
        self.assertEqual((notifier.publisher_id, notifier.retry, notifier.topics),
                         ("svc.h1", 2, ("notifications",)))
        self.successResultOf(notifier.info({}, "e", {}))
        self.assertEqual(self.broker.queues["notifications.info"].bindings, {("nova", "notifications.info")})
        versioned = self.make(True, driver=("messagingv2",), notification_format="unversioned")
        self.assertFalse(versioned.is_enabled())
        self.assertEqual([d.name for d in versioned.drivers], ["noop"])

    def test_versioned_and_both(self) -> None:
        """
        When the format is versioned, then only the versioned notifier is
        enabled and it sends on versioned_notifications_topics; with both,
        both are enabled.
        """
        versioned = self.make(True, driver=("messaging",), notification_format="versioned",
                              versioned_notifications_topics=("vn", "vn2"))
        self.assertEqual(versioned.topics, ("vn", "vn2"))
        self.successResultOf(versioned.info({}, "e", {}))
        self.assertEqual(sorted(self.broker.queues), ["vn.info", "vn2.info"])
        self.assertFalse(self.make(driver=("messaging",), notification_format="versioned").is_enabled())
        self.assertTrue(self.make(driver=("log",), notification_format="both").is_enabled())
        self.assertTrue(self.make(True, driver=("log",), notification_format="both").is_enabled())

    def test_durable_and_quorum(self) -> None:
        """
        When the configuration has durable or quorum queues, then the
        queues the notifier declares are durable (quorum ones with
        x-queue-type quorum), as an RPC server's topic queues.
        """
        config = Config(notifications=NotificationsConfig(driver=("messagingv2",)), rabbit_quorum_queue=True,
                        durable_queues=True)
        notifier = Notifier.from_config(self.transport, config, "p", clock=self.clock)
        self.successResultOf(notifier.info({}, "e", {}))
        spec = self.broker.queues["notifications.info"].spec
        self.assertTrue(spec.durable)
        self.assertEqual(spec.arguments_dict()["x-queue-type"], "quorum")


class ExportsTests(SynchronousTestCase):
    """
    What L{novasvc.notify} exports for the sending side.
    """

    def test_names(self) -> None:
        """
        When the sending side's names are read from novasvc.notify, then
        they are the objects of their modules.
        """
        from novasvc.notify import drivers, notifier

        self.assertIs(novasvc.notify.Notifier, notifier.Notifier)
        for name in ("INotificationDriver", "MessageDeliveryFailure", "TestDriver"):
            self.assertIs(getattr(novasvc.notify, name), getattr(drivers, name))

    def test_decoded_by_listener_side(self) -> None:
        """
        When a sent body is decoded with decode_notification, then the
        listener side reads what the notifier sent.
        """
        broker = MemoryBroker()
        transport = MemoryTransport(broker=broker, clock=task.Clock())
        self.successResultOf(Notifier(transport, "p", clock=task.Clock()).debug(
            RequestContext(user_id="u"), "e", {"k": "v"}))
        message = broker.queues["notifications.debug"].messages[0]
        decoded = decode_notification(message.body, message.content_type)
        self.assertEqual((decoded.publisher_id, decoded.priority, decoded.payload, decoded.context["user_id"]),
                         ("p", "debug", {"k": "v"}, "u"))
