"""
End-to-end tests of L{novasvc.process.launcher} under a real C{twistd} process: the
second SIGTERM, the exit status and pid file after a failed start, daemon
mode's parent process, and start-up retries.
"""

import os
import signal
import time
import uuid

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.transport import AMQPTransport
from novasvc.transport.url import TransportURL
from tests._journal_manager import read_journal
from tests._services import free_port, poll, require_service
from tests.test_core_service_process import TwistdProcessMixin

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class FailedStartProcessTests(TwistdProcessMixin, TestCase):
    """
    A start that cannot succeed, under C{twistd -n} and as a daemon.
    """

    timeout = 90

    def missing_directory_url(self):
        self.missing = os.path.join(os.path.abspath(self.mktemp()), "no", "such")
        return f"sqlite:///{self.missing}/services.sqlite"

    @defer.inlineCallbacks
    def test_permanent_error_exits_1_and_removes_pidfile(self):
        """
        When the SQLite file's directory does not exist, then twistd -n
        logs one error line naming the directory, exits 1 and removes its
        pid file, without a traceback.
        """
        url = self.missing_directory_url()
        process = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://",
            f"--database-connection={url}", twistd=("-n", "--pidfile=twistd.pid"))
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertEqual(code, 1, out)
        errors = [line for line in out.splitlines() if "#error]" in line]
        self.assertEqual(len(errors), 1, out)
        self.assertIn(f"The service failed to start: database sqlite:///{self.missing}/services.sqlite "
                      f"cannot be used: unable to open database file: the directory {self.missing} "
                      f"does not exist", errors[0])
        self.assertNotIn("Traceback", out)
        self.assertNotIn("retrying", out)
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "twistd.pid")))

    @defer.inlineCallbacks
    def test_failed_start_runs_exit_handlers(self):
        """
        When the manager's start fails under twistd -n, then the process
        exits 1 with its pid file removed, and the atexit handlers
        registered before the failure (here by the manager's module) run.
        """
        marker = os.path.abspath(self.mktemp())
        process = self.start_twistd(
            "--manager=tests._atexit_manager.FailingManager", "--transport-url=memory://",
            "--database-connection=sqlite://", env={"NOVASVC_TEST_ATEXIT": marker},
            twistd=("-n", "--pidfile=twistd.pid"))
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertEqual(code, 1, out)
        self.assertIn("this manager never starts", out)
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "twistd.pid")))
        self.assertTrue(os.path.exists(marker), out)

    def start_daemon(self, url):
        """
        Start twistd without C{-n}: its parent process is C{self.parent}
        (its output in C{self.logpath}), the daemon logs to
        C{self.daemon_log} and writes its pid to C{self.pidfile}.
        """
        self.parent = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://",
            f"--database-connection={url}",
            twistd=("--pidfile=twistd.pid", "--logfile=daemon.log"))
        self.pidfile = os.path.join(self.workdir, "twistd.pid")
        self.daemon_log = os.path.join(self.workdir, "daemon.log")

    def daemon_output(self):
        try:
            with open(self.daemon_log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @defer.inlineCallbacks
    def test_daemon_parent_exits_1(self):
        """
        When twistd runs as a daemon and the start fails for good, then the
        parent process exits 1 and prints the error.
        """
        self.start_daemon("sqlite:///no/such/services.sqlite")  # in the daemon's directory
        code = yield self.wait_exit(self.parent)
        out = self.output()
        self.assertEqual(code, 1, out)
        self.assertIn("An error has occurred: b'database sqlite:///no/such/services.sqlite cannot be "
                      "used: unable to open database file", out)
        yield poll(lambda: not os.path.exists(self.pidfile), "the daemon removed its pid file",
                   interval=0.1)
        self.assertIn("The service failed to start", self.daemon_output())

    @defer.inlineCallbacks
    def test_daemon_parent_waits_until_ready(self):
        """
        When twistd runs as a daemon and the service starts, then the
        parent process exits 0 only once the service is ready; SIGTERM
        then stops the daemon, which removes its pid file.
        """
        self.start_daemon(f"sqlite:///{os.path.abspath(self.mktemp())}.sqlite")
        code = yield self.wait_exit(self.parent)
        self.assertEqual(code, 0, self.output())
        self.assertIn("is ready", self.daemon_output())
        with open(self.pidfile) as f:
            pid = int(f.read())

        def kill():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

        self.addCleanup(kill)
        os.kill(pid, signal.SIGTERM)
        yield poll(lambda: not _alive(pid), "the daemon exited", interval=0.1)
        self.assertFalse(os.path.exists(self.pidfile))


class RetryingStartProcessTests(TwistdProcessMixin, TestCase):
    """
    A start that retries while the database cannot be reached.
    """

    timeout = 90

    @defer.inlineCallbacks
    def test_retries_logged_then_sigterm(self):
        """
        When nothing listens on the database port, then each attempt is
        logged with its delay (1, 2, 4, 8 s); SIGTERM then ends the process
        with status 0 well before the next attempt was due, and nothing is attempted or started after
        the stop.
        """
        require_service("PostgreSQL", "127.0.0.1", 5432)  # psycopg2 is installed with it
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/novasvc"
        process = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://",
            f"--database-connection={url}", "--report-interval=1")

        def retried():
            return "(attempt 4)" in self.output()

        yield poll(retried, "four attempts were logged", interval=0.1)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        seconds = time.monotonic() - began
        out = self.output()
        self.assertEqual(code, 0, out)
        self.assertLess(seconds, 7, out)  # generous for a loaded machine, and short of the 8 s delay
        retries = [line.split("#warn] ", 1)[1] for line in out.splitlines()
                   if "Could not open the database" in line]
        for n, delay in ((1, 1), (2, 2), (3, 4), (4, 8)):
            self.assertTrue(retries[n - 1].startswith(f"Could not open the database (attempt {n}): "
                                                      "OperationalError: connection to server"), retries)
            self.assertTrue(retries[n - 1].endswith(f"Connection refused Is the server running on that "
                                                    f"host and accepting TCP/IP connections?; retrying "
                                                    f"in {delay} s"), retries)
        after_stop = out.split("Stopping novasvc-echo", 1)[1]
        self.assertNotIn("Could not", after_stop)
        self.assertIn("Stopped before the service was ready", after_stop)
        self.assertNotIn("is ready", out)
        print(f"\n  retry lines before SIGTERM: {len(retries)}; exit {code} {seconds:.2f} s after SIGTERM")


