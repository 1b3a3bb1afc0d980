# -*- test-case-name: tests.test_notify_listener -*-
"""
Notification listeners, as oslo.messaging's C{get_notification_listener}
and C{get_batch_notification_listener}: consume the notifications of some
topics and hand each to the endpoint methods named by its priority.

Queues, as oslo.messaging's rabbit driver declares them
(oslo-wire-protocol.md §3): for each target and each priority some endpoint
has a method for, the queue C{<topic>.<priority>} bound to the target's
exchange (else the control exchange, a topic exchange) with the routing key
C{<topic>.<priority>}, which is also the queue a notifier declares; with a
C{pool}, a single queue named after the pool, bound with every one of those
routing keys. Listeners in the same pool (oslo's included) share that
queue, so each notification reaches one of them; each pool gets every
notification, and so do the listeners without a pool, between them (they
share the queues C{<topic>.<priority>}).

Delivery, as oslo's (oslo-wire-protocol.md §7): a notification is
acknowledged once the endpoints returned. When one returned
L{NotificationResult.REQUEUE}, or raised, it is given back to the broker
(rejected with requeue) if the listener was made with C{allow_requeue=True},
and acknowledged otherwise. A notification whose C{_unique_id} was among
the last C{duplicate_window} acknowledged is acknowledged without being
dispatched (oslo remembers 16); a copy that arrives while its original is
still being handled is dispatched too.

Bad input never stops the consumer: a body that is not a notification (not
JSON, no known priority, no event type, a publisher that is not a string)
is logged once at ERROR, cut to 200 characters a value, and rejected
without requeue. An
endpoint that raises is logged once at ERROR (its message cut, with its
traceback). Nothing is logged per notification handled.

Metrics (L{novasvc.metrics}): each notification is counted by event type,
priority and outcome (C{handled}, C{requeued}, C{error}, C{malformed},
C{duplicate}); the notifications in flight are read when scraped.
"""

from typing import Any, Optional, Sequence, Union

from twisted.internet import defer
from twisted.logger import LogLevel

from novasvc.interfaces import IDelivery, ITransport
from novasvc.metrics import Recorder
from novasvc.notify._base import ListenerBase, listener_queues
from novasvc.notify._batch import BatchNotificationListener
from novasvc.notify._dispatch import ERROR, NotificationResult
from novasvc.notify.filter import NotificationFilter
from novasvc.notify.message import Notification
from novasvc._text import clip
from novasvc.rpc.target import Target
from novasvc.transport.consuming import Backlog
from novasvc.transport.topology import QuorumQueues

__all__ = [
    "NotificationListener",
    "BatchNotificationListener",
    "NotificationFilter",
    "NotificationResult",
    "get_notification_listener",
    "get_batch_notification_listener",
    "listener_queues",
]


