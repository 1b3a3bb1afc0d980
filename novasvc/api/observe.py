# -*- test-case-name: tests.test_api_observe -*-
"""
What the API's site does around each request, before and after the
application: count it in the HTTP metrics (L{novasvc.metrics._http}),
trace it as an HTTP C{SERVER} span when tracing is on (the parent of the
RPC gateway's client span), and bound the requests in flight in the
process.

  - The route template of a request (a metrics label and the span's name)
    is one of L{ROUTE_TEMPLATES}, found from its path, or C{<other>}: a
    client cannot make new series.
  - At most C{max_in_flight} requests are handled at once
    (C{api.max_in_flight}, default L{novasvc.config.api.MAX_IN_FLIGHT}),
    and up to C{max_waiting} more wait for a slot (C{api.max_waiting},
    default none); past that, a request gets 503 with C{Retry-After} at
    once, before any work. The API of a service
    (C{api.service_max_in_flight} and C{api.service_max_waiting}, default
    L{novasvc.config.api.EMBEDDED_IN_FLIGHT} and
    L{novasvc.config.api.EMBEDDED_WAITING}) handles few at once, each
    waiting one starting in a reactor turn of its own, so RPC in the same
    process keeps the reactor. C{/healthz} and C{/metrics} are always
    served.
  - With a budget of reactor time (L{ReactorShare}: the API of a service,
    C{api.service_reactor_share}), the time spent reading requests,
    handling them and finishing their answers is taken from it, and once it
    is spent no request starts (a new one waits, if it may) until it has
    refilled: under any load the API leaves the reactor idle, ready for
    RPC, at least the rest of the time.
"""

import re
from collections import deque
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Deque, List, Optional, Tuple

from twisted.web.iweb import IRequest

from novasvc.api._share import ReactorShare
from novasvc.api.context import request_info
from novasvc.config.api import MAX_IN_FLIGHT

__all__ = ["EXEMPT_PATHS", "ROUTE_TEMPLATES", "Observer", "route_template"]

#: Paths served whatever the load (load balancers, scrapers).
EXEMPT_PATHS = frozenset({b"/healthz", b"/metrics"})
#: The route templates of the default application, in matching order.
ROUTE_TEMPLATES: Tuple[Tuple[str, "re.Pattern[bytes]"], ...] = tuple(
    (template, re.compile(pattern)) for template, pattern in (
        ("/", rb"/"),
        ("/healthz", rb"/healthz"),
        ("/metrics", rb"/metrics"),
        ("/v1/openapi.json", rb"/v1/openapi\.json"),
        ("/v1/services", rb"/v1/services"),
        ("/v1/services/{service_id}", rb"/v1/services/[^/]+"),
        ("/v1/rpc/{topic}", rb"/v1/rpc/[^/]+"),
    ))
_OTHER = "<other>"


def route_template(path: bytes) -> str:
    """
    @param path: a request's path, without its query.
    @return: its route template, or C{"<other>"}.
    """
    for template, pattern in ROUTE_TEMPLATES:
        if pattern.fullmatch(path):
            return template
    return _OTHER


