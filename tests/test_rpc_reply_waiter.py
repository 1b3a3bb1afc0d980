"""
Tests for L{novasvc.rpc._reply_waiter}: a transport's reply queue, the calls
waiting on it matched to their replies, their timeouts and call-monitor
timeouts; over the in-memory transport with a L{task.Clock}, and the reply
queue consumed again after a transport restart over RabbitMQ too.
"""

import gc
import json
from typing import Any, List

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.exceptions import DisconnectedError, TransportError
from novasvc.rpc import _reply_waiter as reply_waiter_module
from novasvc.rpc import wire
from novasvc.rpc._reply_waiter import BRIDGE_AFTER, PendingCall, reply_waiter
from novasvc.rpc.client import RPCClient
from novasvc.rpc.errors import MessagingTimeout
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.topology import Exchange
from tests._clients import AMQPTransport, on_txamqp
from tests._services import poll
from tests.test_rpc_client import _SVC_QUEUE
from tests.test_rpc_client import _Harness as ClientHarness
from tests.test_rpc_client_delivery import _Harness as FlakyHarness
from tests.test_rpc_client_delivery import _inner
from tests.test_rpc_server import Manager, RecordingTransport
from tests._vhosts import make_vhost
from tests.test_transport_amqp import FAST, rabbit_url


