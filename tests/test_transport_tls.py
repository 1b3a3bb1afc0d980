"""
Tests for TLS to the broker and per-host credentials in
L{novasvc.transport.amqp._connect} and L{novasvc.transport.pika._connect}: the
certificate files are read once and refused clearly, every connection of a
TLS transport is wrapped in TLS, each host logs in with its own credentials,
and a TLS failure is described as one.
"""

import socket
import sys
import uuid
from typing import Any, List

import pika
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import defer, protocol, reactor
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial import unittest

from novasvc.config import Config
from novasvc.exceptions import ConfigError, TransportError
from novasvc.testing.deliveries import Collector
from novasvc.transport import get_transport
from novasvc.transport.amqp._connect import RoundRobinEndpoint, client_tls
from novasvc.transport.pika._connect import AMQPProtocol
from novasvc.transport.topology import DEFAULT_EXCHANGE, Queue
from novasvc.transport.url import TLSOptions, TransportURL
from tests._clients import AMQPTransport, on_txamqp
from tests._rabbitmq_node import START_DEADLINE, RabbitMQNode, check_available, free_ports
from tests._services import poll
from tests._tls_certs import make_certificates

#: Quick retries, so a refused connection is tried a few times in a second.
FAST = dict(retry_interval=0.05, retry_factor=1.5, retry_max=0.5, retry_jitter=0.0)


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _Owner:
    """
    What an L{AMQPProtocol} tells its transport, dropped.
    """

    def protocol_connected(self, protocol: Any) -> None:
        pass

    def protocol_lost(self, protocol: Any, reason: Any) -> None:
        pass


def _find_tls_factory(factory: Any) -> Any:
    # Endpoints wrap factories in one another; walk down to the TLS one.
    seen = 0
    while factory is not None and seen < 10:
        if isinstance(factory, TLSMemoryBIOFactory):
            return factory
        factory = getattr(factory, "_wrappedFactory", None) or getattr(factory, "wrappedFactory", None)
        seen += 1
    return None


class ClientTLSTests(unittest.SynchronousTestCase):
    """
    L{client_tls} reads the CA and client certificate files once, and
    refuses unusable ones with the option and file named.
    """

    def setUp(self) -> None:
        self.files = make_certificates(self.mktemp())

    def test_ca_file(self) -> None:
        """
        When a CA file is given, then the result makes Twisted TLS client
        settings for any host name or IP address.
        """
        creator = client_tls(TLSOptions(True, self.files["ca"]))
        for host in ("localhost", "127.0.0.1", "::1"):
            self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(creator(host)))

    def test_platform_trust(self) -> None:
        """
        When no CA file is given, then the platform's trust store is used
        (settings are made all the same).
        """
        self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(client_tls(TLSOptions(True))("broker")))

    def test_client_certificate(self) -> None:
        """
        When a client certificate is given with its key in another file, or
        both in one file, then settings are made.
        """
        for cert, key in ((self.files["client_cert"], self.files["client_key"]),
                          (self.files["client_combined"], None)):
            creator = client_tls(TLSOptions(True, self.files["ca"], cert, key))
            self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(creator("localhost")))

    def test_missing_file(self) -> None:
        """
        When a file cannot be read, then ConfigError names the option, the
        file and why.
        """
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, "/nonexistent/ca.pem"))
        self.assertEqual(str(e), "ssl_ca_file '/nonexistent/ca.pem': cannot read it: No such file or directory")
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, None, "/nonexistent/me.pem"))
        self.assertIn("ssl_cert_file '/nonexistent/me.pem': cannot read it", str(e))

    def test_not_a_certificate(self) -> None:
        """
        When the CA or certificate file holds no PEM certificate, then
        ConfigError says so.
        """
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, self.files["client_key"]))
        self.assertIn("ssl_ca_file", str(e))
        self.assertIn("no PEM certificate in it", str(e))
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, None, self.files["client_key"]))
        self.assertIn("ssl_cert_file", str(e))

    def test_no_key(self) -> None:
        """
        When the certificate file holds no key and no key file is given, or
        the key is encrypted (no passphrase option exists), then ConfigError
        says that no unencrypted key was found.
        """
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, None, self.files["client_cert"]))
        self.assertIn("no unencrypted PEM private key", str(e))
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, None, self.files["client_cert"],
                                                                  self.files["client_key_encrypted"]))
        self.assertIn("ssl_key_file", str(e))
        self.assertIn("no unencrypted PEM private key", str(e))

    def test_key_of_another_certificate(self) -> None:
        """
        When the key does not belong to the certificate, then ConfigError
        says so.
        """
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, None, self.files["client_cert"],
                                                                  self.files["server_key"]))
        self.assertIn("the key does not belong to the certificate", str(e))

    def test_without_pyopenssl(self) -> None:
        """
        When pyOpenSSL cannot be imported, then ConfigError says which
        extra to install.
        """
        self.addCleanup(sys.modules.__setitem__, "OpenSSL", sys.modules["OpenSSL"])
        sys.modules["OpenSSL"] = None  # type: ignore[assignment]
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True))
        self.assertEqual(str(e), "TLS to the broker needs pyOpenSSL and service_identity: "
                                 "pip install 'novasvc[tls]'")

    def test_long_file_names_cut(self) -> None:
        """
        When a file name is very long, then the message shows a cut
        version of it.
        """
        e = self.assertRaises(ConfigError, client_tls, TLSOptions(True, "/" + "x" * 400))
        self.assertLess(len(str(e)), 200)


