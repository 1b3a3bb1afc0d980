"""
Tests for L{novasvc.process.workers.sockets}.
"""

import os
import socket

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.wire import Echo
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.process.workers import adopt_listening_port, listen_socket


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class ListenSocketTests(SynchronousTestCase):
    """
    L{listen_socket} binds what a Twisted endpoint string says.
    """

    def listen(self, description: str):
        bound = listen_socket(description)
        self.addCleanup(bound.close)
        return bound

    def test_port_zero(self) -> None:
        """
        When port 0 is asked on an interface, then the socket is bound
        there, listening, non-blocking, and the real port is reported.
        """
        bound = self.listen("tcp:0:interface=127.0.0.1")
        self.assertEqual(bound.host, "127.0.0.1")
        self.assertGreater(bound.port, 0)
        self.assertEqual(bound.sock.getsockname(), ("127.0.0.1", bound.port))
        self.assertEqual(bound.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), 1)
        self.assertFalse(bound.sock.getblocking())
        self.assertEqual(bound.fileno(), bound.sock.fileno())
        socket.create_connection(("127.0.0.1", bound.port), timeout=5).close()

    def test_all_interfaces(self) -> None:
        """
        When no interface is given, then the socket is bound on every IPv4
        address.
        """
        bound = self.listen("tcp:0")
        self.assertEqual(bound.host, "0.0.0.0")

    def test_ipv6(self) -> None:
        """
        When a C{tcp6:} endpoint or an IPv6 interface is given, then the
        socket is an IPv6 one.
        """
        if not _ipv6():
            raise self.skipTest("no IPv6 loopback here")
        for description in ("tcp6:0:interface=\\:\\:1", "tcp:0:interface=\\:\\:1"):
            bound = self.listen(description)
            self.assertEqual(bound.sock.family, socket.AF_INET6)
            self.assertEqual(bound.host, "::1")

    def test_backlog(self) -> None:
        """
        When a backlog is given, then it is accepted (the kernel does not
        tell it back; the socket listens).
        """
        bound = self.listen("tcp:0:interface=127.0.0.1:backlog=7")
        self.assertEqual(bound.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), 1)

    def test_refused_descriptions(self) -> None:
        """
        When the string is not a C{tcp:} or C{tcp6:} server endpoint, then
        L{ValueError} quotes it.
        """
        for description, words in [
            ("unix:/tmp/novasvc.sock", "only tcp: and tcp6:"),
            ("tcp:http-alt", "not a server endpoint string: 'tcp:http-alt'"),
            ("nonsense:1", "not a server endpoint string: 'nonsense:1'"),
        ]:
            error = self.assertRaises(ValueError, listen_socket, description)
            self.assertIn(words, str(error))

    def test_long_description_clipped(self) -> None:
        """
        When the refused string is long, then the message quotes it clipped.
        """
        error = self.assertRaises(ValueError, listen_socket, "x" * 5000)
        self.assertLess(len(str(error)), 300)

    def test_in_use(self) -> None:
        """
        When the port is taken by a listening socket, then
        L{CannotListenError} names the address.
        """
        taken = self.listen("tcp:0:interface=127.0.0.1")
        error = self.assertRaises(CannotListenError, listen_socket, f"tcp:{taken.port}:interface=127.0.0.1")
        self.assertEqual((error.interface, error.port), ("127.0.0.1", taken.port))


class AdoptTests(TestCase):
    """
    L{adopt_listening_port} serves a factory on an inherited socket.
    """

    @defer.inlineCallbacks
    def test_echo(self) -> None:
        """
        When a copy of the parent's listening socket is adopted with an
        Echo factory, then a client connecting to the port gets its bytes
        back; stopping the port leaves the parent's socket open.
        """
        bound = listen_socket("tcp:0:interface=127.0.0.1")
        self.addCleanup(bound.close)
        port = adopt_listening_port(reactor, os.dup(bound.fileno()), Factory.forProtocol(Echo))
        self.addCleanup(port.stopListening)
        self.assertEqual(port.getHost().port, bound.port)
        received = defer.Deferred()

        class Client(Protocol):
            def connectionMade(self):
                self.transport.write(b"ping")

            def dataReceived(self, data):
                self.transport.loseConnection()
                received.callback(data)

        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", bound.port), Client())
        self.assertEqual((yield received), b"ping")
        yield port.stopListening()
        self.assertEqual(bound.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), 1)

    def test_not_a_socket(self) -> None:
        """
        When the descriptor is not a socket, then L{ValueError} says so.
        """
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        error = self.assertRaises(ValueError, adopt_listening_port, reactor, read, Factory())
        self.assertIn(f"file descriptor {read} is not a socket", str(error))

    def test_not_listening(self) -> None:
        """
        When the socket does not listen, then L{ValueError} says so and the
        descriptor is left open.
        """
        sock = socket.socket()
        self.addCleanup(sock.close)
        error = self.assertRaises(ValueError, adopt_listening_port, reactor, sock.fileno(), Factory())
        self.assertIn("is not a listening TCP socket", str(error))
        self.assertGreaterEqual(sock.fileno(), 0)
        sock.getsockname()
