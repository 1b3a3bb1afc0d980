"""
Tests for L{novasvc.api.outage}: the database guard alone on a
L{task.Clock}, and every route that reads or writes the services table over
HTTP while the store is stopped, failing or hung.
"""

from typing import Any, List

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial import unittest

from novasvc.api.outage import DatabaseGuard, DatabaseUnavailable, is_unavailable
from novasvc.config.api import DATABASE_DEADLINE, RETRY_AFTER, APIConfig
from novasvc.db.memory import MemoryServiceStore
from tests._api import capture_log, start_api


def _operational() -> Exception:
    from sqlalchemy import exc

    return exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


class _Hung:
    """
    A store call that never answers until told to, counting its calls.
    """

    def __init__(self) -> None:
        self.calls: List[defer.Deferred] = []

    def __call__(self, *args: Any, **kwargs: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.calls.append(d)
        return d


class IsUnavailableTests(unittest.SynchronousTestCase):
    """
    L{is_unavailable}.
    """

    def test_kinds(self) -> None:
        """
        When the failure is a timeout, a stopped store or a connection error
        of the driver, then it names why; a missing row or a bug is not an
        outage.
        """
        from novasvc.exceptions import ServiceNotFound

        self.assertEqual(is_unavailable(Failure(defer.TimeoutError())), "no answer in time")
        self.assertEqual(is_unavailable(Failure(RuntimeError(
            "the service store is not running; call start() first"))),
            "the services table is not open yet")
        self.assertEqual(is_unavailable(Failure(_operational())),
                         "ConnectionRefusedError: connection refused")
        self.assertIsNone(is_unavailable(Failure(ServiceNotFound("no row"))))
        self.assertIsNone(is_unavailable(Failure(KeyError("bug"))))


class GuardTests(unittest.SynchronousTestCase):
    """
    L{DatabaseGuard} on a L{task.Clock}.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.guard = DatabaseGuard(self.clock, wall=lambda: "2026-03-04T05:06:07Z")
        self.log = capture_log(self)

    def test_deadline(self) -> None:
        """
        When a call does not answer within the deadline, then it fails with
        a 503 DatabaseUnavailable carrying Retry-After, and the guard is
        down since the wall time.
        """
        hung = _Hung()
        d = self.guard.call(hung)
        self.clock.advance(DATABASE_DEADLINE - 0.01)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        error = self.failureResultOf(d, DatabaseUnavailable).value
        self.assertEqual((error.code, error.headers, error.extra),
                         (503, {b"Retry-After": b"%d" % RETRY_AFTER},
                          {"type": "DatabaseUnavailable"}))
        self.assertIn("since 2026-03-04T05:06:07Z", error.message)
        self.assertEqual(self.guard.down_since, "2026-03-04T05:06:07Z")

    def test_configured_deadline(self) -> None:
        """
        When the guard is given its own deadline and Retry-After (the
        C{api:} section's C{database_deadline} and C{retry_after}), then a
        call fails at that deadline, not the default one, and the 503 says
        to wait that long.
        """
        guard = DatabaseGuard(self.clock, wall=lambda: "2026-03-04T05:06:07Z", deadline=0.5,
                              retry_after=9)
        d = guard.call(_Hung())
        self.clock.advance(0.49)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        error = self.failureResultOf(d, DatabaseUnavailable).value
        self.assertEqual(error.headers, {b"Retry-After": b"9"})
        self.assertIn("no answer within 0.5 s", error.message)
        refused = self.failureResultOf(guard.call(_Hung()), DatabaseUnavailable).value
        self.assertEqual(refused.headers, {b"Retry-After": b"9"})

    def test_log_once_each_way(self) -> None:
        """
        When many calls fail, then one WARNING; when one succeeds again,
        then one INFO with how long it lasted; successes log nothing.
        """
        for _ in range(5):
            self.failureResultOf(self.guard.call(lambda: defer.fail(_operational())),
                                 DatabaseUnavailable)
        self.clock.advance(42)
        for _ in range(3):
            self.assertEqual(self.successResultOf(self.guard.call(lambda: defer.succeed(1))), 1)
        self.assertEqual(len([t for t in self.log if "database is unavailable" in t]), 1)
        self.assertEqual([t for t in self.log if "available again" in t],
                         ["The database is available again (after 42 s)"])
        self.assertFalse(self.guard.is_down)

    def test_one_probe_while_down(self) -> None:
        """
        When the database is down and one call is already trying it, then
        the other calls fail at once, without reaching the store.
        """
        self.failureResultOf(self.guard.call(lambda: defer.fail(_operational())))
        hung = _Hung()
        probe = self.guard.call(hung)
        others = [self.guard.call(hung) for _ in range(10)]
        self.assertEqual(len(hung.calls), 1)
        for d in others:
            self.failureResultOf(d, DatabaseUnavailable)
        hung.calls[0].callback("back")
        self.assertEqual(self.successResultOf(probe), "back")
        self.assertFalse(self.guard.is_down)

    def test_hung_holds_no_more(self) -> None:
        """
        When calls hang past the deadline (their threads still busy), then
        no call reaches the store until every one of them has ended, however
        long that takes; their late answers do not count as the database
        being back, and the next call then tries it.
        """
        hung = _Hung()
        stuck = [self.guard.call(hung) for _ in range(4)]
        self.clock.advance(DATABASE_DEADLINE)
        for d in stuck:
            self.failureResultOf(d, DatabaseUnavailable)
        for _ in range(20):
            self.failureResultOf(self.guard.call(hung), DatabaseUnavailable)
            self.clock.advance(DATABASE_DEADLINE)
        self.assertEqual((len(hung.calls), self.guard.outstanding), (4, 4))
        for call in hung.calls[:3]:
            call.callback("late")
        hung.calls[3].errback(_operational())  # a late failure is dropped
        self.assertEqual(self.guard.outstanding, 0)
        self.assertTrue(self.guard.is_down)
        probe = self.guard.call(hung)
        self.assertEqual(len(hung.calls), 5)
        self.failureResultOf(self.guard.call(hung), DatabaseUnavailable)
        hung.calls[4].callback("back")
        self.assertEqual(self.successResultOf(probe), "back")
        self.assertFalse(self.guard.is_down)
        self.assertEqual(len([t for t in self.log if "available again" in t]), 1)

    def test_slower_than_deadline_stays_down(self) -> None:
        """
        When every call answers, but after the deadline, then the database
        stays down: one WARNING, no INFO.
        """
        hung = _Hung()
        for _ in range(5):
            d = self.guard.call(hung)
            self.clock.advance(DATABASE_DEADLINE)
            self.failureResultOf(d, DatabaseUnavailable)
            hung.calls[-1].callback("too late")
        self.assertEqual(len(hung.calls), 5)
        self.assertTrue(self.guard.is_down)
        self.assertEqual(len([t for t in self.log if "database is unavailable" in t]), 1)
        self.assertEqual([t for t in self.log if "available again" in t], [])

    def test_in_flight_success_is_not_back(self) -> None:
        """
        When one call fails with a connection error while another, made
        before, is still on its way, and that one then succeeds, then the
        database stays down (no INFO) until a call made after the failure
        succeeds.
        """
        before = _Hung()
        in_flight = self.guard.call(before)
        self.failureResultOf(self.guard.call(lambda: defer.fail(_operational())),
                             DatabaseUnavailable)
        before.calls[0].callback("made before")
        self.assertEqual(self.successResultOf(in_flight), "made before")
        self.assertTrue(self.guard.is_down)
        self.assertEqual([t for t in self.log if "available again" in t], [])
        self.assertEqual(self.successResultOf(self.guard.call(lambda: defer.succeed(1))), 1)
        self.assertFalse(self.guard.is_down)
        self.assertEqual(len([t for t in self.log if "available again" in t]), 1)
        self.assertEqual(len([t for t in self.log if "database is unavailable" in t]), 1)

    def test_client_gone(self) -> None:
        """
        When the request is cancelled (its client went away), then it fails
        with C{CancelledError} and the guard learns nothing: not down, and
        the call still counts until it ends.
        """
        hung = _Hung()
        d = self.guard.call(hung)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertFalse(self.guard.is_down)
        self.assertEqual(self.guard.outstanding, 1)
        self.clock.advance(DATABASE_DEADLINE)
        self.assertEqual(self.log, [])
        hung.calls[0].callback("late")
        self.assertEqual(self.guard.outstanding, 0)

    def test_other_errors_pass(self) -> None:
        """
        When a call fails with a missing row, then that failure comes back
        as it is and the database counts as answering.
        """
        from novasvc.exceptions import ServiceNotFound

        self.failureResultOf(self.guard.call(lambda: defer.fail(_operational())))
        self.failureResultOf(self.guard.call(lambda: defer.fail(ServiceNotFound("x"))),
                             ServiceNotFound)
        self.assertFalse(self.guard.is_down)


class _FailingStore(MemoryServiceStore):
    """
    A memory store whose reads and writes fail as a database that went
    away, or hang, when told to.
    """

    mode = "ok"

    def _maybe(self, real: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
        if self.mode == "down":
            return defer.fail(_operational())
        if self.mode == "hung":
            return defer.Deferred()
        return real(self, *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> defer.Deferred:
        return self._maybe(MemoryServiceStore.get, *args, **kwargs)

    def list_services(self, *args: Any, **kwargs: Any) -> defer.Deferred:
        return self._maybe(MemoryServiceStore.list_services, *args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> defer.Deferred:
        return self._maybe(MemoryServiceStore.update, *args, **kwargs)

    def destroy(self, *args: Any, **kwargs: Any) -> defer.Deferred:
        return self._maybe(MemoryServiceStore.destroy, *args, **kwargs)


class RoutesTests(unittest.TestCase):
    """
    The routes that need the database, over HTTP, while it is down.
    """

    async def _live(self, clock: Any = None, api: Any = None) -> Any:
        self.store = _FailingStore()
        await self.store.start()
        self.service = await self.store.create("h1", "novasvc-x", "x")
        kwargs = {"clock": clock} if clock is not None else {}
        return await start_api(self, store=self.store, api=api, **kwargs)

    async def test_down_is_503(self) -> None:
        """
        When the database refuses connections, then every route that needs
        it answers 503 with Retry-After and the API's error shape, the log
        has one WARNING and no traceback, and the status page (503 too)
        shows a "Database unreachable since" banner with the services it
        read last.
        """
        log = capture_log(self)
        live = await self._live()
        self.assertEqual((await live.request("GET", "/")).code, 200)
        self.store.mode = "down"
        path = f"/v1/services/{self.service.id}"
        for method, route, body in [("GET", "/v1/services", None), ("GET", path, None),
                                    ("PUT", path, {"status": "disabled"}),
                                    ("DELETE", path + "?force=true", None)]:
            response = await live.request(method, route, body)
            self.assertEqual(response.code, 503, (method, route, response.body))
            self.assertEqual(response.headers["retry-after"], str(RETRY_AFTER))
            error = response.json()["error"]
            self.assertEqual((error["code"], error["title"], error["type"]),
                             (503, "Service Unavailable", "DatabaseUnavailable"))
            self.assertIn("the database is unavailable since", error["message"])
        page = await live.request("GET", "/")
        self.assertEqual(page.code, 503)
        self.assertEqual(page.headers["retry-after"], str(RETRY_AFTER))
        self.assertIn(b"Database unreachable since", page.body)
        self.assertIn(b"novasvc-x", page.body)
        self.assertEqual(len([t for t in log if "database is unavailable" in t]), 1)
        self.assertFalse([t for t in log if "Traceback" in t or "Error handling" in t])
        self.store.mode = "ok"
        self.assertEqual((await live.request("GET", "/v1/services")).code, 200)
        self.assertEqual(len([t for t in log if "available again" in t]), 1)

    async def test_hung_is_503_within_deadline(self) -> None:
        """
        When the database does not answer, then the request gets its 503
        after C{api.database_deadline} (configured here to 0.2 s), not the
        client's own timeout, with the configured C{api.retry_after}.
        """
        live = await self._live(api=APIConfig(database_deadline=0.2, retry_after=7))
        self.store.mode = "hung"
        response = await live.request("GET", "/v1/services")
        self.assertEqual(response.code, 503)
        self.assertIn("no answer within 0.2 s", response.json()["error"]["message"])
        self.assertEqual(response.headers["retry-after"], "7")

    async def test_store_not_started(self) -> None:
        """
        When the store is not running (the standalone API started while the
        database is down), then 503, not 500, and the page has the banner
        without services.
        """
        store = MemoryServiceStore()
        live = await start_api(self, store=store)
        response = await live.request("GET", "/v1/services")
        self.assertEqual(response.code, 503)
        self.assertIn("not open yet", response.json()["error"]["message"])
        page = await live.request("GET", "/")
        self.assertEqual(page.code, 503)
        self.assertIn(b"No earlier reading of the services is known.", page.body)
