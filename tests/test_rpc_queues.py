"""
Tests for L{novasvc.rpc._queues}.
"""

from twisted.trial.unittest import SynchronousTestCase

from novasvc.rpc.server import server_queues
from novasvc.rpc.target import Target
from novasvc.transport.topology import Binding, Exchange


class ServerQueuesTests(SynchronousTestCase):
    """
    The three queues of an RPC server, from its target and options.
    """

    def test_options(self) -> None:
        """
        When durable_queues, a control exchange and a TTL are given, then the
        topic queues and exchange are durable on that exchange and the fanout
        queue has that x-expires; a TTL of 0 gives no x-expires.
        """
        topic, direct, fanout = server_queues(Target(topic="t", server="h"), "nova", durable_queues=True,
                                              transient_queues_ttl=60)
        nova = Exchange("nova", "topic", durable=True)
        self.assertEqual((topic.durable, direct.durable, fanout.durable), (True, True, False))
        self.assertEqual(topic.bindings, (Binding(nova, "t"),))
        self.assertEqual(fanout.arguments_dict(), {"x-expires": 60000})
        queues = server_queues(Target(topic="t", server="h", exchange="own"), transient_queues_ttl=0)
        self.assertEqual(queues[0].bindings[0].exchange.name, "own")
        self.assertEqual(queues[2].arguments_dict(), {})
