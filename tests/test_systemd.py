"""
Tests for L{novasvc.systemd}: notifications received by a real C{AF_UNIX}
datagram socket that each test binds, at a path in a temporary directory or
in the abstract namespace, standing in for systemd.
"""

import os
import shutil
import socket
import sys
import tempfile
import uuid
from typing import List, Tuple

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from novasvc.systemd import Notifier


class NotifierTests(SynchronousTestCase):
    """
    L{Notifier} sends C{sd_notify} datagrams to C{NOTIFY_SOCKET}.
    """

    def setUp(self) -> None:
        self.observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def warnings(self) -> List[str]:
        """
        @return: the text of the warnings logged so far.
        """
        return [formatEvent(e) for e in self.observer if e["log_level"] == LogLevel.warn]

    def listen(self, address: str) -> socket.socket:
        """
        Bind a non-blocking datagram socket, closed at cleanup.

        @param address: a path, or an abstract name starting with NUL.
        @return: the socket.
        """
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(receiver.close)
        receiver.bind(address)
        receiver.setblocking(False)
        return receiver

    def listen_at_path(self) -> Tuple[socket.socket, str]:
        """
        Bind a datagram socket in a new temporary directory (short enough
        for C{sun_path}), removed at cleanup.

        @return: the socket and its path.
        """
        directory = tempfile.mkdtemp(prefix="novasvc-sd-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "notify")
        return self.listen(path), path

    def received(self, receiver: socket.socket) -> List[bytes]:
        """
        @return: every datagram waiting on C{receiver}.
        """
        datagrams = []
        while True:
            try:
                datagrams.append(receiver.recv(4096))
            except BlockingIOError:
                return datagrams

    def test_unset(self) -> None:
        """
        When C{NOTIFY_SOCKET} is unset or empty, then every method sends
        nothing, returns C{False} and logs nothing.
        """
        for environ in ({}, {"NOTIFY_SOCKET": ""}):
            notifier = Notifier(environ=environ)
            self.assertIsNone(notifier.socket_name)
            self.assertEqual(
                [notifier.ready(), notifier.stopping(), notifier.status("x")],
                [False, False, False],
            )
        self.assertEqual(list(self.observer), [])

    def test_ready(self) -> None:
        """
        When the service is ready, then C{READY=1} reaches the socket named
        by a filesystem path.
        """
        receiver, path = self.listen_at_path()
        self.assertTrue(Notifier(environ={"NOTIFY_SOCKET": path}).ready())
        self.assertEqual(self.received(receiver), [b"READY=1"])

    def test_ready_with_status_and_mainpid(self) -> None:
        """
        When C{ready} is given a status and a main pid, then one datagram
        carries C{READY=1}, C{MAINPID=} and C{STATUS=}, one per line.
        """
        receiver, path = self.listen_at_path()
        notifier = Notifier(environ={"NOTIFY_SOCKET": path})
        self.assertTrue(notifier.ready(status="Consuming echo", mainpid=4242))
        self.assertEqual(
            self.received(receiver), [b"READY=1\nMAINPID=4242\nSTATUS=Consuming echo"]
        )

    def test_bad_mainpid(self) -> None:
        """
        When the main pid is not a positive C{int}, then C{ready} raises
        C{ValueError} and sends nothing.
        """
        receiver, path = self.listen_at_path()
        notifier = Notifier(environ={"NOTIFY_SOCKET": path})
        for pid in (0, -1, True, "12"):
            self.assertRaises(ValueError, notifier.ready, mainpid=pid)
        self.assertEqual(self.received(receiver), [])

    def test_stopping(self) -> None:
        """
        When the service stops, then C{STOPPING=1} is sent, with the status
        when one is given.
        """
        receiver, path = self.listen_at_path()
        notifier = Notifier(environ={"NOTIFY_SOCKET": path})
        self.assertTrue(notifier.stopping())
        self.assertTrue(notifier.stopping(status="Draining 3 calls"))
        self.assertEqual(
            self.received(receiver), [b"STOPPING=1", b"STOPPING=1\nSTATUS=Draining 3 calls"]
        )

    def test_status_is_one_line(self) -> None:
        """
        When the status text holds line breaks and non-ASCII text, then it is
        sent as one UTF-8 C{STATUS=} line, so it cannot add assignments.
        """
        receiver, path = self.listen_at_path()
        notifier = Notifier(environ={"NOTIFY_SOCKET": path})
        self.assertTrue(notifier.status("up\nREADY=1 – été"))
        self.assertEqual(self.received(receiver), ["STATUS=up READY=1 – été".encode()])

    def test_abstract_socket(self) -> None:
        """
        When C{NOTIFY_SOCKET} starts with C{@}, then the message goes to that
        name in the abstract namespace.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("abstract AF_UNIX sockets are a Linux feature")
        name = f"novasvc-test-{uuid.uuid4().hex}"
        receiver = self.listen("\0" + name)
        self.assertTrue(Notifier(environ={"NOTIFY_SOCKET": "@" + name}).ready())
        self.assertEqual(self.received(receiver), [b"READY=1"])

    def test_default_environment(self) -> None:
        """
        When no environment is passed, then C{os.environ} is read.
        """
        receiver, path = self.listen_at_path()
        self.patch(os, "environ", {"NOTIFY_SOCKET": path})
        self.assertTrue(Notifier().stopping())
        self.assertEqual(self.received(receiver), [b"STOPPING=1"])

    def test_nobody_listening(self) -> None:
        """
        When nothing is bound at the named path, then the send returns
        C{False} without raising and logs one warning naming the message and
        the socket.
        """
        directory = tempfile.mkdtemp(prefix="novasvc-sd-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "absent")
        self.assertFalse(Notifier(environ={"NOTIFY_SOCKET": path}).ready())
        [warning] = self.warnings()
        self.assertIn("READY=1", warning)
        self.assertIn(path, warning)

    def test_unsupported_name(self) -> None:
        """
        When C{NOTIFY_SOCKET} is neither an absolute path nor C{@name} (a
        relative path, a C{vsock:} address), then nothing is sent, C{False}
        is returned and one warning is logged for each attempt.
        """
        for name in ("notify", "vsock:2:1234"):
            self.assertFalse(Notifier(environ={"NOTIFY_SOCKET": name}).stopping())
        self.assertEqual(len(self.warnings()), 2)
        self.assertIn("absolute path", self.warnings()[0])

    def test_full_queue_does_not_block(self) -> None:
        """
        When the receiver reads nothing and its queue fills up, then a send
        fails at once with C{False} and a warning instead of waiting.
        """
        receiver, path = self.listen_at_path()
        notifier = Notifier(environ={"NOTIFY_SOCKET": path})
        sent = 0
        while notifier.status(f"message {sent}"):
            sent += 1
            self.assertLess(sent, 100000, "the queue never filled up")
        self.assertEqual(len(self.warnings()), 1)
        self.assertEqual(len(self.received(receiver)), sent)
