"""
Tests for L{novasvc.transport.txamqp} (and its private
modules): the transport contract against the local RabbitMQ, the broker
tests and the backoff tests of the pika transport run again on
L{TxAMQPTransport} (each in its own vhost), a reconnection after the broker
closes the connection, and unit tests of what only the txamqp transport
has.
"""

import json
from typing import Any, List

from twisted.internet import defer, error
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

import tests.test_transport_amqp as amqp_tests
from novasvc.exceptions import ConfigError, DisconnectedError
from novasvc.interfaces import ITransport
from novasvc.testing.deliveries import Collector, capture_log_texts
from novasvc.testing.transport_contract import make_transport_contract_tests
from novasvc.transport import get_transport
from novasvc.transport.txamqp._codec import FrameReader, encode_method, frame, load_spec
from novasvc.transport.txamqp._channel import as_reason
from novasvc.transport.txamqp._protocol import TxAMQPProtocol, client_properties
from novasvc.transport.topology import DEFAULT_EXCHANGE, Binding, Exchange, Queue
from novasvc.transport import TxAMQPTransport
from novasvc.transport.url import TransportURL
from tests._services import poll
from tests._vhosts import rabbitmqctl


class TxRabbitFixture(amqp_tests.RabbitFixture):
    """
    The contract fixture for L{TxAMQPTransport}: a vhost per test.
    """

    transport_class = TxAMQPTransport


class TxAMQPTransportContractTests(make_transport_contract_tests(TxRabbitFixture.create)):  # type: ignore[misc]
    """
    The L{ITransport} contract, for L{TxAMQPTransport} against RabbitMQ.
    """