class Observer:
    """
    The metrics, span and admission of the requests of one site.

    At most C{max_in_flight} requests are handled at once; up to
    C{max_waiting} more wait for a slot, first come first served, each in
    a reactor turn of its own once one frees (and once L{share} allows);
    past that, 503. C{/healthz} and C{/metrics} (L{EXEMPT_PATHS}) take no
    slot and are never refused, but while L{share} is spent they wait for
    it in the same line as the others: their reactor time counts too, so
    a stream of them never keeps the other routes from starting.

    @ivar in_flight: requests being handled (C{int}).
    @ivar waiting: requests waiting for a slot, in order.
    @ivar share: the L{ReactorShare} the requests' reactor time is taken
        from, or C{None}.
    """

    def __init__(self, recorder: Any, clock: Any, max_in_flight: int = MAX_IN_FLIGHT,
                 max_waiting: int = 0, tracing: Any = None,
                 share: Optional[ReactorShare] = None) -> None:
        """
        @param recorder: the L{novasvc.metrics.Recorder} to count in.
        @param clock: C{IReactorTime}, for durations and for starting
            waiting requests.
        @param tracing: the L{novasvc.tracing.Tracing} that makes each
            request an HTTP server span, or C{None} (no spans).
        @param max_in_flight: the most requests handled at once.
        @param max_waiting: the most requests waiting for a slot.
        @param share: the budget of reactor time the requests take, or
            C{None} (no budget).
        """
        self._http = recorder.http
        self._clock = clock
        self._tracing = tracing
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self.share = share
        self.in_flight = 0
        self.waiting: Deque[Tuple[IRequest, Optional[List[bool]], Callable[[], None]]] = deque()
        self._turn_call: Any = None

    @property
    def busy(self) -> bool:
        """
        @return: whether every slot is taken.
        """
        return self.in_flight >= self.max_in_flight

    def admit(self, request: IRequest, proceed: Callable[[], None]) -> bool:
        """
        Start observing C{request}, and have C{proceed()} handle it now or,
        when every slot is taken or L{share} is spent, once one frees and
        the budget allows.

        @return: C{False} when it can neither be handled nor wait (answer
            503 without calling C{proceed}); it is still counted.
        """
        route = route_template(request.path)
        started = self._clock.seconds()
        method = request.method.decode("ascii", "replace")
        self._http.started()
        span = self._span(request, method, route)
        slot = [False]
        request.notifyFinish().addBoth(self._finished, request, route, method, started, span,
                                       slot)
        if request.path in EXEMPT_PATHS:
            if not self.waiting and self._ready():
                proceed()
            else:
                self.waiting.append((request, None, proceed))
                self._next()
            return True
        if not self.busy and not self.waiting and self._ready():
            slot[0] = True
            self.in_flight += 1
            self._run(proceed)
            return True
        if len(self.waiting) < self.max_waiting:
            request_info(request).waited = True
            self.waiting.append((request, slot, proceed))
            self._next()
            return True
        return False

    def spending(self) -> ContextManager[None]:
        """
        @return: a context manager taking the reactor time of its block
            from L{share} (nothing without a budget).
        """
        return self.share.spending() if self.share is not None else nullcontext()

    def _ready(self) -> bool:
        return self.share is None or self.share.wait() == 0.0

    def _run(self, proceed: Callable[[], None]) -> None:
        with self.spending():
            proceed()

    def _next(self) -> None:
        """
        Start the next waiting request in a reactor turn of its own (RPC
        gets the reactor in between), once a slot is free and the budget
        of reactor time allows.
        """
        if self._turn_call is not None or self._runnable() is None:
            return
        delay = self.share.wait() if self.share is not None else 0.0
        self._turn_call = self._clock.callLater(delay, self._turn)

    def _runnable(self) -> Optional[int]:
        """
        @return: the index in L{waiting} of the first request that may
            start once the budget allows (one of L{EXEMPT_PATHS} needs no
            slot), or C{None}.
        """
        busy = self.busy
        for index, (_, slot, _) in enumerate(self.waiting):
            if slot is None or not busy:
                return index
        return None

    def _turn(self) -> None:
        self._turn_call = None
        index = self._runnable()
        if index is None:
            return
        if not self._ready():
            self._next()
            return
        request, slot, proceed = self.waiting[index]
        del self.waiting[index]
        if not getattr(request, "_disconnected", False):
            if slot is None:
                proceed()
            else:
                slot[0] = True
                self.in_flight += 1
                self._run(proceed)
        self._next()

    def _span(self, request: IRequest, method: str, route: str) -> Optional[Any]:
        tracing = self._tracing
        if tracing is None:
            return None
        headers = {}
        for name in ("traceparent", "tracestate"):
            value = request.getHeader(name.encode("ascii"))
            if value is not None:
                headers[name] = value.decode("latin-1")
        span = tracing.http_server_span(method, route, headers, {
            "http.request.method": method if len(method) <= 16 else "_OTHER",
            "http.route": route,
            "url.scheme": "https" if request.isSecure() else "http",
        })
        info = request_info(request)
        info.span, info.tracing = span, tracing
        return span

    def _finished(self, result: Any, request: IRequest, route: str, method: str, started: float,
                  span: Optional[Any], slot: List[bool]) -> None:
        if slot[0]:
            self.in_flight -= 1
            self._next()
        else:
            for index, (waiter, _, _) in enumerate(self.waiting):
                if waiter is request:  # its connection was lost while it waited
                    del self.waiting[index]
                    break
            if not self.waiting and self._turn_call is not None:
                self._turn_call.cancel()
                self._turn_call = None
        status = int(getattr(request, "code", 0) or 0)
        self._http.finished(route, method, status, self._clock.seconds() - started)
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR))
            span.end()
