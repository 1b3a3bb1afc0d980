"""
Tests for L{novasvc.launcher}.
"""

import signal
from typing import Any, Callable, List

from twisted.application.service import Application, IServiceCollection, Service
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from novasvc import launcher
from novasvc.launcher import HangupService


class _ResettableService(Service):
    """
    A service with a C{reset()} that counts its calls and returns
    C{self.result()}.
    """

    def __init__(self) -> None:
        self.resets = 0
        self.result: Callable[[], Any] = lambda: None

    def reset(self) -> Any:
        self.resets += 1
        return self.result()


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


class _ThreadCalls:
    """
    A reactor with C{callFromThread}, C{callWhenRunning} and C{callLater}:
    calls are kept until L{run}; C{stop} and system event triggers are
    recorded.
    """

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.stopped = 0
        self.triggers: List[Any] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.append((f, args, kwargs))

    callWhenRunning = callFromThread

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.append((f, args, kwargs))

    def stop(self) -> None:
        self.stopped += 1

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[..., Any], *args: Any) -> None:
        self.triggers.append((phase, event, f, args))

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for f, args, kwargs in calls:
            f(*args, **kwargs)


class HangupServiceTests(SynchronousTestCase):
    """
    Tests for L{HangupService}.
    """

    def setUp(self) -> None:
        self.addCleanup(signal.signal, signal.SIGHUP, signal.getsignal(signal.SIGHUP))
        self.addCleanup(signal.signal, signal.SIGTERM, signal.getsignal(signal.SIGTERM))
        self.previous: List[int] = []
        signal.signal(signal.SIGHUP, lambda signum, frame: self.previous.append(signum))
        self.reactor = _ThreadCalls()
        self.child = _ResettableService()
        self.notices: List[str] = []
        notifier = type("N", (), {"ready": lambda _: self.notices.append("ready"),
                                  "stopping": lambda _: self.notices.append("stopping")})()
        self.service = HangupService(self.child, self.reactor, notifier=notifier)

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
        When no notifier is given, then a L{novasvc.systemd.Notifier} is used.
        """
        from novasvc.systemd import Notifier

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
        status 0), and stopping the service restores the previous handler.
        """
        previous = signal.getsignal(signal.SIGTERM)
        self.service.startService()
        self.reactor.run()  # the reactor is running: the handler goes in
        signal.raise_signal(signal.SIGTERM)
        self.assertEqual(self.reactor.stopped, 0)
        self.reactor.run()
        self.assertEqual(self.reactor.stopped, 1)
        self.successResultOf(self.service.stopService())
        self.assertEqual(signal.getsignal(signal.SIGTERM), previous)

    def test_start_failure_exits_1(self) -> None:
        """
        When the child fails to start, then the failure is logged, the
        reactor is stopped and an exit with status 1 is arranged for after
        shutdown.
        """
        self.patch(self.child, "startService", lambda: defer.fail(RuntimeError("no")))
        self.successResultOf(self.service.startService())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual([(p, e, a) for p, e, f, a in self.reactor.triggers],
                         [("after", "shutdown", (1,))])
        self.assertIs(self.reactor.triggers[0][2], launcher._exit)
        self.reactor.run()
        self.assertEqual(self.reactor.stopped, 1)

    def test_sighup_resets(self) -> None:
        """
        When SIGHUP arrives while running, then the child's C{reset()} is
        called through C{callFromThread}, not from the handler itself.
        """
        self.service.startService()
        self.reactor.run()
        signal.raise_signal(signal.SIGHUP)
        self.assertEqual(self.child.resets, 0)
        self.assertEqual(len(self.reactor.calls), 1)
        self.reactor.run()
        self.assertEqual(self.child.resets, 1)
        self.assertEqual(self.previous, [])

    def test_stop_restores_handler(self) -> None:
        """
        When the service stops, then the previous SIGHUP handler is back and
        a SIGHUP no longer resets the child.
        """
        self.service.startService()
        self.reactor.run()
        self.successResultOf(self.service.stopService())
        signal.raise_signal(signal.SIGHUP)
        self.assertEqual(self.previous, [signal.SIGHUP])
        self.assertEqual(self.reactor.calls, [])

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
