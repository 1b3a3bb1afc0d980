"""
Tests for L{novasvc.notify.drivers} and L{novasvc.notify._sending}: the
tries of the messaging drivers while the broker is away (a transport that
fails as the AMQP ones do, and a L{task.Clock}), the C{log} driver's line,
the C{test} and C{noop} drivers.
"""

import json
from typing import Any, List, Optional

from twisted.internet import defer, task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import NOTIFICATION_DRIVERS
from novasvc.exceptions import DisconnectedError, TransportError
from novasvc.metrics import FAILED, SENT, Recorder
from novasvc.notify import MessageDeliveryFailure, Notifier
from novasvc.notify.drivers import DRIVER_NAMES, LOG_LINE_LIMIT, LogDriver, NoopDriver, TestDriver, mask_secrets
from novasvc.notify.message import Notification
from novasvc.transport.memory import MemoryBroker, MemoryTransport


def run_timers(clock: task.Clock, seconds: float) -> None:
    """
    Advance C{clock} from timer to timer (each fired at its own time) for
    at most C{seconds}.
    """
    end = clock.seconds() + seconds
    while True:
        due = [call.getTime() for call in clock.getDelayedCalls()]
        if not due or min(due) > end:
            break
        clock.advance(max(0.0, min(due) - clock.seconds()))
    clock.advance(max(0.0, end - clock.seconds()))


