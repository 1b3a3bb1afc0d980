"""
Helpers for integration tests that need a real local service.

Outside CI a missing service skips the test; in CI (C{CI=true}) it fails it,
so a broken machine can never pass as green.
"""

import os
import socket
from unittest import SkipTest

from typing import Any, Callable

from twisted.internet import defer, reactor

DEADLINE = 30.0


def in_ci() -> bool:
    """
    @return: C{True} when the environment variable C{CI} is C{true}.
    """
    return os.environ.get("CI", "").lower() == "true"


def require_service(name: str, host: str, port: int) -> None:
    """
    Check that C{host}:C{port} accepts TCP connections.

    @param name: what the service is, for the message (e.g. C{"RabbitMQ"}).
    @raise SkipTest: when unreachable outside CI.
    @raise AssertionError: when unreachable in CI.
    """
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as e:
        message = f"{name} is not reachable on {host}:{port}: {e}"
        if in_ci():
            raise AssertionError(message)
        raise SkipTest(message)


def free_port() -> int:
    """
    @return: a local TCP port that nothing listens on (just released: a
        connection to it is refused, and a server may take it).
    """
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def poll(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE, interval: float = 0.01
         ) -> defer.Deferred:
    """
    Check C{predicate()} (which may return a C{Deferred}) every C{interval}
    seconds until it is true.

    @return: a C{Deferred} firing with that true result, failing with
        C{AssertionError} mentioning C{what} after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout
    done: defer.Deferred = defer.Deferred()

    def check() -> None:
        defer.maybeDeferred(predicate).addCallbacks(checked, done.errback)

    def checked(result: Any) -> None:
        if result:
            done.callback(result)
        elif reactor.seconds() > deadline:
            done.errback(AssertionError(f"still not so after {timeout} seconds: {what}"))
        else:
            reactor.callLater(interval, check)

    check()
    return done


def process_alive(pid: int) -> bool:
    """
    @return: whether process C{pid} exists and is not a zombie.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; its parent (detached: init) reaps it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
