"""
End-to-end tests of L{novasvc.core.service} under a real C{twistd} process.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid

from twisted.internet import defer, reactor, task
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from novasvc.examples.echo import EchoManager
from novasvc.periodic import periodic_task
from tests._services import poll, require_service

_log = Logger()


class TickingManager(EchoManager):
    """
    The echo manager with a periodic task that runs at once, then every
    0.2 s, and logs one line at debug, info and warning each time.
    """

    @periodic_task(spacing=0.2, run_immediately=True)
    def _tick(self, context):
        for level in ("debug", "info", "warn"):
            getattr(_log, level)("tick at {name}", name=level)


def _bin(name):
    """
    @return: the path of console script C{name} beside the running interpreter.
    """
    return os.path.join(os.path.dirname(sys.executable), name)


def _environ():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # The checkout is importable whether novasvc is installed or not.
    env["PYTHONPATH"] = here
    return env


class TwistdProcessMixin:
    def start_twistd(self, *args, env=None, twistd=("-n", "--pidfile=")):
        """
        Start C{twistd TWISTD novasvc ARGS} in a fresh directory,
        C{self.workdir}, its output going to C{self.logpath}.

        @param env: more environment variables for it (C{dict}), or C{None}.
        @param twistd: twistd's own options.
        @return: the C{subprocess.Popen}.
        """
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.logpath = os.path.join(self.workdir, "twistd.log")
        self.logfile = open(self.logpath, "wb")
        self.addCleanup(self.logfile.close)
        process = subprocess.Popen(
            [_bin("twistd"), *twistd, "novasvc", *args],
            cwd=self.workdir, env={**_environ(), **(env or {})}, stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )

        def reap():
            if process.poll() is None:
                process.kill()
                process.wait()

        self.addCleanup(reap)
        return process

    def output(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_exit(self, process):
        """
        Fire with the exit code of C{process} (fails after the deadline).
        """

        exited = poll(lambda: process.poll() is not None, "the twistd process exited", interval=0.1)
        return exited.addCallback(lambda _: process.returncode)


class MemoryTransportProcessTests(TwistdProcessMixin, TestCase):
    timeout = 90

    def row(self):
        try:
            db = sqlite3.connect(self.dbpath)
            try:
                return db.execute(
                    "SELECT host, binary, topic, report_count, last_seen_up FROM services "
                    "WHERE deleted = 0").fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return None

    @defer.inlineCallbacks
    def test_registers_reports_and_exits_cleanly_on_sigterm(self):
        """
        When twistd runs the echo manager on the memory transport and an
        SQLite file, then its services row appears, report_count rises, and
        SIGTERM makes it exit 0 after logging the graceful stop.
        """
        self.dbpath = os.path.abspath(self.mktemp()) + ".sqlite"
        process = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://",
            f"--database-connection=sqlite:///{self.dbpath}", "--host=proc-test",
            "--report-interval=0.5", "--periodic-fuzzy-delay=0",
        )
        first = yield poll(self.row, "the services row exists", interval=0.1)
        self.assertEqual(first[:3], ("proc-test", "novasvc-echo", "echo"))

        def reported_twice():
            row = self.row()
            return row if row and row[3] >= 2 else None

        row = yield poll(reported_twice, "report_count reached 2", interval=0.1)
        self.assertIsNotNone(row[4])
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        self.assertEqual(code, 0, self.output())
        self.assertIn("Stopping novasvc-echo", self.output())

    def start_echo(self, *args, config=None):
        """
        Start twistd with the echo manager on the memory transport and the
        SQLite file C{self.dbpath}, plus C{args}; C{config}, if given, is
        written to the file C{self.config}, passed as C{--config}.

        @return: the C{subprocess.Popen}.
        """
        self.dbpath = os.path.abspath(self.mktemp()) + ".sqlite"
        if config is not None:
            self.config = os.path.abspath(self.mktemp()) + ".yaml"
            with open(self.config, "w") as f:
                f.write(config)
            args = (f"--config={self.config}",) + args
        return self.start_twistd("--manager=novasvc.examples.echo.EchoManager", "--transport-url=memory://",
                                 f"--database-connection=sqlite:///{self.dbpath}", *args)

    def ticked_twice(self):
        return self.output().count("tick at warn") >= 2

    @defer.inlineCallbacks
    def test_log_level_warning(self):
        """
        When twistd runs with C{--log-level=warning}, then the warnings (one
        at start-up, one per periodic run) are printed, and no info or debug
        line is, not even twistd's own.
        """
        process = self.start_echo("--manager=tests.test_core_service_process.TickingManager", "--report-interval=100",
                                  "--periodic-fuzzy-delay=0", "--log-level=warning")
        yield poll(self.ticked_twice, "the periodic task ran twice", interval=0.1)
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertEqual(code, 0, out)
        self.assertIn("[novasvc.core.servicegroup#warn] service_down_time (60 s) must be longer", out)
        self.assertNotIn("#info]", out)
        self.assertNotIn("#debug]", out)

    @defer.inlineCallbacks
    def test_default_level_info(self):
        """
        When no level is given, then info lines are printed and the debug
        lines of each periodic run are not.
        """
        process = self.start_echo("--manager=tests.test_core_service_process.TickingManager", "--periodic-fuzzy-delay=0")
        yield poll(self.ticked_twice, "the periodic task ran twice", interval=0.1)
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertEqual(code, 0, out)
        self.assertIn("tick at info", out)
        self.assertNotIn("#debug]", out)

    @defer.inlineCallbacks
    def test_sighup_rereads_log_level(self):
        """
        When the config file's C{log_level} changes from C{error} to C{info}
        and twistd gets SIGHUP, then it says "log level now info" and info
        lines are printed from then on.
        """
        process = self.start_echo("--host=hup-test", config="log_level: error\n")
        yield poll(self.row, "the services row exists", interval=0.1)
        with open(self.config, "w") as f:
            f.write("log_level: info\n")
        process.send_signal(signal.SIGHUP)
        yield poll(lambda: "log level now info" in self.output(), "the new level is logged", interval=0.1)
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertEqual(code, 0, out)
        self.assertNotIn("Starting echo node", out)
        self.assertIn("[novasvc.core.service#info] Stopping novasvc-echo on hup-test", out)

    @defer.inlineCallbacks
    def test_json_log(self):
        """
        When the config file sets C{log_format: json}, then every line twistd
        prints is one JSON object, and the service's messages are in their
        C{log_text}.
        """
        process = self.start_echo("--host=json-test", config="log_format: json\n")
        yield poll(lambda: "is ready" in self.output(), "the service is ready", interval=0.1)
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        lines = self.output().splitlines()
        self.assertEqual(code, 0, lines)
        events = [json.loads(line) for line in lines]
        self.assertIn("Stopping novasvc-echo on json-test", [event["log_text"] for event in events])
        self.assertEqual({event["log_level"]["name"] for event in events}, {"info"})

    @defer.inlineCallbacks
    def test_bad_config_exits_with_message(self):
        """
        When twistd is given a config file with an unknown key, then it exits
        non-zero naming the key, without a traceback.
        """
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = os.path.join(workdir, "bad.yaml")
        with open(path, "w") as f:
            f.write("report_intervall: 10\n")
        process = self.start_twistd(f"--config={path}", "--manager=novasvc.examples.echo.EchoManager")
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertNotEqual(code, 0)
        self.assertIn("report_intervall", out)
        self.assertNotIn("Traceback", out)
        self.assertNotIn("Usage:", out)

    @defer.inlineCallbacks
    def test_missing_config_one_line(self):
        """
        When twistd is given a config file that does not exist, then it
        exits 1 with one line naming the file, without twistd's usage text.
        """
        missing = os.path.abspath(self.mktemp())
        process = self.start_twistd(f"--config={missing}")
        code = yield self.wait_exit(process)
        out = self.output()
        self.assertEqual(code, 1)
        self.assertEqual([line for line in out.splitlines() if line.strip()],
                         [f"novasvc: error: {missing}: cannot read the configuration file: "
                          "No such file or directory"])


class RabbitMQProcessTests(TwistdProcessMixin, TestCase):
    timeout = 120

    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)
        self.exchange = f"novasvc-proc-{uuid.uuid4().hex[:8]}"
        self.host = f"proc-{uuid.uuid4().hex[:8]}"

    def rpc(self, *args):
        return subprocess.run(
            [_bin("novasvc-rpc"), "--transport-url=rabbit://guest:guest@127.0.0.1:5672/",
             f"--control-exchange={self.exchange}", *args],
            env=_environ(), capture_output=True, text=True, timeout=60,
        )

    def is_ready(self):
        return "is ready" in self.output()

    @defer.inlineCallbacks
    def test_call_over_rabbitmq_then_sigterm(self):
        """
        When twistd runs the echo manager on RabbitMQ, then novasvc-rpc can call
        it (result on stdout, exit 0), a remote error exits 1, and SIGTERM makes
        the service exit 0.
        """
        dbpath = os.path.abspath(self.mktemp()) + ".sqlite"
        process = self.start_twistd(
            "--manager=novasvc.examples.echo.EchoManager",
            "--transport-url=rabbit://guest:guest@127.0.0.1:5672/",
            f"--control-exchange={self.exchange}", f"--host={self.host}",
            f"--database-connection=sqlite:///{dbpath}", "--periodic-fuzzy-delay=0",
        )
        yield poll(self.is_ready, "the service is ready", interval=0.1)
        result = yield task.deferLater(reactor, 0, self.rpc, "call", "--timeout=20", "echo", "echo",
                                       'value={"a": [1, 2]}')
        self.assertEqual((result.returncode, json.loads(result.stdout)), (0, {"a": [1, 2]}),
                         result.stderr)
        result = yield task.deferLater(reactor, 0, self.rpc, "call", f"--server={self.host}",
                                       "--timeout=20", "echo", "fail", 'message="nope"')
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("EchoError", result.stderr)
        self.assertIn("nope", result.stderr)
        self.assertNotIn("guest:guest", self.output())
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        self.assertEqual(code, 0, self.output())

    @defer.inlineCallbacks
    def test_rpc_reads_the_service_config(self):
        """
        When twistd and novasvc-rpc are given the same --config file, then
        novasvc-rpc reaches the service through the file's broker and
        exchange, takes an argument from stdin, and a remote error exits 1.
        """
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = os.path.join(workdir, "novasvc.yaml")
        with open(path, "w") as f:
            f.write(f"transport_url: rabbit://guest:guest@127.0.0.1:5672/\n"
                    f"control_exchange: {self.exchange}\nhost: {self.host}\n"
                    f"rpc_response_timeout: 20\nallowed_remote_exmods: [novasvc.examples.echo]\n"
                    f"database:\n  connection: sqlite:///{workdir}/services.sqlite\n"
                    f"periodic_fuzzy_delay: 0\n")
        process = self.start_twistd(f"--config={path}", "--manager=novasvc.examples.echo.EchoManager")
        yield poll(self.is_ready, "the service is ready", interval=0.1)

        def rpc(*args, stdin=None):
            return subprocess.run([_bin("novasvc-rpc"), "-c", path, *args], input=stdin, env=_environ(),
                                  capture_output=True, text=True, timeout=60)

        result = yield task.deferLater(reactor, 0, rpc, "call", "echo", "echo", "value=@-",
                                       stdin='{"big": ["x", 2]}')
        self.assertEqual((result.returncode, json.loads(result.stdout)), (0, {"big": ["x", 2]}), result.stderr)
        result = yield task.deferLater(reactor, 0, rpc, "call", "echo", "fail", "message=nope")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertTrue(result.stderr.startswith("Remote error: EchoError nope\nTraceback"), result.stderr)
        process.send_signal(signal.SIGTERM)
        code = yield self.wait_exit(process)
        self.assertEqual(code, 0, self.output())
