"""
Tests for L{novasvc.process.workers._pool}: the supervising parent's logic, with
a fake spawner and a L{task.Clock}.
"""

import signal
from typing import Any, Callable, List, Optional

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from twisted.internet import defer, task
from twisted.internet.error import ProcessExitedAlready
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from novasvc.exceptions import LifecycleError
from novasvc.process.workers import (
    Backoff,
    IWorkerProcess,
    IWorkerSpawner,
    WorkerExit,
    WorkerPool,
    WorkerStartError,
)


@implementer(IWorkerProcess)
class _Process:
    """
    A worker process that records the signals it gets; L{end} ends it.
    """

    def __init__(self, index: int, pid: int, ready: Callable[[], None], stopping: Callable[[], None],
                 exited: Callable[[WorkerExit], None]) -> None:
        self.index, self.pid = index, pid
        self.ready, self.stopping, self._exited = ready, stopping, exited
        self.signals: List[str] = []
        self.ended = False

    def signal(self, name: str) -> None:
        if self.ended:
            raise ProcessExitedAlready()
        self.signals.append(name)

    def end(self, code: Optional[int] = None, signum: Optional[int] = None, error: Optional[str] = None) -> None:
        self.ended = True
        self._exited(WorkerExit(code, signum, error))


@implementer(IWorkerSpawner)
class _Spawner:
    """
    Makes L{_Process}es, pids from 101 up; C{error} makes the next spawn
    raise it.
    """

    def __init__(self) -> None:
        self.spawned: List[_Process] = []
        self.counts: List[int] = []
        self.error: Optional[Exception] = None

    def spawn(self, index: int, count: int, ready: Callable[[], None], stopping: Callable[[], None],
              exited: Callable[[WorkerExit], None]) -> _Process:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        process = _Process(index, 101 + len(self.spawned), ready, stopping, exited)
        self.spawned.append(process)
        self.counts.append(count)
        return process

    def current(self, index: int) -> _Process:
        return [p for p in self.spawned if p.index == index][-1]

    def running(self) -> List[_Process]:
        return [p for p in self.spawned if not p.ended]


class _PoolTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.spawner = _Spawner()
        self.messages: List[str] = []

        def observe(event: Any) -> None:
            if event.get("log_namespace") == "novasvc.process.workers._pool":
                self.messages.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def pool(self, count: int = 2, **kwargs: Any) -> WorkerPool:
        return WorkerPool(self.spawner, count, clock=self.clock, **kwargs)

    def started(self, count: int = 2, **kwargs: Any) -> WorkerPool:
        """
        @return: a pool whose workers have all said they are ready.
        """
        pool = self.pool(count, **kwargs)
        d = pool.startService()
        for process in self.spawner.spawned:
            process.ready()
        self.assertIsNone(self.successResultOf(d))
        return pool


