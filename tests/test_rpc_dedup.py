"""
Tests for L{novasvc.rpc._dedup}: an RPC server's de-duplication of
requests by C{_unique_id}, over the in-memory transport with a
L{task.Clock}.
"""

import json

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from novasvc.rpc import wire
from tests.test_rpc_server import _Harness, _raise


class DuplicateTests(_Harness, SynchronousTestCase):
    """
    Duplicate suppression by _unique_id.
    """

    def test_duplicate_cast(self) -> None:
        """
        When the same request arrives twice, then the method runs once, the
        copy is acknowledged with one ERROR log, and nothing stays queued.
        """
        _, manager, transport = self.make_server()
        body = wire.encode_request("note", {"value": 1}, {}, unique_id="u" * 32)
        self.publish(body)
        self.publish(body)
        self.assertEqual(manager.calls, [("note", 1)])
        self.assertEqual((self.depth("svc"), self.unacked(transport, "svc")), (0, 0))
        errors = [e for e in self.events(LogLevel.error) if e.get("unique_id") == "u" * 32]
        self.assertEqual(len(errors), 1)

    def test_duplicate_call_no_reply(self) -> None:
        """
        When a call is repeated with the same _unique_id, then only one reply
        is sent.
        """
        self.make_server()
        replies = self.reply_queue()
        body = wire.encode_request("echo", {"value": 1}, {}, msg_id="m1", reply_q="reply_test", unique_id="dup")
        self.publish(body)
        self.publish(body)
        self.assertEqual(len(replies), 1)

    def test_copy_waits_for_running_original(self) -> None:
        """
        When a copy of a request arrives while the original still runs (late
        ack), then it is not run and stays unacknowledged; once the original
        is acknowledged, the copy is acknowledged too, with one ERROR line.
        """
        _, manager, transport = self.make_server()
        body = wire.encode_request("slow", {"value": 1}, {}, unique_id="u1")
        self.publish(body)
        self.publish(body)
        self.assertEqual(manager.calls, [("slow", 1)])
        self.assertEqual(self.unacked(transport, "svc"), 2)
        self.assertEqual(self.events(LogLevel.error), [])
        manager.pending[0].callback(None)
        self.assertEqual((self.depth("svc"), self.unacked(transport, "svc")), (0, 0))
        self.assertEqual(len([e for e in self.events(LogLevel.error) if e.get("unique_id") == "u1"]), 1)
        self.publish(body)
        self.assertEqual((manager.calls, self.unacked(transport, "svc")), ([("slow", 1)], 0))

    def test_copy_of_call_waits(self) -> None:
        """
        When a copy of a call arrives while the original runs, then the
        caller gets one reply, after which both messages are acknowledged.
        """
        _, manager, transport = self.make_server()
        replies = self.reply_queue()
        body = wire.encode_request("slow", {}, {}, msg_id="m1", reply_q="reply_test", unique_id="u1")
        self.publish(body)
        self.publish(body)
        manager.pending[0].callback("done")
        self.assertEqual([r.result for r in replies], ["done"])
        self.assertEqual(self.unacked(transport, "svc"), 0)

    def test_copy_survives_a_crash(self) -> None:
        """
        When the server's connection closes while a copy waits for its
        original, then both go back to the queue: the request is not lost.
        """
        _, manager, transport = self.make_server()
        body = wire.encode_request("slow", {"value": 1}, {}, unique_id="u1")
        self.publish(body)
        self.publish(body)
        self.successResultOf(transport.stop())
        self.assertEqual(self.depth("svc"), 2)

    def test_copy_requeued_when_original_not_completed(self) -> None:
        """
        When the original could not be completed (rejected after an
        unexpected error), then the copy waiting for it goes back to the
        broker and runs, and its caller gets the reply.
        """
        _, manager, transport = self.make_server()
        replies = self.reply_queue()
        body = wire.encode_request("slow", {}, {}, msg_id="m1", reply_q="reply_test", unique_id="u1")
        self.publish(body)
        self.publish(body)
        publish = transport.publish
        transport.publish = lambda *args, **kwargs: _raise(RuntimeError("broken publish"))
        manager.pending[0].callback("first")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(manager.pending), 2)
        transport.publish = publish
        manager.pending[1].callback("second")
        self.assertEqual([r.result for r in replies], ["second"])
        self.assertEqual((self.depth("svc"), self.unacked(transport, "svc")), (0, 0))

    def test_early_copy_dropped(self) -> None:
        """
        When ack is early and a copy arrives while the original runs, then
        the copy is acknowledged at once as a duplicate (at-most-once, as
        oslo).
        """
        _, manager, transport = self.make_server(ack="early")
        body = wire.encode_request("slow", {"value": 1}, {}, unique_id="u1")
        self.publish(body)
        self.publish(body)
        self.assertEqual((len(manager.calls), self.unacked(transport, "svc")), (1, 0))
        self.assertEqual(len(self.events(LogLevel.error)), 1)

    def test_long_unique_ids(self) -> None:
        """
        When requests carry _unique_ids of a megabyte, then a repeated one is
        still a duplicate, a different one is not, and what the window keeps
        of each is short.
        """
        server, manager, _ = self.make_server()
        first, second = "u" * 1_000_000, "u" * 999_999 + "v"
        for unique_id in (first, first, second):
            self.publish(wire.encode_request("note", {"value": unique_id[-1]}, {}, unique_id=unique_id))
        self.assertEqual(manager.calls, [("note", "u"), ("note", "v")])
        self.assertEqual(len(server._duplicates.seen), 2)
        self.assertLess(max(len(unique_id) for unique_id in server._duplicates.seen), 200)

    def test_no_unique_id(self) -> None:
        """
        When requests have no _unique_id, then they are never duplicates.
        """
        _, manager, _ = self.make_server()
        body = json.dumps({"method": "note", "args": {"value": 1}}).encode()
        self.publish(body)
        self.publish(body)
        self.assertEqual(manager.calls, [("note", 1), ("note", 1)])

    def test_window(self) -> None:
        """
        When more ids than the window arrive, then the oldest is forgotten
        and accepted again.
        """
        _, manager, _ = self.make_server(duplicate_window=2)
        for uid in ("a", "b", "c", "a", "c"):
            self.publish(wire.encode_request("note", {"value": uid}, {}, unique_id=uid))
        self.assertEqual([c[1] for c in manager.calls], ["a", "b", "c", "a"])

    def test_disabled(self) -> None:
        """
        When duplicate_window is 0, then nothing is a duplicate.
        """
        _, manager, _ = self.make_server(duplicate_window=0)
        body = wire.encode_request("note", {"value": 1}, {}, unique_id="x")
        self.publish(body)
        self.publish(body)
        self.assertEqual(len(manager.calls), 2)
