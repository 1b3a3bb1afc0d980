"""
Tests for L{novasvc.transport.amqp._liveness} (a hung broker told from a busy
one) and L{novasvc.transport.amqp._setup} (set-up steps that say when they
wait), on a L{task.Clock}.
"""

from typing import Any, List

from twisted.internet import defer, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from novasvc.transport.amqp._setup import SetupSteps, watch_liveness
from novasvc.transport.amqp._liveness import Liveness, LivenessPolicy


class _Connection:
    """
    What a L{Liveness} watches: when data last came, whether an answer is
    owed, and the sign-of-life questions asked.
    """

    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.last_received = clock.seconds()
        self.owed = False
        self.probes: List[defer.Deferred] = []
        self.deaths: List[str] = []

    def receive(self) -> None:
        self.last_received = self.clock.seconds()

    def probe(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.probes.append(d)
        return d

    def watch(self, policy: LivenessPolicy) -> Liveness:
        liveness = Liveness(self.clock, policy, lambda: self.last_received, lambda: self.owed, self.probe,
                            self.deaths.append)
        liveness.start()
        return liveness


def _advance(clock: task.Clock, seconds: float, step: float = 0.5) -> None:
    for _ in range(int(round(seconds / step))):
        clock.advance(step)


class LivenessPolicyTests(unittest.SynchronousTestCase):
    """
    L{LivenessPolicy.dead_after}.
    """

    def test_dead_after(self) -> None:
        """
        When the heartbeat is 10, 60 or 0 seconds, then silence is fatal
        after 12, 72 seconds, or never.
        """
        self.assertEqual(LivenessPolicy(heartbeat=10).dead_after, 12.0)
        self.assertEqual(LivenessPolicy(heartbeat=60).dead_after, 72.0)
        self.assertEqual(LivenessPolicy(heartbeat=2).dead_after, 4.0)
        self.assertIsNone(LivenessPolicy(heartbeat=0).dead_after)


class LivenessTests(unittest.SynchronousTestCase):
    """
    L{Liveness} judges a connection by what arrived and what is owed.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.connection = _Connection(self.clock)

    def test_silence_is_fatal(self) -> None:
        """
        When nothing arrives for the heartbeat plus its margin, then the
        connection is judged dead once, saying for how long nothing came.
        """
        liveness = self.connection.watch(LivenessPolicy(heartbeat=10))
        _advance(self.clock, 11.5)
        self.assertEqual(self.connection.deaths, [])
        _advance(self.clock, 1)
        self.assertEqual(self.connection.deaths, ["nothing received from the broker for 12.0 seconds "
                                                  "(heartbeat 10 s)"])
        _advance(self.clock, 30)
        self.assertEqual(len(self.connection.deaths), 1)
        liveness.stop()

    def test_heartbeats_keep_it_alive(self) -> None:
        """
        When a frame arrives every 10 seconds (the longest gap a broker with
        a 10-second heartbeat leaves), then the connection is never judged
        dead.
        """
        self.connection.watch(LivenessPolicy(heartbeat=10))
        for _ in range(20):
            _advance(self.clock, 10)
            self.connection.receive()
        self.assertEqual(self.connection.deaths, [])

    def test_busy_connection(self) -> None:
        """
        When confirms are owed all the time but data keeps arriving (a busy
        healthy connection, confirms slower than the checks), then no sign
        of life is asked for and nothing is judged.
        """
        self.connection.watch(LivenessPolicy(heartbeat=10))
        self.connection.owed = True
        for _ in range(200):
            self.clock.advance(0.5)
            self.connection.receive()
        self.assertEqual((self.connection.probes, self.connection.deaths), ([], []))

    def test_owed_and_silent_asks(self) -> None:
        """
        When a confirm is owed for 3 seconds while nothing arrives, then a
        sign of life is asked for; when data arrives after it, then nothing
        is judged, and a new question comes only after another silent spell.
        """
        liveness = self.connection.watch(LivenessPolicy(heartbeat=10))
        self.connection.owed = True
        _advance(self.clock, 3)
        self.assertEqual(len(self.connection.probes), 1)
        self.assertIsNotNone(liveness.probing_since)
        self.clock.advance(0.5)
        self.connection.receive()
        _advance(self.clock, 1)
        self.assertIsNone(liveness.probing_since)
        self.assertEqual(self.connection.deaths, [])
        self.connection.receive()
        _advance(self.clock, 2)
        self.assertEqual(len(self.connection.probes), 1)
        _advance(self.clock, 2)
        self.assertEqual(len(self.connection.probes), 2)

    def test_owed_unanswered_is_fatal(self) -> None:
        """
        When a confirm is owed, nothing arrives, and the sign of life asked
        for does not come within 3 seconds, then the connection is judged
        dead about 6 seconds into the silence, well before the heartbeat
        rule.
        """
        self.connection.watch(LivenessPolicy(heartbeat=10))
        self.connection.owed = True
        _advance(self.clock, 5.5)
        self.assertEqual(self.connection.deaths, [])
        _advance(self.clock, 1)
        self.assertEqual(len(self.connection.deaths), 1)
        self.assertIn("while a publish confirm was owed", self.connection.deaths[0])
        self.assertIn("channel open within 3 seconds", self.connection.deaths[0])

    def test_owed_without_heartbeat(self) -> None:
        """
        When heartbeats are off, then silence alone is never fatal, but an
        owed answer still is.
        """
        self.connection.watch(LivenessPolicy(heartbeat=0))
        _advance(self.clock, 300)
        self.assertEqual(self.connection.deaths, [])
        self.connection.owed = True
        _advance(self.clock, 7)
        self.assertEqual(len(self.connection.deaths), 1)

    def test_late_check_judges_nothing(self) -> None:
        """
        When the reactor was blocked past the whole silence limit (the
        checks run late, data may be waiting unread), then that check judges
        nothing; data read right after keeps the connection alive.
        """
        self.connection.watch(LivenessPolicy(heartbeat=10))
        self.connection.owed = True
        self.clock.advance(30)
        self.assertEqual((self.connection.deaths, self.connection.probes), ([], []))
        self.connection.receive()
        _advance(self.clock, 2)
        self.assertEqual(self.connection.deaths, [])

    def test_probe_error_ignored(self) -> None:
        """
        When asking for a sign of life fails at once, then the liveness goes
        on and judges by the silence.
        """
        def failing() -> defer.Deferred:
            raise RuntimeError("no channel")

        self.connection.probe = failing  # type: ignore[method-assign]
        errors = self.flushLoggedErrors
        self.connection.watch(LivenessPolicy(heartbeat=10))
        self.connection.owed = True
        _advance(self.clock, 7)
        self.assertEqual(len(errors(RuntimeError)), 1)
        _advance(self.clock, 6)
        self.assertEqual(len(self.connection.deaths), 1)

    def test_stop(self) -> None:
        """
        When stopped, then nothing more is judged.
        """
        liveness = self.connection.watch(LivenessPolicy(heartbeat=10))
        liveness.stop()
        liveness.stop()
        _advance(self.clock, 60)
        self.assertEqual(self.connection.deaths, [])


class _Channel:
    closed = False

    def close(self) -> None:
        self.closed = True


class _Protocol:
    def __init__(self, clock: task.Clock) -> None:
        self.last_received = clock.seconds()
        self.lost: defer.Deferred = defer.Deferred()

    def when_lost(self) -> defer.Deferred:
        return self.lost


class _Publisher:
    def __init__(self) -> None:
        self.confirms: List[int] = []


class _Session:
    def __init__(self, clock: task.Clock) -> None:
        self.protocol = _Protocol(clock)
        self.publisher: Any = None
        self.channels: List[_Channel] = []

    def open_channel(self) -> defer.Deferred:
        channel = _Channel()
        self.channels.append(channel)
        return defer.succeed(channel)


class WatchLivenessTests(unittest.SynchronousTestCase):
    """
    L{watch_liveness} ties a L{Liveness} to a transport's session.
    """

    def test_outstanding_confirms_owed(self) -> None:
        """
        When the session's publisher has outstanding confirms and nothing
        arrives, then a channel is opened and closed as the sign of life;
        with no answer the session is reported dead.
        """
        clock = task.Clock()
        session = _Session(clock)
        session.publisher = _Publisher()
        session.publisher.confirms.append(1)
        dead: List[Any] = []
        watch_liveness(clock, LivenessPolicy(heartbeat=10), session, lambda s, why: dead.append((s, why)))
        _advance(clock, 3)
        self.assertEqual([channel.closed for channel in session.channels], [True])
        _advance(clock, 3.5)
        self.assertEqual([s for s, _ in dead], [session])

    def test_stops_when_lost(self) -> None:
        """
        When the connection is lost, then its liveness stops.
        """
        clock = task.Clock()
        session = _Session(clock)
        dead: List[Any] = []
        watch_liveness(clock, LivenessPolicy(heartbeat=10), session, lambda s, why: dead.append(why))
        session.protocol.lost.callback(None)
        _advance(clock, 60)
        self.assertEqual(dead, [])
        self.assertEqual(clock.getDelayedCalls(), [])


class SetupStepsTests(unittest.SynchronousTestCase):
    """
    L{SetupSteps} logs a step that waits, once.
    """

    def setUp(self) -> None:
        self.logged: List[str] = []

        def observe(event: dict) -> None:
            self.logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def test_waiting_step_logged_once(self) -> None:
        """
        When a step waits more than 2 seconds, then one line names who waits
        and for what; the next step that answers at once logs nothing.
        """
        clock = task.Clock()
        steps = SetupSteps(clock, "AMQP broker rabbit://u:***@h1:5672/ at h1:5672")
        d: defer.Deferred = defer.Deferred()
        self.assertIs(steps.step("the AMQP handshake", d), d)
        self.assertEqual(steps.current, "the AMQP handshake")
        clock.advance(1.9)
        self.assertEqual(self.logged, [])
        clock.advance(0.1)
        clock.advance(10)
        self.assertEqual(self.logged, ["AMQP broker rabbit://u:***@h1:5672/ at h1:5672: still waiting for the AMQP "
                                       "handshake after 2 seconds (is a broker node hung or cut off?)"])
        d.callback(None)
        self.assertIsNone(steps.current)
        steps.step("opening the publish channel", defer.succeed(None))
        clock.advance(5)
        self.assertEqual(len(self.logged), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_finish(self) -> None:
        """
        When the set-up ends while a step waits, then nothing is logged
        later.
        """
        clock = task.Clock()
        steps = SetupSteps(clock, "x")
        steps.step("y", defer.Deferred())
        steps.finish()
        clock.advance(5)
        self.assertEqual(self.logged, [])