class StartTests(_PoolTestCase):
    """
    L{WorkerPool.startService}.
    """

    def test_interfaces(self) -> None:
        """
        When the test's fakes are checked, then they provide the interfaces
        the pool uses (so the pool's tests test the real seam).
        """
        verifyObject(IWorkerSpawner, self.spawner)
        self.pool().startService()
        verifyObject(IWorkerProcess, self.spawner.spawned[0])

    def test_starts_every_worker(self) -> None:
        """
        When the pool starts, then it spawns worker 1..N, each told the
        count.
        """
        self.pool(3).startService()
        self.assertEqual([p.index for p in self.spawner.spawned], [1, 2, 3])
        self.assertEqual(self.spawner.counts, [3, 3, 3])
        self.assertIn("Started worker 2 (pid 102) of 3", self.messages)

    def test_ready_when_all_ready(self) -> None:
        """
        When some workers are ready, then the start has no result; when the
        last one is, then it fires, once, and the pool logs it.
        """
        pool = self.pool(2)
        d = pool.startService()
        first, second = self.spawner.spawned
        first.ready()
        first.ready()
        self.assertNoResult(d)
        second.ready()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.messages.count("All 2 workers are ready"), 1)
        self.assertEqual(pool.pids(), [101, 102])

    def test_status_before_ready_fails_start(self) -> None:
        """
        When a worker exits with a status before every worker has been ready,
        then the start fails with L{WorkerStartError} naming the worker, its
        status and its last error, and the worker is not restarted.
        """
        pool = self.pool(2)
        d = pool.startService()
        self.spawner.spawned[0].ready()
        self.spawner.spawned[1].end(code=1, error="novasvc: error: cannot import no.such.Manager")
        failure = self.failureResultOf(d, WorkerStartError)
        self.assertEqual(str(failure.value), "worker 2 of 2 exited with status 1 before it was ready: "
                                             "novasvc: error: cannot import no.such.Manager")
        self.clock.advance(60)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.assertEqual(pool.pids(), [101, None])

    def test_signal_before_ready_restarts(self) -> None:
        """
        When a worker is killed by a signal before it was ready, then it is
        restarted after the first delay and the start waits for it.
        """
        d = self.pool(1).startService()
        self.spawner.spawned[0].end(signum=signal.SIGKILL)
        self.clock.advance(1)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.assertNoResult(d)
        self.spawner.spawned[1].ready()
        self.successResultOf(d)

    def test_spawn_error_before_ready(self) -> None:
        """
        When a worker cannot be started at all during the start, then the
        start fails saying why.
        """
        self.spawner.error = OSError(2, "No such file or directory")
        d = self.pool(1).startService()
        failure = self.failureResultOf(d, WorkerStartError)
        self.assertEqual(str(failure.value), "worker 1 of 1 could not be started before it was ready: "
                                             "FileNotFoundError: [Errno 2] No such file or directory")

    def test_ready_of_ended_process_ignored(self) -> None:
        """
        When a process that already ended says it is ready (its link was
        read after its exit), then it does not count.
        """
        d = self.pool(1).startService()
        old = self.spawner.spawned[0]
        old.end(signum=signal.SIGKILL)
        old.ready()
        self.assertNoResult(d)

    def test_count_refused(self) -> None:
        """
        When the count is not an integer >= 1, then L{ValueError}.
        """
        for count in (0, -1, True, 1.5):
            self.assertRaises(ValueError, WorkerPool, self.spawner, count, clock=self.clock)


class RestartTests(_PoolTestCase):
    """
    A worker that ends while the pool runs is started again, with backoff.
    """

    def test_restart_after_first_delay(self) -> None:
        """
        When a worker is killed after running a while, then the pool logs
        how it ended and the delay, and starts the same index again after
        1 s (not before).
        """
        pool = self.started(2)
        self.clock.advance(5)
        self.spawner.current(2).end(signum=signal.SIGKILL)
        self.assertIn("worker 2 (pid 102) was killed by signal 9 (SIGKILL) after 5.0 s; restarting in 1 s",
                      self.messages)
        self.assertEqual(pool.pids(), [101, None])
        self.clock.advance(0.9)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.clock.advance(0.1)
        self.assertEqual(self.spawner.spawned[-1].index, 2)
        self.assertEqual(pool.pids(), [101, 103])

    def test_status_after_ready_restarts(self) -> None:
        """
        When a worker exits with a status after the pool was ready, then it
        is restarted (and the log line gives its last error).
        """
        self.started(1)
        self.spawner.current(1).end(code=3, error="boom")
        self.assertIn("worker 1 (pid 101) exited with status 3 after 0.0 s (boom); restarting in 1 s",
                      self.messages)
        self.clock.advance(1)
        self.assertEqual(len(self.spawner.spawned), 2)

    def test_delays_double_to_cap(self) -> None:
        """
        When a worker ends at once after each restart, then the delays are
        1, 2, 4, 8, 16, 30, 30 s.
        """
        self.started(1)
        delays = []
        for _ in range(7):
            self.spawner.current(1).end(signum=signal.SIGSEGV)
            before = len(self.spawner.spawned)
            waited = 0.0
            while len(self.spawner.spawned) == before:
                self.clock.advance(0.5)
                waited += 0.5
            delays.append(waited)
        self.assertEqual(delays, [1, 2, 4, 8, 16, 30, 30])

    def test_crash_loop_does_not_spin(self) -> None:
        """
        When a worker crashes as soon as it starts, then over ten minutes it
        is started at most a few dozen times.
        """
        self.started(1)
        for _ in range(600):
            process = self.spawner.current(1)
            if not process.ended:
                process.end(code=1)
            self.clock.advance(1)
        self.assertLess(len(self.spawner.spawned), 30)

    def test_stable_run_resets_delay(self) -> None:
        """
        When a restarted worker then runs for 60 s before it ends, then the
        next delay is 1 s again.
        """
        self.started(1)
        for _ in range(3):
            self.spawner.current(1).end(signum=signal.SIGKILL)
            self.clock.advance(30)
        self.clock.advance(60)
        self.spawner.current(1).end(signum=signal.SIGKILL)
        self.assertTrue(self.messages[-1].endswith("restarting in 1 s"), self.messages[-1])

    def test_spawn_error_after_ready(self) -> None:
        """
        When a restart cannot start the process, then it is tried again
        with the next delay.
        """
        self.started(1)
        self.spawner.current(1).end(signum=signal.SIGKILL)
        self.spawner.error = OSError(24, "Too many open files")
        self.clock.advance(1)
        self.assertTrue(self.messages[-1].startswith("worker 1 could not be started after 0.0 s "
                                                     "(OSError: [Errno 24] Too many open files); "
                                                     "restarting in 2 s"), self.messages[-1])
        self.clock.advance(2)
        self.assertEqual(len(self.spawner.spawned), 2)


