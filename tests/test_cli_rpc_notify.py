"""
Tests for L{novasvc.cli._rpc_notify}: C{novasvc-rpc notify}, through
L{novasvc.cli.rpc.parse_arguments} and L{novasvc.cli.rpc.run}, with an
injected in-memory transport and a L{task.Clock} as the reactor.
"""

import io
import json
import shlex
import sys
from typing import Any, List

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from novasvc.cli import rpc as cli
from novasvc.exceptions import TransportError
from novasvc.transport.memory import MemoryBroker, MemoryTransport
from tests.test_cli_rpc import StoppableTransport, UnconfirmedTransport, _readme


class NotifyTests(SynchronousTestCase):
    """
    C{novasvc-rpc notify}: parsing, and sending on an in-memory broker.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def factory(self, url: str, reactor: Any, cls: type = StoppableTransport) -> MemoryTransport:
        self.transport = cls(broker=self.broker, clock=reactor)
        return self.transport

    def run_cli(self, *argv: str, cls: type = StoppableTransport) -> defer.Deferred:
        return cli.run(self.clock, cli.parse_arguments(list(argv), environ={}),
                       transport_factory=lambda url, reactor: self.factory(url, reactor, cls),
                       stdout=self.stdout, stderr=self.stderr)

    def sent(self, queue: str) -> List[dict]:
        state = self.broker.queues.get(queue)
        messages = [] if state is None else state.messages
        return [json.loads(json.loads(m.body)["oslo.message"]) for m in messages]

    def test_parse(self) -> None:
        """
        When notify is parsed, then the event type, priority, publisher id,
        topics, driver and the payload from key=JSON pairs are there; the
        defaults are info, novasvc-rpc.<host>, the file's topics and
        messagingv2.
        """
        args = cli.parse_arguments(["notify", "--priority", "error", "--publisher-id", "vol.h1", "--topic", "a",
                                    "--topic", "b", "--driver", "messaging", "volume.fail", "size=1",
                                    "name=vol1"], environ={})
        self.assertEqual((args.command, args.event_type, args.priority, args.publisher_id, args.topics,
                          args.driver, args.payload),
                         ("notify", "volume.fail", "error", "vol.h1", ["a", "b"], "messaging",
                          {"size": 1, "name": "vol1"}))
        args = cli.parse_arguments(["notify", "e"], environ={})
        self.assertEqual((args.priority, args.publisher_id, args.topics, args.driver, args.payload),
                         ("info", f"novasvc-rpc.{args.settings.host}", ["notifications"], "messagingv2", {}))

    def test_parse_refused(self) -> None:
        """
        When notify gets a call/cast option, an unknown priority, a bad
        topic or no event type, then usage error 64.
        """
        for argv in (["notify", "--server", "h", "e"], ["--fanout", "notify", "e"], ["notify", "--priority",
                     "loud", "e"], ["notify", "--topic", "a b", "e"], ["notify"], ["notify", "e", "novalue"]):
            error = self.assertRaises(SystemExit, cli.parse_arguments, argv, environ={})
            self.assertEqual(error.code, cli.EXIT_USAGE, argv)

    def test_send(self) -> None:
        """
        When notify runs, then the notification waits in the queue
        <topic>.<priority> on the control exchange with the admin context,
        the status is 0 once confirmed, nothing is printed, and the
        transport is stopped.
        """
        code = self.successResultOf(self.run_cli("--control-exchange", "nova", "notify", "--priority", "warn",
                                                 "--publisher-id", "ops", "disk.full", "free=0"))
        self.assertEqual(code, cli.EXIT_OK)
        [message] = self.sent("notifications.warn")
        self.assertEqual((message["event_type"], message["priority"], message["publisher_id"], message["payload"],
                          message["_context_is_admin"]), ("disk.full", "WARN", "ops", {"free": 0}, True))
        self.assertEqual(self.broker.queues["notifications.warn"].bindings, {("nova", "notifications.warn")})
        self.assertEqual(self.stdout.getvalue() + self.stderr.getvalue(), "")
        self.assertTrue(self.transport.stopped)

    def test_config_file(self) -> None:
        """
        When the file gives notification topics and retry, then notify
        uses them; --topic beats the topics.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("notifications:\n  topics: [billing, audit]\n  retry: 0\n")
        self.assertEqual(self.successResultOf(self.run_cli("-c", path, "notify", "e")), cli.EXIT_OK)
        self.assertEqual((len(self.sent("billing.info")), len(self.sent("audit.info"))), (1, 1))
        args = cli.parse_arguments(["-c", path, "notify", "--topic", "x", "e"], environ={})
        self.assertEqual((args.topics, args.settings.notifications.retry), (["x"], 0))

    def test_not_sent(self) -> None:
        """
        When the notification cannot be sent, then one line on stderr says
        why, and the status is 1.
        """
        class Stopped(StoppableTransport):
            def declare_queue(self, queue: Any) -> defer.Deferred:
                return defer.fail(TransportError("the broker refused the queue"))

        self.assertEqual(self.successResultOf(self.run_cli("notify", "e", cls=Stopped)), cli.EXIT_REMOTE_ERROR)
        self.assertEqual(self.stderr.getvalue().splitlines(), [
            "error: the notification was not sent: messagingv2 to notifications.info: TransportError: the broker "
            "refused the queue"])

    def test_unconfirmed(self) -> None:
        """
        When the broker does not confirm within --timeout, then the status
        is 2 and stderr says so.
        """
        d = self.run_cli("notify", "--timeout", "2", "e", cls=UnconfirmedTransport)
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), cli.EXIT_TIMEOUT)
        self.assertEqual(self.stderr.getvalue(), "timeout: the broker did not confirm the notification within 2.0 s\n")

    def test_readme_command(self) -> None:
        """
        When the README's notify command runs, then it exits 0 and the
        notification waits in notifications.warn as it says.
        """
        text = _readme()
        section = text[text.index("\nNotifications\n---"):]
        [line] = [line.strip() for line in section.splitlines() if line.strip().startswith("$ novasvc-rpc notify")]
        argv = shlex.split(line)[2:]
        self.assertEqual(self.successResultOf(self.run_cli(*argv)), cli.EXIT_OK)
        [message] = self.sent("notifications.warn")
        self.assertEqual((message["publisher_id"], message["event_type"], message["payload"]),
                         ("ops.host1", "disk.full", {"free": 0}))
