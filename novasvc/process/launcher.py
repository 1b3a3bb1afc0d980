# -*- test-case-name: tests.test_process_launcher -*-
"""
L{HangupService}: what one service's process does around it, as
oslo.service's C{ServiceLauncher}: SIGHUP calls the service's C{reset()},
SIGTERM (or SIGINT) stops it gracefully and the process exits 0, a second
one stops it at once, a failed start exits 1, systemd hears C{READY=1} and
C{STOPPING=1}, twistd's parent process (daemon mode) hears whether the
service started, and the log level and format of L{novasvc.process.log.LogControl}
apply.
"""

import os
import signal
import sys
from typing import Any, Callable, Dict, MutableMapping, Optional, Set

from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import ILogObserver, Logger, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from novasvc._phase import Shared
from novasvc.exceptions import ConfigError, LoadError, StartupError, WorkerStartError
from novasvc.process.log import LogControl

__all__ = ["HangupService", "READY_WAIT", "STOP_NOW_GRACE"]

_log = Logger()

#: Seconds twistd's parent process (daemon mode) waits for the service to be
#: ready before it is told that the start still retries.
READY_WAIT = 60.0
#: Seconds a stop may still take after a second SIGTERM before the process
#: exits anyway.
STOP_NOW_GRACE = 10.0
# twistd's parent shows at most 100 bytes; the first two are the status.
_PIPE_MESSAGE_LIMIT = 98


