"""
Tests for L{novasvc.process.launcher}.
"""

import os
import signal
from typing import Any, Callable, List

from twisted.application.service import Application, IServiceCollection, Service
from twisted.internet import defer, task
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger, LogPublisher, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from novasvc.process import launcher
from novasvc.exceptions import ConfigError, StartupError
from novasvc.process.launcher import HangupService


class _ResettableService(Service):
    """
    A service with a C{reset()} that counts its calls and returns
    C{self.result()}.
    """

    def __init__(self) -> None:
        self.resets = 0
        self.result: Callable[[], Any] = lambda: None
        self.hurried = 0

    def reset(self) -> Any:
        self.resets += 1
        return self.result()

    def stop_now(self) -> None:
        self.hurried += 1


class _FakeLogs:
    """
    Stands in for L{LogControl}: records what L{HangupService} asks of it,
    in C{calls}, shared with the child service's resets.
    """

    def __init__(self, calls: List[Any]) -> None:
        self.calls = calls

    def install(self, application: Any) -> bool:
        self.calls.append(("install", application))
        return True

    def start(self) -> None:
        self.calls.append("start")

    def stop(self, result: Any = None) -> Any:
        self.calls.append("stop")
        return result

    def reread(self) -> None:
        self.calls.append("reread")


class _ThreadCalls(task.Clock):
    """
    A reactor with C{callFromThread} and C{callWhenRunning} (kept until
    L{run}), C{callLater} (a L{task.Clock}), C{stop} (counted; a second one
    raises C{ReactorNotRunning}, as a real reactor's) and system event
    triggers (recorded).
    """

    def __init__(self) -> None:
        task.Clock.__init__(self)
        self.queued: List[Any] = []
        self.stopped = 0
        self.triggers: List[Any] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.queued.append((f, args, kwargs))

    callWhenRunning = callFromThread

    def stop(self) -> None:
        if self.stopped:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")
        self.stopped += 1

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[..., Any], *args: Any) -> None:
        self.triggers.append((phase, event, f, args))

    def run(self) -> None:
        calls, self.queued = self.queued, []
        for f, args, kwargs in calls:
            f(*args, **kwargs)
        self.advance(0)


