"""
Tests for L{novasvc.api.observe}: route templates, the HTTP metrics of a
live API, the limit of requests in flight, and the HTTP server span that
parents the RPC gateway's client span.
"""

from typing import Any, List

from twisted.internet import defer, reactor, task
from twisted.python.components import Componentized
from twisted.trial import unittest

from novasvc.api._share import ReactorShare
from novasvc.api.observe import ROUTE_TEMPLATES, Observer, route_template
from novasvc.config.api import EMBEDDED_IN_FLIGHT, EMBEDDED_SHARE, EMBEDDED_WAITING, APIConfig
from novasvc.db.memory import MemoryServiceStore
from novasvc.metrics import Recorder
from tests._api import start_api


class RouteTemplateTests(unittest.SynchronousTestCase):
    """
    L{route_template}.
    """

    def test_templates(self) -> None:
        """
        When a path matches a route, then its template; any other path is
        <other>, so a client cannot make new label values.
        """
        cases = {b"/": "/", b"/healthz": "/healthz", b"/metrics": "/metrics",
                 b"/v1/openapi.json": "/v1/openapi.json", b"/v1/services": "/v1/services",
                 b"/v1/services/42": "/v1/services/{service_id}",
                 b"/v1/services/abc": "/v1/services/{service_id}",
                 b"/v1/rpc/volume": "/v1/rpc/{topic}", b"/v1/services/1/x": "<other>",
                 b"/nope": "<other>", b"/healthzz": "<other>"}
        for path, template in cases.items():
            self.assertEqual(route_template(path), template, path)
        self.assertEqual(len(ROUTE_TEMPLATES), 7)


