# -*- test-case-name: tests.test_core_lifecycle -*-
"""
L{AsyncMultiService}: a C{MultiService} whose children may start and stop
asynchronously, with an explicit lifecycle.

Twisted's own C{MultiService} ignores the C{Deferred} a child's
C{startService} returns (twisted#5941) and loses a child's failure during
C{stopService} (twisted#6790). Here children start one after the other in the
order they were added, each waiting for the previous one's C{Deferred}, and
stop in reverse order the same way; a failing stop is logged and the next child
is still stopped. Stopping while the start is still under way cancels it
first: the child being started has its start C{Deferred} cancelled, and no
later child starts.

The phases (L{novasvc._phase}), in L{AsyncMultiService.phase}::

    phase     startService()               stopService()
    --------  ---------------------------  -------------------------------
    STOPPED   start the children           done at once
    STARTING  the start under way          cancel the start, stop
    RUNNING   done at once                 stop the children (reversed)
    STOPPING  refused (LifecycleError)     the stop under way

A second stop (C{kill()} while stopping, a test's second C{stop()}) waits
for the first one: it never starts a second chain that would stop the
lower children before the upper ones have drained.
"""

from typing import Any, Optional

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from novasvc._phase import Phase, Shared, answer_repeated_start

_log = Logger()


class AsyncMultiService(MultiService):
    """
    A C{MultiService} that waits for each child in turn.

    A child added while the parent runs is started at once (as
    C{MultiService} does) and its start C{Deferred} is returned by
    L{addService}.
    """

    #: Where the service is in its lifecycle (see the module docstring).
    phase: Phase = Phase.STOPPED
    _starting: Optional[defer.Deferred] = None
    _start: Optional[Shared] = None
    _stop: Optional[Shared] = None
    _stop_token: Optional[object] = None

    def startService(self) -> defer.Deferred:
        """
        Start the children in order, each after the previous one's start
        C{Deferred} has fired.

        @return: a C{Deferred} firing with C{None} once all children have
            started, or failing with the first child's failure (later children
            are then not started), or with L{defer.CancelledError} when
            L{stopService} was called before the start finished. While a
            start is under way: that start's outcome; while running: C{None}
            at once; while stopping: a L{novasvc.exceptions.LifecycleError}.
        """
        answer = answer_repeated_start(self, self.phase, self._start)
        if answer is not None:
            return answer
        self.phase, self.running = Phase.STARTING, 1
        starting = self._starting = self._start_from(list(self))

        def finished(result: Any) -> Any:
            if self._starting is starting:
                self._starting = None
                self.phase = Phase.RUNNING
            return result

        starting.addBoth(finished)
        self._start = Shared(starting, canceller=starting.cancel)
        return self._start.observe()

    def _start_from(self, children) -> defer.Deferred:
        d = defer.succeed(None)
        for child in children:
            d.addCallback(lambda _, c=child: c.startService())
        return d

    def stopService(self) -> defer.Deferred:
        """
        Stop the children in reverse order, each after the previous one's
        stop C{Deferred} has fired. A child's failure to stop is logged and
        does not keep the others running.

        A start still under way is cancelled first (the start C{Deferred}
        of the child being started is cancelled, so a child that retries
        gives up), so no child starts after this call; the child that was
        starting is then stopped with the others.

        @return: a C{Deferred} firing with C{None} once every child has been
            stopped; while a stop is under way, that stop's outcome (no
            second chain starts); when stopped, C{None} at once.
        """
        if self.phase is Phase.STOPPING and self._stop is not None:
            return self._stop.observe()
        if self.phase is Phase.STOPPED:
            return defer.succeed(None)
        self.phase, self.running = Phase.STOPPING, 0
        starting, self._starting = self._starting, None
        if starting is not None:
            starting.cancel()
        d = defer.succeed(None)
        for child in reversed(list(self)):
            d.addCallback(lambda _, c=child: self._stop_child(c) if c.running else None)
            d.addErrback(self._stop_failed, child)
        token = self._stop_token = object()

        def stopped(result: Any) -> Any:
            if self._stop_token is token:
                self.phase = Phase.STOPPED
            return result

        self._stop = Shared(d.addBoth(stopped))
        return self._stop.observe()

    def _stop_child(self, child) -> defer.Deferred:
        """
        Stop one running child (a subclass may bound the wait).

        @return: what the parent waits for before stopping the next child.
        """
        return defer.maybeDeferred(child.stopService)

    def _stop_failed(self, failure, child) -> None:
        _log.failure("Error while stopping {child!r}", failure, child=child)

    def addService(self, service) -> defer.Deferred:
        """
        Add a child; if this service runs, start it too.

        @return: a C{Deferred} firing once the child has started (at once
            when this service is not running).
        """
        running, self.running = self.running, 0
        try:
            MultiService.addService(self, service)
        finally:
            self.running = running
        if self.running:
            return defer.maybeDeferred(service.startService)
        return defer.succeed(None)
