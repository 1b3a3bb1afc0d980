# -*- test-case-name: tests.test_transport_memory -*-
"""
An in-process broker and the L{ITransport} twin that talks to it.

L{MemoryBroker} models the part of AMQP 0-9-1 that novasvc uses: topic, fanout
and direct exchanges (the default exchange C{''} routes by queue name), queues
with bindings, round-robin consumers with a prefetch limit, manual
acknowledgement, requeue of unsettled deliveries when a consumer's transport
stops or loses its connection, per-message expiration, mandatory publishes,
and outages (L{MemoryBroker.go_away}, L{MemoryBroker.come_back}) that its
transports live through as the AMQP ones do. It is single-threaded
and runs on the reactor thread; deliveries happen synchronously but never
re-entrantly (work is queued while a delivery is being handled), so tests can
use it with a L{twisted.internet.task.Clock} and without spinning a reactor.

Transports made from the same C{memory://<name>} URL share one broker per
process (L{get_broker}).
"""

import itertools
import weakref
from collections import deque
from typing import Callable, Deque, Dict, List, Optional

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from novasvc._phase import Phase
from novasvc._reactor import global_reactor_if_none
from novasvc.exceptions import TransportError, UnroutableError
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.metrics import Recorder, get_recorder
from novasvc.transport._held import HeldPublishes
from novasvc.transport.topology import Exchange, Queue
from novasvc.transport.url import TransportURL

_log = Logger()
_brokers: Dict[str, "MemoryBroker"] = {}


def get_broker(name: str = "default") -> "MemoryBroker":
    """
    @return: the process-wide L{MemoryBroker} called C{name}, made on first use.
    """
    broker = _brokers.get(name)
    if broker is None:
        broker = _brokers[name] = MemoryBroker()
    return broker


@attrs.define(eq=False)
class _Message:
    exchange: str
    routing_key: str
    body: bytes
    content_type: Optional[str]
    expires_at: Optional[float]
    redelivered: bool = False


@attrs.define(eq=False)
class _QueueState:
    spec: Queue
    messages: Deque[_Message] = attrs.Factory(deque)
    consumers: List["_MemoryConsumer"] = attrs.Factory(list)
    bindings: set = attrs.Factory(set)
    next_consumer: int = 0


