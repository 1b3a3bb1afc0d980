# -*- test-case-name: tests.test_rpc_deadlines -*-
"""
L{Deadlines}: the timeouts of the calls an L{novasvc.rpc.client.RPCClient}
is waiting for, watched with one timer instead of one C{callLater} (and
its cancellation) per call.

The deadlines of one duration (say every call's 60 s) come in the order
they are added, so each duration keeps a first-in first-out queue: the
timer is set for the earliest head, and when it fires, the heads that are
due expire. A deadline cancelled (its call got its reply) stays in its
queue, without its callback, until it reaches the head or the queues are
compacted (when more than half of what they hold is cancelled), so adding
and cancelling cost a few list and counter operations. When nothing is
left to watch, the timer is cancelled: an idle client leaves no timer
behind.
"""

from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

from twisted.logger import Logger

from novasvc._reactor import global_reactor_if_none

__all__ = ["Deadlines"]

_log = Logger()
#: Cancelled deadlines kept beyond the live ones before the queues are
#: compacted.
_SLACK = 64
_NEVER = float("inf")


class Deadlines:
    """
    Callbacks due a number of seconds after they are added, unless they are
    cancelled first, all watched with one timer.

    A deadline is a C{list}: C{[when, callback]}, C{when} in the clock's
    B{seconds}; its callback is C{None} once it is cancelled or expired.
    """

    def __init__(self, clock: Any = None) -> None:
        """
        @param clock: C{IReactorTime} for the timer; the global reactor
            (looked up on first use) when C{None}.
        """
        self._clock_arg = clock
        self._queues: Dict[float, Deque[List[Any]]] = {}
        self._size = 0  # deadlines in the queues, cancelled ones included
        self._cancelled = 0
        self._timer: Any = None
        self._at = _NEVER  # when the timer fires
        self._firing = False

    @property
    def _clock(self) -> Any:
        if self._clock_arg is None:
            self._clock_arg = global_reactor_if_none()
        return self._clock_arg

    def __len__(self) -> int:
        """
        @return: how many deadlines are watched (not cancelled, not
            expired).
        """
        return self._size - self._cancelled

    def add(self, seconds: float, callback: Callable[[], Any], now: float) -> List[Any]:
        """
        Call C{callback()} once C{seconds} have passed since C{now}, unless
        the deadline is cancelled first.

        @param seconds: the duration, B{seconds} (>= 0).
        @param callback: called without arguments; what it raises is
            logged.
        @param now: the clock's C{seconds()} now (the caller has read it).
        @return: the deadline, for L{cancel}.
        """
        when = now + seconds
        deadline = [when, callback]
        queue = self._queues.get(seconds)
        if queue is None:
            queue = self._queues[seconds] = deque()
        queue.append(deadline)
        self._size += 1
        if when < self._at and not self._firing:
            self._schedule(when, now)
        return deadline

    def cancel(self, deadline: List[Any]) -> None:
        """
        Forget C{deadline}: its callback will not be called. Cancelling it
        again, or once it expired, does nothing.
        """
        if deadline[1] is None:
            return
        deadline[1] = None
        self._cancelled += 1
        if self._firing:
            return
        if self._cancelled == self._size:
            self._clear()
        elif self._cancelled > self._size - self._cancelled + _SLACK:
            self._compact()

    def _schedule(self, when: float, now: float) -> None:
        self._at = when
        delay = max(0.0, when - now)
        if self._timer is None:
            self._timer = self._clock.callLater(delay, self._fire)
        else:
            self._timer.reset(delay)

    def _clear(self) -> None:
        """
        Nothing is watched any more: drop the queues and the timer.
        """
        self._queues.clear()
        self._size = self._cancelled = 0
        self._at = _NEVER
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _compact(self) -> None:
        """
        Take the cancelled deadlines out of the queues.
        """
        for seconds, queue in list(self._queues.items()):
            live = [deadline for deadline in queue if deadline[1] is not None]
            if live:
                queue.clear()
                queue.extend(live)
            else:
                del self._queues[seconds]
        self._size -= self._cancelled
        self._cancelled = 0

    def _fire(self) -> None:
        """
        The timer: call back the deadlines that are due, then set the timer
        for the earliest one left.
        """
        self._timer = None
        clock = self._clock
        # Due: every deadline up to the one the timer was set for, whatever
        # the rounding of the clock's arithmetic.
        now = max(clock.seconds(), self._at)
        self._at = _NEVER
        self._firing = True
        try:
            for seconds, queue in list(self._queues.items()):
                while queue:
                    deadline = queue[0]
                    callback = deadline[1]
                    if callback is not None and deadline[0] > now:
                        break
                    queue.popleft()
                    self._size -= 1
                    if callback is None:
                        self._cancelled -= 1
                        continue
                    deadline[1] = None
                    try:
                        callback()
                    except Exception:
                        _log.failure("A call's deadline failed to expire")
                if not queue and self._queues.get(seconds) is queue:
                    del self._queues[seconds]
        finally:
            self._firing = False
        self._reschedule(clock.seconds())

    def _reschedule(self, now: float) -> None:
        if self._cancelled == self._size:
            self._clear()
            return
        if self._cancelled > self._size - self._cancelled + _SLACK:
            self._compact()
        earliest: Optional[float] = None
        for queue in self._queues.values():
            while queue and queue[0][1] is None:
                queue.popleft()
                self._size -= 1
                self._cancelled -= 1
            if queue and (earliest is None or queue[0][0] < earliest):
                earliest = queue[0][0]
        if earliest is None:
            self._clear()
        else:
            self._schedule(earliest, now)
