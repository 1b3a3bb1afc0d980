# -*- test-case-name: tests.test_transport_liveness -*-
"""
What both RabbitMQ transports do to set a connection up without hanging on
it: every step that waits for the broker (the handshake, the publish
channel, each declare of a consumer) says so in one log line once it has
waited L{WAIT_LOGGED_AFTER} seconds (L{SetupSteps}), and every open
connection is watched by a L{novasvc.transport._liveness.Liveness}
(L{watch_liveness}).
"""

from typing import Any, Callable, Optional

from twisted.internet import defer
from twisted.logger import Logger

from novasvc.transport._liveness import Liveness, LivenessPolicy

__all__ = ["SetupSteps", "WAIT_LOGGED_AFTER", "watch_liveness"]

_log = Logger()

#: B{Seconds} a set-up step may wait for the broker before the log says so.
WAIT_LOGGED_AFTER = 2.0


class SetupSteps:
    """
    The steps of one set-up, one at a time; a step still waiting after
    L{WAIT_LOGGED_AFTER} seconds is logged once (WARNING), naming what
    waits and for what.

    @ivar current: the step waiting now, or C{None}.
    """

    def __init__(self, clock: Any, who: str, after: float = WAIT_LOGGED_AFTER) -> None:
        """
        @param clock: C{IReactorTime}.
        @param who: what is being set up, for the log (e.g. C{"AMQP broker
            rabbit://guest:***@h1:5672/ at h1:5672"}).
        @param after: B{seconds} before a waiting step is logged.
        """
        self._clock = clock
        self._who = who
        self._after = after
        self._timer: Any = None
        self.current: Optional[str] = None

    def step(self, what: str, d: defer.Deferred) -> defer.Deferred:
        """
        C{what} is now waiting for C{d}.

        @return: C{d}, unchanged.
        """
        self.finish()
        self.current = what
        self._timer = self._clock.callLater(self._after, self._still_waiting, what)

        def over(result: Any) -> Any:
            if self.current == what:
                self.finish()
            return result

        return d.addBoth(over)

    def finish(self) -> None:
        """
        No step waits any more.
        """
        timer, self._timer = self._timer, None
        self.current = None
        if timer is not None and timer.active():
            timer.cancel()

    def _still_waiting(self, what: str) -> None:
        self._timer = None
        _log.warn("{who}: still waiting for {what} after {after:g} seconds (is a broker node hung or cut off?)",
                  who=self._who, what=what, after=self._after)


def watch_liveness(clock: Any, policy: LivenessPolicy, session: Any, lost: Callable[[Any, str], None]) -> Liveness:
    """
    Watch the connection of C{session} until it is lost.

    @param session: a L{novasvc.transport._amqp_base.Session}: its
        protocol tells when data last arrived, its publisher's outstanding
        confirms are what the broker owes, and a channel opened and closed
        on it is the sign of life asked for.
    @param lost: called with C{(session, why)} when the connection is
        judged dead (it should drop the connection).
    @return: the running L{Liveness}.
    """
    protocol = session.protocol

    def owed() -> bool:
        publisher = session.publisher
        return publisher is not None and len(publisher.confirms) > 0

    def probe() -> defer.Deferred:
        return session.open_channel().addCallback(lambda channel: channel.close())

    liveness = Liveness(clock, policy, lambda: protocol.last_received, owed, probe, lambda why: lost(session, why))
    liveness.start()
    protocol.when_lost().addCallback(lambda _: liveness.stop())
    return liveness
