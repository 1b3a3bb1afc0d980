"""
Failover on a 3-node RabbitMQ cluster of the test's own
(L{tests._rabbitmq_cluster}, C{pause_minority}): a node SIGKILLed, and a node
SIGSTOPped (hung: its TCP connections stay open and silent) then let go on,
in the middle of a stream of calls and casts.

The processes (an RPC client and two RPC servers, each with its own AMQP
transport, default options) run in this process; every URL lists the three
nodes, each process's first the node it should sit on: the client and
server A on node 0, server B on node 1. Server B starts first, so the quorum
topic queue's leader is on node 1. Node 0 is the one killed, and node 0 or
node 1 the one hung.

Each test prints its figures (the README's cluster guide shows them as a
table). Two hang tests: node 0 (the client's) and node 1 (the queue
leader's), each stopped for L{HANG} seconds.
"""

import signal
import time
from typing import Any, Dict, List

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from novasvc.transport import AMQPTransport, TxAMQPTransport
from tests._cluster_traffic import Traffic, wait_on_other_node
from tests._rabbitmq_cluster import start_cluster
from tests._services import poll

#: Seconds a node stays stopped in the hang tests.
HANG = 90.0


class _Failover:
    """
    What the processes on a node that dies or hangs go through (a mixin of
    the test cases below, one per AMQP client).
    """

    timeout = 400
    transport_class: Any = AMQPTransport

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.cluster = yield start_cluster(self)
        self.traffic = Traffic(self, self.cluster, self.transport_class)
        yield self.traffic.start()
        yield task.deferLater(reactor, 3, lambda: None)

    def report(self, what: str, figures: Dict[str, Any]) -> None:
        print(f"\n{what}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))

    @defer.inlineCallbacks
    def test_node_killed(self) -> Any:
        """
        When node 0 (the client's and server A's) is SIGKILLed, then both are
        on another node within 5 seconds, calls succeed again within 10
        seconds, none fails once they do, and no confirmed cast is lost.
        """
        traffic = self.traffic
        killed = time.monotonic()
        self.cluster.nodes[0].signal(signal.SIGKILL)
        yield wait_on_other_node(traffic, ["client", "server a"], 0, 30)
        failover = time.monotonic() - killed
        yield poll(lambda: traffic.first_success_after(killed + 0.5), "a call succeeded again", 30, 0.1)
        back = traffic.first_success_after(killed + 0.5)
        yield task.deferLater(reactor, 5, lambda: None)
        yield traffic.drain()
        late_failures = traffic.failed_between(killed + back + 0.5, time.monotonic())
        self.report("node 0 SIGKILLed", {
            "on another node after (s)": f"{failover:.1f}", "calls succeed again after (s)": f"{back:.1f}",
            "calls failed": sum(1 for c in traffic.calls if c.ok is False), "calls": len(traffic.calls),
            "casts confirmed": len(traffic.cast_confirmed), "casts failed": traffic.cast_failed,
            "confirmed casts lost": len(traffic.lost())})
        self.assertLess(failover, 5.0)
        self.assertLess(back, 10.0)
        self.assertEqual([(c.error) for c in late_failures], [])
        self.assertEqual(traffic.lost(), [])

    @defer.inlineCallbacks
    def hang(self, index: int, names: List[str]) -> Any:
        """
        SIGSTOP node C{index} for L{HANG} seconds in the middle of the
        traffic, then let it go on; check the figures the cluster guide
        states.

        @param names: the processes connected to that node.
        """
        traffic = self.traffic
        node = self.cluster.nodes[index]
        hung = time.monotonic()
        node.signal(signal.SIGSTOP)
        yield wait_on_other_node(traffic, names, index, 30)
        failover = time.monotonic() - hung
        # A process that starts now, the hung node first in its URL.
        started = time.monotonic()
        traffic.transport("late client", index)
        yield wait_on_other_node(traffic, ["late client"], index, 30)
        late = time.monotonic() - started
        yield task.deferLater(reactor, max(0.0, HANG - (time.monotonic() - hung)), lambda: None)
        again = traffic.first_success_after(hung + 1.0)
        node.signal(signal.SIGCONT)
        resumed = time.monotonic()
        yield task.deferLater(reactor, 20, lambda: None)
        yield traffic.drain()
        during = traffic.failed_between(hung, resumed)
        after = traffic.failed_between(resumed, time.monotonic())
        self.report(f"node {index} SIGSTOPped for {HANG:g} s", {
            "on another node after (s)": f"{failover:.1f}",
            "a new process with the hung node first connected after (s)": f"{late:.1f}",
            "calls succeed again after (s)": f"{again + 1.0:.1f}" if again is not None else "never",
            "calls failed during the hang": len(during), "after it": len(after), "calls": len(traffic.calls),
            "casts confirmed": len(traffic.cast_confirmed), "casts failed": traffic.cast_failed,
            "confirmed casts lost": len(traffic.lost())})
        self.assertLess(failover, 20.0)
        self.assertLess(late, 15.0)
        self.assertIsNotNone(again, "no call succeeded during the hang")
        self.assertLess(again + 1.0, 25.0)
        self.assertEqual([c.error for c in after], [])
        self.assertEqual(traffic.lost(), [])

    def test_node_hung(self) -> Any:
        """
        When node 0 (the client's and server A's) is SIGSTOPped for 90
        seconds, then both are on another node within 20 seconds, calls
        succeed again within 25 seconds of the hang (their replies come
        through direct reply-to while the new reply queue cannot be made),
        a process started meanwhile with node 0 first in its URL connects to
        another node within 15 seconds, no call started after node 0
        resumed fails, and no confirmed cast is lost.
        """
        return self.hang(0, ["client", "server a"])


class ClusterFailoverTests(_Failover, unittest.TestCase):
    """
    What the processes on a node that dies or hangs go through, on pika;
    and when the queue leader's node hangs.
    """

    def test_leader_hung(self) -> Any:
        """
        When node 1 (server B's, and the topic queue's leader) is SIGSTOPped
        for 90 seconds, then the same holds: server B is on another node
        within 20 seconds, calls succeed again within 25 seconds, none fails
        after node 1 resumed, and no confirmed cast is lost.
        """
        return self.hang(1, ["server b"])


class TxAMQPClusterFailoverTests(_Failover, unittest.TestCase):
    """
    What the processes on a node that dies or hangs go through, on txamqp.
    """

    transport_class = TxAMQPTransport
