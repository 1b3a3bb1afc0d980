# -*- test-case-name: tests.test_transport_amqp_liveness -*-
"""
Telling a hung broker from a busy one, for both RabbitMQ transports.

A broker node that hangs (stopped, partitioned away, a stuck VM) leaves the
TCP connection open and silent: nothing fails, a publish waits for its
confirm for ever. AMQP heartbeats are the broker's promise that a healthy
connection never stays silent long: with a heartbeat of I{H} seconds,
RabbitMQ sends a frame whenever it sent nothing for about I{H}/2 seconds, so
a gap between two incoming frames never exceeds about I{H} seconds.
L{Liveness} uses two kinds of evidence, checked once a second:

  - B{silence}: nothing at all arrived for L{dead_after} seconds (the
    heartbeat plus a margin): the connection is dead. A connection that
    keeps receiving (deliveries, confirms, heartbeats) is never judged by
    how long any one answer takes.
  - B{something owed}: the broker owes this process an answer (a publish
    confirm) for C{suspect_after} seconds while nothing arrived for as
    long: the liveness asks the broker something it answers at once
    whatever its queues are doing (it opens a channel, then closes it). If
    nothing at all arrives within C{probe_timeout} seconds of asking, the
    connection is dead; any byte clears the suspicion. A busy connection
    whose confirms are slow (a quorum queue electing a leader) costs one
    channel open.

The checks run on the reactor that reads the socket: a check that runs late
(the reactor was blocked by other work, so the data that came meanwhile may
still be unread) judges nothing that time.
"""

from typing import Any, Callable, Optional

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger

__all__ = ["Liveness", "LivenessPolicy"]

_log = Logger()


@attrs.frozen
class LivenessPolicy:
    """
    When a silent connection is dead.

    @ivar heartbeat: the AMQP heartbeat asked for, in B{seconds}; 0 turns
        the silence rule off (the owed-answer rule stays).
    @ivar suspect_after: B{seconds} an answer must be owed, with nothing
        received for as long, before the broker is asked for a sign of life.
    @ivar probe_timeout: B{seconds} given to that sign of life.
    @ivar interval: B{seconds} between checks.
    """

    heartbeat: float = 10.0
    suspect_after: float = 3.0
    probe_timeout: float = 3.0
    interval: float = 1.0

    @property
    def dead_after(self) -> Optional[float]:
        """
        B{Seconds} of complete silence after which the connection is dead:
        the heartbeat plus a fifth of it (at least 2 s), or C{None} without
        heartbeats.
        """
        if self.heartbeat <= 0:
            return None
        return self.heartbeat + max(2.0, self.heartbeat / 5)


class Liveness:
    """
    Watches one open connection; see the module docstring.

    @ivar probing_since: when the pending sign-of-life question was asked
        (clock seconds), or C{None}.
    """

    def __init__(self, clock: Any, policy: LivenessPolicy, last_received: Callable[[], float],
                 owed: Callable[[], bool], probe: Callable[[], defer.Deferred],
                 dead: Callable[[str], None]) -> None:
        """
        @param clock: C{IReactorTime}.
        @param last_received: gives the clock time the latest data arrived.
        @param owed: tells whether the broker owes an answer now (e.g.
            publish confirms are outstanding).
        @param probe: asks the broker for a sign of life; its C{Deferred}
            result is ignored (what counts is that data arrives).
        @param dead: called once, with why, when the connection is judged
            dead.
        """
        self._clock = clock
        self.policy = policy
        self._last_received = last_received
        self._owed = owed
        self._probe = probe
        self._dead = dead
        self._owed_since: Optional[float] = None
        self.probing_since: Optional[float] = None
        self._last_check = clock.seconds()
        self._loop: Optional[task.LoopingCall] = None

    def start(self) -> None:
        """
        Check every C{policy.interval} seconds until L{stop}.
        """
        if self._loop is None:
            self._last_check = self._clock.seconds()
            loop = self._loop = task.LoopingCall(self.check)
            loop.clock = self._clock
            loop.start(self.policy.interval, now=False)

    def stop(self) -> None:
        """
        Stop checking. Idempotent.
        """
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def check(self) -> None:
        """
        Judge the connection now (see the module docstring).
        """
        now = self._clock.seconds()
        previous, self._last_check = self._last_check, now
        late = now - previous > self.policy.interval + 2.0
        if late:
            # The reactor was busy: data may be waiting unread. Judge next
            # time, and count nothing owed from before.
            self._owed_since = None
            self.probing_since = None
            return
        silence = now - self._last_received()
        dead_after = self.policy.dead_after
        if dead_after is not None and silence >= dead_after:
            self._die(f"nothing received from the broker for {silence:.1f} seconds "
                      f"(heartbeat {self.policy.heartbeat:g} s)")
            return
        if self.probing_since is not None:
            if self._last_received() >= self.probing_since:
                self.probing_since = None
            elif now - self.probing_since >= self.policy.probe_timeout:
                self._die(f"no answer from the broker for {silence:.1f} seconds while a publish confirm was "
                          f"owed, nor to a channel open within {self.policy.probe_timeout:g} seconds")
                return
            else:
                return
        if not self._owed():
            self._owed_since = None
            return
        if self._owed_since is None:
            # Owed since some time after the previous check: count from it.
            self._owed_since = previous
        if now - self._owed_since >= self.policy.suspect_after and silence >= self.policy.suspect_after:
            self.probing_since = now
            try:
                self._probe().addErrback(lambda _: None)
            except Exception:
                _log.failure("Could not ask the AMQP broker for a sign of life")

    def _die(self, why: str) -> None:
        self.stop()
        self._dead(why)