class TLSTransportTests(unittest.SynchronousTestCase):
    """
    An L{AMQPTransport} with TLS on: which options win, what its URL shows,
    and that every connection is TLS.
    """

    def setUp(self) -> None:
        self.files = make_certificates(self.mktemp())

    def test_rabbits_url(self) -> None:
        """
        When the URL is C{rabbits://} with a CA file in its query, then the
        transport uses TLS with that file, on 5671, and the connection it
        starts goes through TLS.
        """
        clock = MemoryReactorClock()
        transport = get_transport(f"rabbits://u:p@127.0.0.1/?ssl_ca_file={self.files['ca']}", reactor=clock)
        self.assertEqual(transport.tls, TLSOptions(True, self.files["ca"]))
        self.assertEqual(str(transport.url), "rabbits://u:***@127.0.0.1:5671/")
        transport.start()
        [(host, port, factory, *_)] = clock.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 5671))
        self.assertIsNotNone(_find_tls_factory(factory))
        self.successResultOf(transport.stop())

    def test_configuration_turns_tls_on(self) -> None:
        """
        When the configuration asks for TLS and the URL is plain, then the
        transport uses TLS and shows it: C{rabbits://}, 5671 for a host
        given without a port.
        """
        config = Config(ssl=True, ssl_ca_file=self.files["ca"])
        transport = AMQPTransport(TransportURL.parse("rabbit://u:p@h1,h2:5672/"), reactor=MemoryReactorClock(),
                                  tls=TLSOptions.from_config(config))
        self.assertEqual(str(transport.url), "rabbits://u:***@h1:5671,h2:5672/")
        self.assertTrue(transport.tls.enabled)

    def test_url_turns_tls_off(self) -> None:
        """
        When the URL says C{ssl=0} and the configuration C{ssl: true} with
        no files, then the URL wins: plain TCP on 5672.
        """
        clock = MemoryReactorClock()
        transport = AMQPTransport(TransportURL.parse("rabbit://10.0.0.1/?ssl=0"), reactor=clock,
                                  tls=TLSOptions(True))
        transport.start()
        [(host, port, factory, *_)] = clock.tcpClients
        self.assertEqual((port, _find_tls_factory(factory)), (5672, None))
        self.successResultOf(transport.stop())

    def test_files_without_tls_refused(self) -> None:
        """
        When the configuration names a CA file but nothing turns TLS on,
        then making the transport fails with ConfigError rather than
        connecting in plain text.
        """
        e = self.assertRaises(ConfigError, AMQPTransport, TransportURL.parse("rabbit://u:s3cret@h/"),
                              tls=TLSOptions(False, self.files["ca"]))
        self.assertIn("ssl_ca_file given but TLS is off", str(e))

    def test_bad_file_refused_at_construction(self) -> None:
        """
        When a TLS file cannot be used, then making the transport fails
        with ConfigError, before any connection.
        """
        e = self.assertRaises(ConfigError, get_transport, "rabbits://u:s3cret@h/?ssl_ca_file=/nonexistent")
        self.assertIn("ssl_ca_file '/nonexistent'", str(e))
        self.assertNotIn("s3cret", str(e))


