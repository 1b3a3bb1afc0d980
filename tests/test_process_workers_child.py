"""
Tests for L{novasvc.process.workers.child}.
"""

import os
import socket

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.process.workers import ParentLink, WorkerIdentity, inherited_port, listen_socket
from novasvc.process.workers.child import ENV_CHANNEL_FD, ENV_COUNT, ENV_INDEX, ENV_LISTEN_FDS
from tests._services import poll


class IdentityTests(SynchronousTestCase):
    """
    L{WorkerIdentity.from_environ}.
    """

    def test_not_a_worker(self) -> None:
        """
        When the index is not in the environment, then this is no worker.
        """
        self.assertIsNone(WorkerIdentity.from_environ({}))

    def test_round_trip(self) -> None:
        """
        When an identity is written to the environment, then reading it
        gives it back.
        """
        identity = WorkerIdentity(2, 3, 3, (4, 5))
        self.assertEqual(identity.environ(), {ENV_INDEX: "2", ENV_COUNT: "3", ENV_CHANNEL_FD: "3",
                                              ENV_LISTEN_FDS: "4,5"})
        self.assertEqual(WorkerIdentity.from_environ(identity.environ()), identity)
        bare = WorkerIdentity(1, 1)
        self.assertEqual(WorkerIdentity.from_environ(bare.environ()), bare)

    def test_malformed(self) -> None:
        """
        When a variable is malformed, then L{ValueError} names it.
        """
        for environ, name in [
            ({ENV_INDEX: "x", ENV_COUNT: "2"}, ENV_INDEX),
            ({ENV_INDEX: "0", ENV_COUNT: "2"}, ENV_INDEX),
            ({ENV_INDEX: "3", ENV_COUNT: "2"}, ENV_COUNT),
            ({ENV_INDEX: "1", ENV_COUNT: "2", ENV_CHANNEL_FD: "-1"}, ENV_CHANNEL_FD),
            ({ENV_INDEX: "1", ENV_COUNT: "2", ENV_LISTEN_FDS: "4,x"}, ENV_LISTEN_FDS),
        ]:
            error = self.assertRaises(ValueError, WorkerIdentity.from_environ, environ)
            self.assertIn(name, str(error))


class ParentLinkTests(TestCase):
    """
    L{ParentLink} over a real socket pair.
    """

    def link(self, **kwargs):
        """
        @return: the parent's end (a non-blocking socket) and a
            L{ParentLink} on the other end.
        """
        parent, child = socket.socketpair()
        self.addCleanup(parent.close)
        parent.setblocking(False)
        self.gone = []
        link = ParentLink(reactor, child.detach(), on_parent_gone=lambda: self.gone.append(True))
        self.addCleanup(lambda: link._protocol.transport.loseConnection())
        return parent, link

    def read(self, sock, wanted: bytes):
        received = []

        def arrived():
            try:
                received.append(sock.recv(100))
            except BlockingIOError:
                pass
            return b"".join(received) == wanted

        return poll(arrived, f"the parent read {wanted!r}")

    @defer.inlineCallbacks
    def test_ready_and_stopping(self) -> None:
        """
        When the worker is ready, then the parent reads C{READY=1}; when it
        stops, C{STOPPING=1}; a status line is not sent.
        """
        parent, link = self.link()
        self.assertTrue(link.ready())
        yield self.read(parent, b"READY=1\n")
        self.assertFalse(link.status("busy"))
        self.assertTrue(link.stopping())
        yield self.read(parent, b"STOPPING=1\n")

    @defer.inlineCallbacks
    def test_parent_gone(self) -> None:
        """
        When the parent's end closes while the worker runs, then the worker
        is told once, and later sends report failure.
        """
        parent, link = self.link()
        parent.close()
        yield poll(lambda: self.gone, "the worker heard that its parent is gone")
        self.assertEqual(self.gone, [True])
        self.assertFalse(link.ready())

    @defer.inlineCallbacks
    def test_gone_while_stopping(self) -> None:
        """
        When the parent's end closes after the worker began to stop, then
        that is expected: nothing is done.
        """
        parent, link = self.link()
        link.stopping()
        yield self.read(parent, b"STOPPING=1\n")
        parent.close()
        yield poll(lambda: link._gone, "the link closed")
        self.assertEqual(self.gone, [])


class InheritedPortTests(TestCase):
    """
    L{inherited_port}.
    """

    def test_not_a_worker(self) -> None:
        """
        When this process is not a worker, then L{ValueError} says so.
        """
        self.patch(os, "environ", {})
        error = self.assertRaises(ValueError, inherited_port, reactor, Factory())
        self.assertEqual(str(error), f"not a worker process: {ENV_INDEX} is not set")

    def test_no_such_socket(self) -> None:
        """
        When the worker inherited fewer sockets, then L{ValueError} says how
        many.
        """
        error = self.assertRaises(ValueError, inherited_port, reactor, Factory(), 1,
                                  WorkerIdentity(1, 2, None, (4,)))
        self.assertEqual(str(error), "worker 1 inherited 1 listening sockets, there is no socket 1")

    def test_adopts(self) -> None:
        """
        When the worker has the socket, then it listens on the parent's port.
        """
        bound = listen_socket("tcp:0:interface=127.0.0.1")
        self.addCleanup(bound.close)
        port = inherited_port(reactor, Factory(), 0, WorkerIdentity(1, 1, None, (os.dup(bound.fileno()),)))
        self.addCleanup(port.stopListening)
        self.assertEqual(port.getHost().port, bound.port)
