"""
Tests for L{novasvc.notify.listener} (and L{novasvc.notify._base},
L{novasvc.notify._dispatch}), over the in-memory transport with a
L{task.Clock}.
"""

import json
from typing import Any, List, Optional

from twisted.internet import defer, task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import novasvc.notify
from novasvc.context import RequestContext
from novasvc.metrics import Recorder
from novasvc.notify.listener import (
    BatchNotificationListener,
    NotificationFilter,
    NotificationListener,
    NotificationResult,
    get_batch_notification_listener,
    get_notification_listener,
    listener_queues,
)
from novasvc.notify.message import PRIORITIES
from novasvc.rpc.errors import InvalidTarget
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import NoOpSerializer, RequestContextSerializer
from novasvc.transport.memory import MemoryBroker
from novasvc.transport.topology import Binding, Exchange, Queue, QuorumQueues
from tests._notify_helpers import SettlingTransport, publish, send

CONTROL = Exchange("openstack", "topic")


class Endpoint:
    """
    An endpoint with a method for each priority given, recording its calls
    and returning C{result} (a value, or a callable of the call's arguments).
    """

    def __init__(self, *priorities: str, result: Any = None, filter_rule: Any = None) -> None:
        self.calls: List[tuple] = []
        self.result = result
        if filter_rule is not None:
            self.filter_rule = filter_rule
        for priority in priorities or PRIORITIES:
            setattr(self, priority, self._method(priority))

    def _method(self, priority: str) -> Any:
        def method(ctxt, publisher_id, event_type, payload, metadata):
            self.calls.append((priority, ctxt, publisher_id, event_type, payload, metadata))
            if callable(self.result):
                return self.result(ctxt, publisher_id, event_type, payload, metadata)
            return self.result

        method.__name__ = priority
        return method

    def events(self) -> List[str]:
        return [call[3] for call in self.calls]


