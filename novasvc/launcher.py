# -*- test-case-name: tests.test_launcher -*-
"""
L{HangupService}: what one service's process does around it, as
oslo.service's C{ServiceLauncher}: SIGHUP calls the service's C{reset()},
SIGTERM stops it gracefully and the process exits 0, a failed start exits 1,
systemd hears C{READY=1} and C{STOPPING=1}, and the log level and format of
L{novasvc.log.LogControl} apply.
"""

import os
import signal
import sys
from typing import Any, Callable, Dict, Optional

from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger

from novasvc.log import LogControl

__all__ = ["HangupService"]

_log = Logger()


class HangupService(MultiService):
    """
    The parent of one service: it tells systemd (C{Type=notify}) when the
    service is ready and when it stops; while running, SIGHUP calls that service's
    C{reset()} (as oslo.service's "mutate" restart method does) in the
    reactor thread, and SIGTERM stops the reactor, which stops the service
    gracefully; the process then exits with status 0 (twistd's own handler
    would re-raise the signal and end with -15). Stopping puts the previous
    handlers back.

    Unlike a plain C{MultiService}, starting and stopping return the child's
    own C{Deferred}, so an asynchronous start or a failed stop is not lost.

    @ivar service: the child service, which has a C{reset()} method returning
        a value or a C{Deferred}.
    @ivar logs: the L{LogControl} or C{None}: given twistd's application
        as parent, it becomes twistd's log observer; it forwards standard
        library logging while running; SIGHUP re-reads its level.
    """

    def __init__(self, service: IService, reactor: IReactorFromThreads,
                 logs: Optional[LogControl] = None, notifier: Optional[Any] = None) -> None:
        """
        @param service: the child; it is added with C{setServiceParent}.
        @param reactor: where the reset runs, via C{callFromThread} (safe to
            call from a signal handler).
        @param logs: see L{logs}.
        @param notifier: told C{ready()} once the child has started and
            C{stopping()} when it stops (default: a
            L{novasvc.systemd.Notifier} on C{$NOTIFY_SOCKET}, which does
            nothing outside systemd).
        """
        MultiService.__init__(self)
        self.service = service
        self.logs = logs
        self._reactor = reactor
        if notifier is None:
            from novasvc.systemd import Notifier

            notifier = Notifier()
        self._notifier = notifier
        self._previous: Dict[int, Any] = {}
        service.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        if self.logs is not None:
            self.logs.install(parent)
        MultiService.setServiceParent(self, parent)

    def startService(self) -> defer.Deferred:
        """
        Start the child and install the SIGHUP handler; once the reactor
        runs (after it installed its own handlers), install the SIGTERM one.

        @return: a C{Deferred} firing with the child's start result. If the
            start fails, the failure is logged and the process exits with
            status 1 once the reactor has stopped (as oslo.service's launcher
            does when a service cannot start).
        """
        Service.startService(self)
        if self.logs is not None:
            self.logs.start()
        d = defer.maybeDeferred(self.service.startService)
        d.addCallbacks(self._started, self._start_failed)
        self._install(getattr(signal, "SIGHUP", None), self._on_hangup)
        self._reactor.callWhenRunning(self._install, signal.SIGTERM, self._on_terminate)
        return d

    def _install(self, signum: Optional[int], handler: Callable[[int, Any], None]) -> None:
        if signum is None or not self.running:
            return  # not on this platform, or already stopped
        try:
            previous = signal.signal(signum, handler)
        except ValueError:
            _log.warn("Not in the main thread: signal {signum} is not handled", signum=signum)
            return
        self._previous[signum] = signal.SIG_DFL if previous is None else previous

    def _started(self, result: Any) -> Any:
        self._notifier.ready()
        return result

    def _start_failed(self, failure: Any) -> None:
        _log.failure("The service failed to start; exiting", failure)
        self._reactor.addSystemEventTrigger("after", "shutdown", _exit, 1)
        self._reactor.callLater(0, self._reactor.stop)

    def stopService(self) -> defer.Deferred:
        """
        Put the previous signal handlers back, then stop the child.

        @return: a C{Deferred} firing with the child's stop result.
        """
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self._notifier.stopping()
        Service.stopService(self)
        d = defer.maybeDeferred(self.service.stopService)
        if self.logs is not None:
            d.addBoth(self.logs.stop)
        return d

    def _on_terminate(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._terminate)

    def _terminate(self) -> None:
        _log.info("SIGTERM received: stopping gracefully")
        self._reactor.stop()

    def _on_hangup(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._reset)

    def _reset(self) -> defer.Deferred:
        _log.info("SIGHUP received: resetting the service")
        if self.logs is not None:
            self.logs.reread()
        d = defer.maybeDeferred(self.service.reset)  # type: ignore[attr-defined]
        d.addErrback(lambda f: _log.failure("Error while resetting the service", f))
        return d


def _exit(code: int) -> None:
    """
    End the process with C{code} after the reactor stopped (twistd itself
    always exits 0 after a plain C{reactor.stop()}).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
