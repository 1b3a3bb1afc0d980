# -*- test-case-name: tests.test_transport_memory,tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
The parts of the transport contract about the transport's own lifecycle
(L{LifecycleContract}) and about the broker going away and coming back
(L{OutageContract}): mixins of the test case
L{novasvc.testing.transport_contract.make_transport_contract_tests} builds
(they use that case's C{fixture}, C{_consume} and C{_wait_count}).

The outage tests need two more methods of the fixture, and are skipped
when it lacks them:

  - C{broker_away()}: a C{Deferred} firing once every transport the fixture
    made has lost its connection and none can connect again;
  - C{broker_back()}: a C{Deferred} firing once the broker can be reached
    again and every transport the fixture made that is not stopped has
    connected again.
"""

from typing import Any

from twisted.internet import defer

from novasvc._phase import Phase
from novasvc.exceptions import DisconnectedError, TransportError
from novasvc.testing.deliveries import Collector, unique
from novasvc.transport.topology import DEFAULT_EXCHANGE, Queue

__all__ = ["LifecycleContract", "OutageContract"]


class LifecycleContract:
    """
    What every L{novasvc.interfaces.ITransport} does when started and
    stopped out of turn (the phases of L{novasvc._phase}).
    """

    fixture: Any

    @defer.inlineCallbacks
    def test_second_stop_waits_for_the_first(self) -> Any:
        """
        When a transport is stopped twice before the first stop fired, then
        both fire with C{None}, and a stop once stopped fires at once.
        """
        transport = yield self.fixture.make_transport()
        first, second = transport.stop(), transport.stop()
        self.assertEqual(((yield first), (yield second)), (None, None))
        self.assertIs(transport.phase, Phase.STOPPED)
        self.assertIsNone(self.successResultOf(transport.stop()))  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_start_after_stop(self) -> Any:
        """
        When a stopped transport is started again, then it connects, and a
        consumer made then receives what is published.
        """
        transport = yield self.fixture.make_transport()
        yield transport.stop()
        transport.start()
        self.assertIs(transport.phase, Phase.RUNNING)
        yield self.fixture.wait_for(lambda: transport.is_connected, "connected again")
        queue = Queue(unique("again"))
        collector = Collector("ack")
        yield self._consume(transport, queue, collector)  # type: ignore[attr-defined]
        yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"again")
        yield self.fixture.wait_for(lambda: collector.bodies == [b"again"], "the message after the restart")

    @defer.inlineCallbacks
    def test_consume_after_stop_cancelled(self) -> Any:
        """
        When a stopped transport is asked to consume, then the consumer is
        cancelled at once: its C{whenActive} fails with C{CancelledError}
        (nothing waits for a start that may never come).
        """
        transport = yield self.fixture.make_transport()
        yield transport.stop()
        consumer = transport.consume(Queue(unique("too-late")), Collector())
        yield self.assertFailure(consumer.whenActive(), defer.CancelledError)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_start_while_stopping_waits(self) -> Any:
        """
        When a transport is started while its stop is under way, then it
        runs again once the stop has fired; when it is stopped once more
        before that, the start waiting is dropped and it stays stopped.
        """
        transport = yield self.fixture.make_transport()
        stopping = transport.stop()
        transport.start()
        yield stopping
        yield self.fixture.wait_for(lambda: transport.is_connected, "connected after the stop")
        self.assertIs(transport.phase, Phase.RUNNING)
        stopping = transport.stop()
        transport.start()
        stopped = transport.stop()
        yield stopping
        yield stopped
        self.assertIs(transport.phase, Phase.STOPPED)
        self.assertIs(transport.is_connected, False)


class OutageContract:
    """
    What every L{novasvc.interfaces.ITransport} does while its broker is
    away and once it is back.
    """

    fixture: Any

    def _outage_fixture(self) -> Any:
        if not hasattr(self.fixture, "broker_away"):
            self.skipTest("the fixture cannot take the broker away")  # type: ignore[attr-defined]
        return self.fixture

    @defer.inlineCallbacks
    def test_unsettled_redelivered_after_return(self) -> Any:
        """
        When the broker goes away with a delivery unsettled, then
        C{is_connected} is C{False}, acking that delivery does nothing, a
        publish waits; once the broker is back the publish succeeds and the
        consumer gets both messages, the first marked redelivered.
        """
        fixture = self._outage_fixture()
        transport = yield fixture.make_transport()
        queue = Queue(unique("outage"))
        collector = Collector()
        yield self._consume(transport, queue, collector)  # type: ignore[attr-defined]
        yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"before")
        yield fixture.wait_for(lambda: collector.deliveries, "the first delivery")
        yield fixture.broker_away()
        self.assertIs(transport.is_connected, False)
        collector.deliveries[0].ack()  # stale: its message is back in the queue
        held = transport.publish(DEFAULT_EXCHANGE, queue.name, b"while away", mandatory=True)
        self.assertNoResult(held)  # type: ignore[attr-defined]
        yield fixture.broker_back()
        self.assertIs(transport.is_connected, True)
        self.assertIsNone((yield held))
        yield fixture.wait_for(lambda: len(collector.deliveries) == 3, "the two messages after the return")
        again = collector.deliveries[1:]
        self.assertEqual(sorted((d.body, d.redelivered) for d in again),
                         [(b"before", True), (b"while away", False)])
        for delivery in again:
            delivery.ack()
        yield self._wait_count(queue.name, 0)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_consume_and_declare_while_away(self) -> Any:
        """
        When a queue is consumed and another declared while the broker is
        away, then neither is done before the broker is back, and both are
        once it is: the consumer receives, the declared queue keeps a
        message.
        """
        fixture = self._outage_fixture()
        transport = yield fixture.make_transport()
        yield fixture.broker_away()
        consumed, declared = Queue(unique("late")), Queue(unique("late-declared"))
        collector = Collector("ack")
        active = transport.consume(consumed, collector).whenActive()
        declaring = transport.declare_queue(declared)
        self.assertNoResult(active)  # type: ignore[attr-defined]
        self.assertNoResult(declaring)  # type: ignore[attr-defined]
        yield fixture.broker_back()
        yield active
        yield declaring
        yield transport.publish(DEFAULT_EXCHANGE, consumed.name, b"c", mandatory=True)
        yield transport.publish(DEFAULT_EXCHANGE, declared.name, b"d", mandatory=True)
        yield fixture.wait_for(lambda: collector.bodies == [b"c"], "the consumed message")
        yield self._wait_count(declared.name, 1)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_stop_while_away(self) -> Any:
        """
        When a transport stops while the broker is away, then the publish
        and the declaration waiting fail with L{TransportError} (not
        L{DisconnectedError}: sending again will not help), a consumer that
        never became active fails its C{whenActive} with C{CancelledError},
        and the transport stays disconnected once the broker is back.
        """
        fixture = self._outage_fixture()
        transport = yield fixture.make_transport()
        yield fixture.broker_away()
        published = transport.publish(DEFAULT_EXCHANGE, unique("q"), b"x")
        declared = transport.declare_queue(Queue(unique("never")))
        active = transport.consume(Queue(unique("never-consumed")), Collector()).whenActive()
        yield transport.stop()
        for waiting in (published, declared):
            error = yield self.assertFailure(waiting, TransportError)  # type: ignore[attr-defined]
            self.assertNotIsInstance(error, DisconnectedError)  # type: ignore[attr-defined]
        yield self.assertFailure(active, defer.CancelledError)  # type: ignore[attr-defined]
        yield fixture.broker_back()
        self.assertIs(transport.is_connected, False)
