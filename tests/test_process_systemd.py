"""
Tests for L{novasvc.process.systemd}: notifications received by a real C{AF_UNIX}
datagram socket that each test binds, at a path in a temporary directory or
in the abstract namespace, standing in for systemd; and for the sample unit
C{etc/novasvc-echo.service} that relies on them.
"""

import configparser
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from typing import List, Tuple

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from novasvc.config import Config
from novasvc.config.loader import load_object
from novasvc.core.manager import Manager
from novasvc.process.systemd import Notifier

ETC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "etc")
UNIT = os.path.join(ETC, "novasvc-echo.service")


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


def _seconds(value: str) -> float:
    """
    @param value: a systemd time span in plain seconds or with one unit
        (C{90}, C{90s}, C{2min}).
    @return: the span in seconds.
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value.strip())
    if match is None:
        raise AssertionError(f"not a time span this test reads: {value!r}")
    return float(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)


class UnitFileTests(SynchronousTestCase):
    """
    C{etc/novasvc-echo.service} runs C{twistd -n novasvc} as a C{Type=notify}
    service, with paths that agree with its installation comment.
    """

    def setUp(self) -> None:
        with open(UNIT, encoding="utf-8") as f:
            self.text = f.read()
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(self.text)
        self.service = unit["Service"]
        self.unit = unit
        self.header = "\n".join(
            line for line in self.text.splitlines() if line.startswith("#")
        )
        self.argv = shlex.split(self.service["ExecStart"])

    def twistd_options(self) -> ServerOptions:
        """
        @return: C{ExecStart}'s arguments parsed by twistd itself, with the
            installed configuration file replaced by the sample it is
            installed from.
        """
        installed = "--config=/etc/novasvc/novasvc.yaml"
        self.assertIn(installed, self.argv)
        argv = [
            "--config=" + os.path.join(ETC, "novasvc.yaml") if arg == installed else arg
            for arg in self.argv[1:]
        ]
        options = ServerOptions()
        options.parseOptions(argv)
        return options

    def test_notify(self) -> None:
        """
        When systemd reads the unit, then it waits for C{READY=1} from the
        main process only.
        """
        self.assertEqual(self.service["Type"], "notify")
        self.assertEqual(self.service["NotifyAccess"], "main")

    def test_exec_start(self) -> None:
        """
        When twistd parses C{ExecStart}, then it runs the C{novasvc} plugin
        in the foreground without a pid file, with the echo manager, from an
        absolute path to C{twistd}.
        """
        self.assertTrue(os.path.isabs(self.argv[0]))
        self.assertEqual(os.path.basename(self.argv[0]), "twistd")
        options = self.twistd_options()
        self.assertTrue(options["nodaemon"])
        self.assertEqual(options["pidfile"], "")
        self.assertEqual(options.subCommand, "novasvc")
        manager = options.subOptions["manager"]
        self.assertTrue(issubclass(load_object(manager), Manager))

    def test_paths_agree_with_installation(self) -> None:
        """
        When the installation comment is followed, then the virtualenv that
        holds C{twistd}, the configuration file, the unit's own path, the
        user and the group are the ones the unit uses.
        """
        venv = os.path.dirname(os.path.dirname(self.argv[0]))
        self.assertIn(f"python3 -m venv {venv} && {venv}/bin/pip install", self.header)
        self.assertIn("etc/novasvc.yaml /etc/novasvc/novasvc.yaml", self.header)
        self.assertIn(
            "etc/novasvc-echo.service /etc/systemd/system/novasvc-echo.service", self.header
        )
        self.assertIn(f"systemctl enable --now {os.path.basename(UNIT)}", self.header)
        user = self.service["User"]
        self.assertEqual(self.service["Group"], user)
        self.assertRegex(self.header, rf"useradd --system .* {re.escape(user)}\n")
        self.assertIn(f"-g {self.service['Group']} etc/novasvc.yaml", self.header)

    def test_working_directory(self) -> None:
        """
        When the service starts, then its working directory is the state
        directory systemd creates for it under C{/var/lib}.
        """
        self.assertEqual(
            self.service["WorkingDirectory"], "/var/lib/" + self.service["StateDirectory"]
        )

    def test_reload_and_stop(self) -> None:
        """
        When the unit is reloaded, then the main process gets SIGHUP; when
        it is stopped, SIGTERM, with more time to exit than the default
        C{graceful_shutdown_timeout}.
        """
        self.assertEqual(self.service["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertEqual(self.service["KillSignal"], "SIGTERM")
        self.assertGreater(
            _seconds(self.service["TimeoutStopSec"]), Config().graceful_shutdown_timeout
        )

    def test_systemd_analyze(self) -> None:
        """
        When C{systemd-analyze verify} checks the unit (with C{twistd} taken
        from this Python's installation), then it succeeds and reports
        nothing about the unit.
        """
        analyze = shutil.which("systemd-analyze")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        if analyze is None or not os.access(twistd, os.X_OK):
            raise SkipTest("needs systemd-analyze and an installed twistd")
        directory = tempfile.mkdtemp(prefix="novasvc-unit-")
        self.addCleanup(shutil.rmtree, directory)
        copy = os.path.join(directory, os.path.basename(UNIT))
        with open(copy, "w", encoding="utf-8") as f:
            f.write(self.text.replace(self.argv[0], twistd))
        result = subprocess.run(
            [analyze, "verify", copy], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn(os.path.basename(UNIT), result.stderr)