class SignalTests(_PoolTestCase):
    """
    SIGHUP forwarding and the stop.
    """

    def test_reset_forwards_sighup(self) -> None:
        """
        When the pool is reset (SIGHUP to the parent), then each running
        worker gets SIGHUP; one waiting for its restart gets nothing.
        """
        pool = self.started(3)
        self.spawner.current(3).end(signum=signal.SIGKILL)
        pool.reset()
        self.assertEqual([p.signals for p in self.spawner.spawned], [["HUP"], ["HUP"], []])
        self.assertIn("Forwarding SIGHUP to 2 workers", self.messages)

    def test_sighup_waits_for_ready(self) -> None:
        """
        When the pool is reset while a worker has not said it is ready
        (it may have no SIGHUP handler yet), then that worker gets SIGHUP
        once it is ready, once, and the ready one at once; a worker that
        ends before it is ready gets none, nor does the one started in
        its place.
        """
        pool = self.pool(3)
        pool.startService()
        first, second, third = self.spawner.spawned
        first.ready()
        pool.reset()
        pool.reset()
        self.assertEqual([p.signals for p in (first, second, third)], [["HUP", "HUP"], [], []])
        second.ready()
        self.assertEqual(second.signals, ["HUP"])
        third.end(signum=signal.SIGKILL)
        self.clock.advance(1)
        self.spawner.current(3).ready()
        self.assertEqual(self.spawner.current(3).signals, [])

    def test_stop_terms_and_waits(self) -> None:
        """
        When the pool stops, then every worker gets SIGTERM once, and the
        stop fires once all have ended; none is restarted.
        """
        pool = self.started(2)
        d = pool.stopService()
        self.assertEqual([p.signals for p in self.spawner.spawned], [["TERM"], ["TERM"]])
        self.spawner.current(1).end(code=0)
        self.assertNoResult(d)
        self.spawner.current(2).end(code=0)
        self.assertIsNone(self.successResultOf(d))
        self.clock.advance(100)
        self.assertEqual(len(self.spawner.spawned), 2)
        self.assertIn("worker 1 (pid 101) exited with status 0", self.messages)
        self.assertEqual(self.messages[-1], "All workers have stopped")

    def test_stop_skips_stopping_worker(self) -> None:
        """
        When a worker said it is stopping already (it got SIGTERM from
        someone else), then the stop sends it no second SIGTERM, which
        would hurry it.
        """
        pool = self.started(2)
        self.spawner.current(1).stopping()
        pool.stopService()
        self.assertEqual([p.signals for p in self.spawner.spawned], [[], ["TERM"]])

    def test_stop_twice(self) -> None:
        """
        When the pool is asked to stop twice, then the workers get one
        SIGTERM, and both stops fire once they have ended.
        """
        pool = self.started(1)
        first, second = pool.stopService(), pool.stopService()
        self.assertEqual(self.spawner.current(1).signals, ["TERM"])
        self.assertNoResult(second)
        self.spawner.current(1).end(code=0)
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))

    def test_stop_cancels_restart(self) -> None:
        """
        When the pool stops while a worker waits for its restart, then it
        is not restarted, and the stop waits only for the running ones.
        """
        pool = self.started(2)
        self.spawner.current(1).end(signum=signal.SIGKILL)
        d = pool.stopService()
        self.spawner.current(2).end(code=0)
        self.successResultOf(d)
        self.clock.advance(60)
        self.assertEqual(len(self.spawner.spawned), 2)

    def test_stop_before_ready(self) -> None:
        """
        When the pool stops before its workers were ready, then the start
        fails with C{CancelledError}.
        """
        pool = self.pool(1)
        d = pool.startService()
        pool.stopService()
        self.failureResultOf(d, defer.CancelledError)

    def test_kill_after_timeout(self) -> None:
        """
        When a worker is still running C{stop_timeout} seconds after the
        SIGTERM, then it gets SIGKILL (and only it), and the pool logs it.
        """
        pool = self.started(2, stop_timeout=70)
        d = pool.stopService()
        self.spawner.current(1).end(code=0)
        self.clock.advance(69.9)
        self.assertEqual(self.spawner.current(2).signals, ["TERM"])
        self.clock.advance(0.1)
        self.assertEqual(self.spawner.current(2).signals, ["TERM", "KILL"])
        self.assertIn("worker 2 (pid 102) still running after the stop deadline: SIGKILL", self.messages)
        self.spawner.current(2).end(signum=signal.SIGKILL)
        self.successResultOf(d)

    def test_no_kill_without_timeout(self) -> None:
        """
        When there is no stop timeout, then a worker that takes long is
        never killed.
        """
        pool = self.started(1)
        pool.stopService()
        self.clock.advance(3600)
        self.assertEqual(self.spawner.current(1).signals, ["TERM"])

    def test_stop_now(self) -> None:
        """
        When the stop is hurried (a second SIGTERM), then every worker gets
        SIGTERM again and SIGKILL C{hurry_timeout} seconds later, sooner
        than the stop timeout.
        """
        pool = self.started(1, stop_timeout=70, hurry_timeout=8)
        pool.stopService()
        self.clock.advance(10)
        pool.stop_now()
        self.assertEqual(self.spawner.current(1).signals, ["TERM", "TERM"])
        self.clock.advance(8)
        self.assertEqual(self.spawner.current(1).signals, ["TERM", "TERM", "KILL"])

    def test_stop_now_keeps_sooner_deadline(self) -> None:
        """
        When the stop timeout comes sooner than the hurry timeout, then
        the stop timeout stays.
        """
        pool = self.started(1, stop_timeout=5, hurry_timeout=8)
        pool.stopService()
        pool.stop_now()
        self.clock.advance(5)
        self.assertEqual(self.spawner.current(1).signals, ["TERM", "TERM", "KILL"])

    def test_stop_now_while_running_does_nothing(self) -> None:
        """
        When the pool is not stopping, then L{WorkerPool.stop_now} sends
        nothing.
        """
        pool = self.started(1)
        pool.stop_now()
        self.assertEqual(self.spawner.current(1).signals, [])

    def test_signal_to_ended_process(self) -> None:
        """
        When a worker ended but its exit was not yet seen, then sending it
        a signal is not an error.
        """
        pool = self.started(1)
        self.spawner.current(1).ended = True
        pool.reset()
        self.assertEqual(self.spawner.current(1).signals, [])