class _Never:
    """
    A consumer that never becomes active (the broker is away).
    """

    cancelled = False

    def __init__(self) -> None:
        self.waiting: List[defer.Deferred] = []

    def whenActive(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.waiting.append(d)
        return d

    def cancel(self) -> defer.Deferred:
        return defer.succeed(None)


class ReplyQueueTests(ClientHarness, SynchronousTestCase):
    """
    One reply queue per transport, the replies matched to their calls, and
    the calls waiting when the transport stops.
    """

    def test_reply_queue(self) -> None:
        """
        When calls are made, then one reply_<uuid hex> queue with x-expires is
        made on the first call and shared by every client of the transport;
        another transport has its own.
        """
        self.assertEqual(self.reply_queues(), [])
        self.make_server()
        self.successResultOf(self.client.call({}, "echo", value=1))
        other = RPCClient(self.transport, Target(topic="svc"), clock=self.clock)
        self.successResultOf(other.call({}, "echo", value=2))
        self.successResultOf(self.client.prepare(timeout=3).call({}, "echo", value=3))
        (name,) = self.reply_queues()
        self.assertRegex(name, "^reply_[0-9a-f]{32}$")
        self.assertEqual(self.broker.queues[name].spec.arguments_dict(), {"x-expires": 1800000})
        second = RecordingTransport(broker=self.broker, clock=self.clock)
        self.successResultOf(RPCClient(second, Target(topic="svc"), clock=self.clock).call({}, "echo", value=4))
        self.assertEqual(len(self.reply_queues()), 2)

    def test_replies_acked(self) -> None:
        """
        When replies arrive, then they are acknowledged at once.
        """
        self.make_server()
        self.successResultOf(self.client.call({}, "echo", value=1))
        (name,) = self.reply_queues()
        consumer = self.broker.queues[name].consumers[0]
        self.assertEqual((len(consumer.unacked), len(self.broker.queues[name].messages)), (0, 0))

    def test_legacy_replies(self) -> None:
        """
        When an old server replies with a bare data message and then an
        ending message, then the result is the first message's.
        """
        requests = []
        self.transport.consume(_SVC_QUEUE, lambda d: (d.ack(), requests.append(wire.decode_request(d.body))))
        d = self.client.call({}, "echo", value=1)
        request = requests[0]
        publish = self.transport.publish
        publish(Exchange(""), request.reply_q, json.dumps({"_msg_id": request.msg_id, "result": 5,
                                                           "failure": None}).encode())
        self.assertNoResult(d)
        publish(Exchange(""), request.reply_q, json.dumps({"_msg_id": request.msg_id, "result": None,
                                                           "failure": None, "ending": True}).encode())
        self.assertEqual(self.successResultOf(d), 5)

    def test_bare_reply(self) -> None:
        """
        When a reply has no envelope, then it is accepted.
        """
        requests = []
        self.transport.consume(_SVC_QUEUE, lambda d: (d.ack(), requests.append(wire.decode_request(d.body))))
        d = self.client.call({}, "echo", value=1)
        request = requests[0]
        self.transport.publish(Exchange(""), request.reply_q, json.dumps(
            {"_msg_id": request.msg_id, "result": "bare", "failure": None, "ending": True}).encode())
        self.assertEqual(self.successResultOf(d), "bare")

    def test_transport_stopped_while_waiting(self) -> None:
        """
        When the transport is stopped while a call published on it waits for
        its reply, then the call fails at once with DisconnectedError (not
        at its timeout) and no timer of it is left.
        """
        self.sink()
        d = self.client.call({}, "echo", value=1)
        self.assertNoResult(d)
        self.successResultOf(self.transport.stop())
        failure = self.failureResultOf(d, DisconnectedError)
        self.assertIn("may or may not have run", failure.getErrorMessage())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(reply_waiter(self.transport, None).pending, {})

    def test_unhashable_transport_let_go(self) -> None:
        """
        When a transport that cannot be a weak dictionary key is stopped,
        then the client's module keeps no reference to it.
        """
        class Unhashable(RecordingTransport):
            __hash__ = None  # type: ignore[assignment]

        transport = Unhashable(broker=self.broker, clock=self.clock)
        client = RPCClient(transport, Target(topic="svc"), clock=self.clock)
        self.sink()
        d = client.call({}, "echo", value=1)
        self.assertIn(id(transport), reply_waiter_module._unhashable_waiters)
        self.successResultOf(transport.stop())
        self.failureResultOf(d, DisconnectedError)
        self.assertNotIn(id(transport), reply_waiter_module._unhashable_waiters)


class TimeoutTests(ClientHarness, SynchronousTestCase):
    """
    Timeouts, cancellation and late replies.
    """

    def test_timeout(self) -> None:
        """
        When no reply comes within the timeout, then MessagingTimeout names
        the topic, server, method, msg_id and elapsed seconds.
        """
        self.sink("svc.host7")
        d = self.client.prepare(timeout=3, server="host7").call({}, "echo", value=1)
        self.clock.advance(2.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        error = self.failureResultOf(d, MessagingTimeout).value
        msg_id = json.loads(json.loads(self.requests()[0][2])["oslo.message"])["_msg_id"]
        self.assertEqual((error.topic, error.server, error.method, error.msg_id), ("svc", "host7", "echo", msg_id))
        self.assertAlmostEqual(error.elapsed, 3.0)
        self.assertIn(msg_id, str(error))

    def test_one_timer(self) -> None:
        """
        When several calls wait, with different timeouts, then one timer
        watches them, each times out after its own timeout, and no timer
        is left once none waits.
        """
        self.sink()
        calls = [self.client.prepare(timeout=timeout).call({}, "echo", value=1) for timeout in (5, 2, 5)]
        self.clock.advance(1)
        calls.append(self.client.prepare(timeout=5).call({}, "echo", value=1))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(1)
        self.failureResultOf(calls[1], MessagingTimeout)
        self.assertNoResult(calls[0])
        self.clock.advance(3)
        self.assertEqual([self.failureResultOf(calls[i], MessagingTimeout).value.elapsed for i in (0, 2)], [5, 5])
        self.assertNoResult(calls[3])
        calls[3].cancel()
        self.failureResultOf(calls[3], defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_late_reply_dropped(self) -> None:
        """
        When the reply comes after the timeout, then it is dropped with a
        DEBUG log and the server still settles the request.
        """
        server, manager, transport = self.make_server()
        d = self.client.prepare(timeout=1).call({}, "slow")
        self.clock.advance(1)
        error = self.failureResultOf(d, MessagingTimeout).value
        manager.pending[0].callback("late")
        drops = self.debug_drops()
        self.assertEqual([e["msg_id"] for e in drops], [error.msg_id])
        self.assertEqual(server.inflight, 0)
        self.assertEqual(reply_waiter(self.transport, None).pending, {})

    def test_cancel(self) -> None:
        """
        When the call's Deferred is cancelled, then it fails with
        CancelledError, stops waiting, and the reply is dropped later.
        """
        _, manager, _ = self.make_server()
        d = self.client.call({}, "slow")
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(reply_waiter(self.transport, None).pending, {})
        manager.pending[0].callback("unwanted")
        self.assertEqual(len(self.debug_drops()), 1)
        self.clock.advance(100)  # no timer left to fire

    def test_heartbeats_keep_call_alive(self) -> None:
        """
        When call_monitor_timeout is set and the server sends heartbeats,
        then the call outlives the monitor timeout and gets its result.
        """
        _, manager, _ = self.make_server()
        d = self.client.prepare(call_monitor_timeout=4).call({}, "slow")
        inner = json.loads(json.loads(self.requests()[0][2])["oslo.message"])
        self.assertEqual(inner["_timeout"], 4)
        for _ in range(10):
            self.clock.advance(2)
        self.assertNoResult(d)
        manager.pending[0].callback("long")
        self.assertEqual(self.successResultOf(d), "long")

    def test_call_monitor_timeout(self) -> None:
        """
        When call_monitor_timeout is set and nothing comes back, then the
        call fails after that many seconds, saying no heartbeat came.
        """
        d = self.client.prepare(call_monitor_timeout=4, timeout=60).call({}, "echo", value=1)
        self.clock.advance(4)
        error = self.failureResultOf(d, MessagingTimeout).value
        self.assertIn("heartbeat", str(error))
        self.assertEqual(error.elapsed, 4)

    def test_overall_timeout_with_heartbeats(self) -> None:
        """
        When heartbeats keep coming, then the call timeout still applies.
        """
        self.make_server()
        d = self.client.prepare(call_monitor_timeout=4, timeout=10).call({}, "slow")
        for _ in range(5):
            self.clock.advance(2)
        self.failureResultOf(d, MessagingTimeout)


class ReplyWaiterTests(FlakyHarness, SynchronousTestCase):
    """
    The reply queue's consumer and the calls waiting for it.
    """

    def test_nothing_kept_after_timeouts(self) -> None:
        """
        When 1,000 calls time out while the reply consumer is not active,
        then none of them, nor its request, is kept, and none is published
        when the consumer becomes active.
        """
        consumer = _Never()
        self.transport.consume = lambda queue, on_message, prefetch=0: consumer  # type: ignore[method-assign]
        calls = [self.client.prepare(timeout=5).call({}, "echo", value=i) for i in range(1000)]
        self.assertEqual(len(reply_waiter(self.transport, None).unsent), 1000)
        self.clock.advance(5)
        for d in calls:
            self.failureResultOf(d, MessagingTimeout)
        waiter = reply_waiter(self.transport, None)
        self.assertEqual((waiter.pending, waiter.unsent), ({}, {}))
        del calls, d
        gc.collect()
        self.assertEqual([o for o in gc.get_objects() if isinstance(o, PendingCall) and o.waiter is waiter], [])
        consumer.waiting[0].callback(None)
        self.assertEqual(self.requests(), [])

    def test_transport_restarted(self) -> None:
        """
        When the transport is stopped and started again, then the next call
        consumes the reply queue again and gets its reply.
        """
        self.make_server()
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value=1))["value"], 1)
        self.successResultOf(self.transport.stop())
        self.transport.start()
        self.assertEqual(self.successResultOf(self.client.call({}, "echo", value=2))["value"], 2)

    def test_stopped_before_active(self) -> None:
        """
        When the transport stops while the reply consumer is not active yet,
        then the calls waiting for it fail with TransportError at once.
        """
        consumer = _Never()
        self.transport.consume = lambda queue, on_message, prefetch=0: consumer  # type: ignore[method-assign]
        d = self.client.call({}, "echo")
        consumer.waiting[0].errback(defer.CancelledError("the consumer was cancelled"))
        self.assertIn("cannot consume the reply queue", str(self.failureResultOf(d, TransportError).value))

    def test_reply_queue_renewed(self) -> None:
        """
        When the transport renames the reply queue (it failed over to
        another broker host), then the calls waiting for a reply fail at
        once with a MessagingTimeout naming both queues, and the next call
        names the new queue.
        """
        consumer = _Never()
        consumer.renamed = None  # type: ignore[attr-defined]
        self.transport.consume = lambda queue, on_message, prefetch=0: consumer  # type: ignore[method-assign]
        d = self.client.call({}, "echo", value=1)
        consumer.waiting[0].callback(None)
        waiter = reply_waiter(self.transport, None)
        old = waiter.queue.name
        self.assertEqual(waiter.queue.renew_prefix, "reply_")
        self.assertEqual(_inner(self.requests()[-1][2])["_reply_q"], old)
        consumer.renamed(old, "reply_new")  # type: ignore[attr-defined]
        error = self.failureResultOf(d, MessagingTimeout).value
        self.assertIn(f"its reply queue {old} was replaced by reply_new when the connection failed over",
                      str(error))
        self.assertEqual(waiter.pending, {})
        self.client.call({}, "echo", value=2)
        self.assertEqual(_inner(self.requests()[-1][2])["_reply_q"], "reply_new")