class SecondSigtermProcessTests(TwistdProcessMixin, TestCase):
    """
    A second SIGTERM during the drain stops the service at once, and the
    request it was running goes back to the broker.
    """

    timeout = 120

    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)
        tag = uuid.uuid4().hex[:8]
        self.exchange, self.topic = f"novasvc-lc-{tag}", f"lc-{tag}"
        self.journal = os.path.abspath(self.mktemp())

    def config(self, max_sleep=None):
        """
        @return: the path of a config file for the journal manager.
        """
        path = os.path.abspath(self.mktemp()) + ".yaml"
        with open(path, "w") as f:
            f.write(f"journal:\n  path: {self.journal}\n")
            if max_sleep is not None:
                f.write(f"  max_sleep: {max_sleep}\n")
        return path

    def start_worker(self, host, max_sleep=None, twistd=("-n", "--pidfile=")):
        return self.start_twistd(
            f"--config={self.config(max_sleep)}", "--manager=tests._journal_manager.JournalManager",
            f"--topic={self.topic}", f"--host={host}", f"--transport-url={RABBIT}",
            f"--control-exchange={self.exchange}",
            f"--database-connection=sqlite:///{os.path.abspath(self.mktemp())}.sqlite",
            twistd=twistd)

    def client(self):
        transport = AMQPTransport(TransportURL.parse(RABBIT), reactor=reactor)
        transport.start()
        self.addCleanup(transport.stop)
        return RPCClient(transport, Target(topic=self.topic), control_exchange=self.exchange,
                         timeout=30, clock=reactor)

    def has(self, event, key, pid=None):
        return any(e == event and k == key and (pid is None or p == pid)
                   for e, p, k in read_journal(self.journal))

    @defer.inlineCallbacks
    def test_second_sigterm_stops_now(self):
        """
        When a second SIGTERM arrives while the stop waits for a cast still
        running, then the process says so and exits 0 promptly, without a
        traceback, removing its pid file; the cast goes back to the broker
        and another worker runs it.
        """
        first = self.start_worker("lc-1", twistd=("-n", "--pidfile=twistd.pid"))
        first_dir, first_output = self.workdir, self.output
        yield poll(lambda: "is ready" in first_output(), "the first worker is ready", interval=0.1)
        yield self.client().cast({}, "record", key="slow", seconds=60)
        yield poll(lambda: self.has("begin", "slow", first.pid), "the cast began", interval=0.1)
        first.send_signal(signal.SIGTERM)
        yield poll(lambda: "Stopping novasvc-" in first_output(), "the graceful stop began", interval=0.1)
        began = time.monotonic()
        first.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(first)
        seconds = time.monotonic() - began
        out = first_output()
        self.assertEqual(code, 0, out)
        self.assertLess(seconds, 30, out)  # generous for a loaded machine; the cast runs for 60 s
        self.assertIn("SIGTERM received again: stopping now", out)
        for text in ("ReactorNotRunning", "Traceback", "#critical]"):
            self.assertNotIn(text, out)
        self.assertFalse(os.path.exists(os.path.join(first_dir, "twistd.pid")))
        self.assertFalse(self.has("end", "slow"))

        second = self.start_worker("lc-2", max_sleep=0)
        yield poll(lambda: self.has("end", "slow", second.pid), "the second worker ran the cast",
                   interval=0.1)
        second.send_signal(signal.SIGTERM)
        self.assertEqual((yield self.wait_exit(second)), 0, self.output())
        print(f"\n  exit 0 {seconds:.2f} s after the second SIGTERM; the cast ran again on the other worker")


class DaemonStatusTests(TestCase):
    """
    twistd's status pipe, which L{novasvc.process.launcher} takes over in daemon
    mode, is where it was (it is not a public API).
    """

    def test_twistd_keeps_status_pipe_in_config(self):
        """
        When twistd daemonizes, then it keeps the status pipe under
        C{config["statusPipe"]} and writes to it only when that is not
        C{None} (the contract L{novasvc.process.launcher.HangupService} relies on).
        """
        import inspect

        from twisted.scripts import _twistd_unix

        source = inspect.getsource(_twistd_unix.UnixApplicationRunner)
        self.assertIn('self.config["statusPipe"] = self.daemonize(reactor)', source)
        self.assertIn('statusPipe = self.config.get("statusPipe", None)', source)