class HangupService(MultiService):
    """
    The parent of one service: it tells systemd (C{Type=notify}) when the
    service is ready and when it stops; while running, SIGHUP calls that
    service's C{reset()} (as oslo.service's "mutate" restart method does) in
    the reactor thread, and SIGTERM stops the reactor, which stops the
    service gracefully; the process then exits with status 0 (twistd's own
    handler would re-raise the signal and end with -15). SIGINT (Ctrl-C)
    does the same as SIGTERM, unless C{interrupt=False} (a worker, which
    leaves SIGINT to its parent): twistd's own SIGINT handler would end the
    process with -2 after the stop.

    A second SIGTERM (or SIGINT) while the service stops means "stop now":
    the service's C{stop_now()} cuts the drain short (requests still running
    stay unacknowledged and go back to the broker when the connection
    closes), and if the stop still takes more than C{stop_now_grace} seconds
    the process exits anyway. The handler stays installed until the process
    ends, so no later SIGTERM or SIGINT reaches twistd's handler.

    A start that fails logs one line naming the cause (C{The service failed
    to start: init_host of pkg.Manager failed: OperationalError: ...}), with
    the traceback only under C{traceback=True} or at DEBUG, and ends the
    process with status 1,
    after twistd has removed its pid file. Under twistd without C{-n}, the
    parent process that twistd leaves waiting on its status pipe is told the
    outcome: it exits 0 once the service is ready, 1 with the error when
    the start failed, and 1 if the service is not ready after C{ready_wait}
    seconds (the daemon itself goes on retrying).

    Unlike a plain C{MultiService}, starting and stopping return the child's
    own C{Deferred}, so an asynchronous start or a failed stop is not lost.

    @ivar service: the child service, which has a C{reset()} method
        returning a value or a C{Deferred}, and may have a C{stop_now()}
        method (see L{novasvc.core.service.Service.stop_now}).
    @ivar logs: the L{LogControl} or C{None}: given twistd's application
        as parent, it becomes twistd's log observer; it forwards standard
        library logging while running; SIGHUP re-reads its level.
    """

    def __init__(self, service: IService, reactor: IReactorFromThreads,
                 logs: Optional[LogControl] = None, notifier: Optional[Any] = None,
                 daemon: Optional[MutableMapping[str, Any]] = None,
                 ready_wait: float = READY_WAIT, stop_now_grace: float = STOP_NOW_GRACE,
                 traceback: bool = False, interrupt: bool = True) -> None:
        """
        @param service: the child; it is added with C{setServiceParent}.
        @param reactor: provides C{callFromThread} (safe to call from a
            signal handler), C{callWhenRunning}, C{callLater}, C{stop} and
            C{addSystemEventTrigger}.
        @param logs: see L{logs}.
        @param notifier: told C{ready()} once the child has started and
            C{stopping()} when it stops (default: a
            L{novasvc.process.systemd.Notifier} on C{$NOTIFY_SOCKET}, which does
            nothing outside systemd).
        @param daemon: twistd's own options (the C{parent} of the plugin's
            options), where twistd keeps the status pipe to its waiting
            parent process in daemon mode; C{None} outside twistd.
        @param ready_wait: B{seconds} the daemon's parent process waits for
            the service to be ready.
        @param stop_now_grace: B{seconds} the stop may still take after a
            second SIGTERM.
        @param traceback: log a failed start with its traceback (that of
            the cause, for a L{StartupError}); without it, only when
            C{logs} is at C{debug}, else on one line (C{--traceback}).
        @param interrupt: whether SIGINT stops the service as SIGTERM does
            (C{False}: SIGINT is left alone).
        """
        MultiService.__init__(self)
        self.service = service
        self.logs = logs
        self._reactor = reactor
        if notifier is None:
            from novasvc.process.systemd import Notifier

            notifier = Notifier()
        self._notifier = notifier
        self._daemon = daemon
        self._ready_wait = ready_wait
        self._stop_now_grace = stop_now_grace
        self._traceback = traceback
        self._stop_signals = (signal.SIGTERM, signal.SIGINT) if interrupt else (signal.SIGTERM,)
        self._previous: Dict[int, Any] = {}
        self._unhandled: Set[int] = set()
        self._status_pipe: Optional[int] = None
        self._ready_call: Optional[Any] = None
        self._give_up_call: Optional[Any] = None
        self._terminating = False
        self._hurried = False
        self._stopping: Optional[defer.Deferred] = None
        self._stop: Optional[Shared] = None
        service.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        if self.logs is not None:
            self.logs.install(parent)
        MultiService.setServiceParent(self, parent)

    def startService(self) -> defer.Deferred:
        """
        Install the SIGHUP, SIGTERM (and SIGINT) handlers, then start the
        child; once the reactor runs, install the SIGTERM one again (the
        reactor installs its own as it starts). A signal that arrives
        before the reactor runs (twistd starts the service first) is thus
        handled when it runs, as any other: without the early handlers,
        SIGTERM would kill the process at once and SIGINT raise
        C{KeyboardInterrupt}, leaving the workers a supervising parent has
        just started without their parent's stop. In daemon mode, take
        over twistd's status pipe, so that twistd does not report success
        before the service is ready.

        @return: a C{Deferred} firing with the child's start result, or with
            C{None} if the start failed: the failure is then logged and the
            process exits with status 1 once twistd has finished (as
            oslo.service's launcher does when a service cannot start). A
            start cut short by a stop is logged as such; the exit status
            stays 0.
        """
        Service.startService(self)
        self._status_pipe = self._take_status_pipe()
        if self._status_pipe is not None:
            self._ready_call = self._reactor.callLater(self._ready_wait, self._not_ready_yet)
        if self.logs is not None:
            self.logs.start()
        self._install(getattr(signal, "SIGHUP", None), self._on_hangup)
        for signum in self._stop_signals:
            self._install(signum, self._on_terminate)
            self._reactor.callWhenRunning(self._install, signum, self._on_terminate)
        d = defer.maybeDeferred(self.service.startService)
        d.addCallbacks(self._started, self._start_failed)
        return d

    def _take_status_pipe(self) -> Optional[int]:
        """
        @return: the write end of twistd's status pipe, or C{None} (not a
            daemon, or not under twistd); twistd's own reference is cleared.
        """
        if self._daemon is None:
            return None
        fd = self._daemon.get("statusPipe")
        if fd is not None:
            self._daemon["statusPipe"] = None
        return fd

    def _tell_parent(self, error: Optional[str] = None) -> None:
        """
        Tell twistd's waiting parent process the outcome of the start, once:
        C{0} (it exits 0), or C{1} and C{error} (it prints the error and
        exits 1).
        """
        fd, self._status_pipe = self._status_pipe, None
        call, self._ready_call = self._ready_call, None
        if call is not None and call.active():
            call.cancel()
        if fd is None:
            return
        message = b"0" if error is None else b"1 " + error.encode("utf-8", "replace")
        if len(message) > _PIPE_MESSAGE_LIMIT + 2:
            message = message[:_PIPE_MESSAGE_LIMIT - 1] + b"..."
        try:
            os.write(fd, message)
            os.close(fd)
        except OSError as e:
            _log.warn("Could not tell twistd's parent process how the start went: {error}", error=e)

    def _not_ready_yet(self) -> None:
        self._ready_call = None
        _log.warn("Not ready after {seconds:g} s: the start still retries; twistd's parent process "
                  "exits with status 1, this process goes on", seconds=self._ready_wait)
        self._tell_parent(f"not ready after {self._ready_wait:g} s; still retrying, see the log")

    def _install(self, signum: Optional[int], handler: Callable[[int, Any], None]) -> None:
        if signum is None or not self.running:
            return  # not on this platform, or already stopped
        try:
            previous = signal.signal(signum, handler)
        except ValueError:
            if signum not in self._unhandled:
                self._unhandled.add(signum)
                _log.warn("Not in the main thread: signal {signum} is not handled", signum=signum)
            return
        if previous != handler:  # (installed again: what came before it is known)
            self._previous[signum] = signal.SIG_DFL if previous is None else previous

    def _restore(self, signum: int) -> None:
        if signum in self._previous:
            signal.signal(signum, self._previous.pop(signum))

    def _started(self, result: Any) -> Any:
        self._notifier.ready()
        self._tell_parent()
        return result

    def _start_failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError) and not self.running:
            _log.info("Stopped before the service was ready")
            self._tell_parent("stopped before the service was ready")
            return
        error = _one_line(failure)
        if self._traceback or (self.logs is not None and self.logs.level == "debug"):
            cause = failure.value.__cause__ if failure.check(StartupError) else None
            if cause is not None:
                failure = Failure(cause, type(cause), cause.__traceback__)
            _log.failure("The service failed to start: {error}", failure, error=error)
        else:
            _log.error("The service failed to start: {error}", error=error)
        self._tell_parent(failure.getErrorMessage() or failure.type.__name__)
        _exit_after_twistd(1)
        if self.running:
            self._reactor.callLater(0, self._stop_reactor)

    def _stop_reactor(self) -> None:
        try:
            self._reactor.stop()
        except ReactorNotRunning:
            pass  # already stopping

    def stopService(self) -> defer.Deferred:
        """
        Stop the child; put the previous SIGHUP, SIGTERM (and SIGINT)
        handlers back once the child has stopped, unless the stop came from
        SIGTERM or SIGINT: the process is ending, and a later signal must
        not end it with that signal's default action (SIGHUP's kills the
        process, leaving the stop half done and the pid file behind). A
        SIGHUP while stopping resets nothing; it is logged.

        @return: a C{Deferred} firing with the child's stop result, or with
            C{None} C{stop_now_grace} seconds after a second SIGTERM; a stop
            while stopping (or stopped) gets that stop's outcome, and the
            child is not stopped again.
        """
        if self._stop is not None:
            return self._stop.observe()
        self._notifier.stopping()
        Service.stopService(self)
        self._stopping = stopping = defer.Deferred()
        d = defer.maybeDeferred(self.service.stopService)
        d.addBoth(self._child_stopped, stopping)
        if self._hurried:
            self._arm_give_up()
        if self.logs is not None:
            stopping.addBoth(self.logs.stop)
        self._stop = Shared(stopping)
        return self._stop.observe()

    def _child_stopped(self, result: Any, stopping: defer.Deferred) -> None:
        call, self._give_up_call = self._give_up_call, None
        if call is not None and call.active():
            call.cancel()
        if not self._terminating:
            for signum in (*self._stop_signals, getattr(signal, "SIGHUP", -1)):
                self._restore(signum)
        if not stopping.called:
            stopping.callback(result)
        elif isinstance(result, Failure):
            _log.failure("Error while stopping the service", result)

    def _arm_give_up(self) -> None:
        if self._give_up_call is None and self._stopping is not None and not self._stopping.called:
            self._give_up_call = self._reactor.callLater(self._stop_now_grace, self._give_up)

    def _give_up(self) -> None:
        self._give_up_call = None
        _log.error("The service is still stopping {seconds:g} s after the second SIGTERM; "
                   "exiting anyway", seconds=self._stop_now_grace)
        if self._stopping is not None and not self._stopping.called:
            self._stopping.callback(None)

    def _on_terminate(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._terminate, signum)

    def _terminate(self, signum: int = signal.SIGTERM) -> None:
        """
        SIGTERM or SIGINT, in the reactor thread: the first one stops the
        reactor (gracefully), a later one stops now.
        """
        name = signal.Signals(signum).name
        if self.running and not self._terminating:
            self._terminating = True
            _log.info("{signal} received: stopping gracefully ({signal} again to stop now)", signal=name)
            try:
                self._reactor.stop()
                return
            except ReactorNotRunning:
                pass  # already shutting down for another reason
        self._terminating = True
        self._stop_now(name)

    def _stop_now(self, name: str) -> None:
        if self._stopping is not None and self._stopping.called:
            return  # stopped already; the process is ending
        if self._hurried:
            _log.info("{signal} received again: already stopping now", signal=name)
            return
        self._hurried = True
        _log.warn("{signal} received again: stopping now, without waiting for the requests in flight; "
                  "those not finished go back to the broker", signal=name)
        stop_now = getattr(self.service, "stop_now", None)
        if stop_now is not None:
            stop_now()
        self._arm_give_up()

    def _on_hangup(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._reset)

    def _reset(self) -> defer.Deferred:
        if not self.running:
            _log.info("SIGHUP received while stopping: nothing is reset")
            return defer.succeed(None)
        _log.info("SIGHUP received: resetting the service")
        if self.logs is not None:
            self.logs.reread()
        d = defer.maybeDeferred(self.service.reset)  # type: ignore[attr-defined]
        d.addErrback(lambda f: _log.failure("Error while resetting the service", f))
        return d