class _Consumer(_Never):
    """
    A consumer whose renames, activations and stop the test drives.
    """

    def __init__(self, on_message: Any) -> None:
        super().__init__()
        self.on_message = on_message
        self.renamed: Any = None
        self.activated: Any = None
        self.stopped: Any = None
        self.cancels = 0

    def cancel(self) -> defer.Deferred:
        self.cancels += 1
        self.cancelled = True
        return defer.succeed(None)


class _DirectDelivery:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def ack(self) -> None:
        pass


class BridgeTests(FlakyHarness, SynchronousTestCase):
    """
    Direct reply-to while a renewed reply queue is not consumed yet.
    """

    def setUp(self) -> None:
        super().setUp()
        self.consumers: List[_Consumer] = []

        def consume(queue: Any, on_message: Any, prefetch: int = 0) -> _Consumer:
            consumer = _Consumer(on_message)
            consumer.queue = queue  # type: ignore[attr-defined]
            self.consumers.append(consumer)
            return consumer

        self.transport.consume = consume  # type: ignore[method-assign]
        self.transport.direct_reply_to = True  # type: ignore[attr-defined]

    def failed_over(self) -> Any:
        """
        A call on the reply queue, then a failover to another host.

        @return: the waiter and the queue's consumer.
        """
        d = self.client.call({}, "echo", value=1)
        queue = self.consumers[0]
        queue.waiting[0].callback(None)
        waiter = reply_waiter(self.transport, None)
        queue.renamed(waiter.queue.name, "reply_new")
        self.failureResultOf(d, MessagingTimeout)
        self.clock.advance(BRIDGE_AFTER)
        return waiter, queue

    def reply(self, consumer: _Consumer, request: bytes, result: Any) -> None:
        consumer.on_message(_DirectDelivery(wire.encode_reply(_inner(request)["_msg_id"], result)))

    def test_calls_use_the_bridge(self) -> None:
        """
        When the transport fails over and the new reply queue is still not
        consumed BRIDGE_AFTER seconds later, then the call waiting has failed
        at once, a direct reply-to consumer is made, and a call made
        meanwhile goes out once it is named, naming it as its reply queue,
        and gets its reply through it.
        """
        waiter, queue = self.failed_over()
        self.assertEqual([c.queue.name for c in self.consumers[1:]], ["amq.rabbitmq.reply-to"])  # type: ignore[attr-defined]
        bridge = self.consumers[1]
        d = self.client.call({}, "echo", value=2)
        sent = len(self.requests())
        bridge.renamed("amq.rabbitmq.reply-to", "amq.rabbitmq.reply-to.abc")
        self.assertEqual(len(self.requests()), sent + 1)
        request = self.requests()[-1][2]
        self.assertEqual(_inner(request)["_reply_q"], "amq.rabbitmq.reply-to.abc")
        self.assertEqual(waiter.reply_to(), "amq.rabbitmq.reply-to.abc")
        self.reply(bridge, request, {"value": 2})
        self.assertEqual(self.successResultOf(d), {"value": 2})

    def test_back_on_the_reply_queue(self) -> None:
        """
        When the new reply queue is consumed while a call waits on the
        bridge, then new calls name the reply queue, and the bridge is
        cancelled once its last call got its reply.
        """
        waiter, queue = self.failed_over()
        bridge = self.consumers[1]
        bridge.renamed("amq.rabbitmq.reply-to", "amq.rabbitmq.reply-to.abc")
        on_bridge = self.client.call({}, "echo", value=2)
        bridged = self.requests()[-1][2]
        queue.activated()
        self.client.call({}, "echo", value=3)
        self.assertEqual(_inner(self.requests()[-1][2])["_reply_q"], "reply_new")
        self.assertEqual(bridge.cancels, 0)
        self.reply(bridge, bridged, "done")
        self.assertEqual(self.successResultOf(on_bridge), "done")
        self.assertEqual(bridge.cancels, 1)

    def test_bridge_channel_lost(self) -> None:
        """
        When the bridge's channel is gone (its connection was lost), then the
        calls waiting on its name fail at once with DisconnectedError.
        """
        self.failed_over()
        bridge = self.consumers[1]
        bridge.renamed("amq.rabbitmq.reply-to", "amq.rabbitmq.reply-to.abc")
        d = self.client.call({}, "echo", value=2)
        bridge.renamed("amq.rabbitmq.reply-to.abc", "amq.rabbitmq.reply-to")
        self.assertIn("may or may not have run", str(self.failureResultOf(d, DisconnectedError).value))
        self.assertIsNone(reply_waiter(self.transport, None).bridge_name)

    def test_no_bridge_when_consumed_in_time(self) -> None:
        """
        When the new reply queue is consumed within BRIDGE_AFTER seconds of
        the failover, then no direct reply-to consumer is made and no timer
        is left.
        """
        d = self.client.call({}, "echo", value=1)
        queue = self.consumers[0]
        queue.waiting[0].callback(None)
        queue.renamed(reply_waiter(self.transport, None).queue.name, "reply_new")
        self.failureResultOf(d, MessagingTimeout)
        self.clock.advance(BRIDGE_AFTER - 0.1)
        queue.activated()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1)
        self.assertEqual(len(self.consumers), 1)

    def test_no_bridge_without_direct_reply_to(self) -> None:
        """
        When the transport cannot consume direct reply-to, then a failover
        makes no bridge and a call made meanwhile waits for the new reply
        queue, naming it.
        """
        self.transport.direct_reply_to = False  # type: ignore[attr-defined]
        waiter, queue = self.failed_over()
        self.assertEqual(len(self.consumers), 1)
        sent = len(self.requests())
        self.client.call({}, "echo", value=2)
        self.assertEqual(len(self.requests()), sent)
        queue.activated()
        self.assertEqual(_inner(self.requests()[-1][2])["_reply_q"], "reply_new")