class _SlowStore(MemoryServiceStore):
    """
    A memory store whose listings wait until released.
    """

    def __init__(self) -> None:
        MemoryServiceStore.__init__(self)
        self.waiting: List[defer.Deferred] = []

    def list_services(self, *args: Any, **kwargs: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.waiting.append(d)
        return d.addCallback(lambda _: MemoryServiceStore.list_services(self, *args, **kwargs))


async def _wait_for(condition: Any) -> None:
    from twisted.internet import task

    for _ in range(500):
        if condition():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition never met")


class MetricsTests(unittest.TestCase):
    """
    The HTTP metrics of a live API, scraped at C{/metrics}.
    """

    async def test_counted(self) -> None:
        """
        When requests are answered, then /metrics counts them by route
        template, method and status, with a latency histogram by route and
        method, and the requests in flight (the scrape itself).
        """
        recorder = Recorder()
        live = await start_api(self, recorder=recorder)
        await live.store.create("h1", "novasvc-x", "x")
        for path in ["/v1/services", "/v1/services", "/v1/services/1", "/v1/services/999",
                     "/no/such/thing"]:
            await live.request("GET", path)
        text = (await live.request("GET", "/metrics")).body.decode()
        for line in [
            'novasvc_http_requests_total{method="GET",route="/v1/services",status="200"} 2.0',
            'novasvc_http_requests_total{method="GET",route="/v1/services/{service_id}",'
            'status="200"} 1.0',
            'novasvc_http_requests_total{method="GET",route="/v1/services/{service_id}",'
            'status="404"} 1.0',
            'novasvc_http_requests_total{method="GET",route="<other>",status="404"} 1.0',
            'novasvc_http_request_duration_seconds_count{method="GET",route="/v1/services"} 2.0',
            "novasvc_http_inflight 1.0",
        ]:
            self.assertIn(line, text)
        self.assertNotIn("services/999", text)  # a bare 999 may be in a duration's digits


class LimitTests(unittest.TestCase):
    """
    The limit of requests in flight.
    """

    async def test_past_the_limit(self) -> None:
        """
        When the limit of requests in flight (C{api.max_in_flight}) is
        reached, then the next request gets 503 with C{api.retry_after} at
        once, /healthz is still
        served, and once the first ones are answered requests are served
        again.
        """
        store = _SlowStore()
        await store.start()
        live = await start_api(self, store=store, api=APIConfig(max_in_flight=2, retry_after=7))
        slow = [defer.ensureDeferred(live.request("GET", "/v1/services")) for _ in range(2)]
        await _wait_for(lambda: len(store.waiting) == 2)
        response = await live.request("GET", "/v1/services", headers={"X-Request-Id": "req-busy"})
        self.assertEqual((response.code, response.headers["retry-after"]), (503, "7"))
        self.assertEqual(response.headers["x-request-id"], "req-busy")
        self.assertIn("busy (2 requests handled, 0 waiting)", response.json()["error"]["message"])
        self.assertEqual(len(store.waiting), 2)
        self.assertEqual((await live.request("GET", "/healthz")).code, 200)
        for d in store.waiting:
            d.callback(None)
        self.assertEqual([(await d).code for d in slow], [200, 200])
        self.assertEqual(live.service.site.observer.in_flight, 0)
        store.waiting.clear()
        served = defer.ensureDeferred(live.request("GET", "/v1/services"))
        await _wait_for(lambda: store.waiting)
        store.waiting[0].callback(None)
        self.assertEqual((await served).code, 200)


class SpanTests(unittest.TestCase):
    """
    The HTTP server span.
    """

    async def test_gateway_span_parent(self) -> None:
        """
        When the API is given a tracing and the gateway calls a method, then the request
        is a SERVER span named after its route template, with its status,
        and the gateway's RPC client span is its child in the same trace; a
        client's traceparent makes it a child.
        """
        from novasvc.rpc.server import RPCServer
        from novasvc.rpc.target import Target
        from novasvc.tracing._spans import Tracing
        from novasvc.transport.memory import MemoryBroker, MemoryTransport
        from tests.test_tracing import _provider

        provider, exporter = _provider()
        tracing = Tracing("api", "h1", tracer_provider=provider)
        tracing.start()
        self.addCleanup(tracing.stop)
        broker = MemoryBroker()

        class Echo:
            def echo(self, ctxt: Any, value: Any) -> Any:
                return value

        server = RPCServer(MemoryTransport(broker=broker, clock=reactor), Target(topic="echo",
                           server="h1"), [Echo()], clock=reactor)
        await server.start()
        self.addCleanup(server.stop)
        live = await start_api(self, transport=MemoryTransport(broker=broker, clock=reactor), tracing=tracing)
        parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
        response = await live.request("POST", "/v1/rpc/echo", {"method": "echo",
                                                               "args": {"value": 3}},
                                      headers={"traceparent": parent})
        self.assertEqual(response.json(), {"result": 3})
        spans = {s.name: s for s in exporter.get_finished_spans()}
        http = spans["POST /v1/rpc/{topic}"]
        client = [s for s in exporter.get_finished_spans()
                  if s.name == "echo.echo" and s.kind.name == "CLIENT"][0]
        self.assertEqual(http.kind.name, "SERVER")
        self.assertEqual(http.attributes["http.route"], "/v1/rpc/{topic}")
        self.assertEqual(http.attributes["http.response.status_code"], 200)
        self.assertEqual(http.context.trace_id, int("a" * 32, 16))
        self.assertEqual(http.parent.span_id, int("b" * 16, 16))
        self.assertEqual(client.parent.span_id, http.context.span_id)
        self.assertEqual(client.context.trace_id, http.context.trace_id)


class WaitingTests(unittest.TestCase):
    """
    Requests waiting for a slot (the API of a service).
    """

    async def test_wait_then_503(self) -> None:
        """
        When every slot is taken, then a request waits (up to
        C{api.max_waiting})
        and is handled once a slot frees, in order, with the listing read
        less than LISTING_REUSE seconds before reused for it; past
        max_waiting, 503.
        """
        store = _SlowStore()
        await store.start()
        await MemoryServiceStore.create(store, "h1", "novasvc-x", "x")
        live = await start_api(self, store=store, api=APIConfig(max_in_flight=1, max_waiting=1))
        observer = live.service.site.observer
        first = defer.ensureDeferred(live.request("GET", "/v1/services"))
        await _wait_for(lambda: len(store.waiting) == 1)
        second = defer.ensureDeferred(live.request("GET", "/v1/services"))
        await _wait_for(lambda: len(observer.waiting) == 1)
        third = await live.request("GET", "/v1/services")
        self.assertEqual(third.code, 503)
        self.assertIn("1 waiting", third.json()["error"]["message"])
        store.waiting[0].callback(None)
        done = await first
        self.assertEqual(done.code, 200)
        answer = await second
        self.assertEqual(answer.json(), done.json())
        self.assertEqual(len(store.waiting), 1, "the waiting request reused the listing")
        self.assertEqual((observer.in_flight, len(observer.waiting)), (0, 0))

    def _embedded_observer(self, api: APIConfig) -> Any:
        import types

        from novasvc.api.service import APIService
        from novasvc.config import Config
        from novasvc.transport.memory import MemoryTransport

        service = types.SimpleNamespace(config=Config(host="h", api=api),
                                        store=MemoryServiceStore(),
                                        transport=MemoryTransport(clock=reactor), clock=reactor,
                                        service_down_time=60)
        return APIService.for_service(service).site.observer

    def test_embedded_limits(self) -> None:
        """
        When the API is a service's, then it handles EMBEDDED_IN_FLIGHT
        requests at once and lets EMBEDDED_WAITING wait, whatever
        C{api.max_in_flight} and C{api.max_waiting} (the API on its own's)
        say.
        """
        observer = self._embedded_observer(APIConfig(max_in_flight=50, max_waiting=5))
        self.assertEqual((observer.max_in_flight, observer.max_waiting),
                         (EMBEDDED_IN_FLIGHT, EMBEDDED_WAITING))

    def test_embedded_limits_configured(self) -> None:
        """
        When C{api.service_max_in_flight} and C{api.service_max_waiting}
        are set, then the API of a service handles and lets wait that many.
        """
        observer = self._embedded_observer(APIConfig(service_max_in_flight=4,
                                                     service_max_waiting=10))
        self.assertEqual((observer.max_in_flight, observer.max_waiting), (4, 10))

    def test_embedded_share(self) -> None:
        """
        When the API is a service's, then its requests take at most
        C{api.service_reactor_share} of the reactor (EMBEDDED_SHARE by
        default), and the interpreter switches threads every
        SWITCH_INTERVAL seconds while it runs; with a share of 1, and for
        the API on its own, there is no budget.
        """
        from novasvc.api.service import SWITCH_INTERVAL, APIService

        observer = self._embedded_observer(APIConfig())
        self.assertEqual(observer.share.share, EMBEDDED_SHARE)
        self.assertEqual(self._embedded_observer(APIConfig(service_reactor_share=0.5)).share.share,
                         0.5)
        self.assertIsNone(self._embedded_observer(APIConfig(service_reactor_share=1)).share)
        self.assertEqual(SWITCH_INTERVAL, 0.0005)
        self.assertIsNone(APIService.switch_interval)


class _Request(Componentized):
    """
    What L{Observer.admit} reads of a request, finished by hand.
    """

    def __init__(self, path: bytes = b"/v1/services") -> None:
        Componentized.__init__(self)
        self.path, self.method, self.code = path, b"GET", 200
        self._finished: List[defer.Deferred] = []

    def notifyFinish(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self._finished.append(d)
        return d

    def finish(self) -> None:
        for d in self._finished:
            d.callback(None)


class ShareTests(unittest.SynchronousTestCase):
    """
    L{Observer} with a budget of reactor time (L{ReactorShare}).
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.meter = [0.0]
        self.started: List[float] = []

    def observer(self, share: Any) -> Observer:
        return Observer(Recorder(), self.clock, max_in_flight=2, max_waiting=10, share=share)

    def admit(self, observer: Observer, request: _Request, cost: float = 0.001) -> bool:
        def proceed() -> None:
            self.started.append(self.meter[0])
            self.meter[0] += cost  # the reactor time the request takes
            request.finish()

        return observer.admit(request, proceed)

    def advance(self, seconds: float) -> None:
        self.meter[0] += seconds
        self.clock.advance(seconds)

    def test_paced(self) -> None:
        """
        When requests come faster than the share allows, then each waiting
        one starts once the budget has refilled, in a reactor turn of its
        own: with a quarter of the reactor, a request of 1 ms every 4 ms.
        """
        observer = self.observer(ReactorShare(0.25, lambda: self.meter[0], burst=0.0))
        requests = [_Request() for _ in range(4)]
        self.assertEqual([self.admit(observer, r) for r in requests], [True] * 4)
        self.assertEqual(self.started, [0.0])
        self.assertEqual(len(observer.waiting), 3)
        [call] = self.clock.getDelayedCalls()
        self.assertAlmostEqual(call.getTime(), 0.003)
        for _ in range(14):
            self.advance(0.001)
        self.assertEqual(len(observer.waiting), 0)
        gaps = [b - a for a, b in zip(self.started, self.started[1:])]
        self.assertEqual(len(gaps), 3)
        for gap in gaps:  # 4 ms, give or take the 1 ms steps of the clock
            self.assertTrue(0.004 - 1e-9 <= gap <= 0.005 + 1e-9, gaps)
        self.assertEqual(observer.in_flight, 0)
        self.assertAlmostEqual(observer.share.spent, 0.004)

    def test_exempt_and_full(self) -> None:
        """
        When the budget is spent, then past max_waiting a request is refused
        (503) as without a budget, but /healthz never is: it waits its turn
        in the same line, and starts once the budget allows.
        """
        observer = self.observer(ReactorShare(0.25, lambda: self.meter[0], burst=0.0))
        observer.max_waiting = 1
        self.assertTrue(self.admit(observer, _Request()))
        self.assertTrue(self.admit(observer, _Request()))
        self.assertFalse(self.admit(observer, _Request()))
        health = _Request(b"/healthz")
        self.assertTrue(self.admit(observer, health))
        self.assertEqual(len(self.started), 1)
        for _ in range(10):
            self.advance(0.001)
        self.assertEqual(len(self.started), 3)
        self.assertEqual(observer.waiting, type(observer.waiting)())

    def test_exempt_stream_starves_nothing(self) -> None:
        """
        When a client sends /metrics again each time it is answered, while
        the budget is spent, then a waiting request still starts, within a
        few of those requests' turns.
        """
        observer = self.observer(ReactorShare(0.25, lambda: self.meter[0], burst=0.0))
        self.admit(observer, _Request(), cost=0.004)
        listing = _Request(b"/v1/services")
        self.admit(observer, listing)
        metrics_started = []

        def metrics() -> None:
            request = _Request(b"/metrics")

            def proceed() -> None:
                metrics_started.append(self.meter[0])
                self.meter[0] += 0.002
                request.finish()
                self.clock.callLater(0.0005, metrics)

            observer.admit(request, proceed)

        metrics()
        for _ in range(100):
            self.advance(0.001)
        self.assertEqual(len(self.started), 2, "the listing never started")
        self.assertGreater(len(metrics_started), 5)

    def test_lost_while_waiting(self) -> None:
        """
        When the only waiting request's connection is lost, then nothing is
        left scheduled.
        """
        observer = self.observer(ReactorShare(0.25, lambda: self.meter[0], burst=0.0))
        self.admit(observer, _Request())
        lost = _Request()
        self.admit(observer, lost)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        lost.finish()
        self.assertEqual((list(observer.waiting), self.clock.getDelayedCalls()), ([], []))

    def test_no_share(self) -> None:
        """
        When there is no budget, then a waiting request starts in the next
        reactor turn once a slot frees.
        """
        observer = self.observer(None)
        blocked = [_Request(), _Request()]
        for request in blocked:
            observer.admit(request, lambda: None)
        self.admit(observer, _Request())
        self.assertEqual(self.started, [])
        blocked[0].finish()
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [0.0])
        self.clock.advance(0)
        self.assertEqual(self.started, [0.0])
