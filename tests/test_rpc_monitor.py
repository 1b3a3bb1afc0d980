"""
Tests for L{novasvc.rpc._monitor}: the heartbeats an RPC server sends while
a call runs (oslo's call monitor), over the in-memory transport with a
L{task.Clock}.
"""

from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from novasvc.rpc import wire
from tests.test_rpc_server import _Harness


class CallMonitorTests(_Harness, SynchronousTestCase):
    """
    Heartbeats while a monitored call runs.
    """

    def test_heartbeats(self) -> None:
        """
        When a call carries _timeout 4, then an ending-false heartbeat is sent
        every 2 s while the method runs, and none after the final reply.
        """
        _, manager, _ = self.make_server()
        replies = self.reply_queue()
        self.publish(wire.encode_request("slow", {}, {}, msg_id="m1", reply_q="reply_test", timeout=4))
        self.clock.advance(1.9)
        self.assertEqual(replies, [])
        self.clock.advance(0.1)
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(r.is_heartbeat and r.msg_id == "m1" for r in replies))
        manager.pending[0].callback("done")
        self.clock.advance(10)
        self.assertEqual(len(replies), 4)
        self.assertEqual((replies[-1].ending, replies[-1].result), (True, "done"))

    def test_client_timeout_in_context(self) -> None:
        """
        When a call carries _timeout, then the endpoint sees it as the
        context's client_timeout.
        """
        seen = []

        class Spy:
            def look(self, ctxt):
                seen.append(ctxt.client_timeout)

        self.make_server(manager=Spy())
        self.successResultOf(self.client.prepare(call_monitor_timeout=30).call({}, "look"))
        self.successResultOf(self.client.call({}, "look"))
        self.assertEqual(seen, [30, None])

    def test_unusable_timeout(self) -> None:
        """
        When _timeout is too small or not a number, then no heartbeat is sent
        and a warning is logged.
        """
        _, manager, _ = self.make_server()
        replies = self.reply_queue()
        for i, timeout in enumerate((1, "x")):
            self.publish(wire.encode_request("slow", {}, {}, msg_id=f"m{i}", reply_q="reply_test", timeout=timeout))
        self.clock.advance(10)
        self.assertEqual(replies, [])
        self.assertEqual(len([e for e in self.events(LogLevel.warn) if "timeout" in e]), 2)
