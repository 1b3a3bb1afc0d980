# -*- test-case-name: tests.test_api_outage -*-
"""
The API's view of its database: every call a route makes to the store goes
through one L{DatabaseGuard}, which gives it a deadline and turns the
database being down, slow or not open yet into a 503 with C{Retry-After}
and the API's error shape, never a 500 and never a traceback per request.

  - A call that does not answer within C{api.database_deadline} seconds
    (default L{novasvc.config.api.DATABASE_DEADLINE}), one that fails with
    a connection error of the driver (SQLAlchemy's C{OperationalError},
    C{InterfaceError}, C{DisconnectionError}, its pool's C{TimeoutError}),
    and one refused because the store is not running (the
    standalone API started while the database is down) count as the
    database being unavailable.
  - The first such failure logs one WARNING; the first success afterwards
    of a call made after that failure one INFO naming how long it lasted.
    Nothing in between: a call made before the failure that succeeds after
    it (it was in flight when the database went away) is not the database
    being back.
  - While the database is down, one request at a time goes on to it (to
    see it come back), and only once every call sent before has ended: a
    call past its deadline is given up by its request, not by the thread
    running it, so a hung database holds at most the threads that were
    busy when it hung, whatever the load and however long it lasts. The
    other requests get their 503 at once. A call that ends after its
    deadline only opens the way for the next one: its answer is not the
    database being back (a database slower than the deadline stays down).
  - A request whose client went away (its handler cancelled) changes
    nothing: it says nothing of the database.
"""

from typing import Any, Callable, Optional

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc.api.errors import APIError
from novasvc.config.api import DATABASE_DEADLINE, RETRY_AFTER
from novasvc._text import clip

__all__ = ["DatabaseGuard", "DatabaseUnavailable", "is_unavailable", "within"]

_log = Logger()


def within(result: defer.Deferred, seconds: float, clock: Any,
           ended: Optional[Callable[[], None]] = None) -> defer.Deferred:
    """
    Wait at most C{seconds} for C{result}, without cancelling it: the work
    of a thread cannot be stopped, and when it ends is worth knowing.

    @param result: the Deferred of the work (a store call).
    @param clock: an C{IReactorTime}.
    @param ended: called once C{result} has fired, whenever that is; a
        result that comes after the deadline (or after the caller
        cancelled) is dropped there, a failure included.
    @return: a C{Deferred} with C{result}'s result or failure; failing with
        C{defer.TimeoutError} after C{seconds}, and with
        C{defer.CancelledError} when the caller cancels it.
    """
    timer: Any = None

    def cancelled(_: defer.Deferred) -> None:
        if timer is not None and timer.active():
            timer.cancel()

    answer: defer.Deferred = defer.Deferred(cancelled)

    def settled(outcome: Any) -> None:
        if timer is not None and timer.active():
            timer.cancel()
        if ended is not None:
            ended()
        if not answer.called:
            answer.callback(outcome)

    def too_late() -> None:
        answer.errback(defer.TimeoutError(f"no answer within {seconds:g} s"))

    if not result.called:
        timer = clock.callLater(seconds, too_late)
    result.addBoth(settled)
    return answer


def _connection_errors() -> tuple:
    from sqlalchemy import exc

    return (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)


def is_unavailable(failure: Failure) -> Optional[str]:
    """
    @return: why C{failure} means the database is unavailable (one short
        line), or C{None} when it is another error (a missing row, a bug).
    """
    if failure.check(defer.TimeoutError, defer.CancelledError):
        return "no answer in time"
    if failure.check(RuntimeError) and "not running" in str(failure.value):
        return "the services table is not open yet"
    if failure.check(*_connection_errors()):
        original = getattr(failure.value, "orig", None) or failure.value
        first = (str(original).strip().splitlines() or [""])[0]
        return clip(f"{type(original).__name__}: {first}" if first else type(original).__name__)
    return None


