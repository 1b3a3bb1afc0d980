"""
Tests for L{novasvc.core.servicegroup}.
"""

import datetime
from typing import List, Optional

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.db.memory import MemoryServiceStore
from novasvc.db.record import ServiceRecord
from novasvc.exceptions import ServiceNotFound
from novasvc.core.servicegroup import (
    INITIAL_REPORTING_DELAY,
    ReportStateService,
    effective_service_down_time,
    is_up,
)

NOW = datetime.datetime(2026, 5, 6, 7, 8, 9)
LOST = "Lost connection to the database for reporting service status"
RECOVERED = "Recovered from being unable to report status."


def _record(**kwargs) -> ServiceRecord:
    values = dict(id=1, uuid="u", host="h", binary="novasvc-x", topic="x", created_at=NOW)
    values.update(kwargs)
    return ServiceRecord(**values)


class IsUpTests(SynchronousTestCase):
    """
    L{is_up} compares the last heartbeat with C{service_down_time}.
    """

    def test_recent_report(self) -> None:
        """
        When the last report is within service_down_time (up to and
        including the limit), then the service is up; beyond it, down.
        """
        record = _record(created_at=NOW - datetime.timedelta(days=1), last_seen_up=NOW)
        self.assertTrue(is_up(record, NOW + datetime.timedelta(seconds=59.9)))
        self.assertTrue(is_up(record, NOW + datetime.timedelta(seconds=60)))
        self.assertFalse(is_up(record, NOW + datetime.timedelta(seconds=60.001)))
        self.assertTrue(is_up(record, NOW + datetime.timedelta(seconds=90), service_down_time=90))

    def test_never_reported(self) -> None:
        """
        When the service never reported, then C{created_at} is the last
        heartbeat.
        """
        record = _record(last_seen_up=None)
        self.assertTrue(is_up(record, NOW + datetime.timedelta(seconds=30)))
        self.assertFalse(is_up(record, NOW + datetime.timedelta(seconds=61)))

    def test_last_seen_up_wins(self) -> None:
        """
        When both timestamps exist, then C{last_seen_up} counts, not
        C{created_at} nor C{updated_at}.
        """
        old = NOW - datetime.timedelta(hours=1)
        record = _record(created_at=NOW, updated_at=NOW, last_seen_up=old)
        self.assertFalse(is_up(record, NOW))

    def test_future_heartbeat(self) -> None:
        """
        When the heartbeat is ahead of now, then it counts within the same
        window (Nova takes the absolute difference).
        """
        record = _record(last_seen_up=NOW + datetime.timedelta(seconds=30))
        self.assertTrue(is_up(record, NOW))
        record = _record(last_seen_up=NOW + datetime.timedelta(seconds=61))
        self.assertFalse(is_up(record, NOW))

    def test_forced_down(self) -> None:
        """
        When the service is forced down, then it is down whatever its
        heartbeat; disabled does not matter.
        """
        self.assertFalse(is_up(_record(last_seen_up=NOW, forced_down=True), NOW))
        self.assertTrue(is_up(_record(last_seen_up=NOW, disabled=True), NOW))

    def test_no_timestamp(self) -> None:
        """
        When the record has no timestamp at all, then it is down.
        """
        self.assertFalse(is_up(_record(created_at=None), NOW))

    def test_aware_now(self) -> None:
        """
        When now is an aware time, then it is compared as UTC.
        """
        record = _record(last_seen_up=NOW)
        tz = datetime.timezone(datetime.timedelta(hours=3))
        self.assertTrue(is_up(record, (NOW + datetime.timedelta(hours=3)).replace(tzinfo=tz)))
        self.assertFalse(is_up(record, NOW.replace(tzinfo=tz)))


class EffectiveServiceDownTimeTests(SynchronousTestCase):
    """
    L{effective_service_down_time} applies Nova's guard.
    """

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def warnings(self) -> List[dict]:
        return [e for e in self.events if e["log_namespace"] == "novasvc.core.servicegroup"]

    def test_longer(self) -> None:
        """
        When service_down_time is longer than report_interval, then it is
        kept and nothing is logged.
        """
        self.assertEqual(effective_service_down_time(10, 60), 60)
        self.assertEqual(self.warnings(), [])

    def test_not_longer(self) -> None:
        """
        When service_down_time is not longer than report_interval, then
        int(report_interval * 2.5) is used and a warning logged.
        """
        self.assertEqual(effective_service_down_time(10, 10), 25)
        self.assertEqual(effective_service_down_time(12.5, 5), 31)
        self.assertEqual([e["log_level"] for e in self.warnings()], [LogLevel.warn] * 2)
        self.assertEqual(self.warnings()[0]["adjusted"], 25)

    def test_no_reporting(self) -> None:
        """
        When report_interval is 0 or None, then service_down_time is kept.
        """
        self.assertEqual(effective_service_down_time(0, 60), 60)
        self.assertEqual(effective_service_down_time(None, 60), 60)
        self.assertEqual(self.warnings(), [])


