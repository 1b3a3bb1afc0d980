"""
Tests for L{novasvc.cli.rpc} (C{novasvc-rpc}), with an injected in-memory
transport and a L{task.Clock} as the reactor; L{ReadmeTests} checks what the
README says about C{novasvc-rpc}.
"""

import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Tuple

from twisted.internet import defer, protocol, task
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

import novasvc.transport
from novasvc.process import tap
from novasvc.cli import rpc as cli
from novasvc.config import Config
from novasvc.db.memory import MemoryServiceStore
from novasvc.exceptions import ConfigError
from novasvc.rpc.dispatcher import BaseRPCAPI
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.core.service import Service
from novasvc.transport.memory import MemoryBroker, MemoryTransport
from novasvc.transport.topology import Binding, Exchange, Queue
from novasvc.transport.url import TLSOptions
from novasvc.notify.message import PRIORITIES
from tests._notify_helpers import send
from tests.test_rpc_server import Manager

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(HERE), "README.rst")


class StoppableTransport(MemoryTransport):
    """
    The memory transport, remembering whether it was stopped.
    """

    stopped = False

    def stop(self):
        self.stopped = True
        return super().stop()


class UnconfirmedTransport(StoppableTransport):
    """
    A transport whose publishes are never confirmed.
    """

    def publish(self, *args, **kwargs):
        return defer.Deferred()


class ParseTests(SynchronousTestCase):
    """
    L{cli.parse_arguments}.
    """

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != cli.TRANSPORT_URL_VARIABLE})

    def assertUsageError(self, argv: List[str], text: str, **kwargs: Any) -> None:
        self.stderr.truncate(0)
        self.stderr.seek(0)
        error = self.assertRaises(SystemExit, cli.parse_arguments, argv, **kwargs)
        self.assertEqual(error.code, cli.EXIT_USAGE)
        self.assertIn(text, self.stderr.getvalue())

    def test_call(self) -> None:
        """
        When a call is parsed, then topic, method, options and the decoded
        key=JSON arguments are there.
        """
        args = cli.parse_arguments(["--control-exchange", "nova", "call", "--server", "h1", "--timeout", "5",
                                    "compute", "echo", "value=41", "items=[1, 2]", "flag=true", 'q="x"'])
        self.assertEqual((args.command, args.topic, args.method, args.server, args.timeout, args.control_exchange),
                         ("call", "compute", "echo", "h1", 5.0, "nova"))
        self.assertEqual(args.kwargs, {"value": 41, "items": [1, 2], "flag": True, "q": "x"})

    def test_not_json_is_string(self) -> None:
        """
        When a value is not valid JSON, then it is taken as a string.
        """
        args = cli.parse_arguments(["cast", "t", "m", "name=vol1", "empty=", "eq=a=b"])
        self.assertEqual(args.kwargs, {"name": "vol1", "empty": "", "eq": "a=b"})

    def test_defaults(self) -> None:
        """
        When no option is given, then the timeout is 60 s, the exchange
        openstack, the URL comes from NOVASVC_TRANSPORT_URL or the default
        rabbit URL, and the settings are the built-in defaults.
        """
        args = cli.parse_arguments(["call", "t", "m"])
        self.assertEqual((args.timeout, args.control_exchange, args.transport_url, args.kwargs),
                         (60.0, "openstack", "rabbit://guest:guest@localhost:5672/", {}))
        self.assertEqual(args.settings, Config())
        self.patch(os, "environ", dict(os.environ, NOVASVC_TRANSPORT_URL="memory://env"))
        self.assertEqual(cli.parse_arguments(["call", "t", "m"]).transport_url, "memory://env")
        self.assertEqual(cli.parse_arguments(["call", "t", "m"], environ={}).transport_url,
                         "rabbit://guest:guest@localhost:5672/")

    def test_bad_environment_url(self) -> None:
        """
        When NOVASVC_TRANSPORT_URL cannot be used, then usage error 64 names
        the variable and hides the password; --transport-url makes it unused.
        """
        environ = {"NOVASVC_TRANSPORT_URL": "http://u:hunter2@h/"}
        self.assertUsageError(["call", "t", "m"], "environment variable NOVASVC_TRANSPORT_URL:", environ=environ)
        self.assertNotIn("hunter2", self.stderr.getvalue())
        args = cli.parse_arguments(["call", "--transport-url", "memory://", "t", "m"], environ=environ)
        self.assertEqual(args.transport_url, "memory://")

    def test_bad_url(self) -> None:
        """
        When the transport URL cannot be used, then usage error 64 in one
        line, without the password.
        """
        self.assertUsageError(["--transport-url", "bogus://u:hunter2@h", "call", "t", "m"],
                              "command line option --transport-url: 'bogus://u:***@h': unknown scheme")
        self.assertEqual(len(self.stderr.getvalue().splitlines()), 1)
        self.assertNotIn("hunter2", self.stderr.getvalue())

    def test_bad_pair(self) -> None:
        """
        When an argument is not key=VALUE, then usage error 64, and a long
        argument is shortened in the message.
        """
        self.assertUsageError(["call", "t", "m", "novalue"], "not key=VALUE")
        self.assertUsageError(["call", "t", "m", "x" * 5000], "not key=VALUE")
        self.assertLess(len(self.stderr.getvalue()), 500)

    def test_bad_key(self) -> None:
        """
        When a key is not an identifier, then usage error 64.
        """
        self.assertUsageError(["call", "t", "m", "1x=2"], "not key=VALUE")

    def test_duplicate_key(self) -> None:
        """
        When a key is given twice, then usage error 64.
        """
        self.assertUsageError(["call", "t", "m", "a=1", "a=2"], "given twice")

    def test_call_fanout(self) -> None:
        """
        When call is asked with --fanout, then usage error 64.
        """
        self.assertUsageError(["call", "--fanout", "t", "m"], "--fanout is for cast only")

    def test_fanout_and_server(self) -> None:
        """
        When --fanout and --server are both given, then usage error 64.
        """
        self.assertUsageError(["cast", "--fanout", "--server", "h", "t", "m"], "exclude each other")

    def test_missing(self) -> None:
        """
        When the command or the method is missing, then usage error 64.
        """
        self.assertUsageError([], "usage:")
        self.assertUsageError(["call", "topic"], "usage:")

    def test_bad_timeout(self) -> None:
        """
        When the timeout is not a positive number, then usage error 64.
        """
        self.assertUsageError(["call", "--timeout", "0", "t", "m"], "must be a positive number")
        self.assertUsageError(["call", "--timeout", "nan", "t", "m"], "must be a positive number")
        self.assertUsageError(["call", "--timeout", "inf", "t", "m"], "must be a positive number")
        self.assertUsageError(["call", "--timeout", "soon", "t", "m"], "invalid float")

    def test_bad_rpc_version(self) -> None:
        """
        When --rpc-version is not a version, then usage error 64, with a long
        value shortened.
        """
        self.assertUsageError(["call", "--rpc-version", "1.x", "t", "m"], "--rpc-version must be X.Y")
        self.assertUsageError(["call", "--rpc-version", "9" * 3000 + "x", "t", "m"], "9999...'")
        self.assertLess(len(self.stderr.getvalue()), 500)

    def test_options_before_or_after_command(self) -> None:
        """
        When an option comes before the sub-command, then it counts as if it
        came after, and one given after the sub-command wins.
        """
        before = cli.parse_arguments(["--server", "h1", "--timeout", "5", "--namespace", "ns", "--rpc-version",
                                      "1.2", "--transport-url", "memory://a", "--control-exchange", "nova",
                                      "call", "t", "m"])
        after = cli.parse_arguments(["call", "--server", "h1", "--timeout", "5", "--namespace", "ns",
                                     "--rpc-version", "1.2", "--transport-url", "memory://a",
                                     "--control-exchange", "nova", "t", "m"])
        for args in (before, after):
            self.assertEqual((args.server, args.timeout, args.namespace, args.rpc_version, args.transport_url,
                              args.control_exchange), ("h1", 5.0, "ns", "1.2", "memory://a", "nova"))
        self.assertTrue(cli.parse_arguments(["--fanout", "cast", "t", "m"]).fanout)
        both = cli.parse_arguments(["--timeout", "5", "call", "--timeout", "7", "t", "m"])
        self.assertEqual(both.timeout, 7.0)
        self.assertUsageError(["--fanout", "call", "t", "m"], "--fanout is for cast only")

    def test_help(self) -> None:
        """
        When --help is asked, then it exits 0 and documents the exit statuses.
        """
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(SystemExit, cli.parse_arguments, ["--help"])
        self.assertEqual(error.code, 0)
        self.assertIn("64 usage error", " ".join(stdout.getvalue().split()))


