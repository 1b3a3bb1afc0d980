# -*- test-case-name: tests.test_notify_listener,tests.test_notify_batch -*-
"""
Dispatching notifications to endpoints, as oslo.messaging's
C{NotificationDispatcher} and C{BatchNotificationDispatcher}: an endpoint
method per priority, its C{filter_rule}, and what its result means.

The endpoints of a priority are called in the order they were given, each
after the previous one's result is ready (a value, a C{Deferred} or a
coroutine). The first that returns L{NotificationResult.REQUEUE} or raises
ends the dispatch: the endpoints after it are not called.
"""

import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc.notify.filter import NotificationFilter
from novasvc.notify.message import PRIORITIES
from novasvc._text import ClippedTraceback, clip

__all__ = ["NotificationResult", "NotificationDispatcher", "HANDLED", "REQUEUED", "ERROR"]


class NotificationResult:
    """
    What an endpoint method may return (oslo.messaging's values, so an
    endpoint written for oslo returns the same strings).

    @cvar HANDLED: the notification was handled: acknowledge it. Returning
        C{None} (or anything but L{REQUEUE}) means the same.
    @cvar REQUEUE: give it back to the broker (when the listener was made
        with C{allow_requeue=True}; else it is acknowledged).
    """

    HANDLED = "handled"
    REQUEUE = "requeue"


#: What a dispatch ends with: every endpoint handled it; one asked to
#: requeue it; one raised (or its Deferred failed). Also the metrics'
#: outcome labels.
HANDLED = "handled"
REQUEUED = "requeued"
ERROR = "error"

_PLAIN = frozenset((type(None), str, dict, list, tuple, int, float, bool))

Callback = Tuple[Optional[NotificationFilter], Callable[..., Any]]


def _describe(method: Any) -> str:
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", None) or type(method).__name__
    if owner is None:
        return name
    return f"{type(owner).__name__}.{name}"


def _outcome(result: Any) -> str:
    return REQUEUED if isinstance(result, str) and result == NotificationResult.REQUEUE else HANDLED


