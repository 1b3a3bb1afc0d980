"""
Tests for L{novasvc.api.app}: each route over real HTTP on loopback (treq),
on the memory store and transport, plus one run on SQLite with RabbitMQ.
"""

import os
import sys
import types
from typing import Any, Dict, List

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from novasvc.api.app import make_app
from novasvc.config.api import APIConfig
from novasvc.config import Config
from novasvc.db.memory import MemoryServiceStore
from novasvc.testing.store_contract import START, SettableUTCNow
from tests._api import ADMIN, JSON, READER, capture_log, start_api, token_entries
from tests._services import poll

#: The API without the auth filter (handlers check the role themselves).
NO_AUTH = APIConfig(filters=("novasvc.api.request_id.request_id_filter",))


def fake_module(case: unittest.TestCase, name: str, **attributes: Any) -> types.ModuleType:
    """
    Put a module called C{name} holding C{attributes} in C{sys.modules}
    until C{case} ends; C{None} for C{attributes=None} means "missing".
    """
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    _swap(case, name, module)
    return module


def missing_module(case: unittest.TestCase, name: str) -> None:
    """
    Make C{name} impossible to import until C{case} ends.
    """
    _swap(case, name, None)


def not_imported(case: unittest.TestCase, name: str) -> None:
    """
    Take C{name} out of C{sys.modules} until C{case} ends, so that the next
    import runs it again.
    """
    _swap(case, name, None)
    del sys.modules[name]


def _swap(case: unittest.TestCase, name: str, value: Any) -> None:
    absent = object()
    previous = sys.modules.get(name, absent)
    sys.modules[name] = value

    def restore() -> None:
        if previous is absent:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous

    case.addCleanup(restore)


class _App(unittest.TestCase):
    async def api(self, **kwargs: Any):
        self.live = await start_api(self, **kwargs)
        return self.live

    async def services(self, store: Any, count: int = 2) -> List[Any]:
        return [await store.create(f"h{n}", f"novasvc-b{n % 2}", f"t{n}") for n in range(1, count + 1)]


class ListServicesTests(_App):
    """
    C{GET /v1/services}.
    """

    async def test_list(self) -> None:
        """
        When services exist, then each is listed with id, host, binary,
        topic, status, state, updated_at (the last report, ISO 8601 UTC
        with Z, or null: disabling does not move it), disabled_reason and
        forced_down; deleted ones are not listed.
        """
        now = SettableUTCNow()
        store = MemoryServiceStore(utcnow=now)
        await store.start()
        a, b, c = await self.services(store, 3)
        await store.report_state(a.id)
        now.advance(1.5)
        await store.update(a.id, disabled=True, disabled_reason="maintenance")
        await store.destroy(c.id)
        live = await self.api(store=store, utcnow=now)
        response = await live.request("GET", "/v1/services")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"services": [
            {"id": a.id, "host": "h1", "binary": "novasvc-b1", "topic": "t1",
             "status": "disabled", "state": "up", "updated_at": "2026-03-04T05:06:07.891011Z",
             "disabled_reason": "maintenance", "forced_down": False},
            {"id": b.id, "host": "h2", "binary": "novasvc-b0", "topic": "t2",
             "status": "enabled", "state": "up", "updated_at": None,
             "disabled_reason": None, "forced_down": False},
        ]})

    async def test_large_listing(self) -> None:
        """
        When the listing has LARGE_LISTING services or more, then it is
        encoded in the reactor's thread pool, and the answer is the same
        JSON.
        """
        from twisted.internet import threads

        from novasvc.api import _service_view

        self.patch(_service_view, "LARGE_LISTING", 3)
        used: List[Any] = []
        real = threads.deferToThreadPool

        def spy(*args: Any, **kwargs: Any) -> Any:
            used.append(args[2].__name__)
            return real(*args, **kwargs)

        self.patch(threads, "deferToThreadPool", spy)
        live = await self.api()
        await self.services(live.store, 2)
        self.assertEqual(len((await live.request("GET", "/v1/services")).json()["services"]), 2)
        self.assertEqual(used, [])
        await live.store.create("h9", "b9", "t9")
        response = await live.request("GET", "/v1/services")
        self.assertEqual((response.code, response.headers["content-type"]),
                         (200, "application/json"))
        self.assertEqual([s["host"] for s in response.json()["services"]], ["h1", "h2", "h9"])
        self.assertEqual(used, ["_listing_body"])

    async def test_state(self) -> None:
        """
        When a service has not reported for longer than service_down_time,
        or is forced down, then its state is down; a recent report is up.
        """
        now = SettableUTCNow()
        store = MemoryServiceStore(utcnow=now)
        await store.start()
        stale, fresh, forced = await self.services(store, 3)
        await store.update(forced.id, forced_down=True)
        now.advance(61)
        await store.report_state(fresh.id)
        live = await self.api(store=store, utcnow=now, config=Config(service_down_time=60))
        states = [s["state"] for s in (await live.request("GET", "/v1/services")).json()["services"]]
        self.assertEqual(states, ["down", "up", "down"])

    async def test_filters(self) -> None:
        """
        When C{host} or C{binary} is given, then only the matching services
        are listed.
        """
        live = await self.api()
        await self.services(live.store, 3)

        async def hosts(query: str) -> List[str]:
            response = await live.request("GET", "/v1/services" + query)
            self.assertEqual(response.code, 200, response.body)
            return [s["host"] for s in response.json()["services"]]

        self.assertEqual(await hosts("?host=h2"), ["h2"])
        self.assertEqual(await hosts("?binary=novasvc-b1"), ["h1", "h3"])
        self.assertEqual(await hosts("?binary=novasvc-b1&host=h3"), ["h3"])
        self.assertEqual(await hosts("?host=nowhere"), [])

    async def test_bad_queries(self) -> None:
        """
        When a query parameter is unknown, repeated, empty or too long,
        then 400 names it (clipped).
        """
        live = await self.api()
        cases = {
            "?hots=h1": "unknown query parameter 'hots'; accepted: host, binary",
            "?host=a&host=b": "query parameter 'host' is given 2 times",
            "?host=": "query parameter 'host' must be 1 to 255 characters long",
            "?binary=" + "b" * 256: "query parameter 'binary' must be 1 to 255 characters long",
            "?" + "x" * 5000 + "=1": "unknown query parameter 'xxxxxxxx",
        }
        for query, message in cases.items():
            response = await live.request("GET", "/v1/services" + query)
            self.assertEqual(response.code, 400)
            error = response.json()["error"]
            self.assertTrue(error["message"].startswith(message), error)
            self.assertLess(len(error["message"]), 400)