class DatabaseUnavailable(APIError):
    """
    A 503 for a route that needs the database: the API's error shape with
    C{"type": "DatabaseUnavailable"}, and C{Retry-After}.
    """

    def __init__(self, reason: str, since: Optional[str] = None,
                 retry_after: int = RETRY_AFTER) -> None:
        """
        @param reason: why the database is unavailable (one short line).
        @param since: the wall time (text) the outage was first seen, or
            C{None}.
        @param retry_after: B{seconds} the client is told to wait.
        """
        message = f"the database is unavailable ({reason}); retry later"
        if since is not None:
            message = f"the database is unavailable since {since} ({reason}); retry later"
        APIError.__init__(self, 503, message, {b"Retry-After": b"%d" % retry_after},
                          type="DatabaseUnavailable")


@attrs.define
class DatabaseGuard:
    """
    Deadlines, outage detection and its log lines for the store calls of
    the routes.

    @ivar clock: an C{IReactorTime} for the deadline.
    @ivar wall: returns the current time as text for messages and the
        status page (ISO 8601 UTC).
    @ivar deadline: B{seconds} a call may take (C{api.database_deadline}).
    @ivar retry_after: B{seconds} its 503s tell the client to wait
        (C{api.retry_after}).
    @ivar down_since: the wall time (text) the outage was first seen, or
        C{None} while the database answers.
    @ivar reason: why the last call failed, while down.
    @ivar outstanding: the store calls made and not ended yet, those given
        up at their deadline included.
    """

    clock: Any
    wall: Callable[[], str]
    deadline: float = DATABASE_DEADLINE
    retry_after: int = RETRY_AFTER
    down_since: Optional[str] = None
    reason: Optional[str] = None
    outstanding: int = 0
    _down_at: float = 0.0
    #: Counts the changes of state: a call's answer speaks for the state it
    #: was made in only.
    _epoch: int = 0

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def call(self, operation: Callable[..., defer.Deferred], *args: Any, **kwargs: Any
             ) -> defer.Deferred:
        """
        Run one store call under the deadline.

        @return: a C{Deferred} with the call's result or its own failure;
            failing with L{DatabaseUnavailable} when the database is down,
            slow or not open.
        """
        if self.is_down and self.outstanding:
            return defer.fail(DatabaseUnavailable(self.reason or "unavailable", self.down_since,
                                                  self.retry_after))
        self.outstanding += 1
        d = within(defer.maybeDeferred(operation, *args, **kwargs), self.deadline, self.clock,
                   self._ended)
        d.addCallbacks(self._answered, self._failed, (self._epoch,), None, (self._epoch,))
        return d

    def _ended(self) -> None:
        self.outstanding -= 1

    def _answered(self, result: Any, epoch: int) -> Any:
        self._back(epoch)
        return result

    def _failed(self, failure: Failure, epoch: int) -> Failure:
        if failure.check(defer.CancelledError):
            return failure  # the client went away: nothing learnt
        reason = is_unavailable(failure)
        if reason is None:
            if not failure.check(TypeError, ValueError, AttributeError):
                self._back(epoch)  # the database answered (a missing row, say)
            return failure
        if reason == "no answer in time":
            reason = f"no answer within {self.deadline:g} s"
        self.reason = reason
        if self.down_since is None:
            self._epoch += 1
            self.down_since = self.wall()
            self._down_at = self.clock.seconds()
            _log.warn("The database is unavailable ({reason}): the routes that need it "
                      "answer 503 until it is back", reason=reason)
        raise DatabaseUnavailable(reason, self.down_since, self.retry_after)

    def _back(self, epoch: int) -> None:
        if self.down_since is None or epoch != self._epoch:
            return  # up already, or the call was made before the outage
        self._epoch += 1
        lasted = self.clock.seconds() - self._down_at
        self.down_since = self.reason = None
        _log.info("The database is available again (after {seconds:.0f} s)", seconds=lasted)