class WorkerExitTests(SynchronousTestCase):
    """
    L{WorkerExit.describe}.
    """

    def test_describe(self) -> None:
        """
        When an exit is described, then it says the status, the signal
        (with its name when it has one), or that the process never started.
        """
        self.assertEqual(WorkerExit(code=0).describe(), "exited with status 0")
        self.assertEqual(WorkerExit(signal=15).describe(), "was killed by signal 15 (SIGTERM)")
        self.assertEqual(WorkerExit(signal=200).describe(), "was killed by signal 200")
        self.assertEqual(WorkerExit().describe(), "could not be started")
        self.assertFalse(WorkerExit().spawned)
        self.assertTrue(WorkerExit(code=1).spawned)


class BackoffInjectedTests(_PoolTestCase):
    """
    The pool uses the L{Backoff} it is given.
    """

    def test_backoff(self) -> None:
        """
        When the pool has a backoff of its own, then its first delay applies.
        """
        self.started(1, backoff=Backoff(first=5))
        self.spawner.current(1).end(signum=signal.SIGKILL)
        self.clock.advance(4.9)
        self.assertEqual(len(self.spawner.spawned), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.spawner.spawned), 2)


class StartAgainTests(_PoolTestCase):
    """
    The pool's lifecycle across stops: start, stop, start again.
    """

    def test_start_again_after_stop(self) -> None:
        """
        When a stopped pool starts again, then its start fires once the new
        workers are ready, and its next stop sends them SIGTERM and waits
        for them (none is orphaned).
        """
        pool = self.started(2)
        stopping = pool.stopService()
        for process in self.spawner.running():
            process.end(signum=15)
        self.successResultOf(stopping)
        again = pool.startService()
        new = self.spawner.running()
        self.assertEqual([p.pid for p in new], [103, 104])
        self.assertNoResult(again)
        for process in new:
            process.ready()
        self.assertIsNone(self.successResultOf(again))
        stopping = pool.stopService()
        self.assertEqual([p.signals for p in new], [["TERM"], ["TERM"]])
        self.assertNoResult(stopping)
        for process in new:
            process.end(signum=15)
        self.successResultOf(stopping)

    def test_start_while_stopping_refused(self) -> None:
        """
        When the pool is started while its workers still stop, then the
        start fails with L{LifecycleError} and spawns nothing.
        """
        pool = self.started(1)
        stopping = pool.stopService()
        self.failureResultOf(pool.startService(), LifecycleError)
        self.assertEqual(len(self.spawner.spawned), 1)
        self.spawner.running()[0].end(signum=15)
        self.successResultOf(stopping)

    def test_start_while_starting(self) -> None:
        """
        When the pool is started again before its workers are ready, then
        nothing more is spawned and both starts fire together.
        """
        pool = self.pool(1)
        first, second = pool.startService(), pool.startService()
        self.assertEqual(len(self.spawner.spawned), 1)
        self.spawner.spawned[0].ready()
        self.successResultOf(first)
        self.successResultOf(second)