class AMQPTransportRestartTests(TestCase):
    """
    The reply waiter over RabbitMQ.

    @cvar transport_class: the AMQP transport used (see L{tests._clients}).
    """

    timeout = 60
    transport_class = AMQPTransport

    @defer.inlineCallbacks
    def test_transport_restarted(self) -> Any:
        """
        When the client's AMQP transport is stopped and started again, then
        the next call gets its reply.
        """
        vhost = yield make_vhost(self)
        transports = []
        for _ in range(2):
            transport = self.transport_class(rabbit_url(vhost), reactor=reactor, **FAST)
            transport.start()
            self.addCleanup(transport.stop)
            transports.append(transport)
        server = RPCServer(transports[0], Target(topic="svc", server="host1"), [Manager("host1")])
        yield server.start()
        self.addCleanup(server.stop)
        client = RPCClient(transports[1], Target(topic="svc"), timeout=10)
        self.assertEqual((yield client.call({}, "echo", value=1))["value"], 1)
        yield transports[1].stop()
        transports[1].start()
        yield poll(lambda: transports[1].is_connected, "the client's transport connected again")
        self.assertEqual((yield client.call({}, "echo", value=2))["value"], 2)


TxAMQPTransportRestartTests = on_txamqp(AMQPTransportRestartTests, "TxAMQPTransportRestartTests")


TxAMQPTransportRestartTests = on_txamqp(AMQPTransportRestartTests, "TxAMQPTransportRestartTests")