class TxAMQPBrokerTests(amqp_tests.AMQPBrokerTests):
    """
    What the AMQP transports do with a real RabbitMQ beyond the contract,
    for L{TxAMQPTransport}.
    """

    transport_class = TxAMQPTransport

    @defer.inlineCallbacks
    def test_reconnect_redeclares_and_resumes(self) -> Any:
        """
        When the broker closes the connection (rabbitmqctl
        close_all_connections) while an auto-delete queue bound to an
        exchange is consumed with prefetch 1 and a delivery is unsettled,
        then the transport reconnects, declares the exchange, the queue and
        its binding again (the broker had deleted them), consumes with the
        same prefetch, and a message published to the exchange afterwards
        arrives; the unsettled one is gone with its queue.
        """
        logs = capture_log_texts(self)
        transport = amqp_tests.started(self, amqp_tests.rabbit_url(self.vhost), TxAMQPTransport,
                                       **amqp_tests.FAST)
        exchange = Exchange("events", "topic")
        collector = Collector()
        consumer = transport.consume(Queue("listener", auto_delete=True, bindings=[Binding(exchange, "a.*")]),
                                     collector, prefetch=1)
        yield consumer.whenActive()
        yield transport.publish(exchange, "a.first", b"first", mandatory=True)
        yield transport.publish(exchange, "a.second", b"second", mandatory=True)
        yield poll(lambda: collector.bodies == [b"first"], "one delivery (prefetch 1)")
        self.assertEqual(self.admin.message_count("listener"), 1)
        out, err, code = yield rabbitmqctl("close_all_connections", "-p", self.vhost, "novasvc test")
        self.assertEqual(code, 0, err)
        yield poll(lambda: any("CONNECTION_FORCED" in text and "retrying" in text for text in logs),
                   "a warning about the forced close")
        yield poll(lambda: transport.is_connected, "the transport reconnected")
        admin = amqp_tests.Admin(self.vhost)  # the broker closed the other one too
        self.addCleanup(admin.close)
        yield poll(lambda: admin.message_count("listener") == 0, "the queue declared again, empty")
        collector.deliveries[0].ack()  # stale: its channel is gone
        for key in ("a.third", "a.fourth"):
            yield transport.publish(exchange, key, key.encode(), mandatory=True)
        yield poll(lambda: len(collector.deliveries) == 2, "the first message after reconnecting")
        self.assertEqual(admin.message_count("listener"), 1, "prefetch 1 again")
        collector.deliveries[1].ack()
        yield poll(lambda: collector.bodies == [b"first", b"a.third", b"a.fourth"], "the next one")

    @defer.inlineCallbacks
    def test_client_properties_seen_by_broker(self) -> Any:
        """
        When the transport is connected, then the broker lists the
        connection with its connection_name, the product novasvc and the
        capabilities that make it send consumer cancels and nacks.
        """
        transport = amqp_tests.started(self, amqp_tests.rabbit_url(self.vhost), TxAMQPTransport,
                                       **amqp_tests.FAST)
        yield poll(lambda: transport.is_connected, "connected")
        out, err, code = yield rabbitmqctl("list_connections", "vhost", "client_properties",
                                                      "--formatter", "json")
        rows = [{key: value for key, _type, value in row["client_properties"]} for row in json.loads(out)
                if row["vhost"] == self.vhost]
        [properties] = [row for row in rows if row.get("connection_name") == transport.connection_name]
        self.assertEqual(properties["product"], "novasvc")
        capabilities = {key: value for key, _type, value in properties["capabilities"]}
        self.assertEqual((capabilities["consumer_cancel_notify"], capabilities["basic.nack"]), (True, True))

    @defer.inlineCallbacks
    def test_dead_lettered_headers(self) -> Any:
        """
        When a message the broker dead-lettered (its x-death header holds
        arrays, tables, timestamps and 64-bit integers) is delivered, then
        it is consumed like any other and the connection stays up.
        """
        transport = amqp_tests.started(self, amqp_tests.rabbit_url(self.vhost), TxAMQPTransport,
                                       **amqp_tests.FAST)
        dlx = Exchange("dlx", "fanout")
        dead = Collector("ack")
        yield transport.consume(Queue("dead", bindings=[Binding(dlx, "")]), dead).whenActive()
        rejecting = Collector()
        yield transport.consume(Queue("doomed", arguments={"x-dead-letter-exchange": "dlx"}),
                                rejecting).whenActive()
        yield transport.publish(DEFAULT_EXCHANGE, "doomed", b"poison")
        yield poll(lambda: rejecting.deliveries, "the delivery")
        rejecting.deliveries[0].reject(False)
        yield poll(lambda: dead.bodies == [b"poison"], "the dead-lettered message")
        self.assertTrue(transport.is_connected)
        yield transport.publish(DEFAULT_EXCHANGE, "dead", b"after", mandatory=True)
        yield poll(lambda: dead.bodies == [b"poison", b"after"], "a message after it")

    @defer.inlineCallbacks
    def test_non_ascii_names(self) -> Any:
        """
        When queue and routing key names hold non-ASCII characters, then
        declares, publishes and deliveries carry them intact (short strings
        are counted in bytes).
        """
        transport = amqp_tests.started(self, amqp_tests.rabbit_url(self.vhost), TxAMQPTransport,
                                       **amqp_tests.FAST)
        exchange = Exchange("échange", "topic")
        collector = Collector("ack")
        yield transport.consume(Queue("file-ü", bindings=[Binding(exchange, "clé.*")]), collector).whenActive()
        yield transport.publish(exchange, "clé.été", "données".encode(), mandatory=True)
        yield poll(lambda: collector.deliveries, "the delivery")
        delivery = collector.deliveries[0]
        self.assertEqual((delivery.body.decode(), delivery.exchange, delivery.routing_key),
                         ("données", "échange", "clé.été"))

    @defer.inlineCallbacks
    def test_large_body_split_in_frames(self) -> Any:
        """
        When a message larger than the broker's frame size (128 KiB) is
        published, then it arrives whole.
        """
        transport = amqp_tests.started(self, amqp_tests.rabbit_url(self.vhost), TxAMQPTransport,
                                       **amqp_tests.FAST)
        collector = Collector("ack")
        yield transport.consume(Queue("big"), collector).whenActive()
        body = bytes(range(256)) * 2000
        yield transport.publish(DEFAULT_EXCHANGE, "big", body, mandatory=True)
        yield poll(lambda: collector.deliveries, "the delivery")
        self.assertEqual(collector.bodies, [body])


