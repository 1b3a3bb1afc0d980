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
from typing import Any, Dict, List, Optional

import attrs
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from novasvc.rpc.client import RPCClient
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport, TxAMQPTransport
from novasvc.transport.topology import QuorumQueues
from novasvc.transport.url import TransportURL
from tests._rabbitmq_cluster import RabbitMQCluster, start_cluster
from tests._services import poll

#: Seconds a node stays stopped in the hang tests.
HANG = 90.0
#: Seconds between two calls, and between two casts.
CALL_EVERY, CAST_EVERY = 0.2, 0.05


class _Recorder:
    """
    An endpoint that records the casts it got.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.casts: List[int] = []

    def echo(self, ctxt: Any, value: int) -> Dict[str, Any]:
        return {"server": self.name, "value": value}

    def note(self, ctxt: Any, value: int) -> None:
        self.casts.append(value)


@attrs.define
class _Call:
    started: float
    ended: Optional[float] = None
    ok: Optional[bool] = None
    error: str = ""


class Traffic:
    """
    The client and the two servers, and the calls and casts between them.
    """

    def __init__(self, case: unittest.TestCase, cluster: RabbitMQCluster, transport_class: Any = AMQPTransport) -> None:
        self.case = case
        self.cluster = cluster
        self.calls: List[_Call] = []
        self.cast_sent = 0
        self.cast_confirmed: List[int] = []
        self.cast_failed = 0
        self.endpoints = [_Recorder("a"), _Recorder("b")]
        self.transport_class = transport_class
        self.transports: Dict[str, AMQPTransport] = {}
        self._loops: List[task.LoopingCall] = []

    def transport(self, name: str, first: int) -> AMQPTransport:
        order = [first] + [i for i in range(len(self.cluster.nodes)) if i != first]
        transport = self.transport_class(TransportURL.parse(self.cluster.url_of(order)), reactor=reactor)
        transport.start()
        self.case.addCleanup(transport.stop)
        self.transports[name] = transport
        return transport

    def node_of(self, name: str) -> Optional[int]:
        """
        @return: the index of the node C{name}'s transport is connected to,
            or C{None} while it is not connected.
        """
        transport = self.transports[name]
        if not transport.is_connected or transport._endpoint is None:
            return None
        return self.cluster.index_of_port(transport._endpoint.current[1])

    @defer.inlineCallbacks
    def start(self) -> Any:
        target = Target(topic="faults", server=None)
        for name, first, endpoint in (("b", 1, self.endpoints[1]), ("a", 0, self.endpoints[0])):
            server = RPCServer(self.transport(f"server {name}", first), Target(topic="faults", server=name),
                               [endpoint], quorum=QuorumQueues())
            yield server.start()
            self.case.addCleanup(server.stop)
        self.client = RPCClient(self.transport("client", 0), target, timeout=10, durable_queues=True)
        yield self.client.call({}, "echo", value=-1)
        for every, tick in ((CALL_EVERY, self._call), (CAST_EVERY, self._cast)):
            loop = task.LoopingCall(tick)
            loop.start(every)
            self._loops.append(loop)
        self.case.addCleanup(self.stop)

    def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()

    def _call(self) -> None:
        call = _Call(time.monotonic())
        self.calls.append(call)

        def done(result: Any) -> None:
            call.ended, call.ok = time.monotonic(), True

        def failed(failure: Any) -> None:
            call.ended, call.ok, call.error = time.monotonic(), False, failure.getErrorMessage()[:200]

        self.client.call({}, "echo", value=len(self.calls)).addCallbacks(done, failed)

    def _cast(self) -> None:
        self.cast_sent += 1
        value = self.cast_sent
        self.client.cast({}, "note", value=value).addCallbacks(
            lambda _: self.cast_confirmed.append(value), lambda _: setattr(self, "cast_failed", self.cast_failed + 1))

    def first_success_after(self, moment: float) -> Optional[float]:
        """
        @return: seconds from C{moment} to the end of the first call started
            after it that succeeded, or C{None}.
        """
        ends = [call.ended for call in self.calls if call.started >= moment and call.ok]
        return min(ends) - moment if ends else None

    def failed_between(self, start: float, end: float) -> List[_Call]:
        return [call for call in self.calls if start <= call.started < end and call.ok is False]

    def lost(self) -> List[int]:
        received = set(self.endpoints[0].casts) | set(self.endpoints[1].casts)
        return [value for value in self.cast_confirmed if value not in received]

    @defer.inlineCallbacks
    def drain(self) -> Any:
        """
        Stop sending, then wait (at most 60 s) until every call has ended
        and every confirmed cast has arrived.
        """
        self.stop()
        yield poll(lambda: all(call.ended is not None for call in self.calls), "every call ended", 60, 0.2)
        yield poll(lambda: not self.lost(), "every confirmed cast received", 60, 0.2).addErrback(lambda _: None)


def _wait_on_other_node(traffic: Traffic, names: List[str], lost: int, deadline: float) -> defer.Deferred:
    def moved() -> bool:
        nodes = [traffic.node_of(name) for name in names]
        return all(node is not None and node != lost for node in nodes)

    return poll(moved, f"{names} connected to a node other than node {lost}", deadline, 0.1)


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
        yield _wait_on_other_node(traffic, ["client", "server a"], 0, 30)
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
        yield _wait_on_other_node(traffic, names, index, 30)
        failover = time.monotonic() - hung
        # A process that starts now, the hung node first in its URL.
        started = time.monotonic()
        traffic.transport("late client", index)
        yield _wait_on_other_node(traffic, ["late client"], index, 30)
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
