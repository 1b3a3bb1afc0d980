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
  - At most C{max_in_flight} requests are handled at once (default
    L{MAX_IN_FLIGHT}); past it, a request gets 503 with C{Retry-After} at
    once, before any work, so the API never queues more work on the
    reactor than that, and an RPC service in the same process keeps its
    share. C{/healthz} and C{/metrics} are always served.
"""

import re
from typing import Any, Optional, Tuple

from twisted.web.iweb import IRequest

from novasvc import tracing as _tracing
from novasvc.api.context import request_info

__all__ = ["EXEMPT_PATHS", "MAX_IN_FLIGHT", "ROUTE_TEMPLATES", "Observer", "route_template"]

#: The requests one process's API handles at once; more get 503.
MAX_IN_FLIGHT = 64
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

    @ivar in_flight: requests admitted and not yet answered (C{int}).
    """

    def __init__(self, recorder: Any, clock: Any, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        """
        @param recorder: the L{novasvc.metrics.Recorder} to count in.
        @param clock: C{IReactorTime}, for durations.
        @param max_in_flight: the most requests handled at once.
        """
        self._http = recorder.http
        self._clock = clock
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def admit(self, request: IRequest) -> bool:
        """
        Start observing C{request}: it counts as in flight until its answer
        is finished (or its connection lost).

        @return: C{False} when it is one too many (answer 503 and do not
            handle it); it is still counted and ends like any request.
        """
        route = route_template(request.path)
        started = self._clock.seconds()
        method = request.method.decode("ascii", "replace")
        self._http.started()
        span = self._span(request, method, route)
        admitted = request.path in EXEMPT_PATHS or self.in_flight < self.max_in_flight
        if admitted:
            self.in_flight += 1
        request.notifyFinish().addBoth(self._finished, request, route, method, started, span,
                                       admitted)
        return admitted

    def _span(self, request: IRequest, method: str, route: str) -> Optional[Any]:
        tracing = _tracing.active
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
        request_info(request).span = span
        return span

    def _finished(self, result: Any, request: IRequest, route: str, method: str, started: float,
                  span: Optional[Any], admitted: bool) -> None:
        if admitted:
            self.in_flight -= 1
        status = int(getattr(request, "code", 0) or 0)
        self._http.finished(route, method, status, self._clock.seconds() - started)
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR))
            span.end()