class TxAMQPLifecycleTests(amqp_tests.AMQPLifecycleTests):
    """
    Every timer of a L{TxAMQPTransport} is gone when its stop fires.
    """

    transport_class = TxAMQPTransport


class TxAMQPClockLifecycleTests(amqp_tests.AMQPClockLifecycleTests):
    """
    A L{TxAMQPTransport}'s phases on a clock.
    """

    transport_class = TxAMQPTransport


class TxAMQPNoBrokerTests(amqp_tests.AMQPNoBrokerTests):
    """
    L{TxAMQPTransport} with nothing listening.
    """

    transport_class = TxAMQPTransport


class TxBackoffTests(amqp_tests.BackoffTests):
    """
    Reconnection delays of L{TxAMQPTransport}: the same policy and log lines
    as the pika transport's.
    """

    transport_class = TxAMQPTransport


class ConstructionTests(unittest.SynchronousTestCase):
    """
    Making a L{TxAMQPTransport}.
    """

    def test_get_transport_txamqp(self) -> None:
        """
        When get_transport is given a rabbit:// URL with client txamqp, then
        it returns a TxAMQPTransport providing ITransport with the options
        given, and nothing connects yet.
        """
        clock = MemoryReactorClock()
        transport = get_transport("rabbit://u:p@h:5673/v", reactor=clock, client="txamqp", heartbeat=5,
                                  connection_name="me")
        self.assertIsInstance(transport, TxAMQPTransport)
        self.assertTrue(verifyObject(ITransport, transport))
        self.assertEqual((transport.connection_name, transport.url.virtual_host, transport.client),
                         ("me", "v", "txamqp"))
        self.assertEqual(clock.tcpClients, [])

    def test_unknown_client(self) -> None:
        """
        When get_transport is given an unknown client, then ConfigError names
        the choices.
        """
        e = self.assertRaises(ConfigError, get_transport, "rabbit://h/", client="kombu")
        self.assertIn("pika, txamqp", str(e))

    def test_config_selects_txamqp(self) -> None:
        """
        When the configuration says C{amqp_client: txamqp}, then the
        service's transport is a TxAMQPTransport with the configuration's
        heartbeat; by default it is pika's AMQPTransport.
        """
        from novasvc.config import load_config
        from novasvc.db.memory import MemoryServiceStore
        from novasvc.examples.echo import EchoManager
        from novasvc.core.service import Service
        from novasvc.transport import AMQPTransport

        clock = MemoryReactorClock()
        for overrides, expected in (({"amqp_client": "txamqp"}, TxAMQPTransport), ({}, AMQPTransport)):
            config = load_config(None, {"host": "h", "heartbeat_timeout_threshold": 7, **overrides}, environ={})
            service = Service.create(manager=EchoManager, config=config, store=MemoryServiceStore(), clock=clock)
            self.assertIs(type(service.transport), expected)
            self.assertEqual(service.transport._heartbeat, 7)

    def test_standalone_api_selects_txamqp(self) -> None:
        """
        When the configuration says C{amqp_client: txamqp}, then the
        standalone API's transport (C{twistd novasvc-api}) is a
        TxAMQPTransport too; by default it is pika's AMQPTransport.
        """
        from novasvc.api.standalone import make_api_service
        from novasvc.config import load_config
        from novasvc.transport import AMQPTransport

        clock = MemoryReactorClock()
        for overrides, expected in (({"amqp_client": "txamqp"}, TxAMQPTransport), ({}, AMQPTransport)):
            config = load_config(None, {"transport_url": "rabbit://h/", "database_connection": "sqlite://",
                                        **overrides}, environ={})
            standalone = make_api_service(config, clock)
            self.assertIs(type(standalone.api.context.transport), expected)

    def test_config_refuses_other_clients(self) -> None:
        """
        When the configuration file names another client, then ConfigError
        names the line, the key and the choices.
        """
        from novasvc.config import load_config

        path = self.mktemp()
        with open(path, "w") as f:
            f.write("amqp_client: kombu\n")
        e = self.assertRaises(ConfigError, load_config, path, environ={})
        self.assertIn("line 1: amqp_client: expected one of 'pika', 'txamqp', got 'kombu'", str(e))

    def test_memory_url_refused(self) -> None:
        """
        When given a memory:// URL, then TxAMQPTransport raises ConfigError.
        """
        self.assertRaises(ConfigError, TxAMQPTransport, TransportURL.parse("memory://x"))

    def test_hosts_in_turn_with_their_credentials(self) -> None:
        """
        When the URL names two hosts with their own credentials, then the
        first attempt goes to the first host with its login, the next to
        the second with its own.
        """
        clock = MemoryReactorClock()
        transport = TxAMQPTransport(TransportURL.parse("rabbit://a:b@10.0.0.1:5673,c:d@10.0.0.2/vh"),
                                    reactor=clock, retry_interval=1, retry_jitter=0)
        transport.start()
        logins = []
        for _ in range(2):
            host, port, factory, *_ = clock.tcpClients[-1]
            # Inside the endpoint's wrapper and ClientService's proxy.
            protocol = factory.buildProtocol(None)._wrappedProtocol.unwrapped()
            logins.append((host, port, protocol.response, protocol.vhost))
            factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
            clock.advance(5)
        self.assertEqual(logins, [("10.0.0.1", 5673, "\0a\0b", "vh"), ("10.0.0.2", 5672, "\0c\0d", "vh")])
        self.successResultOf(transport.stop())


