"""
Tests for L{novasvc.process.workers.twistd} and the C{--workers} option of
L{novasvc.process.tap}.
"""

import configparser
import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any, List

from twisted.application.service import Service
from twisted.internet import reactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from novasvc.process import launcher
from novasvc.process.launcher import HangupService
from novasvc.process.tap import Options, makeService
from novasvc.process.workers import KILL_GRACE, ParentLink, WorkerPool, WorkerStartError
from novasvc.process.workers.child import ENV_CHANNEL_FD, ENV_COUNT, ENV_INDEX
from novasvc.process.workers.twistd import make_worker, worker_argv
from tests.test_process_launcher import _ThreadCalls
from tests.test_core_service_process import _environ

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.join(os.path.dirname(HERE), "etc", "novasvc-echo.service")


def _parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """
    C{--workers} and C{--worker-index}.
    """

    def test_workers(self) -> None:
        """
        When C{--workers} is given, then it sets the C{workers} setting and
        the arguments are kept for the workers.
        """
        options = _parse("--workers", "3", "--host=h")
        self.assertEqual(options.settings.workers, 3)
        self.assertEqual(options.argv, ["--workers", "3", "--host=h"])
        self.assertEqual(_parse().settings.workers, 1)

    def test_workers_from_file(self) -> None:
        """
        When the file says C{workers: 4}, then that is the setting, and the
        option beats it.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("workers: 4\n")
        self.assertEqual(_parse(f"--config={path}").settings.workers, 4)
        self.assertEqual(_parse(f"--config={path}", "--workers=2").settings.workers, 2)

    def test_refused(self) -> None:
        """
        When C{--workers} or C{--worker-index} is not an integer >= 1, then
        twistd shows why.
        """
        for argv, words in [(["--workers=0"], "--workers: expected an integer >= 1, got '0'"),
                            (["--workers=many"], "--workers: expected an integer >= 1, got 'many'"),
                            (["--worker-index=-1"], "--worker-index: expected an integer >= 1")]:
            error = self.assertRaises(usage.UsageError, _parse, *argv)
            self.assertIn(words, str(error))

    def test_file_refused(self) -> None:
        """
        When the file says C{workers: 0}, then twistd exits with one line
        naming the key (no usage text: the options were right, the file is
        not).
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("workers: 0\n")
        error = self.assertRaises(SystemExit, _parse, f"--config={path}")
        self.assertIn("line 1: workers: expected an integer >= 1, got 0", str(error))
        self.assertTrue(str(error).startswith("novasvc: error: "), str(error))


