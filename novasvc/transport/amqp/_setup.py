# -*- test-case-name: tests.test_transport_amqp_liveness,tests.test_transport_amqp,tests.test_transport_txamqp -*-
"""
What both RabbitMQ transports do to set a connection up without hanging on
it: the whole set-up of a connection has C{connect_timeout} seconds
(L{set_up_connection}), every step that waits for the broker (the
handshake, the publish channel, each declare of a consumer) says so in one
log line once it has waited L{WAIT_LOGGED_AFTER} seconds (L{SetupSteps}),
and every open connection is watched by a
L{novasvc.transport.amqp._liveness.Liveness} (L{watch_liveness}).
"""

from typing import Any, Callable, Optional

from twisted.internet import defer
from twisted.logger import Logger

from novasvc.transport.amqp._liveness import Liveness, LivenessPolicy

__all__ = ["SetupSteps", "WAIT_LOGGED_AFTER", "set_up_connection", "watch_liveness"]

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


def set_up_connection(clock: Any, timeout: float, who: str, protocol: Any,
                      handshake: Callable[[Any], defer.Deferred],
                      rest: Callable[[SetupSteps], defer.Deferred]) -> defer.Deferred:
    """
    Set up the new connection of C{protocol}: the AMQP handshake, then
    C{rest}, all within C{timeout} seconds. A step that fails, or a set-up
    still going after C{timeout} seconds, aborts the connection (its
    protocol's C{abort(why)}), naming the step.

    @param who: what is being set up, for the log (see L{SetupSteps}).
    @param handshake: called with C{protocol}; returns a C{Deferred} firing
        once the AMQP connection is open.
    @param rest: called with the L{SetupSteps} once the handshake is done;
        returns a C{Deferred} firing once the connection is usable.
    @return: a C{Deferred} that never fails, firing with C{None} once the
        set-up is over, or at the latest once the connection is lost.
    """
    done: defer.Deferred = defer.Deferred()
    steps = SetupSteps(clock, who)

    def timed_out() -> None:
        protocol.abort(f"{steps.current or 'setting up the connection'} took more than {timeout} seconds")

    timer = clock.callLater(timeout, timed_out)

    def failed(failure: Any) -> None:
        # When the connection is lost, the transport tells why (the client
        # library's reason is only known once its callbacks have all run).
        if not protocol.lost:
            protocol.abort(f"cannot set up the connection: {failure.getErrorMessage()}")

    def finished(_: Any) -> None:
        steps.finish()
        if timer.active():
            timer.cancel()
        if not done.called:
            done.callback(None)

    ready = steps.step("the AMQP handshake", handshake(protocol))
    ready.addCallback(lambda _: rest(steps))
    ready.addErrback(failed)
    ready.addBoth(finished)
    protocol.when_lost().addCallback(finished)
    return done


def watch_liveness(clock: Any, policy: LivenessPolicy, session: Any, lost: Callable[[Any, str], None]) -> Liveness:
    """
    Watch the connection of C{session} until it is lost.

    @param session: a L{novasvc.transport.amqp._base.Session}: its
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