class ServiceTests(_App):
    """
    C{GET}, C{PUT} and C{DELETE /v1/services/{id}}.
    """

    async def test_show(self) -> None:
        """
        When a service is asked for by id, then it comes back; an unknown
        id is 404.
        """
        live = await self.api()
        [a] = await self.services(live.store, 1)
        response = await live.request("GET", f"/v1/services/{a.id}")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json()["service"]["host"], "h1")
        response = await live.request("GET", "/v1/services/99")
        self.assertEqual(response.code, 404)
        self.assertEqual(response.json(), {"error": {"code": 404, "title": "Not Found",
                                                     "message": "no service with id 99"}})

    async def test_disable_enable(self) -> None:
        """
        When a service is disabled with a reason, then it is disabled with
        that reason; when enabled again, the reason is cleared (as Nova).
        """
        live = await self.api()
        [a] = await self.services(live.store, 1)
        response = await live.request("PUT", f"/v1/services/{a.id}",
                                      {"status": "disabled", "disabled_reason": "disk swap"})
        self.assertEqual(response.code, 200)
        service = response.json()["service"]
        self.assertEqual((service["status"], service["disabled_reason"]), ("disabled", "disk swap"))
        stored = await live.store.get(a.id)
        self.assertEqual((stored.disabled, stored.disabled_reason), (True, "disk swap"))
        response = await live.request("PUT", f"/v1/services/{a.id}", {"status": "enabled"})
        service = response.json()["service"]
        self.assertEqual((service["status"], service["disabled_reason"]), ("enabled", None))
        self.assertFalse((await live.store.get(a.id)).disabled)

    async def test_forced_down(self) -> None:
        """
        When forced_down is set, then the service is down whatever its
        reports say; cleared, it is up again.
        """
        live = await self.api()
        [a] = await self.services(live.store, 1)
        response = await live.request("PUT", f"/v1/services/{a.id}", {"forced_down": True})
        self.assertEqual((response.json()["service"]["forced_down"],
                          response.json()["service"]["state"]), (True, "down"))
        response = await live.request("PUT", f"/v1/services/{a.id}",
                                      {"status": "disabled", "forced_down": False})
        service = response.json()["service"]
        self.assertEqual((service["forced_down"], service["state"], service["status"]),
                         (False, "up", "disabled"))

    async def test_bad_bodies(self) -> None:
        """
        When the body is wrong, then 400 names the field, 415 says the
        content type, and the service is unchanged.
        """
        live = await self.api()
        [a] = await self.services(live.store, 1)
        path = f"/v1/services/{a.id}"
        cases = [
            (b"{", JSON, 400, "the body is not valid JSON"),
            (b"[1]", JSON, 400, "the body must be a JSON object"),
            (b'{"status": NaN}', JSON, 400, "the body is not valid JSON"),
            (b"[" * 100000 + b"]" * 100000, JSON, 400, "the body is not valid JSON"),
            (b'{"status": "disabled"}', {"Content-Type": "text/plain"}, 415,
             "the body must be JSON, sent with Content-Type: application/json"),
            (b'{"status": "disabled"}', {}, 415, "the body must be JSON"),
            ({}, None, 400, "give 'status' (enabled or disabled), 'forced_down', or both"),
            ({"status": "off"}, None, 400, "status: expected 'enabled' or 'disabled', got 'off'"),
            ({"status": 1}, None, 400, "status: expected 'enabled' or 'disabled', got 1"),
            ({"forced_down": "yes"}, None, 400, "forced_down: expected true or false, got 'yes'"),
            ({"status": "enabled", "disabled_reason": "x"}, None, 400,
             "disabled_reason: only given with \"status\": \"disabled\""),
            ({"status": "disabled", "disabled_reason": "r" * 256}, None, 400,
             "disabled_reason: expected a string of 1 to 255 characters or null, got 'rrrr"),
            ({"status": "disabled", "disabled_reason": 5}, None, 400,
             "disabled_reason: expected a string of 1 to 255 characters or null, got 5"),
            ({"status": "disabled", "colour": "red"}, None, 400,
             "unknown field 'colour'; accepted: status, disabled_reason, forced_down"),
            ({"x" * 1000: 1}, None, 400, "unknown field 'xxxxx"),
        ]
        for body, headers, code, message in cases:
            response = await live.request("PUT", path, body, headers)
            self.assertEqual(response.code, code, (body, response.body))
            error = response.json()["error"]
            self.assertEqual(error["code"], code)
            self.assertTrue(error["message"].startswith(message), (body, error))
            self.assertLess(len(response.body), 1000)
        self.assertEqual(await live.store.get(a.id), a)

    async def test_unknown_ids(self) -> None:
        """
        When the id is unknown, not an integer, zero, or beyond the
        column's range, then PUT, GET and DELETE are 404.
        """
        live = await self.api()
        for path in ["/v1/services/7", "/v1/services/abc", "/v1/services/0",
                     "/v1/services/-1", "/v1/services/2147483648", "/v1/services/1.5"]:
            for method in ["GET", "PUT", "DELETE"]:
                body = {"status": "enabled"} if method == "PUT" else None
                response = await live.request(method, path, body)
                self.assertEqual(response.code, 404, (method, path))
                self.assertEqual(response.json()["error"]["code"], 404)

    async def test_delete(self) -> None:
        """
        When a service is deleted, then 204 without a body, it is no longer
        listed, it is soft-deleted (as Nova), and deleting it again is 404.
        """
        live = await self.api()
        a, b = await self.services(live.store)
        response = await live.request("DELETE", f"/v1/services/{a.id}?force=true")
        self.assertEqual((response.code, response.body), (204, b""))
        listed = (await live.request("GET", "/v1/services")).json()["services"]
        self.assertEqual([s["id"] for s in listed], [b.id])
        [deleted] = [r for r in await live.store.list_services(include_deleted=True) if r.deleted]
        self.assertEqual(deleted.id, a.id)
        self.assertEqual((await live.request("DELETE", f"/v1/services/{a.id}?force=true")).code,
                         404)

    async def test_delete_up_needs_force(self) -> None:
        """
        When the service to delete is up, then 409 naming it and ?force=true,
        the row stays and no service.delete is sent; a down one is deleted
        without force; force must be true or false, given once.
        """
        from tests.test_core_service_status import _Recorder

        now = SettableUTCNow()
        store = MemoryServiceStore(utcnow=now)
        await store.start()
        notifier = _Recorder()
        live = await self.api(store=store, utcnow=now, notifier=notifier)
        up, stale = await self.services(store)
        now.advance(3600)
        await store.report_state(up.id)
        response = await live.request("DELETE", f"/v1/services/{up.id}")
        self.assertEqual(response.code, 409)
        error = response.json()["error"]
        self.assertEqual((error["title"], error["type"]), ("Conflict", "ServiceIsUp"))
        self.assertIn("is up", error["message"])
        self.assertIn("?force=true", error["message"])
        self.assertEqual(notifier.sent, [])
        self.assertEqual((await live.request("GET", f"/v1/services/{up.id}")).code, 200)
        for query in ["?force=yes", "?force=true&force=true", "?other=1"]:
            response = await live.request("DELETE", f"/v1/services/{up.id}{query}")
            self.assertEqual(response.code, 400, query)
        self.assertEqual((await live.request("DELETE", f"/v1/services/{stale.id}")).code, 204)
        response = await live.request("DELETE", f"/v1/services/{up.id}?force=false")
        self.assertEqual(response.code, 409)
        self.assertEqual((await live.request("DELETE", f"/v1/services/{up.id}?force=true")).code,
                         204)
        self.assertEqual([event for _, _, event, _ in notifier.sent],
                         ["service.delete", "service.delete"])

    async def test_unstorable_text(self) -> None:
        """
        When a filter or disabled_reason holds NUL or a lone surrogate, then
        400 naming the field (the database could not store or compare it).
        """
        live = await self.api()
        [a] = await self.services(live.store, 1)
        for query, field in [("?host=a%00b", "host"), ("?binary=%00", "binary")]:
            response = await live.request("GET", "/v1/services" + query)
            self.assertEqual((response.code, response.json()["error"]["field"]), (400, field))
            self.assertIn("NUL", response.json()["error"]["message"])
        for reason in [r"a\u0000b", r"\ud800"]:
            body = b'{"status": "disabled", "disabled_reason": "' + reason.encode() + b'"}'
            response = await live.request("PUT", f"/v1/services/{a.id}", body, JSON)
            self.assertEqual(response.code, 400, response.body)
            self.assertEqual(response.json()["error"].get("field"), "disabled_reason", response.body)
        self.assertFalse((await live.store.get(a.id)).disabled)

    async def test_notifications(self) -> None:
        """
        When a PUT changes disabled, disabled_reason or forced_down, then
        the context's notifier sends one service.update with the record as
        it is now and the request's context; a PUT that changes nothing
        sends none; a DELETE sends service.delete with the record as it
        was.
        """
        from tests.test_core_service_status import _Recorder

        notifier = _Recorder()
        live = await self.api(notifier=notifier)
        [a] = await self.services(live.store, 1)
        await live.request("PUT", f"/v1/services/{a.id}", {"status": "disabled", "disabled_reason": "r"},
                           {"X-Request-Id": "req-1"})
        await live.request("PUT", f"/v1/services/{a.id}", {"status": "disabled", "disabled_reason": "r"})
        await live.request("PUT", f"/v1/services/{a.id}", {"forced_down": True})
        await live.request("DELETE", f"/v1/services/{a.id}?force=true")
        self.assertEqual([(publisher, event) for publisher, _, event, _ in notifier.sent], [
            ("novasvc-b1:h1", "service.update"), ("novasvc-b1:h1", "service.update"),
            ("novasvc-b1:h1", "service.delete")])
        first, second, deleted = [payload["nova_object.data"] for _, _, _, payload in notifier.sent]
        self.assertEqual((first["disabled"], first["disabled_reason"], first["forced_down"]),
                         (True, "r", False))
        self.assertEqual(second["forced_down"], True)
        self.assertEqual((deleted["host"], deleted["forced_down"]), ("h1", True))
        self.assertEqual(notifier.sent[0][1].request_id, "req-1")

    async def test_writes_need_admin(self) -> None:
        """
        When no auth filter identified the client, then the handlers still
        refuse to write (403) while reads work.
        """
        live = await self.api(api=NO_AUTH)
        [a] = await self.services(live.store, 1)
        self.assertEqual((await live.request("GET", f"/v1/services/{a.id}")).code, 200)
        for method, body in [("PUT", {"status": "disabled"}), ("DELETE", None)]:
            response = await live.request(method, f"/v1/services/{a.id}", body)
            self.assertEqual(response.code, 403)
            self.assertEqual(response.json()["error"]["message"],
                             "this needs a token with the role 'admin'")
        self.assertEqual(await live.store.get(a.id), a)


