# -*- test-case-name: tests.test_notify_listener,tests.test_notify_batch -*-
"""
What both notification listeners share (L{novasvc.notify.listener}): the
queues (L{listener_queues}), the consumers and their lifecycle, decoding,
de-duplication, settling and counting (L{ListenerBase}).
"""

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Set, Tuple, Union

from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from novasvc._reactor import global_reactor_if_none
from novasvc.interfaces import IConsumer, IDelivery, ITransport
from novasvc.metrics import Recorder, get_recorder
from novasvc.notify._dispatch import ERROR, HANDLED, NotificationDispatcher
from novasvc.notify.message import Notification, decode_notification, routing_key
from novasvc._text import ClippedTraceback, clip
from novasvc.rpc.errors import InvalidTarget, MalformedMessage
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import is_noop
from novasvc.transport.consuming import Drain, gather, settle
from novasvc.transport.topology import Binding, Exchange, Queue, QuorumQueues, topic_queue

__all__ = ["ListenerBase", "listener_queues", "DUPLICATE", "MALFORMED"]

#: The outcome (and metrics label) of a notification acknowledged because
#: its C{_unique_id} was seen, and of one rejected as malformed.
DUPLICATE = "duplicate"
MALFORMED = "malformed"
#: The event type and priority label of a malformed notification.
_UNKNOWN = "<unknown>"
#: A C{_unique_id} longer than this is not remembered (a client cannot
#: make the window hold more than this many characters an id).
_ID_LIMIT = 64


def listener_queues(targets: Sequence[Target], priorities: Sequence[str], pool: Optional[str] = None,
                    control_exchange: str = "openstack", *, durable_queues: bool = False,
                    quorum: Optional[QuorumQueues] = None, pool_expires: Optional[float] = None) -> List[Queue]:
    """
    The queues a listener consumes, as oslo.messaging declares them (see
    L{novasvc.notify.listener}).

    @param targets: each needs a C{topic}; its C{exchange} overrides
        C{control_exchange}.
    @param priorities: the priorities listened to (lower case).
    @param pool: the pool's name, or C{None}.
    @param control_exchange: the topic exchange of targets without one.
    @param durable_queues: oslo's C{amqp_durable_queues}: the exchange and
        queues survive a broker restart (as the notifier must declare them).
    @param quorum: oslo's C{rabbit_quorum_queue} (see
        L{novasvc.transport.topology.topic_queue}).
    @param pool_expires: with a C{pool}, make its queue private to the
        listener's life: auto-deleted once its consumer goes, and deleted
        by the broker after this many B{seconds} unused (C{x-expires}) if
        it never had one. C{None}: an ordinary pool queue.
    @return: one L{Queue} per C{<topic>.<priority>} (bindings of the same
        name merged), or the single pool queue.
    @raise InvalidTarget: for a target without a topic.
    @raise ValueError: when there is no target or no priority.
    """
    if not targets or not priorities:
        raise ValueError("a notification listener needs at least one target and one priority")
    durable = durable_queues or quorum is not None
    bindings: Dict[str, List[Binding]] = {}
    for target in targets:
        if not target.topic:
            raise InvalidTarget("a notification listener needs targets with a topic", target)
        exchange = Exchange(target.exchange or control_exchange, "topic", durable=durable, auto_delete=False)
        for priority in priorities:
            key = routing_key(target.topic, priority)
            found = bindings.setdefault(key, [])
            binding = Binding(exchange, key)
            if binding not in found:
                found.append(binding)
    if pool is None:
        return [_topic_queue(name, found, durable_queues, quorum) for name, found in bindings.items()]
    every = [binding for found in bindings.values() for binding in found]
    if pool_expires is not None:
        return [Queue(pool, auto_delete=True, arguments={"x-expires": int(pool_expires * 1000)}, bindings=every)]
    return [_topic_queue(pool, every, durable_queues, quorum)]


def _topic_queue(name: str, bindings: List[Binding], durable: bool, quorum: Optional[QuorumQueues]) -> Queue:
    queue = topic_queue(name, bindings[0], durable, quorum)
    if len(bindings) == 1:
        return queue
    return Queue(queue.name, durable=queue.durable, auto_delete=queue.auto_delete, arguments=queue.arguments,
                 bindings=bindings, dead_letter=queue.dead_letter)


