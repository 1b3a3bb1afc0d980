# -*- test-case-name: tests.test_notify_batch -*-
"""
L{BatchNotificationListener}: notifications handed to the endpoints in
batches, as oslo.messaging's C{get_batch_notification_listener}.

Public through L{novasvc.notify.listener}.

Notifications are gathered as they arrive, whatever their priority. A
batch is cut when C{batch_size} of them are waiting, or when the oldest has
waited C{batch_timeout} seconds (on the listener's clock); it holds at most
C{batch_size} notifications, the oldest first. Its notifications are
grouped by priority (in the priorities' alphabetical order, as oslo's) and
each group goes to the endpoint methods of its priority as one list of
oslo's message dicts (C{ctxt}, C{publisher_id}, C{event_type}, C{payload},
C{metadata}), each method given those its filter matches and not called
when it matches none. Once every group was handled, the batch's
notifications are settled: those of a group an endpoint asked to requeue
(or raised on) are given back when C{allow_requeue}, every other one is
acknowledged.
"""

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union

from twisted.internet import defer
from twisted.logger import LogLevel

from novasvc.interfaces import IDelivery, ITransport
from novasvc.metrics import Recorder
from novasvc.notify._base import ListenerBase
from novasvc.notify._dispatch import ERROR
from novasvc.notify.message import Notification
from novasvc.rpc.target import Target
from novasvc.transport.consuming import settle
from novasvc.transport.topology import QuorumQueues

__all__ = ["BatchNotificationListener"]

# (delivery, notification, when it arrived in seconds)
_Waiting = Tuple[IDelivery, Notification, float]
# (delivery, notification, the message dict the endpoints get, or None when
# the serializer could not read it)
_Item = Tuple[IDelivery, Notification, Optional[Dict[str, Any]]]