class ErrorTests(_App):
    """
    Unknown paths and methods, and bugs, as JSON errors.
    """

    async def test_not_found(self) -> None:
        """
        When the path is unknown, then 404 in the JSON error shape, the
        path clipped.
        """
        live = await self.api()
        for path in ["/nope", "/v1/services/", "/v1", "/v1/services/1/x", "/" + "z" * 3000]:
            response = await live.request("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(response.headers["content-type"], "application/json")
            error = response.json()["error"]
            self.assertEqual((error["code"], error["title"]), (404, "Not Found"))
            self.assertLess(len(error["message"]), 300)

    async def test_method_not_allowed(self) -> None:
        """
        When a path is known but not with this method, then 405 with the
        methods it allows in C{Allow}; OPTIONS too.
        """
        live = await self.api()
        response = await live.request("POST", "/v1/services")
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers["allow"], "GET, HEAD")
        self.assertEqual(response.json()["error"]["message"],
                         "POST is not allowed on /v1/services; allowed: GET, HEAD")
        response = await live.request("OPTIONS", "/v1/services/1")
        self.assertEqual((response.code, response.headers["allow"]), (405, "DELETE, GET, HEAD, PUT"))
        response = await live.request("GET", "/v1/rpc/echo")
        self.assertEqual((response.code, response.headers["allow"]), (405, "POST"))

    async def test_head(self) -> None:
        """
        When a GET route is asked with HEAD, then its status and headers
        come without a body.
        """
        live = await self.api()
        response = await live.request("HEAD", "/v1/services")
        self.assertEqual((response.code, response.body), (200, b""))
        self.assertEqual(response.headers["content-type"], "application/json")

    async def test_bug(self) -> None:
        """
        When a handler fails unexpectedly, then 500 with a generic message
        naming the request id, and the traceback is logged once with that
        id; the error's own text (which may hold client values) is not sent.
        """
        store = MemoryServiceStore()
        await store.start()

        def broken(**filters: Any) -> defer.Deferred:
            return defer.fail(ZeroDivisionError("secret detail " + "x" * 5000))

        store.list_services = broken
        log = capture_log(self)
        live = await self.api(store=store)
        response = await live.request("GET", "/v1/services", headers={"X-Request-Id": "req-bug-1"})
        self.assertEqual(response.code, 500)
        self.assertEqual(response.json(), {"error": {
            "code": 500, "title": "Internal Server Error",
            "message": "internal error (request req-bug-1); the server's log has the details"}})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual([t for t in log if "Error handling" in t],
                         ["Error handling GET /v1/services (request req-bug-1)"])

    async def test_no_server_header(self) -> None:
        """
        When the API answers, then it does not name the server software.
        """
        live = await self.api()
        response = await live.request("GET", "/v1/services")
        self.assertNotIn("server", response.headers)
        self.assertEqual(response.headers["cache-control"], "no-store")


