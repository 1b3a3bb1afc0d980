"""
Failover across a true network partition of a 3-node RabbitMQ cluster of the
test's own: each node runs in a network namespace of its own
(L{tests._rabbitmq_cluster.start_partitionable_cluster}), and node 0, the
client's, is cut off from the other nodes and from the processes (its veth
end on the bridge set down) for L{PARTITION} seconds in the middle of a
stream of calls and casts, then joined again.

The processes and the traffic are those of L{tests.test_transport_cluster}
(an RPC client and server A on node 0, server B and the quorum topic queue's
leader on node 1, every URL listing the three nodes), so the figures compare
with its hang tests; the test prints them (the README's cluster guide shows
them as a table).
"""

import time
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from tests._rabbitmq_cluster import start_partitionable_cluster
from tests._rabbitmq_node import COMMAND_DEADLINE
from tests._services import poll
from tests._cluster_traffic import Traffic, wait_on_other_node

#: Seconds node 0 stays cut off: longer than RabbitMQ's verdict on a silent
#: node (C{net_ticktime}, 60 s by default: 45 to 75 s), so the cluster does
#: split and C{pause_minority} pauses node 0.
PARTITION = 90.0
#: Seconds the cut-off node may take to be running in the cluster again
#: after the heal.
REJOIN_DEADLINE = 90.0


class ClusterPartitionTests(unittest.TestCase):
    """
    What the processes on a node cut off by a network partition go through.
    """

    timeout = 420

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.cluster = yield start_partitionable_cluster(self)
        self.traffic = Traffic(self, self.cluster)
        yield self.traffic.start()
        yield task.deferLater(reactor, 3, lambda: None)

    @defer.inlineCallbacks
    def test_node_cut_off(self) -> Any:
        """
        When node 0 (the client's and server A's) is cut off the network for
        90 seconds, then both are on another node within 20 seconds, calls
        succeed again within 25 seconds of the cut, a process started
        meanwhile with node 0 first in its URL connects to another node
        within 15 seconds, the other nodes see node 0 gone and node 0 pauses
        itself (C{pause_minority}); after the heal node 0 is running in the
        cluster again, no call started after the heal fails, every server
        answers calls and fanout casts, a new process with node 0 first in
        its URL works on node 0, and no confirmed cast is lost.
        """
        traffic, cluster = self.traffic, self.cluster
        cut = time.monotonic()
        cluster.network.cut(0)
        self.addCleanup(cluster.network.heal, 0)
        yield wait_on_other_node(traffic, ["client", "server a"], 0, 30)
        failover = time.monotonic() - cut
        started = time.monotonic()
        traffic.transport("late client", 0)
        yield wait_on_other_node(traffic, ["late client"], 0, 30)
        late = time.monotonic() - started
        yield task.deferLater(reactor, max(0.0, PARTITION - (time.monotonic() - cut)), lambda: None)
        again = traffic.first_success_after(cut + 1.0)
        # Both sides' verdict, asked once each at the end of the partition.
        majority = yield cluster.running(cluster.nodes[1])
        minority = yield cluster.nodes[0].rabbitmqctl("eval", "rabbit:is_running().").addTimeout(
            COMMAND_DEADLINE, reactor)
        cluster.network.heal(0)
        healed = time.monotonic()
        yield cluster.wait_running(3, cluster.nodes[1], REJOIN_DEADLINE)
        yield cluster.wait_running(3, cluster.nodes[0], REJOIN_DEADLINE)
        rejoined = time.monotonic() - healed
        yield task.deferLater(reactor, max(0.0, 20 - (time.monotonic() - healed)), lambda: None)
        yield traffic.drain()
        during = traffic.failed_between(cut, healed)
        after = traffic.failed_between(healed, time.monotonic())
        answers = yield self.every_process_works()
        self.report(f"node 0 cut off for {PARTITION:g} s", {
            "on another node after (s)": f"{failover:.1f}",
            "a new process with the cut-off node first connected after (s)": f"{late:.1f}",
            "calls succeed again after (s)": f"{again + 1.0:.1f}" if again is not None else "never",
            "nodes running seen by node 1 before the heal": len(majority),
            "node 0 running before the heal": minority[0].decode(errors="replace").strip(),
            "node 0 running in the cluster again after the heal (s)": f"{rejoined:.1f}",
            "calls failed during the partition": len(during), "after it": len(after),
            "calls": len(traffic.calls), "casts confirmed": len(traffic.cast_confirmed),
            "casts failed": traffic.cast_failed, "confirmed casts lost": len(traffic.lost()),
            "after the heal": answers})
        self.assertLess(failover, 20.0)
        self.assertLess(late, 15.0)
        self.assertIsNotNone(again, "no call succeeded during the partition")
        self.assertLess(again + 1.0, 25.0)
        self.assertEqual(sorted(majority), sorted(node.name for node in cluster.nodes[1:]))
        self.assertEqual(minority[0].strip(), b"false", "node 0 did not pause itself")
        self.assertEqual([c.error for c in after], [])
        self.assertEqual(traffic.lost(), [])
        self.assertEqual(answers, {"a": "a", "b": "b", "fanout": ["a", "b"], "node 0 first": 0})

    @defer.inlineCallbacks
    def every_process_works(self) -> Any:
        """
        Call each server by name, fanout-cast to both, and call from a new
        process with node 0 first in its URL.

        @return: a C{Deferred} firing with what answered: C{{"a": "a", "b":
            "b", "fanout": ["a", "b"], "node 0 first": <its node>}} when all
            is well.
        """
        traffic = self.traffic
        answers: Any = {}
        for name in ("a", "b"):
            reply = yield traffic.client.prepare(server=name).call({}, "echo", value=0).addErrback(
                lambda f: {"server": f.getErrorMessage()[:200]})
            answers[name] = reply["server"]
        yield traffic.client.prepare(fanout=True).cast({}, "note", value=-2)

        def got() -> Any:
            return [endpoint.name for endpoint in traffic.endpoints if -2 in endpoint.casts]

        yield poll(lambda: len(got()) == 2, "the fanout cast reached both servers", 30, 0.1).addErrback(
            lambda _: None)
        answers["fanout"] = got()
        transport = traffic.transport("new client", 0)
        client = RPCClient(transport, Target(topic="faults"), timeout=10, durable_queues=True)
        failure = yield client.call({}, "echo", value=0).addCallbacks(lambda _: None, lambda f: f.getErrorMessage())
        answers["node 0 first"] = failure[:200] if failure else traffic.node_of("new client")
        return answers

    def report(self, what: str, figures: Any) -> None:
        print(f"\n{what}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))
