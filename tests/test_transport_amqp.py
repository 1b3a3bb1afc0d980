"""
Tests for L{novasvc.transport.amqp} (what both RabbitMQ transports share),
through L{novasvc.transport.AMQPTransport} and its pika modules:
the transport contract against the local RabbitMQ, each test in its own vhost
(L{tests._vhosts}), then what only the AMQP transport does: reconnection,
logging without the password, publish properties, declare errors; and unit
tests of the pieces that need no broker.
"""

import json
import logging
import os
from typing import Any, Callable, List, Optional, Tuple
from unittest import mock

import pika
from pika import frame, spec
from twisted.internet import defer, error, protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport, StringTransportWithDisconnection
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from novasvc.exceptions import ConfigError, DisconnectedError, TransportError, UnroutableError
from novasvc.interfaces import ITransport
from novasvc.process.log import LogControl
from novasvc.metrics import Recorder
from novasvc.transport import get_transport
from novasvc.transport.amqp._connect import RoundRobinEndpoint, default_connection_name
from novasvc.transport.amqp._consume import AMQPConsumer
from novasvc.transport.amqp._frames import FrameReader, FrameWriter
from novasvc.transport.amqp._link import DISCONNECT_GRACE
from novasvc.transport.amqp._publish import Confirms, Publisher, message_properties
from novasvc.transport import AMQPTransport
from novasvc.transport.pika import _internals as _pika_internals
from novasvc.transport.pika._connect import AMQPProtocol, connection_parameters
from novasvc.transport.pika._internals import _probe as _make_probe
from novasvc.transport.topology import DEFAULT_EXCHANGE, Binding, Exchange, Queue
from novasvc.transport.url import TransportURL
from novasvc._phase import Phase
from tests._broker_gate import BrokerGate
from tests._services import poll
from tests._vhosts import make_vhost, rabbitmqctl
from novasvc.testing.deliveries import Collector
from novasvc.testing.transport_contract import make_transport_contract_tests

HOST, PORT = "127.0.0.1", 5672

#: Quick retries so reconnection tests take a fraction of a second.
FAST = dict(retry_interval=0.05, retry_factor=1.5, retry_max=0.5, retry_jitter=0.0)


# -- helpers -----------------------------------------------------------------------


def rabbit_url(vhost: str, password: str = "guest", hosts: str = f"{HOST}:{PORT}") -> TransportURL:
    """
    @return: the URL of the local broker's C{vhost}.
    """
    return TransportURL.parse(f"rabbit://guest:{password}@{hosts}/{vhost}")


class Admin:
    """
    A plain blocking pika connection to a vhost, to look at the broker from
    outside the transport under test (queue depth, raw gets, deletes).
    """

    def __init__(self, vhost: str) -> None:
        self._connection = pika.BlockingConnection(
            pika.ConnectionParameters(HOST, PORT, vhost, heartbeat=0))
        self._channel = self._connection.channel()

    def close(self) -> None:
        try:
            self._connection.close()
        except pika.exceptions.AMQPError:
            pass  # already closed (e.g. by rabbitmqctl close_all_connections)

    def _retry(self, action: Callable[[Any], Any]) -> Any:
        if not self._channel.is_open:
            self._channel = self._connection.channel()
        try:
            return action(self._channel)
        except pika.exceptions.ChannelClosedByBroker as e:
            self._channel = self._connection.channel()
            raise e

    def message_count(self, queue_name: str) -> Optional[int]:
        """
        @return: the ready messages of the queue, C{None} if there is none.
        """
        try:
            frame = self._retry(lambda ch: ch.queue_declare(queue_name, passive=True))
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == 404:
                return None
            raise
        return frame.method.message_count

    def get(self, queue_name: str) -> Tuple[Any, Any, bytes]:
        """
        C{basic.get} one message with auto-ack.

        @return: C{(method, properties, body)}; all C{None} when empty.
        """
        return self._retry(lambda ch: ch.basic_get(queue_name, auto_ack=True))

    def declare_queue(self, name: str, **kwargs: Any) -> None:
        self._retry(lambda ch: ch.queue_declare(name, **kwargs))

    def declare_exchange(self, name: str, kind: str) -> None:
        self._retry(lambda ch: ch.exchange_declare(name, kind))

    def delete_queue(self, name: str) -> None:
        self._retry(lambda ch: ch.queue_delete(name))


def capture_logs(case: unittest.TestCase) -> List[str]:
    """
    Record, for the rest of C{case}, every Twisted log event (formatted, plus
    the repr of its fields) and every record of pika's standard-library
    loggers at DEBUG and above.

    @return: the list the text lands in.
    """
    texts: List[str] = []

    def observe(event: dict) -> None:
        texts.append(f"{event.get('log_level').name if event.get('log_level') else ''} "
                     f"{formatEvent(event)} {event!r}")

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            texts.append(f"{record.levelname} {record.getMessage()} {record.args!r}")

    handler = Handler(logging.DEBUG)
    pika_logger = logging.getLogger("pika")
    old_level = pika_logger.level
    pika_logger.setLevel(logging.DEBUG)
    pika_logger.addHandler(handler)
    globalLogPublisher.addObserver(observe)

    def restore() -> None:
        globalLogPublisher.removeObserver(observe)
        pika_logger.removeHandler(handler)
        pika_logger.setLevel(old_level)

    case.addCleanup(restore)
    return texts


def started(case: unittest.TestCase, url: TransportURL, transport_class: Any = AMQPTransport,
            **options: Any) -> AMQPTransport:
    """
    @param transport_class: L{AMQPTransport} or another class taking the
        same arguments (L{novasvc.transport.TxAMQPTransport}).
    @return: a started transport of that class, stopped at cleanup.
    """
    transport = transport_class(url, **options)
    transport.start()
    case.addCleanup(transport.stop)
    return transport


# -- the contract --------------------------------------------------------------------


class RabbitFixture:
    """
    The contract fixture for L{AMQPTransport}: a vhost per test, reached
    through a L{BrokerGate} of the test's own (its outages).

    @cvar transport_class: the transport made (a subclass may name
        another AMQP transport).
    """

    transport_class: Any = AMQPTransport

    def __init__(self, case: unittest.TestCase, vhost: str) -> None:
        self.case = case
        self.vhost = vhost
        self.admin = Admin(vhost)
        case.addCleanup(self.admin.close)
        self.gate = BrokerGate.open_for(case)
        self.transports: List[Any] = []

    @classmethod
    def create(cls, case: unittest.TestCase) -> defer.Deferred:
        return make_vhost(case).addCallback(lambda vhost: cls(case, vhost))

    @defer.inlineCallbacks
    def make_transport(self) -> Any:
        transport = started(self.case, rabbit_url(self.vhost, hosts=f"127.0.0.1:{self.gate.port}"),
                            self.transport_class, **FAST)
        self.transports.append(transport)
        yield poll(lambda: transport.is_connected, "the transport connected")
        return transport

    @defer.inlineCallbacks
    def broker_away(self) -> Any:
        yield self.gate.close()
        yield poll(lambda: not any(t.is_connected for t in self.transports), "every transport disconnected")

    def broker_back(self) -> defer.Deferred:
        self.gate.open()
        return poll(lambda: all(t.is_connected for t in self.transports if t.phase is not Phase.STOPPED),
                    "every running transport connected again")

    def message_count(self, queue_name: str) -> defer.Deferred:
        return defer.maybeDeferred(self.admin.message_count, queue_name)

    @defer.inlineCallbacks
    def queue_arguments(self, queue_name: str) -> Any:
        out, err, code = yield rabbitmqctl("list_queues", "-p", self.vhost, "name", "arguments",
                                           "--formatter", "json")
        if code != 0:
            raise AssertionError(f"rabbitmqctl list_queues failed: {err}")
        for row in json.loads(out):
            if row["name"] == queue_name:
                return {name: value for name, _type, value in row["arguments"]}
        raise AssertionError(f"no queue {queue_name!r} in {out}")

    def let_expire(self, queue_name: str, milliseconds: int) -> defer.Deferred:
        return poll(lambda: self.admin.message_count(queue_name) == 0,
                    f"the message in {queue_name!r} expired after {milliseconds} ms")

    def wait_for(self, predicate: Callable[[], Any], what: str) -> defer.Deferred:
        return poll(predicate, what)


class AMQPTransportContractTests(make_transport_contract_tests(RabbitFixture.create)):  # type: ignore[misc]
    """
    The L{ITransport} contract, for L{AMQPTransport} against RabbitMQ.
    """


# -- AMQP only, against the broker -----------------------------------------------------


