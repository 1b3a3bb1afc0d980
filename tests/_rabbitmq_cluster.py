"""
A RabbitMQ cluster of a test's own: a few L{tests._rabbitmq_node.RabbitMQNode}s
(each with its own name, ports and directory, never the shared node on 5672)
joined into one cluster, for tests that kill, hang or cut off one node::

    cluster = yield start_cluster(self)            # stopped at cleanup, always
    transport = AMQPTransport(TransportURL.parse(cluster.url), ...)
    cluster.nodes[0].signal(signal.SIGSTOP)        # hang it...
    cluster.nodes[0].signal(signal.SIGCONT)        # ...and let it go on

The nodes run with C{cluster_partition_handling = pause_minority} (what the
README's cluster guide recommends) unless told otherwise. Every wait has a
deadline; nothing sleeps.

For a true network partition, each node runs in a network namespace of the
test's own (L{tests._netns}), on its own address, and one can be cut off
from the others and from the test's process::

    cluster = yield start_partitionable_cluster(self)   # nodes and namespaces removed at cleanup
    cluster.network.cut(0)                       # node 0 hears nothing, and nobody hears it...
    cluster.network.heal(0)                      # ...until it is joined again
"""

from typing import Any, List, Optional, Sequence

from twisted.internet import defer

from tests import _netns
from tests._rabbitmq_node import COMMAND_DEADLINE, NodeError, RabbitMQNode, check_available
from tests._services import poll

__all__ = ["RabbitMQCluster", "start_cluster", "start_partitionable_cluster", "PARTITION_HANDLING"]

#: The partition handling the cluster's nodes use by default.
PARTITION_HANDLING = "cluster_partition_handling = pause_minority"

#: Seconds a node may take to see every member of the cluster running.
JOIN_DEADLINE = 90.0


class RabbitMQCluster:
    """
    Nodes joined into one cluster; see the module docstring.

    @ivar nodes: the L{RabbitMQNode}s, the first one the node the others
        joined.
    @ivar url: a C{rabbit://} URL listing every node, first to last.
    @ivar network: the L{tests._netns.Network} the nodes run in (node I{i}
        in its namespace I{i}), or C{None}.
    """

    def __init__(self, size: int = 3, *, config: Sequence[str] = (PARTITION_HANDLING,), reactor: Any = None,
                 network: Optional[_netns.Network] = None) -> None:
        """
        @param size: how many nodes.
        @param config: lines of C{rabbitmq.conf} every node gets.
        @param reactor: for the nodes (the global reactor when C{None}).
        @param network: made namespaces to run the nodes in, at least
            C{size}; on 127.0.0.1 in this namespace when C{None}.
        """
        self.network = network
        self.nodes: List[RabbitMQNode] = [
            RabbitMQNode(config=config, reactor=reactor, host=network.hosts[i], namespace=network.namespaces[i])
            if network is not None else RabbitMQNode(config=config, reactor=reactor) for i in range(size)]
        self.url = self.url_of(range(size))

    def __repr__(self) -> str:
        return f"<RabbitMQCluster of {', '.join(node.name for node in self.nodes)}>"

    def url_of(self, order: Sequence[int]) -> str:
        """
        @param order: node indexes, in the order the URL should list them.
        @return: a C{rabbit://} URL listing those nodes in that order.
        """
        return "rabbit://" + ",".join(f"guest:guest@{self.nodes[i].host}:{self.nodes[i].port}" for i in order) + "/"

    def index_of_port(self, port: int) -> Optional[int]:
        """
        @return: the index of the node listening for AMQP on C{port}, or
            C{None}.
        """
        for index, node in enumerate(self.nodes):
            if node.port == port:
                return index
        return None

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Start every node (at once), then join each node after the first to
        the first one and wait until the first one sees them all running.

        @return: a C{Deferred} firing with this cluster.
        @raise NodeError: (as the failure) when a node does not start or
            join.
        """
        yield defer.gatherResults([node.start() for node in self.nodes], consumeErrors=True).addErrback(
            lambda f: f.value.subFailure)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            yield node.stop_app()
            yield self._ctl(node, "join_cluster", first.name)
            yield node.start_app()
        yield self.wait_running(len(self.nodes))
        return self

    def running(self, node: Optional[RabbitMQNode] = None) -> defer.Deferred:
        """
        @param node: the node to ask (the first by default).
        @return: a C{Deferred} firing with the names of the nodes it sees
            running (an empty list when it does not answer).
        """
        node = node or self.nodes[0]
        d = node.rabbitmqctl("eval", "rabbit_nodes:all_running().")
        d.addTimeout(COMMAND_DEADLINE, node._reactor)

        def parse(result: Any) -> List[str]:
            out, _err, code = result
            if code != 0:
                return []
            text = out.decode(errors="replace").strip().strip("[]")
            return [name.strip().strip("'") for name in text.split(",") if name.strip()]

        return d.addCallbacks(parse, lambda _: [])

    def wait_running(self, count: int, node: Optional[RabbitMQNode] = None,
                     deadline: float = JOIN_DEADLINE) -> defer.Deferred:
        """
        Wait until C{node} (the first by default) sees C{count} nodes
        running.

        @return: a C{Deferred} firing with their names.
        """
        return poll(lambda: self.running(node).addCallback(lambda names: names if len(names) == count else None),
                    f"{count} nodes running in {self}", deadline, 0.5)

    def stop(self) -> defer.Deferred:
        """
        Stop every node (a paused one is let go on first) and remove their
        directories. Safe at any time and more than once.
        """
        return defer.gatherResults([node.stop() for node in self.nodes], consumeErrors=True).addErrback(
            lambda _: None)

    @defer.inlineCallbacks
    def _ctl(self, node: RabbitMQNode, *args: str) -> Any:
        d = node.rabbitmqctl(*args)
        d.addTimeout(COMMAND_DEADLINE, node._reactor)
        out, err, code = yield d
        if code != 0:
            raise NodeError(node._explain(f"rabbitmqctl {' '.join(args)} exited with {code}: "
                                          f"{(err or out).decode(errors='replace').strip()}"))
        return out


def start_cluster(case: Any, size: int = 3, **options: Any) -> defer.Deferred:
    """
    Start a cluster for C{case}, stopped at its cleanup (also when the test
    or the start fails).

    @param options: for L{RabbitMQCluster}.
    @return: a C{Deferred} firing with the started L{RabbitMQCluster}.
    @raise SkipTest: outside CI, when no node can be run here.
    @raise AssertionError: in CI, when no node can be run here.
    """
    check_available()
    cluster = RabbitMQCluster(size, **options)
    case.addCleanup(cluster.stop)
    return cluster.start()


def start_partitionable_cluster(case: Any, size: int = 3, **options: Any) -> defer.Deferred:
    """
    Start a cluster for C{case} whose nodes each run in a network namespace
    of their own (L{tests._netns.start_network}); the nodes are stopped,
    then the namespaces and links removed, at its cleanup (also when the
    test or the start fails).

    @param options: for L{RabbitMQCluster}.
    @return: a C{Deferred} firing with the started L{RabbitMQCluster}, its
        C{network} set.
    @raise SkipTest: outside CI, when no node or no namespace can be made
        here.
    @raise AssertionError: in CI, when no node or no namespace can be made
        here.
    """
    check_available()
    network = _netns.start_network(case, size)
    cluster = RabbitMQCluster(size, network=network, **options)
    case.addCleanup(cluster.stop)
    return cluster.start()
