"""
The contract every L{novasvc.interfaces.ITransport} keeps, as one test suite
run against each implementation (the pattern of flocker's
C{makeIFilesystemSnapshotsTests}): L{make_transport_contract_tests} takes a
fixture factory and returns a C{TestCase} class; C{tests.test_transport_memory}
runs it against L{novasvc.transport.memory.MemoryTransport}, and
C{tests.test_transport_amqp} and C{tests.test_transport_txamqp} against
RabbitMQ through pika and through txamqp.

A fixture factory is called with the running test case and returns (or
returns a C{Deferred} firing with) an object with:

  - C{make_transport()}: a C{Deferred} firing with a started transport of its
    own broker/vhost, stopped at cleanup.
  - C{message_count(queue_name)}: a C{Deferred} firing with the number of
    messages ready (not delivered) in the queue, or C{None} if it does not
    exist.
  - C{queue_arguments(queue_name)}: a C{Deferred} firing with the queue's
    declare arguments as a C{dict}.
  - C{let_expire(queue_name, milliseconds)}: a C{Deferred} firing once a
    message published with that C{expiration} to that unconsumed queue has
    expired (the memory fixture advances its clock; RabbitMQ's polls the
    queue depth with a deadline).
  - C{wait_for(predicate, what)}: a C{Deferred} firing once C{predicate()}
    (which may return a C{Deferred}) is true, failing the test with C{what}
    if it is not true within the fixture's deadline. The memory transport is
    synchronous, so its fixture checks once.
  - optionally C{broker_away()} and C{broker_back()}, for the outage tests
    (L{novasvc.testing._outage_contract}); without them those are skipped.
"""

from typing import Any, Callable

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from novasvc.exceptions import TransportError, UnroutableError
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.testing._declare_contract import DeclareQueueContract
from novasvc.testing._outage_contract import LifecycleContract, OutageContract
from novasvc.testing.deliveries import Collector, capture_log_texts, unique
from novasvc.transport.topology import DEFAULT_EXCHANGE, Binding, Exchange, Queue