class GatewayRecorder:
    """
    A stand-in for L{novasvc.api.gateway.RPCGateway} that records what the
    API gives it.
    """

    made: List["GatewayRecorder"] = []

    def __init__(self, transport: Any, config: Any, clock: Any) -> None:
        self.args = (transport, config, clock)
        self.calls: List[Any] = []
        self.stopped = False
        self.answer: Any = defer.succeed((200, {"result": 42}))
        GatewayRecorder.made.append(self)

    def handle(self, topic: str, body: Any, context: Any) -> defer.Deferred:
        self.calls.append((topic, body, context))
        return self.answer

    def stop(self) -> None:
        self.stopped = True


class MountTests(_App):
    """
    The parts others build, mounted: the RPC gateway, the status page and
    the metrics exporter; 501 when they are not installed.
    """

    def setUp(self) -> None:
        GatewayRecorder.made = []

    async def test_gateway(self) -> None:
        """
        When an admin posts to C{/v1/rpc/{topic}}, then the gateway gets the
        topic, the JSON body and a request context with the request id, the
        token's name and admin; its status and payload are the answer (an
        error payload gets the API's C{title}); one gateway serves every
        request and is stopped with the API.
        """
        fake_module(self, "novasvc.api.gateway", RPCGateway=GatewayRecorder)
        live = await self.api(api=APIConfig(tokens=token_entries()))
        body = {"method": "echo", "args": {"value": 1}}
        response = await live.request("POST", "/v1/rpc/echo", body,
                                      {**ADMIN, "X-Request-Id": "req-gw-1"})
        self.assertEqual((response.code, response.json()), (200, {"result": 42}))
        [gateway] = GatewayRecorder.made
        gateway.answer = defer.succeed((502, {"error": {"code": 502, "message": "boom",
                                                        "type": "RemoteError"}}))
        response = await live.request("POST", "/v1/rpc/other.topic", [1], ADMIN)
        self.assertEqual(response.code, 502)
        self.assertEqual(response.json(), {"error": {"code": 502, "title": "Bad Gateway",
                                                     "message": "boom", "type": "RemoteError"}})
        self.assertEqual(GatewayRecorder.made, [gateway])
        self.assertEqual(gateway.args, (live.transport, live.service.context.config,
                                        live.service.context.clock))
        [(topic, sent, context), (topic2, sent2, _)] = gateway.calls
        self.assertEqual((topic, sent, topic2, sent2), ("echo", body, "other.topic", [1]))
        self.assertEqual((context.request_id, context.user_id, context.is_admin, context.roles),
                         ("req-gw-1", "ops", True, ["admin"]))
        self.assertEqual(context.remote_address, "127.0.0.1")
        await live.service.stopService()
        self.assertTrue(gateway.stopped)

    async def test_gateway_broker_down(self) -> None:
        """
        When the broker is not connected, then the gateway answers 503
        BrokerUnavailable at once, with Retry-After and the API's title.
        """
        live = await self.api()
        await live.transport.stop()
        response = await live.request("POST", "/v1/rpc/echo", {"method": "echo"})
        self.assertEqual((response.code, response.headers["retry-after"]), (503, "5"))
        error = response.json()["error"]
        self.assertEqual((error["title"], error["type"]), ("Service Unavailable",
                                                            "BrokerUnavailable"))
        self.assertTrue(error["message"].startswith("broker unavailable"))

    async def test_gateway_admin_only(self) -> None:
        """
        When a reader posts to the gateway, then 403 and the gateway is not
        called; without the auth filter, the handler refuses too.
        """
        fake_module(self, "novasvc.api.gateway", RPCGateway=GatewayRecorder)
        live = await self.api(api=APIConfig(tokens=token_entries()))
        response = await live.request("POST", "/v1/rpc/echo", {"method": "echo"}, READER)
        self.assertEqual(response.code, 403)
        live = await self.api(api=NO_AUTH)
        response = await live.request("POST", "/v1/rpc/echo", {"method": "echo"})
        self.assertEqual(response.code, 403)
        self.assertEqual([g.calls for g in GatewayRecorder.made], [])

    async def test_gateway_body(self) -> None:
        """
        When the gateway's body is not JSON, then 415 or 400 before the
        gateway is called.
        """
        fake_module(self, "novasvc.api.gateway", RPCGateway=GatewayRecorder)
        live = await self.api()
        response = await live.request("POST", "/v1/rpc/echo", b"{", JSON)
        self.assertEqual(response.code, 400)
        response = await live.request("POST", "/v1/rpc/echo", b"{}", {"Content-Type": "text/json"})
        self.assertEqual(response.code, 415)
        self.assertEqual([g.calls for g in GatewayRecorder.made], [])

    async def test_metrics_not_installed(self) -> None:
        """
        When C{prometheus_client} cannot be imported, then C{/metrics}
        answers 501 in the JSON error shape, naming the C{api} extra, and
        the other routes still answer.
        """
        not_imported(self, "novasvc.metrics.prometheus")
        for name in [n for n in sys.modules if n.split(".")[0] == "prometheus_client"]:
            missing_module(self, name)
        missing_module(self, "prometheus_client")
        live = await self.api()
        response = await live.request("GET", "/metrics")
        self.assertEqual(response.code, 501)
        self.assertEqual(response.json()["error"]["message"],
                         "the metrics exporter needs prometheus_client: pip install 'novasvc[api]'")
        self.assertEqual((await live.request("GET", "/healthz")).code, 200)

    async def test_metrics_import_bug(self) -> None:
        """
        When the exporter fails to import for another reason than a missing
        C{prometheus_client}, then C{/metrics} is a 500 (a bug), not a
        501.
        """
        not_imported(self, "novasvc.metrics.prometheus")
        missing_module(self, "novasvc.metrics._recorder")
        live = await self.api()
        response = await live.request("GET", "/metrics")
        self.assertEqual(response.code, 500)
        self.flushLoggedErrors(ImportError)

    async def test_status_page(self) -> None:
        """
        When C{/} is asked for, then the page renders the live services with
        the API's clock and service down time, as HTML with a strict
        content security policy.
        """
        seen: List[Any] = []

        def render(records: Any, now: Any, service_down_time: float, **kwargs: Any) -> bytes:
            seen.append(([r.host for r in records], now, service_down_time))
            return b"<!DOCTYPE html><title>ok</title>"

        fake_module(self, "novasvc.api.status_page", render=render)
        now = SettableUTCNow()
        live = await self.api(utcnow=now, config=Config(service_down_time=90))
        await self.services(live.store, 2)
        response = await live.request("GET", "/")
        self.assertEqual((response.code, response.body), (200, b"<!DOCTYPE html><title>ok</title>"))
        self.assertEqual(response.headers["content-type"], "text/html; charset=utf-8")
        self.assertIn("default-src 'none'", response.headers["content-security-policy"])
        self.assertEqual(seen, [(["h1", "h2"], START, 90)])

    async def test_metrics(self) -> None:
        """
        When C{/metrics} is asked for with a reader's token, then the
        exporter renders the context's recorder in Prometheus's text format
        (parsed back with C{prometheus_client}'s parser), as it is at each
        request; without a token it is 401.
        """
        from prometheus_client.parser import text_string_to_metric_families

        from novasvc.metrics import Recorder
        from novasvc.metrics.prometheus import CONTENT_TYPE

        def samples(body: bytes) -> Dict[Any, float]:
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(body.decode("utf-8"))
                    for s in family.samples}

        recorder = Recorder()
        server = recorder.rpc_server("echo", "h1")
        server.request("echo", "ok", 0.002)
        live = await self.api(api=APIConfig(tokens=token_entries()), recorder=recorder)
        response = await live.request("GET", "/metrics", headers=READER)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers["content-type"], CONTENT_TYPE)
        key = ("novasvc_rpc_requests_total", (("host", "h1"), ("method", "echo"),
                                               ("outcome", "ok"), ("topic", "echo")))
        self.assertEqual(samples(response.body)[key], 1)
        server.request("echo", "ok", 0.003)
        response = await live.request("GET", "/metrics", headers=READER)
        self.assertEqual(samples(response.body)[key], 2)
        self.assertEqual((await live.request("GET", "/metrics")).code, 401)

    def test_make_app(self) -> None:
        """
        When the app factory is called, then it returns a resource and
        imports none of the mounted parts.
        """
        from twisted.web.resource import IResource

        parts = {"novasvc.api.gateway", "novasvc.api.status_page", "novasvc.metrics.prometheus"}
        for name in parts:
            not_imported(self, name)
        context = types.SimpleNamespace(on_stop=lambda f: None)
        self.assertTrue(IResource.providedBy(make_app(context)))
        self.assertEqual(parts & set(sys.modules), set())


