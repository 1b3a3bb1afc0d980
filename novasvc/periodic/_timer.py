# -*- test-case-name: tests.test_periodic_timer -*-
"""
The timer: L{PeriodicTaskService}, the dynamic timer that calls the runner
again after the idle time it returned, and L{fuzzy_delay}, its first delay.

Public through L{novasvc.periodic}.
"""

import math
import numbers
import random
from typing import Callable, Optional, Protocol

from twisted.application import service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

from novasvc._reactor import global_reactor_if_none
from novasvc.periodic._decorator import DEFAULT_INTERVAL

__all__ = ["fuzzy_delay", "PeriodicTaskService"]

_log = Logger(namespace="novasvc.periodic")


class _RandInt(Protocol):
    def randint(self, a: int, b: int) -> int: ...


def fuzzy_delay(periodic_fuzzy_delay: float, rng: Optional[_RandInt] = None) -> Optional[float]:
    """
    The first delay of the periodic timer, spreading services started
    together (Nova's C{Service.start}).

    @param periodic_fuzzy_delay: the configured maximum, B{seconds}.
    @param rng: a source with C{randint(a, b)} (default: the C{random}
        module).
    @return: C{rng.randint(0, int(periodic_fuzzy_delay))} seconds, or
        C{None} (no delay) when C{periodic_fuzzy_delay} is 0.
    @raise ValueError: when C{periodic_fuzzy_delay} is negative.
    """
    if periodic_fuzzy_delay < 0:
        raise ValueError(f"periodic_fuzzy_delay must be >= 0, not {periodic_fuzzy_delay!r}")
    if not periodic_fuzzy_delay:
        return None
    return (rng or random).randint(0, int(periodic_fuzzy_delay))


class PeriodicTaskService(service.Service):
    """
    The dynamic timer of oslo.service: call C{run} after C{initial_delay},
    then again after the idle time it returned, capped by C{interval_max}.

    It never dies of an error: when C{run} raises (or returns something that
    is not a number of seconds) the error is logged (with its traceback the
    first time in a row, briefly after that, and a "recovered" event once it
    succeeds again) and the next call comes after C{interval_max}, or
    L{DEFAULT_INTERVAL} without a maximum.

    It does not wait for tasks still running when stopped; chain
    L{PeriodicTasks.wait_for_periodic_tasks
    <novasvc.periodic.PeriodicTasks.wait_for_periodic_tasks>} for that.
    """

    def __init__(
        self,
        run: Callable[[], Optional[float]],
        *,
        clock: Optional[IReactorTime] = None,
        initial_delay: Optional[float] = None,
        interval_max: Optional[float] = None,
    ) -> None:
        """
        @param run: returns the B{seconds} to wait before the next call
            (typically C{lambda: manager.periodic_tasks(context)}). C{None}
            means C{interval_max} (an error when there is no maximum).
        @param clock: the timer's clock (default: the global reactor, resolved
            at start).
        @param initial_delay: B{seconds} before the first call; C{None} or 0
            call at once in L{startService} (see L{fuzzy_delay}).
        @param interval_max: the longest wait between calls, B{seconds}, or
            C{None} for no maximum.
        @raise ValueError: when C{initial_delay} is negative or
            C{interval_max} is not positive.
        """
        if initial_delay is not None and initial_delay < 0:
            raise ValueError(f"initial_delay must be >= 0 seconds, not {initial_delay!r}")
        if interval_max is not None and not interval_max > 0:
            raise ValueError(f"interval_max must be > 0 seconds or None, not {interval_max!r}")
        self._run = run
        self._clock = clock
        self.initial_delay = initial_delay
        self.interval_max = interval_max
        self._call: Optional[IDelayedCall] = None
        self._failures = 0

    @property
    def clock(self) -> IReactorTime:
        """
        The injected clock, or the global reactor when none was given.
        """
        return global_reactor_if_none(self._clock)

    def startService(self) -> None:
        """
        Schedule the first call (or make it now, without an initial delay).
        """
        super().startService()
        if self.initial_delay:
            self._schedule(self.initial_delay)
        else:
            self._tick()

    def stopService(self) -> None:
        """
        Cancel the pending call. A running C{run} is not interrupted.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        super().stopService()

    def _schedule(self, delay: float) -> None:
        self._call = self.clock.callLater(delay, self._tick)

    def _fallback(self) -> float:
        return self.interval_max if self.interval_max is not None else DEFAULT_INTERVAL

    def _delay_after(self, idle: object) -> float:
        if idle is None and self.interval_max is not None:
            return self.interval_max
        if isinstance(idle, bool) or not isinstance(idle, numbers.Real) or math.isnan(idle):
            raise TypeError(f"the periodic runner returned {idle!r}, not a number of seconds")
        delay = max(0.0, float(idle))
        if self.interval_max is not None:
            delay = min(delay, self.interval_max)
        return delay

    def _tick(self) -> None:
        self._call = None
        try:
            delay = self._delay_after(self._run())
        except Exception as error:
            delay = self._fallback()
            self._failures += 1
            if self._failures == 1:
                _log.failure(
                    "Periodic task runner failed; next run in {delay} s",
                    delay=delay,
                    level=LogLevel.error,
                )
            else:
                _log.warn(
                    "Periodic task runner still failing ({count} runs in a row): "
                    "{error!r}; next run in {delay} s",
                    count=self._failures,
                    error=error,
                    delay=delay,
                )
        else:
            if self._failures:
                _log.info(
                    "Periodic task runner recovered after {count} failed runs",
                    count=self._failures,
                )
                self._failures = 0
        if self.running:
            self._schedule(delay)