def make_transport_contract_tests(fixture_factory: Callable[[unittest.TestCase], Any]) -> type:
    """
    Build the contract test case for one transport implementation.

    @param fixture_factory: called with the test case in C{setUp}; see the
        module docstring for what it returns.
    @return: a L{twisted.trial.unittest.TestCase} subclass; subclass it in a
        test module to run it.
    """

    class TransportContractTests(DeclareQueueContract, LifecycleContract, OutageContract, unittest.TestCase):
        """
        What every L{ITransport} does (C{declare_queue}: see
        L{DeclareQueueContract}; start and stop out of turn:
        L{LifecycleContract}; the broker away and back: L{OutageContract}).
        """

        timeout = 30

        def setUp(self) -> defer.Deferred:
            return defer.maybeDeferred(fixture_factory, self).addCallback(self._have_fixture)

        def _have_fixture(self, fixture: Any) -> None:
            self.fixture = fixture

        @defer.inlineCallbacks
        def _consume(self, transport: Any, queue: Queue, on_message: Any, prefetch: int = 0) -> Any:
            consumer = transport.consume(queue, on_message, prefetch)
            yield consumer.whenActive()
            return consumer

        @defer.inlineCallbacks
        def _wait_count(self, queue_name: str, count: int) -> Any:
            yield self.fixture.wait_for(
                lambda: self.fixture.message_count(queue_name).addCallback(lambda n: n == count),
                f"{count} message(s) ready in queue {queue_name!r}",
            )

        @defer.inlineCallbacks
        def test_provides_interfaces(self) -> Any:
            """
            When a transport is made, then it provides ITransport, its
            consumers IConsumer and its deliveries IDelivery.
            """
            transport = yield self.fixture.make_transport()
            self.assertTrue(verifyObject(ITransport, transport))
            queue = Queue(unique("q"))
            collector = Collector()
            consumer = yield self._consume(transport, queue, collector)
            self.assertTrue(verifyObject(IConsumer, consumer))
            self.assertEqual(consumer.queue, queue)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"x")
            yield self.fixture.wait_for(lambda: collector.deliveries, "one delivery")
            self.assertTrue(verifyObject(IDelivery, collector.deliveries[0]))

        @defer.inlineCallbacks
        def test_topic_exchange_reaches_bound_queue(self) -> Any:
            """
            When a message is published to a topic exchange, then the queues
            bound with a matching key (exact or wildcard) get it, with its
            body, content type, exchange and routing key, and a queue bound
            with another key does not.
            """
            transport = yield self.fixture.make_transport()
            exchange = Exchange(unique("topic"), "topic")
            exact, wild, other = Queue(unique("exact"), bindings=[Binding(exchange, "a.b")]), \
                Queue(unique("wild"), bindings=[Binding(exchange, "a.*")]), \
                Queue(unique("other"), bindings=[Binding(exchange, "c.d")])
            got = {q.name: Collector("ack") for q in (exact, wild, other)}
            for q in (exact, wild, other):
                yield self._consume(transport, q, got[q.name])
            yield transport.publish(exchange, "a.b", b"hello", content_type="text/plain")
            yield self.fixture.wait_for(lambda: got[exact.name].deliveries and got[wild.name].deliveries,
                                        "the message in both matching queues")
            delivery = got[exact.name].deliveries[0]
            self.assertEqual((delivery.body, delivery.content_type, delivery.exchange, delivery.routing_key,
                              delivery.redelivered), (b"hello", "text/plain", exchange.name, "a.b", False))
            self.assertEqual(got[wild.name].bodies, [b"hello"])
            yield self._wait_count(other.name, 0)
            self.assertEqual(got[other.name].deliveries, [])

        @defer.inlineCallbacks
        def test_default_exchange_routes_by_queue_name(self) -> Any:
            """
            When a message is published to the default exchange with a queue's
            name as routing key, then that queue gets it (this is how oslo
            replies travel).
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("reply"))
            collector = Collector("ack")
            yield self._consume(transport, queue, collector)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b'{"reply": 1}')
            yield self.fixture.wait_for(lambda: collector.deliveries, "the reply")
            self.assertEqual((collector.bodies, collector.deliveries[0].exchange,
                              collector.deliveries[0].content_type),
                             ([b'{"reply": 1}'], "", "application/json"))

        @defer.inlineCallbacks
        def test_fanout_reaches_every_bound_queue(self) -> Any:
            """
            When a message is published to a fanout exchange, then every queue
            bound to it gets a copy whatever the routing keys.
            """
            transport = yield self.fixture.make_transport()
            fanout = Exchange(unique("topic_fanout"), "fanout", auto_delete=True)
            first, second = Collector("ack"), Collector("ack")
            yield self._consume(transport, Queue(unique("f1"), bindings=[Binding(fanout, "topic")]), first)
            yield self._consume(transport, Queue(unique("f2"), bindings=[Binding(fanout, "other")]), second)
            yield transport.publish(fanout, "", b"all")
            yield self.fixture.wait_for(lambda: first.deliveries and second.deliveries, "a copy in each queue")
            self.assertEqual((first.bodies, second.bodies), ([b"all"], [b"all"]))

        @defer.inlineCallbacks
        def test_queue_arguments_declared(self) -> Any:
            """
            When a queue with an C{x-expires} argument is consumed, then the
            broker's queue carries that argument.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("expiring"), arguments={"x-expires": 1800000})
            yield self._consume(transport, queue, Collector())
            arguments = yield self.fixture.queue_arguments(queue.name)
            self.assertEqual(arguments.get("x-expires"), 1800000)

        @defer.inlineCallbacks
        def test_prefetch_limits_unsettled(self) -> Any:
            """
            When a consumer has prefetch 2 and five messages wait, then it
            holds two unsettled deliveries and the rest stay ready; acking one
            lets exactly one more through.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("prefetch"))
            collector = Collector()
            yield self._consume(transport, queue, collector, prefetch=2)
            for i in range(5):
                yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"%d" % i)
            yield self.fixture.wait_for(lambda: len(collector.deliveries) == 2, "two deliveries")
            yield self._wait_count(queue.name, 3)
            self.assertEqual(collector.bodies, [b"0", b"1"])
            collector.deliveries[0].ack()
            yield self.fixture.wait_for(lambda: len(collector.deliveries) == 3, "a third delivery after one ack")
            yield self._wait_count(queue.name, 2)
            self.assertEqual(collector.bodies, [b"0", b"1", b"2"])

        @defer.inlineCallbacks
        def test_ack_removes(self) -> Any:
            """
            When a delivery is acked and its transport stops, then the message
            is gone from the queue.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("ack"))
            collector = Collector()
            yield self._consume(transport, queue, collector)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"once")
            yield self.fixture.wait_for(lambda: collector.deliveries, "the delivery")
            collector.deliveries[0].ack()
            yield transport.stop()
            self.assertEqual((yield self.fixture.message_count(queue.name)), 0)

        @defer.inlineCallbacks
        def test_settling_twice_is_ignored(self) -> Any:
            """
            When a delivery is acked twice and then rejected, then only the
            first call counts and the consumer keeps receiving.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("twice"))
            collector = Collector()
            yield self._consume(transport, queue, collector)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"1")
            yield self.fixture.wait_for(lambda: collector.deliveries, "the first delivery")
            first = collector.deliveries[0]
            first.ack()
            first.ack()
            first.reject(True)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"2")
            yield self.fixture.wait_for(lambda: len(collector.deliveries) == 2, "the second delivery")
            self.assertEqual(collector.bodies, [b"1", b"2"])
            self.assertFalse(collector.deliveries[1].redelivered)

        @defer.inlineCallbacks
        def test_reject_requeue_redelivers(self) -> Any:
            """
            When a delivery is rejected with requeue, then the message comes
            back with C{redelivered} true.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("requeue"))
            collector = Collector()
            yield self._consume(transport, queue, collector)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"again")
            yield self.fixture.wait_for(lambda: collector.deliveries, "the delivery")
            self.assertFalse(collector.deliveries[0].redelivered)
            collector.deliveries[0].reject(True)
            yield self.fixture.wait_for(lambda: len(collector.deliveries) == 2, "the redelivery")
            self.assertEqual((collector.bodies[1], collector.deliveries[1].redelivered), (b"again", True))

        @defer.inlineCallbacks
        def test_reject_without_requeue_drops(self) -> Any:
            """
            When a delivery is rejected without requeue, then the message is
            not delivered again and is gone once the transport stops.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("drop"))
            collector = Collector()
            yield self._consume(transport, queue, collector)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"bad")
            yield self.fixture.wait_for(lambda: collector.deliveries, "the delivery")
            collector.deliveries[0].reject(False)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"good")
            yield self.fixture.wait_for(lambda: len(collector.deliveries) == 2, "the next delivery")
            self.assertEqual(collector.bodies, [b"bad", b"good"])
            collector.deliveries[1].ack()
            yield transport.stop()
            self.assertEqual((yield self.fixture.message_count(queue.name)), 0)

        @defer.inlineCallbacks
        def test_on_message_error_rejects(self) -> Any:
            """
            When C{on_message} raises, then the error is logged, the message
            is rejected without requeue and the consumer keeps consuming.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("raise"))
            seen = []

            def on_message(delivery: Any) -> None:
                seen.append(delivery.body)
                if delivery.body == b"boom":
                    raise ZeroDivisionError("boom")
                delivery.ack()

            yield self._consume(transport, queue, on_message)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"boom")
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"fine")
            yield self.fixture.wait_for(lambda: len(seen) == 2, "both deliveries")
            self.assertEqual(seen, [b"boom", b"fine"])
            self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
            yield transport.stop()
            self.assertEqual((yield self.fixture.message_count(queue.name)), 0)

        @defer.inlineCallbacks
        def test_stop_returns_unsettled(self) -> Any:
            """
            When a transport stops with unsettled deliveries, then another
            transport consuming the queue gets them, marked redelivered.
            """
            first = yield self.fixture.make_transport()
            queue = Queue(unique("unsettled"))
            held = Collector()
            yield self._consume(first, queue, held)
            for body in (b"a", b"b"):
                yield first.publish(DEFAULT_EXCHANGE, queue.name, body)
            yield self.fixture.wait_for(lambda: len(held.deliveries) == 2, "two deliveries")
            yield first.stop()
            second = yield self.fixture.make_transport()
            again = Collector("ack")
            yield self._consume(second, queue, again)
            yield self.fixture.wait_for(lambda: len(again.deliveries) == 2, "both messages again")
            self.assertEqual(sorted(again.bodies), [b"a", b"b"])
            self.assertEqual([d.redelivered for d in again.deliveries], [True, True])

        @defer.inlineCallbacks
        def test_settle_after_stop_is_ignored(self) -> Any:
            """
            When a delivery from a stopped transport is acked, then nothing
            happens: the message went back to its queue.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("stale"))
            held = Collector()
            yield self._consume(transport, queue, held)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"stale")
            yield self.fixture.wait_for(lambda: held.deliveries, "the delivery")
            yield transport.stop()
            held.deliveries[0].ack()
            yield self._wait_count(queue.name, 1)

        @defer.inlineCallbacks
        def test_mandatory_unroutable_fails(self) -> Any:
            """
            When a mandatory message reaches no queue (an exchange without
            bindings, or the default exchange with an unknown queue name),
            then the publish fails with UnroutableError.
            """
            transport = yield self.fixture.make_transport()
            yield self.assertFailure(
                transport.publish(Exchange(unique("lonely"), "topic"), "nobody", b"x", mandatory=True),
                UnroutableError)
            yield self.assertFailure(
                transport.publish(DEFAULT_EXCHANGE, unique("reply_missing"), b"x", mandatory=True),
                UnroutableError)

        @defer.inlineCallbacks
        def test_mandatory_routable_succeeds(self) -> Any:
            """
            When a mandatory message reaches a queue, then the publish
            succeeds with None, and a later unroutable one still fails.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("routable"))
            collector = Collector("ack")
            yield self._consume(transport, queue, collector)
            result = yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"ok", mandatory=True)
            self.assertIsNone(result)
            unroutable = transport.publish(DEFAULT_EXCHANGE, unique("missing"), b"x", mandatory=True)
            routable = transport.publish(DEFAULT_EXCHANGE, queue.name, b"ok2", mandatory=True)
            yield self.assertFailure(unroutable, UnroutableError)
            self.assertIsNone((yield routable))
            yield self.fixture.wait_for(lambda: len(collector.deliveries) == 2, "both routable messages")

        @defer.inlineCallbacks
        def test_unconsumed_message_expires(self) -> Any:
            """
            When a message with an expiration waits unconsumed past it, then
            it is dropped: a consumer starting later gets only the message
            published after it.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("ttl"))
            consumer = yield self._consume(transport, queue, Collector())
            yield consumer.cancel()
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"late", expiration=50)
            yield self.fixture.let_expire(queue.name, 50)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"fresh", expiration=60000)
            collector = Collector("ack")
            yield self._consume(transport, queue, collector)
            yield self.fixture.wait_for(lambda: collector.deliveries, "the fresh message")
            self.assertEqual(collector.bodies, [b"fresh"])

        @defer.inlineCallbacks
        def test_cancel_stops_deliveries(self) -> Any:
            """
            When a consumer is cancelled, then later messages stay in the
            queue; a delivery handed out before can still be acked.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("cancel"))
            collector = Collector()
            consumer = yield self._consume(transport, queue, collector)
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"before")
            yield self.fixture.wait_for(lambda: collector.deliveries, "the first delivery")
            yield consumer.cancel()
            yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"after")
            yield self._wait_count(queue.name, 1)
            collector.deliveries[0].ack()
            self.assertEqual(collector.bodies, [b"before"])
            yield transport.stop()
            self.assertEqual((yield self.fixture.message_count(queue.name)), 1)

        @defer.inlineCallbacks
        def test_delete_queue(self) -> Any:
            """
            When a queue is deleted, then a mandatory publish to its name is
            unroutable; deleting a queue that does not exist is no error.
            """
            transport = yield self.fixture.make_transport()
            queue = Queue(unique("deleted"))
            consumer = yield self._consume(transport, queue, Collector())
            yield consumer.cancel()
            yield transport.delete_queue(queue.name)
            self.assertIsNone((yield self.fixture.message_count(queue.name)))
            yield self.assertFailure(transport.publish(DEFAULT_EXCHANGE, queue.name, b"x", mandatory=True),
                                     UnroutableError)
            self.assertIsNone((yield transport.delete_queue(unique("never-was"))))

        @defer.inlineCallbacks
        def test_declare_mismatch_never_raises(self) -> Any:
            """
            When a queue is consumed again with other flags than it was
            declared with, then consume does not raise, an error naming the
            queue is logged, that consumer does not become active (its
            whenActive fails with CancelledError when the transport stops),
            and the first consumer keeps receiving.
            """
            logs = capture_log_texts(self)
            transport = yield self.fixture.make_transport()
            name = unique("clash")
            first = Collector("ack")
            yield self._consume(transport, Queue(name), first)
            second = transport.consume(Queue(name, durable=True), Collector())
            yield self.fixture.wait_for(
                lambda: [t for t in logs if t.startswith("error") and f"Cannot consume queue {name!r}" in t],
                "an error naming the queue")
            active = second.whenActive()
            self.assertNoResult(active)
            yield transport.publish(DEFAULT_EXCHANGE, name, b"still")
            yield self.fixture.wait_for(lambda: first.bodies == [b"still"], "the first consumer's message")
            yield transport.stop()
            yield self.assertFailure(active, defer.CancelledError)

        @defer.inlineCallbacks
        def test_publish_after_stop_fails(self) -> Any:
            """
            When a transport is stopped, then publish fails with
            TransportError, and stopping again is fine.
            """
            transport = yield self.fixture.make_transport()
            yield transport.stop()
            yield self.assertFailure(transport.publish(DEFAULT_EXCHANGE, "q", b"x"), TransportError)
            self.assertIsNone((yield transport.stop()))

        @defer.inlineCallbacks
        def test_is_connected(self) -> Any:
            """
            When a transport is started, then C{is_connected} becomes
            C{True} (once connected); when it is stopped, C{False}.
            """
            transport = yield self.fixture.make_transport()
            yield self.fixture.wait_for(lambda: transport.is_connected is True, "connected")
            yield transport.stop()
            self.assertIs(transport.is_connected, False)

    return TransportContractTests