class RealServicesTests(_App):
    """
    The routes on SQLite with a RabbitMQ transport.
    """

    timeout = 60

    async def test_sqlite_and_rabbitmq(self) -> None:
        """
        When the API runs on an SQLite file and a RabbitMQ transport of its
        own vhost, then /healthz is ok once connected, and services are
        listed, disabled and deleted in the file.
        """
        from novasvc.db.store import SQLServiceStore
        from tests._vhosts import make_vhost
        from tests.test_transport_amqp import FAST, rabbit_url, started

        vhost = await make_vhost(self)
        transport = started(self, rabbit_url(vhost), **FAST)
        path = os.path.abspath(self.mktemp())
        store = SQLServiceStore(f"sqlite:///{path}", reactor=reactor)
        await store.start()
        self.addCleanup(store.stop)
        a = await store.create("h1", "novasvc-echo", "echo")
        live = await self.api(store=store, transport=transport)
        await poll(lambda: transport.is_connected, "the transport connected")
        health = await live.request("GET", "/healthz")
        self.assertEqual((health.code, health.json()["status"]), (200, "ok"))
        listed = (await live.request("GET", "/v1/services?binary=novasvc-echo")).json()
        self.assertEqual([s["id"] for s in listed["services"]], [a.id])
        response = await live.request("PUT", f"/v1/services/{a.id}",
                                      {"status": "disabled", "disabled_reason": "r"})
        self.assertEqual(response.code, 200)
        self.assertTrue((await store.get(a.id)).disabled)
        self.assertEqual((await live.request("DELETE", f"/v1/services/{a.id}?force=true")).code,
                         204)
        self.assertEqual((await live.request("GET", f"/v1/services/{a.id}")).code, 404)
        await transport.stop()
        health = await live.request("GET", "/healthz")
        self.assertEqual((health.code, health.json()["checks"]["broker"]["ok"]), (503, False))