class AMQPBrokerTests(unittest.TestCase):
    """
    What L{AMQPTransport} does with a real RabbitMQ beyond the contract.

    @cvar transport_class: the transport tested (a subclass of this test
        case may name another AMQP transport).
    """

    transport_class: Any = AMQPTransport

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.vhost = yield make_vhost(self)
        self.admin = Admin(self.vhost)
        self.addCleanup(self.admin.close)

    @defer.inlineCallbacks
    def test_publish_properties(self) -> Any:
        """
        When a message is published with an expiration, then the broker holds
        it with content_type, content_encoding utf-8, delivery_mode 2 and
        the expiration as a string of milliseconds, as oslo.messaging sends.
        """
        self.admin.declare_queue("props")
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        yield transport.publish(DEFAULT_EXCHANGE, "props", b"{}", expiration=60000)
        yield transport.publish(DEFAULT_EXCHANGE, "props", b"x", content_type="text/plain")
        method, properties, body = self.admin.get("props")
        self.assertEqual(
            (body, properties.content_type, properties.content_encoding, properties.delivery_mode,
             properties.expiration),
            (b"{}", "application/json", "utf-8", 2, "60000"))
        method, properties, body = self.admin.get("props")
        self.assertEqual((body, properties.content_type, properties.expiration), (b"x", "text/plain", None))

    @defer.inlineCallbacks
    def test_connect_line_names_the_client(self) -> Any:
        """
        When the transport connects, then one INFO line names the URL
        (password hidden), the host and port, and the client library with
        its version (C{(pika 1.4.4, fast path)}, C{(txamqp 0.8.2)}).
        """
        logs = capture_logs(self)
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        yield poll(lambda: transport.is_connected, "connected")
        [line] = [text for text in logs if "Connected to AMQP broker" in text]
        expected = (r"^info Connected to AMQP broker rabbit://guest:\*\*\*@127\.0\.0\.1:5672/\S+ "
                    rf"at 127\.0\.0\.1:5672 as \S+ \({self.transport_class.client} \d[^ ,)]*(, [^)]+)?\)$")
        self.assertRegex(line.split(" {")[0], expected)

    @defer.inlineCallbacks
    def test_consume_and_publish_before_start(self) -> Any:
        """
        When consume and publish are called before start, then the consumer
        becomes active and the message arrives once started.
        """
        transport = self.transport_class(rabbit_url(self.vhost), **FAST)
        self.addCleanup(transport.stop)
        collector = Collector("ack")
        consumer = transport.consume(Queue("early"), collector)
        published = transport.publish(DEFAULT_EXCHANGE, "early", b"hi", mandatory=True)
        self.assertNoResult(consumer.whenActive())
        transport.start()
        yield consumer.whenActive()
        yield published
        yield poll(lambda: collector.deliveries, "the early message")
        self.assertEqual(collector.bodies, [b"hi"])

    @defer.inlineCallbacks
    def test_reconnect_after_client_side_drop(self) -> Any:
        """
        When the TCP connection drops, then the transport reconnects,
        restores its consumers, an unsettled delivery comes back marked
        redelivered, and acking the stale one does nothing harmful.
        """
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        collector = Collector()
        consumer = transport.consume(Queue("restored"), collector)
        yield consumer.whenActive()
        yield transport.publish(DEFAULT_EXCHANGE, "restored", b"first")
        yield poll(lambda: collector.deliveries, "the first delivery")
        transport._protocol.transport.abortConnection()
        yield poll(lambda: not transport.is_connected, "the connection dropped")
        yield poll(lambda: transport.is_connected, "the transport reconnected")
        yield poll(lambda: len(collector.deliveries) == 2, "the unsettled message again")
        self.assertEqual([d.redelivered for d in collector.deliveries], [False, True])
        collector.deliveries[0].ack()  # stale: its channel is gone
        collector.deliveries[1].ack()
        yield transport.publish(DEFAULT_EXCHANGE, "restored", b"after")
        yield poll(lambda: len(collector.deliveries) == 3, "the message published after reconnecting")
        collector.deliveries[2].ack()
        self.assertEqual(collector.bodies, [b"first", b"first", b"after"])
        yield poll(lambda: self.admin.message_count("restored") == 0, "nothing left ready")

    @defer.inlineCallbacks
    def test_reconnections_counted(self) -> Any:
        """
        When a started transport connects, loses its connection and
        connects again, then its metrics recorder counts one broker
        reconnection (the first connection is not one), and none more for
        the first connection after a stop and a start.
        """
        recorder = Recorder()
        transport = started(self, rabbit_url(self.vhost), self.transport_class, metrics=recorder, **FAST)
        yield poll(lambda: transport.is_connected, "connected")
        self.assertEqual(recorder.broker_reconnects, 0)
        transport._protocol.transport.abortConnection()
        yield poll(lambda: not transport.is_connected, "the connection dropped")
        yield poll(lambda: transport.is_connected, "the transport reconnected")
        self.assertEqual(recorder.broker_reconnects, 1)
        yield transport.stop()
        transport.start()
        yield poll(lambda: transport.is_connected, "connected after the restart")
        self.assertEqual(recorder.broker_reconnects, 1)

    @defer.inlineCallbacks
    def test_reconnect_after_broker_closes_connection(self) -> Any:
        """
        When the broker closes the connection (rabbitmqctl
        close_all_connections on the test's vhost, where the connection shows
        its connection_name client property), then a warning says so and a
        message published afterwards is consumed.
        """
        logs = capture_logs(self)
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        collector = Collector("ack")
        consumer = transport.consume(Queue("forced"), collector)
        yield consumer.whenActive()
        out, err, code = yield rabbitmqctl("list_connections", "vhost", "client_properties", "--formatter", "json")
        names = [value for row in json.loads(out) if row["vhost"] == self.vhost
                 for key, _type, value in row["client_properties"] if key == "connection_name"]
        self.assertEqual(names, [transport.connection_name])
        self.assertRegex(transport.connection_name, r"^[^:]+:%d:[0-9a-f-]{36}$" % os.getpid())
        out, err, code = yield rabbitmqctl("close_all_connections", "-p", self.vhost, "novasvc test")
        self.assertEqual(code, 0, err)
        yield poll(lambda: any("CONNECTION_FORCED" in text and "retrying" in text for text in logs),
                   "a warning about the forced close")
        yield poll(lambda: transport.is_connected, "the transport reconnected")
        yield transport.publish(DEFAULT_EXCHANGE, "forced", b"after", mandatory=True)
        yield poll(lambda: collector.bodies == [b"after"], "the message published after the close")

    @defer.inlineCallbacks
    def test_broker_cancel_redeclares(self) -> Any:
        """
        When the consumed queue is deleted behind the transport's back, then
        the broker's basic.cancel makes it declare the queue again and
        consume it.
        """
        logs = capture_logs(self)
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        collector = Collector("ack")
        consumer = transport.consume(Queue("doomed"), collector)
        yield consumer.whenActive()
        self.admin.delete_queue("doomed")
        yield poll(lambda: any("cancelled the consumer of queue 'doomed'" in text for text in logs),
                   "a warning about the cancel")
        yield poll(lambda: self.admin.message_count("doomed") is not None, "the queue declared again")
        yield transport.publish(DEFAULT_EXCHANGE, "doomed", b"still here", mandatory=True)
        yield poll(lambda: collector.bodies == [b"still here"], "the message on the new queue")

    @defer.inlineCallbacks
    def test_declare_mismatch_logged_and_retried(self) -> Any:
        """
        When a queue exists with other flags (PRECONDITION_FAILED), then an
        error naming the queue is logged, other consumers of the transport
        work, and the consumer retries with backoff until the queue can be
        declared.
        """
        logs = capture_logs(self)
        self.admin.declare_queue("clash", durable=True)
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        clash = transport.consume(Queue("clash"), Collector())
        fine = Collector("ack")
        yield transport.consume(Queue("fine"), fine).whenActive()
        yield poll(lambda: [t for t in logs if "Cannot consume queue 'clash'" in t and "PRECONDITION_FAILED" in t],
                   "an error about the clash")
        yield transport.publish(DEFAULT_EXCHANGE, "fine", b"ok")
        yield poll(lambda: fine.bodies == [b"ok"], "the other consumer's message")
        active = clash.whenActive()
        self.assertNoResult(active)
        self.admin.delete_queue("clash")
        yield active
        attempts = [t for t in logs if "Cannot consume queue 'clash'" in t]
        self.assertLess(len(attempts), 20, "retries must back off, not spin")

    @defer.inlineCallbacks
    def test_exchange_mismatch_fails_only_that_publish(self) -> Any:
        """
        When a publish names an exchange the broker has with another type,
        then that publish fails with TransportError naming it, and publishes
        to other exchanges (even at the same time) succeed.
        """
        self.admin.declare_exchange("typed", "fanout")
        self.admin.declare_queue("sink")
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        yield poll(lambda: transport.is_connected, "connected")
        bad = transport.publish(Exchange("typed", "topic"), "k", b"x")
        good = transport.publish(DEFAULT_EXCHANGE, "sink", b"y", mandatory=True)
        failure = yield self.assertFailure(bad, TransportError)
        self.assertIn("'typed'", str(failure))
        self.assertIn("PRECONDITION_FAILED", str(failure))
        self.assertIsNone((yield good))
        yield transport.publish(Exchange("other", "topic"), "k", b"z")

    @defer.inlineCallbacks
    def test_multiple_hosts_round_robin(self) -> Any:
        """
        When the URL names a closed port first and the broker second, then
        the transport logs the first failure and connects to the second.
        """
        logs = capture_logs(self)
        transport = started(self, rabbit_url(self.vhost, hosts=f"127.0.0.1:1,{HOST}:{PORT}"), self.transport_class,
                            **FAST)
        consumer = transport.consume(Queue("multi"), Collector())
        yield consumer.whenActive()
        self.assertTrue(any("127.0.0.1:1" in text and "retrying" in text for text in logs))

    @defer.inlineCallbacks
    def test_wrong_password_never_logged(self) -> Any:
        """
        When the broker refuses the password C{s3cret}, then the warning
        says access was refused, and neither Twisted's log nor pika's logging
        ever contains the password.
        """
        logs = capture_logs(self)
        transport = started(self, rabbit_url(self.vhost, password="s3cret"), self.transport_class, **FAST)
        yield poll(lambda: any("retrying" in text and "ACCESS_REFUSED" in text for text in logs),
                   "a warning about the refused login")
        yield transport.stop()
        self.assertTrue(logs)
        self.assertEqual([text for text in logs if "s3cret" in text], [])

    @defer.inlineCallbacks
    def test_stop_waits_for_confirms(self) -> Any:
        """
        When stop is called right after many publishes, then every publish
        is confirmed before the connection closes and the messages are in
        the queue.
        """
        self.admin.declare_queue("drain")
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        yield poll(lambda: transport.is_connected, "connected")
        published = [transport.publish(DEFAULT_EXCHANGE, "drain", b"%d" % i) for i in range(300)]
        yield transport.stop()
        results = yield defer.DeferredList(published, consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [True] * 300)
        self.assertEqual(self.admin.message_count("drain"), 300)

    @defer.inlineCallbacks
    def test_connection_lost_before_confirms(self) -> Any:
        """
        When the connection drops before the broker confirmed publishes,
        then each fails with DisconnectedError, and after reconnecting the
        same publishes go through.
        """
        self.admin.declare_queue("unconfirmed")
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        yield poll(lambda: transport.is_connected, "connected")
        published = [transport.publish(DEFAULT_EXCHANGE, "unconfirmed", b"%d" % i, mandatory=True)
                     for i in range(50)]
        transport._protocol.transport.abortConnection()
        results = yield defer.DeferredList(published, consumeErrors=True)
        self.assertEqual({type(result.value) for _, result in results}, {DisconnectedError})
        yield defer.gatherResults([transport.publish(DEFAULT_EXCHANGE, "unconfirmed", b"%d" % i, mandatory=True)
                                   for i in range(50)])

    @defer.inlineCallbacks
    def test_declared_queue_restored_after_reconnect(self) -> Any:
        """
        When a queue given to declare_queue (before start: it is declared
        once connected) is deleted behind the transport's back and the
        connection drops, then the queue exists again as soon as the
        transport is connected, before any publish; once deleted through
        the transport, it is not declared again.
        """
        transport = self.transport_class(rabbit_url(self.vhost), **FAST)
        self.addCleanup(transport.stop)
        exchange = Exchange("notify-x", "topic")
        queue = Queue("notifications.info", bindings=[Binding(exchange, "notifications.info")])
        declared = transport.declare_queue(queue)
        self.assertNoResult(declared)
        transport.start()
        self.assertIsNone((yield declared))
        self.admin.delete_queue(queue.name)
        self.assertIsNone(self.admin.message_count(queue.name))
        transport._protocol.transport.abortConnection()
        yield poll(lambda: not transport.is_connected, "the connection dropped")
        yield poll(lambda: transport.is_connected, "the transport reconnected")
        self.assertEqual(self.admin.message_count(queue.name), 0)
        yield transport.publish(exchange, "notifications.info", b"kept")
        yield poll(lambda: self.admin.message_count(queue.name) == 1, "the message kept")
        yield transport.delete_queue(queue.name)
        transport._protocol.transport.abortConnection()
        yield poll(lambda: not transport.is_connected, "the connection dropped again")
        yield poll(lambda: transport.is_connected, "the transport reconnected again")
        self.assertIsNone(self.admin.message_count(queue.name))

    @defer.inlineCallbacks
    def test_declare_refused_fails_only_that_declaration(self) -> Any:
        """
        When the broker refuses a declaration (the queue exists with other
        flags), then declare_queue fails with TransportError naming the
        queue and the broker's reason, one warning says so, and the
        transport keeps publishing and declaring.
        """
        logs = capture_logs(self)
        self.admin.declare_queue("clash", durable=True)
        transport = started(self, rabbit_url(self.vhost), self.transport_class, **FAST)
        failure = yield self.assertFailure(transport.declare_queue(Queue("clash")), TransportError)
        self.assertNotIsInstance(failure, DisconnectedError)
        self.assertIn("'clash'", str(failure))
        self.assertIn("PRECONDITION_FAILED", str(failure))
        self.assertEqual(len([t for t in logs if t.startswith("warn") and "cannot declare queue 'clash'" in t]), 1)
        yield transport.declare_queue(Queue("fine"))
        yield transport.publish(DEFAULT_EXCHANGE, "fine", b"x", mandatory=True)

    @defer.inlineCallbacks
    def test_stop_during_handshake(self) -> Any:
        """
        When stop is called right after start, then it finishes promptly and
        leaves nothing running.
        """
        transport = self.transport_class(rabbit_url(self.vhost), **FAST)
        transport.start()
        yield poll(lambda: transport._protocol is not None, "TCP connected")
        yield transport.stop()
        self.assertFalse(transport.is_connected)


