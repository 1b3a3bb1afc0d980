"""
Tests for quorum queues (oslo.messaging's C{rabbit_quorum_queue}):
L{novasvc.transport.topology.QuorumQueues} and L{topic_queue}, the queues
an RPC server declares with them, and the configuration keys that turn them
on.
"""

import textwrap

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import Config, load_config
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.echo import EchoManager
from novasvc.exceptions import ConfigError
from novasvc.rpc.server import server_queues
from novasvc.rpc.target import Target
from novasvc.service import Service
from novasvc.transport.memory import MemoryTransport
from novasvc.transport.topology import Binding, Exchange, QuorumQueues, topic_queue


class TopologyTests(SynchronousTestCase):
    """
    The queues L{QuorumQueues} and L{topic_queue} describe.
    """

    def test_quorum_topic_queue(self) -> None:
        """
        When a topic queue is made with quorum settings, then it is a
        durable quorum queue with the delivery limit, dead-lettering
        at-least-once to C{<exchange>.dlx}, and it names its dead-letter
        queue C{<exchange>.dlq}, a durable quorum queue bound to that
        exchange with C{#}.
        """
        exchange = Exchange("nova", "topic", durable=True)
        queue = topic_queue("compute", Binding(exchange, "compute"), quorum=QuorumQueues(delivery_limit=5))
        self.assertTrue(queue.durable)
        self.assertEqual(queue.arguments_dict(), {
            "x-queue-type": "quorum", "x-delivery-limit": 5, "x-dead-letter-exchange": "nova.dlx",
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
        dead = queue.dead_letter
        assert dead is not None
        self.assertEqual((dead.name, dead.durable, dead.arguments_dict()), ("nova.dlq", True, {"x-queue-type": "quorum"}))
        self.assertEqual(dead.bindings, (Binding(Exchange("nova.dlx", "topic", durable=True), "#"),))
        self.assertIsNone(dead.dead_letter)

    def test_no_delivery_limit(self) -> None:
        """
        When the delivery limit is 0, then no C{x-delivery-limit} is
        declared (the broker's default applies) and dead-lettering stays.
        """
        arguments = QuorumQueues(delivery_limit=0).arguments("openstack")
        self.assertNotIn("x-delivery-limit", arguments)
        self.assertEqual(arguments["x-dead-letter-exchange"], "openstack.dlx")

    def test_classic_topic_queue(self) -> None:
        """
        When a topic queue is made without quorum settings, then it is the
        classic queue it always was: no arguments, durable as asked, no
        dead-letter queue.
        """
        binding = Binding(Exchange("openstack"), "t")
        for durable in (False, True):
            queue = topic_queue("t", binding, durable)
            self.assertEqual((queue.durable, queue.arguments, queue.dead_letter), (durable, (), None))

    def test_server_queues(self) -> None:
        """
        When an RPC server's queues are made with quorum settings, then the
        topic and server queues are quorum queues on a durable control
        exchange (the target's own exchange naming the dead-letter ones),
        and the fanout queue stays a classic one with its C{x-expires}.
        """
        topic, server, fanout = server_queues(Target(topic="t", server="h", exchange="nova"), durable_queues=False,
                                              fanout_suffix="x", quorum=QuorumQueues())
        for queue in (topic, server):
            self.assertEqual(queue.arguments_dict()["x-queue-type"], "quorum")
            self.assertEqual(queue.arguments_dict()["x-delivery-limit"], 20)
            self.assertTrue(queue.durable)
            self.assertTrue(queue.bindings[0].exchange.durable)
            self.assertEqual(queue.bindings[0].exchange.name, "nova")
            self.assertEqual(queue.dead_letter.name, "nova.dlq")
        self.assertEqual((topic.name, server.name), ("t", "t.h"))
        self.assertEqual(fanout.arguments_dict(), {"x-expires": 1800000})
        self.assertIsNone(fanout.dead_letter)
        self.assertFalse(fanout.durable)

    def test_server_queues_classic_unchanged(self) -> None:
        """
        When no quorum settings are given, then the server's queues are as
        before: classic, durable as C{durable_queues} says.
        """
        for durable in (False, True):
            topic, server, _ = server_queues(Target(topic="t", server="h"), durable_queues=durable)
            self.assertEqual([(q.durable, q.arguments, q.dead_letter) for q in (topic, server)],
                             [(durable, (), None)] * 2)
            self.assertEqual(topic.bindings[0].exchange.durable, durable)


class ConfigurationTests(SynchronousTestCase):
    """
    C{rabbit_quorum_queue} and C{rabbit_quorum_delivery_limit}, and the
    TLS keys, in the configuration.
    """

    def load(self, text: str) -> Config:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return load_config(path, environ={})

    def test_defaults(self) -> None:
        """
        When nothing is said, then quorum queues and TLS are off, and the
        delivery limit is 20.
        """
        config = Config()
        self.assertEqual((config.rabbit_quorum_queue, config.rabbit_quorum_delivery_limit, config.ssl,
                          config.ssl_ca_file, config.ssl_cert_file, config.ssl_key_file),
                         (False, 20, False, None, None, None))
        self.assertIsNone(QuorumQueues.from_config(config))

    def test_quorum_makes_queues_durable(self) -> None:
        """
        When the file turns quorum queues on, then C{durable_queues} is true
        too (quorum queues are durable, and so must the exchange be for
        every peer), even when the file says false.
        """
        config = self.load("""
            rabbit_quorum_queue: true
            durable_queues: false
            rabbit_quorum_delivery_limit: 3
        """)
        self.assertTrue(config.durable_queues)
        self.assertEqual(QuorumQueues.from_config(config), QuorumQueues(3))

    def test_tls_keys(self) -> None:
        """
        When the file gives the TLS keys, then they are read as given.
        """
        config = self.load("""
            ssl: true
            ssl_ca_file: /etc/novasvc/ca.pem
            ssl_cert_file: /etc/novasvc/me.pem
            ssl_key_file: null
        """)
        self.assertEqual((config.ssl, config.ssl_ca_file, config.ssl_cert_file, config.ssl_key_file),
                         (True, "/etc/novasvc/ca.pem", "/etc/novasvc/me.pem", None))

    def test_bad_values(self) -> None:
        """
        When a new key has a value of the wrong type, then the file is
        refused naming the key and what was expected.
        """
        for text, expected in (("rabbit_quorum_queue: 1", "rabbit_quorum_queue: expected true or false"),
                               ("rabbit_quorum_delivery_limit: -1",
                                "rabbit_quorum_delivery_limit: expected an integer >= 0"),
                               ("ssl: 'yes'", "ssl: expected true or false"),
                               ("ssl_ca_file: ''", "ssl_ca_file: expected a file name or null"),
                               ("ssl_key_file: 3", "ssl_key_file: expected a file name or null")):
            e = self.assertRaises(ConfigError, self.load, text)
            self.assertIn(expected, str(e))


class ServiceTests(SynchronousTestCase):
    """
    A service built from a configuration with quorum queues on.
    """

    def test_service_declares_quorum_queues(self) -> None:
        """
        When a service is created from a configuration with
        C{rabbit_quorum_queue}, then its RPC server's topic queues are
        quorum queues with the configured delivery limit.
        """
        clock = task.Clock()
        config = Config(host="h1", rabbit_quorum_queue=True, durable_queues=True, rabbit_quorum_delivery_limit=4)
        service = Service.create(manager=EchoManager, config=config, clock=clock, store=MemoryServiceStore(),
                                 transport=MemoryTransport(clock=clock))
        topic, server, fanout = service.rpcserver.queues
        self.assertEqual([q.arguments_dict().get("x-delivery-limit") for q in (topic, server, fanout)], [4, 4, None])
        self.assertEqual(topic.dead_letter.name, "openstack.dlq")