class SupervisorTests(SynchronousTestCase):
    """
    L{makeService} with C{workers} above 1 builds the supervising parent.
    """

    def test_parent(self) -> None:
        """
        When workers is 2, then the service is a L{HangupService} around a
        L{WorkerPool} of 2, which SIGKILLs a worker
        C{graceful_shutdown_timeout} + 10 s after SIGTERM.
        """
        options = _parse("--workers=2", "--manager=novasvc.examples.echo.EchoManager")
        service = makeService(options, reactor=_ThreadCalls())
        self.assertIsInstance(service, HangupService)
        pool = service.service
        self.assertIsInstance(pool, WorkerPool)
        self.assertEqual(pool.count, 2)
        self.assertEqual(pool._stop_timeout, 60 + KILL_GRACE)
        self.assertEqual((KILL_GRACE, pool._hurry_timeout), (10, 8))

    def test_no_limit(self) -> None:
        """
        When C{graceful_shutdown_timeout} is 0 (no limit), then no worker is
        ever SIGKILLed by the stop.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("graceful_shutdown_timeout: 0\nworkers: 2\n")
        service = makeService(_parse(f"--config={path}"), reactor=_ThreadCalls())
        self.assertIsNone(service.service._stop_timeout)

    def test_worker_argv(self) -> None:
        """
        When the parent builds worker K's command, then it is twistd in the
        foreground without a pid file, with the parent's plugin options and
        C{--worker-index=K}, which twistd's own parser reads back, run
        with SIGINT ignored.
        """
        from twisted.scripts.twistd import ServerOptions

        argv = worker_argv(["--workers", "2", "--host=h"], 2)
        self.assertEqual(argv[:2], [sys.executable, "-c"])
        self.assertTrue(argv[2].endswith("from twisted.scripts.twistd import run; run()"), argv[2])
        # Before twistd, SIGINT is ignored.
        prelude = argv[2].replace("from twisted.scripts.twistd import run; run()",
                                  "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)")
        seen = subprocess.run([sys.executable, "-c", prelude], capture_output=True, text=True, timeout=30)
        self.assertEqual(seen.stdout.strip(), "True", seen.stderr)
        server = ServerOptions()
        server.parseOptions(argv[3:])
        self.assertTrue(server["nodaemon"])
        self.assertEqual(server["pidfile"], "")
        self.assertEqual(server.subCommand, "novasvc")
        self.assertEqual(server.subOptions["worker-index"], 2)
        self.assertEqual(server.subOptions["host"], "h")

    def test_parent_imports_light(self) -> None:
        """
        When the parent is built, then no manager, RPC, transport or
        database module is imported.
        """
        code = (
            "import json, sys\n"
            "from novasvc.process.tap import Options, makeService\n"
            "from tests.test_process_launcher import _ThreadCalls\n"
            "o = Options(); o.parseOptions(['--workers=2', '--manager=novasvc.examples.echo.EchoManager'])\n"
            "makeService(o, reactor=_ThreadCalls())\n"
            "print(json.dumps(sorted(sys.modules)))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], env=_environ(), capture_output=True, check=True,
                             timeout=60, cwd=os.path.dirname(HERE)).stdout
        modules = set(json.loads(out))
        heavy = {"novasvc.core.service", "novasvc.core.manager", "novasvc.rpc", "novasvc.transport.pika._transport",
                 "novasvc.examples.echo", "novasvc.db", "sqlalchemy", "pika"}
        self.assertEqual(heavy & modules, set())
        self.assertIn("novasvc.process.workers", modules)


class _Reactor(_ThreadCalls):
    """
    L{_ThreadCalls}, with the real reactor's C{adoptStreamConnection}.
    """

    def adoptStreamConnection(self, fd: int, family: int, factory: Any) -> Any:
        return reactor.adoptStreamConnection(fd, family, factory)


class WorkerTests(TestCase):
    """
    L{make_worker}: the worker side of C{twistd novasvc}.
    """

    def test_worker(self) -> None:
        """
        When the environment names this process worker 1 of 2 with a link,
        then the launcher tells the parent through a L{ParentLink}, logs
        JSON lines, and SIGINT is ignored once the reactor runs.
        """
        parent, child = socket.socketpair()
        self.addCleanup(parent.close)
        self.patch(os, "environ", {ENV_INDEX: "1", ENV_COUNT: "2", ENV_CHANNEL_FD: str(child.detach())})
        fake = _Reactor()
        options = _parse("--worker-index=1")
        service = make_worker(Service(), options, fake)
        self.assertIsInstance(service._notifier, ParentLink)
        link = service._notifier
        # As when the worker stops: closing the link then does not SIGTERM this process.
        self.addCleanup(lambda: link.stopping() and link._protocol.transport.loseConnection())
        self.assertEqual(service.logs.log_format, "json")
        previous = signal.getsignal(signal.SIGINT)
        self.addCleanup(signal.signal, signal.SIGINT, previous)
        [(call, args, kwargs)] = fake.queued
        call(*args, **kwargs)
        self.assertEqual(signal.getsignal(signal.SIGINT), signal.SIG_IGN)

    def test_not_started_by_a_parent(self) -> None:
        """
        When C{--worker-index} is given but the environment names no
        worker, then the service runs as a plain one.
        """
        self.patch(os, "environ", {})
        service = make_worker(Service(), _parse("--worker-index=1"), _Reactor())
        self.assertNotIsInstance(service._notifier, ParentLink)
        self.assertEqual(service.logs.log_format, "text")

    def test_malformed_identity(self) -> None:
        """
        When the environment's identity is malformed, then the worker exits
        with a one-line message.
        """
        self.patch(os, "environ", {ENV_INDEX: "zero"})
        error = self.assertRaises(SystemExit, make_worker, Service(), _parse("--worker-index=1"), _Reactor())
        self.assertIn("novasvc: error: NOVASVC_WORKER_INDEX must be an integer >= 1", str(error))


class StartErrorTests(SynchronousTestCase):
    """
    How the parent's launcher reports a worker that could not start.
    """

    def test_one_line(self) -> None:
        """
        When the pool's start fails with L{WorkerStartError}, then the
        launcher logs one line without a traceback and asks for status 1.
        """
        from twisted.internet import defer
        from twisted.logger import formatEvent, globalLogPublisher

        exits: List[int] = []
        self.patch(launcher, "_exit_after_twistd", exits.append)
        lines: List[str] = []
        observe = lambda event: lines.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        child = Service()
        child.startService = lambda: defer.fail(WorkerStartError("worker 1 of 2 exited with status 1"))
        service = HangupService(child, _ThreadCalls(), notifier=_Notifier())
        self.successResultOf(service.startService())
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertIn("The service failed to start: worker 1 of 2 exited with status 1", lines)
        self.assertEqual(exits, [1])


class _Notifier:
    def ready(self) -> None:
        pass

    def stopping(self) -> None:
        pass


class UnitFileTests(SynchronousTestCase):
    """
    The systemd unit suits C{workers: N}.
    """

    def test_kill_mode_mixed(self) -> None:
        """
        When systemd stops the unit, then its SIGTERM goes to the main
        process only (which stops its workers one SIGTERM each, so that
        each drains), and SIGKILL to every process at the timeout.
        """
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        with open(UNIT, encoding="utf-8") as f:
            unit.read_string(f.read())
        self.assertEqual(unit["Service"]["KillMode"], "mixed")
