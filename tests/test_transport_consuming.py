"""
Tests for L{novasvc.transport.consuming}: settling without raising, the
backlog and the drain waiters.
"""

from typing import Any, List

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from novasvc.transport.consuming import Backlog, Drain, gather, settle


class _Delivery:
    def __init__(self, name: str, broken: bool = False) -> None:
        self.name = name
        self.broken = broken
        self.events: List[Any] = []

    def ack(self) -> None:
        if self.broken:
            raise RuntimeError("channel closed")
        self.events.append("ack")

    def reject(self, requeue: bool) -> None:
        if self.broken:
            raise RuntimeError("channel closed")
        self.events.append(("reject", requeue))


class SettleTests(SynchronousTestCase):
    """
    L{settle} and L{gather}.
    """

    def test_settle(self) -> None:
        """
        When settling works, then it is done; when it raises, then the error
        is logged, not raised.
        """
        delivery = _Delivery("a")
        settle(delivery.reject, True)
        self.assertEqual(delivery.events, [("reject", True)])
        settle(_Delivery("b", broken=True).ack)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_gather(self) -> None:
        """
        When all succeed, then gather fires None; when one fails, then it
        fails with that failure itself.
        """
        self.assertIsNone(self.successResultOf(gather([defer.succeed(1), defer.succeed(2)])))
        failure = self.failureResultOf(gather([defer.succeed(1), defer.fail(ValueError("x"))]), ValueError)
        self.assertEqual(str(failure.value), "x")


class BacklogTests(SynchronousTestCase):
    """
    L{Backlog}: deliveries waiting for room.
    """

    def test_pull_while_room(self) -> None:
        """
        When pulled, then deliveries are processed oldest first while there
        is room; a delivery the processing raised on goes to unexpected.
        """
        backlog = Backlog()
        self.assertFalse(backlog)
        for name in "abcd":
            backlog.append(_Delivery(name))
        done: List[str] = []
        failed: List[str] = []

        def process(delivery: _Delivery) -> None:
            if delivery.name == "b":
                raise ValueError("bad")
            done.append(delivery.name)

        backlog.pull(lambda: len(done) + len(failed) < 3, process,
                     lambda delivery: failed.append(delivery.name))
        self.assertEqual((done, failed, [d.name for d in backlog]), (["a", "c"], ["b"], ["d"]))

    def test_no_nesting(self) -> None:
        """
        When processing pulls again, then the inner pull returns at once and
        the outer loop goes on: no recursion.
        """
        backlog = Backlog()
        for name in range(500):
            backlog.append(_Delivery(str(name)))
        done: List[str] = []

        def process(delivery: _Delivery) -> None:
            done.append(delivery.name)
            backlog.pull(lambda: True, process, lambda d: None)

        backlog.pull(lambda: True, process, lambda d: None)
        self.assertEqual(len(done), 500)

    def test_give_back(self) -> None:
        """
        When given back, then every waiting delivery is rejected with
        requeue, even past one whose reject raises.
        """
        backlog = Backlog()
        first, broken, last = _Delivery("a"), _Delivery("b", broken=True), _Delivery("c")
        backlog.extend([first, broken, last])
        backlog.give_back()
        self.assertEqual((first.events, last.events, len(backlog)), ([("reject", True)], [("reject", True)], 0))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class DrainTests(SynchronousTestCase):
    """
    L{Drain}: waiting for nothing in flight.
    """

    def test_nothing_running(self) -> None:
        """
        When nothing runs, then wait is True at once.
        """
        self.assertIs(Drain().wait(0, None, task.Clock(), lambda: None), True)

    def test_drained(self) -> None:
        """
        When something runs, then wait fires True once drained, and its
        timeout is cancelled.
        """
        clock, drain = task.Clock(), Drain()
        d = drain.wait(2, 10, clock, lambda: None)
        self.assertNoResult(d)
        drain.drained()
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(drain.waiters, [])

    def test_timeout(self) -> None:
        """
        When the timeout passes first, then timed_out is called and wait
        fires False; a later drained does not fire it again.
        """
        clock, drain = task.Clock(), Drain()
        told: List[int] = []
        d = drain.wait(1, 5, clock, lambda: told.append(1))
        clock.advance(5)
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(told, [1])
        drain.drained()