class ListenerBase:
    """
    What both listeners share: the queues, the consumers and their
    lifecycle, decoding, de-duplication and settling. A subclass handles
    each delivery (L{_on_delivery}) and gives back what it holds
    undispatched when stopped (L{_give_back}).

    @ivar targets: the L{Target}s listened to.
    @ivar pool: the pool's name, or C{None}.
    @ivar queues: the L{Queue}s consumed (see L{listener_queues}).
    @ivar dispatcher: the L{NotificationDispatcher}.
    @ivar allow_requeue: whether a C{REQUEUE} or an endpoint error gives
        the notification back to the broker (C{bool}).
    @ivar serializer: the serializer used, or C{None} (none, or a no-op
        one: skipped).
    @ivar prefetch: each consumer's prefetch (C{0}: no limit).
    """

    _log = Logger()

    def __init__(self, transport: ITransport, targets: Union[Target, Sequence[Target]],
                 endpoints: Sequence[object], *, pool: Optional[str] = None, allow_requeue: bool = False,
                 serializer: Any = None, control_exchange: str = "openstack", prefetch: int,
                 duplicate_window: int = 1024, durable_queues: bool = False, quorum: Optional[QuorumQueues] = None,
                 pool_expires: Optional[float] = None, clock: Any = None,
                 metrics: Optional[Recorder] = None) -> None:
        """
        @param prefetch: each consumer's prefetch (C{0}: no limit).
        @param transport: see L{novasvc.notify.listener.NotificationListener},
            as every other parameter.
        """
        if int(duplicate_window) < 0:
            raise ValueError(f"duplicate_window must not be negative, not {duplicate_window!r}")
        if isinstance(targets, Target):
            targets = [targets]
        self.targets: Tuple[Target, ...] = tuple(targets)
        self.pool = pool
        self.dispatcher = NotificationDispatcher(endpoints)
        self.queues = listener_queues(self.targets, self.dispatcher.priorities, pool, control_exchange,
                                      durable_queues=durable_queues, quorum=quorum, pool_expires=pool_expires)
        self._transport = transport
        self.allow_requeue = bool(allow_requeue)
        self.serializer = None if is_noop(serializer) else serializer
        self.prefetch = prefetch
        self._window = int(duplicate_window)
        self._clock_arg = clock
        self._consumers: List[IConsumer] = []
        self._stopping = False
        self._running = 0
        self._drain = Drain()
        self._seen: Set[str] = set()
        self._seen_order: Deque[str] = deque()
        listening = (get_recorder() if metrics is None else metrics).notification_listener
        listening.watch(self)
        self._count = listening.received.count

    @property
    def _clock(self) -> Any:
        if self._clock_arg is None:
            self._clock_arg = global_reactor_if_none()
        return self._clock_arg

    @property
    def inflight(self) -> int:
        """
        How many notifications are being handled now: received and not yet
        settled (for a batch listener, those waiting for their batch too).
        """
        return self._running

    # -- lifecycle --------------------------------------------------------

    def start(self) -> defer.Deferred:
        """
        Declare the queues and consume them.

        @return: a C{Deferred} firing with C{None} once every consumer is
            active on the broker (it does not fire while the broker cannot
            be reached). Starting a started listener does nothing.
        """
        if self._consumers:
            return defer.succeed(None)
        self._stopping = False
        for queue in self.queues:
            self._consumers.append(self._transport.consume(queue, self._on_delivery, prefetch=self.prefetch))
        return gather([consumer.whenActive() for consumer in self._consumers])

    def stop(self) -> defer.Deferred:
        """
        Stop taking notifications: cancel the consumers and give back those
        received but not dispatched (rejected with requeue). Endpoint calls
        under way go on.

        @return: a C{Deferred} firing with C{None} once the broker confirmed
            the cancellations.
        """
        self._stopping = True
        consumers, self._consumers = self._consumers, []
        cancelled = gather([consumer.cancel() for consumer in consumers])
        self._give_back()
        return cancelled

    def wait(self, timeout: Optional[float] = None) -> defer.Deferred:
        """
        Stop (if not stopped), then wait for the endpoint calls under way,
        as oslo's C{wait()}.

        @param timeout: the most B{seconds} to wait; C{None} waits for all
            of them. Notifications still being handled then stay unsettled
            and go back to the broker when the transport closes, unless
            they finish before.
        @return: a C{Deferred} firing with C{True} when everything in
            flight was settled, C{False} when the timeout passed first.
        """
        d = self.stop()
        d.addCallback(lambda _: self._when_drained(timeout))
        return d

    def _when_drained(self, timeout: Optional[float]) -> Union[bool, defer.Deferred]:
        def timed_out() -> None:
            self._log.warn("Notification listener: {count} notification(s) still being handled after {timeout} s; "
                           "they stay unsettled", count=self._running, timeout=timeout)

        return self._drain.wait(self._running, timeout, self._clock, timed_out)

    def _drained(self) -> None:
        if self._running == 0 and self._drain.waiters:
            self._drain.drained()

    # -- per message ------------------------------------------------------

    def _give_back(self) -> None:
        """
        Reject with requeue what was received and not dispatched.
        """

    def _on_delivery(self, delivery: IDelivery) -> None:
        raise NotImplementedError()

    def _decode(self, delivery: IDelivery) -> Optional[Notification]:
        """
        @return: the notification to dispatch, or C{None} when it was
            settled here: malformed (rejected) or a duplicate
            (acknowledged).
        """
        try:
            notification = decode_notification(delivery.body, delivery.content_type)
        except MalformedMessage as error:
            self._log.error("Rejected a malformed notification from exchange {exchange!r} routing key "
                            "{routing_key!r}: {reason}", exchange=clip(delivery.exchange),
                            routing_key=clip(delivery.routing_key), reason=clip(error.reason))
            settle(delivery.reject, False)
            self._count(_UNKNOWN, _UNKNOWN, MALFORMED)
            return None
        unique_id = notification.unique_id
        if unique_id is not None and self._window and unique_id in self._seen:
            self._log.warn("Ignoring duplicate notification {unique_id} (event {event_type!r}) from routing key "
                           "{routing_key!r}", unique_id=clip(unique_id), event_type=clip(notification.event_type),
                           routing_key=clip(delivery.routing_key))
            settle(delivery.ack)
            self._count(notification.event_type, notification.priority, DUPLICATE)
            return None
        return notification

    def _user_values(self, notification: Notification) -> Tuple[Any, Any]:
        """
        @return: the context and payload the endpoints receive: through the
            serializer's C{deserialize_context} and C{deserialize_entity}
            unless it is a no-op.
        """
        serializer = self.serializer
        if serializer is None:
            return notification.context, notification.payload
        ctxt = serializer.deserialize_context(notification.context)
        return ctxt, serializer.deserialize_entity(ctxt, notification.payload)

    def _serializer_failed(self, notification: Notification) -> str:
        """
        The serializer raised (called in an C{except} block): one ERROR
        line, its message cut by L{clip}, with the traceback.

        @return: L{ERROR}.
        """
        failure = Failure()
        self._log.error("The serializer could not read notification {event_type!r} from {publisher_id!r}: "
                        "{error_class}: {error}\n{traceback}", event_type=clip(notification.event_type),
                        publisher_id=clip(notification.publisher_id), error_class=failure.type.__name__,
                        error=clip(failure.getErrorMessage()), traceback=ClippedTraceback(failure))
        return ERROR

    def _settle(self, delivery: IDelivery, notification: Notification, outcome: str) -> None:
        """
        Acknowledge (or, for a requeue or an error when allowed, give back)
        a dispatched notification, and count it.
        """
        if outcome is HANDLED or not self.allow_requeue:
            settle(delivery.ack)
            unique_id = notification.unique_id
            if unique_id is not None and self._window and len(unique_id) <= _ID_LIMIT:
                self._remember(unique_id)
        else:
            settle(delivery.reject, True)
        self._count(notification.event_type, notification.priority, outcome)

    def _remember(self, unique_id: str) -> None:
        if unique_id in self._seen:
            return
        self._seen.add(unique_id)
        self._seen_order.append(unique_id)
        if len(self._seen_order) > self._window:
            self._seen.discard(self._seen_order.popleft())

    def _unexpected(self, delivery: IDelivery) -> None:
        self._log.failure("Unexpected error handling a notification from routing key {routing_key!r}; rejected",
                          routing_key=clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)
        settle(delivery.reject, False)