class RunTests(SynchronousTestCase):
    """
    L{cli.run} and L{cli.main} against servers on an in-memory broker.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.made: List[Any] = []
        self.managers = [self.serve("host1"), self.serve("host2")]

    def serve(self, host: str) -> Manager:
        manager = Manager(host)
        transport = MemoryTransport(broker=self.broker, clock=self.clock)
        server = RPCServer(transport, Target(topic="svc", server=host), [manager, BaseRPCAPI("svc")],
                           clock=self.clock)
        self.successResultOf(server.start())
        return manager

    def factory(self, url: str, reactor: Any, cls: type = StoppableTransport) -> MemoryTransport:
        self.assertIs(reactor, self.clock)
        transport = cls(broker=self.broker, clock=reactor)
        self.made.append((url, transport))
        return transport

    def run_cli(self, *argv: str) -> defer.Deferred:
        return cli.run(self.clock, cli.parse_arguments(list(argv)), transport_factory=self.factory,
                       stdout=self.stdout, stderr=self.stderr)

    def test_call(self) -> None:
        """
        When a call succeeds, then the result is printed as one line of JSON
        on stdout, the status is 0 and the transport is stopped.
        """
        code = self.successResultOf(self.run_cli("--transport-url", "memory://x", "call", "svc", "echo",
                                                 "value=41"))
        self.assertEqual(code, cli.EXIT_OK)
        self.assertRegex(self.stdout.getvalue(), r'^\{"server": "host[12]", "value": 41\}\n$')
        self.assertEqual(self.stderr.getvalue(), "")
        ((url, transport),) = self.made
        self.assertEqual(url, "memory://x")
        self.assertTrue(transport.stopped)

    def test_call_direct_namespace_version(self) -> None:
        """
        When --server, --namespace and --rpc-version are given, then the call
        reaches that host's endpoint in that namespace.
        """
        code = self.successResultOf(self.run_cli("call", "--server", "host2", "--namespace", "baseapi",
                                                 "--rpc-version", "1.1", "svc", "ping", "arg=hello"))
        self.assertEqual(code, cli.EXIT_OK)
        self.assertEqual(self.stdout.getvalue(), '{"arg": "hello", "service": "svc"}\n')

    def test_remote_error(self) -> None:
        """
        When the remote method raises, then the remote error goes to stderr
        and the status is 1.
        """
        self.assertEqual(self.successResultOf(self.run_cli("call", "svc", "fail")), cli.EXIT_REMOTE_ERROR)
        self.assertTrue(self.stderr.getvalue().startswith("Remote error: ValueError it failed\n"))
        self.assertEqual(self.stdout.getvalue(), "")

    def test_no_such_method(self) -> None:
        """
        When the method does not exist, then the status is 1 and stderr says
        so.
        """
        self.assertEqual(self.successResultOf(self.run_cli("call", "svc", "nope")), cli.EXIT_REMOTE_ERROR)
        self.assertIn("Remote error: NoSuchMethod Endpoint does not support RPC method nope",
                      self.stderr.getvalue())

    def test_timeout(self) -> None:
        """
        When no reply comes within --timeout, then the timeout goes to stderr
        and the status is 2.
        """
        exchange = Exchange("openstack", "topic")
        MemoryTransport(broker=self.broker, clock=self.clock).consume(
            Queue("nobody", bindings=[Binding(exchange, "nobody")]), lambda delivery: delivery.ack())
        d = self.run_cli("call", "--timeout", "3", "nobody", "echo")
        self.clock.advance(2.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), cli.EXIT_TIMEOUT)
        self.assertTrue(self.stderr.getvalue().startswith("timeout: Timed out waiting for a reply"))

    def test_cast(self) -> None:
        """
        When a cast is confirmed, then nothing is printed and the status is
        0; --fanout reaches every server.
        """
        self.assertEqual(self.successResultOf(self.run_cli("cast", "svc", "note", "value=1")), cli.EXIT_OK)
        self.assertEqual(sum(len(m.calls) for m in self.managers), 1)
        self.assertEqual(self.successResultOf(self.run_cli("cast", "--fanout", "svc", "note", "value=2")),
                         cli.EXIT_OK)
        self.assertEqual([m.calls[-1] for m in self.managers], [("note", 2), ("note", 2)])
        self.assertEqual(self.stdout.getvalue() + self.stderr.getvalue(), "")

    def test_unroutable(self) -> None:
        """
        When no queue takes the request for
        kombu_missing_consumer_retry_timeout seconds, then the status is 1
        and stderr says so (not as a remote error).
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("kombu_missing_consumer_retry_timeout: 1\n")
        for command in ("call", "cast"):
            self.stderr.truncate(0)
            self.stderr.seek(0)
            d = self.run_cli("-c", path, command, "--timeout", "5", "nobody", "echo")
            self.clock.pump([0.25] * 5)
            self.assertEqual(self.successResultOf(d), cli.EXIT_REMOTE_ERROR)
            self.assertRegex(self.stderr.getvalue(), f"^error: no queue took the {command} 'echo' sent to exchange "
                                                     r"'openstack' with routing key 'nobody' \(4 sends over 1.00 s\)")

    def test_cast_unconfirmed(self) -> None:
        """
        When the broker does not confirm a cast within --timeout, then the
        status is 2.
        """
        d = cli.run(self.clock, cli.parse_arguments(["cast", "--timeout", "2", "svc", "note"]),
                    transport_factory=lambda url, reactor: self.factory(url, reactor, UnconfirmedTransport),
                    stdout=self.stdout, stderr=self.stderr)
        self.clock.advance(2)
        self.assertEqual(self.successResultOf(d), cli.EXIT_TIMEOUT)
        self.assertIn("did not confirm", self.stderr.getvalue())

    def test_transport_refused(self) -> None:
        """
        When the transport factory refuses the URL, then the status is 64.
        """
        def refuse(url: str, reactor: Any) -> Any:
            raise ConfigError("transport_url 'x': refused")

        d = cli.run(self.clock, cli.parse_arguments(["call", "t", "m"]), transport_factory=refuse,
                    stdout=self.stdout, stderr=self.stderr)
        self.assertEqual(self.successResultOf(d), cli.EXIT_USAGE)
        self.assertEqual(self.stderr.getvalue(), "novasvc-rpc: transport_url 'x': refused\n")

    def _react(self, main):
        results: List[Any] = []
        main(self.clock).addBoth(results.append)
        (result,) = results
        if isinstance(result, Failure):
            if result.check(SystemExit):
                raise SystemExit(result.value.code)
            result.raiseException()
        raise SystemExit(0)

    def test_main(self) -> None:
        """
        When main runs, then it exits with the status of the request.
        """
        error = self.assertRaises(SystemExit, cli.main, ["call", "svc", "echo", "value=1"], react=self._react,
                                  transport_factory=self.factory, stdout=self.stdout, stderr=self.stderr)
        self.assertEqual(error.code, 0)
        self.assertIn('"value": 1', self.stdout.getvalue())
        error = self.assertRaises(SystemExit, cli.main, ["call", "svc", "fail"], react=self._react,
                                  transport_factory=self.factory, stdout=self.stdout, stderr=self.stderr)
        self.assertEqual(error.code, cli.EXIT_REMOTE_ERROR)

    def test_main_usage(self) -> None:
        """
        When main gets bad arguments, then it exits 64 without running.
        """
        self.patch(sys, "stderr", io.StringIO())
        error = self.assertRaises(SystemExit, cli.main, ["call"], react=self.fail)
        self.assertEqual(error.code, cli.EXIT_USAGE)