class _OwnTimers:
    """
    The global reactor, keeping every delayed call made through it: what
    a transport given it as its reactor schedules (its timers,
    C{LoopingCall}s, timeouts and those of its client library).
    """

    def __init__(self) -> None:
        from twisted.internet import reactor

        self._reactor = reactor
        self.calls: List[Any] = []

    def callLater(self, *args: Any, **kwargs: Any) -> Any:
        call = self._reactor.callLater(*args, **kwargs)
        self.calls.append(call)
        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def active(self) -> List[Any]:
        """
        @return: the delayed calls still pending.
        """
        return [call for call in self.calls if call.active()]


class AMQPLifecycleTests(unittest.TestCase):
    """
    Every timer an AMQP transport makes is gone when its stop fires, in
    each phase the stop can come (the phase table of
    L{novasvc.transport.amqp._base}).

    @cvar transport_class: as L{AMQPBrokerTests}'s.
    """

    transport_class: Any = AMQPTransport

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.vhost = yield make_vhost(self)
        self.gate = BrokerGate.open_for(self)
        self.timers = _OwnTimers()

    def _transport(self, **options: Any) -> Any:
        transport = self.transport_class(rabbit_url(self.vhost, hosts=f"127.0.0.1:{self.gate.port}"),
                                         reactor=self.timers, **dict(FAST, **options))
        self.addCleanup(transport.stop)
        return transport

    @defer.inlineCallbacks
    def _stop_leaves_nothing(self, transport: Any) -> Any:
        self.assertTrue(self.timers.calls, "the transport made no timer: the check would prove nothing")
        first, second = transport.stop(), transport.stop()
        yield first
        self.assertEqual(self.timers.active(), [])
        self.assertIs(transport.phase, Phase.STOPPED)
        self.assertFalse(transport.is_connected)
        self.assertIsNone((yield second))

    @defer.inlineCallbacks
    def test_stop_while_connected(self) -> Any:
        """
        When a connected transport that consumes, publishes and declares
        stops, then no timer of it is left when its stop fires (the
        liveness checks, heartbeats, close timeout included), and a second
        stop fires with the first.
        """
        transport = self._transport()
        transport.start()
        collector = Collector()
        yield transport.consume(Queue("timers"), collector).whenActive()
        yield transport.declare_queue(Queue("declared"))
        yield transport.publish(DEFAULT_EXCHANGE, "timers", b"x")
        yield poll(lambda: collector.deliveries, "the delivery")
        yield self._stop_leaves_nothing(transport)

    @defer.inlineCallbacks
    def test_stop_while_the_broker_is_away(self) -> Any:
        """
        When a transport stops while the broker is away, with a publish and
        a declaration waiting and a reconnection scheduled, then no timer
        of it is left when its stop fires.
        """
        transport = self._transport()
        transport.start()
        yield poll(lambda: transport.is_connected, "connected")
        yield self.gate.close()
        yield poll(lambda: not transport.is_connected, "disconnected")
        published = transport.publish(DEFAULT_EXCHANGE, "q", b"x")
        declared = transport.declare_queue(Queue("q"))
        yield self._stop_leaves_nothing(transport)
        yield self.assertFailure(published, TransportError)
        yield self.assertFailure(declared, TransportError)

    @defer.inlineCallbacks
    def test_stop_while_connecting(self) -> Any:
        """
        When a transport stops while its connection is being set up (the
        TCP connection made, the handshake not done), then no timer of it
        is left when its stop fires.
        """
        transport = self._transport()
        transport.start()
        yield poll(lambda: transport._protocol is not None, "TCP connected", interval=0.001)
        yield self._stop_leaves_nothing(transport)

    @defer.inlineCallbacks
    def test_start_again_after_stop(self) -> Any:
        """
        When a transport is started, stopped, and started while that stop
        is under way, then it connects again once the stop fired, and its
        next stop leaves no timer.
        """
        transport = self._transport()
        transport.start()
        yield poll(lambda: transport.is_connected, "connected")
        stopping = transport.stop()
        transport.start()
        self.assertIs(transport.phase, Phase.STOPPING)
        yield stopping
        yield poll(lambda: transport.is_connected, "connected again")
        yield self._stop_leaves_nothing(transport)


class AMQPClockLifecycleTests(unittest.SynchronousTestCase):
    """
    An AMQP transport's phases on a L{MemoryReactorClock} (no broker: its
    connection attempts never finish).

    @cvar transport_class: as L{AMQPBrokerTests}'s.
    """

    transport_class: Any = AMQPTransport

    def test_stop_while_connecting(self) -> None:
        """
        When a transport still connecting, with a publish, a declaration
        and a consumer waiting, is stopped twice, then both stops have
        fired, no delayed call is left on its clock, and a start
        afterwards connects again.
        """
        clock = MemoryReactorClock()
        transport = self.transport_class(TransportURL.parse("rabbit://guest:guest@10.0.0.1/"), reactor=clock,
                                         **FAST)
        self.assertIs(transport.phase, Phase.STOPPED)
        transport.start()
        self.assertIs(transport.phase, Phase.RUNNING)
        published = transport.publish(DEFAULT_EXCHANGE, "q", b"x")
        declared = transport.declare_queue(Queue("q"))
        active = transport.consume(Queue("c"), Collector()).whenActive()
        clock.advance(0.01)
        self.assertTrue(clock.getDelayedCalls())
        first, second = transport.stop(), transport.stop()
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), (None, None))
        self.assertEqual(clock.getDelayedCalls(), [])
        for waiting in (published, declared):
            self.failureResultOf(waiting, TransportError)
        self.failureResultOf(active, defer.CancelledError)
        attempts = len(clock.tcpClients)
        transport.start()
        self.assertEqual(len(clock.tcpClients), attempts + 1)
        self.successResultOf(transport.stop())
        self.assertEqual(clock.getDelayedCalls(), [])


