# -*- test-case-name: tests.test_transport_memory,tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
The part of the transport contract about
L{novasvc.interfaces.ITransport.declare_queue}: a mixin of the test case
L{novasvc.testing.transport_contract.make_transport_contract_tests} builds
(it uses that case's C{fixture}, C{_consume} and C{_wait_count}).
"""

from typing import Any

from twisted.internet import defer

from novasvc.exceptions import TransportError
from novasvc.testing.deliveries import Collector, unique
from novasvc.transport.topology import Binding, Exchange, Queue

__all__ = ["DeclareQueueContract"]


class DeclareQueueContract:
    """
    What every L{novasvc.interfaces.ITransport} does with C{declare_queue}.
    """

    fixture: Any

    @defer.inlineCallbacks
    def test_declared_queue_keeps_messages(self) -> Any:
        """
        When a queue bound to a topic exchange is declared without a
        consumer, then a message published there (not mandatory) waits in
        it, and a consumer that comes later gets it.
        """

        transport = yield self.fixture.make_transport()
        exchange = Exchange(unique("notify"), "topic")
        queue = Queue(unique("notifications.info"), bindings=[Binding(exchange, "notifications.info")])
        self.assertIsNone((yield transport.declare_queue(queue)))
        yield transport.publish(exchange, "notifications.info", b"kept")
        yield self._wait_count(queue.name, 1)  # type: ignore[attr-defined]
        collector = Collector("ack")
        yield self._consume(transport, queue, collector)  # type: ignore[attr-defined]
        yield self.fixture.wait_for(lambda: collector.bodies == [b"kept"], "the message kept in the queue")

    @defer.inlineCallbacks
    def test_declare_queue_again(self) -> Any:
        """
        When the same queue is declared twice, then both succeed, and a
        mandatory publish to its binding is routed.
        """
        transport = yield self.fixture.make_transport()
        exchange = Exchange(unique("notify"), "topic")
        queue = Queue(unique("again"), bindings=[Binding(exchange, "again.key")])
        yield transport.declare_queue(queue)
        self.assertIsNone((yield transport.declare_queue(queue)))
        self.assertIsNone((yield transport.publish(exchange, "again.key", b"x", mandatory=True)))
        yield self._wait_count(queue.name, 1)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_declare_queue_mismatch_fails(self) -> Any:
        """
        When a queue is declared again with other flags, then that
        declaration fails with TransportError, and the transport keeps
        publishing to the queue as first declared.
        """
        transport = yield self.fixture.make_transport()
        exchange = Exchange(unique("notify"), "topic")
        name = unique("clash")
        yield transport.declare_queue(Queue(name, bindings=[Binding(exchange, name)]))
        yield self.assertFailure(  # type: ignore[attr-defined]
            transport.declare_queue(Queue(name, durable=True, bindings=[Binding(exchange, name)])), TransportError)
        yield transport.publish(exchange, name, b"still")
        yield self._wait_count(name, 1)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def test_declare_queue_after_stop_fails(self) -> Any:
        """
        When the transport is stopped, then declare_queue fails with
        TransportError.
        """
        transport = yield self.fixture.make_transport()
        yield transport.stop()
        yield self.assertFailure(transport.declare_queue(Queue(unique("late"))),  # type: ignore[attr-defined]
                                 TransportError)