class ConfigFileTests(SynchronousTestCase):
    """
    C{--config}: the settings file of C{twistd novasvc}.
    """

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def parse(self, *argv: str, environ: Dict[str, str] = {}) -> Any:
        return cli.parse_arguments(list(argv), environ=environ)

    def refused(self, *argv: str, environ: Dict[str, str] = {}) -> str:
        error = self.assertRaises(SystemExit, self.parse, *argv, environ=environ)
        self.assertEqual(error.code, cli.EXIT_USAGE)
        (line,) = self.stderr.getvalue().splitlines()
        self.assertTrue(line.startswith("novasvc-rpc: error: "), line)
        return line

    FILE = """\
        transport_url: memory://from-file
        control_exchange: nova
        rpc_response_timeout: 7
        durable_queues: true
        allowed_remote_exmods: [novasvc.examples.echo]
        volume_manager: myproject.volume.VolumeManager
        volume:
          backend: lvm
        """

    def test_values_from_file(self) -> None:
        """
        When --config (or -c) names a file, then the URL, the exchange and
        the timeout come from it, and the settings equal those C{twistd
        novasvc --config} loads from the same file (manager sections
        included, unvalidated).
        """
        path = self.write(self.FILE)
        for option in ("--config", "-c"):
            args = self.parse(option, path, "call", "t", "m")
            self.assertEqual((args.transport_url, args.control_exchange, args.timeout),
                             ("memory://from-file", "nova", 7.0))
            options = tap.Options()
            options.parseOptions(["--config", path])
            self.assertEqual(args.settings, options.settings)
        self.assertEqual(self.parse("call", "-c", path, "t", "m").settings, options.settings)

    def test_options_beat_file(self) -> None:
        """
        When --transport-url, --control-exchange or --timeout is given, then
        it beats the file, which beats NOVASVC_TRANSPORT_URL.
        """
        path = self.write(self.FILE)
        environ = {"NOVASVC_TRANSPORT_URL": "memory://from-env"}
        args = self.parse("-c", path, "--transport-url", "memory://from-option", "--control-exchange", "x",
                          "call", "--timeout", "3", "t", "m", environ=environ)
        self.assertEqual((args.transport_url, args.control_exchange, args.timeout),
                         ("memory://from-option", "x", 3.0))
        self.assertEqual(args.settings.rpc_response_timeout, 3.0)
        self.assertEqual(self.parse("-c", path, "call", "t", "m", environ=environ).transport_url,
                         "memory://from-file")
        other = self.write("control_exchange: nova\n")
        self.assertEqual(self.parse("-c", other, "call", "t", "m", environ=environ).transport_url,
                         "memory://from-env")

    def test_environment_substitution(self) -> None:
        """
        When the file refers to an environment variable, then the
        environment given to L{cli.parse_arguments} fills it in.
        """
        path = self.write("control_exchange: ${EXCHANGE:openstack}\n")
        self.assertEqual(self.parse("-c", path, "call", "t", "m", environ={"EXCHANGE": "nova"}).control_exchange,
                         "nova")

    def test_bad_file(self) -> None:
        """
        When the file is missing, is not YAML or has an unknown key, then one
        line naming the problem and status 64, never a traceback.
        """
        missing = os.path.relpath(self.mktemp())
        self.assertEqual(self.refused("-c", missing, "call", "t", "m"),
                         f"novasvc-rpc: error: {missing}: cannot read the configuration file: "
                         f"No such file or directory")
        for text, expected in (("transport_url: [\n", "invalid YAML"),
                               ("report_intervall: 3\n", "line 1: report_intervall: unknown key"),
                               ("rpc_response_timeout: 0\n", "expected a number of seconds > 0")):
            self.stderr.truncate(0)
            self.stderr.seek(0)
            self.assertIn(expected, self.refused("-c", self.write(text), "call", "t", "m"))

    def test_bad_file_hides_password(self) -> None:
        """
        When the file's URL is refused, then the message hides its password.
        """
        line = self.refused("-c", self.write("transport_url: bogus://user:hunter2@h/\n"), "call", "t", "m")
        self.assertIn("'bogus://user:***@h/': unknown scheme", line)
        self.assertNotIn("hunter2", line)

    def test_long_file_name(self) -> None:
        """
        When the file name is huge, then the message shows it shortened.
        """
        line = self.refused("-c", "/nonexistent/" + "d" * 5000, "call", "t", "m")
        self.assertLess(len(line), 300)
        self.assertIn("ddd...'", line)
        self.assertIn("cannot read the configuration file", line)

    def test_run_uses_settings(self) -> None:
        """
        When the file sets durable_queues, allowed_remote_exmods,
        transient_queues_ttl, kombu_missing_consumer_retry_timeout,
        heartbeat_timeout_threshold, the TLS keys and amqp_client, then the
        client and the default transport get them.
        """
        path = self.write(textwrap.dedent(self.FILE) + "transient_queues_ttl: 30\nheartbeat_timeout_threshold: 15\n"
                          "kombu_missing_consumer_retry_timeout: 9\nssl: true\nssl_ca_file: /etc/ca.pem\n"
                          "amqp_client: txamqp\n")
        made: List[Tuple[str, Dict[str, Any]]] = []
        clients: List[Dict[str, Any]] = []
        clock = task.Clock()

        def get_transport(url: str, **kwargs: Any) -> StoppableTransport:
            made.append((url, kwargs))
            transport = StoppableTransport(broker=MemoryBroker(), clock=clock)
            exchange = Exchange("nova", "topic", durable=True)
            transport.consume(Queue("t", bindings=[Binding(exchange, "t")]), lambda delivery: delivery.ack())
            return transport

        class RecordingClient(cli.RPCClient):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                clients.append(kwargs)
                super().__init__(*args, **kwargs)

        self.patch(novasvc.transport, "get_transport", get_transport)
        self.patch(cli, "RPCClient", RecordingClient)
        d = cli.run(clock, self.parse("-c", path, "cast", "t", "m"), stdout=io.StringIO(), stderr=io.StringIO())
        self.assertEqual(self.successResultOf(d), cli.EXIT_OK)
        self.assertEqual(made, [("memory://from-file", {"reactor": clock, "heartbeat": 15,
                                                        "tls": TLSOptions(True, "/etc/ca.pem"), "client": "txamqp",
                                                        "failover_strategy": "round-robin"})])
        (kwargs,) = clients
        self.assertEqual({key: kwargs[key] for key in ("timeout", "control_exchange", "allowed_remote_exmods",
                                                       "durable_queues", "transient_queues_ttl",
                                                       "missing_consumer_retry_timeout")},
                         {"timeout": 7.0, "control_exchange": "nova",
                          "allowed_remote_exmods": ("novasvc.examples.echo",), "durable_queues": True,
                          "transient_queues_ttl": 30.0, "missing_consumer_retry_timeout": 9.0})


