# -*- test-case-name: tests.test_api_app -*-
"""
The API's routes (klein), the default application of C{api.app}:
L{make_app}.

  - C{GET /healthz}: 200 C{{"status": "ok", "checks": {...}}}, or 503 with
    C{"status": "degraded"} and C{Retry-After} when the broker or the
    database is not reachable (each reported under C{checks}).
  - C{GET /v1/services} (C{?host=}, C{?binary=}), C{GET}, C{PUT} and
    C{DELETE /v1/services/{id}}: the services table, as Nova's
    C{os-services} API (microversion 2.53's body for C{PUT}). A C{PUT}
    that changes C{disabled}, C{disabled_reason} or C{forced_down} sends
    one versioned C{service.update} notification, a C{DELETE} one
    C{service.delete} (L{novasvc.core.service_status}), through the context's
    versioned notifier, without waiting for the broker's confirm.
  - C{POST /v1/rpc/{topic}}: the RPC gateway (admin only),
    L{novasvc.api.gateway.RPCGateway}; its error payloads get the API's
    C{title} too.
  - C{GET /metrics}: Prometheus metrics of the context's recorder,
    L{novasvc.metrics.prometheus.MetricsResource}; 501 naming the C{api}
    extra when C{prometheus_client} is not installed.
  - C{GET /}: the status page, L{novasvc.api.status_page.render}.
  - C{GET /v1/openapi.json}: L{novasvc.api.openapi.document}.

The gateway, the status page and the exporter are imported on their first
request, not with this module. Errors are JSON (L{novasvc.api.errors}); an
unknown path is 404 and a known path with another method 405 (with
C{Allow}); a bug is 500 with a generic message, its traceback logged once
with the request id.

The routes are this module's; what they read from a request is in
L{novasvc.api._requests}, how they show the services table in
L{novasvc.api._service_view}, and the health check in L{novasvc.api._health}.
"""

import datetime
import os
from typing import Any, Dict, List, Optional, Tuple

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from novasvc.api.context import APIContext, request_context, request_info
from novasvc.api.errors import APIError, render_encoded, render_error, render_json, status_title
from novasvc.api._health import Health
from novasvc.api._requests import (force_flag, listing_filters, read_json, read_object,
                                   path_service_id, require_admin, service_changes)
from novasvc.api._service_view import encode_listing, iso_time, service_view
from novasvc.api.outage import DatabaseGuard, DatabaseUnavailable
from novasvc.core.service_status import DELETE, UPDATE, notify_service, status_changed
from novasvc.core.servicegroup import is_up
from novasvc.db.record import ServiceRecord
from novasvc.exceptions import ServiceNotFound
from novasvc._text import clip

__all__ = ["make_app"]

_log = Logger()

#: B{Seconds} a listing may be reused for a request that had to wait for
#: a slot (the API is under load, L{novasvc.api.observe}); writes through
#: this API drop it. A request that did not wait is always read afresh.
LISTING_REUSE = 1.0
_LISTINGS_KEPT = 64
#: B{Seconds} between the status page's reloads of itself.
PAGE_REFRESH = 10


def _klein() -> Klein:
    app = Klein()
    app.url_map.merge_slashes = False  # no redirect for //v1/services
    return app


def _path(request: IRequest) -> str:
    return request.path.decode("utf-8", "replace")


def _metrics_resource(recorder: Any) -> IResource:
    """
    @param recorder: the recorder to export, or C{None} for the process's.
    @return: a L{novasvc.metrics.prometheus.MetricsResource}.
    @raise APIError: 501 naming the C{api} extra when C{prometheus_client}
        cannot be imported; any other import error raises as it is.
    """
    try:
        from novasvc.metrics.prometheus import MetricsResource
    except ImportError as e:
        missing = e.__cause__ if isinstance(e.__cause__, ImportError) else e
        if (getattr(missing, "name", None) or "").split(".")[0] != "prometheus_client":
            raise
        raise APIError(501, "the metrics exporter needs prometheus_client: "
                       "pip install 'novasvc[api]'") from None
    return MetricsResource(recorder)