class ScriptedStore(MemoryServiceStore):
    """
    A memory store whose C{report_state} returns, in turn, the results
    scripted in C{results} (a C{Deferred}, an exception to fail with, or
    C{None} for the memory store's own answer).

    @ivar calls: the service ids reported, in order.
    """

    def __init__(self) -> None:
        super().__init__(utcnow=lambda: NOW)
        self.start()
        self.calls: List[int] = []
        self.results: List[object] = []

    def report_state(self, service_id):
        self.calls.append(service_id)
        result = self.results.pop(0) if self.results else None
        if isinstance(result, Deferred):
            return result
        if isinstance(result, Exception):
            return fail(result)
        return super().report_state(service_id)


class ReportStateServiceTests(SynchronousTestCase):
    """
    L{ReportStateService} reports on its clock and survives errors.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = ScriptedStore()
        self.record = self.successResultOf(self.store.create("h", "novasvc-x", "x"))
        self.service_id: Optional[int] = self.record.id
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def make(self, report_interval=10, **kwargs) -> ReportStateService:
        service = ReportStateService(
            self.store, lambda: self.service_id, report_interval=report_interval,
            clock=self.clock, **kwargs,
        )
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        return service

    def logged(self, level: Optional[LogLevel] = None) -> List[dict]:
        return [
            e for e in self.events
            if e["log_namespace"] == "novasvc.core.servicegroup.ReportStateService"
            and (level is None or e["log_level"] == level)
        ]

    def messages(self) -> List[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.logged()]

    def report_count(self) -> int:
        return self.successResultOf(self.store.get(self.record.id)).report_count

    def test_initial_delay(self) -> None:
        """
        When the service starts, then nothing is reported until the initial
        delay (5 seconds by default) has passed, and then one report is.
        """
        self.make()
        self.assertEqual(INITIAL_REPORTING_DELAY, 5)
        self.clock.advance(4.9)
        self.assertEqual(self.store.calls, [])
        self.clock.advance(0.1)
        self.assertEqual(self.store.calls, [self.record.id])
        self.assertEqual(self.report_count(), 1)

    def test_cadence(self) -> None:
        """
        When time passes, then a report is made every report_interval
        seconds after the first.
        """
        self.make(report_interval=10, initial_delay=2)
        self.clock.advance(2)
        for expected in range(2, 6):
            self.clock.advance(9.9)
            self.assertEqual(len(self.store.calls), expected - 1)
            self.clock.advance(0.1)
            self.assertEqual(len(self.store.calls), expected)
        self.assertEqual(self.report_count(), 5)

    def test_no_initial_delay(self) -> None:
        """
        When the initial delay is 0, then the first report is made at start.
        """
        self.make(initial_delay=0)
        self.assertEqual(len(self.store.calls), 1)

    def test_no_interval(self) -> None:
        """
        When report_interval is 0 or None, then no timer runs and nothing is
        ever reported.
        """
        for interval in (0, None):
            service = self.make(report_interval=interval)
            self.assertEqual(self.clock.getDelayedCalls(), [])
            self.clock.advance(1000)
            self.assertEqual(self.store.calls, [])
            self.assertIsNone(self.successResultOf(service.stopService()))

    def test_no_overlap(self) -> None:
        """
        When a report takes longer than report_interval, then no other
        report starts until it is done; the next comes at the next interval
        boundary after that.
        """
        slow = Deferred()
        self.store.results = [slow]
        self.make(initial_delay=0)
        self.clock.advance(35)
        self.assertEqual(len(self.store.calls), 1)
        slow.callback(self.record)
        self.assertEqual(len(self.store.calls), 1)
        self.clock.advance(5)
        self.assertEqual(len(self.store.calls), 2)

    def test_lost_and_recovered_once(self) -> None:
        """
        When reports fail several times and then succeed several times,
        then one WARNING (with the error) and one INFO are logged, and the
        timer kept reporting throughout.
        """
        self.store.results = [ConnectionError("db is gone")] * 3
        service = self.make(initial_delay=0)
        self.assertTrue(service.model_disconnected)
        self.clock.pump([10] * 4)
        self.assertEqual(len(self.store.calls), 5)
        self.assertFalse(service.model_disconnected)
        [warning] = self.logged(LogLevel.warn)
        [info] = self.logged(LogLevel.info)
        self.assertEqual(len(self.logged()), 2)
        messages = self.messages()
        self.assertTrue(messages[0].startswith(LOST))
        self.assertIn("ConnectionError: db is gone", messages[0])
        self.assertEqual(messages[1], RECOVERED)
        self.assertEqual(self.report_count(), 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_lost_again(self) -> None:
        """
        When reporting fails, recovers and fails again, then each change is
        logged once.
        """
        self.store.results = [
            ConnectionError("a"), None, ConnectionError("b"), ConnectionError("c"), None
        ]
        self.make(initial_delay=0)
        self.clock.pump([10] * 6)
        self.assertEqual(
            [m.split(":")[0] for m in self.messages()], [LOST, RECOVERED, LOST, RECOVERED]
        )

    def test_success_logs_nothing(self) -> None:
        """
        When every report succeeds, then nothing is logged.
        """
        self.make(initial_delay=0)
        self.clock.pump([10] * 10)
        self.assertEqual(len(self.store.calls), 11)
        self.assertEqual(self.logged(), [])

    def test_row_deleted(self) -> None:
        """
        When the row was deleted, then one ERROR tells the operator to
        restart the service, the row is not recreated, and the timer keeps
        trying.
        """
        self.make(initial_delay=0)
        self.successResultOf(self.store.destroy(self.record.id))
        self.clock.pump([10] * 3)
        self.assertEqual(len(self.store.calls), 4)
        [error] = self.logged()
        self.assertEqual(error["log_level"], LogLevel.error)
        self.assertIn("Restart the service", self.messages()[0])
        self.assertEqual(self.successResultOf(self.store.list_services()), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_row_deleted_registers_again(self) -> None:
        """
        When the row was deleted and C{reregister} is given, then
        C{row_deleted} is true and one ERROR says it registers again; at the
        next tick the row is created again and reported (one WARNING, one
        INFO), and C{row_deleted} is false.
        """
        created: List[int] = []

        def reregister():
            d = self.store.create("h", "novasvc-x", "x")

            def made(record):
                created.append(record.id)
                self.service_id = record.id
                return record

            return d.addCallback(made)

        service = self.make(initial_delay=0, reregister=reregister)
        self.assertFalse(service.row_deleted)
        self.successResultOf(self.store.destroy(self.record.id))
        self.clock.advance(10)
        self.assertTrue(service.row_deleted)
        self.assertIn("registers again at the next report", self.messages()[0])
        self.clock.advance(10)
        self.assertFalse(service.row_deleted)
        [live] = self.successResultOf(self.store.list_services())
        self.assertEqual(([live.id], live.report_count), (created, 1))
        self.assertEqual([e["log_level"] for e in self.logged()],
                         [LogLevel.error, LogLevel.warn, LogLevel.info])
        self.clock.advance(10)
        self.assertEqual(len(self.logged()), 3)

    def test_lost_then_deleted(self) -> None:
        """
        When the database is lost and then the row turns out deleted, then
        the WARNING and the ERROR are each logged once.
        """
        self.store.results = [ConnectionError("x"), ConnectionError("y"),
                              ServiceNotFound("gone"), ServiceNotFound("gone")]
        self.make(initial_delay=0)
        self.clock.pump([10] * 3)
        self.assertEqual(
            [e["log_level"] for e in self.logged()], [LogLevel.warn, LogLevel.error]
        )

    def test_no_service_id(self) -> None:
        """
        When the service has no row id yet, then ticks are skipped quietly
        until it has one.
        """
        self.service_id = None
        self.make(initial_delay=0)
        self.clock.advance(10)
        self.assertEqual((self.store.calls, self.logged()), ([], []))
        self.service_id = self.record.id
        self.clock.advance(10)
        self.assertEqual(self.store.calls, [self.record.id])

    def test_get_service_id_raises(self) -> None:
        """
        When looking up the id raises, then that is logged as a failure to
        report and the timer goes on.
        """
        def broken():
            raise RuntimeError("no id")

        service = ReportStateService(self.store, broken, report_interval=10, clock=self.clock,
                                     initial_delay=0)
        service.startService()
        self.addCleanup(service.stopService)
        self.clock.advance(10)
        self.assertEqual(len(self.logged(LogLevel.warn)), 1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_stop_during_initial_delay(self) -> None:
        """
        When the service stops before its first report, then the pending
        call is cancelled and nothing is ever reported.
        """
        service = self.make()
        self.assertIsNone(self.successResultOf(service.stopService()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(self.store.calls, [])

    def test_stop_idle(self) -> None:
        """
        When the service stops between reports, then it has stopped at once
        and no further report is made.
        """
        service = self.make(initial_delay=0)
        self.assertIsNone(self.successResultOf(service.stopService()))
        self.assertFalse(service.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(len(self.store.calls), 1)

    def test_stop_waits_for_report(self) -> None:
        """
        When the service stops while a report is in progress, then stopping
        finishes only after that report, and none follows.
        """
        slow = Deferred()
        self.store.results = [None, slow]
        service = self.make(initial_delay=0)
        self.clock.advance(10)
        stopped = service.stopService()
        self.assertNoResult(stopped)
        slow.callback(self.record)
        self.assertIsNone(self.successResultOf(stopped))
        self.clock.advance(100)
        self.assertEqual(len(self.store.calls), 2)

    def test_restart(self) -> None:
        """
        When the service is stopped and started again, then reporting
        resumes after the initial delay.
        """
        service = self.make(initial_delay=1)
        self.clock.advance(1)
        service.stopService()
        service.startService()
        self.clock.advance(1)
        self.assertEqual(len(self.store.calls), 2)

    def test_bad_arguments(self) -> None:
        """
        When the store does not provide IServiceStore, or an interval or
        delay is negative, then construction fails.
        """
        self.assertRaises(TypeError, ReportStateService, object(), lambda: 1, report_interval=10)
        self.assertRaises(ValueError, ReportStateService, self.store, lambda: 1, report_interval=-1)
        self.assertRaises(
            ValueError, ReportStateService, self.store, lambda: 1, report_interval=1,
            initial_delay=-1,
        )
