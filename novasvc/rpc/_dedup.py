# -*- test-case-name: tests.test_rpc_dedup -*-
"""
The RPC server's de-duplication of requests by C{_unique_id}
(L{Duplicates}), over the last C{duplicate_window} ids (oslo remembers 16).

Under early ack an id counts as seen as soon as its request is taken. Under
late ack it counts as seen only once its first run has finished and was
acknowledged: a copy that arrives while the original still runs (a
redelivery after a lost connection, a client's resend) waits, unacknowledged,
and is acknowledged as a duplicate when the original is; if the original
could not be completed, the copy goes back to the broker (rejected with
requeue). A copy is never acknowledged while the request it repeats could
still be lost.

An id longer than L{_ID_LIMIT} characters is remembered by its digest: the
window holds a bounded number of bytes whatever clients send.
"""

import hashlib
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Set

from twisted.logger import Logger

from novasvc._text import clip
from novasvc.interfaces import IDelivery
from novasvc.rpc import wire
from novasvc.transport.consuming import settle

__all__ = ["Duplicates"]

#: A C{_unique_id} longer than this is remembered by its digest.
_ID_LIMIT = 64


class Duplicates:
    """
    The C{_unique_id}s one RPC server has seen, and under late ack those
    running now with the copies waiting for them.

    @ivar window: how many ids are remembered; C{0}: none (the server then
        does not call L{admit} or L{settled}).
    @ivar seen: the ids seen (under late ack: whose first run finished).
    """

    _log = Logger()

    __slots__ = ("window", "seen", "_order", "_late", "_active", "_metrics")

    def __init__(self, window: int, ack_early: bool, metrics: Any) -> None:
        """
        @param window: how many recent ids to remember.
        @param ack_early: whether requests are acknowledged before they run
            (then no copy waits).
        @param metrics: the server's metrics, told of each duplicate dropped.
        """
        self.window = window
        self.seen: Set[str] = set()
        self._order: Deque[str] = deque()
        self._late = not ack_early
        # Under late ack: the ids running now, each with the copies waiting
        # for it (None while there is none).
        self._active: Dict[str, Optional[List[IDelivery]]] = {}
        self._metrics = metrics

    def admit(self, request: wire.Request, delivery: IDelivery) -> bool:
        """
        Tell whether C{request}, which has a C{_unique_id}, is to run. An id
        too long to keep is replaced by its digest in C{request}.

        @return: C{True} when it runs (under late ack its id is now
            running, until L{settled}); C{False} when it was acknowledged as
            a duplicate, or waits for its original, unsettled.
        """
        unique_id: str = request.unique_id  # type: ignore[assignment]
        if len(unique_id) > _ID_LIMIT:
            unique_id = request.unique_id = _digest(unique_id)
        if unique_id in self.seen:
            self._log.error(
                "Ignoring duplicate RPC message {unique_id} (method {method!r}) from routing key "
                "{routing_key!r}", unique_id=clip(unique_id), method=clip(request.method),
                routing_key=clip(delivery.routing_key),
            )
            delivery.ack()
            self._metrics.duplicate_dropped()
            return False
        if not self._late:
            self._remember(unique_id)
        elif unique_id in self._active:
            self._park(unique_id, delivery, request)
            return False
        else:
            self._active[unique_id] = None
        return True

    def settled(self, unique_id: str, ok: bool) -> None:
        """
        Under late ack, the request with C{unique_id} was settled:
        acknowledged (C{ok}: its id is now seen, its copies are acknowledged
        as duplicates) or rejected (its copies go back to the broker).
        """
        copies = self._active.pop(unique_id, None)
        if ok:
            # _remember, inline: this runs once per request.
            self.seen.add(unique_id)
            order = self._order
            order.append(unique_id)
            if len(order) > self.window:
                self.seen.discard(order.popleft())
        if copies:
            self._settle_copies(unique_id, copies, ok)

    def _remember(self, unique_id: str) -> None:
        """
        Count C{unique_id} as seen, forgetting the oldest beyond the window.
        """
        self.seen.add(unique_id)
        self._order.append(unique_id)
        if len(self._order) > self.window:
            self.seen.discard(self._order.popleft())

    def _park(self, unique_id: str, delivery: IDelivery, request: wire.Request) -> None:
        """
        A copy of a request that is still running: keep it, unsettled,
        until the original is settled (see L{_settle_copies}).
        """
        self._log.debug("RPC message {unique_id} (method {method!r}) from routing key {routing_key!r} repeats a "
                        "request still running; it waits for it", unique_id=clip(unique_id),
                        method=clip(request.method), routing_key=clip(delivery.routing_key))
        copies = self._active[unique_id]
        if copies is None:
            self._active[unique_id] = [delivery]
        else:
            copies.append(delivery)

    def _settle_copies(self, unique_id: str, copies: List[IDelivery], done: bool) -> None:
        """
        The original of C{copies} was settled: acknowledge them as duplicates
        when it was acknowledged (C{done}), give them back to the broker
        otherwise.
        """
        for copy in copies:
            if done:
                self._log.error("Ignoring duplicate RPC message {unique_id} from routing key {routing_key!r}, "
                                "received while its original ran", unique_id=clip(unique_id),
                                routing_key=clip(copy.routing_key))
                settle(copy.ack)
                self._metrics.duplicate_dropped()
            else:
                settle(copy.reject, True)


def _digest(unique_id: str) -> str:
    """
    @return: a C{_unique_id} too long to keep, as a fixed-size text that no
        id of at most L{_ID_LIMIT} characters can be.
    """
    return "#" * (_ID_LIMIT + 1) + hashlib.sha256(unique_id.encode("utf-8", "surrogatepass")).hexdigest()
