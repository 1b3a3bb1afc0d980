"""
Integration tests of the versioned service notifications
(L{novasvc.core.service_status}) on the local RabbitMQ, received by an unmodified
oslo.messaging notification listener (C{tests/_oslo_notify_peer.py}): a
running service's C{service.create}, C{novasvc-manage service disable} as a
real process, the HTTP API's C{PUT} and C{DELETE}, and L{Service.kill}.
"""

import json
import os
import sys
import uuid
from typing import Any, Dict, List

from twisted.internet import defer, reactor, utils
from twisted.trial.unittest import TestCase

from novasvc.config import load_config
from novasvc.core.service import Service
from tests._services import poll, require_service
from tests.test_notify_interop import _Listener
from tests.test_rpc_interop import URL, _peer_env, _require_oslo

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_oslo_notify_peer.py")
HOST = "svc-notify-host"
BINARY = "novasvc-echo"


class ServiceNotificationTests(TestCase):
    """
    A service with a notification driver set (the default format, both,
    sends the versioned ones), and an oslo listener on its versioned topic.
    """

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        require_service("RabbitMQ", "127.0.0.1", 5672)
        _require_oslo()
        self.exchange = f"novasvc-svcnotify-{uuid.uuid4().hex[:8]}"
        self.topic = f"versioned-{uuid.uuid4().hex[:8]}"
        self.listener = _Listener()
        spec = json.dumps({"topics": [self.topic]})
        process = reactor.spawnProcess(
            self.listener, sys.executable, [sys.executable, PEER, "listener", URL, self.exchange, spec],
            env=_peer_env())

        def stop_listener():
            process.closeStdin()
            return self.listener.ended

        self.addCleanup(stop_listener)
        yield self.listener.ready
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.config_path = os.path.join(directory, "novasvc.yaml")
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(
                f"host: {HOST}\n"
                f"transport_url: {URL}\n"
                f"control_exchange: {self.exchange}\n"
                "report_interval: 1\n"
                "periodic_enable: false\n"
                f"database:\n  connection: sqlite:///{directory}/services.sqlite\n"
                "notifications:\n"
                "  driver: messagingv2\n"
                f"  versioned_notifications_topics: [{self.topic}]\n"
            )
        self.service = Service.create(manager="novasvc.examples.echo.EchoManager",
                                      config=load_config(self.config_path), clock=reactor)
        yield self.service.startService()
        self.addCleanup(lambda: self.service.running and self.service.stopService())

    def events(self, event_type: str) -> List[Dict[str, Any]]:
        return [call for call in self.listener.calls if call["event_type"] == event_type]

    def manage(self, *argv: str) -> defer.Deferred:
        return utils.getProcessOutputAndValue(
            sys.executable, ["-m", "novasvc.cli.manage", "-c", self.config_path, *argv], env=_peer_env())

    @defer.inlineCallbacks
    def test_create(self):
        """
        When a service creates its record, then an oslo listener receives
        one service.create from C{<binary>:<host>} at INFO with the record's
        ServiceStatusPayload.
        """
        yield poll(lambda: self.events("service.create"), "service.create received")
        [call] = self.events("service.create")
        self.assertEqual((call["priority"], call["publisher_id"]), ("info", f"{BINARY}:{HOST}"))
        payload = call["payload"]
        self.assertEqual((payload["nova_object.name"], payload["nova_object.version"]),
                         ("ServiceStatusPayload", "1.1"))
        data = payload["nova_object.data"]
        self.assertEqual((data["host"], data["binary"], data["topic"], data["disabled"], data["uuid"]),
                         (HOST, BINARY, "echo", False, self.service.service_ref.uuid))

    @defer.inlineCallbacks
    def test_manage_disable(self):
        """
        When C{novasvc-manage service disable} runs against a running
        service, then the oslo listener receives exactly one service.update
        with the payload's eleven fields, also after the service reported
        twice more; the service's reports send none.
        """
        yield poll(lambda: self.events("service.create"), "service.create received")
        out, err, code = yield self.manage("service", "disable", HOST, BINARY, "--reason", "maintenance")
        self.assertEqual(code, 0, (out, err))
        yield poll(lambda: self.events("service.update"), "service.update received")
        count = self.service.service_ref.report_count

        @defer.inlineCallbacks
        def reported_twice():
            record = yield self.service.store.get(self.service.service_ref.id)
            return record.report_count >= count + 2

        yield poll(reported_twice, "two more reports", interval=0.05)
        [call] = self.events("service.update")
        self.assertEqual((call["priority"], call["publisher_id"]), ("info", f"{BINARY}:{HOST}"))
        data = call["payload"]["nova_object.data"]
        self.assertEqual(sorted(data), sorted([
            "host", "binary", "topic", "report_count", "disabled", "disabled_reason",
            "availability_zone", "last_seen_up", "forced_down", "version", "uuid"]))
        self.assertEqual((data["host"], data["binary"], data["disabled"], data["disabled_reason"],
                          data["forced_down"]), (HOST, BINARY, True, "maintenance", False))

    @defer.inlineCallbacks
    def test_kill(self):
        """
        When the service is killed, then the oslo listener receives one
        service.delete.
        """
        yield self.service.kill()
        yield poll(lambda: self.events("service.delete"), "service.delete received")
        [call] = self.events("service.delete")
        self.assertEqual(call["payload"]["nova_object.data"]["host"], HOST)
