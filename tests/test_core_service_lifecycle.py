"""
Stateful property tests of L{novasvc.core.service.Service}'s lifecycle: hypothesis
drives one service on a L{task.Clock}, the memory transport and the memory
store through start, stop, kill, SIGHUP reset, calls and casts in flight,
broker loss and return (L{MemoryBroker.go_away}) and database loss and
return, in any order, and checks the lifecycle's invariants after every
step.

The settings are fixed (C{derandomize}, no example database), so CI runs
the same examples each time; the double-stop bug of issue #19 (a second
stop starting a second chain of stops) is found by them (with the fix
taken out: C{begin(started=True)}, C{send(call=False)}, C{kill()},
C{kill()}). Half the examples begin with a running service, so that the
broker's loss meets requests in flight: of about 320 examples, some 190
lose the broker while the service runs and about 35 deliveries come back
redelivered.
"""

from typing import Any, Dict, List, Optional, Set

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from novasvc.config import Config
from novasvc.db.memory import MemoryServiceStore
from novasvc.exceptions import LifecycleError
from novasvc.core.manager import Manager
from novasvc.rpc import wire
from novasvc.rpc.client import RPCClient
from novasvc.rpc.target import Target
from novasvc.core.service import Service
from novasvc._phase import Phase
from novasvc.transport.memory import MemoryBroker, MemoryTransport

#: Seconds a stop waits for the requests in flight.
GRACE = 10.0

