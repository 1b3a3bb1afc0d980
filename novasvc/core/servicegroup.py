# -*- test-case-name: tests.test_core_servicegroup,tests.test_metrics_instrumentation -*-
"""
Whether a service is up, and the timer that keeps it up: Nova's servicegroup
DB driver (C{nova/servicegroup/drivers/db.py}) in Twisted's shape.

  - L{is_up}: a service is up when its last heartbeat (C{last_seen_up}, else
    C{created_at}) is within C{service_down_time} seconds of now, and it is
    not C{forced_down}.
  - L{effective_service_down_time}: Nova's guard against a
    C{service_down_time} that a healthy service could not meet.
  - L{ReportStateService}: a Twisted service whose C{LoopingCall} calls
    L{IServiceStore.report_state} every C{report_interval} seconds, and never
    dies of an error.
"""

import datetime
from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc._reactor import global_reactor_if_none
from novasvc.db.record import ServiceRecord
from novasvc.db.rules import naive_utc
from novasvc.exceptions import ServiceNotFound
from novasvc.interfaces import IServiceStore
from novasvc.metrics import Recorder, get_recorder

#: Seconds between a service's start and its first report, as Nova's
#: C{INITIAL_REPORTING_DELAY}.
INITIAL_REPORTING_DELAY = 5.0

_log = Logger()


def is_up(record: ServiceRecord, now: datetime.datetime, service_down_time: float = 60) -> bool:
    """
    Tell whether a service is up, as Nova's C{servicegroup.API.service_is_up}
    with the DB driver.

    C{forced_down} means down. Otherwise the last heartbeat is
    C{last_seen_up}, or C{created_at} for a service that never reported; the
    service is up when that is at most C{service_down_time} seconds away
    from C{now}, in either direction (a clock slightly ahead still counts).
    C{disabled} plays no part.

    @param record: the service.
    @type record: L{ServiceRecord}
    @param now: the current time, naive UTC (an aware time is converted).
    @type now: C{datetime.datetime}
    @param service_down_time: in B{seconds}; see
        L{effective_service_down_time}.
    @type service_down_time: C{float}
    @return: C{True} if up; C{False} when down or when the record has no
        timestamp at all.
    @rtype: C{bool}
    """
    if record.forced_down:
        return False
    last_heartbeat = record.last_seen_up or record.created_at
    if last_heartbeat is None:
        return False
    elapsed = (naive_utc(now) - naive_utc(last_heartbeat)).total_seconds()
    return abs(elapsed) <= service_down_time


def effective_service_down_time(
    report_interval: Optional[float], service_down_time: float
) -> float:
    """
    The C{service_down_time} to use, as Nova's C{servicegroup.API}: when it
    is not longer than C{report_interval}, a healthy service would look down
    between two reports, so a warning is logged and
    C{int(report_interval * 2.5)} is used instead.

    @param report_interval: in B{seconds}; C{0} or C{None} when the service
        does not report.
    @type report_interval: C{float} or C{None}
    @param service_down_time: in B{seconds}.
    @type service_down_time: C{float}
    @return: the service down time to use, in B{seconds}.
    @rtype: C{float}
    """
    if report_interval and service_down_time <= report_interval:
        adjusted = int(report_interval * 2.5)
        _log.warn(
            "service_down_time ({service_down_time} s) must be longer than "
            "report_interval ({report_interval} s); using {adjusted} s",
            service_down_time=service_down_time,
            report_interval=report_interval,
            adjusted=adjusted,
        )
        return adjusted
    return service_down_time


_LOST = "lost"
_NOT_FOUND = "not found"


