"""
Tests for L{novasvc.rpc._replies}: an RPC server's replies to missing
queues, retried within a budget and remembered once gone, over the
in-memory transport with a L{task.Clock}.
"""

from typing import Any, List

from twisted.internet import defer
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from novasvc.exceptions import TransportError, UnroutableError
from novasvc.rpc import wire
from tests.test_rpc_server import RecordingTransport, _Harness


class ReplyRetryTests(_Harness, SynchronousTestCase):
    """
    Replies to missing queues are retried in the background, within a budget,
    and never hold an in-flight slot.
    """

    def missing_call(self, reply_q: str = "reply_missing", method: str = "echo", value: Any = 1) -> None:
        self.publish(wire.encode_request(method, {"value": value}, {}, msg_id=wire.new_id(), reply_q=reply_q))

    def attempts(self, transport: RecordingTransport, reply_q: str = "reply_missing") -> int:
        return len([p for p in transport.published if p[1] == reply_q])

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
