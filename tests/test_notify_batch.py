"""
Tests for L{novasvc.notify._batch}: L{BatchNotificationListener} over the
in-memory transport with a L{task.Clock}.
"""

from typing import Any, List

from twisted.internet import defer
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from novasvc.notify.listener import (
    BatchNotificationListener,
    NotificationFilter,
    NotificationResult,
    get_batch_notification_listener,
)
from novasvc.notify.message import PRIORITIES
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import NoOpSerializer
from tests._notify_helpers import publish, send
from tests.test_notify_listener import _Harness


class BatchEndpoint:
    """
    Records the batches each priority's method gets; returns C{result} (a
    value, or a callable of the messages).
    """

    def __init__(self, *priorities: str, result: Any = None, filter_rule: Any = None) -> None:
        self.batches: List[tuple] = []
        self.result = result
        if filter_rule is not None:
            self.filter_rule = filter_rule
        for priority in priorities or PRIORITIES:
            setattr(self, priority, self._method(priority))

    def _method(self, priority: str) -> Any:
        def method(messages):
            self.batches.append((priority, messages))
            return self.result(messages) if callable(self.result) else self.result

        return method

    def events(self) -> List[List[str]]:
        return [[m["event_type"] for m in messages] for _, messages in self.batches]


class BatchTests(_Harness, SynchronousTestCase):
    """
    Batches by size and by time, grouped by priority, settled together.
    """

    def batch(self, *endpoints: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", BatchNotificationListener)
        return self.listen(*endpoints, **kwargs)

    def test_by_size(self) -> None:
        """
        When batch_size notifications arrived, then the endpoint gets them
        as one list of oslo's message dicts (ctxt, publisher_id,
        event_type, payload, metadata), and they are acknowledged after it
        returned.
        """
        endpoint = BatchEndpoint("info")
        listener = self.batch(endpoint, batch_size=3, batch_timeout=10)
        for n in range(2):
            send(self.sender, "info", f"e{n}", {"n": n}, context={"user_id": "u"}, message_id=f"m{n}",
                 timestamp="t")
        self.assertEqual(endpoint.batches, [])
        self.assertEqual(listener.inflight, 2)
        send(self.sender, "info", "e2", {"n": 2}, context={"user_id": "u"}, message_id="m2", timestamp="t")
        [(priority, messages)] = endpoint.batches
        self.assertEqual(priority, "info")
        self.assertEqual(messages, [{"ctxt": {"user_id": "u", "client_timeout": None}, "publisher_id": "volume.host1", "event_type": f"e{n}",
                                     "payload": {"n": n}, "metadata": {"message_id": f"m{n}", "timestamp": "t"}}
                                    for n in range(3)])
        self.assertEqual(listener.transport.events(), ["ack"] * 3)
        self.assertEqual(listener.inflight, 0)

    def test_by_timeout(self) -> None:
        """
        When fewer than batch_size notifications arrived, then they are
        dispatched batch_timeout seconds after the first arrived.
        """
        endpoint = BatchEndpoint("info")
        self.batch(endpoint, batch_size=10, batch_timeout=2)
        send(self.sender, "info", "a")
        self.clock.advance(1.5)
        send(self.sender, "info", "b")
        self.clock.advance(0.49)
        self.assertEqual(endpoint.batches, [])
        self.clock.advance(0.01)
        self.assertEqual(endpoint.events(), [["a", "b"]])
        send(self.sender, "info", "c")
        self.clock.advance(2)
        self.assertEqual(endpoint.events(), [["a", "b"], ["c"]])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_at_most_batch_size(self) -> None:
        """
        When more than batch_size notifications are waiting, then each
        batch holds at most batch_size, the oldest first.
        """
        gate: defer.Deferred = defer.Deferred()
        endpoint = BatchEndpoint("info", result=lambda messages: gate if len(endpoint.batches) == 1 else None)
        self.batch(endpoint, batch_size=2, batch_timeout=1)
        for n in range(5):
            send(self.sender, "info", str(n))
        self.assertEqual(endpoint.events(), [["0", "1"]])
        gate.callback(None)
        self.assertEqual(endpoint.events(), [["0", "1"], ["2", "3"]])
        self.clock.advance(1)
        self.assertEqual(endpoint.events(), [["0", "1"], ["2", "3"], ["4"]])

    def test_size_only_and_timeout_only(self) -> None:
        """
        When there is only a batch_size, then no timer is set; with only a
        batch_timeout, every notification waiting goes in the batch.
        """
        by_size = BatchEndpoint("info")
        self.batch(by_size, batch_size=2)
        send(self.sender, "info", "a")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        send(self.sender, "info", "b")
        self.assertEqual(by_size.events(), [["a", "b"]])
        by_time = BatchEndpoint("info")
        self.batch(by_time, targets=[Target(topic="t")], batch_timeout=1)
        for n in range(4):
            send(self.sender, "info", str(n), topic="t")
        self.clock.advance(1)
        self.assertEqual(by_time.events(), [["0", "1", "2", "3"]])

    def test_grouped_by_priority(self) -> None:
        """
        When a batch holds several priorities, then each priority's method
        gets its own list, in the priorities' alphabetical order.
        """
        endpoint = BatchEndpoint("info", "error", "audit")
        self.batch(endpoint, batch_size=4, batch_timeout=1)
        send(self.sender, "info", "i1")
        send(self.sender, "error", "e1")
        send(self.sender, "info", "i2")
        send(self.sender, "audit", "a1")
        self.assertEqual([(p, [m["event_type"] for m in ms]) for p, ms in endpoint.batches],
                         [("audit", ["a1"]), ("error", ["e1"]), ("info", ["i1", "i2"])])

    def test_filter(self) -> None:
        """
        When an endpoint has a filter, then it gets the batch's messages the
        filter matches, and is not called when none does; all are
        acknowledged.
        """
        picky = BatchEndpoint("info", filter_rule=NotificationFilter(event_type="^keep"))
        never = BatchEndpoint("info", filter_rule=NotificationFilter(event_type="^nothing"))
        listener = self.batch(picky, never, batch_size=3)
        for event in ("keep.1", "drop", "keep.2"):
            send(self.sender, "info", event)
        self.assertEqual(picky.events(), [["keep.1", "keep.2"]])
        self.assertEqual(never.batches, [])
        self.assertEqual(listener.transport.events(), ["ack"] * 3)

    def test_requeue_group(self) -> None:
        """
        When an endpoint asks to requeue its batch and requeues are allowed,
        then the notifications of that priority are given back, the others
        acknowledged, and later endpoints of that priority not called.
        """
        asked = BatchEndpoint("info", "error",
                              result=lambda ms: NotificationResult.REQUEUE if ms[0]["event_type"] == "i" else None)
        later = BatchEndpoint("info")
        listener = self.batch(asked, later, batch_size=2, allow_requeue=True)
        send(self.sender, "error", "e")
        send(self.sender, "info", "i")
        self.assertEqual(listener.transport.events(), ["ack", "requeue"])
        self.assertEqual(later.batches, [])
        self.assertEqual((self.counts("requeued"), self.counts("handled")), (1, 1))

    def test_requeue_not_allowed(self) -> None:
        """
        When an endpoint raises on a batch and requeues are not allowed,
        then the batch is acknowledged, and the error logged once.
        """
        listener = self.batch(BatchEndpoint("info", result=lambda ms: 1 / 0), batch_size=2)
        send(self.sender, "info", "a")
        send(self.sender, "info", "b")
        self.assertEqual(listener.transport.events(), ["ack", "ack"])
        [line] = self.messages(LogLevel.error)
        self.assertIn("raised on a batch of 2 notification(s), the first event 'a'", line)
        self.assertEqual(self.counts("error"), 2)

    def test_deferred_endpoint(self) -> None:
        """
        When the endpoint returns a Deferred, then the batch is settled once
        it fires, and no other batch starts before (max_inflight 1).
        """
        pending: List[defer.Deferred] = []
        endpoint = BatchEndpoint("info", result=lambda ms: pending.append(defer.Deferred()) or pending[-1])
        listener = self.batch(endpoint, batch_size=1)
        send(self.sender, "info", "a")
        send(self.sender, "info", "b")
        self.assertEqual(endpoint.events(), [["a"]])
        self.assertEqual(listener.transport.settled, [])
        pending[0].callback(None)
        self.assertEqual(endpoint.events(), [["a"], ["b"]])
        self.assertEqual(listener.transport.events(), ["ack"])
        pending[1].errback(ValueError("no"))
        self.assertEqual(listener.transport.events(), ["ack", "ack"])

    def test_max_inflight_batches(self) -> None:
        """
        When max_inflight is 2, then two batches run at once.
        """
        pending: List[defer.Deferred] = []
        endpoint = BatchEndpoint("info", result=lambda ms: pending.append(defer.Deferred()) or pending[-1])
        self.batch(endpoint, batch_size=1, max_inflight=2)
        for n in range(3):
            send(self.sender, "info", str(n))
        self.assertEqual(endpoint.events(), [["0"], ["1"]])

    def test_malformed_and_serializer_error(self) -> None:
        """
        When a body is malformed, then it is rejected at once and does not
        join a batch; when the serializer cannot read one, then it counts
        as an error and the others of its batch are dispatched.
        """

        class Picky(NoOpSerializer):
            def deserialize_entity(self, ctxt, entity):
                if entity == "bad":
                    raise ValueError("cannot read")
                return entity

        endpoint = BatchEndpoint("info")
        listener = self.batch(endpoint, batch_size=2, serializer=Picky())
        publish(self.sender, "notifications.info", b"[]")
        self.assertEqual(listener.transport.events(), ["reject"])
        send(self.sender, "info", "ok", "fine")
        send(self.sender, "info", "no", "bad")
        self.assertEqual(endpoint.events(), [["ok"]])
        self.assertEqual(listener.transport.events(), ["reject", "ack", "ack"])
        self.assertEqual(len(self.messages(LogLevel.error)), 2)  # the malformed body, the serializer
        self.assertEqual((self.counts("malformed"), self.counts("error"), self.counts("handled")), (1, 1, 1))

    def test_stop_gives_back_waiting(self) -> None:
        """
        When the listener stops with notifications waiting for their batch,
        then they are given back and the timer cancelled; wait() fires
        True.
        """
        endpoint = BatchEndpoint("info")
        listener = self.batch(endpoint, batch_size=5, batch_timeout=3)
        send(self.sender, "info", "a")
        self.assertIs(self.successResultOf(listener.wait()), True)
        self.assertEqual(listener.transport.events(), ["requeue"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(endpoint.batches, [])
        self.assertEqual(listener.inflight, 0)

    def test_arguments(self) -> None:
        """
        When batch_size or batch_timeout is out of range, or both are None,
        then the listener cannot be made; get_batch_notification_listener
        takes oslo's arguments.
        """
        for kwargs in ({"batch_size": 0}, {"batch_timeout": 0}, {}, {"batch_size": 1, "max_inflight": 0}):
            self.assertRaises(ValueError, BatchNotificationListener, self.transport(), [Target(topic="n")],
                              [BatchEndpoint()], **kwargs)
        listener = get_batch_notification_listener(self.transport(), [Target(topic="n")], [BatchEndpoint("info")],
                                                   None, None, False, "pool", 10, 2.5, clock=self.clock)
        self.assertEqual((listener.batch_size, listener.batch_timeout, listener.pool), (10, 2.5, "pool"))
        self.assertEqual(listener.prefetch, 20)