class ReportStateService(Service):
    """
    Report this service's heartbeat (L{IServiceStore.report_state}) every
    C{report_interval} seconds, as Nova's servicegroup DB driver.

    The first report comes C{initial_delay} seconds after L{startService};
    each next one C{report_interval} seconds after the previous one began,
    or, if a report took longer than that, at the next multiple of
    C{report_interval} after it ended (C{LoopingCall}'s rule): reports never
    overlap. No timer runs when C{report_interval} is C{0} or C{None}.

    An error never stops the timer. Each change of state is logged once: the
    first failure as a WARNING C{"Lost connection to the database for
    reporting service status"} with the error; a deleted row
    (L{ServiceNotFound}) as an ERROR; Nova then asks the operator to restart
    the service and never recreates the row, which is what happens here
    without C{reregister}; with it (as L{novasvc.core.service.Service} gives it),
    the row is created again at the next tick, with a WARNING; the first
    success after
    a failure as INFO C{"Recovered from being unable to report status."}.
    Successful reports log nothing. Each tick counts as C{ok} or C{failed}
    in the metrics (L{novasvc.metrics}); a tick skipped because the row does
    not exist yet counts as neither.

    @ivar model_disconnected: C{True} while reporting fails (Nova's name).
    @type model_disconnected: C{bool}
    """

    _log = Logger()

    def __init__(
        self,
        store: IServiceStore,
        get_service_id: Callable[[], Optional[int]],
        *,
        report_interval: Optional[float],
        clock: Optional[Any] = None,
        initial_delay: float = INITIAL_REPORTING_DELAY,
        metrics: Optional[Recorder] = None,
        reregister: Optional[Callable[[], Deferred]] = None,
    ) -> None:
        """
        @param store: where to report.
        @type store: L{IServiceStore}
        @param get_service_id: returns the id of this service's row, or
            C{None} while there is none yet (that tick is skipped). Called
            at every tick, so the row may be created after the start.
        @param report_interval: in B{seconds}; C{0} or C{None} for no
            reporting.
        @type report_interval: C{float} or C{None}
        @param clock: an C{IReactorTime} provider for the timer; default:
            the global reactor, looked up at L{startService}.
        @param initial_delay: B{seconds} from L{startService} to the first
            report (Nova: 5).
        @type initial_delay: C{float}
        @param metrics: where to count reports; the process's
            L{novasvc.metrics.get_recorder} when C{None}.
        @param reregister: when given, how to create this service's row
            again (returning a C{Deferred}); called at the tick after the row
            was found deleted, so a running service shows again (see
            L{row_deleted}). When C{None}, a deleted row stays deleted, as
            in Nova.
        @raise TypeError: if C{store} does not provide L{IServiceStore}.
        @raise ValueError: for a negative C{report_interval} or
            C{initial_delay}.
        """
        if not IServiceStore.providedBy(store):
            raise TypeError(f"{store!r} does not provide IServiceStore")
        if report_interval is not None and report_interval < 0:
            raise ValueError(f"report_interval must not be negative, got {report_interval!r}")
        if initial_delay < 0:
            raise ValueError(f"initial_delay must not be negative, got {initial_delay!r}")
        self._store = store
        self._get_service_id = get_service_id
        self._report_interval = report_interval
        self._initial_delay = initial_delay
        self._clock = clock
        self._delayed: Optional[IDelayedCall] = None
        self._loop: Optional[LoopingCall] = None
        self._loop_done: Optional[Deferred] = None
        self._failing: Optional[str] = None
        self._metrics = get_recorder() if metrics is None else metrics
        self._reregister = reregister

    @property
    def model_disconnected(self) -> bool:
        """
        @return: C{True} while reporting fails (since the last failure and
            until the next success).
        """
        return self._failing is not None

    @property
    def row_deleted(self) -> bool:
        """
        @return: C{True} from the report that found this service's row
            deleted until the row is created again (or, without
            C{reregister}, until the service stops).
        """
        return self._failing == _NOT_FOUND

    def _get_clock(self) -> Any:
        if self._clock is None:
            self._clock = global_reactor_if_none()
        return self._clock

    def startService(self) -> None:
        """
        Start the service and, if C{report_interval} is set, schedule the
        first report C{initial_delay} seconds from now.
        """
        Service.startService(self)
        if not self._report_interval:
            return
        if self._initial_delay > 0:
            self._delayed = self._get_clock().callLater(self._initial_delay, self._start_loop)
        else:
            self._start_loop()

    def _start_loop(self) -> None:
        self._delayed = None
        self._loop = LoopingCall(self._report)
        self._loop.clock = self._get_clock()
        self._loop_done = self._loop.start(self._report_interval, now=True)

    def stopService(self) -> Deferred:
        """
        Stop reporting.

        @return: a C{Deferred} firing with C{None} once a report in progress
            (if any) has finished; no report starts afterwards.
        """
        Service.stopService(self)
        if self._delayed is not None:
            if self._delayed.active():
                self._delayed.cancel()
            self._delayed = None
        loop, self._loop = self._loop, None
        done, self._loop_done = self._loop_done, None
        if loop is None or not loop.running or done is None:
            return succeed(None)
        loop.stop()
        return done.addCallback(lambda _: None)

    def _report(self) -> Optional[Deferred]:
        """
        One tick: report, and turn every outcome into a log line (at most
        one per change of state) and a success, so the loop goes on.
        """
        d = maybeDeferred(self._get_service_id)
        d.addCallback(self._report_service)
        d.addErrback(self._failed)
        return d

    def _report_service(self, service_id: Optional[int]) -> Optional[Deferred]:
        if service_id is None:
            return None
        if self._failing == _NOT_FOUND and self._reregister is not None:
            d = maybeDeferred(self._reregister)
            d.addCallback(self._registered_again)
            return d
        d = self._store.report_state(service_id)
        d.addCallback(self._reported)
        return d

    def _registered_again(self, record: ServiceRecord) -> Deferred:
        self._log.warn("Registered this service again, as service {id}, after its row was "
                       "deleted while it ran", id=record.id)
        self._failing = _LOST  # the next success logs the recovery
        d = self._store.report_state(record.id)
        d.addCallback(self._reported)
        return d

    def _reported(self, record: ServiceRecord) -> None:
        self._metrics.report_state_succeeded()
        if self._failing is not None:
            self._failing = None
            self._log.info("Recovered from being unable to report status.")

    def _failed(self, failure: Failure) -> None:
        self._metrics.report_state_failed()
        state = _NOT_FOUND if failure.check(ServiceNotFound) else _LOST
        if state != self._failing:
            if state == _NOT_FOUND:
                self._log.error(
                    "The services row of this service was deleted, so its status "
                    "can no longer be reported ({error}); {what}",
                    error=failure.getErrorMessage(),
                    what=("it registers again at the next report." if self._reregister
                          else "it is not recreated. Restart the service to register "
                               "it again."),
                )
            else:
                self._log.warn(
                    "Lost connection to the database for reporting service "
                    "status: {error}",
                    error=f"{failure.type.__name__}: {failure.getErrorMessage()}",
                )
        self._failing = state
