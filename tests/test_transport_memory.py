"""
Tests for L{novasvc.transport.memory}: the transport contract run against
L{MemoryTransport} with a private L{MemoryBroker} and a L{task.Clock} per
test, plus what only the in-memory broker does.
"""

from typing import Any, Callable

from twisted.internet import defer, task
from twisted.trial import reporter, unittest

from novasvc._phase import Phase
from novasvc.exceptions import DisconnectedError, TransportError
from novasvc.metrics import Recorder
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


class MemoryOutageFixture(MemoryFixture):
    """
    L{MemoryFixture} with the outage methods: the broker goes away and
    comes back at once.
    """

    def broker_away(self) -> defer.Deferred:
        self.broker.go_away()
        return defer.succeed(None)

    def broker_back(self) -> defer.Deferred:
        self.broker.come_back()
        return defer.succeed(None)


class MemoryTransportContractTests(make_transport_contract_tests(MemoryOutageFixture)):  # type: ignore[misc]
    """
    The L{ITransport} contract, for L{MemoryTransport}.
    """


class ContractFixtureTests(unittest.SynchronousTestCase):
    """
    What the contract suite asks of a fixture.
    """

    def test_fixture_without_outages_skips_them(self) -> None:
        """
        When a fixture has no C{broker_away}/C{broker_back}, then the outage
        tests are skipped, and the others still run.
        """
        suite = make_transport_contract_tests(MemoryFixture)
        result = reporter.TestResult()
        for name in ("test_stop_while_away", "test_start_after_stop"):
            suite(name).run(result)
        self.assertEqual(([str(reason) for _, reason in result.skips], result.successes),
                         (["the fixture cannot take the broker away"], 1))


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


class MemoryOutageTests(unittest.SynchronousTestCase):
    """
    What the memory transport does while its broker is away
    (L{MemoryBroker.go_away}) beyond the contract, all on a clock.
    """

    def setUp(self) -> None:
        self.broker = MemoryBroker()
        self.clock = task.Clock()
        self.recorder = Recorder()

    def transport(self, **options: Any) -> MemoryTransport:
        return MemoryTransport(broker=self.broker, clock=self.clock, metrics=self.recorder, **options)

    def test_publish_waits_publish_wait_seconds(self) -> None:
        """
        When a publish is made while the broker is away, then it fails with
        DisconnectedError once C{publish_wait} seconds have passed (at once
        when it is 0), and no timer is left.
        """
        waiting, impatient = self.transport(publish_wait=3), self.transport(publish_wait=0)
        self.broker.go_away("the broker restarts")
        published = waiting.publish(DEFAULT_EXCHANGE, "q", b"x")
        declared = waiting.declare_queue(Queue("q"))
        self.clock.advance(2.9)
        self.assertNoResult(published)
        self.clock.advance(0.1)
        failure = self.failureResultOf(published, DisconnectedError)
        self.assertIn("within 3 seconds: the broker restarts", str(failure.value))
        self.failureResultOf(declared, DisconnectedError)
        self.failureResultOf(impatient.publish(DEFAULT_EXCHANGE, "q", b"x"), DisconnectedError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_cancels_every_timer(self) -> None:
        """
        When a transport with a publish and a declaration waiting for the
        broker stops, then its stop has fired with no timer left, and both
        fail with TransportError.
        """
        transport = self.transport()
        self.broker.go_away()
        published = transport.publish(DEFAULT_EXCHANGE, "q", b"x")
        declared = transport.declare_queue(Queue("q"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.successResultOf(transport.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertNotIsInstance(self.failureResultOf(published, TransportError).value, DisconnectedError)
        self.failureResultOf(declared, TransportError)

    def test_connection_scoped_queues_gone(self) -> None:
        """
        When the broker goes away, then an exclusive queue and an
        auto-delete queue whose last consumer was on the lost connection are
        deleted with their messages, a plain queue keeps its messages, and
        all three are declared and consumed again on the broker's return.
        """
        transport = self.transport()
        names = ("exclusive", "auto", "plain")
        queues = [Queue("exclusive", exclusive=True), Queue("auto", auto_delete=True), Queue("plain")]
        for queue in queues:
            transport.consume(queue, Collector())
            self.successResultOf(transport.publish(DEFAULT_EXCHANGE, queue.name, b"x"))
        self.broker.go_away()
        self.assertEqual(sorted(self.broker.queues), ["plain"])
        self.assertEqual(len(self.broker.queues["plain"].messages), 1)
        self.broker.come_back()
        self.assertEqual(sorted(self.broker.queues), sorted(names))
        self.assertEqual([len(self.broker.queues[n].consumers) for n in names], [1, 1, 1])

    def test_reconnections_counted(self) -> None:
        """
        When the broker goes away and comes back twice, then the recorder
        counts two broker reconnections, and none for the first connection
        after a stop and a start.
        """
        transport = self.transport()
        for _ in range(2):
            self.broker.go_away()
            self.broker.come_back()
        self.assertEqual(self.recorder.broker_reconnects, 2)
        self.successResultOf(transport.stop())
        transport.start()
        self.assertEqual((transport.is_connected, self.recorder.broker_reconnects), (True, 2))

    def test_start_and_stop_while_away(self) -> None:
        """
        When a transport is stopped while the broker is away, then it does
        not connect on the broker's return; one started while it is away
        connects on its return.
        """
        stopped, started = self.transport(), self.transport()
        self.successResultOf(started.stop())
        self.broker.go_away()
        self.successResultOf(stopped.stop())
        started.start()
        self.assertEqual((started.phase, started.is_connected), (Phase.RUNNING, False))
        self.broker.come_back()
        self.assertEqual((stopped.is_connected, started.is_connected), (False, True))

    def test_delete_queue_while_away(self) -> None:
        """
        When a consumed queue is deleted while the broker is away, then its
        consumer is cancelled and not restored on the broker's return, and
        the queue itself is left alone (as the AMQP transports).
        """
        transport = self.transport()
        consumer = transport.consume(Queue("kept"), Collector())
        self.broker.go_away()
        self.successResultOf(transport.delete_queue("kept"))
        self.assertTrue(consumer.cancelled)
        self.broker.come_back()
        self.assertEqual(self.broker.queues["kept"].consumers, [])