class _Owner:
    """
    What a L{TxAMQPProtocol} tells its transport.
    """

    def __init__(self) -> None:
        self.lost: List[Any] = []

    def protocol_connected(self, protocol: Any) -> None:
        pass

    def protocol_lost(self, protocol: Any, reason: Failure) -> None:
        self.lost.append(reason)


class ProtocolTests(unittest.SynchronousTestCase):
    """
    L{TxAMQPProtocol} against bytes written by the test, on a
    L{MemoryReactorClock}.
    """

    def connect(self, heartbeat: int = 0) -> Any:
        self.clock = MemoryReactorClock()
        self.owner = _Owner()
        protocol = TxAMQPProtocol(self.owner, self.clock, ("u", "s3cret"), "/", heartbeat, client_properties("n"))
        tcp = StringTransportWithDisconnection()
        tcp.protocol = protocol
        protocol.makeConnection(tcp)
        self.tcp = tcp
        return protocol

    def method(self, channel: int, name: str, *values: Any) -> bytes:
        klass, _, method = name.partition(".")
        spec = load_spec()
        return frame(1, channel, encode_method(spec.classes.byname[klass].methods.byname[method], values))

    def sent(self) -> List[Any]:
        frames = FrameReader(load_spec()).feed(self.tcp.value()[8:])
        return [f"{f.payload.method.klass.name}.{f.payload.method.name}" for f in frames]

    def test_handshake(self) -> None:
        """
        When the broker sends connection.start and tune, then the protocol
        answers with start-ok (PLAIN, the client properties), tune-ok with
        the broker's frame size, and opens the vhost; open-ok fires the
        handshake.
        """
        protocol = self.connect()
        self.assertEqual(self.tcp.value()[:8], b"AMQP\x00\x00\x09\x01")
        done = protocol.handshake()
        protocol.dataReceived(self.method(0, "connection.start", 0, 9, {}, b"PLAIN AMQPLAIN", b"en_US"))
        protocol.dataReceived(self.method(0, "connection.tune", 2047, 4096, 60))
        self.assertEqual(self.sent(), ["connection.start-ok", "connection.tune-ok", "connection.open"])
        self.assertNoResult(done)
        protocol.dataReceived(self.method(0, "connection.open-ok", ""))
        self.successResultOf(done)
        self.assertEqual(protocol.frame_max, 4096)

    def test_broker_refuses_login(self) -> None:
        """
        When the broker answers the login with connection.close 403, then
        the handshake fails, the loss is described with the broker's words,
        and the password is in neither.
        """
        protocol = self.connect()
        done = protocol.handshake()
        protocol.dataReceived(self.method(0, "connection.start", 0, 9, {}, b"PLAIN", b"en_US"))
        protocol.dataReceived(self.method(0, "connection.close", 403, "ACCESS_REFUSED - Login was refused", 0, 0))
        self.failureResultOf(done)
        self.assertFalse(self.tcp.connected)
        why = protocol.describe_loss(Failure(error.ConnectionDone()))
        self.assertEqual(why, "403 ACCESS_REFUSED - Login was refused")
        self.assertEqual(len(self.owner.lost), 1)

    def test_garbage_aborts(self) -> None:
        """
        When the broker sends bytes that are not a frame, then the protocol
        drops the connection and says why.
        """
        protocol = self.connect()
        protocol.dataReceived(b"\x01\x00\x00\x00\x00\x00\x04abcdX")
        self.assertFalse(self.tcp.connected)
        self.assertIn("bad data from the broker: frame end expected",
                      protocol.describe_loss(Failure(error.ConnectionDone())))

    def test_missing_heartbeats_abort(self) -> None:
        """
        When the heartbeat is 10 seconds and the broker is silent for 30
        seconds after tuning, then the connection is dropped and the loss
        says so; while it talks, it is kept.
        """
        protocol = self.connect(heartbeat=10)
        protocol.handshake()
        protocol.dataReceived(self.method(0, "connection.start", 0, 9, {}, b"PLAIN", b"en_US"))
        protocol.dataReceived(self.method(0, "connection.tune", 2047, 131072, 10))
        protocol.dataReceived(self.method(0, "connection.open-ok", ""))
        self.clock.advance(29)
        protocol.dataReceived(frame(8, 0, b""))
        self.clock.advance(29)
        self.assertTrue(self.tcp.connected)
        self.assertIn(b"\x08\x00\x00\x00\x00\x00\x00\xce", self.tcp.value(), "heartbeats sent")
        self.clock.advance(1)
        self.assertFalse(self.tcp.connected)
        self.assertIn("no heartbeat from the broker for 30 seconds",
                      protocol.describe_loss(Failure(error.ConnectionLost())))

    def test_reasons(self) -> None:
        """
        When txamqp closes with the broker's channel.close, then the reason
        reads as pika's ChannelClosedByBroker with its code and text; a
        Failure gives its exception.
        """
        spec = load_spec()
        from txamqp.message import Message

        close = spec.classes.byname["channel"].methods.byname["close"]
        reason = as_reason(Message(close, (406, "PRECONDITION_FAILED - inequivalent arg", 50, 10)))
        self.assertEqual((type(reason).__name__, reason.reply_code), ("ChannelClosedByBroker", 406))
        lost = error.ConnectionLost()
        self.assertIs(as_reason(Failure(lost)), lost)


class PublishWhileAwayTests(unittest.TestCase):
    """
    Publishing through a L{TxAMQPTransport} that cannot connect.
    """

    timeout = 10

    @defer.inlineCallbacks
    def test_publish_fails_after_publish_wait(self) -> Any:
        """
        When the broker is away, then a publish fails with DisconnectedError
        once publish_wait seconds have passed.
        """
        clock = MemoryReactorClock()
        transport = TxAMQPTransport(TransportURL.parse("rabbit://10.0.0.1/"), reactor=clock, publish_wait=3)
        transport.start()
        published = transport.publish(DEFAULT_EXCHANGE, "q", b"x")
        clock.advance(3)
        yield self.assertFailure(published, DisconnectedError)
        yield transport.stop()