class RoundRobinTLSTests(unittest.SynchronousTestCase):
    """
    L{RoundRobinEndpoint} with TLS settings.
    """

    def test_every_attempt_is_tls(self) -> None:
        """
        When TLS settings are given, then each attempt, to each host, is
        wrapped in TLS with the settings made for that host's name, made
        once per host.
        """
        clock = MemoryReactorClock()
        asked: List[str] = []

        def tls(host: str) -> Any:
            asked.append(host)
            return client_tls(TLSOptions(True))(host)

        endpoint = RoundRobinEndpoint(clock, (("10.0.0.1", 1), ("10.0.0.2", 2)), 5, lambda host, f: None, tls)
        for _ in range(3):
            endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
        self.assertEqual([_find_tls_factory(factory) is not None for _, _, factory, *_ in clock.tcpClients],
                         [True, True, True])
        self.assertEqual(asked, ["10.0.0.1", "10.0.0.2"])
        self.assertEqual(endpoint.index, 0)


class PerHostCredentialsTests(unittest.SynchronousTestCase):
    """
    Each host of a URL logs in with its own credentials.
    """

    def test_credentials_follow_the_host(self) -> None:
        """
        When the transport connects to the first host, then the second,
        then the protocol made for each carries that host's credentials.
        """
        clock = MemoryReactorClock()
        transport = AMQPTransport(TransportURL.parse("rabbit://a:b@10.0.0.1,c:d@10.0.0.2/vh"), reactor=clock,
                                  retry_interval=0.1, retry_jitter=0)
        transport.start()
        logins = []
        for attempt in range(2):
            host, port, factory, *_ = clock.tcpClients[attempt]
            built = factory.buildProtocol(None)
            amqp = built
            while not isinstance(amqp, AMQPProtocol):
                amqp = next(getattr(amqp, name) for name in ("_wrappedProtocol", "wrappedProtocol", "_protocol")
                            if hasattr(amqp, name))
            credentials = amqp.connection.params.credentials
            logins.append((host, credentials.username, credentials.password))
            factory.clientConnectionFailed(None, Failure(ConnectionError("refused")))
            clock.advance(1)
        self.assertEqual(logins, [("10.0.0.1", "a", "b"), ("10.0.0.2", "c", "d")])
        self.successResultOf(transport.stop())