class MemoryBroker:
    """
    An in-process message broker.

    @ivar exchanges: declared exchanges by name.
    @ivar queues: declared queues by name.
    @ivar reachable: C{False} between L{go_away} and L{come_back}.
    """

    def __init__(self) -> None:
        self.exchanges: Dict[str, Exchange] = {}
        self.queues: Dict[str, _QueueState] = {}
        self.reachable = True
        # Running transports, in the order they (re)started, so that an
        # outage replays the same way each time.
        self._transports: "weakref.WeakValueDictionary[int, MemoryTransport]" = weakref.WeakValueDictionary()
        self._serials = itertools.count()
        self._work: Deque[Callable[[], None]] = deque()
        self._running = False

    # -- outages --------------------------------------------------------

    def go_away(self, why: str = "the broker is away") -> None:
        """
        Become unreachable, as a broker whose connections all dropped and
        which refuses new ones: every running transport of this broker
        loses its connection (see L{MemoryTransport}). The broker keeps its
        exchanges, its queues and their ready messages, except what
        RabbitMQ drops with a connection: exclusive queues, and auto-delete
        queues whose last consumer was on it.

        @param why: what the transports' errors say meanwhile.
        """
        self.reachable = False
        for transport in list(self._transports.values()):
            transport._lose(why)

    def come_back(self) -> None:
        """
        Become reachable again: every running transport of this broker
        connects at once (its queues declared again, its consumers back,
        then the publishes that waited sent).
        """
        self.reachable = True
        for transport in list(self._transports.values()):
            if self.reachable and transport.phase is Phase.RUNNING and not transport.is_connected:
                transport._connect()

    # -- topology -------------------------------------------------------

    def declare_exchange(self, exchange: Exchange) -> None:
        """
        Declare C{exchange}; declaring it again with other flags is an error,
        as RabbitMQ's C{PRECONDITION_FAILED}.

        @raise TransportError: on a flag mismatch.
        """
        if exchange.is_default:
            return
        known = self.exchanges.get(exchange.name)
        if known is not None and known != exchange:
            raise TransportError(f"inequivalent exchange {exchange.name!r}: declared as {known}, now {exchange}")
        self.exchanges[exchange.name] = exchange

    def declare_queue(self, queue: Queue) -> _QueueState:
        """
        Declare C{queue} and its bindings (and their exchanges).

        @raise TransportError: on a flag mismatch.
        """
        state = self.queues.get(queue.name)
        if state is None:
            state = self.queues[queue.name] = _QueueState(queue)
        elif (state.spec.durable, state.spec.auto_delete) != (queue.durable, queue.auto_delete):
            raise TransportError(f"inequivalent queue {queue.name!r}: declared as {state.spec}, now {queue}")
        for binding in queue.bindings:
            self.declare_exchange(binding.exchange)
            state.bindings.add((binding.exchange.name, binding.routing_key))
        return state

    def delete_queue(self, name: str) -> None:
        """
        Delete a queue and its messages; consumers on it are dropped.
        """
        state = self.queues.pop(name, None)
        if state is not None:
            for consumer in state.consumers:
                consumer.active = False
            state.consumers.clear()

    # -- routing --------------------------------------------------------

    def route(self, exchange: str, routing_key: str) -> List[_QueueState]:
        """
        @return: the queues a message published to C{exchange} with
            C{routing_key} reaches. Topic exchanges match keys exactly or with
            C{*}/C{#} wildcards; fanout ignores the key.
        """
        if exchange == "":
            state = self.queues.get(routing_key)
            return [state] if state is not None else []
        kind = self.exchanges[exchange].type
        found = []
        for state in self.queues.values():
            for bound_exchange, key in state.bindings:
                if bound_exchange != exchange:
                    continue
                if kind == "fanout" or _topic_match(key, routing_key):
                    found.append(state)
                    break
        return found

    def publish(self, message: _Message) -> int:
        """
        Route C{message} to every matching queue and deliver what can be.

        @return: how many queues took it.
        """
        targets = self.route(message.exchange, message.routing_key)
        for state in targets:
            state.messages.append(attrs.evolve(message))
            self._schedule(state)
        return len(targets)

    # -- delivery -------------------------------------------------------

    def _schedule(self, state: _QueueState) -> None:
        self._work.append(lambda: self._pump(state))
        if self._running:
            return
        self._running = True
        try:
            while self._work:
                self._work.popleft()()
        finally:
            self._running = False

    def _pump(self, state: _QueueState) -> None:
        while state.messages:
            ready = [c for c in state.consumers if c.can_take()]
            if not ready:
                return
            consumer = ready[state.next_consumer % len(ready)]
            state.next_consumer += 1
            message = state.messages.popleft()
            if message.expires_at is not None and consumer.transport.clock.seconds() >= message.expires_at:
                continue
            consumer.deliver(message)

    def requeue(self, queue_name: str, message: _Message) -> None:
        """
        Put C{message} back at the head of its queue, marked redelivered.
        """
        state = self.queues.get(queue_name)
        if state is None:
            return
        message.redelivered = True
        state.messages.appendleft(message)
        self._schedule(state)

    def kick(self, queue_name: str) -> None:
        """
        Deliver whatever a queue can deliver now (after an ack frees prefetch).
        """
        state = self.queues.get(queue_name)
        if state is not None:
            self._schedule(state)


def _topic_match(pattern: str, key: str) -> bool:
    if "*" not in pattern and "#" not in pattern:
        return pattern == key
    return _match_words(pattern.split("."), key.split("."))


