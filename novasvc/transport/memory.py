# -*- test-case-name: tests.test_transport_memory -*-
"""
An in-process broker and the L{ITransport} twin that talks to it.

L{MemoryBroker} models the part of AMQP 0-9-1 that novasvc uses: topic, fanout
and direct exchanges (the default exchange C{''} routes by queue name), queues
with bindings, round-robin consumers with a prefetch limit, manual
acknowledgement, requeue of unsettled deliveries when a consumer's transport
stops, per-message expiration and mandatory publishes. It is single-threaded
and runs on the reactor thread; deliveries happen synchronously but never
re-entrantly (work is queued while a delivery is being handled), so tests can
use it with a L{twisted.internet.task.Clock} and without spinning a reactor.

Transports made from the same C{memory://<name>} URL share one broker per
process (L{get_broker}).
"""

import itertools
from collections import deque
from typing import Callable, Deque, Dict, List, Optional

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from novasvc._reactor import global_reactor_if_none
from novasvc.exceptions import TransportError, UnroutableError
from novasvc.interfaces import IConsumer, IDelivery, ITransport
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
    """

    def __init__(self) -> None:
        self.exchanges: Dict[str, Exchange] = {}
        self.queues: Dict[str, _QueueState] = {}
        self._work: Deque[Callable[[], None]] = deque()
        self._running = False

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
        if self.settled:
            return False
        self.settled = True
        self.consumer.unacked.pop(self, None)
        return True


@implementer(IConsumer)
class _MemoryConsumer:
    def __init__(self, transport: "MemoryTransport", queue: Queue,
                 on_message: Callable[[IDelivery], None], prefetch: int) -> None:
        self.transport = transport
        self.broker = transport.broker
        self.queue = queue
        self.on_message = on_message
        self.prefetch = prefetch
        self.unacked: Dict[_MemoryDelivery, None] = {}
        self.active = True
        self.declared = True
        # As the AMQP consumer's: set by cancel() or the transport's stop().
        self.cancelled = False
        # As the AMQP consumer's: called once when it stops for good.
        self.stopped: Optional[Callable[[], None]] = None
        self._waiters: List[defer.Deferred] = []

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
        if not self.active:
            return defer.fail(defer.CancelledError(f"the consumer of queue {self.queue.name!r} was cancelled"))
        d: defer.Deferred = defer.Deferred(lambda d: self._waiters.remove(d) if d in self._waiters else None)
        self._waiters.append(d)
        return d

    def cancel(self) -> defer.Deferred:
        # As basic.cancel: no new deliveries, but the unsettled ones stay
        # with the channel and go back to the queue when it closes.
        self._detach()
        if not self.unacked:
            self.transport._consumers.discard(self)
        return defer.succeed(None)

    def _detach(self) -> None:
        self.cancelled = True
        if not self.active:
            return
        self.active = False
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(defer.CancelledError(f"the consumer of queue {self.queue.name!r} was cancelled"))
        stopped, self.stopped = self.stopped, None
        if stopped is not None:
            stopped()
        state = self.broker.queues.get(self.queue.name)
        if state is None:
            return
        if self in state.consumers:
            state.consumers.remove(self)
        if self.queue.auto_delete and not state.consumers:
            self.broker.delete_queue(self.queue.name)

    def close(self) -> None:
        """
        The transport went away: unsettled deliveries return to the queue.
        """
        self._detach()
        for delivery in reversed(list(self.unacked)):
            delivery.settled = True
            self.broker.requeue(self.queue.name, delivery.message)
        self.unacked.clear()


@implementer(ITransport)
class MemoryTransport:
    """
    The in-process L{ITransport}. Publishes are "confirmed" at once.

    @param url: a C{memory://<name>} URL (default broker C{default}).
    @param broker: use this broker instead of the process-wide one for the URL.
    @param clock: an C{IReactorTime} for message expiration (default: the
        global reactor).
    """

    def __init__(self, url: Optional[TransportURL] = None, *, broker: Optional[MemoryBroker] = None,
                 clock=None) -> None:
        self.url = url or TransportURL.parse("memory://")
        self.broker = broker or get_broker(self.url.hosts[0][0])
        clock = global_reactor_if_none(clock)
        self.clock = clock
        self._consumers: set = set()
        self._stopped = False
        self._ids = itertools.count(1)

    @property
    def is_connected(self) -> bool:
        """
        C{True} until L{stop} (and again after L{start}): the in-process
        broker is always reachable.
        """
        return not self._stopped

    def start(self) -> None:
        self._stopped = False

    def stop(self) -> defer.Deferred:
        self._stopped = True
        for consumer in list(self._consumers):
            consumer.close()
            if consumer.queue.exclusive:
                self.broker.delete_queue(consumer.queue.name)
        self._consumers.clear()
        return defer.succeed(None)

    def publish(self, exchange: Exchange, routing_key: str, body: bytes,
                content_type: Optional[str] = "application/json",
                expiration: Optional[int] = None, mandatory: bool = False) -> defer.Deferred:
        if self._stopped:
            return defer.fail(TransportError(f"{self.url}: transport is stopped"))
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
        consumer = _MemoryConsumer(self, queue, on_message, prefetch)
        self._consumers.add(consumer)
        try:
            state = self.broker.declare_queue(queue)
        except TransportError as e:
            # As the AMQP transport: a refused declare is logged, never
            # raised; the consumer stays inactive (no retry here).
            _log.error("Cannot consume queue {queue!r}: {error}", queue=queue.name, error=str(e))
            consumer.declared = False
            return consumer
        state.consumers.append(consumer)
        self.broker.kick(queue.name)
        return consumer

    def declare_queue(self, queue: Queue) -> defer.Deferred:
        """
        Declare C{queue} (and its bindings) on the broker; see
        L{ITransport.declare_queue}. The in-process broker never loses it,
        so there is nothing to declare again.
        """
        if self._stopped:
            return defer.fail(TransportError(f"{self.url}: transport is stopped"))
        try:
            if queue.dead_letter is not None:
                self.broker.declare_queue(queue.dead_letter)
            self.broker.declare_queue(queue)
        except TransportError as e:
            return defer.fail(e)
        return defer.succeed(None)

    def delete_queue(self, name: str) -> defer.Deferred:
        self.broker.delete_queue(name)
        return defer.succeed(None)