class DescribeTLSLossTests(unittest.SynchronousTestCase):
    """
    A connection lost to a TLS failure is described as one.
    """

    def setUp(self) -> None:
        self.protocol = AMQPProtocol(pika.ConnectionParameters(), MemoryReactorClock(), _Owner())

    def test_plain_port(self) -> None:
        """
        When the TLS handshake fails because the port does not speak TLS,
        then the description says so and asks whether it is a TLS listener.
        """
        reason = Failure(SSL.Error([("SSL routines", "", "wrong version number")]))
        self.assertEqual(self.protocol.describe_loss(reason),
                         "TLS handshake failed: wrong version number (is this port a TLS listener?)")

    def test_unknown_ca(self) -> None:
        """
        When the broker's certificate does not chain to a trusted CA, then
        the description gives OpenSSL's reason.
        """
        reason = Failure(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        self.assertEqual(self.protocol.describe_loss(reason), "TLS handshake failed: certificate verify failed")

    def test_wrong_host_name(self) -> None:
        """
        When the broker's certificate names another host, then the
        description says so.
        """
        reason = Failure(VerificationError(errors=["mismatch"]))
        self.assertEqual(self.protocol.describe_loss(reason),
                         "TLS: the broker's certificate does not name the host connected to")


class TLSBrokerTests(unittest.TestCase):
    """
    Fault test: a RabbitMQ node of the test's own with a TLS listener whose
    certificate (naming C{localhost} only) a CA made by the test signs, and
    which asks every client for a certificate from that CA.

    @cvar transport_class: the AMQP transport used (see L{tests._clients}).
    """

    timeout = 180
    transport_class = AMQPTransport

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        check_available()
        self.files = make_certificates(self.mktemp(), server_names=("localhost",))
        node = self.node = RabbitMQNode()
        self.addCleanup(node.stop)
        (self.tls_port,) = free_ports(1)

        def copy(role: str) -> str:
            with open(self.files[role], "rb") as f:
                return node.write_file(f"{role}.pem", f.read())

        for line in (f"listeners.ssl.default = 127.0.0.1:{self.tls_port}",
                     f"ssl_options.cacertfile = {copy('ca')}",
                     f"ssl_options.certfile = {copy('server_cert')}",
                     f"ssl_options.keyfile = {copy('server_key')}",
                     "ssl_options.verify = verify_peer",
                     "ssl_options.fail_if_no_peer_cert = true"):
            node.add_config(line)
        yield node.start()
        yield poll(lambda: _listening(self.tls_port), f"the TLS listener on {self.tls_port}", START_DEADLINE)

    def transport(self, url: str, **options: Any) -> AMQPTransport:
        transport = self.transport_class(TransportURL.parse(url), reactor=reactor, **{**FAST, **options})
        self.addCleanup(transport.stop)
        return transport

    def client_files(self) -> str:
        return f"ssl_cert_file={self.files['client_cert']}&ssl_key_file={self.files['client_key']}"

    @defer.inlineCallbacks
    def round_trip(self, transport: AMQPTransport) -> Any:
        collector = Collector("ack")
        queue = Queue(f"tls-{uuid.uuid4().hex}", auto_delete=True)
        consumer = transport.consume(queue, collector)
        transport.start()
        yield consumer.whenActive()
        yield transport.publish(DEFAULT_EXCHANGE, queue.name, b"over TLS")
        yield poll(lambda: collector.bodies == [b"over TLS"], "the message came back")

    @defer.inlineCallbacks
    def test_tls_connection(self) -> Any:
        """
        When a transport is given C{rabbits://localhost:<tls port>} with
        the test's CA and a client certificate (in the URL's query, or as
        the configuration's C{ssl} keys with a plain C{rabbit://} URL), then
        a message goes round over TLS, and the broker lists each connection
        as a TLS one.
        """
        url = (f"rabbits://guest:guest@localhost:{self.tls_port}/?ssl_ca_file={self.files['ca']}&"
               f"{self.client_files()}")
        yield self.round_trip(self.transport(url, connection_name="by-url"))
        config = Config(ssl=True, ssl_ca_file=self.files["ca"], ssl_cert_file=self.files["client_combined"])
        yield self.round_trip(self.transport(f"rabbit://guest:guest@localhost:{self.tls_port}/",
                                             tls=TLSOptions.from_config(config), connection_name="by-config"))
        out, err, code = yield self.node.rabbitmqctl("list_connections", "--silent", "client_properties", "ssl")
        self.assertEqual(code, 0, err)
        lines = sorted(line for line in out.decode().splitlines() if "by-" in line)
        self.assertEqual(len(lines), 2, out)
        for line in lines:
            self.assertTrue(line.rstrip().endswith("true"), line)

    @defer.inlineCallbacks
    def test_refused(self) -> Any:
        """
        When TLS is asked for against the node's plain AMQP port, or with a
        CA that did not sign the broker's certificate, or with a host name
        the certificate does not give, or without a client certificate,
        then nothing connects, no plain-TCP session is made, and a publish
        fails with a TransportError that says what went wrong with TLS.
        """
        files = self.files
        cases = [
            (f"rabbits://guest:guest@localhost:{self.node.port}/?ssl_ca_file={files['ca']}&{self.client_files()}",
             "TLS handshake failed", "TLS listener?"),
            (f"rabbits://guest:guest@localhost:{self.tls_port}/?ssl_ca_file={files['other_ca']}&"
             f"{self.client_files()}", "TLS handshake failed", "certificate verify failed"),
            (f"rabbits://guest:guest@127.0.0.1:{self.tls_port}/?ssl_ca_file={files['ca']}&{self.client_files()}",
             "TLS: the broker's certificate does not name the host", ""),
            (f"rabbits://guest:guest@localhost:{self.tls_port}/?ssl_ca_file={files['ca']}",
             "TLS handshake failed", "certificate required"),
        ]
        for url, *expected in cases:
            transport = self.transport(url, publish_wait=1.0)
            transport.start()
            error = yield self.assertFailure(transport.publish(DEFAULT_EXCHANGE, "nowhere", b"x"), TransportError)
            for text in expected:
                self.assertIn(text, str(error), url)
            self.assertFalse(transport.is_connected)
            yield transport.stop()
        out, err, code = yield self.node.rabbitmqctl("list_connections", "--silent", "name")
        self.assertEqual((code, out.strip()), (0, b""), err)


TxAMQPTLSBrokerTests = on_txamqp(TLSBrokerTests)