class NotificationDispatcher:
    """
    The endpoints' methods by priority, with their filters.

    @ivar priorities: the priorities some endpoint has a method for, in
        L{PRIORITIES} order (the listener consumes these only).
    """

    _log = Logger()

    def __init__(self, endpoints: Sequence[object]) -> None:
        """
        @param endpoints: objects with methods named by priority (C{info},
            C{error}...) and optionally a C{filter_rule}
            (L{NotificationFilter}), read once here.
        @raise ValueError: when no endpoint has a method for any priority
            (such a listener would consume nothing).
        @raise TypeError: when a C{filter_rule} has no C{match} method.
        """
        self._callbacks: Dict[str, List[Callback]] = {}
        for endpoint in endpoints:
            screen = getattr(endpoint, "filter_rule", None)
            if screen is not None and not callable(getattr(screen, "match", None)):
                raise TypeError(f"the filter_rule of {type(endpoint).__qualname__} is not a NotificationFilter: "
                                f"{screen!r}")
            for priority in PRIORITIES:
                method = getattr(endpoint, priority, None)
                if callable(method):
                    self._callbacks.setdefault(priority, []).append((screen, method))
        if not self._callbacks:
            raise ValueError("no endpoint has a method named by a priority "
                             f"({', '.join(PRIORITIES)}): the listener would consume nothing")
        self.priorities: Tuple[str, ...] = tuple(p for p in PRIORITIES if p in self._callbacks)

    def callbacks(self, priority: str) -> Sequence[Callback]:
        """
        @return: the filters and methods for C{priority}, in endpoint order
            (empty for a priority no endpoint has).
        """
        return self._callbacks.get(priority, ())

    # -- one notification -------------------------------------------------

    def dispatch(self, priority: str, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Dict[str, Any]) -> Any:
        """
        Call the methods for C{priority} whose filters match, in order.

        @return: L{HANDLED}, L{REQUEUED} or L{ERROR} (an endpoint raised:
            logged here), or a C{Deferred} firing with one of them (never
            failing) when an endpoint returned a C{Deferred} or a
            coroutine.
        """
        args = (ctxt, publisher_id, event_type, payload, metadata)
        return self._run(self._callbacks.get(priority, ()), 0, args)

    def _run(self, callbacks: Sequence[Callback], start: int, args: Tuple[Any, ...]) -> Any:
        ctxt, publisher_id, event_type, payload, metadata = args
        for index in range(start, len(callbacks)):
            screen, method = callbacks[index]
            if screen is not None and not screen.match(ctxt, publisher_id, event_type, metadata, payload):
                continue
            try:
                result = method(*args)
            except Exception:
                return self._failed(Failure(), method, event_type, publisher_id)
            if type(result) not in _PLAIN:
                if inspect.iscoroutine(result):
                    result = defer.Deferred.fromCoroutine(result)
                if isinstance(result, defer.Deferred):
                    result.addCallbacks(self._resume, self._failed, callbackArgs=(callbacks, index + 1, args),
                                        errbackArgs=(method, event_type, publisher_id))
                    return result
            if _outcome(result) is REQUEUED:
                return REQUEUED
        return HANDLED

    def _resume(self, result: Any, callbacks: Sequence[Callback], start: int, args: Tuple[Any, ...]) -> Any:
        if _outcome(result) is REQUEUED:
            return REQUEUED
        return self._run(callbacks, start, args)

    def _failed(self, failure: Failure, method: Any, event_type: Any, publisher_id: Any) -> str:
        what = f"event {clip(event_type)!r} from {clip(publisher_id)!r}"
        return self._log_failure(failure, method, what)

    def _batch_failed(self, failure: Failure, method: Any, messages: List[Dict[str, Any]]) -> str:
        first = messages[0]
        what = (f"a batch of {len(messages)} notification(s), the first event {clip(first['event_type'])!r} "
                f"from {clip(first['publisher_id'])!r}")
        return self._log_failure(failure, method, what)

    def _log_failure(self, failure: Failure, method: Any, what: str) -> str:
        """
        One ERROR line: the method, what it was given, the error (its
        message cut by L{clip}) and the traceback.

        @return: L{ERROR}.
        """
        self._log.error("Notification endpoint {method} raised on {what}: {error_class}: {error}\n{traceback}",
                        method=_describe(method), what=what, error_class=failure.type.__name__,
                        error=clip(failure.getErrorMessage()), traceback=ClippedTraceback(failure))
        return ERROR

    # -- batches ----------------------------------------------------------

    def dispatch_batch(self, priority: str, messages: List[Dict[str, Any]]) -> Any:
        """
        Call the methods for C{priority} with the messages their filters
        match (a method none matches is not called), in order, as oslo's
        batch dispatcher.

        @param messages: oslo's batch message dicts (C{ctxt},
            C{publisher_id}, C{event_type}, C{payload}, C{metadata}).
        @return: as L{dispatch}.
        """
        return self._run_batch(self._callbacks.get(priority, ()), 0, messages)

    def _run_batch(self, callbacks: Sequence[Callback], start: int, messages: List[Dict[str, Any]]) -> Any:
        for index in range(start, len(callbacks)):
            screen, method = callbacks[index]
            if screen is None:
                chosen = list(messages)
            else:
                chosen = [m for m in messages if screen.match(m["ctxt"], m["publisher_id"], m["event_type"],
                                                               m["metadata"], m["payload"])]
                if not chosen:
                    continue
            try:
                result = method(chosen)
            except Exception:
                return self._batch_failed(Failure(), method, chosen)
            if type(result) not in _PLAIN:
                if inspect.iscoroutine(result):
                    result = defer.Deferred.fromCoroutine(result)
                if isinstance(result, defer.Deferred):
                    result.addCallbacks(self._resume_batch, self._batch_failed,
                                        callbackArgs=(callbacks, index + 1, messages), errbackArgs=(method, chosen))
                    return result
            if _outcome(result) is REQUEUED:
                return REQUEUED
        return HANDLED

    def _resume_batch(self, result: Any, callbacks: Sequence[Callback], start: int,
                      messages: List[Dict[str, Any]]) -> Any:
        if _outcome(result) is REQUEUED:
            return REQUEUED
        return self._run_batch(callbacks, start, messages)