#: The settings of the stateful tests in CI: reproducible, about 10 s.
STATEFUL = settings(max_examples=300, stateful_step_count=40, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class _SlowManager(Manager):
    """
    A manager whose C{work} runs until the test finishes it, and which
    records when C{cleanup_host} ran and what was still running then.
    """

    topic = "lifecycle"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Manager.__init__(self, *args, **kwargs)
        self.pending: List[defer.Deferred] = []
        self.finished: Set[int] = set()
        self.cleanups: List[Any] = []
        self.server: Any = None
        self.clock: Any = None

    def work(self, ctxt: Any, key: int) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        d.addCallback(lambda _: self.finished.add(key) or key)
        self.pending.append(d)
        return d

    def cleanup_host(self) -> None:
        self.cleanups.append((self.clock.seconds(), self.server.inflight))


class _FlakyStore(MemoryServiceStore):
    """
    A memory store that fails every call while C{down}.
    """

    down = False

    def _gate(self, name: str) -> Any:
        real = getattr(MemoryServiceStore, name)

        def gated(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                return defer.fail(ConnectionRefusedError("database down"))
            return real(self, *args, **kwargs)

        return gated

    def __init__(self) -> None:
        MemoryServiceStore.__init__(self)
        for name in ("start", "get_by_host_and_binary", "create", "update", "report_state", "destroy"):
            setattr(self, name, self._gate(name))


def _work_key(body: bytes, content_type: Optional[str]) -> Optional[int]:
    request = wire.decode_request(body, content_type)
    return request.args["key"] if request.method == "work" else None


class _RecordingBroker(MemoryBroker):
    """
    A memory broker that remembers each C{work} request it took: its key and
    when it expires (C{None}: never).
    """

    def __init__(self) -> None:
        MemoryBroker.__init__(self)
        self.taken: Dict[int, Optional[float]] = {}

    def publish(self, message: Any) -> int:
        taken = MemoryBroker.publish(self, message)
        if taken and message.exchange != "":
            key = _work_key(message.body, message.content_type)
            if key is not None:
                self.taken.setdefault(key, message.expires_at)
        return taken


class _Delivery:
    """
    A delivery handed to the service, which checks that it is acknowledged
    only once the request it carries has finished.
    """

    def __init__(self, delivery: Any, machine: "ServiceLifecycleMachine") -> None:
        self._delivery, self._machine = delivery, machine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._delivery, name)

    def ack(self) -> None:
        key = _work_key(self._delivery.body, self._delivery.content_type)
        stale = self._delivery.settled  # its connection was lost: the broker took it back
        if key is not None and not stale and key not in self._machine.manager.finished:
            self._machine.acked_unfinished.append(key)
        self._delivery.ack()


class _WatchedTransport(MemoryTransport):
    """
    The service's memory transport, handing it L{_Delivery} wrappers.
    """

    machine: Any = None

    def consume(self, queue: Any, on_message: Any, prefetch: int = 0) -> Any:
        machine = self.machine
        return MemoryTransport.consume(self, queue, lambda d: on_message(_Delivery(d, machine)), prefetch)


class ServiceLifecycleMachine(RuleBasedStateMachine):
    """
    One service, its clients on their own clock, and what was asked of it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = task.Clock()
        self.client_clock = task.Clock()
        self.broker = _RecordingBroker()
        self.store = _FlakyStore()
        self.transport = _WatchedTransport(broker=self.broker, clock=self.clock)
        self.transport.machine = self
        self.acked_unfinished: List[int] = []
        self.service = Service.create(
            manager=_SlowManager, config=Config(host="h1", periodic_fuzzy_delay=0, graceful_shutdown_timeout=GRACE,
                                                report_interval=10),
            store=self.store, transport=self.transport, clock=self.clock)
        self.manager: _SlowManager = self.service.manager
        self.manager.server, self.manager.clock = self.service.rpcserver, self.clock
        self.client = RPCClient(MemoryTransport(broker=self.broker, clock=self.client_clock),
                                Target(topic="lifecycle"), clock=self.client_clock, timeout=30)
        self.lifecycle: List[defer.Deferred] = []
        self.stops: List[defer.Deferred] = []
        self.stop_began: Optional[float] = None
        self.calls: List[defer.Deferred] = []
        self.next_key = 0

    def _keep(self, d: defer.Deferred, allowed: tuple = ()) -> defer.Deferred:
        fired: List[Any] = []

        def seen(result: Any) -> None:
            fired.append(result)
            if isinstance(result, Exception) or hasattr(result, "trap"):
                result.trap(LifecycleError, defer.CancelledError, *allowed)

        d.addBoth(seen)
        self.lifecycle.append(d)
        return d

    # -- rules --------------------------------------------------------------

    @initialize(started=st.booleans())
    def begin(self, started: bool) -> None:
        # Half the examples begin with a running service, so that more of
        # their steps meet requests in flight.
        if started:
            self.start()

    @rule()
    def start(self) -> None:
        self._keep(self.service.startService())

    @rule()
    def stop(self) -> None:
        if self.stop_began is None and self.service.running:
            self.stop_began = self.clock.seconds()
        self.stops.append(self._keep(self.service.stopService()))

    @rule()
    def kill(self) -> None:
        if self.stop_began is None and self.service.running:
            self.stop_began = self.clock.seconds()
        self.stops.append(self._keep(self.service.kill()))

    @rule()
    def reset(self) -> None:
        self.service.reset()

    @rule(call=st.booleans())
    def send(self, call: bool) -> None:
        key = self.next_key = self.next_key + 1
        if call:
            d = self.client.call({}, "work", key=key)
            d.addErrback(lambda f: None)  # a timeout or an error reply: the caller's business
            self.calls.append(d)
        else:
            self.client.cast({}, "work", key=key).addErrback(lambda f: None)

    @precondition(lambda self: self.manager.pending)
    @rule(index=st.integers(min_value=0, max_value=5))
    def finish(self, index: int) -> None:
        d = self.manager.pending.pop(index % len(self.manager.pending))
        d.callback(None)

    @rule(seconds=st.sampled_from([0.5, 3, 9, 10, 30]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.client_clock.advance(seconds)

    @rule(down=st.booleans())
    def database(self, down: bool) -> None:
        self.store.down = down

    @precondition(lambda self: self.broker.reachable)
    @rule()
    def broker_lost(self) -> None:
        self.broker.go_away("the broker restarts")

    @precondition(lambda self: not self.broker.reachable)
    @rule()
    def broker_back(self) -> None:
        self.broker.come_back()

    # -- invariants ------------------------------------------------------

    @invariant()
    def cleanup_once_after_the_drain(self) -> None:
        cleanups = self.manager.cleanups
        assert len(cleanups) <= 1, f"cleanup_host ran {len(cleanups)} times"
        if cleanups:
            at, inflight = cleanups[0]
            assert self.stop_began is not None
            assert inflight == 0 or at - self.stop_began >= GRACE, (
                f"cleanup_host ran {at - self.stop_began} s into the stop with {inflight} request(s) running")

    @invariant()
    def nothing_left_once_stopped(self) -> None:
        if self.service.running or not self.stops or not self.stops[-1].called:
            return  # running, or the last stop asked for has not fired
        assert self.clock.getDelayedCalls() == [], self.clock.getDelayedCalls()
        assert not self.transport._consumers, f"consumers left: {self.transport._consumers}"
        for name, state in self.broker.queues.items():
            mine = [c for c in state.consumers if c.transport is self.transport]
            assert not mine, f"{name} still has a consumer of the stopped service"

    @invariant()
    def connected_while_the_broker_is_there(self) -> None:
        expected = self.broker.reachable and self.transport.phase is Phase.RUNNING
        assert self.transport.is_connected is expected, (self.transport.is_connected, expected)

    @invariant()
    def never_acknowledged_unfinished(self) -> None:
        assert not self.acked_unfinished, f"requests acknowledged unfinished: {self.acked_unfinished}"

    @invariant()
    def every_request_accounted_for(self) -> None:
        # Each request the broker took has finished, waits in a queue, is
        # held unsettled by a consumer, or expired in its queue.
        here = set(self.manager.finished)
        for state in self.broker.queues.values():
            here.update(_work_key(m.body, m.content_type) for m in state.messages)
            for consumer in state.consumers:
                here.update(_work_key(d.body, d.content_type) for d in consumer.unacked)
        for consumer in self.transport._consumers:
            here.update(_work_key(d.body, d.content_type) for d in consumer.unacked)
        now = self.clock.seconds()
        lost = {key for key, expires in self.broker.taken.items()
                if key not in here and not (expires is not None and expires <= now)}
        assert not lost, f"requests neither finished, queued nor in flight: {sorted(lost)}"

    def teardown(self) -> None:
        self.store.down = False
        if not self.broker.reachable:
            self.broker.come_back()
        self.stop()
        for d in list(self.manager.pending):
            d.callback(None)
        self.manager.pending.clear()
        self.clock.advance(GRACE * 10)
        self.client_clock.advance(GRACE * 10)
        assert all(d.called for d in self.lifecycle), "a start or stop never fired"
        assert all(d.called for d in self.calls), "a call never fired"
        self.nothing_left_once_stopped()
        self.cleanup_once_after_the_drain()
        self.never_acknowledged_unfinished()
        # What the broker took is done, or back in its queue (or expired).
        self.every_request_accounted_for()


class ServiceLifecycleTests(SynchronousTestCase):
    """
    The service's lifecycle under random sequences of events.
    """

    def test_lifecycle(self) -> None:
        """
        When a service goes through any sequence of starts, stops, kills,
        resets, calls, casts, clock steps, broker and database outages,
        then after each step cleanup_host has run at most once and only
        after the drain, once a stop fired no timer or consumer of the
        service is left, its transport is connected exactly while it runs
        and the broker is there, no request was acknowledged unfinished and
        each one the broker took is finished, queued, in flight or expired;
        at the end every start, stop and call fired.
        """
        STATEFUL(ServiceLifecycleMachine).TestCase("runTest").runTest()