class ScriptTests(SynchronousTestCase):
    """
    C{main} in a real process: what a shell sees.
    """

    def script(self, *argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        return subprocess.run([sys.executable, "-c", "from novasvc.cli.rpc import main; main()", *argv],
                              input=stdin, capture_output=True, env=env, timeout=60)

    def test_bad_config_file(self) -> None:
        """
        When the configuration file is bad, then the process prints one line
        on stderr, no traceback and no password, and exits 64.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("transport_url: bogus://user:hunter2@h/\n")
        result = self.script("--config", path, "call", "t", "m")
        self.assertEqual(result.returncode, cli.EXIT_USAGE)
        self.assertEqual(result.stdout, b"")
        (line,) = result.stderr.decode().splitlines()
        self.assertIn("unknown scheme", line)
        self.assertNotIn("hunter2", line)

    def test_stdin_not_utf8(self) -> None:
        """
        When @- reads standard input that is not UTF-8, then one line and
        exit 64, before any broker is contacted.
        """
        result = self.script("--transport-url", "memory://", "cast", "t", "m", "data=@-", stdin=b"\xff\xfe")
        self.assertEqual(result.returncode, cli.EXIT_USAGE)
        self.assertEqual(result.stderr.decode().splitlines(),
                         ["novasvc-rpc: error: argument 'data': standard input is not UTF-8 text (byte 0)"])


def _readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def _session() -> str:
    """
    @return: the README's "A session" section, up to the next heading.
    """
    text = _readme()
    start = text.index("\nA session\n---")
    following = re.compile(r"\n[^\n]+\n-{3,}\n").search(text, start + 1)
    return text[start:following.start() if following else len(text)]


class ReadmeTests(SynchronousTestCase):
    """
    What the README says about C{novasvc-rpc}; each test quotes the
    sentence it checks.
    """

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.prose = " ".join(_session().split())

    def says(self, sentence: str) -> None:
        self.assertIn(sentence, self.prose)

    def helps(self, *argv: str) -> str:
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        error = self.assertRaises(SystemExit, cli.parse_arguments, [*argv, "--help"], environ={})
        self.assertEqual(error.code, 0)
        return stdout.getvalue()

    def test_help_lists_readme_options(self) -> None:
        """
        When C{novasvc-rpc --help} (or C{call --help}, C{cast --help}) runs,
        then every option the README says it lists is there.
        """
        match = re.search(r"``novasvc-rpc --help`` lists (.*?), which may come before or after", self.prose)
        self.assertIsNotNone(match, "the README's sentence about --help")
        named = re.findall(r"``(--[a-z-]+)``", match.group(1))
        self.assertEqual(len(named), 8, named)
        for argv in ([], ["call"], ["cast"]):
            shown = set(re.findall(r"(?<![\w-])(--[a-z-]+)", self.helps(*argv)))
            self.assertEqual(set(named) - shown, set(), argv)
        self.assertIn("-c FILE, --config FILE", self.helps())

    def test_arguments_sentence(self) -> None:
        """
        When the README says how arguments are written, then each form does
        what it says.
        """
        self.says("Arguments are ``key=JSON`` (a value that is not JSON is taken as a string). "
                  "``key=@FILE`` reads the value from a file and ``key=@-`` from standard input, by the same rule "
                  "(``data=@request.json``); ``key=@@TEXT`` is the string ``@TEXT``.")
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('{"size": 1}')
        args = cli.parse_arguments(["call", "t", "m", "a=1", "b=vol1", f"data=@{path}", "c=@-", "d=@@TEXT"],
                                   stdin=io.StringIO("text"), environ={})
        self.assertEqual(args.kwargs, {"a": 1, "b": "vol1", "data": {"size": 1}, "c": "text", "d": "@TEXT"})

    def test_config_sentence(self) -> None:
        """
        When the README says what --config reads and what beats what, then
        the settings say the same.
        """
        self.says("``--config FILE`` (``-c``) reads the file ``twistd novasvc`` reads (see Configuration below), "
                  "so ``transport_url``, ``control_exchange``, ``rpc_response_timeout`` (the default "
                  "``--timeout``), ``durable_queues`` and ``allowed_remote_exmods`` come from there; "
                  "``--transport-url``, ``--control-exchange`` and ``--timeout`` beat the file, which beats "
                  "``$NOVASVC_TRANSPORT_URL``.")
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("transport_url: memory://f\ncontrol_exchange: f\nrpc_response_timeout: 5\n"
                    "durable_queues: true\nallowed_remote_exmods: [m]\n")
        environ = {"NOVASVC_TRANSPORT_URL": "memory://env"}
        args = cli.parse_arguments(["-c", path, "call", "t", "m"], environ=environ)
        self.assertEqual((args.transport_url, args.control_exchange, args.timeout, args.settings.durable_queues,
                          args.settings.allowed_remote_exmods), ("memory://f", "f", 5.0, True, ("m",)))
        args = cli.parse_arguments(["-c", path, "--transport-url", "memory://o", "--control-exchange", "o",
                                    "--timeout", "2", "call", "t", "m"], environ=environ)
        self.assertEqual((args.transport_url, args.control_exchange, args.timeout), ("memory://o", "o", 2.0))

    def test_usage_sentence(self) -> None:
        """
        When the README says which errors exit 64 in one line, then bad
        arguments, a bad file and an unreadable argument file do.
        """
        self.says("Bad arguments, a bad configuration file or an argument file that cannot be read exit 64 "
                  "with a one-line message (2 means a timeout).")
        self.assertEqual(cli.EXIT_TIMEOUT, 2)
        missing = os.path.abspath(self.mktemp())
        for argv in (["call", "t", "m", "1x=2"], ["-c", missing, "call", "t", "m"],
                     ["call", "t", "m", f"x=@{missing}"]):
            self.stderr.truncate(0)
            self.stderr.seek(0)
            error = self.assertRaises(SystemExit, cli.parse_arguments, argv, environ={})
            self.assertEqual(error.code, cli.EXIT_USAGE)
            self.assertEqual(len([line for line in self.stderr.getvalue().splitlines()
                                  if line.startswith("novasvc-rpc: error:")]), 1, argv)


class ReadmeSessionTests(SynchronousTestCase):
    """
    The README's session, line by line: each C{novasvc-rpc} command runs
    against the echo service (host C{myhost}) on an in-memory broker, and
    must exit as its C{# exit N} comment says (0 without one) and print
    the lines shown after it (C{...} stands for anything).
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        service = Service.create(manager="novasvc.examples.echo.EchoManager",
                                 config=Config(host="myhost", periodic_fuzzy_delay=0),
                                 store=MemoryServiceStore(), clock=self.clock,
                                 transport=MemoryTransport(broker=self.broker, clock=self.clock))
        self.successResultOf(service.startService())
        self.addCleanup(self.stop, service)

    def stop(self, service: Service) -> None:
        stopping = service.stopService()
        self.clock.advance(60)  # calls still sleeping finish
        self.successResultOf(stopping)

    def test_allowed_remote_exmods(self) -> None:
        """
        When the file lists the echo module in allowed_remote_exmods, then
        the remote error is rebuilt as its class and reads as the README
        shows, with the server's class name.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("allowed_remote_exmods: [novasvc.examples.echo]\n")
        stderr = io.StringIO()
        args = cli.parse_arguments(["-c", path, "call", "echo", "fail", "message=no"], environ={})
        d = cli.run(self.clock, args, stdout=io.StringIO(), stderr=stderr,
                    transport_factory=lambda url, reactor: MemoryTransport(broker=self.broker, clock=reactor))
        self.assertEqual(self.successResultOf(d), cli.EXIT_REMOTE_ERROR)
        self.assertTrue(stderr.getvalue().startswith("Remote error: EchoError no\nTraceback"), stderr.getvalue())

    def commands(self) -> List[Tuple[List[str], int, List[str]]]:
        """
        @return: (arguments, exit status, expected output lines) of each
            C{novasvc-rpc} line of the session.
        """
        found: List[Tuple[List[str], int, List[str]]] = []
        for line in _session().splitlines():
            if not line.startswith("    "):
                if line.strip():
                    found.append(([], -1, []))  # prose ends a literal block's output
                continue
            line = line.strip()
            if line.startswith("$ "):
                command = line[2:]
                if command.split()[0].endswith("/novasvc-rpc"):
                    status = re.search(r"#\s*exit (\d+)", command)
                    found.append((shlex.split(command, comments=True)[1:],
                                  int(status.group(1)) if status else 0, []))
                else:
                    found.append(([], -1, []))
            elif found:
                found[-1][2].append(line)
        return [command for command in found if command[1] >= 0]

    def test_session(self) -> None:
        """
        When the README's commands run against the echo service, then each
        exits and prints as the README shows.
        """
        commands = self.commands()
        self.assertEqual(len(commands), 4, commands)
        for argv, status, expected in commands:
            stdout, stderr = io.StringIO(), io.StringIO()
            d = cli.run(self.clock, cli.parse_arguments(argv, environ={}),
                        transport_factory=lambda url, reactor: MemoryTransport(broker=self.broker, clock=reactor),
                        stdout=stdout, stderr=stderr)
            for _ in range(10):
                if d.called:
                    break
                self.clock.advance(1.002)  # the README's elapsed time
            self.assertEqual(self.successResultOf(d), status, (argv, stderr.getvalue()))
            output = (stdout.getvalue() + stderr.getvalue()).splitlines()
            for want, got in zip(expected, output):
                pattern = ".*".join(re.escape(piece) for piece in re.split(r" ?\.\.\.", want))
                self.assertRegex(got, "^" + pattern + "$", argv)
            self.assertGreaterEqual(len(output), len(expected), (argv, output))


class _ShutdownClock(task.Clock):
    """
    A clock with the reactor's system event triggers: L{shutdown} runs the
    "before shutdown" ones, as SIGINT or SIGTERM does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.triggers: Dict[Any, Any] = {}

    def addSystemEventTrigger(self, phase: str, event: str, callable: Any, *args: Any) -> Any:
        key = object()
        self.triggers[key] = (phase, event, callable)
        return key

    def removeSystemEventTrigger(self, key: Any) -> None:
        del self.triggers[key]

    def shutdown(self) -> List[Any]:
        return [callable() for phase, event, callable in list(self.triggers.values())
                if (phase, event) == ("before", "shutdown")]


class ListenTests(SynchronousTestCase):
    """
    C{novasvc-rpc listen}: parsing, and listening on an in-memory broker.
    """

    def setUp(self) -> None:
        self.clock = _ShutdownClock()
        self.broker = MemoryBroker()
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.sender = MemoryTransport(broker=self.broker, clock=self.clock)

    def run_cli(self, *argv: str) -> defer.Deferred:
        def factory(url: str, reactor: Any) -> MemoryTransport:
            self.transport = StoppableTransport(broker=self.broker, clock=reactor)
            return self.transport

        return cli.run(self.clock, cli.parse_arguments(list(argv), environ={}), transport_factory=factory,
                       stdout=self.stdout, stderr=self.stderr)

    def lines(self) -> List[dict]:
        return [json.loads(line) for line in self.stdout.getvalue().splitlines()]

    def test_parse(self) -> None:
        """
        When listen is parsed, then the topic, priorities (default: all
        seven, in oslo's order), pool, exchange and count are there.
        """
        args = cli.parse_arguments(["listen", "notifications"], environ={})
        self.assertEqual((args.command, args.topic, args.priorities, args.pool, args.exchange, args.count),
                         ("listen", "notifications", list(PRIORITIES), None, None, None))
        args = cli.parse_arguments(["--control-exchange", "nova", "listen", "--priority", "error", "--priority",
                                    "info", "--pool", "p", "--exchange", "x", "--count", "3", "t"], environ={})
        self.assertEqual((args.topic, args.priorities, args.pool, args.exchange, args.count, args.control_exchange),
                         ("t", ["info", "error"], "p", "x", 3, "nova"))

    def test_parse_refused(self) -> None:
        """
        When listen gets a call/cast/notify option, an unknown priority, a
        bad topic, an empty pool, a count below 1 or no topic, then usage
        error 64.
        """
        for argv in (["listen", "--server", "h", "t"], ["--fanout", "listen", "t"], ["--timeout", "3", "listen",
                     "t"], ["listen", "--priority", "loud", "t"], ["listen", "a b"], ["listen", "--pool", " ", "t"],
                     ["listen", "--count", "0", "t"], ["listen"], ["listen", "t", "extra"]):
            error = self.assertRaises(SystemExit, cli.parse_arguments, argv, environ={})
            self.assertEqual(error.code, cli.EXIT_USAGE, argv)

    def test_prints_each_notification(self) -> None:
        """
        When a notification comes, then it is printed as one JSON line with
        the priority, event type, publisher id, payload, ctxt and metadata;
        on shutdown (SIGINT, SIGTERM) the status is 0 and the transport is
        stopped.
        """
        d = self.run_cli("listen", "notifications")
        self.assertIn("novasvc-rpc: listening to notifications.{audit,debug,info,warn,error,critical,sample} on "
                      "exchange openstack through queue novasvc-rpc-listen-", self.stderr.getvalue())
        send(self.sender, "warn", "disk.full", {"free": 0}, publisher_id="ops.h1", context={"user_id": "u1"},
             message_id="m-1", timestamp="2026-01-02 03:04:05")
        send(self.sender, "info", "volume.create.end", [1, "two"])
        self.assertNoResult(d)
        first, second = self.lines()
        self.assertEqual(list(first), ["priority", "event_type", "publisher_id", "payload", "ctxt", "metadata"])
        self.assertEqual(first, {"priority": "warn", "event_type": "disk.full", "publisher_id": "ops.h1",
                                 "payload": {"free": 0}, "ctxt": {"user_id": "u1", "client_timeout": None},
                                 "metadata": {"message_id": "m-1", "timestamp": "2026-01-02 03:04:05"}})
        self.assertEqual((second["priority"], second["payload"]), ("info", [1, "two"]))
        self.clock.shutdown()
        self.assertEqual(self.successResultOf(d), cli.EXIT_OK)
        self.assertTrue(self.transport.stopped)

    def test_private_queue(self) -> None:
        """
        When listen runs without --pool, then it listens through a private
        auto-delete queue with x-expires (the file's transient_queues_ttl),
        so the queue a notifier declared, and other listeners, still get
        every notification; the queue goes once it stops.
        """
        self.broker.declare_queue(Queue("notifications.info",
                                        bindings=(Binding(Exchange("openstack", "topic"), "notifications.info"),)))
        d = self.run_cli("listen", "notifications")
        [private] = [name for name in self.broker.queues if name.startswith("novasvc-rpc-listen-")]
        spec = self.broker.queues[private].spec
        self.assertTrue(spec.auto_delete)
        self.assertEqual(spec.arguments_dict(), {"x-expires": 1800000})
        send(self.sender, "info", "e")
        self.assertEqual(len(self.lines()), 1)
        self.assertEqual(len(self.broker.queues["notifications.info"].messages), 1)
        self.clock.shutdown()
        self.successResultOf(d)
        self.assertNotIn(private, self.broker.queues)

    def test_pool(self) -> None:
        """
        When listen runs with --pool, then it consumes the pool's queue,
        shared with the pool's other listeners.
        """
        self.run_cli("listen", "--pool", "auditors", "notifications")
        spec = self.broker.queues["auditors"].spec
        self.assertFalse(spec.auto_delete)
        self.assertEqual(spec.arguments_dict(), {})
        self.assertEqual(len(self.broker.queues["auditors"].bindings), 7)

    def test_priorities_exchange_count(self) -> None:
        """
        When --priority, --exchange and --count are given, then only those
        priorities on that exchange are printed, and it exits 0 after the
        count.
        """
        d = self.run_cli("listen", "--priority", "error", "--exchange", "nova", "--count", "2", "t")
        send(self.sender, "info", "skipped", topic="t", exchange="nova")
        send(self.sender, "error", "elsewhere", topic="t")
        send(self.sender, "error", "one", topic="t", exchange="nova")
        self.assertNoResult(d)
        send(self.sender, "error", "two", topic="t", exchange="nova")
        self.assertEqual(self.successResultOf(d), cli.EXIT_OK)
        self.assertEqual([line["event_type"] for line in self.lines()], ["one", "two"])
        self.assertEqual(self.clock.triggers, {})

    def test_config_file(self) -> None:
        """
        When listen reads --config, then the file's control exchange and
        transient_queues_ttl apply (the private queue's x-expires).
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("control_exchange: nova\ntransient_queues_ttl: 60\n")
        self.run_cli("-c", path, "listen", "t")
        [private] = [name for name in self.broker.queues if name.startswith("novasvc-rpc-listen-")]
        state = self.broker.queues[private]
        self.assertEqual(state.spec.arguments_dict(), {"x-expires": 60000})
        self.assertEqual({exchange for exchange, _ in state.bindings}, {"nova"})

    def test_readme_command(self) -> None:
        """
        When the README's listen command runs, then it prints the error and
        warn notifications of the topic notifications only.
        """
        text = _readme()
        section = text[text.index("\nListening\n~~~"):]
        [line] = [line.strip() for line in section.splitlines() if line.strip().startswith("$ novasvc-rpc listen")]
        self.run_cli(*shlex.split(line)[2:])
        for priority in ("info", "warn", "error"):
            send(self.sender, priority, f"e.{priority}")
        self.assertEqual([entry["priority"] for entry in self.lines()], ["warn", "error"])

    def test_closed_stdout(self) -> None:
        """
        When stdout is closed (a pipe into head), then listen stops and
        exits 0.
        """
        d = self.run_cli("listen", "t")
        self.stdout.close()
        send(self.sender, "info", "e", topic="t")
        self.assertEqual(self.successResultOf(d), cli.EXIT_OK)


class ListenProcessTests(TestCase):
    """
    C{novasvc-rpc listen} in a real process on the local RabbitMQ (a vhost
    of its own): a notification a novasvc Notifier sends is printed as its
    JSON line, and SIGINT or SIGTERM ends it with 0, its queue gone.
    """

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        from tests._vhosts import make_vhost

        self.vhost = yield make_vhost(self)
        self.url = f"rabbit://guest:guest@127.0.0.1:5672/{self.vhost}"

    @defer.inlineCallbacks
    def listen_and_send(self, stop: int) -> Any:
        from twisted.internet import reactor

        from novasvc.context import RequestContext
        from novasvc.notify import Notifier
        from novasvc.transport import AMQPTransport
        from novasvc.transport.url import TransportURL
        from tests._services import poll
        from tests.test_transport_amqp import Admin

        process = _Lines()
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        reactor.spawnProcess(process, sys.executable, [
            sys.executable, "-c", "from novasvc.cli.rpc import main; main()", "--transport-url", self.url,
            "listen", "volume"], env=env)
        yield poll(lambda: "listening" in process.err, "listen consuming")
        queue = process.err.split("through queue ")[1].split(";")[0]
        transport = AMQPTransport(TransportURL.parse(self.url), reactor=reactor)
        transport.start()
        self.addCleanup(transport.stop)
        notifier = Notifier(transport, "volume.h1", topics=["volume"], clock=reactor)
        yield notifier.error(RequestContext(user_id="u1", request_id="req-1"), "volume.fail", {"why": "disk"})
        yield poll(lambda: process.out.endswith("\n"), "the printed line")
        [line] = [json.loads(text) for text in process.out.splitlines()]
        process.transport.signalProcess(stop)
        code = yield process.ended
        admin = Admin(self.vhost)
        self.addCleanup(admin.close)
        return line, code, admin.message_count(queue), process.err

    @defer.inlineCallbacks
    def test_sigint(self) -> Any:
        """
        When a notification is sent to the topic, then the process prints
        it as one JSON line; on SIGINT it exits 0 and its queue is gone.
        """
        line, code, left, err = yield self.listen_and_send(signal.SIGINT)
        self.assertEqual(list(line), ["priority", "event_type", "publisher_id", "payload", "ctxt", "metadata"])
        self.assertEqual((line["priority"], line["event_type"], line["publisher_id"], line["payload"]),
                         ("error", "volume.fail", "volume.h1", {"why": "disk"}))
        self.assertEqual((line["ctxt"]["user_id"], line["ctxt"]["request_id"]), ("u1", "req-1"))
        self.assertEqual(set(line["metadata"]), {"message_id", "timestamp"})
        self.assertEqual(code, 0, err)
        self.assertIsNone(left)

    @defer.inlineCallbacks
    def test_sigterm(self) -> Any:
        """
        When the process gets SIGTERM, then it exits 0 too, its queue gone.
        """
        line, code, left, err = yield self.listen_and_send(signal.SIGTERM)
        self.assertEqual(line["event_type"], "volume.fail")
        self.assertEqual(code, 0, err)
        self.assertIsNone(left)


class _Lines(protocol.ProcessProtocol):
    """
    A child's stdout and stderr as text; C{ended} fires with its exit code.
    """

    def __init__(self) -> None:
        self.out = ""
        self.err = ""
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data.decode()

    def errReceived(self, data: bytes) -> None:
        self.err += data.decode()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode)
