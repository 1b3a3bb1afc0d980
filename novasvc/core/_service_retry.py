# -*- test-case-name: tests.test_core_service -*-
"""
How a L{novasvc.core.service.Service} retries a start-up step that needs the
database: L{retry} runs it until it succeeds, waiting L{RETRY_FIRST}
seconds before the first retry and twice as long each time, up to
L{RETRY_MAX}, and gives up at once on a mistake no retry mends. How a
failed step reads in the log and in a start-up error: L{one_line} (the
failure) and L{qualified} (the manager whose hook failed).
"""

import re
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from novasvc.exceptions import ConfigError, LoadError
from novasvc.config.loader import describe_object

__all__ = ["RETRY_FIRST", "RETRY_MAX", "one_line", "qualified", "retry"]

#: Seconds before the first retry of a start-up step; doubled each time.
RETRY_FIRST = 1.0
#: The most seconds between two retries of a start-up step.
RETRY_MAX = 30.0

# SQLAlchemy wraps a driver's message between the driver's class name and
# a pointer to its documentation.
_SQLALCHEMY_WRAPPING = re.compile(r"^\s*\([\w.]+\)\s+|\(Background on this error at: [^)]*\)")


def one_line(failure: Failure) -> str:
    """
    @return: the failure's class and message on one line.
    """
    message = " ".join(_SQLALCHEMY_WRAPPING.sub("", failure.getErrorMessage()).split())
    return f"{failure.type.__name__}: {message}"


def qualified(manager: Any) -> str:
    """
    @return: the dotted name of C{manager}'s class (or of the module or
        object a served manager wraps).
    """
    wrapped = getattr(manager, "wrapped", None)
    if wrapped is not None and not isinstance(manager, type(wrapped)):
        return describe_object(wrapped).split(" ", 1)[-1]
    cls = type(manager)
    return f"{cls.__module__}.{cls.__qualname__}"


def retry(what: str, attempt: Callable[[], Any], *, clock: Any, running: Callable[[], bool],
          log: Logger) -> defer.Deferred:
    """
    Run C{attempt} until it succeeds. Each failed attempt is logged at
    WARNING with the error and the delay before the next one; the success
    after a failure is logged once.

    @param what: what the attempt does, for the log (C{"open the
        database"}).
    @param attempt: returns a value or a C{Deferred}.
    @param clock: the C{IReactorTime} that schedules the retries.
    @param running: returns whether the service still runs: once it does
        not, a failure is not retried but returned.
    @param log: the logger of the lines.
    @return: a C{Deferred} firing with the first success. It fails at
        once, without retrying, with a L{ConfigError} or L{LoadError} (a
        mistake no retry mends, such as
        L{novasvc.db.store.PermanentDatabaseError}); and when cancelled,
        with C{CancelledError}: the next attempt is not made, and the
        outcome of one under way is dropped.
    """
    state = {"delay": RETRY_FIRST, "attempts": 0, "call": None}

    def cancel(_: defer.Deferred) -> None:
        call, state["call"] = state["call"], None
        if call is not None and call.active():
            call.cancel()

    result: defer.Deferred = defer.Deferred(cancel)

    def run():
        state["call"] = None
        state["attempts"] += 1
        defer.maybeDeferred(attempt).addCallbacks(succeeded, failed)

    def succeeded(value):
        if result.called:
            return  # cancelled while the attempt ran
        if state["attempts"] > 1:
            log.info("Recovered: could {what} at attempt {attempt}", what=what,
                     attempt=state["attempts"])
        result.callback(value)

    def failed(failure):
        if result.called:
            return
        if failure.check(ConfigError, LoadError) or not running():
            result.errback(failure)
            return
        delay = state["delay"]
        log.warn("Could not {what} (attempt {attempt}): {error}; retrying in {delay:g} s",
                 what=what, attempt=state["attempts"], error=one_line(failure), delay=delay)
        state["call"] = clock.callLater(delay, run)
        state["delay"] = min(delay * 2, RETRY_MAX)

    run()
    return result