class AwayTransport(MemoryTransport):
    """
    The memory transport, but its next C{failures} declarations or
    publishes fail with C{error} (as an AMQP transport's do while the broker
    is away), and it counts the tries.
    """

    def __init__(self, failures: int, error: Exception = DisconnectedError("broker away"), *,
                 fail: str = "publish", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures
        self.error = error
        self.fail = fail
        self.tries: List[float] = []
        self.bodies: List[bytes] = []

    def _maybe_fail(self, what: str) -> Optional[defer.Deferred]:
        if what != self.fail:
            return None
        self.tries.append(self.clock.seconds())
        if self.failures:
            self.failures -= 1
            return defer.fail(self.error)
        return None

    def declare_queue(self, queue: Any) -> defer.Deferred:
        return self._maybe_fail("declare") or super().declare_queue(queue)

    def publish(self, *args: Any, **kwargs: Any) -> defer.Deferred:
        self.bodies.append(args[2])
        return self._maybe_fail("publish") or super().publish(*args, **kwargs)


class RetryTests(SynchronousTestCase):
    """
    C{retry}: oslo's values mapped on the transport's failures.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.recorder = Recorder()
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def notifier(self, transport: AwayTransport, retry: Optional[int]) -> Notifier:
        return Notifier(transport, "p", retry=retry, clock=self.clock, metrics=self.recorder)

    def away(self, failures: int, **kwargs: Any) -> AwayTransport:
        return AwayTransport(failures, broker=self.broker, clock=self.clock, **kwargs)

    def queued(self) -> int:
        state = self.broker.queues.get("notifications.info")
        return 0 if state is None else len(state.messages)

    def test_forever(self) -> None:
        """
        When retry is -1 (or None) and the broker stays away for ten tries,
        then the message (the same bytes, so the same message_id and
        _unique_id) is tried again at once, then after 1, 2, 4... seconds
        (at most 30), and is sent once the broker is back; the Deferred
        fires then, with nothing logged.
        """
        for retry in (-1, None):
            transport = self.away(10)
            d = self.notifier(transport, retry).info({}, "e", {})
            self.assertNoResult(d)
            run_timers(self.clock, 1000)
            self.assertIsNone(self.successResultOf(d))
            gaps = [round(b - a, 3) for a, b in zip(transport.tries, transport.tries[1:])]
            self.assertEqual(gaps, [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0])
            self.assertEqual(len(set(transport.bodies)), 1)  # the same bytes each time
        self.assertEqual(self.queued(), 2)
        self.assertEqual([e for e in self.logged if e["log_level"] == LogLevel.error], [])

    def test_none(self) -> None:
        """
        When retry is 0, then one try only: the message lost with the
        connection is logged as not sent and counted as failed.
        """
        transport = self.away(1)
        d = self.notifier(transport, 0).info({}, "vol.e", {})
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(len(transport.tries), 1)
        self.assertEqual(self.queued(), 0)
        [error] = [formatEvent(e) for e in self.logged if e["log_level"] == LogLevel.error]
        self.assertIn("vol.e (info) from p was not sent (messagingv2 to notifications.info)", error)
        self.assertIn("DisconnectedError: broker away", error)
        self.assertEqual(self.recorder.notifier.counts(), [("vol.e", "info", {SENT: 0, FAILED: 1})])

    def test_n_times(self) -> None:
        """
        When retry is 2, then three tries, then the loss is logged naming
        the number of tries; when the third try succeeds, it is sent.
        """
        transport = self.away(5)
        d = self.notifier(transport, 2).deliver({}, "e", {}, "info")
        run_timers(self.clock, 100)
        failure = self.failureResultOf(d, MessageDeliveryFailure)
        self.assertEqual(len(transport.tries), 3)
        self.assertIn("after 3 tries, retry=2", str(failure.value))
        transport = self.away(2)
        d = self.notifier(transport, 2).info({}, "e", {})
        run_timers(self.clock, 100)
        self.successResultOf(d)
        self.assertEqual(self.queued(), 1)

    def test_declaration_retried(self) -> None:
        """
        When the queue's declaration is what the lost connection failed,
        then it is tried again as a publish would be.
        """
        transport = self.away(3, fail="declare")
        d = self.notifier(transport, -1).info({}, "e", {})
        run_timers(self.clock, 100)
        self.successResultOf(d)
        self.assertEqual((len(transport.tries), self.queued()), (4, 1))

    def test_final_errors_not_retried(self) -> None:
        """
        When the try fails with another TransportError (the broker refused,
        the transport stopped), then it is not tried again, even with
        retry -1.
        """
        transport = self.away(1, error=TransportError("refused"))
        d = self.notifier(transport, -1).deliver({}, "e", {})
        failure = self.failureResultOf(d, MessageDeliveryFailure)
        self.assertIn("TransportError: refused", str(failure.value))
        self.assertEqual(len(transport.tries), 1)

    def test_cancel_stops_tries(self) -> None:
        """
        When the Deferred of deliver is cancelled while waiting to try
        again, then no more tries happen.
        """
        transport = self.away(100)
        d = self.notifier(transport, -1).deliver({}, "e", {})
        run_timers(self.clock, 1.5)
        tries = len(transport.tries)
        self.assertEqual(tries, 3)
        d.cancel()
        self.failureResultOf(d)
        run_timers(self.clock, 1000)
        self.assertEqual(len(transport.tries), tries)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LogDriverTests(SynchronousTestCase):
    """
    The C{log} driver: one line per notification.
    """

    def setUp(self) -> None:
        self.logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def notification(self, priority: str = "info", payload: Any = None, event_type: str = "vol.create") -> Any:
        return Notification(publisher_id="vol.h1", event_type=event_type, priority=priority,
                            payload={"size": 1} if payload is None else payload, context={"user_id": "u"},
                            metadata={"message_id": "m-1", "timestamp": "2026-01-01 00:00:00.000001"})

    def test_line(self) -> None:
        """
        When a notification is logged, then one event in the namespace
        novasvc.notification.<event type> holds the JSON of oslo's message
        (no context), priority upper case.
        """
        self.successResultOf(LogDriver().notify(self.notification(), None))
        [event] = self.logged
        self.assertEqual(event["log_namespace"], "novasvc.notification.vol.create")
        self.assertEqual(json.loads(formatEvent(event)), {
            "message_id": "m-1", "publisher_id": "vol.h1", "event_type": "vol.create", "priority": "INFO",
            "payload": {"size": 1}, "timestamp": "2026-01-01 00:00:00.000001"})

    def test_levels(self) -> None:
        """
        When each priority is logged, then its level is the priority's,
        audit at info and sample at debug.
        """
        driver = LogDriver()
        for priority in ("audit", "debug", "info", "warn", "error", "critical", "sample"):
            self.successResultOf(driver.notify(self.notification(priority), None))
        self.assertEqual([e["log_level"] for e in self.logged],
                         [LogLevel.info, LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error,
                          LogLevel.critical, LogLevel.debug])

    def test_secrets_masked(self) -> None:
        """
        When the payload holds passwords, tokens or secrets at any depth,
        then the line shows *** in their place; the payload is not changed.
        """
        payload = {"admin_password": "p1", "nested": [{"auth_token": "t"}], "Secret_Key": "s", "name": "ok"}
        self.successResultOf(LogDriver().notify(self.notification(payload=payload), None))
        line = formatEvent(self.logged[0])
        for secret in ("p1", '"t"', '"s"'):
            self.assertNotIn(secret, line)
        self.assertEqual(json.loads(line)["payload"], {"admin_password": "***", "nested": [{"auth_token": "***"}],
                                                       "Secret_Key": "***", "name": "ok"})
        self.assertEqual(payload["admin_password"], "p1")
        self.assertEqual(mask_secrets(("a", {"password": 1})), ["a", {"password": "***"}])

    def test_bounded(self) -> None:
        """
        When the payload and the event type are huge, then the line is cut
        to LOG_LINE_LIMIT characters and says how long it was, and the
        namespace stays short.
        """
        notification = self.notification(payload={"blob": "x" * 100000}, event_type="e" * 10000)
        self.successResultOf(LogDriver().notify(notification, None))
        line = formatEvent(self.logged[0])
        self.assertLess(len(line), LOG_LINE_LIMIT + 40)
        self.assertRegex(line, r"\.\.\. \(\d+ characters\)$")
        self.assertLess(len(self.logged[0]["log_namespace"]), 300)

    def test_not_encodable(self) -> None:
        """
        When the payload cannot be encoded, then the driver fails with
        MessageDeliveryFailure and logs nothing.
        """
        self.failureResultOf(LogDriver().notify(self.notification(payload={"x": object()}), None),
                             MessageDeliveryFailure)
        self.assertEqual(list(self.logged), [])


class OtherDriversTests(SynchronousTestCase):
    """
    C{noop}, C{test}, and the driver names.
    """

    def test_noop(self) -> None:
        """
        When the noop driver gets a notification, then it does nothing and
        succeeds.
        """
        self.assertIsNone(self.successResultOf(NoopDriver().notify(None, None)))

    def test_test_keeps_in_order(self) -> None:
        """
        When the test driver gets notifications, then it keeps them in
        order until cleared.
        """
        driver = TestDriver()
        for n in range(3):
            driver.notify(n, None)
        self.assertEqual(driver.notifications, [0, 1, 2])
        driver.clear()
        self.assertEqual(driver.notifications, [])

    def test_names(self) -> None:
        """
        When the driver names are read, then they are oslo's (without
        routing), and the configuration accepts the same.
        """
        self.assertEqual(DRIVER_NAMES, ("messagingv2", "messaging", "log", "noop", "test"))
        self.assertEqual(DRIVER_NAMES, NOTIFICATION_DRIVERS)

    def test_failure_text(self) -> None:
        """
        When a MessageDeliveryFailure is made, then its text lists each
        place and reason.
        """
        error = MessageDeliveryFailure([("messagingv2 to a.info", "DisconnectedError: x"), ("log", "TypeError")])
        self.assertEqual(str(error), "messagingv2 to a.info: DisconnectedError: x; log: TypeError")
