"""
Tests for L{novasvc.cli.rpc} (C{novasvc-rpc}), with an injected in-memory
transport and a L{task.Clock} as the reactor.
"""

import io
import os
import sys
from typing import Any, List

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from novasvc.cli import rpc as cli
from novasvc.rpc.dispatcher import BaseRPCAPI
from novasvc.rpc.server import RPCServer
from novasvc.rpc.target import Target
from novasvc.transport.memory import MemoryBroker, MemoryTransport
from tests.test_rpc_server import Manager


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

    def assertUsageError(self, argv: List[str], text: str) -> None:
        error = self.assertRaises(SystemExit, cli.parse_arguments, argv)
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
        openstack, and the URL comes from NOVASVC_TRANSPORT_URL or the
        default rabbit URL.
        """
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != "NOVASVC_TRANSPORT_URL"})
        args = cli.parse_arguments(["call", "t", "m"])
        self.assertEqual((args.timeout, args.control_exchange, args.transport_url, args.kwargs),
                         (60.0, "openstack", "rabbit://guest:guest@localhost:5672/", {}))
        self.patch(os, "environ", dict(os.environ, NOVASVC_TRANSPORT_URL="memory://env"))
        self.assertEqual(cli.parse_arguments(["call", "t", "m"]).transport_url, "memory://env")

    def test_bad_pair(self) -> None:
        """
        When an argument is not key=JSON, then usage error 64.
        """
        self.assertUsageError(["call", "t", "m", "novalue"], "not key=JSON")

    def test_bad_key(self) -> None:
        """
        When a key is not an identifier, then usage error 64.
        """
        self.assertUsageError(["call", "t", "m", "1x=2"], "not key=JSON")

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
        self.assertUsageError(["call", "--timeout", "0", "t", "m"], "must be positive")
        self.assertUsageError(["call", "--timeout", "soon", "t", "m"], "invalid float")

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

    def test_bad_url(self) -> None:
        """
        When the transport URL cannot be used, then the status is 64.
        """
        d = cli.run(self.clock, cli.parse_arguments(["--transport-url", "bogus://h", "call", "t", "m"]),
                    stdout=self.stdout, stderr=self.stderr)
        self.assertEqual(self.successResultOf(d), cli.EXIT_USAGE)
        self.assertIn("unknown scheme", self.stderr.getvalue())

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