#: Why this run uses pika's public API (NOVASVC_PIKA_FAST_PATH=0, as in
#: C{tox -e pika-fallback}), or C{None}.
FORCED_PUBLIC = _pika_internals.environment_reason(os.environ)


class _PikaCalls:
    """
    Counts the calls of pika's C{Channel.basic_publish} and C{basic_ack},
    the deliveries pika decodes (C{Channel._on_deliver}) and the confirms it
    decodes (the publisher's callback for them) during a test (they still do
    their work).
    """

    def __init__(self, case: unittest.TestCase) -> None:
        self.calls: List[str] = []
        for owner, name in ((pika.channel.Channel, "basic_publish"), (pika.channel.Channel, "basic_ack"),
                            (pika.channel.Channel, "_on_deliver"), (Publisher, "_on_confirm")):
            original = getattr(owner, name)

            def counted(channel: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
                self.calls.append(_name)
                return _original(channel, *args, **kwargs)

            case.patch(owner, name, counted)


class PikaPathTests(unittest.TestCase):
    """
    The fast path (frames written by novasvc) or pika's public API, as
    L{novasvc.transport.pika._internals} decides, against the broker.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.vhost = yield make_vhost(self)
        self.admin = Admin(self.vhost)
        self.addCleanup(self.admin.close)

    @defer.inlineCallbacks
    def round_trip(self, transport: AMQPTransport, queue_name: str) -> Any:
        """
        Publish six messages (one over several frames), consume and ack them
        (acks made while handling incoming data, so some go as one multiple
        ack), stop the transport, and check that none is left.
        """
        collector = Collector("ack")
        consumer = transport.consume(Queue(queue_name), collector)
        yield consumer.whenActive()
        bodies = [b"%d" % i for i in range(5)] + [b"x" * 300000]
        yield defer.gatherResults([transport.publish(DEFAULT_EXCHANGE, queue_name, body, mandatory=True)
                                   for body in bodies])
        yield poll(lambda: len(collector.deliveries) == 6, "the six deliveries")
        self.assertEqual(collector.bodies, bodies)
        yield transport.stop()
        self.assertEqual(self.admin.message_count(queue_name), 0, "every message acked")

    @defer.inlineCallbacks
    def test_fast_path_active(self) -> Any:
        """
        When the tests run without NOVASVC_PIKA_FAST_PATH=0, then the
        installed (pinned) pika passes the check: the transport takes the
        fast path, its connection line says so, and messages published and
        acked go through without pika's basic_publish or basic_ack, and
        deliveries and confirms are read without pika's decoding.
        """
        if FORCED_PUBLIC is not None:
            raise unittest.SkipTest(f"{FORCED_PUBLIC}: this run checks pika's public API instead")
        logs = capture_logs(self)
        pika_calls = _PikaCalls(self)
        transport = started(self, rabbit_url(self.vhost), **FAST)
        self.assertTrue(transport.fast_path)
        yield poll(lambda: transport.is_connected, "connected")
        self.assertTrue([t for t in logs if "Connected to AMQP broker" in t and
                         f"(pika {pika.__version__}, fast path)" in t])
        yield self.round_trip(transport, "fast")
        self.assertEqual(pika_calls.calls, [])

    @defer.inlineCallbacks
    def test_public_path_active(self) -> Any:
        """
        When the tests run with NOVASVC_PIKA_FAST_PATH=0, then the transport
        uses pika's public API: its connection line says so, every
        publish is a basic_publish, acks are basic_ack calls, and pika
        decodes every delivery and the confirms.
        """
        if FORCED_PUBLIC is None:
            raise unittest.SkipTest(f"{_pika_internals.ENVIRONMENT_VARIABLE} is not 0: this run checks the fast path "
                                    f"instead (tox -e pika-fallback runs this)")
        logs = capture_logs(self)
        pika_calls = _PikaCalls(self)
        transport = started(self, rabbit_url(self.vhost), **FAST)
        self.assertFalse(transport.fast_path)
        yield poll(lambda: transport.is_connected, "connected")
        self.assertTrue([t for t in logs if "Connected to AMQP broker" in t and
                         f"(pika {pika.__version__}, public API: {FORCED_PUBLIC})" in t])
        yield self.round_trip(transport, "public")
        self.assertEqual(pika_calls.calls.count("basic_publish"), 6)
        self.assertIn("basic_ack", pika_calls.calls)
        self.assertEqual(pika_calls.calls.count("_on_deliver"), 6)
        self.assertIn("_on_confirm", pika_calls.calls)

    @defer.inlineCallbacks
    def test_fallback_when_an_internal_is_missing(self) -> Any:
        """
        When pika's connection lacks what the fast path needs, then one
        warning names it, the connection line gives the reason, and messages
        go through pika's basic_publish and basic_ack.
        """
        self.patch(_pika_internals, "_verdict", None)
        self.patch(_pika_internals, "_probe", lambda: _without("frames_sent"))
        logs = capture_logs(self)
        pika_calls = _PikaCalls(self)
        with mock.patch.dict(os.environ, {_pika_internals.ENVIRONMENT_VARIABLE: "1"}):
            transport = started(self, rabbit_url(self.vhost), **FAST)
        self.assertFalse(transport.fast_path)
        yield poll(lambda: transport.is_connected, "connected")
        reason = "pika's Connection has no integer frames_sent counter"
        self.assertEqual(len([t for t in logs if t.startswith("warn ") and reason in t]), 1)
        self.assertTrue([t for t in logs if "Connected to AMQP broker" in t and
                         f"(pika {pika.__version__}, public API: {reason})" in t])
        yield self.round_trip(transport, "fallback")
        self.assertEqual(pika_calls.calls.count("basic_publish"), 6)
        self.assertIn("basic_ack", pika_calls.calls)


def _without(name: str) -> Any:
    """
    @return: pika's Twisted protocol (never connected) whose connection
        lacks the attribute C{name}.
    """
    probe = _make_probe()
    delattr(_pika_internals.connection_of(probe), name)
    return probe


# -- AMQP only, no broker needed -------------------------------------------------------


class AMQPNoBrokerTests(unittest.TestCase):
    """
    L{AMQPTransport} with nothing listening.

    @cvar transport_class: as L{AMQPBrokerTests}'s.
    """

    transport_class: Any = AMQPTransport

    timeout = 10
    closed = TransportURL.parse("rabbit://guest:s3cret@127.0.0.1:1/")

    @defer.inlineCallbacks
    def test_broker_absent(self) -> Any:
        """
        When nothing listens at the URL, then start does not raise, a warning
        naming the URL (password hidden) is logged per attempt, and stop
        returns promptly.
        """
        logs = capture_logs(self)
        transport = self.transport_class(self.closed, **FAST)
        transport.start()
        yield poll(lambda: len([t for t in logs if "retrying" in t]) >= 2, "two warnings")
        warning = [t for t in logs if "retrying" in t][0]
        self.assertIn("rabbit://guest:***@127.0.0.1:1/", warning)
        self.assertIn("cannot connect to 127.0.0.1:1", warning)
        stopping = transport.stop()
        yield poll(lambda: stopping.called, "stop finished", timeout=2)
        self.assertEqual([text for text in logs if "s3cret" in text], [])

    @defer.inlineCallbacks
    def test_publish_while_disconnected(self) -> Any:
        """
        When publishing while the broker is away, then the publish fails
        with DisconnectedError (worth sending again) after C{publish_wait}
        seconds, or at once when it is 0.
        """
        waiting = started(self, self.closed, self.transport_class, publish_wait=0.05, **FAST)
        failure = yield self.assertFailure(waiting.publish(DEFAULT_EXCHANGE, "q", b"x"), DisconnectedError)
        self.assertIn("within 0.05 seconds", str(failure))
        self.assertNotIn("s3cret", str(failure))
        impatient = started(self, self.closed, self.transport_class, publish_wait=0, **FAST)
        yield self.assertFailure(impatient.publish(DEFAULT_EXCHANGE, "q", b"x"), DisconnectedError)

    @defer.inlineCallbacks
    def test_stop_fails_waiting_publishes_and_consumers(self) -> Any:
        """
        When a transport that never connected stops, then waiting publishes
        fail with TransportError (not DisconnectedError: sending again will
        not help), whenActive fails with CancelledError, and stopping twice
        is fine.
        """
        transport = started(self, self.closed, self.transport_class, **FAST)
        published = transport.publish(DEFAULT_EXCHANGE, "q", b"x")
        active = transport.consume(Queue("q"), Collector()).whenActive()
        yield transport.stop()
        failure = yield self.assertFailure(published, TransportError)
        self.assertNotIsInstance(failure, DisconnectedError)
        yield self.assertFailure(active, defer.CancelledError)
        yield transport.stop()

    @defer.inlineCallbacks
    def test_declare_while_disconnected(self) -> Any:
        """
        When a queue is declared while the broker is away, then the
        declaration fails with DisconnectedError after C{publish_wait}
        seconds (at once when it is 0), without the password; one still
        waiting when the transport stops fails with TransportError.
        """
        waiting = started(self, self.closed, self.transport_class, publish_wait=0.05, **FAST)
        failure = yield self.assertFailure(waiting.declare_queue(Queue("q")), DisconnectedError)
        self.assertIn("within 0.05 seconds", str(failure))
        self.assertNotIn("s3cret", str(failure))
        impatient = started(self, self.closed, self.transport_class, publish_wait=0, **FAST)
        yield self.assertFailure(impatient.declare_queue(Queue("q")), DisconnectedError)
        stopping = started(self, self.closed, self.transport_class, **FAST)
        declared = stopping.declare_queue(Queue("q"))
        yield stopping.stop()
        failure = yield self.assertFailure(declared, TransportError)
        self.assertNotIsInstance(failure, DisconnectedError)

    def test_stop_before_start(self) -> None:
        """
        When a transport that never started stops, then stop succeeds at once
        and publish fails.
        """
        transport = self.transport_class(self.closed)
        self.successResultOf(transport.stop())
        self.failureResultOf(transport.publish(DEFAULT_EXCHANGE, "q", b"x"), TransportError)


# -- unit tests ----------------------------------------------------------------------------


class ConstructionTests(unittest.SynchronousTestCase):
    """
    Making an L{AMQPTransport} and checking its input.
    """

    def test_get_transport_makes_amqp_transport(self) -> None:
        """
        When get_transport is given a rabbit:// URL and options, then it
        returns an AMQPTransport providing ITransport with those options and
        nothing connects yet.
        """
        clock = MemoryReactorClock()
        transport = get_transport("rabbit://u:p@h:5673/v", reactor=clock, heartbeat=5, connection_name="me")
        self.assertIsInstance(transport, AMQPTransport)
        self.assertTrue(verifyObject(ITransport, transport))
        self.assertEqual((transport.connection_name, transport.url.virtual_host), ("me", "v"))
        self.assertEqual(clock.tcpClients, [])

    def test_start_connects_to_first_host(self) -> None:
        """
        When started, then it connects to the first host of the URL on the
        injected reactor, and stop finishes while connecting.
        """
        clock = MemoryReactorClock()
        transport = AMQPTransport(TransportURL.parse("amqp://u:p@10.0.0.1:5673,10.0.0.2/"), reactor=clock)
        transport.start()
        self.assertEqual([(h, p) for h, p, *_ in clock.tcpClients], [("10.0.0.1", 5673)])
        self.successResultOf(transport.stop())

    def test_memory_url_refused(self) -> None:
        """
        When given a memory:// URL, then AMQPTransport raises ConfigError.
        """
        self.assertRaises(ConfigError, AMQPTransport, TransportURL.parse("memory://x"))

    def test_negative_time_refused(self) -> None:
        """
        When given a negative retry interval, then ConfigError names it.
        """
        e = self.assertRaises(ConfigError, AMQPTransport, TransportURL.parse("rabbit://"), retry_interval=-1)
        self.assertIn("retry_interval", str(e))

    def test_bad_prefetch_refused(self) -> None:
        """
        When consume is given a prefetch outside 0..65535, then ValueError.
        """
        transport = AMQPTransport(TransportURL.parse("rabbit://"), reactor=MemoryReactorClock())
        self.assertRaises(ValueError, transport.consume, Queue("q"), Collector(), -1)
        self.assertRaises(ValueError, transport.consume, Queue("q"), Collector(), 70000)

    def test_connection_parameters(self) -> None:
        """
        When pika's parameters are made from a URL, then they carry its
        credentials and vhost, the heartbeat, and the connection name.
        """
        params = connection_parameters(TransportURL.parse("rabbit://bob:pw@h/vh"), 7, "n:1:u")
        self.assertEqual((params.credentials.username, params.credentials.password, params.virtual_host,
                          params.heartbeat, params.client_properties),
                         ("bob", "pw", "vh", 7, {"connection_name": "n:1:u"}))

    def test_default_connection_name(self) -> None:
        """
        When no connection name is given, then it is
        C{<argv0 basename>:<pid>:<uuid4>} as oslo.messaging makes it, new
        for each transport.
        """
        name = default_connection_name()
        self.assertRegex(name, r"^[^:/]+:%d:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-" % os.getpid())
        self.assertNotEqual(name, default_connection_name())


class BackoffTests(unittest.SynchronousTestCase):
    """
    Reconnection delays, on an injected L{MemoryReactorClock}.

    @cvar transport_class: as L{AMQPBrokerTests}'s.
    """

    transport_class: Any = AMQPTransport

    def test_delay_grows_while_the_handshake_fails(self) -> None:
        """
        When every TCP connection is lost before the AMQP session is set up,
        then the retry delays grow by the factor (1, 2, 4 seconds), each
        attempt is logged as a warning without the password, and stop
        leaves no timer behind.
        """
        logs = capture_logs(self)
        clock = MemoryReactorClock()
        transport = self.transport_class(TransportURL.parse("rabbit://u:s3cret@10.0.0.1/"), reactor=clock,
                                         retry_interval=1, retry_factor=2, retry_max=30, retry_jitter=0)
        transport.start()
        delays = []
        for _ in range(3):
            factory = clock.tcpClients[-1][2]
            wrapper = factory.buildProtocol(None)
            wrapper.makeConnection(StringTransport())
            wrapper.connectionLost(Failure(error.ConnectionDone()))
            [retry] = clock.getDelayedCalls()
            delays.append(retry.getTime() - clock.seconds())
            clock.advance(delays[-1])
        self.assertEqual(delays, [1, 2, 4])
        self.assertEqual(len(clock.tcpClients), 4)
        warnings = [t for t in logs if "retrying" in t]
        self.assertEqual(len(warnings), 3)
        self.assertIn("AMQP connection to 10.0.0.1:5672 failed", warnings[0])
        self.assertEqual([t for t in logs if "s3cret" in t], [])
        self.successResultOf(transport.stop())
        self.assertEqual(clock.getDelayedCalls(), [])


    def test_each_retry_logged_once(self) -> None:
        """
        When connection attempts fail (refused TCP, then a lost handshake),
        then each retry is one WARNING with the reason and the delay in
        seconds, without the password; behind the twistd log filter at
        C{info}, it is the only line about that retry (Twisted's own
        "Scheduling retry" line is dropped).
        """
        events: List[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        shown: List[dict] = []
        twistd_log = LogControl("info").filter(shown.append)
        globalLogPublisher.addObserver(twistd_log)
        self.addCleanup(globalLogPublisher.removeObserver, twistd_log)
        clock = MemoryReactorClock()
        transport = self.transport_class(TransportURL.parse("rabbit://u:s3cret@10.0.0.1/"), reactor=clock,
                                         retry_interval=1.5, retry_factor=2, retry_jitter=0)
        transport.start()
        clock.tcpClients[-1][2].clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
        clock.advance(1.5)
        wrapper = clock.tcpClients[-1][2].buildProtocol(None)
        wrapper.makeConnection(StringTransport())
        wrapper.connectionLost(Failure(error.ConnectionDone()))
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 2, warnings)
        self.assertRegex(warnings[0], r"^AMQP broker rabbit://u:\*\*\*@10.0.0.1:5672/: cannot connect to "
                                      r"10.0.0.1:5672: .*refused.*; retrying in 1.5 seconds$")
        self.assertRegex(warnings[1], r"AMQP connection to 10.0.0.1:5672 failed: .*; retrying in 3.0 seconds$")
        self.assertTrue([e for e in events if "Scheduling retry" in formatEvent(e)])
        self.assertEqual([formatEvent(e) for e in shown], warnings)
        self.assertEqual([e for e in events if "s3cret" in formatEvent(e) or "s3cret" in repr(e)], [])
        self.successResultOf(transport.stop())

    def test_handshake_timeout(self) -> None:
        """
        When the peer accepts TCP but never answers the AMQP handshake, then
        the connection is dropped after C{connect_timeout} seconds, the
        warning says so, and another attempt follows.
        """
        logs = capture_logs(self)
        clock = MemoryReactorClock()
        transport = self.transport_class(TransportURL.parse("rabbit://10.0.0.1/"), reactor=clock,
                                         connect_timeout=5, retry_interval=1, retry_jitter=0)
        transport.start()
        wrapper = clock.tcpClients[-1][2].buildProtocol(None)
        tcp = StringTransportWithDisconnection()
        tcp.protocol = wrapper
        wrapper.makeConnection(tcp)
        self.assertTrue(tcp.value().startswith(b"AMQP"))
        clock.advance(4.9)
        self.assertTrue(tcp.connected)
        clock.advance(0.1)
        self.assertFalse(tcp.connected)
        self.assertTrue([t for t in logs if "the AMQP handshake took more than 5 seconds" in t and "retrying" in t])
        self.assertTrue([t for t in logs if "still waiting for the AMQP handshake after 2 seconds" in t])
        clock.advance(1)
        self.assertEqual(len(clock.tcpClients), 2)
        self.successResultOf(transport.stop())


    def test_no_delay(self) -> None:
        """
        When the TCP connection to the broker is made, then Nagle's algorithm
        is turned off on it (TCP_NODELAY), so small frames leave at once.
        """
        clock = MemoryReactorClock()
        transport = self.transport_class(TransportURL.parse("rabbit://10.0.0.1/"), reactor=clock)
        transport.start()
        wrapper = clock.tcpClients[-1][2].buildProtocol(None)
        tcp = StringTransportWithDisconnection()
        tcp.protocol = wrapper
        no_delay: List[bool] = []
        tcp.setTcpNoDelay = no_delay.append  # type: ignore[method-assign]
        wrapper.makeConnection(tcp)
        self.assertEqual(no_delay, [True])
        tcp.loseConnection()
        self.successResultOf(transport.stop())


class RoundRobinEndpointTests(unittest.SynchronousTestCase):
    """
    L{RoundRobinEndpoint} walks the URL's hosts.
    """

    def test_hosts_in_turn(self) -> None:
        """
        When it connects three times over two hosts, then it tries the
        first, the second, then the first again, and reports each failure
        with its host.
        """
        clock = MemoryReactorClock()
        failures: List[Tuple[Tuple[str, int], Failure]] = []
        endpoint = RoundRobinEndpoint(clock, (("10.0.0.1", 1), ("10.0.0.2", 2)), 5,
                                      lambda host, f: failures.append((host, f)))
        for _ in range(3):
            d = endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
            host, port, factory, *_ = clock.tcpClients[-1]
            factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
            self.failureResultOf(d, error.ConnectionRefusedError)
        self.assertEqual([(h, p) for h, p, *_ in clock.tcpClients],
                         [("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.1", 1)])
        self.assertEqual([host for host, _ in failures], [("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.1", 1)])
        self.assertNotIn("s3cret", repr(endpoint))


    def test_shuffle(self) -> None:
        """
        When the strategy is shuffle, then each round walks every host once
        in the order the shuffle gives, and a round never starts with the
        host the previous one ended with.
        """
        clock = MemoryReactorClock()
        orders = [[2, 0, 1], [1, 2, 0], [0, 1, 2]]

        def shuffle(order: List[int]) -> None:
            order[:] = orders.pop(0)

        endpoint = RoundRobinEndpoint(clock, (("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3)), 5,
                                      lambda host, f: None, strategy="shuffle", shuffle=shuffle)
        for _ in range(9):
            endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
        # The second shuffle starts with the host the first round ended
        # with: that one goes last.
        self.assertEqual([p for _, p, *_ in clock.tcpClients], [3, 1, 2, 3, 1, 2, 1, 2, 3])

    def test_unknown_strategy(self) -> None:
        """
        When the strategy is neither round-robin nor shuffle, then
        ConfigError names the key.
        """
        error = self.assertRaises(ConfigError, RoundRobinEndpoint, MemoryReactorClock(), (("h", 1),), 5,
                                  lambda host, f: None, strategy="random")
        self.assertIn("kombu_failover_strategy", str(error))


class RenewTests(unittest.SynchronousTestCase):
    """
    A consumer of a queue with a C{renew_prefix} takes a new queue when its
    transport reconnects to another host.
    """

    class _Channel:
        def __init__(self, consumer: Any, protocol: Any) -> None:
            self.queue = consumer.queue

        def start(self) -> defer.Deferred:
            return defer.succeed(None)

    def _consumer(self, queue: Queue) -> AMQPConsumer:
        consumer = AMQPConsumer(_Owner(), queue, lambda delivery: None, 0)
        consumer.channel_class = self._Channel  # type: ignore[assignment]
        return consumer

    def test_renewed_on_another_host(self) -> None:
        """
        When a consumer that consumed before is attached to a connection to
        another host, then it consumes C{<prefix><uuid hex>} with the same
        arguments and bindings and tells C{renamed}; a first attach or one
        to the same host keeps the name.
        """
        queue = Queue("reply_abc", arguments={"x-expires": 1000}, renew_prefix="reply_")
        consumer = self._consumer(queue)
        renamed: List[Tuple[str, str]] = []
        consumer.renamed = lambda old, new: renamed.append((old, new))
        consumer.attach(object(), renew=True)
        self.assertEqual(consumer.queue, queue)
        consumer._activated(consumer.current)  # type: ignore[arg-type]
        consumer.attach(object(), renew=False)
        self.assertEqual(consumer.queue, queue)
        consumer.attach(object(), renew=True)
        new = consumer.queue
        self.assertRegex(new.name, r"^reply_[0-9a-f]{32}$")
        self.assertEqual((new.arguments, new.bindings, new.renew_prefix), (queue.arguments, (), "reply_"))
        self.assertEqual(renamed, [("reply_abc", new.name)])
        self.assertEqual(consumer.current.queue, new)  # type: ignore[union-attr]

    def test_named_queue_kept(self) -> None:
        """
        When the queue has no renew_prefix (a topic queue), then a failover
        keeps its name.
        """
        consumer = self._consumer(Queue("svc"))
        consumer._activated(None)  # type: ignore[arg-type]
        consumer.attach(object(), renew=True)
        self.assertEqual(consumer.queue.name, "svc")


class MessagePropertiesTests(unittest.SynchronousTestCase):
    """
    L{message_properties}.
    """

    def test_oslo_properties(self) -> None:
        """
        When properties are made, then they carry content_encoding utf-8,
        delivery_mode 2 and the expiration in milliseconds as a string, and
        equal inputs share one object.
        """
        properties = message_properties("application/json", 1500)
        self.assertEqual((properties.content_type, properties.content_encoding, properties.delivery_mode,
                          properties.expiration), ("application/json", "utf-8", 2, "1500"))
        self.assertIs(properties, message_properties("application/json", 1500))
        self.assertIsNone(message_properties(None, None).expiration)

    def test_bad_expiration(self) -> None:
        """
        When the expiration is negative or not an integer, then ValueError.
        """
        self.assertRaises(ValueError, message_properties, "a", -1)
        self.assertRaises(ValueError, message_properties, "a", 1.5)


class _FrameMax:
    """
    pika's parameters as far as L{FrameWriter} reads them (pika's own
    refuse a frame size under 4096 bytes, which the tests use to keep
    bodies small).
    """

    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max


class _PikaConnectionDouble:
    """
    What L{FrameWriter} uses of pika's connection: the negotiated frame size
    and the counters; and the Twisted transport's C{write}.
    """

    def __init__(self, body_max_length: int) -> None:
        self.params = _FrameMax(body_max_length + 8)
        self.bytes_sent = 0
        self.frames_sent = 0
        self.written: List[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _PikaChannelDouble:
    def __init__(self, connection: Any, channel_number: int) -> None:
        self.connection = connection
        self.channel_number = channel_number


class FrameWriterTests(unittest.SynchronousTestCase):
    """
    L{FrameWriter} writes what pika's C{basic_publish} would.
    """

    def _pika_frames(self, channel_number: int, body_max: int, exchange: str, key: str, body: bytes,
                     properties: Any, mandatory: bool) -> List[bytes]:
        from pika import frame, spec

        frames = [frame.Method(channel_number, spec.Basic.Publish(exchange=exchange, routing_key=key,
                                                                   mandatory=mandatory)).marshal(),
                  frame.Header(channel_number, len(body), properties).marshal()]
        for start in range(0, len(body), body_max):
            frames.append(frame.Body(channel_number, body[start:start + body_max]).marshal())
        return frames

    def test_same_bytes_as_pika(self) -> None:
        """
        When messages of every size shape (empty, one frame, exactly one
        frame, several frames) are written with and without mandatory and an
        expiration, then the bytes are pika's own frames, the counters grow as
        pika's do, and each message is one write.
        """
        connection = _PikaConnectionDouble(body_max_length=100)
        writer = FrameWriter.for_channel(_PikaChannelDouble(connection, 7), connection.write)
        assert writer is not None
        cases = [(b"", None, False), (b"x" * 99, 1500, True), (b"y" * 100, None, True),
                 (b"z" * 250, 60000, False), ("é".encode() * 80, None, False)]
        for body, expiration, mandatory in cases:
            properties = message_properties("application/json", expiration)
            expected = self._pika_frames(7, 100, "openstack", "topic.host", body, properties, mandatory)
            before = (connection.bytes_sent, connection.frames_sent)
            writer.write("openstack", "topic.host", body, properties, mandatory)
            self.assertEqual(connection.written[-1], b"".join(expected), (len(body), expiration, mandatory))
            self.assertEqual((connection.bytes_sent - before[0], connection.frames_sent - before[1]),
                             (sum(map(len, expected)), len(expected)))
        self.assertEqual(len(connection.written), len(cases))

    def test_acks_same_bytes_as_pika(self) -> None:
        """
        When acks are written, with and without multiple, then the bytes are
        pika's basic.ack frames, all in one write.
        """
        from pika import frame, spec

        connection = _PikaConnectionDouble(body_max_length=100)
        writer = FrameWriter.for_channel(_PikaChannelDouble(connection, 3), connection.write)
        assert writer is not None
        for tags, multiple in (([1], False), ([2, 3, 2 ** 40], False), ([9], True)):
            writer.acks(tags, multiple)
            expected = [frame.Method(3, spec.Basic.Ack(delivery_tag=tag, multiple=multiple)).marshal()
                        for tag in tags]
            self.assertEqual(connection.written[-1], b"".join(expected))
        self.assertEqual((len(connection.written), connection.frames_sent), (3, 5))

    def test_not_bytes(self) -> None:
        """
        When the body is not bytes, then TypeError and nothing is written.
        """
        connection = _PikaConnectionDouble(body_max_length=100)
        writer = FrameWriter.for_channel(_PikaChannelDouble(connection, 1), connection.write)
        assert writer is not None
        self.assertRaises(TypeError, writer.write, "", "q", "text", message_properties(None, None), False)
        self.assertEqual(connection.written, [])

    def test_unexpected_pika(self) -> None:
        """
        When pika's connection lacks what the writer needs, then there is no
        writer (the publisher falls back to basic_publish).
        """
        self.assertIsNone(FrameWriter.for_channel(_PikaChannelDouble(object(), 1), [].append))


class _Owner:
    """
    What L{AMQPProtocol} tells its transport, ignored.
    """

    def protocol_connected(self, protocol: Any) -> None:
        pass

    def protocol_lost(self, protocol: Any, reason: Any) -> None:
        pass


def open_pika(frame_max: int, fast_path: bool = True) -> Tuple[AMQPProtocol, StringTransport, MemoryReactorClock]:
    """
    An L{AMQPProtocol} over a L{StringTransport}, taken through the AMQP
    handshake by feeding it the broker's frames (C{connection.start},
    C{connection.tune} with C{frame_max}, C{connection.open-ok}).

    @return: the open protocol, its transport and its clock.
    """
    clock = MemoryReactorClock()
    amqp = AMQPProtocol(pika.ConnectionParameters(heartbeat=0), clock, _Owner(), fast_path)
    tcp = StringTransport()
    amqp.makeConnection(tcp)
    for method in (spec.Connection.Start(server_properties={}, mechanisms="PLAIN", locales="en_US"),
                   spec.Connection.Tune(channel_max=16, frame_max=frame_max, heartbeat=0),
                   spec.Connection.OpenOk()):
        amqp.dataReceived(frame.Method(0, method).marshal())
    assert amqp.connection.is_open
    return amqp, tcp, clock


def open_raw_channel(amqp: AMQPProtocol) -> Any:
    """
    @return: a pika channel opened on C{amqp} (see L{open_pika}).
    """
    opened: List[Any] = []
    raw = amqp.connection.channel(on_open_callback=opened.append)
    amqp.dataReceived(frame.Method(raw.channel_number, spec.Channel.OpenOk()).marshal())
    assert opened == [raw]
    return raw


class _ReadCounters:
    """
    What L{FrameReader} uses of pika's connection: its read counters.
    """

    def __init__(self) -> None:
        self.bytes_received = 0
        self.frames_received = 0


def _delivery_frames(channel: int, tag: int, body: bytes, consumer_tag: str = "ctag", exchange: str = "openstack",
                     routing_key: Any = "topic.host", content_type: Optional[str] = "application/json",
                     redelivered: bool = False, body_max: int = 4088) -> bytes:
    properties = spec.BasicProperties(content_type=content_type, delivery_mode=2)
    frames = [frame.Method(channel, spec.Basic.Deliver(consumer_tag=consumer_tag, delivery_tag=tag,
                                                       redelivered=redelivered, exchange=exchange,
                                                       routing_key=routing_key)).marshal(),
              frame.Header(channel, len(body), properties).marshal()]
    frames += [frame.Body(channel, body[start:start + body_max]).marshal() for start in range(0, len(body), body_max)]
    return b"".join(frames)


def _method_frame(channel: int, method: Any) -> bytes:
    return frame.Method(channel, method).marshal()


class FrameReaderTests(unittest.SynchronousTestCase):
    """
    L{FrameReader} hands the deliveries and confirms of registered channels
    out as pika would, and everything else to pika, in order.
    """

    def setUp(self) -> None:
        self.connection = _ReadCounters()
        self.events: List[Any] = []
        self.reader = FrameReader(self.connection, lambda data: self.events.append(("pika", data)))
        self.reader.consume(3, "ctag", lambda *delivery: self.events.append(("deliver",) + delivery))
        self.reader.confirm(4, lambda *confirm: self.events.append(("confirm",) + confirm))

    def feed(self, data: bytes, step: Optional[int] = None) -> None:
        step = step or len(data) or 1
        for start in range(0, len(data), step):
            self.reader.data_received(data[start:start + step])

    def test_delivery_in_one_chunk(self) -> None:
        """
        When a registered consumer's delivery (or one with an empty body)
        arrives in one chunk, then its handler gets the tag, body, content
        type, exchange, routing key and redelivered flag, pika gets nothing,
        and pika's read counters count its frames.
        """
        data = _delivery_frames(3, 2 ** 40, b'{"x": 1}', redelivered=True)
        self.feed(data)
        self.assertEqual(self.events, [("deliver", 2 ** 40, b'{"x": 1}', "application/json", "openstack",
                                        "topic.host", True)])
        self.assertEqual((self.connection.bytes_received, self.connection.frames_received), (len(data), 3))
        empty = _delivery_frames(3, 2, b"")
        self.feed(empty)
        self.assertEqual(self.events[1][1:3], (2, b""))
        self.assertEqual((self.connection.bytes_received, self.connection.frames_received),
                         (len(data) + len(empty), 5))

    def test_delivery_byte_by_byte(self) -> None:
        """
        When deliveries arrive one byte at a time, then each is handed out
        once, whole, after its last byte.
        """
        data = _delivery_frames(3, 1, b"a" * 50) + _delivery_frames(3, 2, b"b" * 10, content_type=None)
        self.feed(data, step=1)
        self.assertEqual(self.events, [("deliver", 1, b"a" * 50, "application/json", "openstack", "topic.host", False),
                                       ("deliver", 2, b"b" * 10, None, "openstack", "topic.host", False)])

    def test_body_over_several_frames(self) -> None:
        """
        When a body comes in several body frames, then the handler gets them
        joined; an empty body is handed out after its content header.
        """
        body = bytes(range(256)) * 5
        self.feed(_delivery_frames(3, 7, body, body_max=100) + _delivery_frames(3, 8, b""), step=333)
        self.assertEqual([event[1:3] for event in self.events], [(7, body), (8, b"")])
        self.assertEqual(self.connection.frames_received, 2 + 13 + 2)

    def test_names_decoded_as_pika(self) -> None:
        """
        When a routing key is not UTF-8, then the handler gets its bytes, as
        pika's decoder gives them; UTF-8 names are text.
        """
        self.feed(_delivery_frames(3, 1, b"{}", exchange="é", routing_key=b"key.\xff"))
        self.assertEqual(self.events[0][4:6], ("é", b"key.\xff"))

    def test_other_frames_to_pika(self) -> None:
        """
        When frames of unregistered channels, of channel 0, heartbeats, other
        methods of a registered channel and deliveries of another consumer tag
        arrive, then pika gets exactly those bytes, and the counters are left
        to pika.
        """
        data = b"".join([
            _delivery_frames(9, 1, b"{}"),
            frame.Heartbeat().marshal(),
            _method_frame(0, spec.Connection.Blocked(reason="low memory")),
            _method_frame(3, spec.Basic.QosOk()),
            _delivery_frames(3, 5, b"{}", consumer_tag="other"),
            _method_frame(9, spec.Basic.Ack(delivery_tag=1)),
        ])
        self.feed(data, step=10)
        self.assertEqual(b"".join(event[1] for event in self.events if event[0] == "pika"), data)
        self.assertEqual([event[0] for event in self.events if event[0] != "pika"], [])
        self.assertEqual((self.connection.bytes_received, self.connection.frames_received), (0, 0))

    def test_only_whole_frames_to_pika(self) -> None:
        """
        When a frame for pika arrives in pieces, then pika gets it whole,
        once its last byte is there.
        """
        heartbeat = frame.Heartbeat().marshal()
        self.feed(heartbeat[:5])
        self.assertEqual(self.events, [])
        self.feed(heartbeat[5:])
        self.assertEqual(self.events, [("pika", heartbeat)])

    def test_order_kept(self) -> None:
        """
        When frames for pika come before and after handled ones in one chunk,
        then pika has the earlier ones before a handler runs, and the later
        ones after.
        """
        returned = b"".join([
            _method_frame(4, spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="openstack",
                                               routing_key="nowhere")),
            frame.Header(4, 2, spec.BasicProperties()).marshal(), frame.Body(4, b"{}").marshal()])
        heartbeat = frame.Heartbeat().marshal()
        self.feed(returned + _method_frame(4, spec.Basic.Ack(delivery_tag=6, multiple=True)) + heartbeat
                  + _delivery_frames(3, 1, b"{}"))
        self.assertEqual(self.events, [("pika", returned), ("confirm", 6, True, True), ("pika", heartbeat),
                                       ("deliver", 1, b"{}", "application/json", "openstack", "topic.host", False)])

    def test_confirms(self) -> None:
        """
        When C{basic.ack} and C{basic.nack} arrive on a confirm channel, then
        its handler gets the tag, the multiple bit and whether it is an ack.
        """
        self.feed(_method_frame(4, spec.Basic.Ack(delivery_tag=3, multiple=False))
                  + _method_frame(4, spec.Basic.Nack(delivery_tag=9, multiple=True, requeue=False))
                  + _method_frame(4, spec.Basic.Nack(delivery_tag=10, multiple=False)))
        self.assertEqual(self.events, [("confirm", 3, False, True), ("confirm", 9, True, False),
                                       ("confirm", 10, False, False)])

    def test_forget(self) -> None:
        """
        When a channel is forgotten while a delivery's content is arriving,
        then that content is read and dropped (pika never sees a content
        frame without its method), and the channel's later frames go to
        pika.
        """
        data = _delivery_frames(3, 1, b"x" * 300, body_max=100)
        self.feed(data[:60])
        self.reader.forget(3)
        self.reader.forget(4)
        self.feed(data[60:])
        self.assertEqual(self.events, [])
        later = _delivery_frames(3, 2, b"{}") + _method_frame(4, spec.Basic.Ack(delivery_tag=1))
        self.feed(later)
        self.assertEqual(self.events, [("pika", later)])

    def test_malformed_frame(self) -> None:
        """
        When a frame does not end with the frame-end octet, then the reader
        hands out what came before it and passes that frame and all later
        data to pika (which closes the connection).
        """
        good = _delivery_frames(3, 1, b"{}")
        bad = bytearray(_method_frame(4, spec.Basic.Ack(delivery_tag=2)))
        bad[-1] = 0
        later = _delivery_frames(3, 3, b"{}")
        self.feed(good + bytes(bad))
        self.feed(later)
        self.assertTrue(self.reader.broken)
        self.assertEqual(self.events, [("deliver", 1, b"{}", "application/json", "openstack", "topic.host", False),
                                       ("pika", bytes(bad)), ("pika", later)])


class OpenConnectionTests(unittest.SynchronousTestCase):
    """
    L{AMQPProtocol} on a pika connection opened over a L{StringTransport}:
    its frame writers and its guard on the Twisted transport.
    """

    def test_writer_writes_what_pika_writes(self) -> None:
        """
        When the broker tuned the frame size to 4096 bytes, then a publish
        over several frames and acks written by the protocol's frame writer
        are, byte for byte and in pika's counters, what pika's basic_publish
        and basic_ack write on the same connection.
        """
        amqp, tcp, _clock = open_pika(frame_max=4096)
        connection = amqp.connection
        raw = open_raw_channel(amqp)
        writer = amqp.frame_writer(raw)
        assert writer is not None
        properties = message_properties("application/json", 5000)
        body = bytes(range(256)) * 50

        def sent(action: Callable[[], None]) -> Tuple[bytes, int, int]:
            tcp.clear()
            before = (connection.bytes_sent, connection.frames_sent)
            action()
            return tcp.value(), connection.bytes_sent - before[0], connection.frames_sent - before[1]

        by_pika = sent(lambda: raw.basic_publish("ex", "key", body, properties, True))
        self.assertEqual(by_pika[2], 2 + 4)
        self.assertEqual(sent(lambda: writer.write("ex", "key", body, properties, True)), by_pika)
        by_pika = sent(lambda: [raw.basic_ack(tag, multiple=False) for tag in (3, 4)])
        self.assertEqual(sent(lambda: writer.acks([3, 4], False)), by_pika)

    def test_no_writer_off_the_fast_path(self) -> None:
        """
        When the protocol is not on the fast path, or its connection is
        lost, then it gives no frame writer.
        """
        amqp, _tcp, _clock = open_pika(frame_max=4096, fast_path=False)
        self.assertIsNone(amqp.frame_writer(open_raw_channel(amqp)))
        amqp, _tcp, _clock = open_pika(frame_max=4096)
        raw = open_raw_channel(amqp)
        amqp.connectionLost(Failure(error.ConnectionDone()))
        self.assertIsNone(amqp.frame_writer(raw))

    def test_close_aborted_after_grace(self) -> None:
        """
        When pika drops the connection after the close handshake and the
        peer never closes TCP, then the connection is aborted
        DISCONNECT_GRACE seconds later.
        """
        amqp, tcp, clock = open_pika(frame_max=4096)
        amqp.close()
        amqp.dataReceived(frame.Method(0, spec.Connection.CloseOk()).marshal())
        self.assertTrue(tcp.disconnecting)
        clock.advance(DISCONNECT_GRACE - 0.1)
        self.assertFalse(tcp.disconnected)
        clock.advance(0.1)
        self.assertTrue(tcp.disconnected)

    def test_close_not_aborted_once_lost(self) -> None:
        """
        When the connection is gone within the grace period after pika
        dropped it, then nothing is aborted and no timer is left.
        """
        amqp, tcp, clock = open_pika(frame_max=4096)
        amqp.close()
        amqp.dataReceived(frame.Method(0, spec.Connection.CloseOk()).marshal())
        amqp.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertFalse(tcp.disconnected)


class _CountingDict(dict):
    """
    A C{dict} counting its C{pop} calls.
    """

    pops = 0

    def pop(self, *args: Any) -> Any:
        self.pops += 1
        return super().pop(*args)


class ConfirmsTests(unittest.SynchronousTestCase):
    """
    L{Confirms} settles publishes from acks, nacks and returns.
    """

    def test_single_and_multiple_acks(self) -> None:
        """
        When publish 2 is acked alone and then 3 with multiple, then all
        three succeed in that order.
        """
        confirms = Confirms()
        ds = [confirms.add("", "q", b"%d" % i, False) for i in range(3)]
        fired: List[int] = []
        for i, d in enumerate(ds):
            d.addCallback(lambda _, i=i: fired.append(i))
        confirms.confirmed(2, False, True)
        self.assertEqual(fired, [1])
        confirms.confirmed(3, True, True)
        self.assertEqual((fired, len(confirms)), ([1, 0, 2], 0))

    def test_nack(self) -> None:
        """
        When a publish is nacked, then it fails with TransportError.
        """
        confirms = Confirms()
        d = confirms.add("", "q", b"x", False)
        confirms.confirmed(1, False, False)
        self.failureResultOf(d, TransportError)

    def test_return_then_ack(self) -> None:
        """
        When a mandatory publish comes back (basic.return) before a multiple
        ack covering it and its neighbours, then only it fails with
        UnroutableError, naming its exchange and key.
        """
        confirms = Confirms()
        first = confirms.add("ex", "a", b"1", True)
        lost = confirms.add("ex", "b", b"2", True)
        third = confirms.add("ex", "a", b"3", True)
        confirms.returned("ex", "b", b"2", "312 NO_ROUTE")
        confirms.confirmed(3, True, True)
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(third))
        failure = self.failureResultOf(lost, UnroutableError)
        self.assertIn("'b'", str(failure.value))

    def test_multiple_ack_after_many_single_acks(self) -> None:
        """
        When 100,000 publishes were acked one by one and then one multiple
        ack comes, then it touches only the publish it settles: nothing of
        the earlier ones is kept or walked again.
        """
        confirms = Confirms()
        for tag in range(1, 100_001):
            confirms.add("", "q", b"x", False)
            confirms.confirmed(tag, False, True)
        last = confirms.add("", "q", b"x", False)
        self.assertEqual((len(confirms), len(confirms._order)), (1, 1))
        looked_up = _CountingDict(confirms._pending)
        confirms._pending = looked_up
        confirms.confirmed(100_001, True, True)
        self.assertIsNone(self.successResultOf(last))
        self.assertEqual(looked_up.pops, 1)

    def test_out_of_order_acks(self) -> None:
        """
        When single acks come out of order, then the numbers not settled yet
        stay in order and a later multiple ack settles exactly those.
        """
        confirms = Confirms()
        ds = [confirms.add("", "q", b"%d" % i, False) for i in range(5)]
        for tag in (2, 4):
            confirms.confirmed(tag, False, True)
        self.assertEqual(list(confirms._order), [1, 2, 3, 4, 5])
        confirms.confirmed(1, False, True)
        self.assertEqual(list(confirms._order), [3, 4, 5])
        confirms.confirmed(5, True, False)
        self.assertEqual([d.called for d in ds], [True] * 5)
        self.failureResultOf(ds[2], TransportError)
        self.failureResultOf(ds[4], TransportError)
        self.assertEqual((len(confirms), len(confirms._order)), (0, 0))

    def test_returns_matched_in_publish_order(self) -> None:
        """
        When every third of 3,000 mandatory publishes to one exchange and key
        comes back, then exactly those fail with UnroutableError, and nothing
        is left over.
        """
        confirms = Confirms()
        ds = [confirms.add("ex", "k", b"%d" % i, True) for i in range(3000)]
        lost = set(range(2, 3000, 3))
        for i in sorted(lost):
            confirms.returned("ex", "k", b"%d" % i, "312 NO_ROUTE")
            confirms.confirmed(i + 1, True, True)
        confirms.confirmed(3000, True, True)
        outcomes = [self.successResultOf(d.addCallbacks(lambda _: "ok", lambda f: f.trap(UnroutableError)))
                    for d in ds]
        self.assertEqual({i for i, outcome in enumerate(outcomes) if outcome is UnroutableError}, lost)
        self.assertEqual((len(confirms), len(confirms._unreturned), confirms._mandatory), (0, 0, {}))

    def test_routed_mandatory_publishes_not_kept(self) -> None:
        """
        When mandatory publishes are acked and none comes back, then none of
        them is kept for matching returns.
        """
        confirms = Confirms()
        for tag in range(1, 1001):
            confirms.add("ex", "k", b"%d" % tag, True)
            confirms.confirmed(tag, False, True)
        self.assertEqual((len(confirms._unreturned), confirms._mandatory), (0, {}))

    def test_when_drained(self) -> None:
        """
        When publishes are pending, then when_drained fires once the last
        is confirmed; with none pending it fires at once.
        """
        confirms = Confirms()
        self.assertIsNone(self.successResultOf(confirms.when_drained()))
        first, second = confirms.add("", "q", b"1", False), confirms.add("", "q", b"2", False)
        drained = confirms.when_drained()
        confirms.confirmed(1, False, True)
        self.assertNoResult(drained)
        confirms.confirmed(2, False, True)
        self.successResultOf(drained)
        self.successResultOf(first)
        self.successResultOf(second)

    def test_fail_all(self) -> None:
        """
        When the channel closes, then every pending publish fails with the
        error given.
        """
        confirms = Confirms()
        ds = [confirms.add("", "q", b"x", True) for _ in range(2)]
        confirms.fail_all(TransportError("gone"))
        for d in ds:
            self.failureResultOf(d, TransportError)
        self.assertEqual(len(confirms), 0)