class BatchNotificationListener(ListenerBase):
    """
    Dispatch notifications in batches (see the module docstring); endpoint
    methods named by priority are called as C{method(messages)}, each
    message a C{dict} with C{ctxt}, C{publisher_id}, C{event_type},
    C{payload} and C{metadata} (oslo's batch format, without the priority:
    the method's name says it).

    @ivar batch_size: the most notifications in a batch, or C{None}.
    @ivar batch_timeout: the most B{seconds} a notification waits for its
        batch, or C{None}.
    """

    def __init__(self, transport: ITransport, targets: Union[Target, Sequence[Target]],
                 endpoints: Sequence[object], *, batch_size: Optional[int] = None,
                 batch_timeout: Optional[float] = None, pool: Optional[str] = None, allow_requeue: bool = False,
                 serializer: Any = None, control_exchange: str = "openstack", max_inflight: int = 1,
                 duplicate_window: int = 1024, durable_queues: bool = False, quorum: Optional[QuorumQueues] = None,
                 pool_expires: Optional[float] = None, clock: Any = None,
                 metrics: Optional[Recorder] = None) -> None:
        """
        @param batch_size: the most notifications a batch holds; C{None}:
            no limit (a batch is cut by the timeout only).
        @param batch_timeout: the most B{seconds} a notification waits for
            its batch to fill; C{None}: no limit (a batch is cut when full
            only).
        @param max_inflight: the most batches handled at once. Each
            consumer's prefetch is C{batch_size * (max_inflight + 1)} (no
            limit without a C{batch_size}).
        @param clock: C{IReactorTime} for the batch timeout and C{wait}
            timeouts; the global reactor when C{None}.
        @param transport: see L{novasvc.notify.listener.NotificationListener},
            as every other parameter.
        @raise ValueError: as L{novasvc.notify.listener.NotificationListener},
            and when C{batch_size} is below 1, C{batch_timeout} not
            positive, or both are C{None} (a batch would never be cut).
        """
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
        if batch_timeout is not None and not float(batch_timeout) > 0:
            raise ValueError(f"batch_timeout must be a positive number of seconds, not {batch_timeout!r}")
        if batch_size is None and batch_timeout is None:
            raise ValueError("a batch listener needs a batch_size, a batch_timeout or both")
        if int(max_inflight) < 1:
            raise ValueError(f"max_inflight must be at least 1, not {max_inflight!r}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.batch_timeout = None if batch_timeout is None else float(batch_timeout)
        prefetch = 0 if self.batch_size is None else self.batch_size * (int(max_inflight) + 1)
        super().__init__(transport, targets, endpoints, pool=pool, allow_requeue=allow_requeue, serializer=serializer,
                         control_exchange=control_exchange, prefetch=prefetch,
                         duplicate_window=duplicate_window, durable_queues=durable_queues, quorum=quorum,
                         pool_expires=pool_expires, clock=clock, metrics=metrics)
        self._max_batches = int(max_inflight)
        self._batches = 0
        self._waiting: Deque[_Waiting] = deque()
        self._timer: Any = None

    # -- gathering --------------------------------------------------------

    def _on_delivery(self, delivery: IDelivery) -> None:
        try:
            if self._stopping:
                delivery.reject(True)
                return
            notification = self._decode(delivery)
            if notification is None:
                return
            self._waiting.append((delivery, notification, self._clock.seconds()))
            self._running += 1
            self._cut()
        except Exception:
            self._unexpected(delivery)

    def _give_back(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        while self._waiting:
            settle(self._waiting.popleft()[0].reject, True)
            self._running -= 1
        self._drained()

    def _cut(self) -> None:
        """
        Dispatch every batch that is due (full, or its oldest notification
        waited C{batch_timeout} seconds) while fewer than C{max_inflight}
        run; then set the timer for the next one.
        """
        size, timeout = self.batch_size, self.batch_timeout
        while self._waiting and self._batches < self._max_batches and not self._stopping:
            full = size is not None and len(self._waiting) >= size
            if not full and (timeout is None or self._clock.seconds() - self._waiting[0][2] < timeout):
                break
            count = len(self._waiting) if size is None else min(size, len(self._waiting))
            self._dispatch([self._waiting.popleft() for _ in range(count)])
        if timeout is None or not self._waiting or self._stopping or self._batches >= self._max_batches:
            return
        if self._timer is None or not self._timer.active():
            delay = max(0.0, self._waiting[0][2] + timeout - self._clock.seconds())
            self._timer = self._clock.callLater(delay, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        try:
            self._cut()
        except Exception:
            self._log.failure("Unexpected error cutting a notification batch", level=LogLevel.error)

    # -- dispatching ------------------------------------------------------

    def _dispatch(self, batch: List[_Waiting]) -> None:
        self._batches += 1
        groups: Dict[str, List[_Item]] = {}
        for delivery, notification, _ in batch:
            try:
                ctxt, payload = self._user_values(notification)
            except Exception:
                self._serializer_failed(notification)
                message = None
            else:
                message = {"ctxt": ctxt, "publisher_id": notification.publisher_id,
                           "event_type": notification.event_type, "payload": payload,
                           "metadata": notification.metadata}
            groups.setdefault(notification.priority, []).append((delivery, notification, message))
        self._run(sorted(groups.items()), 0, [])

    def _run(self, groups: List[Tuple[str, List[_Item]]], start: int, outcomes: List[str]) -> None:
        for index in range(start, len(groups)):
            priority, items = groups[index]
            messages = [message for _, _, message in items if message is not None]
            try:
                result = self.dispatcher.dispatch_batch(priority, messages) if messages else ERROR
            except Exception:
                self._log.failure("Unexpected error dispatching a notification batch", level=LogLevel.error)
                result = ERROR
            if isinstance(result, defer.Deferred):
                result.addCallback(self._group_done, groups, index, outcomes)
                result.addErrback(self._bug, groups)
                return
            outcomes.append(result)
        self._done(groups, outcomes)

    def _group_done(self, outcome: str, groups: List[Tuple[str, List[_Item]]], index: int,
                    outcomes: List[str]) -> None:
        outcomes.append(outcome)
        self._run(groups, index + 1, outcomes)

    def _bug(self, failure: Any, groups: List[Tuple[str, List[_Item]]]) -> None:
        self._log.failure("Unexpected error handling a notification batch", failure, level=LogLevel.error)

    def _done(self, groups: List[Tuple[str, List[_Item]]], outcomes: List[str]) -> None:
        """
        Settle the batch: each notification by its group's outcome (an
        error for one the serializer could not read).
        """
        try:
            for (_, items), outcome in zip(groups, outcomes):
                for delivery, notification, message in items:
                    self._settle(delivery, notification, outcome if message is not None else ERROR)
        finally:
            self._batches -= 1
            self._running -= sum(len(items) for _, items in groups)
            self._cut()
            self._drained()