class StatusPageHTTPTests(_App):
    """
    C{GET /}: the real status page over HTTP.
    """

    async def test_page(self) -> None:
        """
        When a reader asks for C{/}, then 200 with the page of the live
        services as C{text/html; charset=utf-8}; without a token it is
        401; with no token configured, a loopback client gets it.
        """
        live = await self.api(api=APIConfig(tokens=token_entries()))
        await self.services(live.store, 2)
        response = await live.request("GET", "/", headers=READER)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers["content-type"], "text/html; charset=utf-8")
        page = response.body.decode("utf-8")
        self.assertTrue(page.startswith("<!DOCTYPE html>"), page[:100])
        self.assertIn('<span class="up">2 up</span>, <span class="down">0 down</span>, 0 disabled',
                      page)
        for host in ("h1", "h2"):
            self.assertIn(f"<td>{host}</td>", page)
        self.assertEqual((await live.request("GET", "/")).code, 401)
        live = await self.api()
        await self.services(live.store, 1)
        response = await live.request("GET", "/")
        self.assertEqual((response.code, response.headers["content-type"]),
                         (200, "text/html; charset=utf-8"))


class GatewayHTTPTests(_App):
    """
    C{POST /v1/rpc/{topic}}: the real L{novasvc.api.gateway.RPCGateway}
    over HTTP, on the memory broker with a real L{RPCServer} serving the
    topic C{svc} and a L{task.Clock} for the timeouts.
    """

    async def setUp(self) -> None:
        from novasvc.rpc.server import RPCServer
        from novasvc.rpc.target import Target
        from novasvc.transport.memory import MemoryBroker, MemoryTransport
        from tests.test_api_gateway import GatewayManager

        self.clock = task.Clock()
        self.broker = MemoryBroker()
        self.manager = GatewayManager("host1")
        server = RPCServer(MemoryTransport(broker=self.broker, clock=self.clock),
                           Target(topic="svc", server="host1"), [self.manager], clock=self.clock)
        await server.start()
        self.addCleanup(server.stop)
        self.transport = MemoryTransport(broker=self.broker, clock=self.clock)

    async def gateway_api(self, **kwargs: Any):
        config = Config(host="h1", rpc_response_timeout=30, kombu_missing_consumer_retry_timeout=10)
        return await self.api(transport=self.transport, clock=self.clock, config=config, **kwargs)

    async def test_call_and_cast(self) -> None:
        """
        When an admin posts a call, then 200 with the method's result; a
        cast is 202 with the request id, and runs.
        """
        live = await self.gateway_api(api=APIConfig(tokens=token_entries()))
        response = await live.request("POST", "/v1/rpc/svc", {"method": "echo", "args": {"value": 1}},
                                      ADMIN)
        self.assertEqual((response.code, response.json()),
                         (200, {"result": {"value": 1, "host": "host1"}}))
        response = await live.request("POST", "/v1/rpc/svc",
                                      {"method": "note", "args": {"value": 7}, "cast": True},
                                      {**ADMIN, "X-Request-Id": "req-cast-1"})
        self.assertEqual((response.code, response.json()),
                         (202, {"accepted": True, "request_id": "req-cast-1"}))
        self.assertEqual(self.manager.casts, [7])

    async def test_admin_only(self) -> None:
        """
        When a reader posts, then 403; with no token, 401; with no token
        configured, a loopback client is admin and its call runs.
        """
        live = await self.gateway_api(api=APIConfig(tokens=token_entries()))
        body = {"method": "echo", "args": {"value": 1}}
        self.assertEqual((await live.request("POST", "/v1/rpc/svc", body, READER)).code, 403)
        response = await live.request("POST", "/v1/rpc/svc", body)
        self.assertEqual((response.code, response.headers["www-authenticate"][:6]), (401, "Bearer"))
        live = await self.gateway_api()
        response = await live.request("POST", "/v1/rpc/svc", body)
        self.assertEqual((response.code, response.json()["result"]["value"]), (200, 1))

    async def test_remote_error(self) -> None:
        """
        When the method raises, then 502 in the API's error shape, with the
        remote class and message and no traceback.
        """
        live = await self.gateway_api()
        response = await live.request("POST", "/v1/rpc/svc",
                                      {"method": "fail", "args": {"message": "bad value"}})
        self.assertEqual((response.code, response.json()), (502, {"error": {
            "code": 502, "title": "Bad Gateway", "type": "RemoteError", "message": "bad value",
            "exc_type": "ValueError"}}))
        response = await live.request("POST", "/v1/rpc/svc", {"method": "nope"})
        self.assertEqual((response.code, response.json()["error"]["type"]), (404, "NoSuchMethod"))
        response = await live.request("POST", "/v1/rpc/svc", {"method": "echo", "bogus": 1})
        self.assertEqual((response.code, response.json()["error"]["field"]), (400, "bogus"))

    async def test_timeout(self) -> None:
        """
        When the method does not answer within the body's timeout, then 504
        MessagingTimeout once it passed, not before.
        """
        live = await self.gateway_api()
        pending = defer.ensureDeferred(live.request("POST", "/v1/rpc/svc",
                                                    {"method": "slow", "timeout": 2.5}))
        await poll(lambda: self.manager.pending, "the method runs")
        self.clock.advance(2.4)
        self.assertNoResult(pending)
        self.clock.advance(0.1)
        response = await pending
        self.assertEqual((response.code, response.json()["error"]["type"]), (504, "MessagingTimeout"))

    async def test_unroutable(self) -> None:
        """
        When no server consumes the topic, then 503 UnroutableError once
        the timeout passed.
        """
        live = await self.gateway_api()
        pending = defer.ensureDeferred(live.request("POST", "/v1/rpc/nobody",
                                                    {"method": "echo", "timeout": 1}))

        def answered() -> bool:
            self.clock.advance(0.25)
            return pending.called

        await poll(answered, "the gateway answered")
        response = await pending
        self.assertEqual((response.code, response.json()["error"]["type"]), (503, "UnroutableError"))
        self.assertIn("'nobody'", response.json()["error"]["message"])

    async def test_request_id(self) -> None:
        """
        When a client sends C{X-Request-Id}, then the manager's request
        context has it, the response echoes it, and it is in the access log
        line and in the server's line for the failing call.
        """
        logged = capture_log(self)
        live = await self.gateway_api(api=APIConfig(tokens=token_entries()))
        response = await live.request("POST", "/v1/rpc/svc", {"method": "whoami"},
                                      {**ADMIN, "X-Request-Id": "req-trace-42"})
        self.assertEqual(response.json()["result"],
                         {"request_id": "req-trace-42", "user_id": "ops", "is_admin": True})
        self.assertEqual(response.headers["x-request-id"], "req-trace-42")
        response = await live.request("POST", "/v1/rpc/svc",
                                      {"method": "fail", "args": {"message": "no"}},
                                      {**ADMIN, "X-Request-Id": "req-trace-43"})
        self.assertEqual(response.code, 502)
        await poll(lambda: any("request_id=req-trace-43" in line for line in logged),
                   "the access log line is written")
        [access] = [line for line in logged if "request_id=req-trace-42" in line]
        self.assertRegex(access, r'^API 127\.0\.0\.1 "POST /v1/rpc/svc" 200 \d+ \d+\.\d{3}s '
                                 r'request_id=req-trace-42 user=ops$')
        [failed] = [line for line in logged if line.startswith("RPC call 'fail' failed")]
        self.assertIn("(msg_id ", failed)
        self.assertTrue(failed.endswith("request req-trace-43)"), failed)


