"""
Tests for quorum queues (oslo.messaging's C{rabbit_quorum_queue}):
L{novasvc.transport.topology.QuorumQueues} and L{topic_queue}, the queues
an RPC server declares with them, and the configuration keys that turn them
on.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Tuple

import pika
from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import Config, load_config
from novasvc.db.memory import MemoryServiceStore
from novasvc.examples.echo import EchoManager
from novasvc.exceptions import ConfigError
from novasvc.core.manager import Manager
from novasvc.rpc.client import RPCClient
from novasvc.rpc.server import server_queues
from novasvc.rpc.target import Target
from novasvc.core.service import Service
from novasvc.transport import AMQPTransport
from novasvc.transport.memory import MemoryTransport
from novasvc.transport.topology import Binding, Exchange, QuorumQueues, topic_queue
from tests._shared_node import shared_node
from tests._services import poll


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

    def test_oslo_quorum_arguments_differ(self) -> None:
        """
        When oslo.messaging declares a quorum topic queue with the same
        delivery limit, then its arguments lack the dead-letter ones that
        novasvc declares, and have the rest: the broker would refuse one of
        the two declarations of a shared queue.
        """
        from oslo_messaging._drivers.impl_rabbit import QuorumMemConfig, _get_queue_arguments

        oslo = _get_queue_arguments(False, 0, True, QuorumMemConfig(20, 0, 0), False)
        ours = QuorumQueues(20).arguments("openstack")
        self.assertEqual(set(ours) - set(oslo),
                         {"x-dead-letter-exchange", "x-dead-letter-strategy", "x-overflow"})
        self.assertEqual(oslo, {key: ours[key] for key in oslo})

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


class PoisonManager(Manager):
    """
    A manager with a poison method, for L{PoisonBrokerTests}: C{poison}
    kills the process handling it, C{record} appends its value to the file
    C{$NOVASVC_TEST_RECORD}; each call is written there first.
    """

    topic = "poisoned"
    target = Target(version="1.0")

    def _write(self, line: str) -> None:
        with open(os.environ["NOVASVC_TEST_RECORD"], "a") as f:
            f.write(line + "\n")

    def poison(self, ctxt: Any) -> None:
        """
        Die at once (as a worker does on a segfault or the OOM killer):
        nothing is acknowledged.
        """
        self._write("poison")
        os.kill(os.getpid(), signal.SIGKILL)

    def record(self, ctxt: Any, value: int) -> int:
        """
        @return: C{value}, written to the record file.
        """
        self._write(f"record {value}")
        return value


def _consume_all(port: int, vhost: str, queue: str) -> List[Tuple[bytes, Dict[str, Any]]]:
    """
    @return: every message of C{queue} on the node at C{port}, acked, as
        (body, headers) pairs.
    """
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, vhost))
    try:
        channel = connection.channel()
        messages = []
        for method, properties, body in channel.consume(queue, inactivity_timeout=1):
            if method is None:
                break
            messages.append((body, dict(properties.headers or {})))
            channel.basic_ack(method.delivery_tag)
        return messages
    finally:
        connection.close()


def _ready_counts(port: int, vhost: str, queues: Tuple[str, ...]) -> List[int]:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, vhost))
    try:
        channel = connection.channel()
        return [channel.queue_declare(name, passive=True).method.message_count for name in queues]
    finally:
        connection.close()


class PoisonBrokerTests(unittest.TestCase):
    """
    Fault test: a worker (C{twistd novasvc}) on a RabbitMQ node of the
    test process's own (L{tests._shared_node}), in a vhost of the test's
    own, its topic queues quorum queues with a delivery limit of 2.
    """

    timeout = 240
    LIMIT = 2

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.node, self.url = yield shared_node(self)
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.record = os.path.join(self.workdir, "record")
        open(self.record, "w").close()
        self.config = os.path.join(self.workdir, "novasvc.yaml")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""\
                poisoned_manager: tests.test_transport_quorum.PoisonManager
                transport_url: {self.node.url}{self.url.virtual_host}
                host: w1
                rabbit_quorum_queue: true
                rabbit_quorum_delivery_limit: {self.LIMIT}
                rpc_max_inflight: 1
                report_interval: 0
                periodic_enable: false
                database:
                  connection: sqlite:///{self.workdir}/services.sqlite
            """))
        self.workers = 0

    def start_worker(self) -> subprocess.Popen:
        """
        Start C{twistd -n novasvc} with the test's configuration; it is
        killed at cleanup if still running.
        """
        self.workers += 1
        log = open(os.path.join(self.workdir, f"worker-{self.workers}.log"), "wb")
        self.addCleanup(log.close)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": here, "NOVASVC_TEST_RECORD": self.record}
        process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "twistd"), "-n", "--pidfile=", "novasvc",
             f"--config={self.config}"], cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)

        def reap() -> None:
            if process.poll() is None:
                process.kill()
                process.wait()

        self.addCleanup(reap)
        return process

    def worker_log(self) -> str:
        texts = []
        for number in range(1, self.workers + 1):
            with open(os.path.join(self.workdir, f"worker-{number}.log"), errors="replace") as f:
                texts.append(f.read())
        return "\n".join(texts)

    def lines(self) -> List[str]:
        with open(self.record) as f:
            return f.read().splitlines()

    def ready(self, *queues: str) -> defer.Deferred:
        """
        @return: a C{Deferred} firing with the number of ready messages in
            each queue (C{queue.declare} passive, which the broker answers
            from the queue itself, unlike the statistics of
            C{rabbitmqctl list_queues}).
        """
        return threads.deferToThread(_ready_counts, self.node.port, self.url.virtual_host, queues)

    @defer.inlineCallbacks
    def queue_types(self) -> Any:
        out, err, code = yield self.node.rabbitmqctl("list_queues", "--silent", "-p", self.url.virtual_host, "name", "type")
        self.assertEqual(code, 0, err)
        return dict(line.split() for line in out.decode().splitlines() if line.strip())

    @defer.inlineCallbacks
    def test_poison_cast_dead_lettered(self) -> Any:
        """
        When a cast kills every worker that handles it, and each dead
        worker is replaced, then the cast is handled exactly limit + 1 (3)
        times, lands in C{openstack.dlq} with C{delivery_limit} as its
        C{x-first-death-reason}, and the casts sent behind it are then
        handled, in order, by the next worker; a body the worker cannot read
        lands there too, as C{rejected}; the topic queues are quorum queues
        and end empty.
        """
        worker = self.start_worker()
        yield poll(lambda: "is ready" in self.worker_log(), "the first worker is ready", interval=0.1)
        transport = AMQPTransport(self.url, reactor=reactor, retry_interval=0.05)
        self.addCleanup(transport.stop)
        transport.start()
        client = RPCClient(transport, Target(topic="poisoned"), durable_queues=True, clock=reactor)
        yield client.cast({}, "poison")
        for value in range(5):
            yield client.cast({}, "record", value=value)
        # Each worker handling the poison dies; a new one replaces it, as a
        # supervisor would. The limit lets it be delivered LIMIT + 1 times.
        for _death in range(self.LIMIT + 1):
            yield poll(lambda: worker.poll() is not None, "the worker died", interval=0.05)
            self.assertEqual(worker.returncode, -signal.SIGKILL, self.worker_log())
            worker = self.start_worker()
        yield poll(lambda: len(self.lines()) == self.LIMIT + 1 + 5, "the casts behind the poison were handled",
                   interval=0.05)
        self.assertEqual(self.lines(), ["poison"] * (self.LIMIT + 1) + [f"record {v}" for v in range(5)])

        # A body the server cannot read is rejected, so dead-lettered too.
        yield transport.publish(Exchange("openstack", "topic", durable=True), "poisoned", b"not json")
        yield poll(lambda: self.ready("openstack.dlq").addCallback(lambda counts: counts == [2]),
                   "the poison and the unreadable body are in openstack.dlq", interval=0.1)
        dead = yield threads.deferToThread(_consume_all, self.node.port, self.url.virtual_host, "openstack.dlq")
        (garbage, rejected), (poison, headers) = sorted(dead, key=lambda message: message[0] != b"not json")
        self.assertEqual(json.loads(json.loads(poison)["oslo.message"])["method"], "poison")
        self.assertEqual((headers["x-first-death-reason"], headers["x-first-death-queue"]),
                         ("delivery_limit", "poisoned"))
        self.assertEqual((garbage, rejected["x-first-death-reason"]), (b"not json", "rejected"))
        counts = yield self.ready("poisoned", "poisoned.w1", "openstack.dlq")
        self.assertEqual(counts, [0, 0, 0])
        types = yield self.queue_types()
        self.assertEqual([types[name] for name in ("poisoned", "poisoned.w1", "openstack.dlq")], ["quorum"] * 3)
        # One fanout queue per worker (the killed ones' wait for x-expires).
        self.assertEqual([kind for name, kind in types.items() if name.startswith("poisoned_fanout_")],
                         ["classic"] * self.workers)
        self.assertIsNone(worker.poll(), self.worker_log())


