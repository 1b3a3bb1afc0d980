# -*- test-case-name: tests.test_core_service -*-
"""
The children of a L{novasvc.core.service.Service} that are not services of
their own: L{Step}, a start and a stop half given as callables, and
L{PeriodicStep}, the periodic task timer, whose stop waits for the tasks
still running.
"""

from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet import defer

from novasvc._reactor import at_most
from novasvc.periodic import PeriodicTaskService

__all__ = ["PeriodicStep", "Step"]


class Step(Service):
    """
    A child whose start and stop halves are plain callables (each may return
    a C{Deferred}).
    """

    def __init__(self, start: Callable[[], Any], stop: Optional[Callable[[], Any]] = None,
                 name: Optional[str] = None) -> None:
        self._start, self._stop = start, stop
        if name:
            self.setName(name)

    def startService(self) -> defer.Deferred:
        Service.startService(self)
        return defer.maybeDeferred(self._start)

    def stopService(self) -> defer.Deferred:
        Service.stopService(self)
        return defer.maybeDeferred(self._stop) if self._stop else defer.succeed(None)


class PeriodicStep(PeriodicTaskService):
    """
    The periodic timer; on stop it also waits (up to the graceful shutdown
    timeout) for tasks still running.
    """

    def __init__(self, service: Any, initial_delay: float, interval_max: Optional[float]) -> None:
        """
        @param service: the L{novasvc.core.service.Service}: its C{periodic_tasks},
            C{clock}, C{manager} and C{config}.
        """
        PeriodicTaskService.__init__(self, service.periodic_tasks, clock=service.clock,
                                     initial_delay=initial_delay, interval_max=interval_max)
        self._owner = service
        self.setName("periodic")

    def stopService(self) -> defer.Deferred:
        d = defer.maybeDeferred(PeriodicTaskService.stopService, self)
        d.addCallback(lambda _: at_most(self._owner.clock, self._owner.manager.wait_for_periodic_tasks(),
                                        self._owner.config.graceful_shutdown_timeout))
        return d
