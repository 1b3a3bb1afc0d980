# -*- test-case-name: tests.test_api_context -*-
"""
What the API's parts share: L{APIContext} (what the application factory and
each filter are given), and what one request carries from filter to handler:
its request id and who made it (L{RequestInfo}), turned into the
L{novasvc.context.RequestContext} of the RPC world by L{request_context}.
"""

import datetime
from typing import Any, Callable, Dict, List, Optional

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from zope.interface import Attribute, Interface

from novasvc.config import Config
from novasvc.context import RequestContext, generate_request_id
from novasvc.db.rules import default_utcnow
from novasvc.interfaces import IServiceStore, ITransport
from novasvc.core.servicegroup import effective_service_down_time

__all__ = ["APIContext", "Principal", "RequestInfo", "request_context", "request_info"]

_log = Logger()


@attrs.frozen
class APIContext:
    """
    What the application factory (C{app(context)}) and each filter
    (C{filter(resource, context)}) get.

    @ivar config: the whole L{Config}; C{config.api} is the C{api:} section.
    @ivar store: the services table (L{IServiceStore}), shared with the
        service the API runs in, if any.
    @ivar transport: the broker connection (L{ITransport}).
    @ivar clock: the reactor: an C{IReactorTime} (C{callLater},
        C{seconds}) for timeouts and durations.
    @ivar service_down_time: B{seconds} without a report after which a
        service is down, as the service computes it (Nova's rule: see
        L{effective_service_down_time}).
    @ivar utcnow: returns the current time as a naive UTC C{datetime}, the
        stores' clock, for L{novasvc.core.servicegroup.is_up}.
    @ivar recorder: the metrics recorder C{GET /metrics} exports, or
        C{None} for the process's own.
    @ivar tracing: the L{novasvc.tracing.Tracing} of the API's HTTP server
        spans and the gateway's RPC client spans (the service's, when the
        API runs in one), or C{None}: no spans.
    @ivar notifier: the versioned L{novasvc.notify.notifier.Notifier} of
        the service notifications the routes send, or C{None} for one made
        from C{config} and C{transport} on first use.
    @ivar row_deleted: for the API of a service, returns C{True} while the
        service's own row is found deleted (C{/healthz} then reports a
        failed C{registration} check); C{None} for the standalone API.
    @ivar worker: the index (from 1) of the API worker process the API
        runs in (L{novasvc.process.api_workers}), or C{None} when it runs in a
        process of its own or in a service's.
    """

    config: Config
    store: IServiceStore
    transport: ITransport
    clock: Any
    service_down_time: float
    utcnow: Callable[[], datetime.datetime] = default_utcnow
    recorder: Any = None
    tracing: Any = None
    notifier: Any = None
    row_deleted: Optional[Callable[[], bool]] = None
    worker: Optional[int] = None
    _stoppers: List[Callable[[], Any]] = attrs.field(factory=list, init=False, repr=False,
                                                      eq=False)

    def on_stop(self, stopper: Callable[[], Any]) -> None:
        """
        Have C{stopper()} (which may return a C{Deferred}) called when the
        API stops, after it stopped listening: a part that holds something
        (an RPC client's reply queue) releases it there.
        """
        self._stoppers.append(stopper)

    def stop(self) -> defer.Deferred:
        """
        Call every stopper given to L{on_stop}, the last given first; a
        failure is logged and the others still run.

        @return: a C{Deferred} firing with C{None} once they are done.
        """
        stoppers = list(reversed(self._stoppers))
        self._stoppers.clear()
        done = [defer.maybeDeferred(stopper).addErrback(
            lambda f: _log.failure("Error while stopping the API", f)) for stopper in stoppers]
        return defer.gatherResults(done).addCallback(lambda _: None)

    @classmethod
    def create(cls, config: Config, store: IServiceStore, transport: ITransport, clock: Any,
               **kwargs: Any) -> "APIContext":
        """
        @return: a context whose C{service_down_time} is the one a service
            with C{config} uses.
        """
        down = effective_service_down_time(config.report_interval, config.service_down_time)
        return cls(config=config, store=store, transport=transport, clock=clock,
                   service_down_time=down, **kwargs)


@attrs.frozen
class Principal:
    """
    Who made a request.

    @ivar name: the token's name, or C{"loopback"} for a loopback client
        when no token is configured.
    @ivar role: C{"reader"} or C{"admin"}.
    """

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@attrs.define
class RequestInfo:
    """
    What the filters learnt about one request.

    @ivar request_id: the request id (C{str}), echoed as C{X-Request-Id}.
    @ivar principal: the authenticated L{Principal}, or C{None} (a public
        route, or no auth filter).
    @ivar span: the request's HTTP server span while tracing is on
        (L{novasvc.api.observe}), or C{None}.
    @ivar tracing: the L{novasvc.tracing.Tracing} that made C{span}, or
        C{None}.
    @ivar waited: whether it had to wait for a slot (the API is under
        load).
    """

    request_id: str = attrs.field(factory=generate_request_id)
    principal: Optional[Principal] = None
    span: Any = None
    tracing: Any = None
    waited: bool = False


class _IRequestInfo(Interface):
    request_id = Attribute("the request id")


def request_info(request: IRequest) -> RequestInfo:
    """
    @param request: a C{twisted.web.server.Request} (a C{Componentized}).
    @return: the request's L{RequestInfo}, made with a new request id on
        first use.
    """
    info = request.getComponent(_IRequestInfo)  # type: ignore[attr-defined]
    if info is None:
        info = RequestInfo()
        request.setComponent(_IRequestInfo, info)  # type: ignore[attr-defined]
    return info


def request_context(request: IRequest) -> RequestContext:
    """
    The RPC request context of an API request: its request id, the token's
    name as C{user_id}, its role in C{roles}, C{is_admin} for an admin, the
    client's address, and (tracing on) the trace context of its HTTP span.

    @return: a new L{RequestContext}.
    """
    info = request_info(request)
    principal = info.principal
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    extra: Dict[str, Any] = {}
    if info.span is not None and info.tracing is not None:
        info.tracing.inject(info.span, extra)  # the parent of the RPC client span
    return RequestContext(
        extra=extra,
        user_id=principal.name if principal else None,
        request_id=info.request_id,
        is_admin=bool(principal and principal.is_admin),
        roles=[principal.role] if principal else [],
        remote_address=host if isinstance(host, str) else None,
    )
