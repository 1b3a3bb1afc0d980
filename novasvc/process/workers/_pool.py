# -*- test-case-name: tests.test_process_workers_pool -*-
"""
L{WorkerPool}: the supervising parent's service, as oslo.service's
C{ProcessLauncher}: it keeps N worker processes running, restarts one that
ends unexpectedly (after a L{Backoff} delay), forwards SIGHUP, and stops
them all with SIGTERM, then SIGKILL after a deadline.

How a worker is started (which program, which file descriptors, how its
output is read) is an L{IWorkerSpawner}'s job: L{novasvc.process.workers.ProcessSpawner}
starts real processes; tests give a fake one.
"""

import signal
from typing import Callable, List, Optional

import attrs
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from novasvc._phase import Shared, refuse_start
from novasvc.exceptions import WorkerStartError
from novasvc.process.workers._backoff import Backoff

__all__ = ["IWorkerProcess", "IWorkerSpawner", "KILL_GRACE", "HURRY_GRACE", "WorkerExit",
           "WorkerPool", "WorkerStartError"]

_log = Logger()

#: Seconds a worker may still take, beyond C{graceful_shutdown_timeout},
#: before the parent sends it SIGKILL.
KILL_GRACE = 10.0
#: Seconds a worker may take after the second SIGTERM ("stop now") before
#: the parent sends it SIGKILL; shorter than
#: L{novasvc.process.launcher.STOP_NOW_GRACE}, so that the parent has reaped its
#: workers before it gives up itself.
HURRY_GRACE = 8.0


@attrs.frozen
class WorkerExit:
    """
    How a worker process ended.

    @ivar code: its exit status (C{int}), or C{None} when a signal ended it
        or it could not be started.
    @ivar signal: the number of the signal that ended it, or C{None}.
    @ivar last_error: the last error line it logged (C{str}, clipped), or
        C{None}; for a process that could not be started, why.
    """

    code: Optional[int] = None
    signal: Optional[int] = None
    last_error: Optional[str] = None

    @property
    def spawned(self) -> bool:
        """
        Whether the process was started at all.
        """
        return self.code is not None or self.signal is not None

    def describe(self) -> str:
        """
        @return: e.g. C{"exited with status 1"}, C{"was killed by signal 9
            (SIGKILL)"}, C{"could not be started"}.
        """
        if self.signal is not None:
            try:
                name = f" ({signal.Signals(self.signal).name})"
            except ValueError:
                name = ""
            return f"was killed by signal {self.signal}{name}"
        if self.code is not None:
            return f"exited with status {self.code}"
        return "could not be started"


class IWorkerProcess(Interface):
    """
    A started worker process.
    """

    pid = Attribute("The process id (C{int}).")

    def signal(name: str) -> None:
        """
        Send it a signal, if it still runs.

        @param name: C{"TERM"}, C{"KILL"} or C{"HUP"}.
        """


class IWorkerSpawner(Interface):
    """
    Starts one worker process.
    """

    def spawn(index: int, count: int, ready: Callable[[], None], stopping: Callable[[], None],
              exited: Callable[[WorkerExit], None]) -> IWorkerProcess:
        """
        Start worker C{index} (1-based) of C{count}.

        @param ready: to call (later, in the reactor thread) when the worker
            says it is ready.
        @param stopping: to call when the worker says it is stopping (it
            got SIGTERM from someone, or its parent is gone).
        @param exited: to call once with its L{WorkerExit} when it has
            ended and its output has been read.
        @return: the process.
        @raise Exception: when the process cannot be started at all.
        """