def _die_holding(port: int, vhost: str, queue: str, times: int) -> List[List[Tuple[bytes, Any]]]:
    """
    Consume C{queue} C{times} times, each time taking every ready message
    (prefetch 10) and closing the connection without acking any, as a
    worker killed with several requests in flight.

    @return: for each time, the (body, C{x-delivery-count}) received.
    """
    rounds = []
    for _ in range(times):
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, vhost))
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=10)
            got = []
            for method, properties, body in channel.consume(queue, inactivity_timeout=1):
                if method is None:
                    break
                got.append((body, (properties.headers or {}).get("x-delivery-count")))
            rounds.append(got)
        finally:
            connection.close()
    return rounds


class InFlightBrokerTests(unittest.TestCase):
    """
    Fault test: what the broker counts against the delivery limit of the
    quorum queues novasvc declares, in a vhost of the test's own on the
    process's node (L{tests._shared_node}).
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_in_flight_messages_counted(self) -> Any:
        """
        When a consumer holding two messages (a poison one and the one
        behind it) dies without acking them limit + 1 times, then both are
        dead-lettered with C{delivery_limit}: every delivery that ends
        without an ack counts, whatever request caused the death. When the
        same happens six times to a message of a classic durable queue
        (C{durable_queues}), then it is delivered every time: classic
        queues have no limit.
        """
        node, url = yield shared_node(self)
        quorum = QuorumQueues(delivery_limit=2)
        exchange = Exchange("openstack", "topic", durable=True)
        queue = topic_queue("t", Binding(exchange, "t"), quorum=quorum)
        classic = topic_queue("c", Binding(exchange, "c"), durable=True)

        def declare_and_publish() -> None:
            connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", node.port, url.virtual_host))
            try:
                channel = connection.channel()
                channel.confirm_delivery()
                dead = queue.dead_letter
                for binding in dead.bindings:
                    channel.exchange_declare(binding.exchange.name, binding.exchange.type, durable=True)
                channel.queue_declare(dead.name, durable=True, arguments=dead.arguments_dict())
                channel.queue_bind(dead.name, dead.bindings[0].exchange.name, "#")
                channel.exchange_declare("openstack", "topic", durable=True)
                channel.queue_declare("t", durable=True, arguments=queue.arguments_dict())
                channel.queue_bind("t", "openstack", "t")
                for body in (b"poison", b"behind"):
                    channel.basic_publish("openstack", "t", body, pika.BasicProperties(delivery_mode=2))
                channel.queue_declare(classic.name, durable=classic.durable, arguments=classic.arguments_dict())
                channel.basic_publish("", classic.name, b"poison", pika.BasicProperties(delivery_mode=2))
            finally:
                connection.close()

        yield threads.deferToThread(declare_and_publish)
        rounds = yield threads.deferToThread(_die_holding, node.port, url.virtual_host, "t", 4)
        self.assertEqual(rounds, [[(b"poison", None), (b"behind", None)], [(b"poison", 1), (b"behind", 1)],
                                  [(b"poison", 2), (b"behind", 2)], []])
        yield poll(lambda: threads.deferToThread(_ready_counts, node.port, url.virtual_host, ("openstack.dlq",))
                   .addCallback(lambda counts: counts == [2]), "the two messages are in openstack.dlq", interval=0.1)
        dead = yield threads.deferToThread(_consume_all, node.port, url.virtual_host, "openstack.dlq")
        self.assertEqual(sorted((body, headers["x-first-death-reason"]) for body, headers in dead),
                         [(b"behind", "delivery_limit"), (b"poison", "delivery_limit")])
        rounds = yield threads.deferToThread(_die_holding, node.port, url.virtual_host, "c", 6)
        self.assertEqual([[body for body, _ in got] for got in rounds], [[b"poison"]] * 6)


class BrokerRestartTests(unittest.TestCase):
    """
    Fault test: what each queue setting keeps across a restart of the
    broker (the process's node, L{tests._shared_node}, its application stopped and
    started).
    """

    timeout = 180

    @defer.inlineCallbacks
    def test_restart(self) -> Any:
        """
        When a request waits in the topic queue of a server's queues made
        with each setting and the broker restarts, then the default queue
        is gone with its request, and the C{durable_queues} and
        C{rabbit_quorum_queue} ones are back with theirs.
        """
        node, url = yield shared_node(self)
        transport = AMQPTransport(url, reactor=reactor, retry_interval=0.05,
                                  retry_max=0.5, retry_jitter=0)
        self.addCleanup(transport.stop)
        transport.start()
        settings = {"classic": {}, "durable": {"durable_queues": True}, "quorum": {"quorum": QuorumQueues()}}
        for name, options in settings.items():
            # One control exchange per setting: the exchange's durability
            # follows the setting.
            topic, *_ = server_queues(Target(topic=f"t_{name}", server="h"), f"ex_{name}", **options)
            consumer = transport.consume(topic, lambda delivery: None)
            yield consumer.whenActive()
            yield consumer.cancel()
            yield transport.publish(topic.bindings[0].exchange, topic.name, b"waiting")
        before = yield threads.deferToThread(_ready_or_gone, node.port, url.virtual_host, [f"t_{name}" for name in settings])
        self.assertEqual(before, [1, 1, 1])
        yield node.stop_app()
        yield node.start_app()
        after = yield threads.deferToThread(_ready_or_gone, node.port, url.virtual_host, [f"t_{name}" for name in settings])
        self.assertEqual(after, [None, 1, 1])


def _ready_or_gone(port: int, vhost: str, queues: List[str]) -> List[Any]:
    """
    @return: the ready messages of each queue, C{None} for a queue that
        does not exist.
    """
    counts: List[Any] = []
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, vhost))
    try:
        for name in queues:
            channel = connection.channel()
            try:
                counts.append(channel.queue_declare(name, passive=True).method.message_count)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker as e:
                if e.reply_code != 404:
                    raise
                counts.append(None)
    finally:
        connection.close()
    return counts