class NotificationListener(ListenerBase):
    """
    Dispatch each notification of some topics to the endpoint methods named
    by its priority, as oslo.messaging's notification listener.

    An endpoint method is called as C{method(ctxt, publisher_id,
    event_type, payload, metadata)}: C{ctxt} the context's entries (a
    C{dict}, or what the serializer makes of it), C{metadata}
    C{{"message_id": ..., "timestamp": ...}}. It may return a value, a
    C{Deferred} or a coroutine; see L{NotificationResult}.

    @ivar targets: the L{Target}s listened to.
    @ivar pool: the pool's name, or C{None}.
    @ivar queues: the L{Queue}s consumed (see L{listener_queues}).
    @ivar dispatcher: the L{NotificationDispatcher}.
    """

    def __init__(self, transport: ITransport, targets: Union[Target, Sequence[Target]],
                 endpoints: Sequence[object], *, pool: Optional[str] = None, allow_requeue: bool = False,
                 serializer: Any = None, control_exchange: str = "openstack", max_inflight: int = 64,
                 duplicate_window: int = 1024, durable_queues: bool = False, quorum: Optional[QuorumQueues] = None,
                 pool_expires: Optional[float] = None, clock: Any = None,
                 metrics: Optional[Recorder] = None) -> None:
        """
        @param transport: the broker connection (not started or stopped by
            the listener).
        @param targets: the L{Target}s (a topic each, optionally an
            exchange) to listen to.
        @param endpoints: objects with methods named by priority
            (C{audit}, C{debug}, C{info}, C{warn}, C{error}, C{critical},
            C{sample}) and optionally a C{filter_rule}
            (L{NotificationFilter}).
        @param pool: the pool's name (see the module docstring), or
            C{None}.
        @param allow_requeue: whether L{NotificationResult.REQUEUE} and
            endpoint errors give the notification back to the broker
            (oslo's default: C{False}, they are acknowledged).
        @param serializer: an oslo-style serializer for the context and the
            payload (L{novasvc.rpc.serializer.ISerializer}), or C{None}.
        @param control_exchange: the exchange of targets without one
            (oslo's C{openstack}; Nova's C{nova}).
        @param max_inflight: the most notifications handled at once, also
            each consumer's prefetch.
        @param duplicate_window: how many acknowledged C{_unique_id}s to
            remember; C{0}: no de-duplication.
        @param durable_queues: oslo's C{amqp_durable_queues}.
        @param quorum: oslo's C{rabbit_quorum_queue}.
        @param pool_expires: see L{listener_queues}.
        @param clock: C{IReactorTime} for C{wait} timeouts; the global
            reactor when C{None}.
        @param metrics: where to count notifications; the process's
            L{novasvc.metrics.get_recorder} when C{None}.
        @raise ValueError: when no endpoint has a method named by a
            priority, there is no target, or C{max_inflight} or
            C{duplicate_window} is out of range.
        @raise InvalidTarget: for a target without a topic.
        """
        if int(max_inflight) < 1:
            raise ValueError(f"max_inflight must be at least 1, not {max_inflight!r}")
        super().__init__(transport, targets, endpoints, pool=pool, allow_requeue=allow_requeue, serializer=serializer,
                         control_exchange=control_exchange, prefetch=int(max_inflight),
                         duplicate_window=duplicate_window, durable_queues=durable_queues, quorum=quorum,
                         pool_expires=pool_expires, clock=clock, metrics=metrics)
        self._max_inflight = int(max_inflight)
        self._backlog = Backlog()

    def _give_back(self) -> None:
        self._backlog.give_back()

    def _on_delivery(self, delivery: IDelivery) -> None:
        try:
            if self._stopping:
                delivery.reject(True)
            elif self._running >= self._max_inflight:
                self._backlog.append(delivery)
            else:
                self._process(delivery)
        except Exception:
            self._unexpected(delivery)

    def _process(self, delivery: IDelivery) -> None:
        notification = self._decode(delivery)
        if notification is None:
            return
        self._running += 1
        try:
            ctxt, payload = self._user_values(notification)
        except Exception:
            self._done(self._serializer_failed(notification), delivery, notification)
            return
        try:
            result = self.dispatcher.dispatch(notification.priority, ctxt, notification.publisher_id,
                                              notification.event_type, payload, notification.metadata)
        except Exception:
            self._log.failure("Unexpected error dispatching notification {event_type!r}",
                              event_type=clip(notification.event_type), level=LogLevel.error)
            result = ERROR
        if isinstance(result, defer.Deferred):
            result.addCallback(self._done, delivery, notification)
            result.addErrback(self._bug, delivery)
        else:
            self._done(result, delivery, notification)

    def _done(self, outcome: str, delivery: IDelivery, notification: Notification) -> None:
        try:
            self._settle(delivery, notification, outcome)
        finally:
            self._running -= 1
            if self._backlog:
                self._backlog.pull(self._has_room, self._process, self._unexpected)
            self._drained()

    def _bug(self, failure: Any, delivery: IDelivery) -> None:
        self._log.failure("Unexpected error settling a notification from routing key {routing_key!r}", failure,
                          routing_key=clip(getattr(delivery, "routing_key", None)), level=LogLevel.error)

    def _has_room(self) -> bool:
        return self._running < self._max_inflight and not self._stopping


def get_notification_listener(transport: ITransport, targets: Sequence[Target], endpoints: Sequence[object],
                              executor: Optional[str] = None, serializer: Any = None, allow_requeue: bool = False,
                              pool: Optional[str] = None, **kwargs: Any) -> NotificationListener:
    """
    oslo.messaging's C{get_notification_listener}, its arguments in its
    order.

    @param executor: ignored (oslo's executor name: Twisted runs endpoints
        on the reactor thread; blocking work belongs in a thread).
    @param kwargs: more keyword arguments of L{NotificationListener}
        (C{control_exchange}, C{max_inflight}, C{clock}...).
    @return: a L{NotificationListener}, not started.
    """
    return NotificationListener(transport, targets, endpoints, serializer=serializer, allow_requeue=allow_requeue,
                                pool=pool, **kwargs)


def get_batch_notification_listener(transport: ITransport, targets: Sequence[Target], endpoints: Sequence[object],
                                    executor: Optional[str] = None, serializer: Any = None,
                                    allow_requeue: bool = False, pool: Optional[str] = None,
                                    batch_size: Optional[int] = None, batch_timeout: Optional[float] = None,
                                    **kwargs: Any) -> "BatchNotificationListener":
    """
    oslo.messaging's C{get_batch_notification_listener}, its arguments in
    its order.

    @param executor: ignored, as in L{get_notification_listener}.
    @param batch_size: the most notifications a batch holds.
    @param batch_timeout: the most B{seconds} a notification waits for its
        batch to fill.
    @param kwargs: more keyword arguments of L{BatchNotificationListener}.
    @return: a L{BatchNotificationListener}, not started.
    """
    return BatchNotificationListener(transport, targets, endpoints, serializer=serializer,
                                     allow_requeue=allow_requeue, pool=pool, batch_size=batch_size,
                                     batch_timeout=batch_timeout, **kwargs)
