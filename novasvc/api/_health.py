# -*- test-case-name: tests.test_api_health -*-
"""
The API's health check, the answer of C{GET /healthz} (L{Health}): the
broker connection, one database check at a time (L{Shared}) that gives up
after C{api.health_timeout} seconds, and, for the API of a service, whether
that service's row is still there.

A check given up is not forgotten: until its C{SELECT 1} ends (a hung
database holds the thread running it), the next checks report the database
down at once instead of sending one more to wait behind it.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet import defer
from twisted.python.failure import Failure

from novasvc.api.context import APIContext
from novasvc.api.outage import within

__all__ = ["Health", "Shared"]


class Shared:
    """
    One run of an operation at a time, its result given to everyone who
    asked while it ran.
    """

    def __init__(self, operation: Callable[[], defer.Deferred]) -> None:
        """
        @param operation: returns a Deferred (or a value) of the result.
        """
        self._operation = operation
        self._waiters: Optional[List[defer.Deferred]] = None

    def __call__(self) -> defer.Deferred:
        """
        @return: a Deferred of the running operation's result, or of a new
            run's when none runs; cancelling it does not cancel the run.
        """
        waiter: defer.Deferred = defer.Deferred()
        if self._waiters is None:
            self._waiters = [waiter]
            defer.maybeDeferred(self._operation).addBoth(self._done)
        else:
            self._waiters.append(waiter)
        return waiter

    def _done(self, result: Any) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(result)


class Health:
    """
    The health of the API's process as C{/healthz} reports it.
    """

    def __init__(self, context: APIContext) -> None:
        """
        @param context: the API's context: its transport, store, clock and,
            for a service's API, C{row_deleted}.
        """
        self._context = context
        self._ping = Shared(self._check_database)
        self._pinging = False

    async def report(self) -> Tuple[int, Dict[str, Any]]:
        """
        @return: C{200} and C{{"status": "ok", "checks": {...}}} when every
            check is ok, else C{503} and C{"status": "degraded"}, each check
            under C{checks} with C{ok} and, when not ok, C{error}.
        """
        connected = bool(getattr(self._context.transport, "is_connected", False))
        broker: Dict[str, Any] = {"ok": connected}
        if not connected:
            broker["error"] = "not connected to the broker"
        database = await self._ping()
        ok = connected and database["ok"]
        checks = {"broker": broker, "database": database}
        row_deleted = getattr(self._context, "row_deleted", None)
        if row_deleted is not None:
            if row_deleted():
                checks["registration"] = {
                    "ok": False, "error": "this service's row was deleted while it runs; "
                    "it registers again at the next report"}
                ok = False
            else:
                checks["registration"] = {"ok": True}
        return (200 if ok else 503), {"status": "ok" if ok else "degraded", "checks": checks}

    @property
    def _timeout(self) -> float:
        return self._context.config.api.health_timeout

    def _no_answer(self) -> Dict[str, Any]:
        return {"ok": False, "error": f"no answer within {self._timeout:g} s"}

    def _check_database(self) -> defer.Deferred:
        if self._pinging:
            return defer.succeed(self._no_answer())  # the last one still waits
        self._pinging = True
        d = within(defer.maybeDeferred(self._context.store.ping), self._timeout,
                   self._context.clock, self._pinged)

        def failed(failure: Failure) -> Dict[str, Any]:
            if failure.check(defer.TimeoutError, defer.CancelledError):
                return self._no_answer()
            if failure.check(RuntimeError):
                reason = "the services table is not open"
            else:
                reason = f"the database check failed ({failure.type.__name__})"
            return {"ok": False, "error": reason}

        return d.addCallbacks(lambda _: {"ok": True}, failed)

    def _pinged(self) -> None:
        self._pinging = False