class HangupServiceTests(SynchronousTestCase):
    """
    Tests for L{HangupService}.
    """

    def setUp(self) -> None:
        self.addCleanup(signal.signal, signal.SIGHUP, signal.getsignal(signal.SIGHUP))
        self.addCleanup(signal.signal, signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        self.addCleanup(signal.signal, signal.SIGINT, signal.getsignal(signal.SIGINT))
        self.previous: List[int] = []
        signal.signal(signal.SIGHUP, lambda signum, frame: self.previous.append(signum))
        self.reactor = _ThreadCalls()
        self.child = _ResettableService()
        self.notices: List[str] = []
        notifier = type("N", (), {"ready": lambda _: self.notices.append("ready"),
                                  "stopping": lambda _: self.notices.append("stopping")})()
        self.service = HangupService(self.child, self.reactor, notifier=notifier)
        self.exits: List[int] = []
        self.patch(launcher, "_exit_after_twistd", self.exits.append)
        self.lines: List[str] = []
        observe = lambda event: self.lines.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def test_notifies_systemd(self) -> None:
        """
        When the child has started, then systemd is told C{READY=1}; when it
        stops, C{STOPPING=1}; a start that is still running tells nothing.
        """
        starting = defer.Deferred()
        self.patch(self.child, "startService", lambda: starting)
        self.service.startService()
        self.assertEqual(self.notices, [])
        starting.callback(None)
        self.assertEqual(self.notices, ["ready"])
        self.service.stopService()
        self.assertEqual(self.notices, ["ready", "stopping"])

    def test_failed_start_not_ready(self) -> None:
        """
        When the child fails to start, then systemd is not told it is ready.
        """
        self.patch(self.child, "startService", lambda: defer.fail(RuntimeError("no")))
        self.service.startService()
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.notices, [])

    def test_default_notifier(self) -> None:
        """
        When no notifier is given, then a L{novasvc.process.systemd.Notifier} is used.
        """
        from novasvc.process.systemd import Notifier

        self.assertIsInstance(HangupService(self.child, self.reactor)._notifier, Notifier)

    def test_starts_and_stops_child(self) -> None:
        """
        When the parent starts and stops, then so does the child.
        """
        self.service.startService()
        self.assertTrue(self.child.running)
        self.successResultOf(self.service.stopService())
        self.assertFalse(self.child.running)

    def test_child_deferreds(self) -> None:
        """
        When the child's start and stop return C{Deferred}s, then the
        parent's start and stop return them, failures included.
        """
        starting, stopping = defer.Deferred(), defer.Deferred()
        self.patch(self.child, "startService", lambda: starting)
        self.patch(self.child, "stopService", lambda: stopping)
        started = self.service.startService()
        self.assertNoResult(started)
        starting.callback("ready")
        self.assertEqual(self.successResultOf(started), "ready")
        stopped = self.service.stopService()
        self.assertNoResult(stopped)
        stopping.errback(RuntimeError("stuck"))
        self.failureResultOf(stopped, RuntimeError)

    def test_sigterm_stops_reactor(self) -> None:
        """
        When SIGTERM arrives once the reactor runs, then the reactor is
        stopped through C{callFromThread} (a graceful stop ending with exit
        status 0), and the handler stays installed after the stop, so that
        a late SIGTERM never reaches twistd's handler.
        """
        self.service.startService()
        self.reactor.run()  # the reactor is running: the handler goes in
        signal.raise_signal(signal.SIGTERM)
        self.assertEqual(self.reactor.stopped, 0)
        self.reactor.run()
        self.assertEqual(self.reactor.stopped, 1)
        self.successResultOf(self.service.stopService())
        signal.raise_signal(signal.SIGTERM)
        self.reactor.run()
        self.assertEqual((self.reactor.stopped, self.child.hurried), (1, 0))
        self.assertEqual(self.exits, [])

    def sigterm_twice(self, stopping: defer.Deferred, then: int = signal.SIGTERM) -> defer.Deferred:
        """
        Start the service, send SIGTERM, stop the service as the reactor's
        shutdown would (the child's stop returns C{stopping}), then send
        C{then} (SIGTERM again by default).

        @return: the service's stop C{Deferred}.
        """
        self.patch(self.child, "stopService", lambda: stopping)
        self.service.startService()
        self.reactor.run()
        signal.raise_signal(signal.SIGTERM)
        self.reactor.run()
        stopped = self.service.stopService()
        signal.raise_signal(then)
        self.reactor.run()
        return stopped

    def test_second_sigterm_stops_now(self) -> None:
        """
        When a second SIGTERM arrives while the service stops, then the
        child is told to stop now, with a log line saying so, and the
        reactor is not stopped twice; a third SIGTERM changes nothing.
        """
        stopping = defer.Deferred()
        stopped = self.sigterm_twice(stopping)
        self.assertEqual((self.reactor.stopped, self.child.hurried), (1, 1))
        self.assertIn("SIGTERM received again: stopping now, without waiting for the requests in "
                      "flight; those not finished go back to the broker", self.lines)
        signal.raise_signal(signal.SIGTERM)
        self.reactor.run()
        self.assertEqual(self.child.hurried, 1)
        self.assertNoResult(stopped)
        stopping.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stop_now_bounded(self) -> None:
        """
        When the stop has not finished C{stop_now_grace} seconds after the
        second SIGTERM, then the stop C{Deferred} fires anyway, with an
        error line, so the process exits.
        """
        stopped = self.sigterm_twice(defer.Deferred())
        self.reactor.advance(launcher.STOP_NOW_GRACE - 0.5)
        self.assertNoResult(stopped)
        self.reactor.advance(0.5)
        self.successResultOf(stopped)
        self.assertIn(f"The service is still stopping {launcher.STOP_NOW_GRACE:g} s after the "
                      "second SIGTERM; exiting anyway", self.lines)

    def test_sigint_as_sigterm(self) -> None:
        """
        When SIGINT arrives once the reactor runs, then it stops the reactor
        as SIGTERM does (twistd's own handler is not reached, so the exit
        status is 0), and a second SIGINT during the stop stops now.
        """
        stopping = defer.Deferred()
        self.patch(self.child, "stopService", lambda: stopping)
        self.service.startService()
        self.reactor.run()
        signal.raise_signal(signal.SIGINT)
        self.reactor.run()
        self.assertEqual((self.reactor.stopped, self.child.hurried), (1, 0))
        self.assertIn("SIGINT received: stopping gracefully (SIGINT again to stop now)", self.lines)
        stopped = self.service.stopService()
        signal.raise_signal(signal.SIGINT)
        self.reactor.run()
        self.assertEqual((self.reactor.stopped, self.child.hurried), (1, 1))
        self.assertIn("SIGINT received again: stopping now, without waiting for the requests in "
                      "flight; those not finished go back to the broker", self.lines)
        stopping.callback(None)
        self.successResultOf(stopped)

    def test_signals_before_the_reactor_runs(self) -> None:
        """
        When SIGTERM and SIGINT arrive after the service started but before
        the reactor runs (twistd starts the service first), then neither
        reaches the handlers that were there before (by default: death, or
        C{KeyboardInterrupt}): once the reactor runs, the first stops it
        and the second stops now.
        """
        before: List[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: before.append(signum))
        self.service.startService()
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        self.reactor.run()
        self.assertEqual((before, self.reactor.stopped, self.child.hurried), ([], 1, 1))
        self.successResultOf(self.service.stopService())

    def test_sigint_left_alone(self) -> None:
        """
        When the service is made with C{interrupt=False} (a worker), then
        its SIGINT handler is not replaced.
        """
        ignored = []
        signal.signal(signal.SIGINT, lambda signum, frame: ignored.append(signum))
        service = HangupService(_ResettableService(), self.reactor, notifier=self.service._notifier,
                                interrupt=False)
        service.startService()
        self.reactor.run()
        signal.raise_signal(signal.SIGINT)
        self.reactor.run()
        self.assertEqual((ignored, self.reactor.stopped), ([signal.SIGINT], 0))

    def test_two_sigterms_before_the_stop(self) -> None:
        """
        When two SIGTERMs arrive before the reactor's shutdown reached the
        service, then the reactor is stopped once and the child is told to
        stop now; the stop that follows is bounded too.
        """
        self.patch(self.child, "stopService", lambda: defer.Deferred())
        self.service.startService()
        self.reactor.run()
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        self.reactor.run()
        self.assertEqual((self.reactor.stopped, self.child.hurried), (1, 1))
        stopped = self.service.stopService()
        self.reactor.advance(launcher.STOP_NOW_GRACE)
        self.successResultOf(stopped)

    def test_sigterm_while_reactor_stops(self) -> None:
        """
        When SIGTERM arrives while the reactor already stops for another
        reason, then the service stops now and no error is raised.
        """
        self.service.startService()
        self.reactor.run()
        self.reactor.stop()
        signal.raise_signal(signal.SIGTERM)
        self.reactor.run()
        self.assertEqual(self.child.hurried, 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_start_failure_exits_1(self) -> None:
        """
        When the child fails to start with an unexpected error, then one
        line names its class and message, without a traceback, the reactor
        is stopped and exit status 1 is asked for (applied after twistd's
        own shutdown).
        """
        self.patch(self.child, "startService", lambda: defer.fail(RuntimeError("no")))
        self.successResultOf(self.service.startService())
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertIn("The service failed to start: RuntimeError: no", self.lines)
        self.assertEqual(self.exits, [1])
        self.assertEqual(self.reactor.triggers, [])
        self.reactor.run()
        self.assertEqual(self.reactor.stopped, 1)

    def test_start_failure_traceback(self) -> None:
        """
        When the service was made with C{traceback=True} and a start-up hook
        failed, then the failure is logged with the traceback of its cause.
        """
        self.patch(self.service, "_traceback", True)
        error = StartupError("init_host of m.M failed: OperationalError: gone")
        try:
            raise OperationalError("gone")
        except OperationalError as cause:
            error.__cause__ = cause
        self.patch(self.child, "startService", lambda: defer.fail(error))
        self.successResultOf(self.service.startService())
        self.assertEqual(len(self.flushLoggedErrors(OperationalError)), 1)
        self.assertIn("The service failed to start: init_host of m.M failed: "
                      "OperationalError: gone", self.lines)
        self.assertEqual(self.exits, [1])

    def test_start_failure_traceback_at_debug(self) -> None:
        """
        When the log level is debug, then a failed start is logged with its
        traceback.
        """
        self.patch(self.service, "logs", _DebugLogs())
        self.patch(self.child, "startService", lambda: defer.fail(RuntimeError("no")))
        self.successResultOf(self.service.startService())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_start_config_error_one_line(self) -> None:
        """
        When the child fails to start with a L{ConfigError} (such as a
        database that does not exist), then one line names it, without a
        traceback, and the exit status is 1.
        """
        self.patch(self.child, "startService", lambda: defer.fail(ConfigError("no such database")))
        self.successResultOf(self.service.startService())
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual([line for line in self.lines if "no such database" in line],
                         ["The service failed to start: no such database"])
        self.assertEqual(self.exits, [1])

    def test_stopped_during_start(self) -> None:
        """
        When the service is stopped while it starts (its start is
        cancelled), then that is logged as such and no exit status 1 is
        asked for.
        """
        starting = defer.Deferred()
        self.patch(self.child, "startService", lambda: starting)
        started = self.service.startService()
        self.service.stopService()
        starting.cancel()
        self.successResultOf(started)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertIn("Stopped before the service was ready", self.lines)
        self.assertEqual((self.exits, self.reactor.stopped), ([], 0))

    def test_exit_after_twistd(self) -> None:
        """
        When an exit status is asked for, then nothing ends the process
        until twistd logs its last line ("Server Shut Down.", after it
        removed its pid file), which raises C{SystemExit} with the first
        status asked for (so that the interpreter runs its exit handlers).
        """
        publisher = LogPublisher()
        self.patch(launcher, "globalLogPublisher", publisher)
        self.patch(launcher, "_exit_status", None)
        self.patch(launcher, "_exit_after_twistd", type(self)._real_exit_after_twistd)
        launcher._exit_after_twistd(1)
        launcher._exit_after_twistd(2)
        Logger(namespace="twisted.application.app.AppLogger", observer=publisher).info("Server Stopped")
        Logger(namespace="elsewhere", observer=publisher).info("Server Shut Down.")
        app_logger = Logger(namespace="twisted.scripts._twistd_unix.UnixAppLogger", observer=publisher)
        error = self.assertRaises(SystemExit, app_logger.info, "Server Shut Down.")
        self.assertEqual(error.code, 1)
        app_logger.info("Server Shut Down.")  # once only

    _real_exit_after_twistd = staticmethod(launcher._exit_after_twistd)

    def test_sighup_resets(self) -> None:
        """
        When SIGHUP arrives while running, then the child's C{reset()} is
        called through C{callFromThread}, not from the handler itself.
        """
        self.service.startService()
        self.reactor.run()
        signal.raise_signal(signal.SIGHUP)
        self.assertEqual(self.child.resets, 0)
        self.assertEqual(len(self.reactor.queued), 1)
        self.reactor.run()
        self.assertEqual(self.child.resets, 1)
        self.assertEqual(self.previous, [])

    def test_second_stop_waits_for_the_first(self) -> None:
        """
        When the launcher is stopped twice while its child stops, then the
        child is stopped once, systemd hears C{STOPPING=1} once, and both
        stops fire when the child's stop does.
        """
        stopping = defer.Deferred()
        calls: List[int] = []
        self.patch(self.child, "stopService", lambda: calls.append(1) or stopping)
        self.service.startService()
        self.reactor.run()
        first, second = self.service.stopService(), self.service.stopService()
        self.assertEqual((calls, self.notices.count("stopping")), ([1], 1))
        self.assertNoResult(first)
        self.assertNoResult(second)
        stopping.callback(None)
        self.successResultOf(first)
        self.successResultOf(second)

    def test_stop_restores_handler(self) -> None:
        """
        When the service stops without a SIGTERM, then the previous SIGHUP
        and SIGTERM handlers are back and a SIGHUP no longer resets the
        child.
        """
        previous = signal.getsignal(signal.SIGTERM)
        self.service.startService()
        self.reactor.run()
        self.assertIsNot(signal.getsignal(signal.SIGTERM), previous)
        self.successResultOf(self.service.stopService())
        signal.raise_signal(signal.SIGHUP)
        self.assertEqual(self.previous, [signal.SIGHUP])
        self.assertEqual(self.reactor.queued, [])
        self.assertEqual(signal.getsignal(signal.SIGTERM), previous)

    def test_sighup_while_stopping(self) -> None:
        """
        When SIGHUP arrives during a stop that SIGTERM began, and again
        once the child has stopped, then each is logged, nothing is reset,
        and the previous SIGHUP handler (by default one that ends the
        process) is never reached.
        """
        stopping = defer.Deferred()
        stopped = self.sigterm_twice(stopping, then=signal.SIGHUP)
        stopping.callback(None)
        self.successResultOf(stopped)
        signal.raise_signal(signal.SIGHUP)
        self.reactor.run()
        self.assertEqual((self.child.resets, self.previous), (0, []))
        self.assertEqual(self.lines.count("SIGHUP received while stopping: nothing is reset"), 2)

    def test_reset_error_logged(self) -> None:
        """
        When C{reset()} raises or fails, then the error is logged and the
        handler stays installed for the next SIGHUP.
        """
        self.service.startService()

        def fail() -> None:
            raise ValueError("bad reset")

        self.child.result = fail
        signal.raise_signal(signal.SIGHUP)
        self.reactor.run()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.child.result = lambda: defer.fail(KeyError("later"))
        signal.raise_signal(signal.SIGHUP)
        self.reactor.run()
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual(self.child.resets, 2)

    def test_logs(self) -> None:
        """
        When the service has a log control, then it is installed on
        twistd's application when that becomes the parent, started before
        the child, stopped once the child has stopped, and SIGHUP re-reads
        the level before resetting the child.
        """
        calls: List[Any] = []
        self.child.result = lambda: calls.append("reset")
        service = HangupService(self.child, self.reactor, _FakeLogs(calls))  # type: ignore[arg-type]
        application = Application("test")
        service.setServiceParent(application)
        self.assertEqual(calls, [("install", application)])
        self.assertEqual(list(IServiceCollection(application)), [service])
        service.startService()
        self.assertEqual(calls[1:], ["start"])
        self.assertTrue(self.child.running)
        signal.raise_signal(signal.SIGHUP)
        self.reactor.run()
        self.assertEqual(calls[2:], ["reread", "reset"])
        stopping = defer.Deferred()
        self.patch(self.child, "stopService", lambda: stopping)
        stopped = service.stopService()
        self.assertEqual(calls[4:], [])
        stopping.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(calls[4:], ["stop"])

    def test_no_handler_outside_main_thread(self) -> None:
        """
        When the handler cannot be installed (not the main thread), then the
        service still starts and stops, leaving the handler alone.
        """
        def refuse(signum: int, handler: Any) -> None:
            raise ValueError("signal only works in main thread")

        self.patch(launcher.signal, "signal", refuse)
        self.service.startService()
        self.assertTrue(self.child.running)
        self.successResultOf(self.service.stopService())
        self.assertFalse(self.child.running)


class DaemonParentTests(SynchronousTestCase):
    """
    Under twistd without C{-n}, L{HangupService} tells twistd's waiting
    parent process through twistd's status pipe whether the service started.
    """

    def setUp(self) -> None:
        self.addCleanup(signal.signal, signal.SIGHUP, signal.getsignal(signal.SIGHUP))
        self.addCleanup(signal.signal, signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        self.patch(launcher, "_exit_after_twistd", lambda code: None)
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.read = read
        self.twistd = {"statusPipe": write, "nodaemon": False}
        self.reactor = _ThreadCalls()
        self.child = _ResettableService()
        notifier = type("N", (), {"ready": lambda _: None, "stopping": lambda _: None})()
        self.service = HangupService(self.child, self.reactor, notifier=notifier, daemon=self.twistd)

    def told(self) -> bytes:
        """
        @return: what the parent reads, up to the pipe's end (as twistd's
            parent reads at most 100 bytes).
        """
        return os.read(self.read, 100)

    def test_ready(self) -> None:
        """
        When the service is ready, then the parent reads C{0} (it exits 0)
        and twistd does not write to the pipe itself.
        """
        starting = defer.Deferred()
        self.patch(self.child, "startService", lambda: starting)
        self.service.startService()
        self.assertIsNone(self.twistd["statusPipe"])
        starting.callback(None)
        self.assertEqual(self.told(), b"0")

    def test_failed(self) -> None:
        """
        When the start fails, then the parent reads C{1} and the error, cut
        to what it reads.
        """
        error = "database sqlite:////x/y cannot be used: " + "z" * 200
        self.patch(self.child, "startService", lambda: defer.fail(ConfigError(error)))
        self.service.startService()
        told = self.told()
        self.assertEqual(len(told), 100)
        self.assertTrue(told.startswith(b"1 database sqlite:////x/y cannot be used: zzz"))
        self.assertTrue(told.endswith(b"..."))

    def test_not_ready_in_time(self) -> None:
        """
        When the service is not ready after C{ready_wait} seconds, then the
        parent reads C{1} and that it still retries; being ready later
        writes nothing more.
        """
        starting = defer.Deferred()
        self.patch(self.child, "startService", lambda: starting)
        self.service.startService()
        self.reactor.advance(launcher.READY_WAIT)
        self.assertEqual(self.told(), b"1 not ready after 60 s; still retrying, see the log")
        starting.callback(None)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_no_daemon(self) -> None:
        """
        When twistd runs with C{-n} (no status pipe), then nothing is
        written and the start works as before.
        """
        self.twistd["statusPipe"] = None
        self.successResultOf(self.service.startService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class OperationalError(Exception):
    """
    Stands for a database driver's error in these tests.
    """


class _DebugLogs:
    """
    A L{LogControl} stand-in at level C{debug}.
    """

    level = "debug"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