class _Harness:
    """
    A broker, a clock, a publishing transport, a log observer and a
    recorder.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.sender = self.transport()
        self.recorder = Recorder()
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def transport(self) -> SettlingTransport:
        return SettlingTransport(broker=self.broker, clock=self.clock)

    def listen(self, *endpoints: Any, targets: Any = None, **kwargs: Any) -> Any:
        """
        @return: a started listener on its own transport (as
            C{listener.transport}).
        """
        transport = self.transport()
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("metrics", self.recorder)
        cls = kwargs.pop("cls", NotificationListener)
        listener = cls(transport, targets or [Target(topic="notifications")], list(endpoints), **kwargs)
        listener.transport = transport
        self.successResultOf(listener.start())  # type: ignore[attr-defined]
        return listener

    def messages(self, level: Optional[LogLevel] = None) -> List[str]:
        return [formatEvent(e) for e in self.log if level is None or e.get("log_level") == level]

    def counts(self, outcome: str) -> int:
        return sum(c[outcome] for _, _, c in self.recorder.notification_listener.counts())


class QueueTests(SynchronousTestCase):
    """
    L{listener_queues} names and binds the queues as oslo.messaging does.
    """

    def test_per_target_and_priority(self) -> None:
        """
        When there is no pool, then each target and priority has its queue
        C{<topic>.<priority>}, classic, not durable, bound to the target's
        exchange (else the control exchange) with that routing key.
        """
        queues = listener_queues([Target(topic="notifications"), Target(topic="versioned", exchange="nova")],
                                 ["info", "error"], control_exchange="openstack")
        self.assertEqual(queues, [
            Queue("notifications.info", bindings=(Binding(CONTROL, "notifications.info"),)),
            Queue("notifications.error", bindings=(Binding(CONTROL, "notifications.error"),)),
            Queue("versioned.info", bindings=(Binding(Exchange("nova", "topic"), "versioned.info"),)),
            Queue("versioned.error", bindings=(Binding(Exchange("nova", "topic"), "versioned.error"),)),
        ])

    def test_same_topic_two_exchanges(self) -> None:
        """
        When two targets share a topic on two exchanges, then their queue
        is one, bound to both exchanges.
        """
        [queue] = listener_queues([Target(topic="t"), Target(topic="t", exchange="nova")], ["info"])
        self.assertEqual(queue.name, "t.info")
        self.assertEqual(queue.bindings, (Binding(CONTROL, "t.info"), Binding(Exchange("nova", "topic"), "t.info")))

    def test_pool(self) -> None:
        """
        When there is a pool, then there is one queue named after the pool,
        bound with every C{<topic>.<priority>}.
        """
        [queue] = listener_queues([Target(topic="a"), Target(topic="b")], ["info", "warn"], pool="billing")
        self.assertEqual(queue.name, "billing")
        self.assertFalse(queue.durable or queue.auto_delete or queue.exclusive)
        self.assertEqual(queue.arguments_dict(), {})
        self.assertEqual([b.routing_key for b in queue.bindings], ["a.info", "a.warn", "b.info", "b.warn"])

    def test_private_pool(self) -> None:
        """
        When a pool is given C{pool_expires}, then its queue is auto-delete
        with C{x-expires} in milliseconds.
        """
        [queue] = listener_queues([Target(topic="a")], ["info"], pool="me", pool_expires=30)
        self.assertTrue(queue.auto_delete)
        self.assertEqual(queue.arguments_dict(), {"x-expires": 30000})

    def test_durable_and_quorum(self) -> None:
        """
        When queues are durable or quorum, then the exchange and queues are
        durable, as the notifier must declare them.
        """
        [queue] = listener_queues([Target(topic="a")], ["info"], durable_queues=True)
        self.assertTrue(queue.durable)
        self.assertTrue(queue.bindings[0].exchange.durable)
        [queue] = listener_queues([Target(topic="a")], ["info"], pool="p", quorum=QuorumQueues())
        self.assertEqual(queue.arguments_dict()["x-queue-type"], "quorum")
        self.assertTrue(queue.durable)

    def test_bad_targets(self) -> None:
        """
        When a target has no topic, or there is none, then it is an error.
        """
        self.assertRaises(InvalidTarget, listener_queues, [Target()], ["info"])
        self.assertRaises(ValueError, listener_queues, [], ["info"])

    def test_only_priorities_with_methods(self) -> None:
        """
        When the endpoints have methods for some priorities only, then the
        listener consumes those priorities' queues only, in oslo's order.
        """
        listener = NotificationListener(self.transport(), [Target(topic="n")], [Endpoint("warn"), Endpoint("audit")],
                                        metrics=Recorder())
        self.assertEqual([q.name for q in listener.queues], ["n.audit", "n.warn"])

    def test_no_priority_method(self) -> None:
        """
        When no endpoint has a method named by a priority, then the
        listener cannot be made (it would consume nothing).
        """
        self.assertRaises(ValueError, NotificationListener, self.transport(), [Target(topic="n")], [object()])

    def test_bad_filter_rule(self) -> None:
        """
        When an endpoint's filter_rule is not a filter, then the listener
        cannot be made.
        """
        self.assertRaises(TypeError, NotificationListener, self.transport(), [Target(topic="n")],
                          [Endpoint("info", filter_rule="^x")])

    def test_bad_numbers(self) -> None:
        """
        When max_inflight is below 1 or duplicate_window negative, then the
        listener cannot be made.
        """
        for kwargs in ({"max_inflight": 0}, {"duplicate_window": -1}):
            self.assertRaises(ValueError, NotificationListener, self.transport(), [Target(topic="n")],
                              [Endpoint()], **kwargs)

    def transport(self) -> SettlingTransport:
        return SettlingTransport(broker=MemoryBroker(), clock=task.Clock())


class DispatchTests(_Harness, SynchronousTestCase):
    """
    Notifications go to the methods named by their priority, with oslo's
    arguments, and are acknowledged once they returned.
    """

    def test_every_priority(self) -> None:
        """
        When a notification of each priority is sent, then each reaches the
        method of its priority, with the context's entries, the publisher,
        the event type, the payload and the metadata.
        """
        endpoint = Endpoint()
        listener = self.listen(endpoint)
        for priority in PRIORITIES:
            send(self.sender, priority, f"e.{priority}", {"p": priority}, context={"user_id": "u1"},
                 message_id=f"m-{priority}", timestamp="2026-01-02 03:04:05.000006")
        self.assertEqual(endpoint.calls, [
            (p, {"user_id": "u1", "client_timeout": None}, "volume.host1", f"e.{p}", {"p": p},
             {"message_id": f"m-{p}", "timestamp": "2026-01-02 03:04:05.000006"}) for p in PRIORITIES])
        self.assertEqual(listener.transport.events(), ["ack"] * len(PRIORITIES))
        self.assertEqual(self.counts("handled"), 7)

    def test_bare_messages(self) -> None:
        """
        When a notification comes without the 2.0 envelope (oslo's
        C{messaging} driver), then it is dispatched the same way.
        """
        endpoint = Endpoint("info")
        self.listen(endpoint)
        send(self.sender, "info", "bare.event", envelope=False)
        self.assertEqual(endpoint.events(), ["bare.event"])

    def test_other_topics_not_received(self) -> None:
        """
        When notifications are sent to another topic, or to a priority no
        endpoint has, then the listener does not receive them.
        """
        endpoint = Endpoint("info")
        listener = self.listen(endpoint)
        send(self.sender, "info", topic="other")
        send(self.sender, "error")
        self.assertEqual(endpoint.calls, [])
        self.assertEqual(listener.transport.settled, [])

    def test_target_exchange(self) -> None:
        """
        When a target names an exchange, then the listener listens there;
        else on the control exchange given.
        """
        endpoint = Endpoint("info")
        self.listen(endpoint, targets=[Target(topic="n", exchange="nova"), Target(topic="m")],
                    control_exchange="ctl")
        send(self.sender, "info", "on.nova", topic="n", exchange="nova")
        send(self.sender, "info", "on.ctl", topic="m", exchange="ctl")
        send(self.sender, "info", "on.openstack", topic="n")
        self.assertEqual(endpoint.events(), ["on.nova", "on.ctl"])

    def test_endpoints_in_order(self) -> None:
        """
        When several endpoints have the priority's method, then each is
        called, in the order given, and the notification acknowledged once.
        """
        first, second = Endpoint("info"), Endpoint("info", "error")
        listener = self.listen(first, second)
        send(self.sender, "info", "x")
        self.assertEqual((first.events(), second.events()), (["x"], ["x"]))
        self.assertEqual(listener.transport.events(), ["ack"])

    def test_shared_pool(self) -> None:
        """
        When two listeners share a pool, then each notification reaches one
        of them; a listener in another pool gets every notification.
        """
        a, b, c = Endpoint("info"), Endpoint("info"), Endpoint("info")
        self.listen(a, pool="p1")
        self.listen(b, pool="p1")
        self.listen(c, pool="p2")
        for n in range(4):
            send(self.sender, "info", f"e{n}")
        self.assertEqual(sorted(a.events() + b.events()), ["e0", "e1", "e2", "e3"])
        self.assertTrue(a.calls and b.calls)
        self.assertEqual(c.events(), ["e0", "e1", "e2", "e3"])

    def test_no_pool_shares_the_topic_queue(self) -> None:
        """
        When two listeners have no pool, then they consume the same queue
        <topic>.<priority> (the notifier's): each notification reaches one
        of them.
        """
        a, b = Endpoint("info"), Endpoint("info")
        self.listen(a)
        self.listen(b)
        for n in range(4):
            send(self.sender, "info", f"e{n}")
        self.assertEqual(sorted(a.events() + b.events()), ["e0", "e1", "e2", "e3"])
        self.assertTrue(a.calls and b.calls)
        self.assertEqual([name for name in self.broker.queues], ["notifications.info"])

    def test_acknowledged_after_deferred(self) -> None:
        """
        When an endpoint returns a Deferred, then the notification stays
        unacknowledged (in flight) until it fires.
        """
        pending: List[defer.Deferred] = []
        endpoint = Endpoint("info", result=lambda *a: pending.append(defer.Deferred()) or pending[-1])
        listener = self.listen(endpoint)
        send(self.sender, "info")
        self.assertEqual(listener.transport.settled, [])
        self.assertEqual(listener.inflight, 1)
        self.assertEqual(len(listener.transport.consumers[0].unacked), 1)
        pending[0].callback(None)
        self.assertEqual(listener.transport.events(), ["ack"])
        self.assertEqual(listener.inflight, 0)

    def test_coroutine(self) -> None:
        """
        When an endpoint is a coroutine, then the notification is
        acknowledged once it returns, and its REQUEUE counts.
        """
        first, second = defer.Deferred(), defer.Deferred()
        gates = [first, second]

        class Async:
            async def info(self, ctxt, publisher_id, event_type, payload, metadata):
                gate = gates.pop(0)
                await gate
                return NotificationResult.REQUEUE if gate is first else None

        listener = self.listen(Async(), allow_requeue=True)
        send(self.sender, "info", "once")
        self.assertEqual(listener.transport.settled, [])
        first.callback(None)
        self.assertEqual(listener.transport.events(), ["requeue"])
        second.callback(None)
        self.assertEqual(listener.transport.events(), ["requeue", "ack"])

    def test_deferred_chain_of_endpoints(self) -> None:
        """
        When the first endpoint returns a Deferred, then the second is
        called only once it fired.
        """
        gate: defer.Deferred = defer.Deferred()
        first, second = Endpoint("info", result=lambda *a: gate), Endpoint("info")
        listener = self.listen(first, second)
        send(self.sender, "info", "x")
        self.assertEqual(second.calls, [])
        gate.callback(NotificationResult.HANDLED)
        self.assertEqual(second.events(), ["x"])
        self.assertEqual(listener.transport.events(), ["ack"])

    def test_lazy_exports(self) -> None:
        """
        When the names are read from L{novasvc.notify}, then they are the
        listener module's.
        """
        self.assertIs(novasvc.notify.NotificationListener, NotificationListener)
        self.assertIs(novasvc.notify.BatchNotificationListener, BatchNotificationListener)
        self.assertIs(novasvc.notify.NotificationFilter, NotificationFilter)
        self.assertIs(novasvc.notify.NotificationResult, NotificationResult)
        self.assertIs(novasvc.notify.get_notification_listener, get_notification_listener)
        self.assertIs(novasvc.notify.get_batch_notification_listener, get_batch_notification_listener)
        self.assertEqual((NotificationResult.HANDLED, NotificationResult.REQUEUE), ("handled", "requeue"))

    def test_get_notification_listener(self) -> None:
        """
        When get_notification_listener is called with oslo's positional
        arguments, then it makes a listener with them (the executor
        ignored).
        """
        serializer = RequestContextSerializer()
        listener = get_notification_listener(self.transport(), [Target(topic="n")], [Endpoint("info")],
                                             "threading", serializer, True, "pool1", clock=self.clock)
        self.assertIsInstance(listener, NotificationListener)
        self.assertEqual(listener.pool, "pool1")
        self.assertEqual([q.name for q in listener.queues], ["pool1"])
        self.assertIs(listener.serializer, serializer)
        self.assertTrue(listener.allow_requeue)


class FilterTests(_Harness, SynchronousTestCase):
    """
    An endpoint's C{filter_rule} chooses what it receives.
    """

    def test_filters(self) -> None:
        """
        When endpoints have filters on the publisher, the event type, the
        context, the metadata and the payload, then each receives only what
        its filter matches, and every notification is acknowledged.
        """
        by_publisher = Endpoint("info", filter_rule=NotificationFilter(publisher_id=r"^compute\."))
        by_event = Endpoint("info", filter_rule=NotificationFilter(event_type=r"^volume\.create\."))
        by_context = Endpoint("info", filter_rule=NotificationFilter(context={"project_id": "^p1$"}))
        by_payload = Endpoint("info", filter_rule=NotificationFilter(payload={"state": "^avail"}))
        by_metadata = Endpoint("info", filter_rule=NotificationFilter(metadata={"message_id": "^keep"}))
        listener = self.listen(by_publisher, by_event, by_context, by_payload, by_metadata)
        send(self.sender, "info", "volume.create.end", {"state": "available"}, publisher_id="compute.h1",
             context={"project_id": "p1"}, message_id="keep-1")
        send(self.sender, "info", "volume.delete.end", {"state": "deleted"}, publisher_id="volume.h1",
             context={"project_id": "p10"}, message_id="drop-2")
        send(self.sender, "info", "other", {"state": 3}, context={"project_id": None}, message_id="x-keep")
        for endpoint in (by_publisher, by_event, by_context, by_payload, by_metadata):
            self.assertEqual(endpoint.events(), ["volume.create.end"])
        self.assertEqual(listener.transport.events(), ["ack"] * 3)

    def test_missing_key_and_not_a_dict(self) -> None:
        """
        When the payload lacks a filtered key, or is not a dictionary, then
        the filter does not match.
        """
        endpoint = Endpoint("info", filter_rule=NotificationFilter(payload={"state": ".*"}))
        self.listen(endpoint)
        send(self.sender, "info", "no-key", {"other": "x"})
        send(self.sender, "info", "a-list", ["state"])
        send(self.sender, "info", "a-string", "state")
        send(self.sender, "info", "match", {"state": ""})
        self.assertEqual(endpoint.events(), ["match"])

    def test_filter_sees_deserialized_context(self) -> None:
        """
        When a serializer makes a RequestContext of the context, then a
        context filter matches its entries.
        """
        endpoint = Endpoint("info", filter_rule=NotificationFilter(context={"user_id": "^u1$"}))
        self.listen(endpoint, serializer=RequestContextSerializer())
        send(self.sender, "info", "yes", context={"user_id": "u1"})
        send(self.sender, "info", "no", context={"user_id": "u2"})
        self.assertEqual(endpoint.events(), ["yes"])
        self.assertIsInstance(endpoint.calls[0][1], RequestContext)


class RequeueTests(_Harness, SynchronousTestCase):
    """
    REQUEUE and errors give the notification back only when the listener
    allows requeues, as oslo's.
    """

    def test_requeue_allowed(self) -> None:
        """
        When an endpoint returns REQUEUE and the listener allows requeues,
        then the notification goes back to the broker, and is delivered
        again; later endpoints are not called.
        """
        answers = [NotificationResult.REQUEUE, None]
        first = Endpoint("info", result=lambda *a: answers.pop(0))
        second = Endpoint("info")
        listener = self.listen(first, second, allow_requeue=True)
        send(self.sender, "info", "x")
        self.assertEqual(listener.transport.events(), ["requeue", "ack"])
        self.assertEqual(len(first.calls), 2)
        self.assertEqual(len(second.calls), 1)
        self.assertEqual((self.counts("requeued"), self.counts("handled")), (1, 1))

    def test_requeue_not_allowed(self) -> None:
        """
        When an endpoint returns REQUEUE and the listener does not allow
        requeues (the default), then the notification is acknowledged.
        """
        endpoint = Endpoint("info", result=NotificationResult.REQUEUE)
        listener = self.listen(endpoint)
        send(self.sender, "info")
        self.assertEqual(listener.transport.events(), ["ack"])
        self.assertEqual(self.counts("requeued"), 1)

    def test_error_allowed(self) -> None:
        """
        When an endpoint raises and requeues are allowed, then the
        notification is given back, and the error logged once at ERROR
        with its message cut to 200 characters.
        """
        class Failing:
            raised = 0

            def info(self, ctxt, publisher_id, event_type, payload, metadata):
                Failing.raised += 1
                if Failing.raised == 1:
                    raise KeyError("k" * 5000)

        listener = self.listen(Failing(), allow_requeue=True)
        send(self.sender, "info", "boom")
        self.assertEqual(listener.transport.events(), ["requeue", "ack"])
        [line] = self.messages(LogLevel.error)
        self.assertIn("Notification endpoint Failing.info raised on event 'boom' from 'volume.host1': KeyError",
                      line)
        self.assertIn("(5002 characters)", line)
        self.assertLess(len(line), 3000)
        self.assertEqual(self.counts("error"), 1)

    def test_error_not_allowed(self) -> None:
        """
        When an endpoint raises and requeues are not allowed, then the
        notification is acknowledged, and later endpoints are not called.
        """
        second = Endpoint("info")
        listener = self.listen(Endpoint("info", result=lambda *a: 1 / 0), second)
        send(self.sender, "info")
        self.assertEqual(listener.transport.events(), ["ack"])
        self.assertEqual(second.calls, [])
        self.assertEqual(len(self.messages(LogLevel.error)), 1)

    def test_failed_deferred(self) -> None:
        """
        When an endpoint's Deferred fails, then it counts as an error.
        """
        gate: defer.Deferred = defer.Deferred()
        listener = self.listen(Endpoint("info", result=lambda *a: gate), allow_requeue=True)
        send(self.sender, "info", "later")
        gate.errback(RuntimeError("late failure"))
        self.assertEqual(listener.transport.events()[0], "requeue")
        self.assertIn("RuntimeError: late failure", self.messages(LogLevel.error)[0])


class BadInputTests(_Harness, SynchronousTestCase):
    """
    Bad input never stops the consumer.
    """

    def test_malformed(self) -> None:
        """
        When bodies are not notifications (not JSON, unknown priority, no
        event type, wrong content type), then each is logged once at ERROR
        with its values cut, rejected without requeue, counted, and the
        next notification is still handled.
        """
        endpoint = Endpoint("info")
        listener = self.listen(endpoint)
        bodies = [b"{not json", json.dumps({"priority": "LOUD" + "x" * 5000, "event_type": "e",
                                            "publisher_id": "p"}).encode(),
                  json.dumps({"priority": "INFO", "publisher_id": "p"}).encode()]
        for body in bodies:
            publish(self.sender, "notifications.info", body)
        publish(self.sender, "notifications.info", b"{}", content_type="text/plain")
        send(self.sender, "info", "good")
        self.assertEqual(endpoint.events(), ["good"])
        self.assertEqual(listener.transport.events(), ["reject"] * 4 + ["ack"])
        errors = self.messages(LogLevel.error)
        self.assertEqual(len(errors), 4)
        self.assertTrue(all(line.startswith("Rejected a malformed notification") for line in errors))
        self.assertTrue(all(len(line) < 600 for line in errors), errors)
        self.assertEqual(self.counts("malformed"), 4)
        self.assertEqual(self.recorder.notification_listener.counts()[0][:2], ("<unknown>", "<unknown>"))

    def test_duplicates(self) -> None:
        """
        When a notification comes again with a _unique_id already
        acknowledged, then it is acknowledged without dispatch (logged
        once, counted); a requeued one is dispatched again.
        """
        endpoint = Endpoint("info")
        listener = self.listen(endpoint)
        body = send(self.sender, "info", "once")
        publish(self.sender, "notifications.info", body)
        self.assertEqual(endpoint.events(), ["once"])
        self.assertEqual(listener.transport.events(), ["ack", "ack"])
        self.assertEqual(self.counts("duplicate"), 1)
        self.assertEqual(len(self.messages(LogLevel.warn)), 1)

    def test_duplicate_window(self) -> None:
        """
        When the window is 1, then only the last id is remembered; with 0,
        nothing is.
        """
        endpoint = Endpoint("info")
        self.listen(endpoint, duplicate_window=1)
        first = send(self.sender, "info", "a")
        send(self.sender, "info", "b")
        publish(self.sender, "notifications.info", first)
        self.assertEqual(endpoint.events(), ["a", "b", "a"])
        other = Endpoint("info")
        self.listen(other, targets=[Target(topic="t")], duplicate_window=0)
        body = send(self.sender, "info", "c", topic="t")
        publish(self.sender, "t.info", body)
        self.assertEqual(other.events(), ["c", "c"])


class SerializerTests(_Harness, SynchronousTestCase):
    """
    A serializer turns the context and the payload into what the endpoints
    get.
    """

    def test_deserialized(self) -> None:
        """
        When the listener has a serializer, then the endpoint gets its
        deserialize_context of the context and its deserialize_entity of the
        payload.
        """
        seen: List[tuple] = []

        class Upper(NoOpSerializer):
            def deserialize_context(self, ctxt):
                seen.append(("context", ctxt))
                return {"wrapped": ctxt}

            def deserialize_entity(self, ctxt, entity):
                seen.append(("entity", ctxt, entity))
                return str(entity).upper()

        endpoint = Endpoint("info")
        self.listen(endpoint, serializer=Upper())
        send(self.sender, "info", "e", "payload", context={"user_id": "u"})
        wire = {"user_id": "u", "client_timeout": None}
        self.assertEqual(seen, [("context", wire), ("entity", {"wrapped": wire}, "payload")])
        self.assertEqual(endpoint.calls[0][1], {"wrapped": wire})
        self.assertEqual(endpoint.calls[0][4], "PAYLOAD")

    def test_noop_skipped(self) -> None:
        """
        When the serializer is the no-op one, then it is not called.
        """
        listener = self.listen(Endpoint("info"), serializer=NoOpSerializer())
        self.assertIsNone(listener.serializer)

    def test_serializer_error(self) -> None:
        """
        When the serializer raises, then the notification counts as an
        error: logged, given back when requeues are allowed.
        """

        class Broken(NoOpSerializer):
            calls = 0

            def deserialize_entity(self, ctxt, entity):
                Broken.calls += 1
                if Broken.calls == 1:
                    raise ValueError("unknown object version")
                return entity

        endpoint = Endpoint("info")
        listener = self.listen(endpoint, serializer=Broken(), allow_requeue=True)
        send(self.sender, "info", "e")
        self.assertEqual(listener.transport.events(), ["requeue", "ack"])
        self.assertEqual(len(endpoint.calls), 1)
        [line] = self.messages(LogLevel.error)
        self.assertIn("The serializer could not read notification 'e' from 'volume.host1': ValueError: unknown "
                      "object version", line)
        self.assertEqual(self.counts("error"), 1)


class LifecycleTests(_Harness, SynchronousTestCase):
    """
    start, stop and wait, as the RPC server's; the in-flight bound.
    """

    def slow(self) -> Any:
        self.pending: List[defer.Deferred] = []

        def later(*args: Any) -> defer.Deferred:
            self.pending.append(defer.Deferred())
            return self.pending[-1]

        return Endpoint("info", result=later)

    def test_start_twice(self) -> None:
        """
        When a started listener is started again, then nothing more is
        consumed.
        """
        listener = self.listen(Endpoint("info"))
        self.successResultOf(listener.start())
        self.assertEqual(len(listener.transport.consumers), 1)

    def test_max_inflight(self) -> None:
        """
        When more notifications arrive than max_inflight, then the others
        wait, and each starts as one finishes.
        """
        endpoint = self.slow()
        listener = self.listen(endpoint, targets=[Target(topic="a"), Target(topic="b")], max_inflight=2)
        for topic in "abab":
            send(self.sender, "info", topic=topic)
        self.assertEqual(len(endpoint.calls), 2)
        self.pending[0].callback(None)
        self.assertEqual(len(endpoint.calls), 3)
        for d in self.pending[1:]:
            d.callback(None)
        self.pending[-1].callback(None)
        self.assertEqual(len(endpoint.calls), 4)
        self.assertEqual(listener.transport.events(), ["ack"] * 4)

    def test_stop_and_wait(self) -> None:
        """
        When a listener is stopped, then its consumers are cancelled and
        later notifications stay queued; wait() fires True once the
        endpoint calls under way finished and were acknowledged.
        """
        endpoint = self.slow()
        listener = self.listen(endpoint)
        send(self.sender, "info", "first")
        self.successResultOf(listener.stop())
        send(self.sender, "info", "second")
        self.assertEqual(endpoint.events(), ["first"])
        self.assertEqual(len(self.broker.queues["notifications.info"].messages), 1)
        waiting = listener.wait()
        self.assertNoResult(waiting)
        self.pending[0].callback(None)
        self.assertIs(self.successResultOf(waiting), True)
        self.assertEqual(listener.transport.events(), ["ack"])

    def test_wait_timeout(self) -> None:
        """
        When wait() is given a timeout and a call is still running then,
        then it fires False (logged), the delivery left unsettled.
        """
        listener = self.listen(self.slow())
        send(self.sender, "info")
        waiting = listener.wait(5)
        self.clock.advance(5)
        self.assertIs(self.successResultOf(waiting), False)
        self.assertEqual(listener.transport.settled, [])
        self.assertIn("still being handled after 5 s", self.messages(LogLevel.warn)[0])

    def test_stop_gives_back_backlog(self) -> None:
        """
        When a listener with notifications waiting for a slot is stopped,
        then those are given back (rejected with requeue) and the one
        running is acknowledged when it finishes.
        """
        listener = self.listen(self.slow(), targets=[Target(topic="a"), Target(topic="b")], max_inflight=1)
        send(self.sender, "info", "1", topic="a")
        send(self.sender, "info", "2", topic="b")
        self.successResultOf(listener.stop())
        self.assertEqual(listener.transport.events(), ["requeue"])
        self.pending[0].callback(None)
        self.assertEqual(listener.transport.events(), ["requeue", "ack"])

    def test_inflight_metric(self) -> None:
        """
        When notifications are being handled, then the recorder's inflight
        reads them from the listener.
        """
        self.listen(self.slow())
        send(self.sender, "info")
        self.assertEqual(self.recorder.notification_listener.inflight, 1)
        self.pending[0].callback(None)
        self.assertEqual(self.recorder.notification_listener.inflight, 0)