class ReadmeExamplesTests(_App):
    """
    The README's examples of the gateway and of C{/metrics}, run against
    the echo service.
    """

    async def test_examples(self) -> None:
        """
        When the README's C{curl} requests to the gateway are sent to an
        API in front of the echo service, then the answers are the
        README's, byte for byte.
        """
        import re

        from novasvc.examples.echo import EchoManager
        from novasvc.rpc.server import RPCServer
        from novasvc.rpc.target import Target
        from novasvc.transport.memory import MemoryBroker, MemoryTransport
        from tests.test_api_openapi import ReadmeTests

        section = ReadmeTests().section()
        examples = re.findall(r"\$ curl -s -X POST (.*?)\n    (\{.*?\})\n", section, re.DOTALL)
        self.assertEqual(len(examples), 2, section)
        broker = MemoryBroker()
        manager = EchoManager(host="host1", service_name="echo")
        server = RPCServer(MemoryTransport(broker=broker, clock=reactor),
                           Target(topic="echo", server="host1"), [manager], clock=reactor)
        await server.start()
        self.addCleanup(server.stop)
        live = await self.api(api=APIConfig(tokens=token_entries()),
                              transport=MemoryTransport(broker=broker, clock=reactor))
        for command, answer in examples:
            headers = dict(re.findall(r"-H '([^:']+): ([^']*)'", command))
            headers.update(ADMIN)
            [body] = re.findall(r"-d '([^']*)'", command)
            [path] = re.findall(r"http://127\.0\.0\.1:8774(/\S+)", command)
            response = await live.request("POST", path, body.encode(), headers)
            self.assertEqual(response.body.decode(), answer, command)

    async def test_metrics_example(self) -> None:
        """
        When the echo service answered 3 calls, then C{/metrics} has the
        README's line, with this test's host.
        """
        import re

        from novasvc.metrics import Recorder
        from tests.test_api_openapi import ReadmeTests

        [(command, line)] = re.findall(r"\$ (curl .*/metrics .*)\n    (.*)\n", ReadmeTests().section())
        recorder = Recorder()
        for _ in range(3):
            recorder.rpc_server("echo", "myhost").request("echo", "ok", 0.001)
        live = await self.api(api=APIConfig(tokens=token_entries()), recorder=recorder)
        response = await live.request("GET", "/metrics", headers=READER)
        [pattern] = re.findall(r"grep '([^']*)'", command)
        self.assertEqual([row for row in response.body.decode().splitlines() if pattern in row], [line])