class PoolMachine(RuleBasedStateMachine):
    """
    A pool of two workers on a L{task.Clock} with the fake spawner, driven
    through starts, stops, second SIGTERMs, SIGHUPs, workers becoming
    ready, workers ending and clock steps.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = task.Clock()
        self.spawner = _Spawner()
        self.pool = WorkerPool(self.spawner, 2, clock=self.clock, stop_timeout=20, hurry_timeout=5)
        self.asked: List[defer.Deferred] = []
        self.stops: List[defer.Deferred] = []
        self.spawned_while_stopped = 0

    def _keep(self, d: defer.Deferred) -> defer.Deferred:
        d.addErrback(lambda f: f.trap(LifecycleError, WorkerStartError, defer.CancelledError))
        self.asked.append(d)
        return d

    @rule()
    def start(self) -> None:
        self._keep(self.pool.startService())

    @rule()
    def stop(self) -> None:
        self.stops.append(self._keep(self.pool.stopService()))

    @rule()
    def stop_now(self) -> None:
        self.pool.stop_now()

    @rule()
    def reset(self) -> None:
        self.pool.reset()

    @precondition(lambda self: self.spawner.running())
    @rule(index=st.integers(min_value=0, max_value=3))
    def ready(self, index: int) -> None:
        running = self.spawner.running()
        running[index % len(running)].ready()

    @precondition(lambda self: self.spawner.running())
    @rule(index=st.integers(min_value=0, max_value=3), how=st.sampled_from([(None, 15), (None, 9), (1, None)]))
    def end(self, index: int, how: Any) -> None:
        running = self.spawner.running()
        running[index % len(running)].end(*how)

    @rule(seconds=st.sampled_from([0.5, 1, 5, 20, 30]))
    def advance(self, seconds: float) -> None:
        before = len(self.spawner.spawned)
        running = self.pool.running
        self.clock.advance(seconds)
        if not running:
            self.spawned_while_stopped += len(self.spawner.spawned) - before

    @invariant()
    def nothing_left_once_stopped(self) -> None:
        assert self.spawned_while_stopped == 0, "a worker was started while the pool was stopped"
        if self.pool.running or not self.stops or not self.stops[-1].called:
            return
        assert self.spawner.running() == [], "a worker outlived the pool's stop"
        assert self.clock.getDelayedCalls() == [], self.clock.getDelayedCalls()

    def teardown(self) -> None:
        self.stop()
        self.clock.advance(100)  # the stop deadline: SIGKILL
        for process in self.spawner.running():
            assert "KILL" in process.signals or "TERM" in process.signals, "a worker never told to stop"
            process.end(signum=9)
        assert all(d.called for d in self.asked), "a start or stop never fired"
        self.nothing_left_once_stopped()


class PoolMachineTests(SynchronousTestCase):
    """
    The pool's lifecycle under random sequences of events.
    """

    def test_lifecycle(self) -> None:
        """
        When a pool goes through any sequence of starts, stops, second
        SIGTERMs, SIGHUPs, readiness, worker ends and clock steps, then no
        worker starts while it is stopped, and once its last stop fired no
        worker and no timer is left; at the end every start and stop fired.
        """
        settings(max_examples=300, stateful_step_count=40, derandomize=True, database=None, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])(PoolMachine).TestCase("runTest").runTest()