_exit_status: Optional[int] = None


def _one_line(failure: Failure) -> str:
    """
    @return: the message of a failed start on one line: novasvc's own
        errors as they are, anything else after its class name.
    """
    message = " ".join(failure.getErrorMessage().split())
    if failure.check(ConfigError, LoadError, WorkerStartError, StartupError):
        return message
    return f"{failure.type.__name__}: {message}" if message else failure.type.__name__


def _exit_after_twistd(code: int) -> None:
    """
    End the process with status C{code} once twistd has run its shutdown
    and removed its pid file (twistd itself exits 0 after a plain
    C{reactor.stop()}). The first status asked for wins.

    twistd's last step, in its main thread, is to log C{"Server Shut
    Down."}; the observer added here raises C{SystemExit(code)} from that
    event, which twistd lets through: the interpreter then exits as after
    C{sys.exit(code)}, running every C{atexit} handler (C{logging.shutdown},
    a tracer provider's flush). Outside twistd the event never comes and
    nothing happens.
    """
    global _exit_status
    if _exit_status is None:
        _exit_status = code
        globalLogPublisher.addObserver(_ExitAfterShutdown(code))


#: The format of twistd's last log event, logged by its C{AppLogger} (or a
#: platform's subclass: C{twisted.scripts._twistd_unix.UnixAppLogger}).
_TWISTD_DONE = "Server Shut Down."


@implementer(ILogObserver)
class _ExitAfterShutdown:
    """
    A log observer ending the process with a status when twistd says it has
    shut down.
    """

    def __init__(self, code: int) -> None:
        self.code = code

    def __call__(self, event: Dict[str, Any]) -> None:
        namespace = event.get("log_namespace") or ""
        if (event.get("log_format") == _TWISTD_DONE and namespace.startswith("twisted.")
                and namespace.endswith("AppLogger")):
            globalLogPublisher.removeObserver(self)
            sys.stdout.flush()
            sys.stderr.flush()
            raise SystemExit(self.code)
