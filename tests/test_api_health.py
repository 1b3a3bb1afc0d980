"""
Tests for L{novasvc.api._health}: C{GET /healthz} over real HTTP on
loopback (treq), on the memory store and transport, and L{Shared} alone.
"""

from typing import Any, List

from twisted.internet import defer, task
from twisted.trial import unittest

from novasvc.api._health import Shared
from novasvc.config.api import HEALTH_TIMEOUT, APIConfig
from novasvc.db.memory import MemoryServiceStore
from novasvc.transport.memory import MemoryBroker, MemoryTransport
from tests._api import start_api, token_entries
from tests._services import poll


class HealthTests(unittest.TestCase):
    """
    C{GET /healthz}.
    """

    async def test_ok(self) -> None:
        """
        When the broker and the database answer, then 200 with status ok
        and both checks ok, as JSON, with no token needed.
        """
        live = await start_api(self, api=APIConfig(tokens=token_entries()))
        response = await live.request("GET", "/healthz")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers["content-type"], "application/json")
        self.assertEqual(response.json(), {"status": "ok", "checks": {
            "broker": {"ok": True}, "database": {"ok": True}}})

    async def test_broker_down(self) -> None:
        """
        When the transport is not connected, then 503, status degraded, and
        the broker check says why; the database check is still reported.
        """
        live = await start_api(self, )
        await live.transport.stop()
        response = await live.request("GET", "/healthz")
        self.assertEqual(response.code, 503)
        self.assertEqual(response.json(), {"status": "degraded", "checks": {
            "broker": {"ok": False, "error": "not connected to the broker"},
            "database": {"ok": True}}})

    async def test_broker_away_and_back(self) -> None:
        """
        When the broker of a running memory transport goes away, then 503
        with the broker check failing; once it is back, 200 again.
        """
        from twisted.internet import reactor

        broker = MemoryBroker()
        live = await start_api(self, transport=MemoryTransport(broker=broker, clock=reactor))
        broker.go_away()
        response = await live.request("GET", "/healthz")
        self.assertEqual((response.code, response.json()["checks"]["broker"]),
                         (503, {"ok": False, "error": "not connected to the broker"}))
        broker.come_back()
        response = await live.request("GET", "/healthz")
        self.assertEqual((response.code, response.json()["status"]), (200, "ok"))

    async def test_row_deleted(self) -> None:
        """
        When the API is a service's and its row was deleted while it runs,
        then 503, status degraded, and a registration check that says it
        registers again; once it has, the check is ok.
        """
        deleted = [True]
        live = await start_api(self, row_deleted=lambda: deleted[0])
        response = await live.request("GET", "/healthz")
        self.assertEqual(response.code, 503)
        self.assertEqual(response.json()["checks"]["registration"], {
            "ok": False, "error": "this service's row was deleted while it runs; it "
            "registers again at the next report"})
        deleted[0] = False
        response = await live.request("GET", "/healthz")
        self.assertEqual((response.code, response.json()["checks"]["registration"]),
                         (200, {"ok": True}))

    async def test_database_down(self) -> None:
        """
        When the store is not open, then 503 and the database check says so.
        """
        live = await start_api(self, )
        await live.store.stop()
        response = await live.request("GET", "/healthz")
        self.assertEqual(response.code, 503)
        self.assertEqual(response.json()["checks"]["database"],
                         {"ok": False, "error": "the services table is not open"})
        self.assertEqual(response.json()["checks"]["broker"], {"ok": True})

    async def _hung(self, api: APIConfig = None) -> Any:
        """
        An API on a clock of its own whose store's C{ping} never answers
        until told to; C{self.pings} has each ping made.
        """
        self.clock = task.Clock()
        store = MemoryServiceStore()
        await store.start()
        self.pings: List[defer.Deferred] = []

        def ping() -> defer.Deferred:
            self.pings.append(defer.Deferred())
            return self.pings[-1]

        store.ping = ping
        return await start_api(self, store=store, clock=self.clock, api=api)

    async def _check_after(self, live: Any, seconds: float) -> Any:
        pending = defer.ensureDeferred(live.request("GET", "/healthz"))
        await poll(lambda: self.pings, "the request is waiting for the ping")
        self.clock.advance(seconds - 0.01)
        self.assertNoResult(pending)
        self.clock.advance(0.01)
        return await pending

    async def test_database_slow(self) -> None:
        """
        When the database does not answer, then the check gives up after
        L{HEALTH_TIMEOUT} seconds with 503 and C{Retry-After}.
        """
        live = await self._hung()
        response = await self._check_after(live, HEALTH_TIMEOUT)
        self.assertEqual((response.code, response.headers["retry-after"]), (503, "5"))
        self.assertEqual(response.json()["checks"]["database"],
                         {"ok": False, "error": f"no answer within {HEALTH_TIMEOUT:g} s"})

    async def test_configured_timeout(self) -> None:
        """
        When C{api.health_timeout} is 0.5 s, then the check gives up after
        0.5 s, not the default, and says so.
        """
        live = await self._hung(APIConfig(health_timeout=0.5, retry_after=7))
        response = await self._check_after(live, 0.5)
        self.assertEqual((response.code, response.headers["retry-after"]), (503, "7"))
        self.assertEqual(response.json()["checks"]["database"],
                         {"ok": False, "error": "no answer within 0.5 s"})

    async def test_no_ping_behind_a_hung_one(self) -> None:
        """
        When a check gave up on a ping that still waits (a hung database),
        then the next checks report the database down at once without a
        new ping; once that ping ends, the next check pings again.
        """
        live = await self._hung()
        await self._check_after(live, HEALTH_TIMEOUT)
        for _ in range(3):
            response = await live.request("GET", "/healthz")
            self.assertEqual(response.json()["checks"]["database"],
                             {"ok": False, "error": f"no answer within {HEALTH_TIMEOUT:g} s"})
        self.assertEqual(len(self.pings), 1)
        self.pings[0].errback(RuntimeError("late"))  # dropped, never unhandled
        pending = defer.ensureDeferred(live.request("GET", "/healthz"))
        await poll(lambda: len(self.pings) == 2, "a new ping")
        self.pings[1].callback(None)
        response = await pending
        self.assertEqual((response.code, response.json()["checks"]["database"]),
                         (200, {"ok": True}))


class SharedTests(unittest.SynchronousTestCase):
    """
    L{Shared}: one database check at a time.
    """

    def test_one_ping_at_a_time(self) -> None:
        """
        When health checks come while a database check runs, then they wait
        for that one (no second query), and the next check after it makes a
        new one; a waiter cancelled (its client gone) does not cancel it.
        """
        runs: List[defer.Deferred] = []
        shared = Shared(lambda: runs.append(defer.Deferred()) or runs[-1])
        first, second, third = shared(), shared(), shared()
        third.cancel()
        self.failureResultOf(third, defer.CancelledError)
        self.assertEqual(len(runs), 1)
        runs[0].callback({"ok": True})
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)),
                         ({"ok": True}, {"ok": True}))
        shared()
        self.assertEqual(len(runs), 2)