def _match_words(pattern: List[str], words: List[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match_words(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match_words(rest, words[1:])


@implementer(IDelivery)
@attrs.define(eq=False)
class _MemoryDelivery:
    consumer: "_MemoryConsumer"
    message: _Message
    settled: bool = False

    @property
    def body(self) -> bytes:
        return self.message.body

    @property
    def content_type(self) -> Optional[str]:
        return self.message.content_type

    @property
    def exchange(self) -> str:
        return self.message.exchange

    @property
    def routing_key(self) -> str:
        return self.message.routing_key

    @property
    def redelivered(self) -> bool:
        return self.message.redelivered

    def ack(self) -> None:
        if self._settle():
            self.consumer.broker.kick(self.consumer.queue.name)

    def reject(self, requeue: bool) -> None:
        if self._settle():
            if requeue:
                self.consumer.broker.requeue(self.consumer.queue.name, self.message)
            else:
                self.consumer.broker.kick(self.consumer.queue.name)

    def _settle(self) -> bool:
        # A delivery of a connection that was lost (or of a stopped
        # transport) is settled already: its message went back to the queue.
        if self.settled:
            return False
        self.settled = True
        self.consumer.unacked.pop(self, None)
        return True


@implementer(IConsumer)
class _MemoryConsumer:
    """
    One C{consume()}, living through the transport's connections as an
    AMQP consumer does: attached to its queue on each connection, detached
    (its unsettled deliveries requeued) when the connection is lost, gone
    for good once cancelled or its transport stopped.
    """

    def __init__(self, transport: "MemoryTransport", queue: Queue,
                 on_message: Callable[[IDelivery], None], prefetch: int) -> None:
        self.transport = transport
        self.broker = transport.broker
        self.queue = queue
        self.on_message = on_message
        self.prefetch = prefetch
        self.unacked: Dict[_MemoryDelivery, None] = {}
        # On its queue's consumer list now (this connection).
        self.active = False
        # Has been on its queue once (whenActive has fired).
        self.declared = False
        # As the AMQP consumer's: set by cancel() or the transport's stop().
        self.cancelled = False
        # As the AMQP consumer's: called once when it stops for good.
        self.stopped: Optional[Callable[[], None]] = None
        self._waiters: List[defer.Deferred] = []

    def __repr__(self) -> str:
        return f"<memory consumer of queue {self.queue.name!r}>"

    def can_take(self) -> bool:
        return self.active and (not self.prefetch or len(self.unacked) < self.prefetch)

    def deliver(self, message: _Message) -> None:
        delivery = _MemoryDelivery(self, message)
        self.unacked[delivery] = None
        try:
            self.on_message(delivery)
        except Exception:
            _log.failure("Consumer of {queue} raised; message rejected", queue=self.queue.name)
            delivery.reject(requeue=False)

    def whenActive(self) -> defer.Deferred:
        if self.declared:
            return defer.succeed(None)
        if self.cancelled:
            return defer.fail(defer.CancelledError(f"the consumer of queue {self.queue.name!r} was cancelled"))
        d: defer.Deferred = defer.Deferred(lambda d: self._waiters.remove(d) if d in self._waiters else None)
        self._waiters.append(d)
        return d

    def cancel(self) -> defer.Deferred:
        # As basic.cancel: no new deliveries, but the unsettled ones stay
        # with the channel and go back to the queue when it closes.
        self.shutdown()
        self._leave_queue()
        if not self.unacked:
            self.transport._consumers.pop(self, None)
        return defer.succeed(None)

    # -- driven by the transport ------------------------------------------

    def attach(self) -> None:
        """
        A connection is up: declare the queue and consume it. A declare the
        broker refuses is logged, never raised; the consumer then stays
        inactive until the next connection (the AMQP consumer retries with
        backoff instead).
        """
        if self.cancelled or self.active:
            return
        try:
            state = self.broker.declare_queue(self.queue)
        except TransportError as e:
            _log.error("Cannot consume queue {queue!r}: {error}", queue=self.queue.name, error=str(e))
            return
        self.active = True
        state.consumers.append(self)
        if not self.declared:
            self.declared = True
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)
        self.broker.kick(self.queue.name)

    def detach(self) -> None:
        """
        The connection is gone (lost, or the transport stopped): leave the
        queue and give the unsettled deliveries back to it, marked
        redelivered; settling them later does nothing.
        """
        self._leave_queue()
        for delivery in reversed(list(self.unacked)):
            delivery.settled = True
            self.broker.requeue(self.queue.name, delivery.message)
        self.unacked.clear()
        if self.queue.exclusive:
            # RabbitMQ deletes an exclusive queue with its connection.
            self.broker.delete_queue(self.queue.name)

    def shutdown(self) -> None:
        """
        Stop for good: fail the C{whenActive} waiters and call L{stopped}.
        """
        if self.cancelled:
            return
        self.cancelled = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(defer.CancelledError(f"the consumer of queue {self.queue.name!r} was cancelled"))
        stopped, self.stopped = self.stopped, None
        if stopped is not None:
            stopped()

    def _leave_queue(self) -> None:
        if not self.active:
            return
        self.active = False
        state = self.broker.queues.get(self.queue.name)
        if state is None:
            return
        if self in state.consumers:
            state.consumers.remove(self)
        if self.queue.auto_delete and not state.consumers:
            self.broker.delete_queue(self.queue.name)


@implementer(ITransport)
class MemoryTransport:
    """
    The in-process L{ITransport}. Publishes are "confirmed" at once.

    It keeps the AMQP transports' promises about the broker going away
    (L{MemoryBroker.go_away}) and coming back (L{MemoryBroker.come_back}):
    while away, C{is_connected} is C{False}, the unsettled deliveries are
    back in their queues (marked redelivered; settling them does nothing),
    exclusive queues and auto-delete queues left without consumers are
    gone, publishes and C{declare_queue} wait up to C{publish_wait} seconds
    (then fail with L{novasvc.exceptions.DisconnectedError}; at once when
    it is 0), a consumer made meanwhile is not active yet. On the broker's return the transport
    connects at once (no backoff: nothing to wait for in process): it
    declares again the queues given to L{declare_queue}, puts its
    consumers back on their queues, then sends the publishes that waited,
    in order, and counts one broker reconnection
    (L{novasvc.metrics.Recorder.broker_reconnect}).

    Its lifecycle, the phases of L{novasvc._phase} without the two
    transitional ones (nothing here takes time)::

        phase     start()                        stop()
        --------  -----------------------------  ---------------------------------
        RUNNING   done at once                   -> STOPPED: consumers cancelled,
                                                 unsettled deliveries requeued,
                                                 waiting publishes and
                                                 declarations failed
                                                 (L{TransportError})
        STOPPED   -> RUNNING (connected if the   done at once
                  broker is there)

    A transport is RUNNING from the moment it is made: an in-process broker
    needs no connecting, so C{start()} matters only after a C{stop()}. Its
    only timers are those of the publishes and declarations waiting for the
    broker, all cancelled by C{stop()}.

    @ivar phase: L{Phase.RUNNING} or L{Phase.STOPPED}.
    """

    def __init__(self, url: Optional[TransportURL] = None, *, broker: Optional[MemoryBroker] = None,
                 clock=None, publish_wait: float = 30.0, metrics: Optional[Recorder] = None) -> None:
        """
        @param url: a C{memory://<name>} URL (default broker C{default}).
        @param broker: use this broker instead of the process-wide one for
            the URL.
        @param clock: an C{IReactorTime} for message expiration and the
            waits of L{publish} and L{declare_queue} (default: the global
            reactor).
        @param publish_wait: how long, in B{seconds}, a publish or a
            declaration made while the broker is away waits for it before
            failing with L{novasvc.exceptions.DisconnectedError}; 0 fails
            at once (as the AMQP transports' option of that name).
        @param metrics: where to count reconnections; the process's
            L{novasvc.metrics.get_recorder} when C{None}.
        """
        self.url = url or TransportURL.parse("memory://")
        self.broker = broker or get_broker(self.url.hosts[0][0])
        clock = global_reactor_if_none(clock)
        self.clock = clock
        self.phase = Phase.RUNNING
        self._metrics = metrics
        # Insertion-ordered (a dict used as a set): consumers are put back
        # on their queues in the order they were made.
        self._consumers: Dict[_MemoryConsumer, None] = {}
        self._serial = -1
        self._declared: Dict[str, Queue] = {}
        self._connected = False
        self._connected_before = False
        self._problem = "the broker is away"
        self._held = HeldPublishes(lambda: self.clock, publish_wait, str(self.url), lambda: self._problem)
        self._held_declarations = HeldPublishes(lambda: self.clock, publish_wait, str(self.url),
                                                lambda: self._problem)
        self._ids = itertools.count(1)
        self._join_broker()
        if self.broker.reachable:
            self._connect()

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.url} {self.phase.value}>"

    @property
    def is_connected(self) -> bool:
        """
        C{True} while running and its broker is there; C{False} while the
        broker is away (L{MemoryBroker.go_away}) and once stopped.
        """
        return self._connected

    def start(self) -> None:
        """
        Run again after a L{stop} (a no-op while running); connected at
        once unless the broker is away.
        """
        if self.phase is Phase.RUNNING:
            return
        self.phase = Phase.RUNNING
        self._connected_before = False
        self._join_broker()
        if self.broker.reachable:
            self._connect()

    def stop(self) -> defer.Deferred:
        """
        Cancel the consumers (their unsettled deliveries go back to their
        queues, their exclusive queues are deleted) and fail what waits for
        the broker with L{TransportError}. Idempotent.

        @return: a C{Deferred} that has fired with C{None}.
        """
        if self.phase is Phase.STOPPED:
            return defer.succeed(None)
        self.phase = Phase.STOPPED
        self._connected = False
        self.broker._transports.pop(self._serial, None)
        stopped = TransportError(f"{self.url}: transport is stopped")
        self._held.fail(stopped)
        self._held_declarations.fail(stopped)
        self._declared.clear()
        consumers, self._consumers = list(self._consumers), {}
        for consumer in consumers:
            consumer.shutdown()
            consumer.detach()
        return defer.succeed(None)

    # -- the broker's comings and goings ----------------------------------

    def _join_broker(self) -> None:
        self._serial = next(self.broker._serials)
        self.broker._transports[self._serial] = self

    def _connect(self) -> None:
        self._connected = True
        for queue in list(self._declared.values()):
            try:
                self._declare_now(queue)
            except TransportError as e:
                _log.warn("{url}: cannot declare queue {queue!r} again: {error}", url=str(self.url),
                          queue=queue.name, error=str(e))
        for consumer in list(self._consumers):
            if not self._connected:
                return  # the broker went away again meanwhile
            consumer.attach()
        if self._connected_before:
            (self._metrics or get_recorder()).broker_reconnect()
        self._connected_before = True
        self._held_declarations.send(self.declare_queue)
        self._held.send(self.publish)

    def _lose(self, problem: str) -> None:
        if not self._connected:
            return
        self._connected = False
        self._problem = problem
        for consumer in list(self._consumers):
            consumer.detach()
            if consumer.cancelled:
                self._consumers.pop(consumer, None)

    # -- ITransport -------------------------------------------------------

    def publish(self, exchange: Exchange, routing_key: str, body: bytes,
                content_type: Optional[str] = "application/json",
                expiration: Optional[int] = None, mandatory: bool = False) -> defer.Deferred:
        if self.phase is Phase.STOPPED:
            return defer.fail(TransportError(f"{self.url}: transport is stopped"))
        if not self._connected:
            return self._held.hold((exchange, routing_key, body, content_type, expiration, mandatory))
        try:
            self.broker.declare_exchange(exchange)
        except TransportError as e:
            return defer.fail(e)
        expires_at = None if expiration is None else self.clock.seconds() + expiration / 1000.0
        taken = self.broker.publish(_Message(exchange.name, routing_key, body, content_type, expires_at))
        if mandatory and not taken:
            return defer.fail(UnroutableError(f"no queue for exchange {exchange.name!r} key {routing_key!r}"))
        return defer.succeed(None)

    def consume(self, queue: Queue, on_message: Callable[[IDelivery], None], prefetch: int = 0) -> IConsumer:
        """
        See L{ITransport.consume}. As the AMQP transport: a declare the
        broker refuses is logged, never raised, and the consumer stays
        inactive; while the broker is away the consumer waits for it; once
        the transport is stopped the consumer is cancelled at once (its
        C{whenActive} fails with C{CancelledError}).
        """
        consumer = _MemoryConsumer(self, queue, on_message, prefetch)
        if self.phase is Phase.STOPPED:
            consumer.shutdown()
            return consumer
        self._consumers[consumer] = None
        if self._connected:
            consumer.attach()
        return consumer

    def declare_queue(self, queue: Queue) -> defer.Deferred:
        """
        Declare C{queue} (and its bindings) on the broker, now or once it
        is back (waiting up to C{publish_wait} seconds), and again on each
        return of the broker until L{stop} or L{delete_queue}; see
        L{ITransport.declare_queue}.
        """
        if self.phase is Phase.STOPPED:
            return defer.fail(TransportError(f"{self.url}: transport is stopped"))
        if not self._connected:
            return self._held_declarations.hold((queue,))
        try:
            self._declare_now(queue)
        except TransportError as e:
            return defer.fail(e)
        self._declared[queue.name] = queue
        return defer.succeed(None)

    def _declare_now(self, queue: Queue) -> None:
        if queue.dead_letter is not None:
            self.broker.declare_queue(queue.dead_letter)
        self.broker.declare_queue(queue)

    def delete_queue(self, name: str) -> defer.Deferred:
        """
        Delete queue C{name}; see L{ITransport.delete_queue}. This
        transport's consumers of it are cancelled first, and it is no longer
        declared on the broker's return; while the broker is away, nothing
        else happens (as the AMQP transports).
        """
        self._declared.pop(name, None)
        for consumer in [c for c in self._consumers if c.queue.name == name]:
            consumer.cancel()
        if self._connected:
            self.broker.delete_queue(name)
        return defer.succeed(None)