class _Routes:
    """
    The routes, bound to one L{APIContext}.
    """

    app = _klein()

    def __init__(self, context: APIContext) -> None:
        self.context = context
        self._health = Health(context)
        self._guard: Optional[DatabaseGuard] = None
        self._last_listing: Optional[Tuple[List[ServiceRecord], datetime.datetime]] = None
        #: Encoded listings by filters: (clock seconds read, body).
        self._listings: Dict[Tuple[Tuple[str, str], ...], Tuple[float, bytes]] = {}
        self._gateway: Optional[Any] = None
        self._notifier: Optional[Any] = getattr(context, "notifier", None)
        self._metrics: Optional[IResource] = None
        context.on_stop(self._stop)
        self._workers: Optional[Any] = None
        if getattr(context, "worker", None) is not None and os.environ.get("NOVASVC_API_METRICS_DIR"):
            self._start_worker_metrics()

    def _start_worker_metrics(self) -> None:
        """
        Under API workers, dump this worker's metrics for the others, and
        serve every worker's at C{/metrics} (L{novasvc.api.worker_metrics}).
        """
        try:
            from novasvc.api import worker_metrics
            from novasvc.metrics import get_recorder

            recorder = self.context.recorder
            self._workers = worker_metrics.from_environ(
                recorder if recorder is not None else get_recorder(), self.context.clock,
                self.context.worker)
        except ImportError:
            return
        if self._workers is not None:
            self._workers.start()
            self.context.on_stop(self._workers.stop)

    @property
    def _db(self) -> DatabaseGuard:
        if self._guard is None:
            api = self.context.config.api
            self._guard = DatabaseGuard(self.context.clock,
                                        wall=lambda: iso_time(self.context.utcnow()) or "?",
                                        deadline=api.database_deadline,
                                        retry_after=api.retry_after)
        return self._guard

    def _stop(self) -> Any:
        gateway, self._gateway = self._gateway, None
        stop = getattr(gateway, "stop", None)
        return stop() if stop is not None else None

    # -- errors ------------------------------------------------------------

    @app.handle_errors(APIError)
    def _api_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        return render_error(request, error.code, error.message, error.headers, **error.extra)

    @app.handle_errors(HTTPException)
    def _http_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        method = request.method.decode("ascii", "replace")
        if isinstance(error, MethodNotAllowed):
            allowed = sorted(error.valid_methods or ())
            return render_error(request, 405, f"{clip(method)} is not allowed on "
                                f"{clip(_path(request))}; allowed: {', '.join(allowed)}",
                                {b"Allow": ", ".join(allowed).encode("ascii")})
        if isinstance(error, NotFound) or not 400 <= (error.code or 0) < 600:
            return render_error(request, 404, f"no such resource: {clip(_path(request))}")
        return render_error(request, error.code, error.description or "error")

    @app.handle_errors(Exception)
    def _bug(self, request: IRequest, failure: Failure) -> bytes:
        request_id = request_info(request).request_id
        _log.failure("Error handling {method} {path} (request {request_id})", failure,
                     method=clip(request.method.decode("ascii", "replace")),
                     path=clip(_path(request)), request_id=request_id)
        return render_error(request, 500, f"internal error (request {request_id}); "
                            "the server's log has the details")

    # -- health ------------------------------------------------------------

    @app.route("/healthz", methods=["GET"])
    async def healthz(self, request: IRequest) -> bytes:
        status, payload = await self._health.report()
        if status == 503:
            request.setHeader(b"Retry-After", b"%d" % self.context.config.api.retry_after)
        return render_json(request, status, payload)

    # -- services ----------------------------------------------------------

    @app.route("/v1/services", methods=["GET"])
    async def list_services(self, request: IRequest) -> bytes:
        filters = listing_filters(request)
        key = tuple(sorted(filters.items()))
        cached = self._listings.get(key)
        if (cached is not None and request_info(request).waited
                and self.context.clock.seconds() - cached[0] < LISTING_REUSE):
            return render_encoded(request, 200, cached[1])
        records = await self._db.call(self.context.store.list_services, **filters)
        read_at = self.context.clock.seconds()
        body = await encode_listing(records, self.context.utcnow(), self.context.service_down_time,
                                    self.context.clock)
        if len(self._listings) >= _LISTINGS_KEPT:
            self._listings.clear()
        self._listings[key] = (read_at, body)
        return render_encoded(request, 200, body)

    # The range is checked by path_service_id: werkzeug's own bounds turn an id out
    # of range into 405 for the other methods.
    _ID = "/v1/services/<int:service_id>"

    @app.route(_ID, methods=["GET"])
    async def show_service(self, request: IRequest, service_id: int) -> bytes:
        record = await self._get(path_service_id(service_id))
        return render_json(request, 200, {"service": self._view(record)})

    @app.route(_ID, methods=["PUT"])
    async def update_service(self, request: IRequest, service_id: int) -> bytes:
        require_admin(request)
        service_id = path_service_id(service_id)
        changes = service_changes(read_object(request))
        before = await self._get(service_id)
        try:
            record = await self._db.call(self.context.store.update, service_id, **changes)
        except ServiceNotFound:
            raise APIError(404, f"no service with id {service_id}") from None
        self._listings.clear()
        if status_changed(before, record):
            notify_service(self._get_notifier(), UPDATE, record, request_context(request))
        return render_json(request, 200, {"service": self._view(record)})

    @app.route(_ID, methods=["DELETE"])
    async def delete_service(self, request: IRequest, service_id: int) -> bytes:
        require_admin(request)
        service_id = path_service_id(service_id)
        force = force_flag(request)
        record = await self._get(service_id)
        if not force and is_up(record, self.context.utcnow(), self.context.service_down_time):
            raise APIError(409, f"service {service_id} ({clip(record.binary)} on "
                           f"{clip(record.host)}) is up: stop it first, or delete it anyway "
                           "with ?force=true (a running service registers again)",
                           type="ServiceIsUp")
        try:
            await self._db.call(self.context.store.destroy, service_id)
        except ServiceNotFound:
            raise APIError(404, f"no service with id {service_id}") from None
        self._listings.clear()
        notify_service(self._get_notifier(), DELETE, record, request_context(request))
        request.setResponseCode(204)
        request.responseHeaders.removeHeader(b"content-type")
        return b""

    async def _get(self, service_id: int) -> ServiceRecord:
        try:
            return await self._db.call(self.context.store.get, service_id)
        except ServiceNotFound:
            raise APIError(404, f"no service with id {service_id}") from None

    def _view(self, record: ServiceRecord) -> Dict[str, Any]:
        return service_view(record, self.context.utcnow(), self.context.service_down_time)

    # -- RPC gateway -------------------------------------------------------

    @app.route("/v1/rpc/<topic>", methods=["POST"])
    async def rpc(self, request: IRequest, topic: str) -> bytes:
        require_admin(request)
        body = read_json(request)
        gateway = self._get_gateway()
        status, payload = await gateway.handle(topic, body, request_context(request))
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and "title" not in error:
            # The API's one error shape: code, title, message (and more).
            payload = {**payload, "error": {"code": status, "title": status_title(status), **error}}
        if status == 503:
            request.setHeader(b"Retry-After", b"%d" % self.context.config.api.retry_after)
        return render_json(request, status, payload)

    def _get_notifier(self) -> Any:
        """
        @return: the context's versioned notifier, or one made on first use
            from the configuration and the transport.
        """
        if self._notifier is None:
            from novasvc.notify.notifier import Notifier

            self._notifier = Notifier.from_config(self.context.transport, self.context.config,
                                                  versioned=True)
        return self._notifier

    def _get_gateway(self) -> Any:
        if self._gateway is None:
            from novasvc.api.gateway import RPCGateway  # the RPC client, on first use

            tracing = getattr(self.context, "tracing", None)
            self._gateway = RPCGateway(self.context.transport, self.context.config, self.context.clock,
                                       **({} if tracing is None else {"tracing": tracing}))
        return self._gateway

    # -- metrics and the status page ---------------------------------------

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> IResource:
        if self._metrics is None:
            self._metrics = _metrics_resource(self.context.recorder)
            if self._workers is not None:
                self._metrics = self._workers.resource()
        return self._metrics

    @app.route("/", methods=["GET"])
    async def status_page(self, request: IRequest) -> bytes:
        from novasvc.api.status_page import render

        now = self.context.utcnow()
        try:
            records = await self._db.call(self.context.store.list_services)
        except DatabaseUnavailable as e:
            # The page still shows what it last knew, under a banner.
            known, as_of = self._last_listing or ([], None)
            page = render(known, now, self.context.service_down_time, refresh=PAGE_REFRESH,
                          outage=(self._db.down_since or "?",
                                  self._db.reason or "unavailable", as_of))
            request.setResponseCode(503)
            for name, value in e.headers.items():
                request.setHeader(name, value)
        else:
            self._last_listing = (list(records), now)
            page = render(records, now, self.context.service_down_time, refresh=PAGE_REFRESH)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy",
                          b"default-src 'none'; style-src 'unsafe-inline'")
        return page

    # -- the document ------------------------------------------------------

    @app.route("/v1/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        from novasvc.api.gateway import MAX_TIMEOUT
        from novasvc.api.openapi import document

        config = self.context.config
        return render_json(request, 200, document(
            tokens=bool(config.api.tokens),
            max_timeout=max(MAX_TIMEOUT, float(config.rpc_response_timeout)),
            health_timeout=config.api.health_timeout))


def make_app(context: APIContext) -> IResource:
    """
    The default C{api.app}.

    @param context: the L{APIContext}.
    @return: the routes as one resource.
    """
    return _Routes(context).app.resource()