class _Slot:
    """
    One place of the pool: the process that holds it now, and its restart
    state.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Optional[IWorkerProcess] = None
        self.started_at = 0.0
        self.ready = False
        self.stopping = False
        self.hangup = False  # a SIGHUP to send once it is ready
        self.delay: Optional[float] = None  # the delay before the last restart
        self.restart: Optional[IDelayedCall] = None

    @property
    def name(self) -> str:
        pid = getattr(self.process, "pid", None)
        return f"worker {self.index}" + (f" (pid {pid})" if pid is not None else "")


class WorkerPool(Service):
    """
    Keeps C{count} workers running (Nova's C{service.serve(server,
    workers=N)} under oslo.service's C{ProcessLauncher}).

      - L{startService} starts them all; its C{Deferred} fires once every
        worker has said it is ready, or fails with L{WorkerStartError}.
      - A worker that ends while the pool runs is started again after a
        L{Backoff} delay (1 s, doubling to 30 s; back to 1 s after a worker
        ran 60 s), each end logged with its status or signal and the delay.
      - L{reset} (SIGHUP to the parent) sends SIGHUP to every worker; one
        that has not said it is ready yet gets it once it has (until then
        it may have no SIGHUP handler, and SIGHUP would kill it).
      - L{stopService} sends SIGTERM to every worker (but those that said
        they are stopping already), so that each drains its own work, and
        fires once they have all ended; one still running
        C{stop_timeout} seconds later gets SIGKILL. L{stop_now} (a second
        SIGTERM) sends SIGTERM again, which makes each worker stop at once,
        and shortens the deadline to C{hurry_timeout} seconds.

    Its phases (L{novasvc._phase}): stopped, starting (until every worker
    was ready once), running, stopping (until every worker ended). A start
    while starting gets that start's outcome, while running C{None}, while
    stopping a L{novasvc.exceptions.LifecycleError}; after a stop has fired
    the pool starts afresh. A stop while stopping gets the stop under way.
    Its timers (restart delays, the SIGKILL deadline) are gone once its
    stop has fired.

    @ivar count: how many workers (C{int} >= 1).
    """

    def __init__(self, spawner: IWorkerSpawner, count: int, *, clock: IReactorTime,
                 backoff: Backoff = Backoff(), stop_timeout: Optional[float] = None,
                 hurry_timeout: float = HURRY_GRACE, name: str = "workers") -> None:
        """
        @param spawner: starts each worker process.
        @param count: how many (C{int} >= 1).
        @param clock: for the restart delays and the stop deadlines.
        @param backoff: the restart delays.
        @param stop_timeout: B{seconds} after SIGTERM before SIGKILL, or
            C{None} to wait without limit.
        @param hurry_timeout: B{seconds} after L{stop_now} before SIGKILL.
        @param name: the service's name.
        @raise ValueError: for a C{count} below 1.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"a worker pool needs a count >= 1, got {count!r}")
        self.count = count
        self._spawner = spawner
        self._clock = clock
        self._backoff = backoff
        self._stop_timeout = stop_timeout
        self._hurry_timeout = hurry_timeout
        self._slots = [_Slot(index) for index in range(1, count + 1)]
        self._starting: Optional[defer.Deferred] = None
        self._start: Optional[Shared] = None
        self._all_ready = False
        self._stopped: Optional[defer.Deferred] = None
        self._kill_call: Optional[IDelayedCall] = None
        self._kill_at: Optional[float] = None
        self.setName(name)

    # -- what is running ---------------------------------------------------

    def pids(self) -> List[Optional[int]]:
        """
        @return: the pid of each worker in index order (C{None} for one not
            running now).
        """
        return [getattr(slot.process, "pid", None) for slot in self._slots]

    # -- start -------------------------------------------------------------

    def startService(self) -> defer.Deferred:
        """
        Start every worker.

        @return: a C{Deferred} firing with C{None} once each worker has been
            ready once; failing with L{WorkerStartError} when a worker ends
            other than by a signal before that (the pool then stops
            restarting it, and L{stopService} ends the others), or with
            C{CancelledError} when L{stopService} came first. While
            starting: that start's outcome; while running: C{None}; while
            stopping: a failed C{Deferred} (L{LifecycleError}). After a
            stop has fired, the pool starts afresh.
        """
        if self.running:
            if self._start is not None and not self._start.called:
                return self._start.observe()
            return defer.succeed(None)
        if self._stopped is not None and not self._stopped.called:
            return refuse_start(self)
        # A new run: nothing of the last one's stop or readiness carries over.
        self._all_ready = False
        self._stopped = None
        self._kill_call = self._kill_at = None
        for slot in self._slots:
            slot.delay = None
        Service.startService(self)
        self._starting = defer.Deferred()
        self._start = Shared(self._starting)
        _log.info("Starting {count} workers", count=self.count)
        for slot in self._slots:
            self._spawn(slot)
        return self._start.observe()

    def _spawn(self, slot: _Slot) -> None:
        slot.restart = None
        slot.ready = slot.stopping = slot.hangup = False
        slot.started_at = self._clock.seconds()
        holder: List[Optional[IWorkerProcess]] = [None]

        def ready() -> None:
            if slot.process is holder[0] and holder[0] is not None:
                self._ready(slot)

        def stopping() -> None:
            if slot.process is holder[0] and holder[0] is not None:
                slot.stopping = True

        def exited(how: WorkerExit) -> None:
            if slot.process is holder[0] and holder[0] is not None:
                self._exited(slot, how)

        try:
            holder[0] = slot.process = self._spawner.spawn(slot.index, self.count, ready, stopping, exited)
        except Exception as e:
            slot.process = None
            self._exited(slot, WorkerExit(last_error=f"{type(e).__name__}: {e}"), spawned=False)
            return
        _log.info("Started {worker} of {count}", worker=slot.name, count=self.count)

    def _ready(self, slot: _Slot) -> None:
        if slot.ready:
            return
        slot.ready = True
        _log.info("{worker} is ready", worker=slot.name)
        if slot.hangup and self.running:
            slot.hangup = False
            self._signal(slot, "HUP")
        if not self._all_ready and all(s.ready for s in self._slots):
            self._all_ready = True
            _log.info("All {count} workers are ready", count=self.count)
            starting, self._starting = self._starting, None
            if starting is not None:
                starting.callback(None)

    # -- ends and restarts ---------------------------------------------------

    def _exited(self, slot: _Slot, how: WorkerExit, spawned: bool = True) -> None:
        name = slot.name
        slot.process = None
        slot.ready = False
        if not self.running:
            _log.info("{worker} {how}", worker=name, how=how.describe())
            self._maybe_stopped()
            return
        if not self._all_ready and how.signal is None:
            self._start_failed(slot, name, how)
            return
        ran_for = self._clock.seconds() - slot.started_at if spawned else 0.0
        slot.delay = self._backoff.delay(slot.delay, ran_for)
        _log.error("{worker} {how} after {ran_for:.1f} s{error}; restarting in {delay:g} s",
                   worker=name, how=how.describe(), ran_for=ran_for, delay=slot.delay,
                   error=f" ({how.last_error})" if how.last_error else "")
        slot.restart = self._clock.callLater(slot.delay, self._restart, slot)

    def _restart(self, slot: _Slot) -> None:
        slot.restart = None
        if self.running:
            self._spawn(slot)

    def _start_failed(self, slot: _Slot, name: str, how: WorkerExit) -> None:
        message = f"worker {slot.index} of {self.count} {how.describe()} before it was ready"
        if how.last_error:
            message += f": {how.last_error}"
        _log.error("{worker} {how} before it was ready: not restarted", worker=name, how=how.describe())
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.errback(WorkerStartError(message))

    # -- signals -------------------------------------------------------------

    def _running(self) -> List[_Slot]:
        return [slot for slot in self._slots if slot.process is not None]

    def _signal_all(self, name: str, skip_stopping: bool = False) -> None:
        for slot in self._running():
            if skip_stopping and slot.stopping:
                continue  # stopping already (a SIGTERM to the whole group): a second would hurry it
            self._signal(slot, name)

    def _signal(self, slot: _Slot, name: str) -> None:
        try:
            slot.process.signal(name)  # type: ignore[union-attr]
        except Exception as e:  # it ended meanwhile: its exit is on the way
            _log.debug("Could not send SIG{name} to {worker}: {error}", name=name,
                       worker=slot.name, error=e)

    def reset(self) -> None:
        """
        Forward SIGHUP to every running worker (each runs its service's
        C{reset()}), as oslo.service's parent does in its C{mutate} mode.
        A worker that has not said it is ready gets it once it has: until
        then it may have no handler, and SIGHUP would kill it.
        """
        running = self._running()
        _log.info("Forwarding SIGHUP to {count} workers", count=len(running))
        for slot in running:
            if slot.ready:
                self._signal(slot, "HUP")
            else:
                slot.hangup = True

    # -- stop --------------------------------------------------------------------

    def stopService(self) -> defer.Deferred:
        """
        Stop restarting, send SIGTERM to every worker and wait for them all;
        SIGKILL those still running C{stop_timeout} seconds later.

        @return: a C{Deferred} firing with C{None} once every worker has
            ended.
        """
        if self._stopped is not None:  # stopping already: wait for that stop
            return self._when_stopped()
        Service.stopService(self)
        for slot in self._slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.errback(defer.CancelledError("the workers were stopped before they were ready"))
        self._stopped = defer.Deferred()
        stopped = self._when_stopped()
        running = self._running()
        if running:
            _log.info("Stopping {count} workers: SIGTERM", count=len(running))
            self._signal_all("TERM", skip_stopping=True)
            if self._stop_timeout is not None:
                self._arm_kill(self._stop_timeout)
        self._maybe_stopped()
        return stopped

    def _when_stopped(self) -> defer.Deferred:
        """
        @return: a new C{Deferred} firing with C{None} once the stop under
            way has ended.
        """
        waiter: defer.Deferred = defer.Deferred()
        self._stopped.addBoth(lambda _: waiter.callback(None))  # type: ignore[union-attr]
        return waiter

    def stop_now(self) -> None:
        """
        Hurry a stop under way (a second SIGTERM to the parent): send
        SIGTERM again to every worker, which makes each stop without
        waiting for its requests in flight, and send SIGKILL to those still
        running C{hurry_timeout} seconds later.
        """
        if self.running or self._stopped is None or self._stopped.called:
            return
        self._signal_all("TERM")
        self._arm_kill(self._hurry_timeout)

    def _arm_kill(self, seconds: float) -> None:
        at = self._clock.seconds() + seconds
        if self._kill_at is not None and self._kill_at <= at:
            return
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self._kill_at = at
        self._kill_call = self._clock.callLater(seconds, self._kill)

    def _kill(self) -> None:
        self._kill_call = None
        running = self._running()
        if not running:
            return
        _log.warn("{workers} still running after the stop deadline: SIGKILL",
                  workers=", ".join(slot.name for slot in running))
        self._signal_all("KILL")

    def _maybe_stopped(self) -> None:
        if self._stopped is None or self._stopped.called or self._running():
            return
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self._kill_call = None
        _log.info("All workers have stopped")
        self._stopped.callback(None)
