"""
Tests for L{novasvc.transport.memory}: the transport contract run against
L{MemoryTransport} with a private L{MemoryBroker} and a L{task.Clock} per
test, plus what only the in-memory broker does.
"""

from typing import Any, Callable

from twisted.internet import defer, task
from twisted.trial import unittest

from novasvc.exceptions import TransportError
from novasvc.transport import get_transport
from novasvc.transport.memory import MemoryBroker, MemoryTransport, get_broker
from novasvc.transport.topology import DEFAULT_EXCHANGE, Binding, Exchange, Queue
from novasvc.transport.url import TransportURL
from novasvc.testing.deliveries import Collector
from novasvc.testing.transport_contract import make_transport_contract_tests


class MemoryFixture:
    """
    The contract fixture for L{MemoryTransport}: one private broker and one
    clock per test.
    """

    def __init__(self, case: unittest.TestCase) -> None:
        self.case = case
        self.broker = MemoryBroker()
        self.clock = task.Clock()

    def make_transport(self) -> defer.Deferred:
        transport = MemoryTransport(TransportURL.parse("memory://contract"), broker=self.broker, clock=self.clock)
        transport.start()
        self.case.addCleanup(transport.stop)
        return defer.succeed(transport)

    def message_count(self, queue_name: str) -> defer.Deferred:
        state = self.broker.queues.get(queue_name)
        return defer.succeed(None if state is None else len(state.messages))

    def queue_arguments(self, queue_name: str) -> defer.Deferred:
        return defer.succeed(self.broker.queues[queue_name].spec.arguments_dict())

    def let_expire(self, queue_name: str, milliseconds: int) -> defer.Deferred:
        self.clock.advance(milliseconds / 1000.0 + 0.001)
        return defer.succeed(None)

    def wait_for(self, predicate: Callable[[], Any], what: str) -> defer.Deferred:
        def check(result: Any) -> None:
            if not result:
                raise AssertionError(f"not so (the memory transport is synchronous): {what}")

        return defer.maybeDeferred(predicate).addCallback(check)


class MemoryTransportContractTests(make_transport_contract_tests(MemoryFixture)):  # type: ignore[misc]
    """
    The L{ITransport} contract, for L{MemoryTransport}.
    """


class MemoryBrokerTests(unittest.SynchronousTestCase):
    """
    What the in-memory broker does beyond the contract.
    """

    def test_topic_hash_matches_zero_or_more_words(self) -> None:
        """
        When a queue is bound with C{a.#}, then keys C{a}, C{a.b} and
        C{a.b.c} reach it and C{b.a} does not.
        """
        broker = MemoryBroker()
        transport = MemoryTransport(broker=broker, clock=task.Clock())
        exchange = Exchange("ex", "topic")
        collector = Collector("ack")
        transport.consume(Queue("q", bindings=[Binding(exchange, "a.#")]), collector)
        for key in ("a", "a.b", "a.b.c", "b.a"):
            self.successResultOf(transport.publish(exchange, key, key.encode()))
        self.assertEqual(collector.bodies, [b"a", b"a.b", b"a.b.c"])

    def test_consumers_share_a_queue_round_robin(self) -> None:
        """
        When two consumers consume one queue, then messages alternate
        between them.
        """
        broker = MemoryBroker()
        transport = MemoryTransport(broker=broker, clock=task.Clock())
        first, second = Collector("ack"), Collector("ack")
        transport.consume(Queue("q"), first)
        transport.consume(Queue("q"), second)
        for body in (b"1", b"2", b"3", b"4"):
            self.successResultOf(transport.publish(DEFAULT_EXCHANGE, "q", body))
        self.assertEqual((first.bodies, second.bodies), ([b"1", b"3"], [b"2", b"4"]))

    def test_exchange_type_mismatch_fails_publish(self) -> None:
        """
        When an exchange is published to with another type than it was
        declared with, then the publish fails with TransportError naming it,
        as RabbitMQ's PRECONDITION_FAILED.
        """
        transport = MemoryTransport(broker=MemoryBroker(), clock=task.Clock())
        self.successResultOf(transport.publish(Exchange("ex", "topic"), "k", b"x"))
        failure = self.failureResultOf(transport.publish(Exchange("ex", "fanout"), "k", b"x"), TransportError)
        self.assertIn("'ex'", str(failure.value))

    def test_same_url_name_shares_a_broker(self) -> None:
        """
        When two transports are made from C{memory://name}, then they share
        one process-wide broker, and another name gets another broker.
        """
        first = get_transport("memory://shared-test", reactor=task.Clock())
        second = get_transport("memory://shared-test", reactor=task.Clock())
        other = get_transport("memory://other-test", reactor=task.Clock())
        self.assertIs(first.broker, second.broker)
        self.assertIs(first.broker, get_broker("shared-test"))
        self.assertIsNot(first.broker, other.broker)

    def test_exclusive_queue_deleted_on_stop(self) -> None:
        """
        When a transport consuming an exclusive queue stops, then the queue
        is deleted, as RabbitMQ deletes it with its connection.
        """
        broker = MemoryBroker()
        transport = MemoryTransport(broker=broker, clock=task.Clock())
        transport.consume(Queue("mine", exclusive=True), Collector())
        self.successResultOf(transport.stop())
        self.assertNotIn("mine", broker.queues)
