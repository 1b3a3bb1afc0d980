"""
Tests for L{tests._rabbitmq_node}: a node of a test's own starts, goes away
and comes back, and is gone after cleanup.
"""

import os
import socket
from typing import Any

import pika
from twisted.internet import defer, threads
from twisted.trial import unittest

from tests._rabbitmq_node import RabbitMQNode, check_available, free_ports
from tests._services import process_alive


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _amqp_round_trip(port: int) -> bytes:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    try:
        channel = connection.channel()
        channel.queue_declare("probe")
        channel.basic_publish("", "probe", b"hello")
        for _method, _properties, body in channel.consume("probe", inactivity_timeout=10):
            return body
    finally:
        connection.close()
    return b""


class RabbitMQNodeTests(unittest.TestCase):
    """
    A node's life, from start to cleanup.
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_life(self) -> Any:
        """
        When a node is started with extra configuration, then it serves AMQP
        on its own port with that configuration; after stop_app nothing
        listens there and its queues are gone after start_app; after stop
        its process and directory are gone, and the shared node still runs.
        """
        check_available()
        shared = _accepts(5672)
        node = RabbitMQNode(config=["channel_max = 7"])
        self.addCleanup(node.stop)
        self.assertNotEqual(node.port, 5672)
        yield node.start()
        self.assertEqual((yield threads.deferToThread(_amqp_round_trip, node.port)), b"hello")
        out, err, code = yield node.rabbitmqctl("eval", "application:get_env(rabbit, channel_max).")
        self.assertEqual((code, out.strip()), (0, b"{ok,7}"))
        yield node.stop_app()
        self.assertFalse(_accepts(node.port))
        yield node.start_app()
        out, err, code = yield node.rabbitmqctl("list_queues", "-q", "name")
        self.assertEqual((code, out.split()), (0, []))
        pid = node._pid()
        yield node.stop()
        self.assertFalse(os.path.exists(node.directory))
        self.assertFalse(process_alive(pid))
        self.assertEqual(_accepts(5672), shared)
        yield node.stop()

    def test_free_ports(self) -> None:
        """
        When consecutive free ports are asked for, then they follow each
        other and none is the shared node's.
        """
        ports = free_ports(4, consecutive=True)
        self.assertEqual(ports, list(range(ports[0], ports[0] + 4)))
        self.assertFalse({5672, 25672, 35672} & set(ports))
